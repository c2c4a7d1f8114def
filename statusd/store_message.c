/*
 * store_message - messages and their recipients' status, as the API's status, timeline
 * and list answers and statusctl status read them, and the check behind a manual read
 * receipt. See store.h; render.c makes the JSON documents of what these return.
 *
 * DESIGN
 *	Each call reads what it needs in a few queries (a message, then its recipients, then
 *	a page of its events) and copies the rows into the structs of store.h, which the
 *	caller frees. Nothing here knows JSON: a recipient's details stay the text PostgreSQL
 *	gave.
 *
 * SECURITY
 *	Who may see a message is decided in the query (owner, or the sender's domain among
 *	the caller's) and again by the caller with principal_may_see(); a Message-ID is chosen
 *	by whoever sends the mail, so the newest of the caller's own matches wins. All values
 *	are query parameters.
 *
 * DIAGNOSTICS
 *	1/0/-1 or 0/-1 with a one-line *error_r and *transient_r, as store.h says.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "mymalloc.h"
#include "store_int.h"

static int64_t
get_ll(PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* One recipient from a row of recipient, orig_recipient, dkey, rkey, displayed, details,
   xkey, copies. */
static void
recipient_from(PGresult *res, int row, struct store_recipient *r)
{
	r->recipient = store_get_str(res, row, 0);
	r->orig_recipient = store_get_str(res, row, 1);
	r->state.dkey = get_ll(res, row, 2);
	r->state.rkey = get_ll(res, row, 3);
	r->state.displayed = PQgetvalue(res, row, 4)[0] == 't';
	r->details = store_get_str(res, row, 5);
	r->state.xkey = get_ll(res, row, 6);
	r->state.copies = get_ll(res, row, 7);
}

/* A message reference as a Message-ID in angle brackets, as messages.message_id has it. */
static void
bracket(struct mbuf *out, const char *id)
{
	if (id[0] == '<')
		mbuf_puts(out, id);
	else
		mbuf_printf(out, "<%s>", id);
}

static void
message_clear(struct store_message *m)
{
	free(m->tracking_id);
	free(m->message_id);
	free(m->sender);
	free(m->queue_id);
	free(m->owner);
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].recipient);
		free(m->rcpts[i].orig_recipient);
		free(m->rcpts[i].details);
	}
	free(m->rcpts);
	store_reports_free(m->reports, m->nreports);
	for (size_t i = 0; i < m->nevents; i++) {
		free(m->events[i].recipient);
		free(m->events[i].source);
		free(m->events[i].details);
		free(m->events[i].event_id);
	}
	free(m->events);
}

void
store_messages_free(struct store_message *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		message_clear(&msgs[i]);
	free(msgs);
}

/*
 * The message's logged events in time order, from after the cursor (a log offset of this
 * message, 0 for the start), at most events_max, and whether there are more. A read, unread
 * or deleted that repeats its recipient's previous event changes nothing and is left out (a
 * recipient posting receipts in a loop adds one entry, not one per request); the test is
 * over the whole message, so pages do not change it.
 */
static int
timeline_events(PGconn *conn, const char *msgid, int events_max, int64_t after,
                struct store_message *m, bool *transient_r, const char **error_r)
{
	char limit[16], cursor[32];
	const char *params[3] = {msgid, limit, cursor};
	PGresult *res;
	int n;

	snprintf(limit, sizeof(limit), "%d", events_max + 1);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)after);
	res = PQexecParams(conn,
	                   "WITH t AS (SELECT log_offset, event_time, type, rcpt, source, details,"
	                   "  event_id, lag(type) OVER (PARTITION BY rcpt"
	                   "   ORDER BY event_time, log_offset) AS prev"
	                   "  FROM events WHERE message = $1 AND log_offset IS NOT NULL)"
	                   " SELECT log_offset, (extract(epoch FROM event_time) * 1000)::bigint,"
	                   " type, rcpt, source, details::text, event_id FROM t"
	                   " WHERE (type NOT IN (7, 8, 9) OR prev IS DISTINCT FROM type)"
	                   " AND ($3::bigint = 0 OR (event_time, log_offset) >"
	                   "  (SELECT c.event_time, c.log_offset FROM events c"
	                   "   WHERE c.message = $1 AND c.log_offset = $3::bigint))"
	                   " ORDER BY event_time, log_offset LIMIT $2::int",
	                   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	n = PQntuples(res) > events_max ? events_max : PQntuples(res);
	m->more_events = PQntuples(res) > events_max;
	m->events = mycalloc((size_t)n + 1, sizeof(*m->events));
	m->nevents = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct store_event *e = &m->events[i];

		e->log_offset = get_ll(res, i, 0);
		e->time_ms = get_ll(res, i, 1);
		e->type = atoi(PQgetvalue(res, i, 2));
		e->recipient = store_get_str(res, i, 3);
		e->source = store_get_str(res, i, 4);
		e->details = store_get_str(res, i, 5);
		e->event_id = store_get_str(res, i, 6);
	}
	PQclear(res);
	return 0;
}

int
store_status(PGconn *conn, const char *id, const char *user, char *const *domains, size_t ndomains,
             int events_max, int64_t events_after, struct store_message **msg_r, bool *transient_r,
             const char **error_r)
{
	struct mbuf bracketed = MBUF_INIT, dom = MBUF_INIT;
	const char *params[4];
	struct store_message *m;
	char msgid[32];
	PGresult *res;

	*transient_r = false;
	bracket(&bracketed, id);
	store_text_array(&dom, domains, ndomains);
	params[0] = id;
	params[1] = mbuf_str(&bracketed);
	params[2] = user;
	params[3] = mbuf_str(&dom);
	/* the newest of the caller's: a Message-ID is chosen by whoever sends the mail */
	res = PQexecParams(conn,
	                   "SELECT id, tracking_id, message_id, sender, queue_id, size,"
	                   " (extract(epoch FROM queued_at) * 1000)::bigint, owner"
	                   " FROM messages WHERE (tracking_id = $1 OR message_id = $2)"
	                   " AND ($3::text IS NULL OR owner = $3"
	                   "      OR " SENDER_DOMAIN " = ANY($4::text[]))"
	                   " ORDER BY id DESC LIMIT 1",
	                   4, NULL, params, NULL, NULL, 0);
	mbuf_free(&bracketed);
	mbuf_free(&dom);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	m = mycalloc(1, sizeof(*m));
	m->id = get_ll(res, 0, 0);
	m->tracking_id = store_get_str(res, 0, 1);
	m->message_id = store_get_str(res, 0, 2);
	m->sender = store_get_str(res, 0, 3);
	m->queue_id = store_get_str(res, 0, 4);
	m->size = PQgetisnull(res, 0, 5) ? -1 : get_ll(res, 0, 5);
	m->queued_ms = PQgetisnull(res, 0, 6) ? 0 : get_ll(res, 0, 6);
	m->owner = store_get_str(res, 0, 7);
	snprintf(msgid, sizeof(msgid), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);

	params[0] = msgid;
	res = PQexecParams(conn,
	                   "SELECT recipient, orig_recipient, dkey, rkey, displayed, details,"
	                   " xkey, copies FROM recipients WHERE message = $1 ORDER BY recipient",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		store_failed(conn, res, transient_r, error_r);
		goto fail;
	}
	m->rcpts = mycalloc((size_t)PQntuples(res) + 1, sizeof(*m->rcpts));
	m->nrcpts = (size_t)PQntuples(res);
	for (int i = 0; i < PQntuples(res); i++)
		recipient_from(res, i, &m->rcpts[i]);
	PQclear(res);
	if (store_reports_of(conn, m->id, m, transient_r, error_r) < 0)
		goto fail;
	if (events_max > 0 &&
	    timeline_events(conn, msgid, events_max, events_after, m, transient_r, error_r) < 0)
		goto fail;
	*msg_r = m;
	return 1;
fail:
	store_messages_free(m, 1);
	return -1;
}

int
store_list(PGconn *conn, const char *user, char *const *domains, size_t ndomains,
           const struct store_list_filter *flt, struct store_message **msgs_r, size_t *n_r,
           bool *more_r, bool *transient_r, const char **error_r)
{
	struct mbuf dom = MBUF_INIT, ids = MBUF_INIT;
	char status[8], since[32], until[32], cursor[32], limit[16];
	const char *params[8];
	struct store_message *msgs;
	PGresult *res;
	int n;

	*transient_r = false;
	store_text_array(&dom, domains, ndomains);
	snprintf(status, sizeof(status), "%d", flt->status);
	snprintf(since, sizeof(since), "%lld", (long long)flt->since_ms);
	snprintf(until, sizeof(until), "%lld", (long long)flt->until_ms);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)flt->cursor);
	snprintf(limit, sizeof(limit), "%d", flt->limit + 1);
	params[0] = user;
	params[1] = mbuf_str(&dom);
	params[2] = status;
	params[3] = flt->recipient;
	params[4] = since;
	params[5] = until;
	params[6] = cursor;
	params[7] = limit;
	res = PQexecParams(
	        conn,
	        "SELECT m.id, m.tracking_id, m.message_id, m.sender,"
	        " (extract(epoch FROM m.queued_at) * 1000)::bigint"
	        " FROM messages m"
	        " WHERE (m.owner = $1 OR " M_SENDER_DOMAIN " = ANY($2::text[]))"
	        " AND m.queued_at IS NOT NULL"
	        /* keyset paging: after the cursor's message in (queued_at, id) order */
	        " AND ($7::bigint = 0 OR (m.queued_at, m.id) < (SELECT c.queued_at, c.id"
	        "      FROM messages c WHERE c.id = $7::bigint))"
	        " AND ($5::bigint = 0 OR m.queued_at >= to_timestamp($5::bigint / 1000.0))"
	        " AND ($6::bigint = 0 OR m.queued_at < to_timestamp($6::bigint / 1000.0))"
	        " AND ($3::int = 0 OR EXISTS (SELECT 1 FROM recipients r"
	        "      WHERE r.message = m.id AND r.status = $3::int))"
	        " AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM recipients r"
	        "      WHERE r.message = m.id AND r.recipient = lower($4::text)))"
	        " ORDER BY m.queued_at DESC, m.id DESC LIMIT $8::int",
	        8, NULL, params, NULL, NULL, 0);
	mbuf_free(&dom);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	n = PQntuples(res);
	*more_r = n > flt->limit;
	if (*more_r)
		n = flt->limit;
	msgs = mycalloc((size_t)n + 1, sizeof(*msgs));
	mbuf_putc(&ids, '{');
	for (int i = 0; i < n; i++) {
		struct store_message *m = &msgs[i];

		m->id = get_ll(res, i, 0);
		m->tracking_id = store_get_str(res, i, 1);
		m->message_id = store_get_str(res, i, 2);
		m->sender = store_get_str(res, i, 3);
		m->size = -1;
		m->queued_ms = PQgetisnull(res, i, 4) ? 0 : get_ll(res, i, 4);
		mbuf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
	}
	mbuf_putc(&ids, '}');
	PQclear(res);
	if (n > 0) {
		const char *p1[1] = {mbuf_str(&ids)};
		res = PQexecParams(
		        conn,
		        "SELECT recipient, orig_recipient, dkey, rkey, displayed, details,"
		        " xkey, copies, message FROM recipients WHERE message = ANY($1::bigint[])"
		        " ORDER BY message, recipient",
		        1, NULL, p1, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			mbuf_free(&ids);
			store_messages_free(msgs, (size_t)n);
			return store_failed(conn, res, transient_r, error_r);
		}
		for (int r = 0; r < PQntuples(res); r++) {
			int64_t mid = get_ll(res, r, 8);
			for (int i = 0; i < n; i++)
				if (msgs[i].id == mid) {
					struct store_message *m = &msgs[i];
					m->rcpts = myreallocarray(m->rcpts, m->nrcpts + 1,
					                          sizeof(*m->rcpts));
					memset(&m->rcpts[m->nrcpts], 0, sizeof(*m->rcpts));
					recipient_from(res, r, &m->rcpts[m->nrcpts++]);
					break;
				}
		}
		PQclear(res);
	}
	mbuf_free(&ids);
	*msgs_r = msgs;
	*n_r = (size_t)n;
	return 0;
}

int
store_receipt_target(PGconn *conn, const char *id, const char *user, char **tracking_id_r,
                     bool *receipts_r, bool *transient_r, const char **error_r)
{
	struct mbuf bracketed = MBUF_INIT;
	const char *params[3];
	PGresult *res;
	int found;

	*transient_r = false;
	bracket(&bracketed, id);
	params[0] = id;
	params[1] = mbuf_str(&bracketed);
	params[2] = user;
	res = PQexecParams(conn,
	                   "SELECT m.tracking_id, coalesce((SELECT u.read_receipts FROM users u"
	                   "  WHERE u.name = lower($3)), true)"
	                   " FROM messages m JOIN recipients r ON r.message = m.id"
	                   " WHERE (m.tracking_id = $1 OR m.message_id = $2)"
	                   " AND r.recipient = lower($3) AND m.tracking_id IS NOT NULL"
	                   " ORDER BY m.id DESC LIMIT 1",
	                   3, NULL, params, NULL, NULL, 0);
	mbuf_free(&bracketed);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	found = PQntuples(res) == 1;
	if (found) {
		*tracking_id_r = store_get_str(res, 0, 0);
		*receipts_r = PQgetvalue(res, 0, 1)[0] == 't';
	}
	PQclear(res);
	return found;
}
