/*
 * fuzz_dkimverify - libFuzzer target for what msgstatus-milter hands libopendkim from an
 * incoming message (milter/dkimverify.c): the input is a message (headers, an empty line,
 * the body), fed as libmilter would, header by header, then the body in chunks. No DNS:
 * every key is "not found", so no signature may come out valid. Also the alignment rule:
 * aligned(d, x) implies x is d or ends in "." d.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkimverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkimverify *the_verifier;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = malloc(size + 1), *p, *body, *line;
	struct dkimverify_msg *m;
	struct dkimverify_result res;
	const char *error;

	if (the_verifier == NULL && (the_verifier = dkimverify_new(NULL, 1000, &error)) == NULL)
		abort();
	memcpy(msg, data, size);
	msg[size] = '\0';
	body = strstr(msg, "\n\n");
	if (body != NULL) {
		*body = '\0';
		body += 2;
	}
	m = dkimverify_start(the_verifier, "fuzz");
	/* a header is a line and its continuation lines (LF-separated, as Postfix sends) */
	for (line = msg; *line != '\0';) {
		char *end = line, *colon;

		while ((end = strchr(end, '\n')) != NULL && (end[1] == ' ' || end[1] == '\t'))
			end++;
		if (end != NULL)
			*end = '\0';
		if ((colon = strchr(line, ':')) != NULL) {
			*colon = '\0';
			dkimverify_header(m, line, colon + 1 + (colon[1] == ' '));
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
	dkimverify_eoh(m);
	if (body != NULL)
		for (p = body; *p != '\0';) {
			size_t n = strnlen(p, 64);

			dkimverify_body(m, (const unsigned char *)p, n);
			p += n;
		}
	dkimverify_eom(m, "example.org", &res);
	if (res.nsigs != 0 || res.why == NULL)
		abort();
	dkimverify_msg_free(&m);
	/* the alignment rule on two halves of the input */
	if (size > 1) {
		char *a = strndup((const char *)data, size / 2);
		char *b = strndup((const char *)data + size / 2, size - size / 2);

		if (dkimverify_aligned(a, b)) {
			size_t la = strlen(a), lb = strlen(b);

			if (la > 0 && a[la - 1] == '.')
				la--;
			if (lb > 0 && b[lb - 1] == '.')
				lb--;
			if (lb < la || strncasecmp(b + lb - la, a, la) != 0 ||
			    (lb > la && b[lb - la - 1] != '.'))
				abort();
		}
		free(a);
		free(b);
	}
	free(msg);
	return 0;
}
