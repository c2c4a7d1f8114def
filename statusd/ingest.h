/*
 * ingest - statusd's event socket: read records from producers, validate them, store them
 * in batches, and acknowledge each one only after the batch holding it is committed.
 *
 * DESIGN
 *	One listening UNIX socket on the loop thread; each connection is a stream of records
 *	(docs/protocol.md). Every record gets exactly one reply, in the order the records
 *	came: "ack" once it is durably stored (or was already), "error" when it can never be
 *	stored. Valid events from all connections collect in one batch; when no batch is in
 *	the database the batch is handed to the ingest dbworker at the end of the loop
 *	iteration (group commit). While a batch is in the database and the next one is full,
 *	or PostgreSQL is down, reading stops: producers keep their events (they spool) and
 *	nothing is acknowledged that is not stored.
 *	A batch that the database rejects as a whole (not a connection problem) is retried one
 *	event at a time so that one bad event cannot block the rest.
 *	An mdn event (the Dovecot plugin: a read that asks for a disposition notification) is
 *	not stored in the log: the same worker decides about it after the batch's events
 *	(store_mdn_decide, docs/mdn.md), and its ack says "mdn":"send" or "mdn":"none".
 *	Ownership: a connection lives until it is closed and no batch refers to it.
 *
 * SECURITY
 *	Records are untrusted: bounded in size (ingest_record_max), parsed by msevent_parse(),
 *	time-checked against the retention window; rejected ones are logged sanitized, at most
 *	a few per connection.
 */
#ifndef INGEST_H
#define INGEST_H

#include <stdint.h>
#include <uv.h>

struct dbworker;
struct sd_config;
struct msevent;

struct ingest;

struct ingest_stats {
	unsigned connections;
	uint64_t received;     /* records read */
	uint64_t logged;       /* events that entered the log */
	uint64_t rejected;     /* records answered with an error */
	unsigned pending;      /* events read and not yet acknowledged */
	int64_t head, epoch;   /* the log after the last batch (0 before the first) */
	uint64_t batches;      /* batches stored */
	int64_t batch_ms;      /* how long the last batch took in the database */
	int64_t lag_ms;        /* commit time minus the newest event's own time, last batch */
	uint64_t outbox_added; /* events put in the federation outbox (sql/011) */
	/* batches by the way they were stored (ingest_fast.h): the fast path, and today's
	   steps after msgstatus_fast_begin() said no or the COPY met a replay */
	uint64_t batches_fast, batches_declined, batches_replay;
};

/* Open the socket and start accepting. Fatal on a socket that cannot be set up. */
struct ingest *ingest_start(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db);
/*
 * Stop accepting and reading; store and acknowledge what was read. done() is called once
 * nothing is left in flight; ingest_free() then releases everything.
 */
void ingest_shutdown(struct ingest *ing, void (*done)(void *ctx), void *ctx);
void ingest_free(struct ingest **ing);

/*
 * Feed len bytes of records from an in-process source (a pickup file) through the same
 * validation, batching and storing as a connection's. done() is called once, on the loop
 * thread, when every record has its answer: acked were stored (or had been), rejected can
 * never be. If statusd stops first, done() is not called (the source is read again later).
 */
void ingest_source_start(struct ingest *ing, const char *name, const char *data, size_t len,
                         void (*done)(void *ctx, unsigned acked, unsigned rejected), void *ctx);
void ingest_stats(const struct ingest *ing, struct ingest_stats *out);

struct store_logged;
/* Called on the loop thread with what each committed batch put in the log (the feeds). */
void ingest_on_logged(struct ingest *ing,
                      void (*fn)(void *ctx, const struct store_logged *logged, size_t n),
                      void *ctx);

#endif
