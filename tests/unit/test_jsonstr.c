/*
 * test_jsonstr - unit tests for lib/jsonstr (JSON text written without a json-c tree).
 *
 * The reference is json-c itself, printing with the flags the feeds use: jsonstr_append()
 * must write every single byte 0x01-0xff, and strings mixing quotes, backslashes, control
 * characters and multi-byte UTF-8, exactly as json-c writes them; jsonstr_compact() must
 * turn PostgreSQL's jsonb text of a details object (", " and ": " between members) into
 * exactly what json-c prints after parsing it, or refuse (-1, nothing appended) where it
 * cannot promise that: nested objects and arrays, integers json-c would clamp or rewrite,
 * escapes json-c writes another way, repeated keys, malformed text and every truncation.
 * Inputs are heap copies of exactly their length so that ASan catches a read past len.
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

#include "jsonstr.h"
#include "mbuf.h"

#include "check.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* What json-c writes for the string s (n bytes). */
static void
reference_string(const char *s, size_t n, struct mbuf *out)
{
	struct json_object *o = json_object_new_string_len(s, (int)n);

	mbuf_puts(out, json_object_to_json_string_ext(o, FLAGS));
	json_object_put(o);
}

static void
check_append(const char *what, const char *s, size_t n)
{
	struct mbuf got = MBUF_INIT, want = MBUF_INIT;
	char *copy = exact(s, n);

	mbuf_puts(&got, "x"); /* appends: what is there stays */
	jsonstr_append(&got, copy, n);
	mbuf_puts(&want, "x");
	reference_string(s, n, &want);
	CHECK_STR(what, mbuf_str(&got), mbuf_str(&want));
	free(copy);
	mbuf_free(&got);
	mbuf_free(&want);
}

static void
test_append_every_byte(void **state)
{
	(void)state;
	for (int c = 1; c < 256; c++) {
		char s[3] = {'a', (char)c, 'z'}, what[32];

		snprintf(what, sizeof(what), "byte 0x%02x", c);
		check_append(what, s, sizeof(s));
	}
	check_done();
}

static void
test_append_strings(void **state)
{
	static const char *cases[] = {
	        "",
	        "plain@example.org",
	        "\"quoted\" \\back\\slash\\ /slash/",
	        "tab\tnewline\ncr\rff\fbs\b bell\a esc\x1b us\x1f del\x7f",
	        "J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac",
	        "<\"a\\b\"@\x01x>",
	        "\\\\\\\"\"\"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_append(cases[i], cases[i], strlen(cases[i]));
	check_done();
}

/* What json-c prints for a parsed object text, or NULL if it does not parse. */
static char *
reference_object(const char *text)
{
	struct json_object *o = json_tokener_parse(text);
	char *s;

	if (o == NULL)
		return NULL;
	s = strdup(json_object_to_json_string_ext(o, FLAGS));
	json_object_put(o);
	return s;
}

/* jsonb's text output of details objects, as psql shows them for '...'::jsonb::text. */
static const char *accept_cases[] = {
        "{}",
        "{\"mta\": \"mx.example.net\"}",
        "{\"dsn\": \"2.0.0\", \"mta\": \"mx.example.net[192.0.2.1]:25\", \"latency_ms\": 1234}",
        "{\"a\": 0, \"b\": -1, \"c\": 123456789012345678, \"d\": -123456789012345678}",
        "{\"a\": 1.50, \"b\": -0.0, \"c\": 0.1000, \"d\": 12345678901234567890.5}",
        "{\"a\": 1e5, \"b\": 1.5E-7, \"c\": -2e+300}",
        "{\"t\": true, \"f\": false, \"n\": null}",
        "{\"s\": \"\\\"q\\\" \\\\ \\b\\f\\n\\r\\t \\u0001\\u001f\\u000b\"}",
        "{\"s\": \"/ J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}",
        "{\"smtp_reply\": \"250 2.0.0 Ok: queued as 4Xyz\"}",
        " { \"a\" :\t1 ,\n\"b\":\r\"x\" } ",
};

static void
test_compact_matches_json_c(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(accept_cases) / sizeof(accept_cases[0]); i++) {
		const char *text = accept_cases[i];
		char *copy = exact(text, strlen(text)), *want = reference_object(text);
		struct mbuf got = MBUF_INIT;

		mbuf_puts(&got, "x");
		CHECK_INT(text, jsonstr_compact(&got, copy, strlen(text)), 0);
		assert_non_null(want);
		CHECK_STR(text, mbuf_str(&got) + 1, want);
		free(copy);
		free(want);
		mbuf_free(&got);
	}
	check_done();
}

static const char *refuse_cases[] = {
        "",
        "   ",
        "null",
        "[]",
        "\"s\"",
        "{",
        "{\"a\"}",
        "{\"a\": }",
        "{\"a\": 1,}",
        "{\"a\": 1 \"b\": 2}",
        "{\"a\": 1} x",
        "{\"a\": {\"b\": 1}}",          /* nested: json-c limits depth; not our form */
        "{\"a\": [1, 2]}",              /* arrays likewise */
        "{\"a\": 1234567890123456789}", /* 19 digits: json-c may clamp */
        "{\"a\": -9223372036854775809}",
        "{\"a\": -0}", /* json-c prints 0 */
        "{\"a\": 01}",
        "{\"a\": 1.}",
        "{\"a\": .5}",
        "{\"a\": 1e}",
        "{\"a\": +1}",
        "{\"a\": \"\\/\"}",     /* json-c writes "/" */
        "{\"a\": \"\\u0041\"}", /* json-c writes "A" */
        "{\"a\": \"\\u000a\"}", /* json-c writes "\n" */
        "{\"a\": \"\\u001F\"}", /* upper-case hex */
        "{\"a\": \"\\u00e9\"}",
        "{\"a\": \"\\x\"}",
        "{\"a\": \"tab\there\"}", /* a raw control character */
        "{\"a\": \"open}",
        "{\"a\": tru}",
        "{\"a\": nul}",
        "{\"a\": 1, \"a\": 2}", /* json-c keeps one */
        "{a: 1}",
};

static void
test_compact_refuses(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]); i++) {
		const char *text = refuse_cases[i];
		char *copy = exact(text, strlen(text));
		struct mbuf got = MBUF_INIT;

		mbuf_puts(&got, "x");
		CHECK_INT(text, jsonstr_compact(&got, copy, strlen(text)), -1);
		CHECK_STR(text, mbuf_str(&got), "x"); /* nothing appended */
		free(copy);
		mbuf_free(&got);
	}
	check_done();
}

/* Every proper prefix of an accepted text is refused (and read within its length). */
static void
test_compact_truncations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(accept_cases) / sizeof(accept_cases[0]); i++) {
		const char *text = accept_cases[i];
		size_t n = strlen(text);

		while (n > 0 && text[n - 1] == ' ')
			n--; /* trailing blanks are not significant */
		for (size_t len = 0; len < n; len++) {
			char *copy = exact(text, len), what[160];
			struct mbuf got = MBUF_INIT;

			snprintf(what, sizeof(what), "%.*s", (int)len, text);
			CHECK_INT(what, jsonstr_compact(&got, copy, len), -1);
			CHECK_INT(what, got.len, 0);
			free(copy);
			mbuf_free(&got);
		}
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_append_every_byte),
	        cmocka_unit_test(test_append_strings),
	        cmocka_unit_test(test_compact_matches_json_c),
	        cmocka_unit_test(test_compact_refuses),
	        cmocka_unit_test(test_compact_truncations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
