/*
 * randid - unguessable identifiers. See randid.h.
 */
#include "randid.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "base32.h"
#include "msg.h"

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

	randid_bytes(raw, sizeof(raw));
	return base32_encode(buf, RANDID_LEN, raw, sizeof(raw));
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
