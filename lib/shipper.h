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
 *	their ids. A record statusd rejects for good is logged and passed. Records the spool
 *	refused wait in memory (shipper_hold) and are sent once the spool has nothing more
 *	to send; they are not durable. Appends wake the shipper only when it has sent all
 *	the spool holds and waits for more (spool_notify_arm): while statusd is away, or
 *	while the shipper is behind, a record costs its writer one write(2) and the shipper
 *	nothing. Threads: the shipper's own; shipper_set_socket and shipper_hold may be
 *	called from any thread.
 */
#ifndef SHIPPER_H
#define SHIPPER_H

#include <stddef.h>
#include <stdint.h>

struct spool;
struct shipper;

/* Start shipping sp to the event socket at socket_path. */
struct shipper *shipper_start(struct spool *sp, const char *socket_path);
/* Ship to another socket from the next turn on (after a configuration reload). */
void shipper_set_socket(struct shipper *s, const char *socket_path);
/*
 * Hold records (whole lines) that the spool could not take (its disk full, spool_max_size
 * reached) in memory, up to HELD_MAX (1 MiB), and send them after what the spool holds,
 * as long as statusd is there. 0, or -1 when they do not fit. *held_r: the bytes held.
 * Any thread. What is still held at shipper_stop() is put in the spool if it takes it
 * then, and lost otherwise (logged with the count).
 */
int shipper_hold(struct shipper *s, const char *recs, size_t len, size_t *held_r);
/* Stop: finish what is in flight for at most grace_ms, then join the thread. */
void shipper_stop(struct shipper **s, int grace_ms);

#endif
