/*
 * mbuf - growable byte buffer.
 *
 * The one buffer type of the project. All size arithmetic and overflow checks live in
 * mbuf_reserve(); everything else builds on it. The data is always NUL-terminated so that
 * mbuf_str() can be passed to C string functions, but the buffer may hold binary data.
 *
 * DIAGNOSTICS
 *	Allocation failure and size overflow are fatal (msg_fatal): there is no sensible way for
 *	a caller to continue.
 */
#ifndef MBUF_H
#define MBUF_H

#include <stdarg.h>
#include <stddef.h>

struct mbuf {
	char *data; /* NULL until the first append */
	size_t len; /* bytes in use, excluding the terminating NUL */
	size_t cap; /* bytes allocated */
};

#define MBUF_INIT                                                                                  \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* Make room for at least extra more bytes (plus the NUL). */
void mbuf_reserve(struct mbuf *b, size_t extra);
void mbuf_append(struct mbuf *b, const void *p, size_t n);
void mbuf_puts(struct mbuf *b, const char *s);
void mbuf_putc(struct mbuf *b, char c);
/* Append v in decimal, as printf's %lld writes it (without printf's cost, for hot paths). */
void mbuf_putll(struct mbuf *b, long long v);
/* The most bytes mbuf_format_ll() writes. */
#define MBUF_LL_MAX 20
/* Write v at p as mbuf_putll() appends it (room for MBUF_LL_MAX bytes, no NUL); returns
   the end of what it wrote. For a caller that reserved room for several values at once. */
char *mbuf_format_ll(char *p, long long v);
void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mbuf_vprintf(struct mbuf *b, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n <= len). */
void mbuf_consume(struct mbuf *b, size_t n);
/* Forget the contents, keep the allocation. */
void mbuf_reset(struct mbuf *b);
/* Truncate to len bytes (len <= b->len). */
void mbuf_truncate(struct mbuf *b, size_t len);
/* The contents as a C string; "" for an empty buffer. Valid until the next append. */
const char *mbuf_str(const struct mbuf *b);
/* Release the memory; the buffer is empty and reusable afterwards. */
void mbuf_free(struct mbuf *b);

#endif
