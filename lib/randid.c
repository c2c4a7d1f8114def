/*
 * randid - unguessable identifiers. See randid.h.
 */
#include "randid.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "msg.h"

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

void
randid_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			msg_panic("getrandom: %s", strerror(errno));
		}
		p += got;
		n -= (size_t)got;
	}
}

char *
randid_new(char *buf)
{
	unsigned char raw[17]; /* 26 * 5 = 130 bits */
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	randid_bytes(raw, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw) && o < RANDID_LEN; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5 && o < RANDID_LEN) {
			buf[o++] = alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	buf[RANDID_LEN] = '\0';
	return buf;
}

bool
randid_valid(const char *s, size_t len)
{
	if (len != RANDID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
			return false;
	return true;
}
