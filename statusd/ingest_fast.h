#ifndef INGEST_FAST_H
#define INGEST_FAST_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "mbuf.h"
#include "store.h"

/* The way a batch was stored (ingest_fast_store). */
enum ingest_path {
	INGEST_PATH_TODAY,    /* not the plain case (or not tried): store_ingest()'s steps */
	INGEST_PATH_FAST,     /* the fast path: events COPYed numbered, folded here */
	INGEST_PATH_DECLINED, /* msgstatus_fast_begin() said no: today's steps after it */
	INGEST_PATH_REPLAY,   /* the COPY met a stored event: today's steps after it */
};

/* Whether the database has the fast path (schema 019). */
int ingest_fast_available(PGconn *conn, bool *available_r, const char **error_r);

/*
 * Store a batch (copy: store_copy_row's rows, of a batch without inbound events, reports or
 * an outbox step) on the fast path of schema 019 when its events are all the plain case, as
 * store_ingest() would store it, with the same results. *path_r says how: INGEST_PATH_TODAY
 * means nothing was done (the rows are not the plain case): the caller stores the batch
 * with store_ingest(). 0 or -1 with *error_r and *transient_r (then nothing was stored).
 */
int ingest_fast_store(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
                      size_t *nlogged_r, int64_t *head_r, int64_t *epoch_r,
                      enum ingest_path *path_r, bool *transient_r, const char **error_r);

#endif
