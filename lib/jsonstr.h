/*
 * jsonstr - JSON text written without a json-c tree, byte for byte as json-c writes it.
 *
 * Documents that are built once per event on a hot path (the feeds, catch-up) are written
 * straight into an mbuf instead of through a json_object tree. So that a client cannot
 * tell the two apart, the string escaping here is json-c's with JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE: \" \\ \b \f \n \r \t, \u00xx (lower-case hex) for the
 * other bytes below 0x20, every other byte as it is (UTF-8 passes through). This is the
 * one place that escapes JSON strings by hand; jsonstr_compact() only accepts text that
 * is already escaped this way.
 *
 * SECURITY
 *	jsonstr_compact() reads text from PostgreSQL (jsonb output) that came from producers:
 *	it never reads past len bytes and refuses, rather than repairs, anything it does not
 *	recognize, so its caller can fall back to json-c.
 */
#ifndef JSONSTR_H
#define JSONSTR_H

#include <stddef.h>

struct mbuf;

/* Append s (len bytes) as a quoted, escaped JSON string. */
void jsonstr_append(struct mbuf *out, const char *s, size_t len);

/* The most bytes jsonstr_put() writes for a string of len bytes (len < SIZE_MAX / 8). */
#define JSONSTR_MAX(len) (6 * (len) + 2)

/* Write s (len bytes) at p as jsonstr_append() appends it; p has room for
   JSONSTR_MAX(len) bytes. Returns the end of what it wrote (no NUL). */
char *jsonstr_put(char *p, const char *s, size_t len);

/*
 * Append the JSON object text at text (len bytes) without insignificant whitespace, as
 * json-c would print it after parsing it: a flat object (no nested object or array)
 * whose strings are escaped as jsonstr_append() escapes them and whose numbers json-c
 * prints unchanged (decimal fractions, integers of at most 18 digits). Returns 0, or -1
 * with nothing appended when the text is anything else (parse it with json-c then).
 */
int jsonstr_compact(struct mbuf *out, const char *text, size_t len);

#endif
