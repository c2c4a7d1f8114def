/*
 * store - what statusd and statusctl do in PostgreSQL: schema migrations, partition
 * maintenance, storing a batch of events, and reading a message's status.
 *
 * DESIGN
 *	Every function takes a connected PGconn and blocks on it; statusd calls them from its
 *	database threads (dbworker.h), statusctl directly. All SQL with data in it is
 *	parameterized or goes through COPY with escaping in one place (store_copy_row).
 *
 * DIAGNOSTICS
 *	Functions return 0 (or a count) on success and -1 with a one-line *error_r on failure;
 *	*transient_r, where present, tells whether retrying on a new connection may help.
 */
#ifndef STORE_H
#define STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "msevent.h"

struct json_object;
struct mbuf;

/* Whether a failed result is worth retrying on a fresh connection: the connection is gone,
   or SQLSTATE class 08 (connection), 40 (rollback), 53 (resources) or 57 (operator). */
bool store_transient(PGconn *conn, const PGresult *res);
/* The error of a failed result (or of the connection if res is NULL), on one line. */
const char *store_error(PGconn *conn, const PGresult *res);

/* Schema version this program knows (the highest migration it ships). */
#define STORE_SCHEMA_VERSION 1

/*
 * Apply the migrations in sql_dir that the database lacks. Returns the schema version
 * after migrating, or -1. A database newer than sql_dir, or a gap in the numbering, is an
 * error that retrying cannot fix: *transient_r is false then.
 */
int store_migrate(PGconn *conn, const char *sql_dir, bool *transient_r, const char **error_r);
/* The schema version in the database (0 when none), or -1. */
int store_schema_version(PGconn *conn, const char **error_r);
/* Per-connection set-up for ingest: temporary staging tables. */
int store_session_setup(PGconn *conn, const char **error_r);
/* Create and drop event partitions for a retention window of retention_ms. */
int store_maintain(PGconn *conn, long long retention_ms, const char **error_r);

/* Append one event as a COPY text row for the staging table; seq numbers it in its batch. */
void store_copy_row(struct mbuf *copy, int seq, const struct msevent *ev);

struct store_stored {
	char id[MSEVENT_ID_MAX + 1]; /* the event's id */
	int64_t log_offset;	     /* its place in the log */
};

/*
 * Store a batch in one transaction: COPY the rows (from store_copy_row) and fold them in.
 * On success returns the number of events that were new and fills stored[] (room for
 * count entries) with them in offset order; *head_r and *epoch_r describe the log.
 */
int store_ingest(PGconn *conn, const struct mbuf *copy, int count, struct store_stored *stored,
		 int64_t *head_r, int64_t *epoch_r, bool *transient_r, const char **error_r);

/* The log's head and epoch. */
int store_log_head(PGconn *conn, int64_t *head_r, int64_t *epoch_r, const char **error_r);

/*
 * Look up a message by tracking id or Message-ID (with or without angle brackets) and
 * build its status document (docs/protocol.md "Status document"). Returns 1 and *doc_r
 * (caller puts it), 0 if there is no such message, -1 on error.
 */
int store_status(PGconn *conn, const char *id, struct json_object **doc_r, bool *transient_r,
		 const char **error_r);

#endif
