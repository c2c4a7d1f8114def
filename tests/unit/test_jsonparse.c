/*
 * test_jsonparse - unit tests for lib/jsonparse (strict JSON parsing alike on json-c 0.16
 * and 0.18).
 *
 * Every row goes through jsonparse_strict() (the text itself, or on json-c 0.18 the escaped
 * copy when there is a non-ASCII byte) and through jsonparse_strict_escaped() (the escaped
 * copy on any json-c), with the flags statusd uses (JSON_TOKENER_STRICT |
 * JSON_TOKENER_VALIDATE_UTF8): both must accept the same texts, give the same strings byte
 * for byte, and report the same end offset in the input. On json-c 0.18 without the escaping
 * the UTF-8 rows fail ("invalid utf-8 string").
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

#include "jsonparse.h"

#include "check.h"

struct parse_case {
	const char *name;
	const char *text;
	size_t len;
	const char *key;   /* NULL: the text is rejected */
	const char *value; /* the key's string value */
	size_t value_len;
	size_t end; /* where parsing ended, as an offset into text (after one blank) */
};

#define S(s) s, sizeof(s) - 1

static const struct parse_case cases[] = {
        {"ASCII", S("{\"a\":\"b\"}"), "a", S("b"), 9},
        {"2-byte", S("{\"a\":\"j\xc3\xb6rg\"}"), "a", S("j\xc3\xb6rg"), 13},
        {"3-byte", S("{\"a\":\"\xe2\x82\xac 5\"}"), "a", S("\xe2\x82\xac 5"), 13},
        {"4-byte (a surrogate pair)", S("{\"a\":\"\xf0\x9f\x98\x80!\"}"), "a",
         S("\xf0\x9f\x98\x80!"), 13},
        {"U+10FFFF", S("{\"a\":\"\xf4\x8f\xbf\xbf\"}"), "a", S("\xf4\x8f\xbf\xbf"), 12},
        {"U+0080 and U+FFFF", S("{\"a\":\"\xc2\x80\xef\xbf\xbf\"}"), "a", S("\xc2\x80\xef\xbf\xbf"),
         13},
        {"non-ASCII key", S("{\"\xc3\xa4\":\"x\"}"), "\xc3\xa4", S("x"), 10},
        {"escaped backslash, then UTF-8", S("{\"a\":\"x\\\\\xc3\xa9\"}"), "a", S("x\\\xc3\xa9"),
         13},
        {"escaped quote, then UTF-8", S("{\"a\":\"\\\"\xc3\xa9\"}"), "a", S("\"\xc3\xa9"), 12},
        {"\\u escape next to UTF-8", S("{\"a\":\"\\u00e9\xc3\xa9\"}"), "a", S("\xc3\xa9\xc3\xa9"),
         16},
        {"UTF-8, then trailing blanks", S("{\"a\":\"\xc3\xa9\"}  "), "a", S("\xc3\xa9"), 12},
        /* rejected */
        {"UTF-8, then trailing text (strict)", S("{\"a\":\"\xc3\xa9\"}x\xc3\xa9"), NULL, NULL, 0,
         0},
        {"invalid escape before UTF-8", S("{\"a\":\"x\\\xc3\xa9\"}"), NULL, NULL, 0, 0},
        {"malformed UTF-8 in a string", S("{\"a\":\"x\xff\"}"), NULL, NULL, 0, 0},
        {"lone continuation byte", S("{\"a\":\"\x80\"}"), NULL, NULL, 0, 0},
        {"UTF-8 outside a string", S("{\"a\":\xc3\xa9}"), NULL, NULL, 0, 0},
        {"UTF-8 in an unquoted key", S("{\xc3\xa9:1}"), NULL, NULL, 0, 0},
        {"single quotes (strict)", S("{'a':'\xc3\xa9'}"), NULL, NULL, 0, 0},
        {"trailing comma (strict)", S("{\"a\":\"\xc3\xa9\",}"), NULL, NULL, 0, 0},
        {"unterminated", S("{\"a\":\"\xc3\xa9"), NULL, NULL, 0, 0},
};

typedef struct json_object *parse_fn(struct json_tokener *, const char *, size_t, size_t *);

static void
check_case(const struct parse_case *c, parse_fn *parse, const char *how)
{
	char *text = exact(c->text, c->len);
	struct json_tokener *tok = jsonparse_tokener_new(4, true);
	struct json_object *obj, *v;
	size_t end = (size_t)-1;
	char what[160];

	snprintf(what, sizeof(what), "%s (%s)", c->name, how);
	obj = parse(tok, text, c->len, &end);
	if (c->key == NULL) {
		CHECK_INT(what, obj != NULL && json_tokener_get_error(tok) == json_tokener_success,
		          0);
	} else if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		CHECK_STR(what, json_tokener_error_desc(json_tokener_get_error(tok)), "success");
	} else {
		CHECK_INT(what, json_object_object_get_ex(obj, c->key, &v), 1);
		if (json_object_object_get_ex(obj, c->key, &v)) {
			CHECK_INT(what, (size_t)json_object_get_string_len(v), c->value_len);
			CHECK_INT(what, memcmp(json_object_get_string(v), c->value, c->value_len),
			          0);
		}
		CHECK_INT(what, end, c->end);
	}
	json_object_put(obj);
	json_tokener_free(tok);
	free(text);
}

static void
test_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_case(&cases[i], jsonparse_strict, "as this json-c needs it");
		check_case(&cases[i], jsonparse_strict_escaped, "escaped");
	}
	check_done();
}

/* jsonparse_object(): one object, all of the text, or a reason. */
static const struct object_case {
	const char *name;
	const char *text;
	size_t len;
	int depth;
	bool validate_utf8;
	const char *error; /* NULL: parsed */
} object_cases[] = {
        {"object", S("{\"a\":\"\xc3\xa9\"}"), 2, true, NULL},
        {"whitespace after", S("{\"a\":1} \t\r\n"), 2, true, NULL},
        {"text after", S("{\"a\":1} x"), 2, true, "unexpected character"},
        {"a second object", S("{}{}"), 2, true, "unexpected character"},
        {"an array", S("[1]"), 2, true, "not a JSON object"},
        {"null", S("null"), 2, true, "incomplete JSON"},
        {"a string", S("\"a\""), 2, true, "not a JSON object"},
        {"null and a space", S("null "), 2, true, "not a JSON object"},
        {"empty", S(""), 2, true, "incomplete JSON"},
        {"unterminated", S("{\"a\":1"), 2, true, "incomplete JSON"},
        {"too deep", S("{\"a\":{\"b\":{}}}"), 2, true, "nesting too deep"},
        {"deep enough", S("{\"a\":{\"b\":{}}}"), 3, true, NULL},
        {"malformed UTF-8, validated", S("{\"a\":\"\xc3\"}"), 2, true, "invalid utf-8 string"},
};

static void
test_object(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(object_cases) / sizeof(object_cases[0]); i++) {
		const struct object_case *c = &object_cases[i];
		char *text = exact(c->text, c->len);
		const char *error = "(unset)";
		struct json_object *obj =
		        jsonparse_object(text, c->len, c->depth, c->validate_utf8, &error);

		if (c->error == NULL) {
			CHECK_INT(c->name, obj != NULL, 1);
		} else {
			CHECK_INT(c->name, obj == NULL, 1);
			if (obj == NULL)
				CHECK_STR(c->name, error, c->error);
		}
		json_object_put(obj);
		free(text);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_object),
	};
	return cmocka_run_group_tests_name("jsonparse", tests, NULL, NULL);
}
