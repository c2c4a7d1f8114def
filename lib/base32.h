/*
 * base32 - lower-case RFC 4648 base32 ("a-z2-7", no padding), the alphabet of msgstatus's
 * ids and tokens: safe in headers, URLs, file names and SQL without escaping, and the same
 * whatever the case a mail system folds it to.
 *
 * One encoder for the tracking and event ids (randid.c), API tokens (statusd/token.c) and
 * the ids of Postfix log lines (logd/pfevent.c). The Dovecot plugin keeps a copy of its
 * own (it does not link lib/).
 *
 * DESIGN
 *	A pure function; the caller owns both buffers.
 *
 * SECURITY
 *	Encodes only: nothing here reads base32 from outside (the validators of ids and
 *	tokens check their alphabet themselves).
 *
 * DIAGNOSTICS
 *	None: the caller sizes the buffers (a panic if in is too short for n characters).
 */
#ifndef BASE32_H
#define BASE32_H

#include <stddef.h>

#define BASE32_ALPHABET "abcdefghijklmnopqrstuvwxyz234567"

/*
 * Write the first n characters of the base32 of in (len bytes, read most significant bit
 * first) and a NUL into out (n + 1 bytes); returns out. A last character that takes fewer
 * than 5 bits of in is padded with zero bits, as RFC 4648 does; len * 8 must reach into the
 * last character (n <= ceil(len * 8 / 5)).
 */
char *base32_encode(char *out, size_t n, const void *in, size_t len);

#endif
