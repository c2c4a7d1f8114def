/*
 * store_report - the DSNs and MDNs kept about a message (sql/009): the entries a status
 * document lists, and a report as it came for its sender. See store.h.
 *
 * DESIGN
 *	One query each, its rows copied into the structs of store.h; what a report entry
 *	does to a status is decided at ingest, in SQL (msgstatus_reports()), not here.
 *
 * SECURITY
 *	A report's raw text is the far side's (and a forger's): it is only ever handed to the
 *	message's owner, found in the query itself (store_report_raw), never to a domain
 *	admin. Every value is a query parameter.
 *
 * DIAGNOSTICS
 *	1/0/-1 or 0/-1 with a one-line *error_r and *transient_r, as store.h says.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mymalloc.h"
#include "store_int.h"

void
store_reports_free(struct store_report *reps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(reps[i].report_id);
		free(reps[i].kind);
		free(reps[i].recipient);
		free(reps[i].rcpt);
		free(reps[i].proof);
	}
	free(reps);
}

/* m->reports stays NULL (the documents then leave the report fields out) when the database
   has no reports table. */
int
store_reports_of(PGconn *conn, int64_t message, struct store_message *m, bool *transient_r,
                 const char **error_r)
{
	char id[32];
	const char *params[1] = {id};
	PGresult *res;
	int n;

	snprintf(id, sizeof(id), "%lld", (long long)message);
	res = PQexecParams(conn,
	                   "SELECT report_id, kind, recipient, rcpt, proof, coalesce(status, 0),"
	                   " verified, (extract(epoch FROM event_time) * 1000)::bigint"
	                   " FROM reports WHERE message = $1::bigint"
	                   " ORDER BY event_time, event_id",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* a database not migrated to schema 009 yet (database_migrate = no): no reports */
		if (state != NULL && strcmp(state, "42P01") == 0) {
			PQclear(res);
			return 0;
		}
		return store_failed(conn, res, transient_r, error_r);
	}
	n = PQntuples(res);
	m->reports = mycalloc((size_t)n + 1, sizeof(*m->reports));
	m->nreports = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct store_report *r = &m->reports[i];

		r->report_id = store_get_str(res, i, 0);
		r->kind = store_get_str(res, i, 1);
		r->recipient = store_get_str(res, i, 2);
		r->rcpt = store_get_str(res, i, 3);
		r->proof = store_get_str(res, i, 4);
		r->status = atoi(PQgetvalue(res, i, 5));
		r->verified = PQgetvalue(res, i, 6)[0] == 't';
		r->time_ms = strtoll(PQgetvalue(res, i, 7), NULL, 10);
	}
	PQclear(res);
	return 0;
}

int
store_report_raw(PGconn *conn, const char *report_id, const char *user, char **raw_r,
                 bool *truncated_r, char **tracking_id_r, bool *transient_r, const char **error_r)
{
	const char *params[2] = {report_id, user};
	PGresult *res;
	int found;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "SELECT x.raw, x.truncated, m.tracking_id FROM report_raw x"
	                   " JOIN messages m ON m.id = x.message"
	                   " WHERE x.report_id = $1 AND m.owner = lower($2)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state != NULL && strcmp(state, "42P01") == 0) { /* no schema 009 yet */
			PQclear(res);
			return 0;
		}
		return store_failed(conn, res, transient_r, error_r);
	}
	found = PQntuples(res) == 1;
	if (found) {
		*raw_r = store_get_str(res, 0, 0);
		*truncated_r = PQgetvalue(res, 0, 1)[0] == 't';
		*tracking_id_r = store_get_str(res, 0, 2);
	}
	PQclear(res);
	return found;
}
