/*
 * test_msevent - unit tests for lib/msevent (the event model and its wire codec, v1).
 *
 * Covers msevent_type_name()/msevent_type_parse() for every type and bad input;
 * msevent_parse() of valid records (every field, a details object with every value type,
 * null fields meaning absent, the null sender, offsets converted to UTC, trailing CR and
 * blanks, unknown top-level fields ignored for forward compatibility) and of every class
 * of invalid record, each returning -1 with an error text that names the problem: bad
 * JSON, trailing garbage, not an object, missing or wrong v, missing id/type/time/source/
 * recipient, none of tracking_id/queue_id/message_id, wrong JSON types, unknown type, bad
 * id characters, bad time strings, bad size, bad details (not an object, nested, array
 * value, too many keys, bad key, long value, non-finite number), NUL characters, invalid
 * UTF-8 anywhere in the record (0xff, overlong, surrogate, above U+10FFFF, truncated),
 * control characters, over-long records, nesting too deep; every length limit at its
 * maximum and one past it; failure leaving the event empty; tokener reuse after errors;
 * msevent_format() exact output and format -> parse -> format round trips preserving every
 * field; msevent_validate() on built events; the msevent_detail_* helpers.
 * Records are parsed from heap copies of exactly their length so ASan catches over-reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "mbuf.h"
#include "msevent.h"

#include "check.h"

/* json-c 0.18's strict mode refuses a raw control character in a string itself, before
   msevent looks at the field. Rejected either way. */
#if JSON_C_VERSION_NUM >= 0x001200
#define RAW_CONTROL_ERROR "bad JSON: invalid string sequence"
#else
#define RAW_CONTROL_ERROR "recipient"
#endif

static struct json_tokener *tok;

static int
setup(void **state)
{
	tok = msevent_tokener_new();
	return tok == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	json_tokener_free(tok);
	return 0;
}

/* Parse a heap copy of exactly len bytes. */
static int
parse_len(struct msevent *ev, const char *line, size_t len, const char **err)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, line, len);
	*err = NULL;
	rc = msevent_parse(ev, tok, copy, len, err);
	free(copy);
	return rc;
}

/* The event is empty, as msevent_init() leaves it. */
static int
is_empty(const struct msevent *ev)
{
	return ev->id == NULL && ev->type == MSEV_NONE && ev->time_ms == 0 && ev->source == NULL &&
	       ev->tracking_id == NULL && ev->message_id == NULL && ev->queue_id == NULL &&
	       ev->recipient == NULL && ev->orig_recipient == NULL && ev->sender == NULL &&
	       ev->sasl_user == NULL && ev->size == -1 && ev->details == NULL && ev->root == NULL;
}

/* ---- building records: a valid base with one field replaced, removed or added ---- */

struct field {
	const char *key;
	const char *json; /* the value as JSON text; NULL removes the key */
};

static const struct field base_fields[] = {
        {"v", "1"},
        {"id", "\"ev-1\""},
        {"type", "\"delivered\""},
        {"time", "\"2024-02-29T12:34:56.789Z\""},
        {"source", "\"plugin\""},
        {"queue_id", "\"4XbWyF2n3Lz7Qk\""},
        {"recipient", "\"bob@example.net\""},
};
#define NBASE (sizeof(base_fields) / sizeof(base_fields[0]))

/* The base record with overrides applied (in order); malloc'd. */
static char *
build(const struct field *over, size_t nover)
{
	struct mbuf b = MBUF_INIT;
	int first = 1;

	mbuf_putc(&b, '{');
	for (size_t i = 0; i < NBASE; i++) {
		const char *val = base_fields[i].json;
		for (size_t j = 0; j < nover; j++)
			if (strcmp(over[j].key, base_fields[i].key) == 0)
				val = over[j].json;
		if (val == NULL)
			continue;
		mbuf_printf(&b, "%s\"%s\":%s", first ? "" : ",", base_fields[i].key, val);
		first = 0;
	}
	for (size_t j = 0; j < nover; j++) {
		int in_base = 0;
		for (size_t i = 0; i < NBASE; i++)
			in_base |= strcmp(over[j].key, base_fields[i].key) == 0;
		if (!in_base && over[j].json != NULL) {
			mbuf_printf(&b, "%s\"%s\":%s", first ? "" : ",", over[j].key, over[j].json);
			first = 0;
		}
	}
	mbuf_putc(&b, '}');
	return b.data;
}

/* A JSON string of n copies of c, with quotes; malloc'd. */
static char *
jstr_rep(char c, size_t n)
{
	char *s = malloc(n + 3);

	assert_non_null(s);
	s[0] = '"';
	memset(s + 1, c, n);
	s[n + 1] = '"';
	s[n + 2] = '\0';
	return s;
}

/* ---- type names ---- */

static void
test_type_names(void **state)
{
	static const struct {
		enum msevent_type type;
		const char *name;
	} types[] = {
	        {MSEV_QUEUED, "queued"},     {MSEV_DEFERRED, "deferred"},
	        {MSEV_RELAYED, "relayed"},   {MSEV_DELIVERED, "delivered"},
	        {MSEV_BOUNCED, "bounced"},   {MSEV_EXPIRED, "expired"},
	        {MSEV_READ, "read"},         {MSEV_UNREAD, "unread"},
	        {MSEV_DELETED, "deleted"},   {MSEV_ONLINE, "online"},
	        {MSEV_OFFLINE, "offline"},   {MSEV_COPIED, "copied"},
	        {MSEV_EXPUNGED, "expunged"}, {MSEV_INBOUND, "inbound"},
	        {MSEV_REPORT, "report"},     {MSEV_MDN, "mdn"},
	};
	static const char *const bad_names[] = {"",        "none",    "QUEUED", "Read",
	                                        "queued ", " queued", "queue",  "deletedx",
	                                        "readx",   "0",       "7"};

	/* the numeric codes are stored in PostgreSQL: they must not move */
	CHECK_INT("MSEV_QUEUED", MSEV_QUEUED, 1);
	CHECK_INT("MSEV_DELETED", MSEV_DELETED, 9);
	CHECK_INT("MSEV_STATUS_MAX", MSEV_STATUS_MAX, 9);
	CHECK_INT("MSEV_COPIED", MSEV_COPIED, 12);
	CHECK_INT("MSEV_EXPUNGED", MSEV_EXPUNGED, 13);
	CHECK_INT("MSEV_INBOUND", MSEV_INBOUND, 14);
	CHECK_INT("MSEV_REPORT", MSEV_REPORT, 15);
	CHECK_INT("MSEV_MDN", MSEV_MDN, 16);
	CHECK_INT("MSEV_TYPE_MAX", MSEV_TYPE_MAX, 16);
	CHECK_INT("table covers every type", sizeof(types) / sizeof(types[0]), MSEV_TYPE_MAX);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		CHECK_INT(types[i].name, types[i].type, (int)i + 1);
		CHECK_STR(types[i].name, msevent_type_name(types[i].type), types[i].name);
		CHECK_INT(types[i].name, msevent_type_parse(types[i].name), types[i].type);
	}
	CHECK_STR("name of MSEV_NONE", msevent_type_name(MSEV_NONE), NULL);
	CHECK_STR("name of 17", msevent_type_name((enum msevent_type)17), NULL);
	CHECK_INT("report is not about a recipient", MSEV_IS_RECIPIENT(MSEV_REPORT), 0);
	CHECK_INT("inbound is not about a recipient", MSEV_IS_RECIPIENT(MSEV_INBOUND), 0);
	CHECK_INT("inbound is no status", MSEV_IS_STATUS(MSEV_INBOUND), 0);
	CHECK_INT("mdn is not about a recipient", MSEV_IS_RECIPIENT(MSEV_MDN), 0);
	CHECK_INT("copied is about a recipient", MSEV_IS_RECIPIENT(MSEV_COPIED), 1);
	CHECK_INT("expunged is about a recipient", MSEV_IS_RECIPIENT(MSEV_EXPUNGED), 1);
	CHECK_INT("copied is no status", MSEV_IS_STATUS(MSEV_COPIED), 0);
	CHECK_INT("online is not about a recipient", MSEV_IS_RECIPIENT(MSEV_ONLINE), 0);
	CHECK_STR("name of -1", msevent_type_name((enum msevent_type) - 1), NULL);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		CHECK_INT(bad_names[i], msevent_type_parse(bad_names[i]), MSEV_NONE);
	check_done();
}

/* ---- valid records ---- */

static void
test_parse_full_record(void **state)
{
	static const char line[] =
	        "{\"v\":1,\"id\":\"4a6bq2c7fd3x5w7p9n2m4k6j8h\",\"type\":\"queued\","
	        "\"time\":\"2026-11-22T10:04:05.123Z\",\"source\":\"milter\","
	        "\"tracking_id\":\"q3v7k2m9x4b6n8p2r5t7w9y3za\",\"message_id\":\"<a1@example.org>"
	        "\","
	        "\"queue_id\":\"4XbWyF2n3Lz7Qk\",\"recipient\":\"bob@example.net\","
	        "\"orig_recipient\":\"robert@example.net\",\"sender\":\"alice@example.org\","
	        "\"sasl_user\":\"alice@example.org\",\"size\":5120,"
	        "\"details\":{\"mta\":\"mx1.example.net[192.0.2.1]:25\",\"dsn\":\"2.0.0\","
	        "\"smtp_reply\":\"250 2.0.0 Ok: queued as 4XbWyF\",\"latency_ms\":1234,"
	        "\"tls\":true,\"ratio\":0.5,\"none\":null,\"mailbox\":\"INBOX/caf\xc3\xa9\"}}";
	struct msevent ev;
	const char *err;
	struct json_object *val;
	int rc = parse_len(&ev, line, sizeof(line) - 1, &err);

	if (rc != 0)
		print_error("rejected: %s\n", err);
	assert_int_equal(rc, 0);
	CHECK_STR("id", ev.id, "4a6bq2c7fd3x5w7p9n2m4k6j8h");
	CHECK_INT("type", ev.type, MSEV_QUEUED);
	CHECK_INT("time", ev.time_ms, 1795341845123LL);
	CHECK_STR("source", ev.source, "milter");
	CHECK_STR("tracking_id", ev.tracking_id, "q3v7k2m9x4b6n8p2r5t7w9y3za");
	CHECK_STR("message_id", ev.message_id, "<a1@example.org>");
	CHECK_STR("queue_id", ev.queue_id, "4XbWyF2n3Lz7Qk");
	CHECK_STR("recipient", ev.recipient, "bob@example.net");
	CHECK_STR("orig_recipient", ev.orig_recipient, "robert@example.net");
	CHECK_STR("sender", ev.sender, "alice@example.org");
	CHECK_STR("sasl_user", ev.sasl_user, "alice@example.org");
	CHECK_INT("size", ev.size, 5120);
	CHECK_INT("root kept", ev.root != NULL, 1);
	CHECK_INT("details is an object",
	          ev.details != NULL && json_object_is_type(ev.details, json_type_object), 1);
	CHECK_INT("details keys", ev.details ? json_object_object_length(ev.details) : -1, 8);
	CHECK_STR("details.mta", msevent_detail_get(&ev, "mta"), "mx1.example.net[192.0.2.1]:25");
	CHECK_STR("details.dsn", msevent_detail_get(&ev, "dsn"), "2.0.0");
	CHECK_STR("details.smtp_reply", msevent_detail_get(&ev, "smtp_reply"),
	          "250 2.0.0 Ok: queued as 4XbWyF");
	CHECK_STR("details.mailbox (UTF-8)", msevent_detail_get(&ev, "mailbox"),
	          "INBOX/caf\xc3\xa9");
	CHECK_STR("details.latency_ms is not a string", msevent_detail_get(&ev, "latency_ms"),
	          NULL);
	CHECK_STR("details.missing", msevent_detail_get(&ev, "missing"), NULL);
	CHECK_INT("details.latency_ms",
	          json_object_object_get_ex(ev.details, "latency_ms", &val)
	                  ? json_object_get_int64(val)
	                  : -1,
	          1234);
	CHECK_INT("details.tls",
	          json_object_object_get_ex(ev.details, "tls", &val) &&
	                  json_object_is_type(val, json_type_boolean) &&
	                  json_object_get_boolean(val),
	          1);
	CHECK_INT("details.ratio is a double",
	          json_object_object_get_ex(ev.details, "ratio", &val) &&
	                  json_object_is_type(val, json_type_double),
	          1);
	CHECK_INT("details.none is null",
	          json_object_object_get_ex(ev.details, "none", &val) && val == NULL, 1);
	msevent_clear(&ev);
	CHECK_INT("clear empties the event", is_empty(&ev), 1);
	check_done();
}

struct ok_case {
	const char *name;
	struct field over[3];
	const char *field; /* what to check: a field name, "size", "time", "type" or "details.K" */
	const char *want;  /* its value as text; NULL = absent */
};

static const struct ok_case ok_cases[] = {
        {"minimal record: no size", {{0}}, "size", "-1"},
        {"minimal record: no sender", {{0}}, "sender", NULL},
        {"minimal record: no details", {{0}}, "details", NULL},
        {"minimal record: queue_id", {{0}}, "queue_id", "4XbWyF2n3Lz7Qk"},
        {"minimal record: time", {{0}}, "time", "1709210096789"},
        {"null sender is empty, not absent", {{"sender", "\"\""}}, "sender", ""},
        {"null value = absent (sender)", {{"sender", "null"}}, "sender", NULL},
        {"null value = absent (size)", {{"size", "null"}}, "size", "-1"},
        {"null value = absent (details)", {{"details", "null"}}, "details", NULL},
        {"null value = absent (orig_recipient)",
         {{"orig_recipient", "null"}},
         "orig_recipient",
         NULL},
        {"tracking_id alone",
         {{"queue_id", NULL}, {"tracking_id", "\"q3v7k2m9x4b6n8p2r5t7w9y3za\""}},
         "tracking_id",
         "q3v7k2m9x4b6n8p2r5t7w9y3za"},
        {"message_id alone",
         {{"queue_id", NULL}, {"message_id", "\"<x/y@example.org>\""}},
         "message_id",
         "<x/y@example.org>"},
        {"queue_id null, message_id set",
         {{"queue_id", "null"}, {"message_id", "\"<m@x>\""}},
         "queue_id",
         NULL},
        {"size 0", {{"size", "0"}}, "size", "0"},
        {"size -0", {{"size", "-0"}}, "size", "0"},
        {"size large", {{"size", "9007199254740993"}}, "size", "9007199254740993"},
        {"size int64 max", {{"size", "9223372036854775807"}}, "size", "9223372036854775807"},
        {"time with +01:00",
         {{"time", "\"2024-02-29T13:34:56.789+01:00\""}},
         "time",
         "1709210096789"},
        {"time with -05:30 and ns",
         {{"time", "\"2024-02-29T07:04:56.789999999-05:30\""}},
         "time",
         "1709210096789"},
        {"time lower-case", {{"time", "\"2024-02-29t12:34:56.789z\""}}, "time", "1709210096789"},
        {"time before 1970", {{"time", "\"1969-12-31T23:59:59.999Z\""}}, "time", "-1"},
        {"every type: queued", {{"type", "\"queued\""}}, "type", "queued"},
        {"every type: deferred", {{"type", "\"deferred\""}}, "type", "deferred"},
        {"every type: relayed", {{"type", "\"relayed\""}}, "type", "relayed"},
        {"every type: delivered", {{"type", "\"delivered\""}}, "type", "delivered"},
        {"every type: bounced", {{"type", "\"bounced\""}}, "type", "bounced"},
        {"every type: expired", {{"type", "\"expired\""}}, "type", "expired"},
        {"every type: read", {{"type", "\"read\""}}, "type", "read"},
        {"every type: unread", {{"type", "\"unread\""}}, "type", "unread"},
        {"every type: copied", {{"type", "\"copied\""}}, "type", "copied"},
        {"every type: expunged", {{"type", "\"expunged\""}}, "type", "expunged"},
        {"an older plugin's deleted is an expunge", {{"type", "\"deleted\""}}, "type", "expunged"},
        {"id with every allowed character", {{"id", "\"AZaz09._:@+=-\""}}, "id", "AZaz09._:@+=-"},
        {"tracking_id allowed characters",
         {{"tracking_id", "\"AZaz09._-\""}},
         "tracking_id",
         "AZaz09._-"},
        {"source allowed characters",
         {{"source", "\"post-fix_2.log\""}},
         "source",
         "post-fix_2.log"},
        {"recipient with UTF-8",
         {{"recipient", "\"j\xc3\xb6rg@b\xc3\xbc"
                        "cher.example\""}},
         "recipient",
         "j\xc3\xb6rg@b\xc3\xbc"
         "cher.example"},
        {"recipient with escaped UTF-8",
         {{"recipient", "\"\\u00e9\\ud83d\\ude00@x\""}},
         "recipient",
         "\xc3\xa9\xf0\x9f\x98\x80@x"},
        {"recipient with quotes and backslash",
         {{"recipient", "\"\\\"a b\\\\c\\\"@x\""}},
         "recipient",
         "\"a b\\c\"@x"},
        {"recipient with escaped slash", {{"recipient", "\"a\\/b@x\""}}, "recipient", "a/b@x"},
        {"message_id with spaces and UTF-8",
         {{"message_id", "\"<a b \xe2\x82\xac@x>\""}},
         "message_id",
         "<a b \xe2\x82\xac@x>"},
        {"sasl_user", {{"sasl_user", "\"alice\""}}, "sasl_user", "alice"},
        {"details empty object", {{"details", "{}"}}, "details", "{}"},
        {"details string", {{"details", "{\"dsn\":\"5.1.1\"}"}}, "details.dsn", "5.1.1"},
        {"details long key", {{"details", "{\"a_B_9\":\"v\"}"}}, "details.a_B_9", "v"},
        {"unknown string field ignored", {{"future_field", "\"x\""}}, "id", "ev-1"},
        {"unknown number field ignored", {{"priority", "3.5"}}, "id", "ev-1"},
        {"unknown object field ignored", {{"extra", "{\"a\":1,\"b\":\"c\"}"}}, "id", "ev-1"},
        {"unknown array field ignored", {{"tags", "[1,\"two\",null]"}}, "id", "ev-1"},
        {"unknown null field ignored", {{"gone", "null"}}, "id", "ev-1"},
        {"unknown field with any name", {{"Odd Name!", "true"}}, "id", "ev-1"},
        {"unknown field whose value would be a bad details", {{"detail", "[1]"}}, "details", NULL},
};

/* A string field of the event by its wire name. */
static const char *
str_field(const struct msevent *ev, const char *name)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {
	        {"id", offsetof(struct msevent, id)},
	        {"source", offsetof(struct msevent, source)},
	        {"tracking_id", offsetof(struct msevent, tracking_id)},
	        {"message_id", offsetof(struct msevent, message_id)},
	        {"queue_id", offsetof(struct msevent, queue_id)},
	        {"recipient", offsetof(struct msevent, recipient)},
	        {"orig_recipient", offsetof(struct msevent, orig_recipient)},
	        {"sender", offsetof(struct msevent, sender)},
	        {"sasl_user", offsetof(struct msevent, sasl_user)},
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(f[i].name, name) == 0)
			return *(const char *const *)((const char *)ev + f[i].off);
	fail_msg("test bug: unknown field %s", name);
	return NULL;
}

static void
check_field(const char *what, const struct msevent *ev, const char *field, const char *want)
{
	char buf[64];

	if (strcmp(field, "size") == 0) {
		snprintf(buf, sizeof(buf), "%lld", (long long)ev->size);
		CHECK_STR(what, buf, want);
	} else if (strcmp(field, "time") == 0) {
		snprintf(buf, sizeof(buf), "%lld", (long long)ev->time_ms);
		CHECK_STR(what, buf, want);
	} else if (strcmp(field, "type") == 0) {
		CHECK_STR(what, msevent_type_name(ev->type), want);
	} else if (strcmp(field, "details") == 0) {
		CHECK_STR(what,
		          ev->details ? json_object_to_json_string_ext(ev->details,
		                                                       JSON_C_TO_STRING_PLAIN)
		                      : NULL,
		          want);
	} else if (strncmp(field, "details.", 8) == 0) {
		CHECK_STR(what, msevent_detail_get(ev, field + 8), want);
	} else {
		CHECK_STR(what, str_field(ev, field), want);
	}
}

static void
test_parse_valid(void **state)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		size_t nover = 0;
		struct msevent ev;
		const char *err;
		char *line;
		int rc;

		while (nover < 3 && c->over[nover].key != NULL)
			nover++;
		line = build(c->over, nover);
		rc = parse_len(&ev, line, strlen(line), &err);
		if (rc != 0)
			print_error("%s: %s rejected: %s\n", c->name, line, err);
		CHECK_INT(c->name, rc, 0);
		if (rc == 0) {
			check_field(c->name, &ev, c->field, c->want);
			msevent_clear(&ev);
		}
		free(line);
	}
	check_done();
}

/* Blanks and a CR at the end of the line are tolerated, blanks at the start too. */
static void
test_parse_whitespace(void **state)
{
	static const char *const wraps[][2] = {
	        {"", "\r"}, {"", " \t \r"}, {"  ", ""}, {"\t", "  "}, {" \r\n ", ""},
	};

	for (size_t i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
		char *rec = build(NULL, 0), *line;
		struct msevent ev;
		const char *err;
		char what[64];
		size_t n = strlen(wraps[i][0]) + strlen(rec) + strlen(wraps[i][1]) + 1;

		line = malloc(n);
		assert_non_null(line);
		snprintf(line, n, "%s%s%s", wraps[i][0], rec, wraps[i][1]);
		snprintf(what, sizeof(what), "wrapped in %zu+%zu blanks", strlen(wraps[i][0]),
		         strlen(wraps[i][1]));
		CHECK_INT(what, parse_len(&ev, line, strlen(line), &err), 0);
		if (err)
			print_error("  %s\n", err);
		msevent_clear(&ev);
		free(line);
		free(rec);
	}
	check_done();
}

/* ---- invalid records ---- */

struct bad_case {
	const char *name;
	struct field over[3];
	const char *line; /* used instead of build() when set */
	size_t len;       /* for lines with NUL bytes; 0 = strlen(line) */
	const char *want; /* substring of the error */
};

#define REC                                                                                        \
	"{\"v\":1,\"id\":\"e\",\"type\":\"read\",\"time\":\"2024-02-29T00:00:00Z\",\"source\":"    \
	"\"s\",\"queue_id\":\"Q\",\"recipient\":\"r\""

static const struct bad_case bad_cases[] = {
        /* JSON syntax */
        {"empty record", {{0}}, "", 0, "bad JSON"},
        {"blanks only", {{0}}, "   \t", 0, "bad JSON"},
        {"truncated object", {{0}}, "{\"v\":1,", 0, "bad JSON: unexpected end of record"},
        {"truncated record", {{0}}, REC, 0, "bad JSON: unexpected end of record"},
        {"missing colon", {{0}}, "{\"v\" 1}", 0, "bad JSON"},
        {"trailing comma", {{0}}, REC ",}", 0, "bad JSON"},
        {"comment", {{0}}, REC "/* c */}", 0, "bad JSON"},
        {"unquoted key", {{0}}, REC ",x:1}", 0, "bad JSON"},
        {"hex number", {{0}}, REC ",\"size\":0x10}", 0, "bad JSON"},
        {"leading zero", {{0}}, REC ",\"size\":010}", 0, "bad JSON"},
        {"upper-case literal", {{0}}, REC ",\"details\":{\"a\":TRUE}}", 0, "bad JSON"},
        {"single-quoted value", {{0}}, REC ",\"sender\":'x'}", 0, "bad JSON"},
        {"raw NUL inside a string",
         {{0}},
         REC ",\"sender\":\"a\0b\"}",
         sizeof(REC ",\"sender\":\"a\0b\"}") - 1,
         "bad JSON"},
        /* trailing garbage */
        {"trailing word", {{0}}, REC "} x", 0, "bad JSON"},
        {"two objects", {{0}}, REC "}{}", 0, "bad JSON"},
        {"trailing NUL", {{0}}, REC "}\0", sizeof(REC "}\0") - 1, "trailing characters"},
        {"trailing newline then text", {{0}}, REC "}\nx", 0, "bad JSON"},
        /* not an object */
        {"array", {{0}}, "[1,2]", 0, "expected a JSON object"},
        {"string", {{0}}, "\"queued\"", 0, "expected a JSON object"},
        {"number", {{0}}, "42", 0, "JSON"},
        {"true", {{0}}, "true", 0, "JSON"},
        {"null", {{0}}, "null", 0, "JSON"},
        /* version */
        {"no v", {{"v", NULL}}, NULL, 0, "missing field: v (protocol version)"},
        {"v as a string", {{"v", "\"1\""}}, NULL, 0, "missing field: v"},
        {"v as a float", {{"v", "1.0"}}, NULL, 0, "missing field: v"},
        {"v null", {{"v", "null"}}, NULL, 0, "missing field: v"},
        {"v 2", {{"v", "2"}}, NULL, 0, "unsupported protocol version 2 (this server speaks 1)"},
        {"v 0", {{"v", "0"}}, NULL, 0, "unsupported protocol version 0"},
        {"v -1", {{"v", "-1"}}, NULL, 0, "unsupported protocol version -1"},
        {"v 2^32+1", {{"v", "4294967297"}}, NULL, 0, "unsupported protocol version 4294967297"},
        /* required fields */
        {"no id", {{"id", NULL}}, NULL, 0, "missing field: id"},
        {"id null", {{"id", "null"}}, NULL, 0, "missing field: id"},
        {"no type", {{"type", NULL}}, NULL, 0, "missing field: type"},
        {"type null", {{"type", "null"}}, NULL, 0, "missing field: type"},
        {"no time", {{"time", NULL}}, NULL, 0, "missing field: time"},
        {"no source", {{"source", NULL}}, NULL, 0, "missing field: source"},
        {"no recipient", {{"recipient", NULL}}, NULL, 0, "missing field: recipient"},
        {"empty recipient", {{"recipient", "\"\""}}, NULL, 0, "missing field: recipient"},
        {"none of the three ids",
         {{"queue_id", NULL}},
         NULL,
         0,
         "missing field: one of tracking_id, queue_id, message_id"},
        {"all three ids null",
         {{"queue_id", "null"}, {"tracking_id", "null"}, {"message_id", "null"}},
         NULL,
         0,
         "missing field: one of tracking_id, queue_id, message_id"},
        /* JSON types */
        {"id a number", {{"id", "5"}}, NULL, 0, "id: expected a string"},
        {"type a number", {{"type", "7"}}, NULL, 0, "type: expected a string"},
        {"time a number", {{"time", "1709164800000"}}, NULL, 0, "time: expected a string"},
        {"source an object", {{"source", "{}"}}, NULL, 0, "source: expected a string"},
        {"recipient an array", {{"recipient", "[\"a\"]"}}, NULL, 0, "recipient: expected a string"},
        {"sender a boolean", {{"sender", "false"}}, NULL, 0, "sender: expected a string"},
        {"queue_id a number", {{"queue_id", "123"}}, NULL, 0, "queue_id: expected a string"},
        /* type */
        {"unknown type", {{"type", "\"opened\""}}, NULL, 0, "unknown event type \"opened\""},
        {"type in upper case", {{"type", "\"QUEUED\""}}, NULL, 0, "unknown event type \"QUEUED\""},
        {"type empty", {{"type", "\"\""}}, NULL, 0, "unknown event type \"\""},
        {"type none", {{"type", "\"none\""}}, NULL, 0, "unknown event type \"none\""},
        {"type with a control character",
         {{"type", "\"\\u001b[2Jx\""}},
         NULL,
         0,
         "unknown event type \"?[2Jx\""},
        /* id and the token fields */
        {"id empty",
         {{"id", "\"\""}},
         NULL,
         0,
         "id: expected 1-64 characters of [A-Za-z0-9._:@+=-]"},
        {"id with a space", {{"id", "\"a b\""}}, NULL, 0, "id: expected 1-64 characters"},
        {"id with a slash", {{"id", "\"a/b\""}}, NULL, 0, "id: expected 1-64 characters"},
        {"id with a quote", {{"id", "\"a\\\"b\""}}, NULL, 0, "id: expected 1-64 characters"},
        {"id with UTF-8", {{"id", "\"\xc3\xa9\""}}, NULL, 0, "id: expected 1-64 characters"},
        {"id with a comma", {{"id", "\"a,b\""}}, NULL, 0, "id: expected 1-64 characters"},
        {"source with ':'", {{"source", "\"a:b\""}}, NULL, 0, "source: expected 1-32 characters"},
        {"source empty", {{"source", "\"\""}}, NULL, 0, "source: expected 1-32 characters"},
        {"tracking_id with '@'",
         {{"tracking_id", "\"a@b\""}},
         NULL,
         0,
         "tracking_id: expected 1-64 characters of [A-Za-z0-9._-]"},
        {"tracking_id empty", {{"tracking_id", "\"\""}}, NULL, 0, "tracking_id: expected"},
        {"queue_id with '-'",
         {{"queue_id", "\"4Xb-Wy\""}},
         NULL,
         0,
         "queue_id: expected 1-32 letters and digits"},
        {"queue_id empty", {{"queue_id", "\"\""}}, NULL, 0, "queue_id: expected"},
        {"message_id empty",
         {{"message_id", "\"\""}},
         NULL,
         0,
         "message_id: expected 1-998 characters without control characters"},
        /* time */
        {"time Feb 30",
         {{"time", "\"2024-02-30T00:00:00Z\""}},
         NULL,
         0,
         "time: date or time field out of range"},
        {"time Feb 29 2023",
         {{"time", "\"2023-02-29T00:00:00Z\""}},
         NULL,
         0,
         "time: date or time field out of range"},
        {"time hour 24", {{"time", "\"2024-02-29T24:00:00Z\""}}, NULL, 0, "time: date or time"},
        {"time without zone",
         {{"time", "\"2024-02-29T12:00:00\""}},
         NULL,
         0,
         "time: missing time zone"},
        {"time with a space",
         {{"time", "\"2024-02-29 12:00:00Z\""}},
         NULL,
         0,
         "time: not an RFC 3339 date-time"},
        {"time empty", {{"time", "\"\""}}, NULL, 0, "time: not an RFC 3339"},
        {"time as words", {{"time", "\"yesterday\""}}, NULL, 0, "time: not an RFC 3339"},
        {"time with trailing blank",
         {{"time", "\"2024-02-29T12:00:00Z \""}},
         NULL,
         0,
         "time: trailing characters"},
        {"time with 10-digit fraction",
         {{"time", "\"2024-02-29T12:00:00.0123456789Z\""}},
         NULL,
         0,
         "time: bad fraction"},
        {"time with a bad offset",
         {{"time", "\"2024-02-29T12:00:00+0100\""}},
         NULL,
         0,
         "time: bad UTC offset"},
        /* size */
        {"size -1", {{"size", "-1"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size -5000", {{"size", "-5000"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size 1.5", {{"size", "1.5"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size 1.0", {{"size", "1.0"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size 1e3", {{"size", "1e3"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size a string", {{"size", "\"5120\""}}, NULL, 0, "size: expected a non-negative integer"},
        {"size true", {{"size", "true"}}, NULL, 0, "size: expected a non-negative integer"},
        {"size an object", {{"size", "{}"}}, NULL, 0, "size: expected a non-negative integer"},
        /* details */
        {"details a string", {{"details", "\"mta=x\""}}, NULL, 0, "details: expected an object"},
        {"details an array", {{"details", "[1,2]"}}, NULL, 0, "details: expected an object"},
        {"details a number", {{"details", "5"}}, NULL, 0, "details: expected an object"},
        {"details true", {{"details", "true"}}, NULL, 0, "details: expected an object"},
        {"details nested object", {{"details", "{\"a\":{\"b\":1}}"}}, NULL, 0, "nesting too deep"},
        {"details array value", {{"details", "{\"a\":[1]}"}}, NULL, 0, "nesting too deep"},
        {"details empty array value",
         {{"details", "{\"a\":[]}"}},
         NULL,
         0,
         "details.a: expected a string, number, boolean or null"},
        {"details empty object value", {{"details", "{\"a\":{}}"}}, NULL, 0, "details.a: expected"},
        {"details key with '-'",
         {{"details", "{\"a-b\":1}"}},
         NULL,
         0,
         "details: keys must be 1-64 characters of [A-Za-z0-9_]"},
        {"details key with '.'", {{"details", "{\"a.b\":1}"}}, NULL, 0, "details: keys must be"},
        {"details key empty", {{"details", "{\"\":1}"}}, NULL, 0, "details: keys must be"},
        {"details key with a space",
         {{"details", "{\"a b\":1}"}},
         NULL,
         0,
         "details: keys must be"},
        {"details key with UTF-8",
         {{"details", "{\"\xc3\xa9\":1}"}},
         NULL,
         0,
         "details: keys must be"},
        {"details value with NUL",
         {{"details", "{\"k\":\"a\\u0000b\"}"}},
         NULL,
         0,
         "details.k: string too long or with a NUL"},
        {"details value NaN",
         {{"details", "{\"ratio\":NaN}"}},
         NULL,
         0,
         "details.ratio: expected a finite number"},
        {"details value Infinity",
         {{"details", "{\"ratio\":Infinity}"}},
         NULL,
         0,
         "details.ratio: expected a finite number"},
        {"details value -Infinity",
         {{"details", "{\"ratio\":-Infinity}"}},
         NULL,
         0,
         "details.ratio: expected a finite number"},
        /* NUL characters */
        {"NUL in recipient",
         {{"recipient", "\"bob\\u0000@evil\""}},
         NULL,
         0,
         "recipient: NUL character in string"},
        {"NUL in id", {{"id", "\"a\\u0000\""}}, NULL, 0, "id: NUL character in string"},
        {"NUL alone in message_id",
         {{"message_id", "\"\\u0000\""}},
         NULL,
         0,
         "message_id: NUL character in string"},
        {"NUL in type", {{"type", "\"read\\u0000x\""}}, NULL, 0, "type: NUL character in string"},
        {"NUL in time",
         {{"time", "\"2024-02-29T00:00:00Z\\u0000\""}},
         NULL,
         0,
         "time: NUL character in string"},
        {"NUL in sender", {{"sender", "\"\\u0000\""}}, NULL, 0, "sender: NUL character in string"},
        /* invalid UTF-8, wherever it is */
        {"raw 0xff in recipient", {{"recipient", "\"bob\xff@x\""}}, NULL, 0, "UTF-8"},
        {"raw 0xfe in sender", {{"sender", "\"\xfe\""}}, NULL, 0, "UTF-8"},
        {"overlong c0 af in recipient",
         {{"recipient", "\"a\xc0\xaf"
                        "b\""}},
         NULL,
         0,
         "UTF-8"},
        {"overlong e0 80 af in message_id",
         {{"message_id", "\"<\xe0\x80\xaf>\""}},
         NULL,
         0,
         "UTF-8"},
        {"surrogate ed a0 80 in recipient",
         {{"recipient", "\"a\xed\xa0\x80"
                        "b\""}},
         NULL,
         0,
         "UTF-8"},
        {"above U+10FFFF in sender", {{"sender", "\"\xf4\x90\x80\x80\""}}, NULL, 0, "UTF-8"},
        {"lead byte f5 in sasl_user", {{"sasl_user", "\"\xf5\x80\x80\x80\""}}, NULL, 0, "UTF-8"},
        {"truncated sequence", {{"recipient", "\"a\xe2\x82\""}}, NULL, 0, "UTF-8"},
        {"stray continuation", {{"recipient", "\"a\x80\""}}, NULL, 0, "UTF-8"},
        {"bad UTF-8 in a details value", {{"details", "{\"mta\":\"\xc0\xaf\"}"}}, NULL, 0, "UTF-8"},
        {"bad UTF-8 in a details key", {{"details", "{\"\xed\xa0\x80\":1}"}}, NULL, 0, "UTF-8"},
        {"bad UTF-8 in an ignored field", {{"future", "\"\xff\""}}, NULL, 0, "UTF-8"},
        {"bad UTF-8 in a key", {{"\xc0\xae", "1"}}, NULL, 0, "UTF-8"},
        /* control characters */
        {"escaped \\u0001 in recipient",
         {{"recipient", "\"a\\u0001b\""}},
         NULL,
         0,
         "recipient: expected at most 512 characters without control characters"},
        {"raw 0x01 in recipient",
         {{"recipient", "\"a\x01"
                        "b\""}},
         NULL,
         0,
         RAW_CONTROL_ERROR},
        {"escaped tab in recipient",
         {{"recipient", "\"a\\tb\""}},
         NULL,
         0,
         "recipient: expected at most 512"},
        {"escaped newline in recipient",
         {{"recipient", "\"a\\nb\""}},
         NULL,
         0,
         "recipient: expected at most 512"},
        {"CR in recipient", {{"recipient", "\"a\\r\""}}, NULL, 0, "recipient: expected"},
        {"DEL in recipient", {{"recipient", "\"a\x7f\""}}, NULL, 0, "recipient: expected"},
        {"ESC in message_id",
         {{"message_id", "\"<a\\u001b@x>\""}},
         NULL,
         0,
         "message_id: expected 1-998 characters without control characters"},
        {"tab in message_id", {{"message_id", "\"<a\\tb>\""}}, NULL, 0, "message_id: expected"},
        {"newline in sender", {{"sender", "\"a\\n\""}}, NULL, 0, "sender: expected at most 512"},
        {"control in orig_recipient",
         {{"orig_recipient", "\"\\u0002\""}},
         NULL,
         0,
         "orig_recipient: expected"},
        {"control in sasl_user", {{"sasl_user", "\"\\u001f\""}}, NULL, 0, "sasl_user: expected"},
        /* nesting */
        {"deep arrays", {{0}}, "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]", 0, "nesting too deep"},
        {"deep objects", {{0}}, "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", 0, "nesting too deep"},
        {"ignored field nested too deep",
         {{"extra", "{\"a\":{\"b\":1}}"}},
         NULL,
         0,
         "nesting too deep"},
};

static void
test_parse_invalid(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *line = NULL;
		size_t nover = 0, len;
		struct msevent ev;
		const char *err;
		int rc;

		if (c->line != NULL) {
			line = malloc((c->len ? c->len : strlen(c->line)) + 1);
			assert_non_null(line);
			len = c->len ? c->len : strlen(c->line);
			memcpy(line, c->line, len);
		} else {
			while (nover < 3 && c->over[nover].key != NULL)
				nover++;
			line = build(c->over, nover);
			len = strlen(line);
		}
		memset(&ev, 0x5a, sizeof(ev)); /* garbage in: parse must initialize */
		rc = parse_len(&ev, line, len, &err);
		CHECK_INT(c->name, rc, -1);
		if (rc == 0) {
			print_error("  accepted: %.*s\n", (int)len, line);
			msevent_clear(&ev);
		} else {
			CHECK_HAS(c->name, err, c->want);
			CHECK_INT(c->name, err != NULL && strchr(err, '\n') == NULL, 1);
			CHECK_INT("a failed parse leaves the event empty", is_empty(&ev), 1);
		}
		free(line);
	}
	check_done();
}

/* Every length limit: at the limit accepted, one past it rejected. */
static void
test_length_limits(void **state)
{
	static const struct {
		const char *key;
		char c;
		size_t max;
		const char *want;
	} limits[] = {
	        {"id", 'a', 64, "id: expected 1-64 characters"},
	        {"source", 's', 32, "source: expected 1-32 characters"},
	        {"tracking_id", 't', 64, "tracking_id: expected 1-64 characters"},
	        {"queue_id", 'Q', 32, "queue_id: expected 1-32 letters and digits"},
	        {"message_id", 'm', 998, "message_id: expected 1-998 characters"},
	        {"recipient", 'r', 512, "recipient: expected at most 512 characters"},
	        {"orig_recipient", 'o', 512, "orig_recipient: expected at most 512 characters"},
	        {"sender", 'f', 512, "sender: expected at most 512 characters"},
	        {"sasl_user", 'u', 512, "sasl_user: expected at most 512 characters"},
	};

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		for (size_t extra = 0; extra <= 1; extra++) {
			char *val = jstr_rep(limits[i].c, limits[i].max + extra);
			struct field over[1] = {{limits[i].key, val}};
			char *line = build(over, 1), what[64];
			struct msevent ev;
			const char *err;
			int rc = parse_len(&ev, line, strlen(line), &err);

			snprintf(what, sizeof(what), "%s of %zu characters", limits[i].key,
			         limits[i].max + extra);
			CHECK_INT(what, rc, extra ? -1 : 0);
			if (rc == 0) {
				const char *got = str_field(&ev, limits[i].key);
				CHECK_INT(what, got ? strlen(got) : 0, limits[i].max);
				msevent_clear(&ev);
			} else if (extra) {
				CHECK_HAS(what, err, limits[i].want);
			} else {
				print_error("  rejected: %s\n", err);
			}
			free(line);
			free(val);
		}
	check_done();
}

static void
test_details_limits(void **state)
{
	struct mbuf d = MBUF_INIT;
	struct msevent ev;
	const char *err;

	/* 32 keys are fine, 33 are not */
	for (int nkeys = 32; nkeys <= 33; nkeys++) {
		char what[32];
		char *line;

		mbuf_reset(&d);
		mbuf_putc(&d, '{');
		for (int k = 0; k < nkeys; k++)
			mbuf_printf(&d, "%s\"k%d\":%d", k ? "," : "", k, k);
		mbuf_putc(&d, '}');
		{
			struct field over[1] = {{"details", mbuf_str(&d)}};
			line = build(over, 1);
		}
		snprintf(what, sizeof(what), "%d details keys", nkeys);
		CHECK_INT(what, parse_len(&ev, line, strlen(line), &err), nkeys == 32 ? 0 : -1);
		if (nkeys == 32) {
			CHECK_INT(what, ev.details ? json_object_object_length(ev.details) : 0, 32);
			msevent_clear(&ev);
		} else
			CHECK_HAS(what, err, "details: more than 32 keys");
		free(line);
	}
	/* a key of 64 characters is fine, 65 is not */
	for (size_t klen = 64; klen <= 65; klen++) {
		char *key = jstr_rep('K', klen), what[32], *line;

		mbuf_reset(&d);
		mbuf_printf(&d, "{%s:1}", key);
		{
			struct field over[1] = {{"details", mbuf_str(&d)}};
			line = build(over, 1);
		}
		snprintf(what, sizeof(what), "details key of %zu", klen);
		CHECK_INT(what, parse_len(&ev, line, strlen(line), &err), klen == 64 ? 0 : -1);
		if (klen == 64)
			msevent_clear(&ev);
		else
			CHECK_HAS(what, err,
			          "details: keys must be 1-64 characters of [A-Za-z0-9_]");
		free(line);
		free(key);
	}
	/* a string value of 2048 bytes is fine, 2049 is not (bytes, not characters) */
	for (size_t vlen = 2048; vlen <= 2049; vlen++) {
		char *val = jstr_rep('v', vlen), what[32], *line;

		mbuf_reset(&d);
		mbuf_printf(&d, "{\"smtp_reply\":%s}", val);
		{
			struct field over[1] = {{"details", mbuf_str(&d)}};
			line = build(over, 1);
		}
		snprintf(what, sizeof(what), "details value of %zu", vlen);
		CHECK_INT(what, parse_len(&ev, line, strlen(line), &err), vlen == 2048 ? 0 : -1);
		if (vlen == 2048) {
			CHECK_INT(what, strlen(msevent_detail_get(&ev, "smtp_reply")), 2048);
			msevent_clear(&ev);
		} else
			CHECK_HAS(what, err, "details.smtp_reply: string too long or with a NUL");
		free(line);
		free(val);
	}
	/* a report's raw text may fill the record; raw of another event type, or another key
	   of a report, keeps the 2048-byte limit */
	{
		static const struct {
			const char *type, *key;
			int want;
		} raws[] = {
		        {"\"report\"", "raw", 0},
		        {"\"report\"", "smtp_reply", -1},
		        {"\"delivered\"", "raw", -1},
		};
		char *val = jstr_rep('r', 12000);

		for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
			char *line;

			mbuf_reset(&d);
			mbuf_printf(&d, "{\"%s\":%s}", raws[i].key, val);
			{
				struct field over[2] = {{"details", mbuf_str(&d)},
				                        {"type", raws[i].type}};
				line = build(over, 2);
			}
			CHECK_INT(raws[i].key, parse_len(&ev, line, strlen(line), &err),
			          raws[i].want);
			if (raws[i].want == 0) {
				CHECK_INT("raw kept whole", strlen(msevent_detail_get(&ev, "raw")),
				          12000);
				msevent_clear(&ev);
			}
			free(line);
		}
		free(val);
	}
	{
		/* 683 euro signs: 2049 bytes in 683 characters */
		struct mbuf v = MBUF_INIT;
		char *line;

		mbuf_puts(&v, "{\"smtp_reply\":\"");
		for (int i = 0; i < 683; i++)
			mbuf_puts(&v, "\xe2\x82\xac");
		mbuf_puts(&v, "\"}");
		{
			struct field over[1] = {{"details", mbuf_str(&v)}};
			line = build(over, 1);
		}
		CHECK_INT("2049 bytes of UTF-8", parse_len(&ev, line, strlen(line), &err), -1);
		CHECK_HAS("2049 bytes of UTF-8", err, "string too long");
		free(line);
		mbuf_free(&v);
	}
	mbuf_free(&d);
	check_done();
}

/* A record is at most MSEVENT_RECORD_MAX bytes with its newline: len + 1 <= MAX. */
static void
test_record_max(void **state)
{
	static const struct {
		const char *name;
		size_t len; /* record length without the newline */
		int want_rc;
	} cases[] = {
	        {"1000 bytes", 1000, 0},
	        {"MSEVENT_RECORD_MAX - 1 bytes (MAX with the newline)", MSEVENT_RECORD_MAX - 1, 0},
	        {"MSEVENT_RECORD_MAX bytes (one over with the newline)", MSEVENT_RECORD_MAX, -1},
	        {"MSEVENT_RECORD_MAX + 1 bytes", MSEVENT_RECORD_MAX + 1, -1},
	        {"1 MiB", 1 << 20, -1},
	};
	char *rec = build(NULL, 0);
	size_t reclen = strlen(rec);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* pad with an unknown field: {...,"pad":"xxx"} */
		size_t overhead = reclen + strlen(",\"pad\":\"\"");
		size_t padlen = cases[i].len - overhead;
		char *line = malloc(cases[i].len + 1);
		struct msevent ev;
		const char *err;
		int rc;

		assert_non_null(line);
		memcpy(line, rec, reclen - 1);
		memcpy(line + reclen - 1, ",\"pad\":\"", 8);
		memset(line + reclen - 1 + 8, 'x', padlen);
		memcpy(line + reclen - 1 + 8 + padlen, "\"}", 2);
		assert_int_equal(reclen - 1 + 8 + padlen + 2, cases[i].len);
		rc = parse_len(&ev, line, cases[i].len, &err);
		CHECK_INT(cases[i].name, rc, cases[i].want_rc);
		if (rc == 0)
			msevent_clear(&ev);
		else
			CHECK_HAS(cases[i].name, err, "record too long");
		free(line);
	}
	free(rec);
	check_done();
}

/* One tokener serves many records: errors, even mid-object, do not leak into the next. */
static void
test_tokener_reuse(void **state)
{
	static const char *const seq[] = {
	        "{\"v\":1,\"id\":\"a\",", /* incomplete */
	        NULL,                     /* a good record */
	        "[[[[[[",                 /* too deep */
	        NULL,
	        "{\"v\":1,\"id\":\"a\xff", /* bad UTF-8 mid-string */
	        NULL,
	        "{\"v\":1,\"id\":\"unterminated", /* unterminated string */
	        NULL,
	};
	char *good = build(NULL, 0);

	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
			struct msevent ev;
			const char *err;
			const char *line = seq[i] ? seq[i] : good;
			int rc = parse_len(&ev, line, strlen(line), &err);
			char what[48];

			snprintf(what, sizeof(what), "round %d record %zu", round, i);
			CHECK_INT(what, rc, seq[i] ? -1 : 0);
			if (rc == 0) {
				CHECK_STR(what, ev.id, "ev-1");
				msevent_clear(&ev);
			}
		}
	free(good);
	check_done();
}

/* ---- format ---- */

static void
test_format_exact(void **state)
{
	struct msevent ev;
	struct mbuf out = MBUF_INIT;

	msevent_init(&ev);
	CHECK_INT("init: size -1", ev.size, -1);
	CHECK_INT("init: empty", is_empty(&ev), 1);
	ev.id = "e1";
	ev.type = MSEV_QUEUED;
	ev.time_ms = 1795341845123LL;
	ev.source = "milter";
	ev.tracking_id = "t";
	ev.message_id = "<a/b@x>";
	ev.recipient = "b\xc3\xa9@x\"q\\";
	ev.sender = "";
	ev.size = 5120;
	msevent_detail_str(&ev, "mta", "mx/1");
	msevent_detail_int(&ev, "latency_ms", 42);
	msevent_format(&ev, &out);
	CHECK_STR(
	        "full", mbuf_str(&out),
	        "{\"v\":1,\"id\":\"e1\",\"type\":\"queued\",\"time\":\"2026-11-22T10:04:05.123Z\","
	        "\"source\":\"milter\",\"tracking_id\":\"t\",\"message_id\":\"<a/b@x>\","
	        "\"recipient\":\"b\xc3\xa9@x\\\"q\\\\\",\"sender\":\"\",\"size\":5120,"
	        "\"details\":{\"mta\":\"mx/1\",\"latency_ms\":42}}\n");
	msevent_clear(&ev);

	/* absent fields, size -1 and no details are left out; the newline is always there */
	mbuf_reset(&out);
	ev.id = "e2";
	ev.type = MSEV_DELETED;
	ev.time_ms = 0;
	ev.source = "plugin";
	ev.queue_id = "ABC";
	ev.recipient = "bob";
	msevent_format(&ev, &out);
	CHECK_STR(
	        "minimal", mbuf_str(&out),
	        "{\"v\":1,\"id\":\"e2\",\"type\":\"deleted\",\"time\":\"1970-01-01T00:00:00.000Z\","
	        "\"source\":\"plugin\",\"queue_id\":\"ABC\",\"recipient\":\"bob\"}\n");

	/* format appends */
	msevent_format(&ev, &out);
	CHECK_INT("appends", out.len, 2 * strlen(strchr(mbuf_str(&out), '\n') + 1));
	msevent_clear(&ev);
	mbuf_free(&out);
	check_done();
}

static void
compare_events(const char *what, const struct msevent *a, const struct msevent *b)
{
	CHECK_STR(what, b->id, a->id);
	CHECK_INT(what, b->type, a->type);
	CHECK_INT(what, b->time_ms, a->time_ms);
	CHECK_STR(what, b->source, a->source);
	CHECK_STR(what, b->tracking_id, a->tracking_id);
	CHECK_STR(what, b->message_id, a->message_id);
	CHECK_STR(what, b->queue_id, a->queue_id);
	CHECK_STR(what, b->recipient, a->recipient);
	CHECK_STR(what, b->orig_recipient, a->orig_recipient);
	CHECK_STR(what, b->sender, a->sender);
	CHECK_STR(what, b->sasl_user, a->sasl_user);
	CHECK_INT(what, b->size, a->size);
	CHECK_INT(what, (a->details == NULL) == (b->details == NULL), 1);
	if (a->details && b->details)
		CHECK_INT(what, json_object_equal(a->details, b->details), 1);
}

static void
test_round_trip(void **state)
{
	static const struct {
		const char *name;
		enum msevent_type type;
		int64_t time_ms;
		const char *tracking_id, *message_id, *queue_id, *recipient, *orig, *sender, *sasl;
		int64_t size;
		int details;
	} cases[] = {
	        {"queued, everything", MSEV_QUEUED, 1795341845123LL, "q3v7k2m9x4b6n8p2r5t7w9y3za",
	         "<a1@example.org>", "4XbWyF2n3Lz7Qk", "bob@example.net", "robert@example.net",
	         "alice@example.org", "alice", 5120, 1},
	        {"deferred, queue id only", MSEV_DEFERRED, 1709164800000LL, NULL, NULL, "ABCDEF",
	         "x@y", NULL, NULL, NULL, -1, 1},
	        {"relayed, null sender", MSEV_RELAYED, 1, "t", NULL, NULL, "x@y", NULL, "", NULL, 0,
	         0},
	        {"delivered, message id only", MSEV_DELIVERED, 999, NULL, "<\"odd\\id\"/x@y>", NULL,
	         "user", NULL, NULL, NULL, -1, 0},
	        {"bounced, UTF-8", MSEV_BOUNCED, 1735689599999LL, "t", NULL, NULL,
	         "j\xc3\xb6rg@b\xc3\xbc"
	         "cher.example",
	         NULL, "\xf0\x9f\x98\x80@x", NULL, 1, 1},
	        {"expired, before the epoch", MSEV_EXPIRED, -1, "t", NULL, NULL, "r", NULL, NULL,
	         NULL, INT64_MAX, 0},
	        {"read", MSEV_READ, 253402300799999LL, "t", NULL, NULL, "r", NULL, NULL, NULL, -1,
	         1},
	        {"unread", MSEV_UNREAD, 2147483648000LL, "t", NULL, NULL, "r", NULL, NULL, NULL, -1,
	         0},
	        {"expunged", MSEV_EXPUNGED, 1709210096789LL, "t", NULL, NULL, "r", NULL, NULL, NULL,
	         -1, 1},
	        {"copied", MSEV_COPIED, 1709210096789LL, "t", NULL, NULL, "r", NULL, NULL, NULL, -1,
	         0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msevent a, b, c;
		struct mbuf out = MBUF_INIT, out2 = MBUF_INIT;
		const char *err = NULL;
		int rc;

		msevent_init(&a);
		a.id = "id-1";
		a.type = cases[i].type;
		a.time_ms = cases[i].time_ms;
		a.source = "test";
		a.tracking_id = cases[i].tracking_id;
		a.message_id = cases[i].message_id;
		a.queue_id = cases[i].queue_id;
		a.recipient = cases[i].recipient;
		a.orig_recipient = cases[i].orig;
		a.sender = cases[i].sender;
		a.sasl_user = cases[i].sasl;
		a.size = cases[i].size;
		if (cases[i].details) {
			msevent_detail_str(&a, "mta", "mx.example.net[192.0.2.1]:25");
			msevent_detail_str(&a, "dsn", "4.4.1");
			msevent_detail_str(&a, "smtp_reply", "451 4.4.1 \"try\" again \\ later");
			msevent_detail_int(&a, "latency_ms", 123456789012LL);
			msevent_detail_int(&a, "neg", -5);
			msevent_detail_str(&a, "empty", "");
		}
		CHECK_INT(cases[i].name, msevent_validate(&a, &err), 0);
		if (err)
			print_error("  validate: %s\n", err);
		msevent_format(&a, &out);
		CHECK_INT(cases[i].name, out.len > 0 && out.data[out.len - 1] == '\n', 1);
		CHECK_INT(cases[i].name, memchr(out.data, '\n', out.len) == out.data + out.len - 1,
		          1);
		rc = parse_len(&b, out.data, out.len - 1, &err);
		if (rc != 0)
			print_error("%s: %s rejected: %s\n", cases[i].name, mbuf_str(&out), err);
		CHECK_INT(cases[i].name, rc, 0);
		if (rc == 0) {
			compare_events(cases[i].name, &a, &b);
			/* formatting the parsed event gives the same bytes */
			msevent_format(&b, &out2);
			CHECK_STR(cases[i].name, mbuf_str(&out2), mbuf_str(&out));
			/* and with the CR of a CRLF line */
			mbuf_truncate(&out2, out2.len - 1);
			mbuf_puts(&out2, "\r");
			CHECK_INT(cases[i].name, parse_len(&c, out2.data, out2.len, &err), 0);
			compare_events(cases[i].name, &a, &c);
			msevent_clear(&c);
			msevent_clear(&b);
		}
		msevent_clear(&a);
		mbuf_free(&out);
		mbuf_free(&out2);
	}
	check_done();
}

/* ---- validate and the details helpers ---- */

static void
test_validate_built(void **state)
{
	static const struct {
		const char *name;
		int what; /* which field to break */
		const char *want;
	} cases[] = {
	        {"complete", 0, NULL},
	        {"no id", 1, "missing field: id"},
	        {"type MSEV_NONE", 2, "missing or unknown event type"},
	        {"type 42", 3, "missing or unknown event type"},
	        {"no source", 4, "missing field: source"},
	        {"no recipient", 5, "missing field: recipient"},
	        {"empty recipient", 6, "missing field: recipient"},
	        {"none of the three ids", 7,
	         "missing field: one of tracking_id, queue_id, message_id"},
	        {"size -2", 8, "size: must not be negative"},
	        {"details an array", 9, "details: expected an object"},
	        {"bad id characters", 10, "id: expected 1-64 characters"},
	        {"details bad key", 11, "details: keys must be"},
	        {"size -1 is unknown, fine", 12, NULL},
	        {"sender empty is fine", 13, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msevent ev;
		const char *err = NULL;
		int rc;

		msevent_init(&ev);
		ev.id = "e";
		ev.type = MSEV_READ;
		ev.time_ms = 1709164800000LL;
		ev.source = "api";
		ev.tracking_id = "t";
		ev.recipient = "r@x";
		switch (cases[i].what) {
		case 1:
			ev.id = NULL;
			break;
		case 2:
			ev.type = MSEV_NONE;
			break;
		case 3:
			ev.type = (enum msevent_type)42;
			break;
		case 4:
			ev.source = NULL;
			break;
		case 5:
			ev.recipient = NULL;
			break;
		case 6:
			ev.recipient = "";
			break;
		case 7:
			ev.tracking_id = NULL;
			break;
		case 8:
			ev.size = -2;
			break;
		case 9:
			ev.details = json_object_new_array();
			break;
		case 10:
			ev.id = "a b";
			break;
		case 11:
			msevent_detail_str(&ev, "bad-key", "v");
			break;
		case 12:
			ev.size = -1;
			break;
		case 13:
			ev.sender = "";
			break;
		}
		rc = msevent_validate(&ev, &err);
		CHECK_INT(cases[i].name, rc, cases[i].want ? -1 : 0);
		if (cases[i].want && rc != 0)
			CHECK_HAS(cases[i].name, err, cases[i].want);
		msevent_clear(&ev);
	}
	check_done();
}

static void
test_detail_helpers(void **state)
{
	struct msevent ev;
	struct json_object *val;

	msevent_init(&ev);
	CHECK_STR("no details yet", msevent_detail_get(&ev, "mta"), NULL);
	msevent_detail_str(&ev, "mta", "mx1");
	CHECK_INT("details created", ev.details != NULL, 1);
	CHECK_STR("get", msevent_detail_get(&ev, "mta"), "mx1");
	msevent_detail_str(&ev, "mta", "mx2");
	CHECK_STR("replaced", msevent_detail_get(&ev, "mta"), "mx2");
	CHECK_INT("replacing keeps one key", json_object_object_length(ev.details), 1);
	msevent_detail_int(&ev, "latency_ms", INT64_MAX);
	CHECK_STR("an int is not a string", msevent_detail_get(&ev, "latency_ms"), NULL);
	CHECK_INT("int stored",
	          json_object_object_get_ex(ev.details, "latency_ms", &val) &&
	                  json_object_is_type(val, json_type_int) &&
	                  json_object_get_int64(val) == INT64_MAX,
	          1);
	msevent_detail_int(&ev, "mta", -7);
	CHECK_STR("a string replaced by an int", msevent_detail_get(&ev, "mta"), NULL);
	msevent_detail_str(&ev, "empty", "");
	CHECK_STR("empty string", msevent_detail_get(&ev, "empty"), "");
	CHECK_STR("missing key", msevent_detail_get(&ev, "nope"), NULL);
	CHECK_INT("keys", json_object_object_length(ev.details), 3);
	msevent_clear(&ev);
	CHECK_INT("clear drops the details", ev.details == NULL, 1);
	CHECK_STR("after clear", msevent_detail_get(&ev, "mta"), NULL);
	msevent_clear(&ev); /* clearing twice is harmless */
	CHECK_INT("cleared twice", is_empty(&ev), 1);
	check_done();
}

/* A parsed event's details reference outlives the record if taken; clear drops both. */
static void
test_parsed_details_refcount(void **state)
{
	static const char line[] = REC ",\"details\":{\"dsn\":\"2.0.0\"}}";
	struct msevent ev;
	const char *err;
	struct json_object *keep;

	assert_int_equal(parse_len(&ev, line, sizeof(line) - 1, &err), 0);
	keep = json_object_get(ev.details);
	msevent_clear(&ev);
	CHECK_STR("details kept by an extra reference",
	          json_object_get_string(json_object_object_get(keep, "dsn")), "2.0.0");
	json_object_put(keep);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_type_names),
	        cmocka_unit_test(test_parse_full_record),
	        cmocka_unit_test(test_parse_valid),
	        cmocka_unit_test(test_parse_whitespace),
	        cmocka_unit_test(test_parse_invalid),
	        cmocka_unit_test(test_length_limits),
	        cmocka_unit_test(test_details_limits),
	        cmocka_unit_test(test_record_max),
	        cmocka_unit_test(test_tokener_reuse),
	        cmocka_unit_test(test_format_exact),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_validate_built),
	        cmocka_unit_test(test_detail_helpers),
	        cmocka_unit_test(test_parsed_details_refcount),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
