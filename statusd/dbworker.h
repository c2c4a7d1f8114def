/*
 * dbworker - PostgreSQL work off the event loop (after Redis bio.c).
 *
 * statusd's event loop never waits for PostgreSQL. Work that needs the database is a job;
 * a job goes to a queue, and each queue has its worker thread with its own libpq
 * connection, so the order of jobs in one queue is kept (the ingest queue relies on that).
 * When a job is finished the worker posts it back and the loop thread calls its done
 * function.
 *
 * DESIGN
 *	Threads: the loop thread submits and completes jobs; each worker thread only runs
 *	job->run() and owns its PGconn. A job belongs to the queue from submit until done()
 *	is called on the loop thread; done() owns it afterwards.
 *	Connections: a worker connects lazily, runs the queue's on_connect hook (session set-up,
 *	migrations) and reconnects with exponential backoff; job->run() reports a lost
 *	connection with DBW_RETRY and is run again once the connection is back.
 *	A worker can be held until another one is ready (statusd holds its query worker until
 *	the ingest worker has the schema in place): a held worker does not connect; its
 *	no_retry jobs fail at once and the others wait for the release.
 *
 * DIAGNOSTICS
 *	Connection trouble is logged once per outage, not once per attempt.
 */
#ifndef DBWORKER_H
#define DBWORKER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <uv.h>

struct dbworker;
struct dbjob;

enum dbw_result {
	DBW_DONE,  /* finished (successfully or with an error the job records itself) */
	DBW_RETRY, /* the database went away; run me again after reconnecting */
};

struct dbjob {
	enum dbw_result (*run)(struct dbjob *job, PGconn *conn); /* worker thread */
	void (*done)(struct dbjob *job);                         /* loop thread */
	bool no_retry;      /* fail fast: when the database is down, call done() with failed set */
	bool failed;        /* set by the worker when no_retry and no connection */
	struct dbjob *next; /* queue link, private */
};

/*
 * Start a worker. name is for logs; on_connect (may be NULL) runs after every new connection
 * and returns 0, or -1 with *error_r to drop the connection and retry later; fatal problems
 * (a schema newer than this program) it reports with msg_fatal.
 */
struct dbworker *dbworker_start(uv_loop_t *loop, const char *name, const char *conninfo,
                                long long retry_max_ms,
                                int (*on_connect)(PGconn *conn, void *ctx, const char **error_r),
                                void *ctx);
/* Hold a worker that has no jobs yet (loop thread): see DESIGN. */
void dbworker_hold(struct dbworker *w);
/* Let a held worker connect and run its jobs. Any thread, any number of times. */
void dbworker_release(struct dbworker *w);
/* Queue a job (loop thread). */
void dbworker_submit(struct dbworker *w, struct dbjob *job);
/*
 * Stop: jobs not yet started are completed with failed set, a running job is asked to
 * stop retrying; the thread is joined and the worker freed. Call from the loop thread
 * with the loop still able to run close callbacks.
 */
void dbworker_stop(struct dbworker **w);

#endif
