/*
 * spool - a durable, append-only journal of event records with a delivery cursor.
 *
 * The milter writes every event here before it lets the message go, and a sender thread
 * reads the journal and ships it to statusd; what statusd acknowledged is behind the
 * cursor. So an event survives a crash of the milter, of statusd or of PostgreSQL, and
 * statusd being down only makes the journal grow. Replays after a crash resend from the
 * cursor; statusd recognizes the events it has by their ids, so nothing is counted twice.
 *
 * On disk: DIR/NNNNNNNNNN.spool segments (records are wire lines, newline-terminated),
 * DIR/cursor ("segment offset"), DIR/lock (flock: one process per spool). A process
 * writes only to a segment it created, so a torn tail from a crash is always in a closed
 * segment, where the reader skips it with a warning.
 *
 * DESIGN
 *	Threads: any number of writers (spool_append, under the spool's mutex), one reader,
 *	which polls spool_notify_fd() to learn of appends. An append signals that descriptor
 *	only when the reader has armed it (spool_notify_arm: it has read everything and waits
 *	for more), so a reader that is busy, behind, or not reading at all (statusd down)
 *	costs the writers no system call and itself no wake-up per record.
 *	Durability: by default a record is in the kernel when spool_append() returns (it
 *	survives the process); fsync happens in spool_commit() and at rotation, or on every
 *	append with sync_each.
 *
 * DIAGNOSTICS
 *	0/-1 with *error_r. A full spool (total_max) is an error for the appender: the caller
 *	must say so loudly and go on without the event (mail before bookkeeping).
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbuf;
struct spool;

struct spool_pos {
	uint64_t segment;
	uint64_t offset; /* just after a record */
};

struct spool_stats {
	uint64_t bytes;   /* on disk, all segments */
	uint64_t backlog; /* bytes behind the write end and ahead of the cursor */
	unsigned segments;
	uint64_t appended; /* records appended by this process */
	uint64_t rejected; /* appends refused because the spool was full */
};

/* Open (creating dir if missing, mode 0700) and lock; start a new write segment. */
struct spool *spool_open(const char *dir, uint64_t segment_max, uint64_t total_max, bool sync_each,
                         const char **error_r);
void spool_close(struct spool **sp);

/* Append one record (len bytes ending in '\n'). Thread-safe. */
int spool_append(struct spool *sp, const char *rec, size_t len, const char **error_r);

/*
 * Reader: the next record after the read position, into out (replacing its contents), and
 * the position just after it in *pos_r. Returns 1, 0 when there is nothing more now, -1.
 */
int spool_read(struct spool *sp, struct mbuf *out, struct spool_pos *pos_r, const char **error_r);
/* Wake a reader polling spool_notify_fd (for shutdown). */
void spool_wakeup(struct spool *sp);
/*
 * An eventfd that becomes readable on spool_wakeup and after the first append that follows
 * spool_notify_arm(), for a reader that poll()s it together with other descriptors;
 * spool_notify_clear() resets it.
 */
int spool_notify_fd(struct spool *sp);
void spool_notify_clear(struct spool *sp);
/*
 * Reader: ask to be woken by the next append. false (and nothing armed) if records were
 * appended that the reader has not read yet: read them instead of waiting. An append
 * disarms it; so does nothing else.
 */
bool spool_notify_arm(struct spool *sp);
/* Everything up to pos is delivered: move the cursor, fsync, drop finished segments. */
int spool_commit(struct spool *sp, const struct spool_pos *pos, const char **error_r);
/* Move the read position back to the cursor (the connection broke; resend from there). */
void spool_rewind(struct spool *sp);

void spool_stats(struct spool *sp, struct spool_stats *out);

#endif
