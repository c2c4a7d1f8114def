/*
 * store_mdn - server-sent MDNs in PostgreSQL: each decision, once per user and Message-ID
 * (the mdn table, sql/010), and the queue of notifications the sender hands to sendmail.
 * See store.h and docs/mdn.md.
 *
 * DESIGN
 *	store_mdn_decide() runs on the ingest worker (ingest_batch.c), one statement per read:
 *	INSERT ... ON CONFLICT DO NOTHING, and the decision already recorded when there was
 *	one, so a replayed or repeated read gets the first answer again. The sender
 *	(mdnsend.c) claims one due notification at a time (state pending -> sending, committed
 *	before sendmail runs) and records the outcome: sent, pending again with a later
 *	next_attempt, or failed. What is still "sending" long after its claim (longer than a
 *	sendmail run may take: statusd stopped meanwhile) may have been queued: it is never
 *	tried again (state unknown, store_mdn_recover). At most once is the rule; "sent
 *	twice" is the failure it avoids. Several statusd sharing a database take turns by
 *	the row lock (FOR UPDATE SKIP LOCKED).
 *
 * SECURITY
 *	Everything from the event is a query parameter. The user's preference is read for the
 *	event's recipient, which the plugin sets to the mailbox user. A user whose
 *	read_receipts is off gets no MDN, whatever users.mdn or the userdb default says.
 *
 * DIAGNOSTICS
 *	As store.h: 0 (or a count) or -1 with a one-line *error_r.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdn.h"
#include "store_int.h"

int
store_mdn_decide(PGconn *conn, const struct store_mdn_read *rd, bool *send_r, bool *transient_r,
                 const char **error_r)
{
	const struct mdn_request *req = rd->req;
	char to[MDN_ADDR_MAX + 1], uid[32], when[32];
	const char *params[10], *reason;
	enum mdn_pref pref = MDN_PREF_UNSET;
	enum mdn_decision d;
	PGresult *res;
	bool fresh, receipts_off = false;

	*send_r = false;
	*transient_r = false;
	params[0] = req->user;
	res = PQexecParams(conn, "SELECT mdn, read_receipts FROM users WHERE name = $1", 1, NULL,
	                   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		pref = mdn_pref_parse(PQgetvalue(res, 0, 0));
	if (PQntuples(res) == 1 && PQgetvalue(res, 0, 1)[0] == 'f')
		receipts_off = true;
	PQclear(res);

	if (receipts_off) {
		/* read receipts off: no sender ever learns of a read (docs/api.md), by MDN neither,
		   whatever the MDN preference or the userdb default says */
		to[0] = '\0';
		d = MDN_DECLINED;
		reason = "the user turned read receipts off";
	} else
		d = mdn_decide(req, pref, to, &reason);
	if (req->message_id == NULL || req->message_id[0] == '\0' ||
	    strlen(req->message_id) > MSEVENT_MSGID_MAX)
		return 0; /* nothing to key the decision on: no notification, nothing recorded */
	snprintf(uid, sizeof(uid), "%lld", (long long)rd->uid);
	snprintf(when, sizeof(when), "%lld", (long long)rd->time_ms);
	params[1] = req->message_id;
	params[2] = mdn_decision_name(d);
	params[3] = reason;
	params[4] = d == MDN_SEND ? to : NULL;
	params[5] = req->subject;
	params[6] = rd->mailbox;
	params[7] = rd->uid >= 0 ? uid : NULL;
	params[8] = rd->event_id;
	params[9] = when;
	res = PQexecParams(
	        conn,
	        "WITH ins AS (INSERT INTO mdn (recipient, message_id, decision, reason, notify_to,"
	        "  subject, mailbox, uid, event_id, read_at, state, next_attempt)"
	        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9,"
	        "  to_timestamp($10::bigint / 1000.0),"
	        "  CASE WHEN $3 = 'send' THEN 'pending' ELSE 'none' END,"
	        "  CASE WHEN $3 = 'send' THEN now() END)"
	        " ON CONFLICT (recipient, message_id) DO NOTHING RETURNING decision)"
	        " SELECT decision, true FROM ins"
	        " UNION ALL SELECT decision, false FROM mdn WHERE recipient = $1 AND message_id = "
	        "$2",
	        10, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) < 1) {
		PQclear(res);
		*error_r = "mdn: no decision recorded";
		return -1;
	}
	*send_r = strcmp(PQgetvalue(res, 0, 0), "send") == 0;
	fresh = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (fresh && *send_r && store_exec(conn, "NOTIFY msgstatus_mdn", transient_r, error_r) < 0)
		return -1;
	return 0;
}

int
store_mdn_session(PGconn *conn, const char **error_r)
{
	return store_exec(conn, "LISTEN msgstatus_mdn", NULL, error_r);
}

int
store_mdn_recover(PGconn *conn, long long older_ms, const char **error_r)
{
	bool transient; /* the sender reconnects either way */
	char ms[32];
	const char *params[1] = {ms};
	PGresult *res;
	int n;

	snprintf(ms, sizeof(ms), "%lld", older_ms);
	res = PQexecParams(conn,
	                   "UPDATE mdn SET state = 'unknown', last_error = 'no outcome of the"
	                   " sendmail run recorded (statusd stopped?): not tried again'"
	                   " WHERE state = 'sending'"
	                   " AND claimed_at < now() - $1::bigint * interval '1 millisecond'",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, &transient, error_r);
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	return n;
}

int
store_mdn_claim(PGconn *conn, struct store_mdn_job *job_r, const char **error_r)
{
	bool transient; /* the sender reconnects either way */
	PGresult *res;

	memset(job_r, 0, sizeof(*job_r));
	res = PQexec(conn,
	             "UPDATE mdn m SET state = 'sending', attempts = m.attempts + 1"
	             " FROM (SELECT recipient, message_id FROM mdn"
	             "  WHERE state = 'pending' AND next_attempt <= now()"
	             "  ORDER BY next_attempt LIMIT 1 FOR UPDATE SKIP LOCKED) d"
	             " WHERE m.recipient = d.recipient AND m.message_id = d.message_id"
	             " RETURNING m.recipient, m.message_id, m.notify_to, m.subject, m.attempts");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, &transient, error_r);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	job_r->recipient = store_get_str(res, 0, 0);
	job_r->message_id = store_get_str(res, 0, 1);
	job_r->notify_to = store_get_str(res, 0, 2);
	job_r->subject = store_get_str(res, 0, 3);
	job_r->attempts = atoi(PQgetvalue(res, 0, 4));
	PQclear(res);
	if (job_r->notify_to == NULL) {
		/* cannot be: a decision to send has its address (the table would be broken) */
		store_mdn_job_clear(job_r);
		*error_r = "mdn: a notification without its address";
		return -1;
	}
	return 1;
}

long long
store_mdn_next_due(PGconn *conn, const char **error_r)
{
	bool transient; /* the sender reconnects either way */
	/* greatest() skips NULLs: without the CASE, no pending row would say "due now" */
	PGresult *res = PQexec(conn, "SELECT CASE WHEN min(next_attempt) IS NOT NULL THEN"
	                             " greatest(0, ceil(extract(epoch FROM"
	                             " min(next_attempt) - now()) * 1000))::bigint END"
	                             " FROM mdn WHERE state = 'pending'");
	long long ms;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		(void)store_failed(conn, res, &transient, error_r);
		return -2;
	}
	ms = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ms;
}

int
store_mdn_finish(PGconn *conn, const struct store_mdn_job *job, const char *why, long long retry_ms,
                 const char **error_r)
{
	bool transient; /* the sender reconnects either way */
	char ms[32];
	const char *params[5] = {job->recipient, job->message_id, why, ms,
	                         why == NULL    ? "sent"
	                         : retry_ms < 0 ? "failed"
	                                        : "pending"};
	PGresult *res;

	snprintf(ms, sizeof(ms), "%lld", retry_ms < 0 ? 0LL : retry_ms);
	res = PQexecParams(conn,
	                   "UPDATE mdn SET state = $5, last_error = $3,"
	                   " sent_at = CASE WHEN $5 = 'sent' THEN now() END,"
	                   " next_attempt = CASE WHEN $5 = 'pending'"
	                   "  THEN now() + $4::bigint * interval '1 millisecond' END"
	                   " WHERE recipient = $1 AND message_id = $2 AND state = 'sending'",
	                   5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, &transient, error_r);
	PQclear(res);
	return 0;
}

void
store_mdn_job_clear(struct store_mdn_job *job)
{
	free(job->recipient);
	free(job->message_id);
	free(job->notify_to);
	free(job->subject);
	memset(job, 0, sizeof(*job));
}
