/*
 * store_webhook - what a webhook endpoint's thread keeps in PostgreSQL: its session, the
 * advisory lock that makes one statusd deliver to an endpoint, and its cursor (the last
 * offset the endpoint acknowledged) in webhook_cursors. See store.h and webhook.c.
 *
 * DESIGN
 *	The lock is a session-level pg_try_advisory_lock on a hash of the URL, so it goes
 *	with the connection. The session commits asynchronously: a cursor write lost in a
 *	PostgreSQL crash only means re-delivering a few events, which at-least-once allows.
 *
 * SECURITY
 *	The URL (configuration, trusted) is a query parameter, never SQL text.
 *
 * DIAGNOSTICS
 *	0 (or 1/0) or -1 with a one-line *error_r.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

int
store_webhook_session(PGconn *conn, const char **error_r)
{
	PGresult *res = PQexec(conn, "SET synchronous_commit = off;"
	                             " SET application_name = 'statusd webhook';"
	                             " LISTEN msgstatus_log");

	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_webhook_lock(PGconn *conn, const char *url, const char **error_r)
{
	const char *params[1] = {url};
	PGresult *res;
	int locked;

	res = PQexecParams(conn,
	                   "SELECT pg_try_advisory_lock(('x' || substr(md5('msgstatus webhook '"
	                   " || $1), 1, 16))::bit(64)::bigint)",
	                   1, NULL, params, NULL, NULL, 0);
	if ((res = store_want(conn, res, PGRES_TUPLES_OK, error_r)) == NULL)
		return -1;
	locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return locked;
}

int
store_webhook_cursor_load(PGconn *conn, const char *url, int64_t *cursor_r, bool *created_r,
                          const char **error_r)
{
	const char *params[1] = {url};
	PGresult *res;

	res = PQexecParams(conn,
	                   "INSERT INTO webhook_cursors (url, log_offset)"
	                   " SELECT $1, head FROM log_head ON CONFLICT (url) DO NOTHING",
	                   1, NULL, params, NULL, NULL, 0);
	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	*created_r = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	res = PQexecParams(conn, "SELECT log_offset FROM webhook_cursors WHERE url = $1", 1, NULL,
	                   params, NULL, NULL, 0);
	if ((res = store_want(conn, res, PGRES_TUPLES_OK, error_r)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		*error_r = "the endpoint's row in webhook_cursors vanished";
		return -1;
	}
	*cursor_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
store_webhook_cursor_save(PGconn *conn, const char *url, int64_t cursor, const char **error_r)
{
	char off[32];
	const char *params[2] = {url, off};
	PGresult *res;

	snprintf(off, sizeof(off), "%lld", (long long)cursor);
	res = PQexecParams(conn,
	                   "INSERT INTO webhook_cursors (url, log_offset) VALUES ($1, $2::bigint)"
	                   " ON CONFLICT (url) DO UPDATE"
	                   " SET log_offset = EXCLUDED.log_offset, updated_at = now()",
	                   2, NULL, params, NULL, NULL, 0);
	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}
