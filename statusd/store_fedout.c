/*
 * store_fedout - the federation outbox and the sender's state per destination in
 * PostgreSQL (sql/011: fed_outbox, fed_peers), for statusd's sender (fedout.c) and for
 * statusctl federation. See store.h.
 *
 * DESIGN
 *	The sender's own connection; every statement is short and commits by itself. Rows are
 *	read in id order per destination, and deleted (acknowledged), marked failed (refused)
 *	or put off (answered "later": not_before, sql/015) by id, so a report's fate touches
 *	exactly its rows.
 *
 * SECURITY
 *	Destinations and error texts are query parameters, never SQL text. Error texts come
 *	from the sender, already sanitized and cut to one line.
 *
 * DIAGNOSTICS
 *	0 (or a count) or -1 with a one-line *error_r.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "mymalloc.h"
#include "store_int.h"

static int64_t
int_or(PGresult *res, int row, int col, int64_t dflt)
{
	return PQgetisnull(res, row, col) ? dflt : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A statement whose one row is one count: 0 and *n_r, or -1. */
static int
exec_count(PGconn *conn, const char *sql, int nparams, const char *const *params, int64_t *n_r,
           const char **error_r)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if ((res = store_want(conn, res, PGRES_TUPLES_OK, error_r)) == NULL)
		return -1;
	*n_r = PQntuples(res) == 1 ? int_or(res, 0, 0, 0) : 0;
	PQclear(res);
	return 0;
}

int
store_fedout_session(PGconn *conn, const char **error_r)
{
	PGresult *res = PQexec(conn, "SET application_name = 'statusd federation';"
	                             " SET TIME ZONE 'UTC'; LISTEN msgstatus_outbox");

	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_fedout_expire(PGconn *conn, const char *destination, long long expiry_ms, int64_t *expired_r,
                    const char **error_r)
{
	char ms[32];
	const char *params[2] = {ms, destination};

	snprintf(ms, sizeof(ms), "%lld", expiry_ms);
	if (destination != NULL) /* its waiting rows, by its index */
		return exec_count(conn,
		                  "WITH d AS (DELETE FROM fed_outbox WHERE destination = $2"
		                  " AND failed_at IS NULL"
		                  " AND created_at < now() - $1::bigint * interval '1 millisecond'"
		                  " RETURNING 1) SELECT count(*) FROM d",
		                  2, params, expired_r, error_r);
	return exec_count(conn,
	                  "WITH d AS (DELETE FROM fed_outbox"
	                  " WHERE created_at < now() - $1::bigint * interval '1 millisecond'"
	                  " RETURNING failed_at)"
	                  " SELECT count(*) FILTER (WHERE failed_at IS NULL) FROM d",
	                  1, params, expired_r, error_r);
}

int
store_fedout_withdraw(PGconn *conn, const char *destination, int level, int64_t *withdrawn_r,
                      const char **error_r)
{
	char lvl[16];
	const char *params[2] = {destination, lvl};

	snprintf(lvl, sizeof(lvl), "%d", level);
	/* what the policy no longer lets go there, and what recipients who turned their read
	   receipts off since did with the message */
	return exec_count(conn,
	                  "WITH d AS (DELETE FROM fed_outbox o WHERE o.destination = $1"
	                  " AND o.failed_at IS NULL AND ($2::int = 0"
	                  "  OR (o.status <> 4 AND ($2::int < 2 OR EXISTS (SELECT 1 FROM users u"
	                  "   WHERE u.name = o.recipient AND NOT u.read_receipts))))"
	                  " RETURNING 1) SELECT count(*) FROM d",
	                  2, params, withdrawn_r, error_r);
}

void
store_fedout_dests_free(struct store_fedout_dest *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(d[i].destination);
		free(d[i].endpoint);
		free(d[i].last_error);
	}
	free(d);
}

/* The columns of a struct store_fedout_dest, in this order (see dest_row). */
#define DEST_COLUMNS                                                                               \
	"d.destination, d.waiting, d.failed, (extract(epoch FROM d.oldest) * 1000)::bigint,"       \
	" p.endpoint, (extract(epoch FROM p.last_success) * 1000)::bigint, p.last_error,"          \
	" (extract(epoch FROM p.last_error_at) * 1000)::bigint, coalesce(p.failures, 0),"          \
	" (extract(epoch FROM p.next_try) * 1000)::bigint,"                                        \
	" (p.next_try IS NULL OR p.next_try <= now()),"                                            \
	" (extract(epoch FROM d.later - now()) * 1000)::bigint"

/* The outbox per destination: its waiting and failed rows, the oldest waiting row's
   creation, and the first not_before still ahead of a row answered "later". */
#define OUTBOX_BY_DESTINATION                                                                      \
	"SELECT o.destination, count(*) FILTER (WHERE o.failed_at IS NULL) AS waiting,"            \
	" count(*) FILTER (WHERE o.failed_at IS NOT NULL) AS failed,"                              \
	" min(o.created_at) FILTER (WHERE o.failed_at IS NULL) AS oldest,"                         \
	" min(o.not_before) FILTER (WHERE o.failed_at IS NULL AND o.not_before > now()) AS later"  \
	" FROM fed_outbox o GROUP BY o.destination"

static void
dest_row(PGresult *res, int i, struct store_fedout_dest *d)
{
	d->destination = mystrdup(PQgetvalue(res, i, 0));
	d->waiting = int_or(res, i, 1, 0);
	d->failed = int_or(res, i, 2, 0);
	d->oldest_ms = int_or(res, i, 3, 0);
	d->endpoint = store_get_str(res, i, 4);
	d->last_success_ms = int_or(res, i, 5, 0);
	d->last_error = store_get_str(res, i, 6);
	d->last_error_ms = int_or(res, i, 7, 0);
	d->failures = (unsigned)int_or(res, i, 8, 0);
	d->next_try_ms = int_or(res, i, 9, 0);
	d->due = strcmp(PQgetvalue(res, i, 10), "t") == 0;
	d->later_in_ms = int_or(res, i, 11, 0);
}

int
store_fedout_dests(PGconn *conn, bool peers, struct store_fedout_dest **dests_r, size_t *n_r,
                   const char **error_r)
{
	/* waiting destinations (the sender's rounds, statusctl federation outbox), or every
	   destination known (statusctl federation peers) */
	const char *waiting = "SELECT " DEST_COLUMNS " FROM (" OUTBOX_BY_DESTINATION ") d"
	                      " LEFT JOIN fed_peers p ON p.destination = d.destination"
	                      " ORDER BY d.destination";
	const char *all =
	        "SELECT " DEST_COLUMNS " FROM (SELECT coalesce(p.destination, o.destination)"
	        " AS destination, coalesce(o.waiting, 0) AS waiting,"
	        " coalesce(o.failed, 0) AS failed, o.oldest, o.later FROM fed_peers p FULL JOIN "
	        "(" OUTBOX_BY_DESTINATION ") o"
	        " ON o.destination = p.destination) d"
	        " LEFT JOIN fed_peers p ON p.destination = d.destination ORDER BY d.destination";
	PGresult *res = PQexec(conn, peers ? all : waiting);
	struct store_fedout_dest *d;
	int n;

	if ((res = store_want(conn, res, PGRES_TUPLES_OK, error_r)) == NULL)
		return -1;
	n = PQntuples(res);
	d = mycalloc((size_t)n + 1, sizeof(*d));
	for (int i = 0; i < n; i++)
		dest_row(res, i, &d[i]);
	PQclear(res);
	*dests_r = d;
	*n_r = (size_t)n;
	return 0;
}

void
store_fedout_rows_free(struct store_fedout_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].reporter);
		free(rows[i].event_id);
		free(rows[i].origin_tracking_id);
		free(rows[i].recipient);
	}
	free(rows);
}

/* A text[] literal of the strings: each element quoted, '"' and '\\' escaped. */
static void
text_array_literal(const char *const *v, size_t n, struct mbuf *out)
{
	mbuf_putc(out, '{');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mbuf_putc(out, ',');
		mbuf_putc(out, '"');
		for (const char *c = v[i]; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				mbuf_putc(out, '\\');
			mbuf_putc(out, *c);
		}
		mbuf_putc(out, '"');
	}
	mbuf_putc(out, '}');
}

int
store_fedout_rows(PGconn *conn, const char *destination, const char *const *skip, size_t nskip,
                  int limit, struct store_fedout_row **rows_r, size_t *n_r, const char **error_r)
{
	char lim[16];
	struct mbuf skipped = MBUF_INIT;
	const char *params[3] = {destination, lim, NULL};
	struct store_fedout_row *rows;
	PGresult *res;
	int n;

	snprintf(lim, sizeof(lim), "%d", limit);
	text_array_literal(skip, nskip, &skipped);
	params[2] = mbuf_str(&skipped);
	res = PQexecParams(conn,
	                   "SELECT id, reporter, event_id, status, origin_tracking_id, recipient,"
	                   " (extract(epoch FROM event_time) * 1000)::bigint FROM fed_outbox"
	                   " WHERE destination = $1 AND failed_at IS NULL"
	                   " AND (not_before IS NULL OR not_before <= now())"
	                   " AND reporter <> ALL($3::text[]) ORDER BY id LIMIT $2",
	                   3, NULL, params, NULL, NULL, 0);
	mbuf_free(&skipped);
	if ((res = store_want(conn, res, PGRES_TUPLES_OK, error_r)) == NULL)
		return -1;
	n = PQntuples(res);
	rows = mycalloc((size_t)n + 1, sizeof(*rows));
	for (int i = 0; i < n; i++) {
		rows[i].id = int_or(res, i, 0, 0);
		rows[i].reporter = mystrdup(PQgetvalue(res, i, 1));
		rows[i].event_id = mystrdup(PQgetvalue(res, i, 2));
		rows[i].status = (int)int_or(res, i, 3, 0);
		rows[i].origin_tracking_id = mystrdup(PQgetvalue(res, i, 4));
		rows[i].recipient = mystrdup(PQgetvalue(res, i, 5));
		rows[i].time_ms = int_or(res, i, 6, 0);
	}
	PQclear(res);
	*rows_r = rows;
	*n_r = (size_t)n;
	return 0;
}

/* "{1,2,3}" of the first n rows' ids. */
static void
ids_literal(const struct store_fedout_row *rows, size_t n, struct mbuf *out)
{
	mbuf_putc(out, '{');
	for (size_t i = 0; i < n; i++)
		mbuf_printf(out, "%s%lld", i ? "," : "", (long long)rows[i].id);
	mbuf_putc(out, '}');
}

int
store_fedout_result(PGconn *conn, const char *destination, const char *endpoint,
                    const struct store_fedout_row *rows, size_t n, enum store_fedout_fate fate,
                    const char *error, unsigned failures, int64_t delay_ms, const char **error_r)
{
	struct mbuf ids = MBUF_INIT;
	char fails[16], delay[32], kind[4];
	const char *params[7] = {destination, endpoint, NULL, error, fails, delay, kind};
	PGresult *res;

	ids_literal(rows, n, &ids);
	params[2] = ids.data;
	snprintf(fails, sizeof(fails), "%u", failures);
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	snprintf(kind, sizeof(kind), "%d", (int)fate);
	/* one statement: the rows' fate and the destination's state together */
	res = PQexecParams(
	        conn,
	        "WITH gone AS (DELETE FROM fed_outbox WHERE $7::int = 0 AND id = "
	        "ANY($3::bigint[])),"
	        " failed AS (UPDATE fed_outbox SET failed_at = now(), failure = $4"
	        "  WHERE $7::int = 2 AND id = ANY($3::bigint[]))"
	        " INSERT INTO fed_peers AS p (destination, endpoint, last_success, last_error,"
	        "  last_error_at, failures, next_try)"
	        " VALUES ($1, $2, CASE WHEN $7::int = 0 THEN now() END,"
	        "  CASE WHEN $7::int <> 0 THEN $4 END, CASE WHEN $7::int <> 0 THEN now() END,"
	        "  $5::int, CASE WHEN $7::int = 1 THEN now() + $6::bigint * interval '1 ms' END)"
	        " ON CONFLICT (destination) DO UPDATE SET"
	        "  endpoint = coalesce(EXCLUDED.endpoint, p.endpoint),"
	        "  last_success = coalesce(EXCLUDED.last_success, p.last_success),"
	        "  last_error = coalesce(EXCLUDED.last_error, p.last_error),"
	        "  last_error_at = coalesce(EXCLUDED.last_error_at, p.last_error_at),"
	        "  failures = EXCLUDED.failures, next_try = EXCLUDED.next_try",
	        7, NULL, params, NULL, NULL, 0);
	mbuf_free(&ids);
	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_fedout_later(PGconn *conn, const struct store_fedout_row *rows, size_t n, int64_t delay_ms,
                   int64_t max_ms, const char **error_r)
{
	struct mbuf ids = MBUF_INIT;
	char delay[32], max[32];
	const char *params[3] = {NULL, delay, max};
	PGresult *res;

	if (n == 0)
		return 0;
	ids_literal(rows, n, &ids);
	params[0] = ids.data;
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	snprintf(max, sizeof(max), "%lld", (long long)max_ms);
	res = PQexecParams(
	        conn,
	        "UPDATE fed_outbox SET not_before = now() +"
	        " least(greatest($2::bigint * interval '1 ms', (now() - created_at) / 4),"
	        "       $3::bigint * interval '1 ms')"
	        " WHERE id = ANY($1::bigint[]) AND failed_at IS NULL",
	        3, NULL, params, NULL, NULL, 0);
	mbuf_free(&ids);
	if ((res = store_want(conn, res, PGRES_COMMAND_OK, error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}
