/*
 * jsonparse - strict JSON parsing with json-c that behaves the same on json-c 0.16
 * (Debian 12) and 0.18 (Debian 13).
 *
 * json-c 0.18's JSON_TOKENER_STRICT rejects every byte above 0x7f inside a string: its new
 * control-character check compares a signed char with 0x1f (json-c issue #875, fixed in
 * 0.19). Every event, request body or token with a non-ASCII character would be refused.
 * With that json-c (asked at run time), jsonparse_strict() hands json-c a copy of the text
 * in which each well-formed UTF-8 sequence is written as \uXXXX (a surrogate pair above
 * U+FFFF), which json-c decodes back into the same UTF-8: the parsed strings are byte for
 * byte those of the input. Malformed UTF-8 is passed on as it is, for json-c to reject.
 * Other json-c versions get the text itself.
 *
 * This is the one place where msgstatus sets up json-c's strict mode: a tokener for
 * repeated parsing (jsonparse_tokener_new, then jsonparse_strict), or one object in one
 * call (jsonparse_object).
 *
 * DESIGN
 *	No state of its own: the copy is allocated and freed within the call, the tokener is
 *	the caller's (jsonparse_object's is its own). Safe from any thread that owns its
 *	tokener.
 *
 * SECURITY
 *	The text is untrusted. The copy is at most 6 times its length (a 2-byte sequence
 *	becomes 6 bytes, a 4-byte one 12) and made only when the text has a byte above 0x7f.
 *
 * DIAGNOSTICS
 *	jsonparse_strict as json_tokener_parse_ex(): the caller asks json_tokener_get_error(tok).
 *	jsonparse_object returns NULL with a static error text. Out of memory is fatal.
 */
#ifndef JSONPARSE_H
#define JSONPARSE_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct json_tokener;

/*
 * A tokener for jsonparse_strict(): JSON_TOKENER_STRICT, and JSON_TOKENER_VALIDATE_UTF8
 * when validate_utf8, nesting at most depth levels. Never NULL (out of memory is fatal);
 * the caller frees it with json_tokener_free().
 */
struct json_tokener *jsonparse_tokener_new(int depth, bool validate_utf8);

/*
 * The whole of data (len bytes) parsed strictly as one JSON object nested at most depth
 * levels, with nothing but whitespace (space, tab, CR, LF) after it. Returns the object
 * (the caller puts it), or NULL with *error_r saying why: json-c's description of its
 * error (json-c's strict mode refuses any text after the value), "incomplete JSON",
 * "not a JSON object", "text after the JSON object" or "too long".
 */
struct json_object *jsonparse_object(const char *data, size_t len, int depth, bool validate_utf8,
                                     const char **error_r);

/*
 * json_tokener_parse_ex(tok, data, len) for a tokener with JSON_TOKENER_STRICT (and
 * whatever other flags and depth the caller set). Returns the parsed object (the caller
 * puts it) or NULL; *end_r is set to where parsing ended, as an offset into data, like
 * json_tokener_get_parse_end(). len must be below INT32_MAX / 6.
 */
struct json_object *jsonparse_strict(struct json_tokener *tok, const char *data, size_t len,
                                     size_t *end_r);
/* What jsonparse_strict() does with json-c 0.18 and text with non-ASCII bytes: the escaped
   copy, on any json-c (the unit tests run it on 0.16 too). */
struct json_object *jsonparse_strict_escaped(struct json_tokener *tok, const char *data, size_t len,
                                             size_t *end_r);

#endif
