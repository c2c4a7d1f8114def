/*
 * test_msg - unit tests for lib/msg (diagnostics, msg_clean, errfmt).
 *
 * Covers msg_clean(): printable ASCII and well-formed UTF-8 kept, control characters,
 * DEL, NUL and every kind of broken UTF-8 replaced by '?' one byte each, srclen honoured
 * (embedded NUL, shorter than the string), truncation marked with "..." that never splits
 * a UTF-8 sequence and never cuts text that fits, dstsize at its minimum, never writing
 * past dstsize (exact heap buffers under ASan), and a randomized property check against
 * the untruncated result. Covers errfmt(): four consecutive results stay valid and
 * distinct, nesting errfmt() in errfmt(), long texts truncated safely, one ring per
 * thread. Covers the log functions: line format on stderr, labels, errno preserved,
 * msg_debug only when verbose, long lines cut to MSG_LINE_MAX, msg_fatal exits 1,
 * msg_panic aborts, msg_facility() names.
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
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "msg.h"
#include "utf8.h"

#include "check.h"
#include "child.h"

#define S(s) s, sizeof(s) - 1

static const struct {
	const char *name;
	const char *src;
	size_t srclen;
	size_t dstsize;
	const char *want;
} clean_cases[] = {
        {"plain ASCII", S("hello world"), 64, "hello world"},
        {"empty", S(""), 64, ""},
        {"srclen 0 of a longer string", "abc", 0, 64, ""},
        {"srclen shorter than the string", "abcdef", 3, 64, "abc"},
        {"embedded NUL", S("a\0b"), 64, "a?b"},
        {"NUL at both ends", S("\0x\0"), 64, "?x?"},
        {"tab, newline, CR", S("a\tb\nc\r"), 64, "a?b?c?"},
        {"ESC sequence", S("\x1b[31mred"), 64, "?[31mred"},
        {"DEL",
         S("a\x7f"
           "b"),
         64, "a?b"},
        {"every C0 control", S("\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x1f"), 64,
         "??????????????"},
        {"space and tilde stay", S(" ~"), 64, " ~"},
        {"2-byte UTF-8", S("caf\xc3\xa9"), 64, "caf\xc3\xa9"},
        {"3-byte UTF-8",
         S("\xe2\x82\xac"
           "5"),
         64,
         "\xe2\x82\xac"
         "5"},
        {"4-byte UTF-8", S("\xf0\x9f\x98\x80!"), 64, "\xf0\x9f\x98\x80!"},
        {"U+10FFFF", S("\xf4\x8f\xbf\xbf"), 64, "\xf4\x8f\xbf\xbf"},
        /* well-formed UTF-8 stays as documented, C1 controls included (see the report) */
        {"U+0085 (C1) is well-formed",
         S("a\xc2\x85"
           "b"),
         64,
         "a\xc2\x85"
         "b"},
        {"raw 0xff",
         S("a\xff"
           "b"),
         64, "a?b"},
        {"raw 0xfe 0xff", S("\xfe\xff"), 64, "??"},
        {"stray continuation bytes", S("\x80\xbf"), 64, "??"},
        {"overlong c0 af", S("\xc0\xaf"), 64, "??"},
        {"overlong e0 80 af", S("\xe0\x80\xaf"), 64, "???"},
        {"surrogate ed a0 80", S("\xed\xa0\x80"), 64, "???"},
        {"above U+10FFFF", S("\xf4\x90\x80\x80"), 64, "????"},
        {"truncated 3-byte at the end", S("ab\xe2\x82"), 64, "ab??"},
        {"truncated 4-byte before ASCII",
         S("\xf0\x9f\x98"
           "x"),
         64, "???x"},
        {"broken then good", S("\xff\xc3\xa9"), 64, "?\xc3\xa9"},
        /* truncation: text that fits is never cut; text that does not ends in "..." */
        {"fits with room", S("abcdef"), 8, "abcdef"},
        {"fits exactly (7 + NUL in 8)", S("abcdefg"), 8, "abcdefg"},
        {"one too many", S("abcdefgh"), 8, "abcd..."},
        {"much too long", S("abcdefghijklmnop"), 8, "abcd..."},
        {"minimum dstsize, fits", S("abcd"), 5, "abcd"},
        {"minimum dstsize, cut", S("abcde"), 5, "a..."},
        {"minimum dstsize, empty", S(""), 5, ""},
        {"cut never splits UTF-8", S("abc\xe2\x82\xac\xe2\x82\xac"), 8, "abc..."},
        {"UTF-8 that fits exactly", S("ab\xe2\x82\xac\xe2\x82\xac"), 9,
         "ab\xe2\x82\xac\xe2\x82\xac"},
        {"4-byte sequence at the cut", S("a\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 8, "a..."},
        {"controls counted one each", S("a\tb\tc\td\te"), 8, "a?b?..."},
        {"cut after broken bytes", S("\xff\xff\xff\xff\xff\xff\xff\xff\xff"), 8, "????..."},
        {"embedded NUL then cut", S("a\0bcdefghij"), 8, "a?bc..."},
};

/* A heap buffer of exactly dstsize bytes: ASan reports any write past it. */
static void
test_clean_table(void **state)
{
	for (size_t i = 0; i < sizeof(clean_cases) / sizeof(clean_cases[0]); i++) {
		char *dst = malloc(clean_cases[i].dstsize);
		char *src = malloc(clean_cases[i].srclen ? clean_cases[i].srclen : 1);
		char *ret;

		assert_non_null(dst);
		assert_non_null(src);
		memcpy(src, clean_cases[i].src, clean_cases[i].srclen);
		ret = msg_clean(dst, clean_cases[i].dstsize, src, clean_cases[i].srclen);
		CHECK_INT(clean_cases[i].name, ret == dst, 1);
		CHECK_STR(clean_cases[i].name, dst, clean_cases[i].want);
		free(dst);
		free(src);
	}
	check_done();
}

static void
test_clean_all_printable_ascii(void **state)
{
	char src[95], dst[100], want[96];

	for (int c = 0x20; c < 0x7f; c++)
		src[c - 0x20] = (char)c;
	memcpy(want, src, 95);
	want[95] = '\0';
	msg_clean(dst, sizeof(dst), src, sizeof(src));
	CHECK_STR("0x20..0x7e", dst, want);

	/* and every byte below 0x20 becomes '?' */
	for (int c = 0; c < 0x20; c++) {
		char one = (char)c, what[32];

		snprintf(what, sizeof(what), "byte 0x%02x", c);
		CHECK_STR(what, msg_clean(dst, sizeof(dst), &one, 1), "?");
	}
	check_done();
}

static uint64_t
next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Random inputs drawn from bytes that matter (ASCII, controls, NUL, lead and continuation
 * bytes, 0xff) and random dstsize: the result always fits, is clean, and is either the
 * whole cleaned text (when srclen < dstsize, since cleaning keeps the length) or a prefix
 * of it cut at a character boundary and marked with "...".
 */
static void
test_clean_random(void **state)
{
	static const unsigned char pool[] = {
	        'a',  'Z',  '0',  ' ',  '~',  0x00, 0x09, 0x0a, 0x1b, 0x7f, 0x80, 0xbf, 0xc2, 0xc3,
	        0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f, 0x98, 0xf4, 0x8f, 0x90, 0xc0, 0xff};
	uint64_t seed = 12345;
	char full[256];

	for (int iter = 0; iter < 20000 && failures == 0; iter++) {
		size_t srclen = next_rand(&seed) % 80;
		size_t dstsize = 5 + next_rand(&seed) % 60;
		char *src = malloc(srclen ? srclen : 1);
		char *dst = malloc(dstsize);
		size_t outlen, fulllen;

		assert_non_null(src);
		assert_non_null(dst);
		for (size_t i = 0; i < srclen; i++)
			src[i] = (char)pool[next_rand(&seed) % sizeof(pool)];
		msg_clean(full, sizeof(full), src, srclen);
		fulllen = strlen(full);
		msg_clean(dst, dstsize, src, srclen);
		outlen = strlen(dst);

		CHECK_INT("cleaning keeps the length", fulllen, srclen);
		CHECK_INT("result fits dstsize", outlen < dstsize, 1);
		CHECK_INT("result is UTF-8", utf8_valid(dst, outlen), 1);
		for (size_t i = 0; i < outlen; i++)
			if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f) {
				CHECK_INT("no control character in the result", dst[i], '?');
				break;
			}
		if (srclen < dstsize) {
			CHECK_STR("text that fits is not cut", dst, full);
		} else if (outlen < 3) {
			CHECK_INT("a cut text has room for ...", outlen >= 3, 1);
		} else {
			size_t keep = outlen - 3;
			CHECK_INT("a cut text ends in ...",
			          outlen >= 3 && !strcmp(dst + keep, "..."), 1);
			CHECK_INT("a cut keeps a prefix", memcmp(dst, full, keep), 0);
			CHECK_INT("a cut loses at most a partial character",
			          keep + 4 > dstsize - 4 && keep <= dstsize - 4, 1);
			CHECK_INT("a cut is at a character boundary",
			          utf8_valid(full, keep) &&
			                  (keep == fulllen || (full[keep] & 0xc0) != 0x80),
			          1);
		}
		if (failures)
			print_error(
			        "iteration %d: srclen %zu dstsize %zu: got \"%s\", full \"%s\"\n",
			        iter, srclen, dstsize, dst, full);
		free(src);
		free(dst);
	}
	check_done();
}

static void
test_errfmt_ring(void **state)
{
	const char *a = errfmt("first %d", 1);
	const char *b = errfmt("second %s", "two");
	const char *c = errfmt("third %c", '3');
	const char *d = errfmt("fourth %05d", 4);

	CHECK_STR("1 of 4", a, "first 1");
	CHECK_STR("2 of 4", b, "second two");
	CHECK_STR("3 of 4", c, "third 3");
	CHECK_STR("4 of 4", d, "fourth 00004");
	CHECK_INT("distinct buffers", a != b && a != c && a != d && b != c && b != d && c != d, 1);

	/* any window of four consecutive results is intact */
	for (int i = 0; i < 20; i++) {
		const char *r[4];
		for (int j = 0; j < 4; j++)
			r[j] = errfmt("round %d item %d", i, j);
		for (int j = 0; j < 4; j++) {
			char want[64];
			snprintf(want, sizeof(want), "round %d item %d", i, j);
			CHECK_STR("window of four", r[j], want);
		}
	}
	check_done();
}

static void
test_errfmt_nested_and_long(void **state)
{
	char big[2000];
	const char *r;

	/* the project's pattern: wrap an inner error in an outer one */
	r = errfmt("time: %s", errfmt("bad %s", "fraction"));
	CHECK_STR("nested", r, "time: bad fraction");
	r = errfmt("a: %s", errfmt("b: %s", errfmt("c: %s", errfmt("%s", "d"))));
	CHECK_STR("nested three deep", r, "a: b: c: d");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r = errfmt("%s", big);
	CHECK_INT("long text is cut", strlen(r) > 100 && strlen(r) < sizeof(big) - 1, 1);
	CHECK_INT("long text keeps its start", strspn(r, "x"), strlen(r));
	r = errfmt("%s", "");
	CHECK_STR("empty", r, "");
	check_done();
}

static void *
errfmt_thread(void *arg)
{
	const char **out = arg;

	for (int i = 0; i < 10; i++)
		out[0] = errfmt("thread %d", i);
	return NULL;
}

static void
test_errfmt_per_thread(void **state)
{
	const char *mine = errfmt("main thread");
	const char *theirs = NULL;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, errfmt_thread, &theirs), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	CHECK_STR("another thread does not overwrite my ring", mine, "main thread");
	CHECK_INT("another thread has its own buffers", theirs != NULL && theirs != mine, 1);
	check_done();
}

/* Capture what fn writes to stderr (fd 2) in this process. */
static void
capture_stderr(void (*fn)(void), char *out, size_t outsize)
{
	char path[] = "/tmp/test_msg.XXXXXX";
	int fd = mkstemp(path), saved;
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, outsize - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
}

static int saved_errno_after;

static void
log_levels(void)
{
	msg_open("test_msg", MSG_TARGET_STDERR, LOG_MAIL);
	msg_set_verbose(false);
	errno = EAGAIN;
	msg_info("info %d", 1);
	msg_warn("warn %s", "two");
	msg_error("error %c", '3');
	msg_debug("hidden debug");
	saved_errno_after = errno;
	msg_set_verbose(true);
	msg_debug("shown debug");
	msg_set_verbose(false);
}

static void
log_long_line(void)
{
	char big[5000];

	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	msg_info("%s", big);
}

static void
test_log_lines(void **state)
{
	char out[8192], pidtag[64];
	char *line, *save = NULL;
	static const char *const want[] = {"info 1", "warning: warn two", "error: error 3",
	                                   "debug: shown debug"};
	int n = 0;

	capture_stderr(log_levels, out, sizeof(out));
	CHECK_INT("errno preserved by the log functions", saved_errno_after, EAGAIN);
	snprintf(pidtag, sizeof(pidtag), " test_msg[%ld]: ", (long)getpid());
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		int Y, M, D, h, m, s, ms;
		char z;

		if (n >= 4)
			break;
		CHECK_INT(line,
		          sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &Y, &M, &D, &h, &m, &s, &ms,
		                 &z),
		          8);
		CHECK_INT(line, z, 'Z');
		CHECK_HAS("line carries progname and pid", line, pidtag);
		CHECK_HAS("line text and label", line, want[n]);
		if (strstr(line, pidtag))
			CHECK_STR("nothing after the text", strstr(line, pidtag) + strlen(pidtag),
			          want[n]);
	}
	CHECK_INT("four lines (hidden debug not logged)", n, 4);
	CHECK_INT("nothing after them", line == NULL, 1);

	capture_stderr(log_long_line, out, sizeof(out));
	CHECK_INT("a long line is cut to MSG_LINE_MAX", strlen(out) <= MSG_LINE_MAX, 1);
	CHECK_INT("a long line is cut, not dropped", strlen(out) > MSG_LINE_MAX - 100, 1);
	CHECK_INT("a cut line still ends in one newline",
	          out[strlen(out) - 1] == '\n' && strchr(out, '\n') == out + strlen(out) - 1, 1);
	check_done();
}

static void
test_verbose_flag(void **state)
{
	msg_set_verbose(true);
	CHECK_INT("verbose on", msg_verbose(), 1);
	msg_set_verbose(false);
	CHECK_INT("verbose off", msg_verbose(), 0);
	check_done();
}

static void
test_facility(void **state)
{
	static const struct {
		const char *name;
		int want;
	} cases[] = {
	        {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
	        {"local0", LOG_LOCAL0}, {"local3", LOG_LOCAL3}, {"local7", LOG_LOCAL7},
	        {"local8", -1},         {"MAIL", -1},           {"", -1},
	        {"kern", -1},           {"mail ", -1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(cases[i].name, msg_facility(cases[i].name), cases[i].want);
	check_done();
}

static void
do_fatal(void)
{
	msg_fatal("cannot open %s", "/etc/x.conf");
}

static void
do_panic(void)
{
	msg_panic("broken invariant %d", 42);
}

static void
do_clean_too_small(void)
{
	char dst[4];

	msg_clean(dst, sizeof(dst), "abc", 3);
}

static void
test_fatal_and_panic(void **state)
{
	char log[1024];
	int status;

	status = run_child(do_fatal, log, sizeof(log));
	CHECK_INT("msg_fatal exits", WIFEXITED(status), 1);
	CHECK_INT("msg_fatal exit status", WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1);
	CHECK_HAS("msg_fatal log", log, "fatal: cannot open /etc/x.conf");

	status = run_child(do_panic, log, sizeof(log));
	CHECK_INT("msg_panic aborts", WIFSIGNALED(status) ? WTERMSIG(status) : -1, SIGABRT);
	CHECK_HAS("msg_panic log", log, "panic: broken invariant 42");

	status = run_child(do_clean_too_small, log, sizeof(log));
	CHECK_INT("msg_clean with dstsize < 5 panics", WIFSIGNALED(status) ? WTERMSIG(status) : -1,
	          SIGABRT);
	CHECK_HAS("msg_clean with dstsize < 5 log", log, "msg_clean: dstsize 4 too small");
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_clean_table),
	        cmocka_unit_test(test_clean_all_printable_ascii),
	        cmocka_unit_test(test_clean_random),
	        cmocka_unit_test(test_errfmt_ring),
	        cmocka_unit_test(test_errfmt_nested_and_long),
	        cmocka_unit_test(test_errfmt_per_thread),
	        cmocka_unit_test(test_log_lines),
	        cmocka_unit_test(test_verbose_flag),
	        cmocka_unit_test(test_facility),
	        cmocka_unit_test(test_fatal_and_panic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
