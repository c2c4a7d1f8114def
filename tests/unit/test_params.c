/*
 * test_params - unit tests for statusd/params.c, what HTTP and feed clients send: the
 * message list's arguments, a feed's resume point, request bodies and WebSocket messages.
 * Every accepted form and every kind of rejected one, with the detail text the client gets.
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

#include "msevent.h"
#include "params.h"

#include "check.h"

#define ABSENT NULL

static void
test_resume(void **state)
{
	static const struct {
		const char *id, *offset, *epoch;
		int rc;
		int64_t epoch_want, from_want;
		const char *error;
	} rows[] = {
	        {ABSENT, ABSENT, ABSENT, 0, 0, -1, NULL},
	        {"1700-0", ABSENT, ABSENT, 0, 1700, 0, NULL},
	        {"1700-42", "5", "9", 0, 1700, 42, NULL}, /* the header wins */
	        {ABSENT, "0", "1700", 0, 1700, 0, NULL},
	        {ABSENT, "17", "1700", 0, 1700, 17, NULL},
	        {"0-1", ABSENT, ABSENT, -1, 0, -1, "Last-Event-ID must be EPOCH-OFFSET"},
	        {"1700", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {"1700-", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {"1700--1", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {"1700-1x", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {" 1700-1", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {"99999999999999999999-1", ABSENT, ABSENT, -1, 0, -1, "EPOCH-OFFSET"},
	        {ABSENT, "5", ABSENT, -1, 0, -1, "go together"},
	        {ABSENT, "-1", "1700", -1, 0, -1, "or more"},
	        {ABSENT, "+1", "1700", -1, 0, -1, "or more"},
	        {ABSENT, "1", "0", -1, 0, -1, "or more"},
	        {ABSENT, "", "1700", -1, 0, -1, "go together"},
	        {ABSENT, "1", "17x", -1, 0, -1, "go together"},
	        {ABSENT, "99999999999999999999", "1", -1, 0, -1, "go together"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t epoch = 99, from = 99;
		const char *error = NULL;
		char what[64];

		snprintf(what, sizeof(what), "resume row %zu", i);
		CHECK_INT(what,
		          params_resume(rows[i].id, rows[i].offset, rows[i].epoch, &epoch, &from,
		                        &error),
		          rows[i].rc);
		CHECK_INT(what, epoch, rows[i].epoch_want);
		CHECK_INT(what, from, rows[i].from_want);
		if (rows[i].error != NULL)
			CHECK_HAS(what, error, rows[i].error);
	}
	check_done();
}

static void
test_list(void **state)
{
	static const struct {
		struct params_list_args args;
		int rc;
		int status, limit;
		int64_t since, cursor;
		const char *error;
	} rows[] = {
	        {{0}, 0, 0, PARAMS_LIST_DEFAULT, 0, 0, NULL},
	        {{.status = "read", .limit = "200", .cursor = "12"},
	         0,
	         MSEV_READ,
	         200,
	         0,
	         12,
	         NULL},
	        {{.since = "2026-11-22T10:00:00Z"}, 0, 0, 50, INT64_C(1795341600000), 0, NULL},
	        {{.since = "1795341600000"}, 0, 0, 50, INT64_C(1795341600000), 0, NULL},
	        {{.recipient = "bob@example.org"}, 0, 0, 50, 0, 0, NULL},
	        {{.status = "online"}, -1, 0, 0, 0, 0, "status must be"},
	        {{.status = ""}, -1, 0, 0, 0, 0, "status must be"},
	        {{.since = "yesterday"}, -1, 0, 0, 0, 0, "RFC 3339"},
	        {{.until = "2026-11-22"}, -1, 0, 0, 0, 0, "RFC 3339"},
	        {{.since = "0"}, -1, 0, 0, 0, 0, "RFC 3339"},
	        {{.limit = "0"}, -1, 0, 0, 0, 0, "limit must be 1 to 200"},
	        {{.limit = "201"}, -1, 0, 0, 0, 0, "limit"},
	        {{.limit = "1e2"}, -1, 0, 0, 0, 0, "limit"},
	        {{.limit = " 5"}, -1, 0, 0, 0, 0, "limit"},
	        {{.cursor = "0"}, -1, 0, 0, 0, 0, "next_cursor"},
	        {{.cursor = "-3"}, -1, 0, 0, 0, 0, "next_cursor"},
	        {{.cursor = "99999999999999999999"}, -1, 0, 0, 0, 0, "next_cursor"},
	        {{.recipient = ""}, -1, 0, 0, 0, 0, "mail address"},
	        {{.recipient = "bob @example.org"}, -1, 0, 0, 0, 0, "mail address"},
	        {{.recipient = "bob\x7f"}, -1, 0, 0, 0, 0, "mail address"},
	        /* well-formed UTF-8 only: PostgreSQL fails the query on anything else */
	        {{.recipient = "\xc3\xb6@example.org"}, 0, 0, 50, 0, 0, NULL},
	        {{.recipient = "\xc0\xaf@example.org"}, -1, 0, 0, 0, 0, "mail address"},
	        {{.recipient = "\xed\xa0\x80@example.org"}, -1, 0, 0, 0, 0, "mail address"},
	        {{.recipient = "\xf4\x90\x80\x80@example.org"}, -1, 0, 0, 0, 0, "mail address"},
	        {{.recipient = "b\xc3"}, -1, 0, 0, 0, 0, "mail address"},
	        /* times a timestamp can hold, up to the end of year 9999 */
	        {{.until = "253402300799999"}, 0, 0, 50, 0, 0, NULL},
	        {{.until = "253402300800000"}, -1, 0, 0, 0, 0, "RFC 3339"},
	        {{.since = "9223372036854775807"}, -1, 0, 0, 0, 0, "RFC 3339"},
	        {{.since = "99999999999999999999"}, -1, 0, 0, 0, 0, "RFC 3339"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct store_list_filter flt;
		const char *error = NULL;
		char what[64];
		int rc = params_list(&rows[i].args, &flt, &error);

		snprintf(what, sizeof(what), "list row %zu", i);
		CHECK_INT(what, rc, rows[i].rc);
		if (rc == 0) {
			CHECK_INT(what, flt.status, rows[i].status);
			CHECK_INT(what, flt.limit, rows[i].limit);
			CHECK_INT(what, flt.since_ms, rows[i].since);
			CHECK_INT(what, flt.cursor, rows[i].cursor);
			CHECK_STR(what, flt.recipient, rows[i].args.recipient);
		} else
			CHECK_HAS(what, error, rows[i].error);
	}
	check_done();
}

static void
test_refs(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} rows[] = {
	        {"trk-1", true},
	        {"<a.b@example.org>", true},
	        {"<\xc3\xa9t\xc3\xa9@example.org>", true},
	        {"\xf0\x9f\x98\x80", true},
	        {"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
	        {"", false},
	        {"a b", false},
	        {"a\x01", false},
	        {"\xc0\xaf", false},         /* overlong '/' */
	        {"\xe0\x80\xaf", false},     /* overlong, three bytes */
	        {"\xed\xa0\x80", false},     /* U+D800, a surrogate */
	        {"\xed\xbf\xbf", false},     /* U+DFFF */
	        {"\xf4\x90\x80\x80", false}, /* U+110000 */
	        {"\xf5\x80\x80\x80", false},
	        {"\xff", false},
	        {"a\xc3", false}, /* cut short */
	        {"\x80", false},  /* a continuation byte alone */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "ref row %zu", i);
		CHECK_INT(what, params_ref_ok(rows[i].s), rows[i].ok);
		CHECK_INT(what, params_user_ok(rows[i].s), rows[i].ok);
	}
	check_done();
}

static void
test_bodies(void **state)
{
	static const struct {
		const char *body;
		bool required;
		const char *kind; /* prefs, presence, receipt */
		int rc;
		const char *error;
	} rows[] = {
	        {"", false, "receipt", 0, NULL},
	        {"{}", false, "receipt", 0, NULL},
	        {" {} \r\n", false, "receipt", 0, NULL},
	        {"{\"x\":1}", false, "receipt", -1, "takes no fields"},
	        {"", true, "prefs", -1, "a JSON object body is required"},
	        {"{\"read_receipts\":false}", true, "prefs", 0, NULL},
	        {"{\"read_receipts\":true,\"presence\":true}", true, "prefs", 0, NULL},
	        {"{\"read_receipts\":1}", true, "prefs", -1, "each true or false"},
	        {"{\"colour\":true}", true, "prefs", -1, "read_receipts and presence"},
	        {"[true]", true, "prefs", -1, "must be a JSON object"},
	        {"{} {}", true, "prefs", -1, "must be a JSON object"},
	        {"{\"a\":", true, "prefs", -1, "must be a JSON object"},
	        {"{\"a\":\"\xff\"}", true, "prefs", -1, "must be UTF-8"},
	        {"{\"state\":\"typing\",\"to\":\"\xc0\xaf@x\"}", true, "presence", -1, "UTF-8"},
	        {"{\"state\":\"typing\",\"to\":\"\xed\xa0\x80@x\"}", true, "presence", -1, "UTF-8"},
	        {"{\"state\":\"typing\",\"to\":\"\xf4\x90\x80\x80@x\"}", true, "presence", -1,
	         "UTF-8"},
	        {"{\"state\":\"typing\",\"to\":\"\xc3\xb6@x\"}", true, "presence", 0, NULL},
	        /* json-c turns a lone surrogate escape into U+FFFD: well-formed, taken */
	        {"{\"state\":\"typing\",\"to\":\"b\\ud800b@example.org\"}", true, "presence", 0,
	         NULL},
	        {"{\"state\":\"typing\",\"to\":\"bob\\u0000@example.org\"}", true, "presence", -1,
	         "expected"},
	        {"{'a':1}", true, "prefs", -1, "read_receipts and presence"}, /* json-c takes '' */
	        {"{\"a\":{\"b\":{\"c\":{}}}}", true, "prefs", -1, "must be a JSON object"},
	        {"{\"mdn\":\"always\"}", true, "prefs", 0, NULL},
	        {"{\"mdn\":\"never\",\"presence\":true}", true, "prefs", 0, NULL},
	        {"{\"mdn\":null}", true, "prefs", 0, NULL},
	        {"{\"mdn\":\"sometimes\"}", true, "prefs", -1, "mdn is"},
	        {"{\"mdn\":true}", true, "prefs", -1, "mdn is"},
	        {"{\"state\":\"online\"}", true, "presence", 0, NULL},
	        {"{\"state\":\"typing\",\"to\":\"bob@example.org\"}", true, "presence", 0, NULL},
	        {"{\"state\":\"typing\"}", true, "presence", -1, "expected"},
	        {"{\"state\":\"online\",\"to\":\"bob@example.org\"}", true, "presence", -1,
	         "expected"},
	        {"{\"state\":\"away\"}", true, "presence", -1, "expected"},
	        {"{\"state\":\"typing\",\"to\":\"b b\"}", true, "presence", -1, "expected"},
	        {"{\"state\":\"online\",\"x\":1}", true, "presence", -1, "expected"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *error = NULL, *st, *to, *mdn;
		char what[64];
		int rc, rr, pr;
		struct json_object *obj =
		        params_body(rows[i].body, strlen(rows[i].body), rows[i].required, &error);

		snprintf(what, sizeof(what), "body row %zu", i);
		if (obj == NULL)
			rc = -1;
		else if (strcmp(rows[i].kind, "prefs") == 0)
			rc = params_prefs(obj, &rr, &pr, &mdn, &error);
		else if (strcmp(rows[i].kind, "presence") == 0)
			rc = params_presence(obj, &st, &to, &error);
		else
			rc = params_receipt(obj, &error);
		CHECK_INT(what, rc, rows[i].rc);
		if (rows[i].error != NULL)
			CHECK_HAS(what, error, rows[i].error);
		json_object_put(obj);
	}
	check_done();
}

static void
test_ws_message(void **state)
{
	static const struct {
		const char *msg;
		int rc;
	} rows[] = {
	        {"{\"type\":\"ping\"}", 0},
	        {" {\"type\" : \"ping\", \"n\": 1}\n", 0},
	        {"{\"type\":\"pong\"}", -1},
	        {"{\"type\":1}", -1},
	        {"{\"type\":\"ping\"} x", -1},
	        {"\"ping\"", -1},
	        {"", -1},
	        {"{\"type\":\"ping\"", -1},
	};
	char big[PARAMS_WS_MAX + 64];
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "ws row %zu", i);
		CHECK_INT(what, params_ws_message(rows[i].msg, strlen(rows[i].msg), &error),
		          rows[i].rc);
	}
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"ping\"}", 15);
	CHECK_INT("oversized", params_ws_message(big, sizeof(big), &error), -1);
	CHECK_STR("oversized", error, "message too large");
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_resume),     cmocka_unit_test(test_refs),
	        cmocka_unit_test(test_list),       cmocka_unit_test(test_bodies),
	        cmocka_unit_test(test_ws_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
