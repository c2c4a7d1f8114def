/*
 * pflog_bench - benchmark of the Postfix log-line parser (logd/pflog).
 *
 *	pflog_bench [-t] FILE [ROUNDS]	read FILE into memory, then split it into lines and
 *					parse every line, ROUNDS times (default 5)
 *	pflog_bench -s FILE		read FILE in 1 MiB chunks and parse it once, as a log
 *					follower does (the whole process is what is timed)
 *	pflog_bench -e FILE [ROUNDS [N]]
 *		what msgstatus-logd does per line (pfevent_line(): parse, the Message-ID
 *		cache, the event): the CPU time of each delivery line (the cost of reading
 *		the clock, measured first, taken off), (1) with every line of FILE in order,
 *		so that a delivery's queue id was cached by its cleanup line, and (2)
 *		uncached: the first N (default 2000) delivery lines alone, after 100,000
 *		Message-IDs of other queue ids have filled the cache as in a busy logd
 *
 * A round is what a log follower does with a buffer it has read: find each newline
 * (memchr) and call pflog_parse() on the line. Prints each round's rate, the best and the
 * median, and the lines per kind and per delivery status; -t adds the rate of pflog_time()
 * over the delivery lines (it calls mktime(), so it is measured apart). The last line is
 * machine-readable for bench/pflog.py:
 *	RESULT lines=N bytes=B best_lines_per_sec=X median_lines_per_sec=Y read_seconds=R
 *	RESULT_STREAM lines=N bytes=B seconds=S lines_per_sec=X		(with -s)
 *	RESULT_EVENTS delivery_lines=N cached_ns=X cached_hits=H uncached_lines=U
 *	              uncached_ns=Y						(with -e;
 *	              medians over ROUNDS of the mean per delivery line)
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbuf.h"
#include "pfevent.h"
#include "pflog.h"

#define CACHE_SIZE 100000 /* msgstatus-logd's Message-ID cache */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this thread: the machine may be shared, and wall time then counts others' work. */
static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct counts {
	long lines, kinds[PFLOG_BOUNCE + 1], statuses[PFLOG_EXPIRED_STATUS + 1];
	size_t checksum; /* keeps the results observable */
};

static void
parse_all(const char *data, size_t len, struct counts *c)
{
	const char *p = data, *end = data + len;
	struct pflog_rec rec;

	memset(c, 0, sizeof(*c));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		enum pflog_kind k = pflog_parse(p, (size_t)(eol - p), &rec);

		c->lines++;
		c->kinds[k]++;
		if (k == PFLOG_DELIVERY)
			c->statuses[rec.status]++;
		c->checksum += rec.queue_id.len + rec.status_text.len;
		p = eol + 1;
	}
}

/* -s: read(2)-sized chunks into one reused buffer, a partial last line carried over. */
static int
stream(const char *path)
{
	size_t cap = 1 << 20, have = 0;
	char *buf = malloc(cap);
	struct counts c = {0}, part;
	double t0 = now_s(), e;
	long bytes = 0;
	FILE *fp = fopen(path, "rb");

	if (fp == NULL || buf == NULL) {
		perror(path);
		return 1;
	}
	for (;;) {
		size_t n = fread(buf + have, 1, cap - have, fp);
		char *last;
		size_t done;

		bytes += (long)n;
		have += n;
		if (n == 0) {
			if (have > 0) { /* a last line without a newline */
				parse_all(buf, have, &part);
				c.lines += part.lines;
				c.checksum += part.checksum;
			}
			break;
		}
		if ((last = memrchr(buf, '\n', have)) == NULL) {
			if (have == cap && (buf = realloc(buf, cap *= 2)) == NULL)
				return 1;
			continue;
		}
		done = (size_t)(last - buf) + 1;
		parse_all(buf, done, &part);
		c.lines += part.lines;
		c.checksum += part.checksum;
		memmove(buf, buf + done, have - done);
		have -= done;
	}
	fclose(fp);
	free(buf);
	e = now_s() - t0;
	printf("stream: %ld lines, %ld bytes in %.3f s: %.0f lines/s (checksum %zu)\n", c.lines,
	       bytes, e, (double)c.lines / e, c.checksum);
	printf("RESULT_STREAM lines=%ld bytes=%ld seconds=%.3f lines_per_sec=%.0f\n", c.lines,
	       bytes, e, (double)c.lines / e);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	long flen;
	char *data;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (flen = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0 || (data = malloc((size_t)flen + 1)) == NULL ||
	    fread(data, 1, (size_t)flen, fp) != (size_t)flen) {
		perror(path);
		exit(1);
	}
	fclose(fp);
	*len = (size_t)flen;
	return data;
}

/*
 * One pass of pfevent_line() over the lines of data. Lines of the kinds in "timed" are timed
 * one by one (their sum is returned, in seconds; *timed_n counts them and *hits those whose
 * event carries a Message-ID); lines of the kinds in "skip" are not fed at all; at most
 * max_timed lines are timed, then the pass ends.
 */
static double clock_cost; /* of a cpu_s() pair, subtracted from each timed line */

static double
event_pass(struct pfevent *pe, const char *data, size_t len, unsigned timed, unsigned skip,
           long max_timed, long *timed_n, long *hits)
{
	const char *p = data, *end = data + len;
	struct mbuf out = MBUF_INIT;
	struct pflog_rec rec;
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	double sum = 0;

	*timed_n = *hits = 0;
	while (p < end && *timed_n < max_timed) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - p);
		unsigned kind = 1u << pflog_parse(p, n, &rec);

		if (kind & timed) {
			double s = cpu_s();
			pfevent_line(pe, p, n, now_ms, &out);
			sum += cpu_s() - s - clock_cost;
			++*timed_n;
			*hits += out.len > 0 && memmem(out.data, out.len, "\"message_id\"", 12);
		} else if (!(kind & skip))
			pfevent_line(pe, p, n, now_ms, &out);
		mbuf_reset(&out);
		p = eol + 1;
	}
	mbuf_free(&out);
	return sum;
}

/* -e: the cost of a delivery line in pfevent_line(), with and without a cached queue id. */
static int
events(const char *path, int rounds, long uncached_max)
{
	const unsigned delivery = 1u << PFLOG_DELIVERY | 1u << PFLOG_EXPIRED;
	double *cached = calloc((size_t)rounds, sizeof(double));
	double *uncached = calloc((size_t)rounds, sizeof(double));
	long n = 0, hits = 0, un = 0, unhits = 0;
	size_t len;
	char *data = slurp(path, &len);
	struct mbuf out = MBUF_INIT;
	char line[160];

	/* as msgstatus-logd does: name the zone file once (else mktime() stats it per call) */
	setenv("TZ", ":/etc/localtime", 0);
	if (cached == NULL || uncached == NULL)
		return 1;
	for (int i = 0; i < 100000; i++) {
		double s = cpu_s();
		clock_cost += cpu_s() - s;
	}
	clock_cost /= 100000;
	for (int r = 0; r < rounds; r++) {
		struct pfevent *pe = pfevent_new("lmtp,local,virtual", "postfix", CACHE_SIZE);
		cached[r] = event_pass(pe, data, len, delivery, 0, LONG_MAX, &n, &hits) / (double)n;
		pfevent_free(&pe);

		pe = pfevent_new("lmtp,local,virtual", "postfix", CACHE_SIZE);
		for (int i = 0; i < CACHE_SIZE; i++) {
			int k = snprintf(line, sizeof(line),
			                 "Nov 22 13:37:02 mail postfix/cleanup[1]: Q%08X: "
			                 "message-id=<%d.bench@example.com>",
			                 (unsigned)i, i);
			pfevent_line(pe, line, (size_t)k, 0, &out);
		}
		/* the file's own cleanup lines are not fed: every queue id misses */
		uncached[r] = event_pass(pe, data, len, delivery, 1u << PFLOG_MSGID, uncached_max,
		                         &un, &unhits) /
		              (double)(un ? un : 1);
		pfevent_free(&pe);
		printf("round %d: cached %.2f us CPU per delivery line (%ld lines, %ld with a "
		       "Message-ID), uncached %.2f us (%ld lines, %ld with a Message-ID)\n",
		       r + 1, cached[r] * 1e6, n, hits, uncached[r] * 1e6, un, unhits);
		fflush(stdout);
	}
	qsort(cached, (size_t)rounds, sizeof(double), cmp_double);
	qsort(uncached, (size_t)rounds, sizeof(double), cmp_double);
	printf("RESULT_EVENTS delivery_lines=%ld cached_ns=%.0f cached_hits=%ld uncached_lines=%ld "
	       "uncached_ns=%.0f\n",
	       n, cached[rounds / 2] * 1e9, hits, un, uncached[rounds / 2] * 1e9);
	mbuf_free(&out);
	free(cached);
	free(uncached);
	free(data);
	return 0;
}

int
main(int argc, char **argv)
{
	static const char *const kinds[] = {"other",   "delivery", "queued", "expired",
	                                    "removed", "msgid",    "bounce"};
	static const char *const statuses[] = {"none", "sent", "deferred", "bounced", "expired"};
	struct counts c;
	double *rates, t0, read_s;
	int rounds;
	char *data;
	long flen;
	FILE *fp;

	int with_time = 0;

	if (argc == 3 && strcmp(argv[1], "-s") == 0)
		return stream(argv[2]);
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "-e") == 0) {
		rounds = argc > 3 ? atoi(argv[3]) : 5;
		return events(argv[2], rounds < 1 ? 1 : rounds, argc > 4 ? atol(argv[4]) : 2000);
	}
	if (argc > 1 && strcmp(argv[1], "-t") == 0) {
		with_time = 1;
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3 || argv[1][0] == '-') {
		fprintf(stderr,
		        "usage: pflog_bench [-t] FILE [ROUNDS]\n       pflog_bench -s FILE\n"
		        "       pflog_bench -e FILE [ROUNDS [UNCACHED_LINES]]\n");
		return 2;
	}
	rounds = argc == 3 ? atoi(argv[2]) : 5;
	if (rounds < 1)
		rounds = 1;
	t0 = now_s();
	if ((fp = fopen(argv[1], "rb")) == NULL || fseek(fp, 0, SEEK_END) != 0 ||
	    (flen = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
		perror(argv[1]);
		return 1;
	}
	if ((data = malloc((size_t)flen + 1)) == NULL ||
	    fread(data, 1, (size_t)flen, fp) != (size_t)flen) {
		perror(argv[1]);
		return 1;
	}
	fclose(fp);
	read_s = now_s() - t0;
	if ((rates = calloc((size_t)rounds, sizeof(double))) == NULL)
		return 1;
	for (int r = 0; r < rounds; r++) {
		double s = now_s(), e;
		parse_all(data, (size_t)flen, &c);
		e = now_s() - s;
		rates[r] = (double)c.lines / e;
		printf("round %d: %ld lines in %.3f s: %.0f lines/s, %.1f MB/s\n", r + 1, c.lines,
		       e, rates[r], (double)flen / e / 1e6);
	}
	for (int k = 0; k <= PFLOG_BOUNCE; k++)
		printf("kind %-8s %10ld  %5.1f%%\n", kinds[k], c.kinds[k],
		       100.0 * (double)c.kinds[k] / (double)(c.lines ? c.lines : 1));
	for (int s = 1; s <= PFLOG_EXPIRED_STATUS; s++)
		printf("status %-8s %8ld\n", statuses[s], c.statuses[s]);

	/* pflog_time over the delivery lines (one pass) */
	if (with_time) {
		const char *p = data, *end = data + flen;
		struct pflog_rec rec;
		long calls = 0, bad = 0;
		double s = now_s(), e;
		int64_t now_ms = (int64_t)time(NULL) * 1000;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *eol = nl ? nl : end;
			if (pflog_parse(p, (size_t)(eol - p), &rec) == PFLOG_DELIVERY) {
				calls++;
				bad += pflog_time(&rec.timestamp, now_ms) < 0;
			}
			p = eol + 1;
		}
		e = now_s() - s;
		printf("parse + pflog_time on %ld delivery lines: %.3f s (%ld unparsable times)\n",
		       calls, e, bad);
	}
	qsort(rates, (size_t)rounds, sizeof(double), cmp_double);
	printf("best %.0f lines/s, median %.0f lines/s (checksum %zu)\n", rates[rounds - 1],
	       rates[rounds / 2], c.checksum);
	printf("RESULT lines=%ld bytes=%ld best_lines_per_sec=%.0f median_lines_per_sec=%.0f "
	       "read_seconds=%.3f\n",
	       c.lines, flen, rates[rounds - 1], rates[rounds / 2], read_s);
	free(rates);
	free(data);
	return 0;
}
