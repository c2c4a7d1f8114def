/*
 * shipper - a thread that ships a spool (lib/spool.h) to statusd's event socket.
 *
 * Used by the producers that are daemons: msgstatus-milter and msgstatus-logd. They only
 * append to their spool (local writes, never the network); the shipper reads the spool
 * from its cursor, pipelines the records to statusd (lib/evclient.h) with at most
 * SHIPPER_WINDOW unanswered, and moves the cursor as answers arrive, in order.
 *
 * DESIGN
 *	When statusd is away the shipper retries with backoff (100 ms to 5 s) and the spool
 *	grows; when it is back, sending resumes from the cursor. What was sent but not
 *	answered when a connection broke is sent again; statusd recognizes the duplicates by
 *	their ids. A record statusd rejects for good is logged and passed. Threads: the
 *	shipper's own; shipper_set_socket and shipper_stats may be called from any thread.
 */
#ifndef SHIPPER_H
#define SHIPPER_H

#include <stdint.h>

struct spool;
struct shipper;

struct shipper_stats {
	uint64_t acked, rejected;
	unsigned connected;
};

/* Start shipping sp to the event socket at socket_path. */
struct shipper *shipper_start(struct spool *sp, const char *socket_path);
/* Ship to another socket from the next turn on (after a configuration reload). */
void shipper_set_socket(struct shipper *s, const char *socket_path);
/* Stop: finish what is in flight for at most grace_ms, then join the thread. */
void shipper_stop(struct shipper **s, int grace_ms);
void shipper_stats(struct shipper *s, struct shipper_stats *out);

#endif
