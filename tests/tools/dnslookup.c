/*
 * dnslookup - federation/resolver.c driven from the command line, for the end-to-end
 * tests against a private DNS server (tests/e2e/test_resolver.py):
 *
 *	dnslookup [-s ADDRESS@PORT] [-t TIMEOUT_MS] [-m MAX_TTL_MS] STEP...
 *
 * A STEP is a name (its TXT records are looked up through the one resolver and its cache,
 * and printed as "NAME STATUS N [TEXT]..." on one line, texts in brackets), "sleep:MS", or
 * "par:K:NAME" (K threads look NAME up at once, each printing its line).
 * At the end: "queries=Q hits=H joined=J" (lookups that went to the server, answers from
 * the cache, lookups that waited for the same name's lookup in flight).
 * Exit status 0, or 2 for bad usage or a resolver that cannot be set up.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "resolver.h"

static const char *const status_names[] = {"ok", "nodata", "tempfail", "bogus"};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void
lookup(struct resolver *r, const char *name)
{
	const char *error = NULL;
	struct dns_txt *t = resolver_txt(r, name, &error);

	pthread_mutex_lock(&out_lock);
	printf("%s %s %zu", name, status_names[t->status], t->n);
	for (size_t j = 0; j < t->n; j++)
		printf(" [%s]", t->data[j]);
	if (error != NULL && t->status != DNS_OK && t->status != DNS_NODATA)
		printf(" (%s)", error);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	dns_txt_free(&t);
}

struct par {
	struct resolver *r;
	const char *name;
	pthread_barrier_t *start;
};

static void *
par_main(void *arg)
{
	struct par *p = arg;

	pthread_barrier_wait(p->start);
	lookup(p->r, p->name);
	return NULL;
}

/* "par:K:NAME": K threads look NAME up at once. */
static void
parallel(struct resolver *r, const char *step)
{
	char *end;
	long k = strtol(step + 4, &end, 10);
	pthread_t th[64];
	pthread_barrier_t start;
	struct par p = {r, end + 1, &start};

	if (k < 1 || k > 64 || *end != ':') {
		fprintf(stderr, "dnslookup: expected par:K:NAME, K 1..64\n");
		exit(2);
	}
	pthread_barrier_init(&start, NULL, (unsigned)k);
	for (long i = 0; i < k; i++)
		pthread_create(&th[i], NULL, par_main, &p);
	for (long i = 0; i < k; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
}

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
	uint64_t queries, hits, joined;
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
		if (strncmp(argv[i], "sleep:", 6) == 0) {
			long ms = atol(argv[i] + 6);
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			continue;
		}
		if (strncmp(argv[i], "par:", 4) == 0) {
			parallel(r, argv[i]);
			continue;
		}
		lookup(r, argv[i]);
	}
	resolver_counters(r, &queries, &hits, &joined);
	printf("queries=%llu hits=%llu joined=%llu\n", (unsigned long long)queries,
	       (unsigned long long)hits, (unsigned long long)joined);
	resolver_free(&r);
	return 0;
}
