/*
 * utf8 - UTF-8 well-formedness (RFC 3629).
 *
 * Hand-written because it is twenty lines and sits on hot paths (log sanitizing, header
 * checks in the milter) where pulling in iconv or ICU would cost more than it saves.
 * Rejects overlong forms, surrogates and code points above U+10FFFF.
 */
#ifndef UTF8_H
#define UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the well-formed sequence at s (n bytes available), or 0 if broken. */
size_t utf8_seq_len(const char *s, size_t n);
/* True if all n bytes at s are well-formed UTF-8 (NUL bytes count as valid). */
bool utf8_valid(const char *s, size_t n);

#endif
