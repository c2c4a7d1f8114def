/*
 * test_conf - unit tests for lib/conf ("name = value" files checked against a table).
 *
 * Covers the value parsers (conf_parse_bool, conf_parse_time with ms/s/m/h/d and a bare
 * number meaning seconds, conf_parse_size with k/m/g and their "b" forms, overflow), the
 * defaults applied with no file, a file using every type with comments, blank lines,
 * whitespace, tabs and CRLF, ranges (min/max, negative numbers, "no limit but >= 0"),
 * every error with its "FILE:LINE:" prefix and the setting it names (unknown setting,
 * set twice, missing '=', bad bool/int/time/size, out of range, line too long, control
 * characters quoted cleanly, missing file), the line-length boundary, conf_load_stream(),
 * reloading into the same struct, conf_set(), conf_dump() output and a dump -> load round
 * trip, and conf_free(). Files are written with mkstemp() in /tmp and removed afterwards;
 * ASan checks that every string is freed exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <unistd.h>

#include "conf.h"
#include "mbuf.h"

#include "check.h"

/* ---- a program's settings, as a daemon would declare them ---- */

struct cfg {
	char *name;
	char *empty;
	long long count;  /* >= 0, no upper limit */
	long long offset; /* -100..100 */
	long long port;   /* 1..65535 */
	bool flag;
	bool on;
	long long timeout; /* ms */
	long long delay;   /* ms, 100..60000 */
	long long size;    /* bytes */
	long long bufsize; /* bytes, 1024..1048576 */
};

#define O(f) offsetof(struct cfg, f)

static const struct conf_setting table[] = {
        {"name", CONF_STR, "default name", O(name), 0, 0},
        {"empty", CONF_STR, "", O(empty), 0, 0},
        {"count", CONF_INT, "10", O(count), 0, 0},
        {"offset", CONF_INT, "-5", O(offset), -100, 100},
        {"port", CONF_INT, "8080", O(port), 1, 65535},
        {"flag", CONF_BOOL, "no", O(flag), 0, 0},
        {"on", CONF_BOOL, "yes", O(on), 0, 0},
        {"timeout", CONF_TIME, "30s", O(timeout), 0, 0},
        {"delay", CONF_TIME, "500ms", O(delay), 100, 60000},
        {"size", CONF_SIZE, "16k", O(size), 0, 0},
        {"bufsize", CONF_SIZE, "4k", O(bufsize), 1024, 1048576},
        CONF_END,
};

static const char defaults_dump[] = "name = default name\n"
                                    "empty = \n"
                                    "count = 10\n"
                                    "offset = -5\n"
                                    "port = 8080\n"
                                    "flag = no\n"
                                    "on = yes\n"
                                    "timeout = 30000ms\n"
                                    "delay = 500ms\n"
                                    "size = 16384\n"
                                    "bufsize = 4096\n";

/* Write text to a new file in /tmp; the caller unlinks path. */
static void
write_temp(char *path, size_t size, const char *text, size_t len)
{
	int fd;

	snprintf(path, size, "/tmp/test_conf.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void
check_defaults(const char *what, const struct cfg *c)
{
	CHECK_STR(what, c->name, "default name");
	CHECK_STR(what, c->empty, "");
	CHECK_INT(what, c->count, 10);
	CHECK_INT(what, c->offset, -5);
	CHECK_INT(what, c->port, 8080);
	CHECK_INT(what, c->flag, false);
	CHECK_INT(what, c->on, true);
	CHECK_INT(what, c->timeout, 30000);
	CHECK_INT(what, c->delay, 500);
	CHECK_INT(what, c->size, 16384);
	CHECK_INT(what, c->bufsize, 4096);
}

/* ---- value parsers ---- */

static void
test_parse_bool(void **state)
{
	static const struct {
		const char *in;
		int rc, want;
	} cases[] = {
	        {"yes", 0, 1},  {"YES", 0, 1}, {"Yes", 0, 1},     {"true", 0, 1},
	        {"TRUE", 0, 1}, {"on", 0, 1},  {"On", 0, 1},      {"1", 0, 1},
	        {"no", 0, 0},   {"NO", 0, 0},  {"false", 0, 0},   {"False", 0, 0},
	        {"off", 0, 0},  {"OFF", 0, 0}, {"0", 0, 0},       {"", -1, 0},
	        {"2", -1, 0},   {"y", -1, 0},  {"n", -1, 0},      {"yes ", -1, 0},
	        {" no", -1, 0}, {"01", -1, 0}, {"enable", -1, 0}, {"truee", -1, 0},
	        {"-1", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool out = !cases[i].want; /* so a success that writes nothing is caught */
		char what[32];

		snprintf(what, sizeof(what), "\"%s\"", cases[i].in);
		CHECK_INT(what, conf_parse_bool(cases[i].in, &out), cases[i].rc);
		if (cases[i].rc == 0)
			CHECK_INT(what, out, cases[i].want);
	}
	check_done();
}

static void
test_parse_time(void **state)
{
	static const struct {
		const char *in;
		int rc;
		long long want;
	} cases[] = {
	        {"0", 0, 0},
	        {"30", 0, 30000}, /* a bare number is seconds */
	        {"1", 0, 1000},
	        {"1ms", 0, 1},
	        {"500ms", 0, 500},
	        {"0ms", 0, 0},
	        {"1s", 0, 1000},
	        {"45s", 0, 45000},
	        {"5m", 0, 300000},
	        {"2h", 0, 7200000},
	        {"90d", 0, 7776000000LL},
	        {"10 s", 0, 10000},
	        {"10S", 0, 10000},
	        {"10MS", 0, 10},
	        {"1M", 0, 60000}, /* units ignore case: M is minutes, not months */
	        {"007s", 0, 7000},
	        {"9223372036854775807ms", 0, 9223372036854775807LL},
	        {"9223372036854775s", 0, 9223372036854775000LL},
	        {"106751991167d", 0, 106751991167LL * 86400000},
	        {"9223372036854775808ms", -1, 0}, /* strtoll overflow */
	        {"9223372036854776s", -1, 0},     /* multiplication overflow */
	        {"106751991168d", -1, 0},
	        {"", -1, 0},
	        {"s", -1, 0},
	        {"ms", -1, 0},
	        {"-1s", -1, 0},
	        {"+5s", -1, 0},
	        {" 5s", -1, 0},
	        {"1.5s", -1, 0},
	        {"10x", -1, 0},
	        {"1w", -1, 0},
	        {"1sec", -1, 0},
	        {"1 s s", -1, 0},
	        {"1s5", -1, 0},
	        {"0x10", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long out = -12345;

		CHECK_INT(cases[i].in, conf_parse_time(cases[i].in, &out), cases[i].rc);
		CHECK_INT(cases[i].in, out, cases[i].rc == 0 ? cases[i].want : -12345);
	}
	check_done();
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int rc;
		long long want;
	} cases[] = {
	        {"0", 0, 0},
	        {"4096", 0, 4096},
	        {"7b", 0, 7},
	        {"16k", 0, 16384},
	        {"16K", 0, 16384},
	        {"16kb", 0, 16384},
	        {"16KB", 0, 16384},
	        {"10m", 0, 10485760},
	        {"10MB", 0, 10485760},
	        {"1g", 0, 1073741824},
	        {"2gb", 0, 2147483648LL},
	        {"1 k", 0, 1024},
	        {"8589934591g", 0, 8589934591LL * 1073741824},
	        {"8589934592g", -1, 0},
	        {"99999999999999999999", -1, 0},
	        {"", -1, 0},
	        {"k", -1, 0},
	        {"1t", -1, 0},
	        {"1tb", -1, 0},
	        {"1kib", -1, 0},
	        {"1.5k", -1, 0},
	        {"-1", -1, 0},
	        {"-1k", -1, 0},
	        {"1kk", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long out = -12345;

		CHECK_INT(cases[i].in, conf_parse_size(cases[i].in, &out), cases[i].rc);
		CHECK_INT(cases[i].in, out, cases[i].rc == 0 ? cases[i].want : -12345);
	}
	check_done();
}

/* ---- loading ---- */

static void
test_defaults_without_file(void **state)
{
	struct cfg c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	CHECK_INT("conf_load(NULL)", conf_load(table, &c, NULL, &err), 0);
	check_defaults("defaults", &c);
	conf_free(table, &c);
	CHECK_INT("conf_free clears name", c.name == NULL, 1);
	CHECK_INT("conf_free clears empty", c.empty == NULL, 1);
	CHECK_INT("conf_free leaves numbers", c.port, 8080);
	check_done();
}

static void
test_load_every_type(void **state)
{
	static const char text[] = "# a comment\n"
	                           "\n"
	                           "   # an indented comment\n"
	                           "name = my server\n"
	                           "\tempty\t=\t\n"
	                           "count=42\n"
	                           "  offset   =   -100  \n"
	                           "port = 65535\r\n"
	                           "flag = YES\n"
	                           "on = off\n"
	                           "timeout = 2h\n"
	                           "delay = 60s\n"
	                           "size = 10m\n"
	                           "\n"
	                           "bufsize = 1024\n"
	                           "   \t  \n";
	char path[64];
	struct cfg c;
	const char *err = NULL;
	int rc;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	memset(&c, 0, sizeof(c));
	rc = conf_load(table, &c, path, &err);
	if (rc != 0)
		print_error("load failed: %s\n", err);
	CHECK_INT("load", rc, 0);
	CHECK_STR("inner spaces kept", c.name, "my server");
	CHECK_STR("empty value", c.empty, "");
	CHECK_INT("no spaces", c.count, 42);
	CHECK_INT("range minimum, negative", c.offset, -100);
	CHECK_INT("range maximum, CRLF", c.port, 65535);
	CHECK_INT("bool upper case", c.flag, true);
	CHECK_INT("bool off", c.on, false);
	CHECK_INT("time in hours", c.timeout, 7200000);
	CHECK_INT("time at range maximum", c.delay, 60000);
	CHECK_INT("size in MiB", c.size, 10485760);
	CHECK_INT("size at range minimum", c.bufsize, 1024);
	conf_free(table, &c);
	unlink(path);
	check_done();
}

static void
test_partial_file_keeps_defaults(void **state)
{
	static const char text2[] = "name = a=b=c\nport = 25\n";
	char path[64];
	struct cfg c;
	const char *err = NULL;

	write_temp(path, sizeof(path), text2, sizeof(text2) - 1);
	memset(&c, 0, sizeof(c));
	CHECK_INT("load", conf_load(table, &c, path, &err), 0);
	CHECK_STR("only the first '=' splits", c.name, "a=b=c");
	CHECK_INT("set", c.port, 25);
	CHECK_INT("default kept", c.count, 10);
	CHECK_INT("default kept", c.timeout, 30000);
	conf_free(table, &c);
	unlink(path);
	check_done();
}

static const struct {
	const char *name;
	const char *text;
	int line;
	const char *want; /* substring after "FILE:LINE: " */
} error_cases[] = {
        {"unknown setting", "port = 1\n\n# c\nbogus = 1\n", 4, "unknown setting \"bogus\""},
        {"unknown setting, case matters", "Port = 1\n", 1, "unknown setting \"Port\""},
        {"empty name", " = 1\n", 1, "unknown setting \"\""},
        {"set twice", "count = 1\nport = 2\n\ncount = 1\n", 4, "count is set twice"},
        {"set twice, same value, other spacing", "flag=yes\nflag = yes\n", 2, "flag is set twice"},
        {"missing '='", "port = 1\nport 2\n", 2, "expected \"name = value\""},
        {"bare word", "\n\nverbose\n", 3, "expected \"name = value\""},
        {"bad bool", "flag = maybe\n", 1, "flag: expected yes or no, not \"maybe\""},
        {"empty bool", "on =\n", 1, "on: expected yes or no, not \"\""},
        {"bad int", "count = 12abc\n", 1, "count: expected an integer, not \"12abc\""},
        {"empty int", "count =\n", 1, "count: expected an integer, not \"\""},
        {"float for int", "port = 80.5\n", 1, "port: expected an integer, not \"80.5\""},
        {"hex for int", "count = 0x10\n", 1, "count: expected an integer, not \"0x10\""},
        {"int overflow", "count = 99999999999999999999\n", 1,
         "count: expected an integer, not \"99999999999999999999\""},
        {"negative without a range", "count = -1\n", 1, "count: must not be negative"},
        {"below range", "port = 0\n", 1, "port: \"0\" is out of range (1..65535)"},
        {"above range", "port = 65536\n", 1, "port: \"65536\" is out of range (1..65535)"},
        {"below a negative range", "offset = -101\n", 1,
         "offset: \"-101\" is out of range (-100..100)"},
        {"above a range with negatives", "offset = 101\n", 1,
         "offset: \"101\" is out of range (-100..100)"},
        {"time below range", "delay = 99ms\n", 1,
         "delay: \"99ms\" is out of range (100..60000 ms)"},
        {"time above range", "delay = 2m\n", 1, "delay: \"2m\" is out of range (100..60000 ms)"},
        {"size below range", "bufsize = 1023\n", 1,
         "bufsize: \"1023\" is out of range (1024..1048576 bytes)"},
        {"size above range", "bufsize = 2m\n", 1,
         "bufsize: \"2m\" is out of range (1024..1048576 bytes)"},
        {"bad time", "timeout = 5 minutes\n", 1,
         "timeout: expected a time such as 30s, 500ms, 5m, 2h or 90d, not \"5 minutes\""},
        {"negative time", "timeout = -5s\n", 1, "timeout: expected a time"},
        {"bad size", "size = 1t\n", 1,
         "size: expected a size such as 4096, 16k or 10m, not \"1t\""},
        {"control characters quoted cleanly", "flag = \x1b[31m\x07\n", 1,
         "flag: expected yes or no, not \"?[31m?\""},
        {"error after good lines", "name = x\ncount = 1\nport = 2\nflag = 3\n", 4,
         "flag: expected yes or no, not \"3\""},
};

static void
test_load_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char path[64], prefix[96 + 16];
		struct cfg c;
		const char *err = NULL;
		int rc;

		write_temp(path, sizeof(path), error_cases[i].text, strlen(error_cases[i].text));
		memset(&c, 0, sizeof(c));
		rc = conf_load(table, &c, path, &err);
		CHECK_INT(error_cases[i].name, rc, -1);
		if (rc != 0) {
			snprintf(prefix, sizeof(prefix), "%s:%d: ", path, error_cases[i].line);
			CHECK_INT(error_cases[i].name, strncmp(err, prefix, strlen(prefix)), 0);
			if (strncmp(err, prefix, strlen(prefix)) != 0)
				print_error("  error \"%s\" does not start with \"%s\"\n", err,
				            prefix);
			CHECK_HAS(error_cases[i].name, err, error_cases[i].want);
		}
		conf_free(table, &c); /* a failed load still owns its strings */
		unlink(path);
	}
	check_done();
}

static void
test_missing_file(void **state)
{
	struct cfg c;
	const char *err = NULL;
	const char *path = "/tmp/test_conf.does-not-exist/statusd.conf";

	memset(&c, 0, sizeof(c));
	CHECK_INT("missing file", conf_load(table, &c, path, &err), -1);
	CHECK_HAS("missing file names it", err, path);
	CHECK_HAS("missing file says why", err, strerror(ENOENT));
	check_defaults("defaults applied even so", &c);
	conf_free(table, &c);
	check_done();
}

/* A line is at most 4096 bytes, its newline included. */
static void
test_line_length_boundary(void **state)
{
	static const struct {
		const char *name;
		size_t len; /* bytes of "name = xxx" before the end of the line */
		int newline;
		int want_rc;
	} cases[] = {
	        {"4095 bytes and a newline", 4095, 1, 0},
	        {"4096 bytes without a newline at the end of the file", 4096, 0, 0},
	        {"4096 bytes and a newline", 4096, 1, -1},
	        {"4097 bytes without a newline", 4097, 0, -1},
	        {"10000 bytes and a newline", 10000, 1, -1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t total = cases[i].len + (size_t)cases[i].newline + 16;
		char *text = malloc(total + 1), path[64];
		struct cfg c;
		const char *err = NULL;
		size_t n;
		int rc;

		assert_non_null(text);
		n = (size_t)snprintf(text, total, "port = 1\n");
		memcpy(text + n, "name = ", 7);
		memset(text + n + 7, 'v', cases[i].len - 7);
		n += cases[i].len;
		if (cases[i].newline)
			text[n++] = '\n';
		write_temp(path, sizeof(path), text, n);
		memset(&c, 0, sizeof(c));
		rc = conf_load(table, &c, path, &err);
		CHECK_INT(cases[i].name, rc, cases[i].want_rc);
		if (rc == 0)
			CHECK_INT(cases[i].name, strlen(c.name), cases[i].len - 7);
		else {
			char want[160];
			snprintf(want, sizeof(want), "%s:2: line too long (over 4096 bytes)", path);
			CHECK_STR(cases[i].name, err, want);
		}
		conf_free(table, &c);
		unlink(path);
		free(text);
	}
	check_done();
}

static void
test_load_stream(void **state)
{
	static const char text[] = "port = 2525\nflag = on\n";
	static const char bad[] = "port = 2525\nport = 2526\n";
	struct cfg c;
	const char *err = NULL;
	FILE *fp;

	fp = fmemopen((void *)text, sizeof(text) - 1, "r");
	assert_non_null(fp);
	memset(&c, 0, sizeof(c));
	CHECK_INT("stream", conf_load_stream(table, &c, fp, "<memory>", &err), 0);
	CHECK_INT("stream", c.port, 2525);
	CHECK_INT("stream", c.flag, true);
	CHECK_INT("stream: defaults for the rest", c.timeout, 30000);
	fclose(fp);
	conf_free(table, &c);

	fp = fmemopen((void *)bad, sizeof(bad) - 1, "r");
	assert_non_null(fp);
	memset(&c, 0, sizeof(c));
	CHECK_INT("stream error", conf_load_stream(table, &c, fp, "<memory>", &err), -1);
	CHECK_STR("stream error names the stream", err, "<memory>:2: port is set twice");
	fclose(fp);
	conf_free(table, &c);

	memset(&c, 0, sizeof(c));
	CHECK_INT("NULL stream: defaults only", conf_load_stream(table, &c, NULL, NULL, &err), 0);
	check_defaults("NULL stream", &c);
	conf_free(table, &c);
	check_done();
}

/* Loading again into the same struct (a reload) frees the old strings, reapplies defaults. */
static void
test_reload_same_struct(void **state)
{
	static const char first[] = "name = first\nempty = x\nport = 1\n";
	static const char second[] = "count = 7\n";
	char p1[64], p2[64];
	struct cfg c;
	const char *err = NULL;

	write_temp(p1, sizeof(p1), first, sizeof(first) - 1);
	write_temp(p2, sizeof(p2), second, sizeof(second) - 1);
	memset(&c, 0, sizeof(c));
	CHECK_INT("first", conf_load(table, &c, p1, &err), 0);
	CHECK_STR("first", c.name, "first");
	CHECK_INT("second", conf_load(table, &c, p2, &err), 0);
	CHECK_STR("second: default again", c.name, "default name");
	CHECK_STR("second: default again", c.empty, "");
	CHECK_INT("second: default again", c.port, 8080);
	CHECK_INT("second", c.count, 7);
	conf_free(table, &c);
	unlink(p1);
	unlink(p2);
	check_done();
}

static void
test_set(void **state)
{
	struct cfg c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	assert_int_equal(conf_load(table, &c, NULL, &err), 0);

	CHECK_INT("set str", conf_set(table, &c, "name", "override", &err), 0);
	CHECK_STR("set str", c.name, "override");
	CHECK_INT("set str again", conf_set(table, &c, "name", "again", &err), 0);
	CHECK_STR("set str again (no 'set twice' for overrides)", c.name, "again");
	CHECK_INT("set int", conf_set(table, &c, "offset", "-42", &err), 0);
	CHECK_INT("set int", c.offset, -42);
	CHECK_INT("set bool", conf_set(table, &c, "flag", "true", &err), 0);
	CHECK_INT("set bool", c.flag, true);
	CHECK_INT("set time", conf_set(table, &c, "timeout", "90d", &err), 0);
	CHECK_INT("set time", c.timeout, 7776000000LL);
	CHECK_INT("set size", conf_set(table, &c, "size", "1g", &err), 0);
	CHECK_INT("set size", c.size, 1073741824);

	CHECK_INT("unknown", conf_set(table, &c, "nope", "1", &err), -1);
	CHECK_STR("unknown", err, "unknown setting \"nope\"");
	CHECK_INT("unknown with control chars", conf_set(table, &c, "a\nb", "1", &err), -1);
	CHECK_STR("unknown with control chars", err, "unknown setting \"a?b\"");
	CHECK_INT("out of range", conf_set(table, &c, "port", "70000", &err), -1);
	CHECK_STR("out of range", err, "port: \"70000\" is out of range (1..65535)");
	CHECK_INT("out of range leaves the value", c.port, 8080);
	CHECK_INT("bad bool", conf_set(table, &c, "on", "si", &err), -1);
	CHECK_STR("bad bool", err, "on: expected yes or no, not \"si\"");
	CHECK_INT("bad bool leaves the value", c.on, true);
	conf_free(table, &c);
	check_done();
}

static void
test_dump(void **state)
{
	static const char text[] = "name = custom\n"
	                           "count = 0\n"
	                           "offset = 100\n"
	                           "flag = 1\n"
	                           "on = false\n"
	                           "timeout = 0\n"
	                           "delay = 100ms\n"
	                           "size = 3g\n"
	                           "bufsize = 1m\n";
	struct mbuf out = MBUF_INIT, again = MBUF_INIT;
	char p1[64], p2[64];
	struct cfg c, d;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	assert_int_equal(conf_load(table, &c, NULL, &err), 0);
	conf_dump(table, &c, &out);
	CHECK_STR("dump of the defaults", mbuf_str(&out), defaults_dump);
	conf_free(table, &c);
	mbuf_reset(&out);

	write_temp(p1, sizeof(p1), text, sizeof(text) - 1);
	memset(&c, 0, sizeof(c));
	CHECK_INT("load", conf_load(table, &c, p1, &err), 0);
	conf_dump(table, &c, &out);
	CHECK_STR("dump", mbuf_str(&out),
	          "name = custom\n"
	          "empty = \n"
	          "count = 0\n"
	          "offset = 100\n"
	          "port = 8080\n"
	          "flag = yes\n"
	          "on = no\n"
	          "timeout = 0ms\n"
	          "delay = 100ms\n"
	          "size = 3221225472\n"
	          "bufsize = 1048576\n");

	/* the dump is itself a valid file that loads to the same values */
	write_temp(p2, sizeof(p2), mbuf_str(&out), out.len);
	memset(&d, 0, sizeof(d));
	err = NULL;
	CHECK_INT("load the dump", conf_load(table, &d, p2, &err), 0);
	if (err != NULL && failures)
		print_error("  %s\n", err);
	conf_dump(table, &d, &again);
	CHECK_STR("dump of the loaded dump", mbuf_str(&again), mbuf_str(&out));
	CHECK_INT("round trip", d.size, 3221225472LL);
	CHECK_INT("round trip", d.timeout, 0);

	conf_free(table, &c);
	conf_free(table, &d);
	mbuf_free(&out);
	mbuf_free(&again);
	unlink(p1);
	unlink(p2);
	check_done();
}

static void
test_empty_table(void **state)
{
	static const struct conf_setting none[] = {CONF_END};
	static const char text[] = "# only comments\n\n";
	static const char text2[] = "x = 1\n";
	char path[64];
	int dummy = 0;
	const char *err = NULL;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	CHECK_INT("empty table, comment-only file", conf_load(none, &dummy, path, &err), 0);
	unlink(path);
	write_temp(path, sizeof(path), text2, sizeof(text2) - 1);
	CHECK_INT("empty table, a setting", conf_load(none, &dummy, path, &err), -1);
	CHECK_HAS("empty table, a setting", err, ":1: unknown setting \"x\"");
	unlink(path);
	write_temp(path, sizeof(path), "", 0);
	CHECK_INT("empty file", conf_load(none, &dummy, path, &err), 0);
	unlink(path);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_bool),
	        cmocka_unit_test(test_parse_time),
	        cmocka_unit_test(test_parse_size),
	        cmocka_unit_test(test_defaults_without_file),
	        cmocka_unit_test(test_load_every_type),
	        cmocka_unit_test(test_partial_file_keeps_defaults),
	        cmocka_unit_test(test_load_errors),
	        cmocka_unit_test(test_missing_file),
	        cmocka_unit_test(test_line_length_boundary),
	        cmocka_unit_test(test_load_stream),
	        cmocka_unit_test(test_reload_same_struct),
	        cmocka_unit_test(test_set),
	        cmocka_unit_test(test_dump),
	        cmocka_unit_test(test_empty_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
