/*
 * ingest_load - benchmark load generator: send the records of a file (one event per line)
 * to statusd's event socket, pipelined with at most WINDOW unanswered, and report how long
 * it took until the last acknowledgement. Uses the same evclient as the producers.
 *
 *	ingest_load SOCKET FILE [WINDOW]
 *
 * Prints one line: "events N acked A errors E seconds S rate R".
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evclient.h"
#include "mbuf.h"
#include "msg.h"
#include "rfc3339.h"

struct counts {
	long acked, errors;
	const char *first_error;
};

static void
on_reply(void *ctx, uint64_t cookie, bool ok, const char *error)
{
	struct counts *c = ctx;

	if (ok)
		c->acked++;
	else if (c->errors++ == 0)
		fprintf(stderr, "ingest_load: first error (record %llu): %s\n",
		        (unsigned long long)cookie, error);
}

int
main(int argc, char **argv)
{
	struct mbuf data = MBUF_INIT;
	struct counts counts = {0};
	struct evclient *c;
	const char *error;
	char chunk[65536];
	size_t n, pos = 0;
	long total = 0, sent = 0, window;
	FILE *fp;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: ingest_load SOCKET FILE [WINDOW]\n");
		return 2;
	}
	window = argc == 4 ? atol(argv[3]) : 20000;
	msg_open("ingest_load", MSG_TARGET_STDERR, 0);
	if ((fp = fopen(argv[2], "r")) == NULL)
		msg_fatal("open %s", argv[2]);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		mbuf_append(&data, chunk, n);
	fclose(fp);
	for (size_t i = 0; i < data.len; i++)
		total += data.data[i] == '\n';

	c = evclient_new(argv[1]);
	if (evclient_connect(c, &error) < 0)
		msg_fatal("%s", error);
	int64_t start = time_mono_ms();
	while (counts.acked + counts.errors < total) {
		while (sent < total && sent - counts.acked - counts.errors < window) {
			char *nl = memchr(data.data + pos, '\n', data.len - pos);
			size_t len = (size_t)(nl - (data.data + pos)) + 1;
			evclient_queue(c, data.data + pos, len, (uint64_t)sent + 1);
			pos += len;
			sent++;
		}
		struct pollfd pfd = {evclient_fd(c),
		                     POLLIN | (evclient_want_write(c) ? POLLOUT : 0), 0};
		if (poll(&pfd, 1, 30000) <= 0)
			msg_fatal("no progress for 30 s (%ld of %ld answered)",
			          counts.acked + counts.errors, total);
		if ((pfd.revents & POLLOUT) && evclient_flush(c, &error) < 0)
			msg_fatal("%s", error);
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) &&
		    evclient_read(c, on_reply, &counts, &error) < 0)
			msg_fatal("%s", error);
	}
	double secs = (double)(time_mono_ms() - start) / 1000.0;
	printf("events %ld acked %ld errors %ld seconds %.3f rate %.0f\n", total, counts.acked,
	       counts.errors, secs, (double)total / secs);
	evclient_free(&c);
	mbuf_free(&data);
	return counts.errors ? 1 : 0;
}
