/*
 * fuzz_dnstxt - libFuzzer target for the TXT RDATA that the resolver takes from the DNS
 * (federation/dnscache.c, dns_txt_rdata) and the cache that keeps it. Invariants: a
 * splitter that accepts the bytes returns exactly the strings' bytes, concatenated, NUL
 * terminated; one that refuses returns nothing; a cached answer comes back equal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnscache.h"
#include "fedrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL;
	size_t len = 0, want = 0, pos = 0;
	struct fedrec_msr msr;
	struct fedrec_msk msk;
	const char *error;

	if (dns_txt_rdata(data, size, &text, &len) < 0) {
		if (text != NULL || len != 0)
			abort();
		return 0;
	}
	while (pos < size) {
		want += data[pos];
		pos += 1u + data[pos];
	}
	if (pos != size || len != want || text[len] != '\0')
		abort();
	/* what the federation does with it next */
	(void)fedrec_parse_msr(text, len, &msr, &error);
	(void)fedrec_parse_msk(text, len, &msk, &error);
	{
		struct dnscache *c = dnscache_new(4);
		struct dns_txt t = {.status = DNS_OK, .n = 1, .data = &text, .len = &len}, *got;

		dnscache_put(c, 16, "fuzz.example", &t, 0, 1000);
		got = dnscache_get(c, 16, "FUZZ.example.", 1);
		if (got == NULL || got->n != 1 || got->len[0] != len ||
		    memcmp(got->data[0], text, len) != 0)
			abort();
		dns_txt_free(&got);
		dnscache_free(&c);
	}
	free(text);
	return 0;
}
