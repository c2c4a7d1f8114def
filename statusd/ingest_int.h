/*
 * ingest_int - what the two halves of statusd's event socket share: the connections and
 * their reply queues (ingest.c) and the batches that go to PostgreSQL (ingest_batch.c).
 * Not for other modules: they use ingest.h.
 */
#ifndef INGEST_INT_H
#define INGEST_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dbworker.h"
#include "ingest.h"
#include "ingest_fast.h"
#include "mbuf.h"
#include "msevent.h"
#include "store.h"

enum slot_state { SLOT_WAIT, SLOT_ACK, SLOT_NAK };
/* What the reply to an mdn event adds: nothing (another event), "mdn":"send" (a notification
   goes or went out for that message: the plugin sets $MDNSent), "mdn":"none". */
enum { MDN_REPLY_NONE, MDN_REPLY_SEND, MDN_REPLY_NOT };

struct ingest_mdn; /* an mdn event's request (ingest_batch.c) */

/* One record's place in its connection's reply queue. */
struct slot {
	uint64_t seq;
	uint8_t state;
	uint8_t mdn; /* an mdn event's answer (SLOT_ACK): MDN_REPLY_* */
	char id[MSEVENT_ID_MAX + 1];
	char *error; /* SLOT_NAK */
};

struct conn {
	uv_pipe_t pipe;
	struct ingest *ing;
	struct mbuf in;     /* bytes read and not yet framed */
	bool discarding;    /* skipping the rest of an oversized record */
	uint64_t next_seq;  /* seq of the next record */
	struct slot *slots; /* reply queue: slots[head .. head + count) */
	size_t head, count, cap;
	size_t write_queue; /* reply bytes handed to uv_write, not yet written */
	int refs;           /* 1 while open + one per batch entry */
	unsigned rejected;
	bool eof, closed, reading, blocked;
	char peer[64];
	struct conn *next, *prev;
	/* an in-process source (ingest_source_start) instead of a socket */
	bool is_source;
	unsigned acked;
	void (*source_done)(void *ctx, unsigned acked, unsigned rejected);
	void *source_ctx;
};

struct batch_ref {
	struct conn *conn;
	uint64_t seq;
	size_t row_start, row_len; /* the event's COPY row in copy (none for mdn) */
	struct ingest_mdn *mdn;    /* an mdn event: decided, not stored in the log */
	bool mdn_send;             /* the worker's answer to it */
};

struct batch {
	struct dbjob job;
	struct ingest *ing;
	struct mbuf copy;
	int count;
	bool inbound;    /* some of its events are inbound ones (MSEV_INBOUND) */
	bool reports;    /* some are reports (MSEV_REPORT) */
	bool fedout;     /* some may be reported to other sites (ingest_fedout_candidate) */
	bool outbox_run; /* decided at submit: run the outbox step (sql/011) */
	struct store_outbox outbox; /* its policy and result */
	enum ingest_path path;      /* how the worker stored it (the last try) */
	struct batch_ref *refs;
	/* results, filled by the worker */
	struct store_logged *logged; /* what entered the log, for the feeds */
	size_t nlogged;
	char **errors; /* per entry, NULL or a permanent error */
	int64_t head, epoch;
	int64_t started_ms, took_ms;
};

struct ingest {
	uv_loop_t *loop;
	const struct sd_config *cfg;
	struct dbworker *db;
	uv_pipe_t server;
	uv_check_t check;
	bool server_open;
	struct conn *conns;
	struct batch *filling;  /* collecting events */
	struct batch *inflight; /* in the database */
	struct json_tokener *tok;
	struct ingest_stats stats;
	bool shutting_down;
	bool fed_no_inbound; /* the outbox step said that no other site's mail is remembered */
	bool outbox_schema;  /* worker thread: the database has the outbox (schema 011) */
	bool steps_schema;   /* worker thread: it has the ingest's steps (schema 012) */
	bool small_schema;   /* worker thread: it has the small batch's call (schema 017) */
	bool fast_schema;    /* worker thread: it has the fast path (schema 019) */
	void (*on_logged)(void *, const struct store_logged *, size_t);
	void *on_logged_ctx;
	bool freeing;     /* ingest_free() called: free once every handle is closed */
	unsigned handles; /* open libuv handles: server, check, connections */
	void (*shutdown_done)(void *);
	void *shutdown_ctx;
};

/* ingest_batch.c */
struct batch *ingest_batch_new(struct ingest *ing);
void ingest_batch_free(struct batch *b);
/* Is the batch being filled at ingest_batch_max events? */
bool ingest_batch_full(const struct ingest *ing);
/* Hand the batch being filled to the database, unless one is there already. */
void ingest_batch_submit(struct ingest *ing);
/* The loop's check handle: after each iteration's I/O, ingest_batch_submit(). */
void ingest_on_check(uv_check_t *handle);
/* An mdn event's request, copied out of ev (which the caller clears). */
struct ingest_mdn *ingest_mdn_new(const struct msevent *ev);

/* ingest.c */
/* Send the replies that are ready, in order. */
void ingest_conn_flush(struct conn *c);
/* Close the connection once it is done with and nothing refers to it. */
void ingest_conn_maybe_close(struct conn *c);
/* Frame and handle what the connection has read. */
void ingest_conn_process(struct conn *c);

#endif
