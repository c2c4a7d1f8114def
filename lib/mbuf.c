/*
 * mbuf - growable byte buffer. See mbuf.h.
 */
#include "mbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

void
mbuf_reserve(struct mbuf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX / 2 - b->len - 1)
		msg_fatal("mbuf_reserve: size overflow (%zu + %zu)", b->len, extra);
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		msg_fatal("out of memory (%zu bytes)", cap);
	b->data = p;
	b->cap = cap;
}

void
mbuf_append(struct mbuf *b, const void *p, size_t n)
{
	mbuf_reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
mbuf_puts(struct mbuf *b, const char *s)
{
	mbuf_append(b, s, strlen(s));
}

void
mbuf_putc(struct mbuf *b, char c)
{
	mbuf_append(b, &c, 1);
}

char *
mbuf_format_ll(char *p, long long v)
{
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
	                            "25262728293031323334353637383940414243444546474849"
	                            "50515253545556575859606162636465666768697071727374"
	                            "75767778798081828384858687888990919293949596979899";
	char digits[24], *d = digits + sizeof(digits);
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
	size_t n;

	/* two digits at a time: half the divisions of one at a time */
	while (u >= 100) {
		unsigned r = (unsigned)(u % 100);
		u /= 100;
		d -= 2;
		memcpy(d, pairs + 2 * r, 2);
	}
	if (u >= 10) {
		d -= 2;
		memcpy(d, pairs + 2 * u, 2);
	} else
		*--d = (char)('0' + u);
	if (v < 0)
		*--d = '-';
	n = (size_t)(digits + sizeof(digits) - d);
	memcpy(p, d, n);
	return p + n;
}

void
mbuf_putll(struct mbuf *b, long long v)
{
	mbuf_reserve(b, MBUF_LL_MAX);
	b->len = (size_t)(mbuf_format_ll(b->data + b->len, v) - b->data);
	b->data[b->len] = '\0';
}

void
mbuf_vprintf(struct mbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	mbuf_reserve(b, 64);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n < 0)
		msg_panic("mbuf_vprintf: bad format \"%s\"", fmt);
	if ((size_t)n >= b->cap - b->len) {
		mbuf_reserve(b, (size_t)n);
		(void)vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void
mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

void
mbuf_consume(struct mbuf *b, size_t n)
{
	if (n > b->len)
		msg_panic("mbuf_consume: %zu > %zu", n, b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
mbuf_reset(struct mbuf *b)
{
	mbuf_truncate(b, 0);
}

void
mbuf_truncate(struct mbuf *b, size_t len)
{
	if (len > b->len)
		msg_panic("mbuf_truncate: %zu > %zu", len, b->len);
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

const char *
mbuf_str(const struct mbuf *b)
{
	return b->data ? b->data : "";
}

void
mbuf_free(struct mbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
