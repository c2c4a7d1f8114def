/*
 * dnslookup - federation/resolver.c driven from the command line, for the end-to-end
 * tests against a private DNS server (tests/e2e/test_resolver.py):
 *
 *	dnslookup [-s ADDRESS@PORT] [-t TIMEOUT_MS] [-m MAX_TTL_MS] STEP...
 *
 * A STEP is a name (its TXT records are looked up through the one resolver and its cache,
 * and printed as "NAME STATUS N [TEXT]..." on one line, texts in brackets) or "sleep:MS".
 * At the end: "queries=Q hits=H" (lookups that went to the server, answers from the cache).
 * Exit status 0, or 2 for bad usage or a resolver that cannot be set up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "resolver.h"

static const char *const status_names[] = {"ok", "nodata", "tempfail", "bogus"};

int
main(int argc, char **argv)
{
	struct resolver_settings s = {
	        .timeout_ms = 3000,
	        .cache_max_ttl_ms = 3600000,
	        .negative_ttl_ms = 60000,
	        .cache_max_entries = 1000,
	};
	struct resolver *r;
	const char *error;
	uint64_t queries, hits;
	int ch;

	msg_open("dnslookup", MSG_TARGET_STDERR, 0);
	while ((ch = getopt(argc, argv, "s:t:m:")) != -1) {
		switch (ch) {
		case 's':
			s.server = optarg;
			break;
		case 't':
			s.timeout_ms = atoll(optarg);
			break;
		case 'm':
			s.cache_max_ttl_ms = atoll(optarg);
			break;
		default:
			fprintf(stderr,
			        "usage: dnslookup [-s ADDRESS@PORT] [-t MS] [-m MS] STEP...\n");
			return 2;
		}
	}
	if ((r = resolver_new(&s, &error)) == NULL) {
		fprintf(stderr, "dnslookup: %s\n", error);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		struct dns_txt *t;

		if (strncmp(argv[i], "sleep:", 6) == 0) {
			long ms = atol(argv[i] + 6);
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			continue;
		}
		error = NULL;
		t = resolver_txt(r, argv[i], &error);
		printf("%s %s %zu", argv[i], status_names[t->status], t->n);
		for (size_t j = 0; j < t->n; j++)
			printf(" [%s]", t->data[j]);
		if (error != NULL && t->status != DNS_OK && t->status != DNS_NODATA)
			printf(" (%s)", error);
		printf("\n");
		fflush(stdout);
		dns_txt_free(&t);
	}
	resolver_counters(r, &queries, &hits);
	printf("queries=%llu hits=%llu\n", (unsigned long long)queries, (unsigned long long)hits);
	resolver_free(&r);
	return 0;
}
