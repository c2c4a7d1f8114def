/*
 * jsonparse - strict JSON parsing alike on json-c 0.16 and 0.18 (jsonparse.h says why).
 */
#include "jsonparse.h"

#include "msg.h"
#include "mymalloc.h"
#include "utf8.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* json-c 0.18.x: its strict mode refuses non-ASCII bytes in strings. */
static bool
strict_refuses_utf8(void)
{
	int v = json_c_version_num();

	return v >= 0x001200 && v < 0x001300;
}

/* The code point of the well-formed sequence of n (2-4) bytes at s. */
static uint32_t
code_point(const unsigned char *s, size_t n)
{
	uint32_t cp = s[0] & (0x7f >> n);

	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

/*
 * The piece of input at data[i]: its length in the input (*n_r) and in the copy (returned:
 * 1 when copied as it is, 6 or 12 for a \uXXXX escape or a pair). A sequence right after
 * a backslash that starts an escape (the odd one of a run) is copied as it is, so that an
 * invalid escape stays invalid; *run counts the backslashes before the next piece.
 */
static size_t
piece(const char *data, size_t len, size_t i, size_t *run, size_t *n_r)
{
	size_t n = utf8_seq_len(data + i, len - i);
	bool escaped = *run % 2 == 1;

	*run = data[i] == '\\' ? *run + 1 : 0;
	if ((unsigned char)data[i] < 0x80 || n < 2 || escaped) {
		*n_r = 1;
		return 1;
	}
	*n_r = n;
	return n == 4 ? 12 : 6;
}

struct json_object *
jsonparse_strict(struct json_tokener *tok, const char *data, size_t len, size_t *end_r)
{
	struct json_object *obj;
	size_t i;

	for (i = 0; i < len && (unsigned char)data[i] < 0x80; i++)
		;
	if (i == len || !strict_refuses_utf8()) {
		obj = json_tokener_parse_ex(tok, data, (int)len);
		*end_r = json_tokener_get_parse_end(tok);
		return obj;
	}
	return jsonparse_strict_escaped(tok, data, len, end_r);
}

struct json_object *
jsonparse_strict_escaped(struct json_tokener *tok, const char *data, size_t len, size_t *end_r)
{
	struct json_object *obj;
	char *copy, *out;
	size_t i, n = 1, run, end, mapped;

	out = copy = mymalloc(len * 6 + 1);
	for (i = 0, run = 0; i < len; i += n) {
		uint32_t cp;

		if (piece(data, len, i, &run, &n) == 1) {
			*out++ = data[i];
			continue;
		}
		cp = code_point((const unsigned char *)data + i, n);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			out += sprintf(out, "\\u%04x\\u%04x", (unsigned)(0xd800 + (cp >> 10)),
			               (unsigned)(0xdc00 + (cp & 0x3ff)));
		} else {
			out += sprintf(out, "\\u%04x", (unsigned)cp);
		}
	}
	obj = json_tokener_parse_ex(tok, copy, (int)(out - copy));
	/* map the end back: the first input offset whose piece starts at or after it */
	end = json_tokener_get_parse_end(tok);
	for (i = 0, run = 0, mapped = 0; i < len && mapped < end; i += n)
		mapped += piece(data, len, i, &run, &n);
	*end_r = i;
	free(copy);
	return obj;
}

struct json_tokener *
jsonparse_tokener_new(int depth, bool validate_utf8)
{
	struct json_tokener *tok = json_tokener_new_ex(depth);

	if (tok == NULL)
		msg_fatal("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	                                    (validate_utf8 ? JSON_TOKENER_VALIDATE_UTF8 : 0));
	return tok;
}

struct json_object *
jsonparse_object(const char *data, size_t len, int depth, bool validate_utf8, const char **error_r)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (len > INT32_MAX / 6) {
		*error_r = "too long";
		return NULL;
	}
	tok = jsonparse_tokener_new(depth, validate_utf8);
	obj = jsonparse_strict(tok, data, len, &end);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (obj == NULL || jerr != json_tokener_success) {
		json_object_put(obj);
		*error_r = jerr == json_tokener_continue  ? "incomplete JSON"
		           : jerr != json_tokener_success ? json_tokener_error_desc(jerr)
		                                          : "not a JSON object";
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		*error_r = "not a JSON object";
		return NULL;
	}
	for (; end < len; end++)
		if (data[end] != ' ' && data[end] != '\t' && data[end] != '\r' &&
		    data[end] != '\n') {
			json_object_put(obj);
			*error_r = "text after the JSON object";
			return NULL;
		}
	return obj;
}
