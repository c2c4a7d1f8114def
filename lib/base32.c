/*
 * base32 - lower-case RFC 4648 base32. See base32.h.
 */
#include "base32.h"

#include "msg.h"

char *
base32_encode(char *out, size_t n, const void *in, size_t len)
{
	static const char alphabet[] = BASE32_ALPHABET;
	const unsigned char *p = in;
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	if (len > ((size_t)-1) / 8 || n > (len * 8 + 4) / 5)
		msg_panic("base32_encode: %zu bytes do not make %zu characters", len, n);
	for (size_t i = 0; i < len && o < n; i++) {
		acc = ((acc << 8) | p[i]) & 0xfff; /* at most 12 bits are ever pending */
		bits += 8;
		while (bits >= 5 && o < n) {
			out[o++] = alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (o < n) /* the last character, from the last bits padded with zeros */
		out[o++] = alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return out;
}
