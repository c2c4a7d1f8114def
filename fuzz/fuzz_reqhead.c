/*
 * fuzz_reqhead - libFuzzer target for the HTTP request head check (statusd/reqhead.c), what
 * any client that connects to statusd's HTTP port sends first.
 *
 * The input is the bytes a client sends. They are fed to reqhead_end() at once and in
 * pieces of 1 to 17 bytes (the length of the piece is the input's first byte), and where
 * a head ends, it is checked with reqhead_check().
 *
 * Invariants: both feedings agree on where the head ends or why it cannot; an end lies
 * within REQHEAD_MAX and after a CR LF CR LF; every refusal has a status of the documented
 * set and a detail; a passed head's rewrite starts with its request line, has only CR LF
 * line ends and lower-case names, ends with "content-length: 0" and a blank line, grows
 * by at most that line and a space after each colon, and a body length is -1 or 0 to 18
 * digits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reqhead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
status_ok(unsigned s)
{
	return s == 400 || s == 411 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505;
}

static void
check_rewrite(const char *in, size_t len, const struct reqhead *h)
{
	const char *out = h->out.data, *eol;
	static const char tail[] = "content-length: 0\r\n\r\n";
	size_t n = h->out.len;

	if (out == NULL || n > len + sizeof(tail) + REQHEAD_FIELDS_MAX || n < sizeof(tail) - 1 ||
	    memcmp(out + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0)
		abort();
	/* the request line is the head's, after any blank lines */
	while (len >= 2 && in[0] == '\r' && in[1] == '\n')
		in += 2, len -= 2;
	if ((eol = memchr(out, '\r', n)) == NULL || memcmp(out, in, (size_t)(eol - out + 2)) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
		if (out[i] == '\r' && (i + 1 == n || out[i + 1] != '\n'))
			abort();
	}
	for (const char *p = eol + 2; p < out + n - 2; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(out + n - p));
		for (const char *c = p; c < eol && *c != ':'; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *error = NULL, *error1 = NULL;
	struct reqhead_scan scan = {0}, scan1 = {0};
	unsigned status = 0, status1 = 0;
	size_t step, n = 0;
	long end, end1 = 0;

	if (size == 0)
		return 0;
	step = (size_t)(data[0] % 17) + 1;
	end = reqhead_end(buf, size, &scan, &status, &error);
	while (end1 == 0 && n < size) {
		n = n + step > size ? size : n + step;
		end1 = reqhead_end(buf, n, &scan1, &status1, &error1);
	}
	if (end != end1 || status != status1)
		abort();
	if (end < 0) {
		if (!status_ok(status) || error == NULL || error[0] == '\0')
			abort();
		return 0;
	}
	if (end == 0) {
		if (size >= REQHEAD_MAX)
			abort();
		return 0;
	}
	if (end > REQHEAD_MAX || end < 4 || memcmp(buf + end - 4, "\r\n\r\n", 4) != 0)
		abort();

	struct reqhead h = {0};
	error = NULL;
	status = reqhead_check(buf, (size_t)end, &h, &error);
	if (status != 0) {
		if (!status_ok(status) || error == NULL || error[0] == '\0')
			abort();
	} else {
		check_rewrite(buf, (size_t)end, &h);
		if (h.content_length < -1 || h.content_length > 999999999999999999LL ||
		    h.len != (size_t)end)
			abort();
	}
	free(h.out.data);
	return 0;
}
