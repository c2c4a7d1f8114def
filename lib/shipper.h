/*
 * sender - msgstatus-milter's thread that ships the spool to statusd.
 *
 * DESIGN
 *	The milter's callbacks only append to the spool (a local write, never the network).
 *	This thread reads the spool from its cursor, pipelines the records to statusd's event
 *	socket (lib/evclient.h) with at most SENDER_WINDOW unanswered, and moves the cursor as
 *	answers arrive, in order. When statusd is away it retries with backoff (100 ms to 5 s)
 *	and the spool grows; when it is back, sending resumes from the cursor. What was sent
 *	but not answered when a connection broke is sent again; statusd recognizes the
 *	duplicates. A record statusd rejects for good is logged and passed.
 */
#ifndef SENDER_H
#define SENDER_H

#include <stdint.h>

struct spool;
struct sender;

struct sender_stats {
	uint64_t acked, rejected;
	unsigned connected;
};

/* Start the thread; events_socket is read from the current configuration each turn. */
struct sender *sender_start(struct spool *sp);
/* Stop: finish sending what is in flight for at most grace_ms, then join. */
void sender_stop(struct sender **s, int grace_ms);
void sender_stats(struct sender *s, struct sender_stats *out);

#endif
