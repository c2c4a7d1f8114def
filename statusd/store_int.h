/*
 * store_int - what the files of the storage layer (store.c, store_*.c) share among
 * themselves: running a statement, turning a failed result into an error, and the pieces
 * of SQL that several queries repeat. Not for use outside store*.c.
 *
 * DESIGN
 *	Plain functions on a PGconn, on the caller's thread, as everything in store.h.
 *
 * SECURITY
 *	store_text_array quotes every item: domain names reach SQL as a parameter only.
 *
 * DIAGNOSTICS
 *	As store.h: 0 or -1 with a one-line *error_r and, where asked, *transient_r.
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct mbuf;

/* Run a command that returns no rows; 0 or -1 with the error (transient_r may be NULL). */
int store_exec(PGconn *conn, const char *sql, bool *transient_r, const char **error_r);
/* Roll back whatever is open, ignoring errors (the connection may be gone). */
void store_rollback(PGconn *conn);
/* res as the failure of the call: sets *error_r and *transient_r, clears res, returns -1. */
int store_failed(PGconn *conn, PGresult *res, bool *transient_r, const char **error_r);
/* res if it has the status want, else NULL with *error_r (res cleared). */
PGresult *store_want(PGconn *conn, PGresult *res, ExecStatusType want, const char **error_r);
/* A copy of a text column (caller frees), NULL for SQL NULL. */
char *store_get_str(PGresult *res, int row, int col);
/*
 * COPY data (len bytes of COPY text rows) with the COPY statement sql; 0, or -1 with the
 * error, and the SQLSTATE into state_r (6 bytes, "" if none) when it is not NULL.
 */
int store_copy_in(PGconn *conn, const char *sql, const char *data, size_t len, char *state_r,
                  bool *transient_r, const char **error_r);
/* Whether the database has the function name (a newer schema's). */
int store_function_available(PGconn *conn, const char *name, bool *available_r,
                             const char **error_r);
/* The rows of a result with the columns msgstatus_ingest_append() returns (text or binary),
   as malloc'd copies (free with store_logged_free). */
struct store_logged *store_logged_from(PGresult *res, size_t *n_r);
/* A PostgreSQL text[] literal of the items, quoted, into out. */
void store_text_array(struct mbuf *out, char *const *items, size_t n);

/*
 * The domain of a sender, lowercased, as domain administrators are matched against it: what
 * follows the last '@', as principal_may_see() and the feeds take it (NULL without an '@').
 * The first '@' would give "example.com" for "x@example.com@example.net".
 */
#define SENDER_DOMAIN   "lower(substring(sender from '@([^@]*)$'))"
#define M_SENDER_DOMAIN "lower(substring(m.sender from '@([^@]*)$'))"

#endif
