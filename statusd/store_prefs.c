/*
 * store_prefs - a user's preferences (read receipts, presence, server-sent MDNs) and presence
 *itself: the signs of life webmail sends and what others may read of them. See store.h.
 *
 * DESIGN
 *	A user without a row in users has the defaults: read receipts on, presence off, mdn
 *	unset (the administrator's default from the userdb, which the plugin's event carries).
 *	Setting a preference creates the row. Presence is kept only for users who opted in,
 *	and opting out deletes what was known.
 *
 * SECURITY
 *	Only the user's own name is written (the caller passes the authenticated one); whom
 *	someone is typing to is returned here and hidden by the caller from third parties.
 *	All values are query parameters.
 *
 * DIAGNOSTICS
 *	0 (or 1/0) or -1 with a one-line *error_r and *transient_r, as store.h says.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

int
store_prefs_get(PGconn *conn, const char *user, struct store_prefs *prefs_r, bool *transient_r,
                const char **error_r)
{
	const char *params[1] = {user};
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn, "SELECT read_receipts, presence, mdn FROM users WHERE name = $1",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	prefs_r->read_receipts = PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't';
	prefs_r->presence = PQntuples(res) == 1 && PQgetvalue(res, 0, 1)[0] == 't';
	prefs_r->mdn = PQntuples(res) == 0 || PQgetisnull(res, 0, 2)  ? NULL
	               : strcmp(PQgetvalue(res, 0, 2), "always") == 0 ? "always"
	                                                              : "never";
	PQclear(res);
	return 0;
}

int
store_prefs_set(PGconn *conn, const char *user, int read_receipts, int presence, const char *mdn,
                bool *transient_r, const char **error_r)
{
	const char *params[4] = {user,
	                         read_receipts < 0 ? NULL
	                         : read_receipts   ? "t"
	                                           : "f",
	                         presence < 0 ? NULL
	                         : presence   ? "t"
	                                      : "f",
	                         mdn};
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "INSERT INTO users AS u (name, read_receipts, presence, mdn)"
	                   " VALUES ($1, coalesce($2::boolean, true), coalesce($3::boolean, false),"
	                   "  nullif($4, 'default'))"
	                   " ON CONFLICT (name) DO UPDATE SET"
	                   " read_receipts = coalesce($2::boolean, u.read_receipts),"
	                   " presence = coalesce($3::boolean, u.presence),"
	                   " mdn = CASE WHEN $4 IS NULL THEN u.mdn ELSE nullif($4, 'default') END",
	                   4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, transient_r, error_r);
	PQclear(res);
	if (presence == 0) {
		/* opting out forgets what was known */
		res = PQexecParams(conn, "DELETE FROM presence WHERE name = $1", 1, NULL, params,
		                   NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return store_failed(conn, res, transient_r, error_r);
		PQclear(res);
	}
	return 0;
}

int
store_presence_get(PGconn *conn, const char *user, struct store_presence *pr_r, bool *transient_r,
                   const char **error_r)
{
	const char *params[1] = {user};
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "SELECT p.online_until > now(),"
	                   " (extract(epoch FROM p.last_seen) * 1000)::bigint, p.client,"
	                   " CASE WHEN p.typing_until > now() THEN p.typing_to END"
	                   " FROM users u LEFT JOIN presence p ON p.name = u.name"
	                   " WHERE u.name = $1 AND u.presence",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	pr_r->online = PQgetvalue(res, 0, 0)[0] == 't';
	pr_r->last_seen_ms = PQgetisnull(res, 0, 1) ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	pr_r->client = store_get_str(res, 0, 2);
	pr_r->typing_to = store_get_str(res, 0, 3);
	PQclear(res);
	return 1;
}

void
store_presence_clear(struct store_presence *pr)
{
	free(pr->client);
	free(pr->typing_to);
	pr->client = pr->typing_to = NULL;
}

int
store_presence_touch(PGconn *conn, const char *user, const char *client, int64_t online_ms,
                     const char *typing_to, int64_t typing_ms, bool *transient_r,
                     const char **error_r)
{
	char on[32], ty[32];
	const char *params[5] = {user, client, on, typing_to, ty};
	PGresult *res;

	*transient_r = false;
	snprintf(on, sizeof(on), "%lld", (long long)online_ms);
	snprintf(ty, sizeof(ty), "%lld", (long long)typing_ms);
	res = PQexecParams(
	        conn,
	        "INSERT INTO presence AS p (name, online_until, last_seen, client,"
	        " typing_to, typing_until)"
	        " SELECT u.name, now() + $3::bigint * interval '1 millisecond', now(), $2,"
	        " lower($4), CASE WHEN $4 IS NULL THEN NULL"
	        "  ELSE now() + $5::bigint * interval '1 millisecond' END"
	        " FROM users u WHERE u.name = $1 AND u.presence"
	        " ON CONFLICT (name) DO UPDATE SET"
	        " online_until = greatest(p.online_until, EXCLUDED.online_until),"
	        " last_seen = EXCLUDED.last_seen, client = EXCLUDED.client,"
	        " typing_to = EXCLUDED.typing_to, typing_until = EXCLUDED.typing_until",
	        5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, transient_r, error_r);
	PQclear(res);
	return 0;
}
