/*
 * store_fed - nonces, taken events and the message lookup of reports from other sites.
 * See store_fed.h and sql/008_fedin.sql.
 */
#include "store_fed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "store_int.h"

int
store_fed_nonce(PGconn *conn, const char *keyid, const char *nonce, int64_t expires,
                bool *transient_r, const char **error_r)
{
	char exp[32];
	const char *params[3] = {keyid, nonce, exp};
	PGresult *res;
	int n;

	*transient_r = false;
	snprintf(exp, sizeof(exp), "%lld", (long long)expires);
	/* A nonce seen is seen for as long as its row is kept: freshness is judged by
	   statusd's clock (httpsig), never by PostgreSQL's now(), and a row goes only
	   NONCE_KEEP_S after its signature expired (store_fed_expire). */
	res = PQexecParams(conn,
	                   "INSERT INTO fed_nonces (keyid, nonce, expires)"
	                   " VALUES ($1, $2, to_timestamp($3::bigint))"
	                   " ON CONFLICT (keyid, nonce) DO NOTHING",
	                   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, transient_r, error_r);
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	return n == 1 ? 1 : 0;
}

/* One msgid (32 bytes) as an element of a text[] literal: quoted hex. */
static void
msgid_put(struct mbuf *ids, bool first, const uint8_t *msgid)
{
	mbuf_puts(ids, first ? "\"" : ",\"");
	for (size_t k = 0; k < 32; k++)
		mbuf_printf(ids, "%02x", msgid[k]);
	mbuf_putc(ids, '"');
}

/* The items' msgids (hex), recipients and event ids as three text[] literals. */
static void
item_arrays(const struct store_fed_item *items, size_t n, struct mbuf *ids, struct mbuf *rcpts,
            struct mbuf *eids)
{
	char **r = calloc(n ? n : 1, sizeof(*r)), **e = calloc(n ? n : 1, sizeof(*e));

	mbuf_putc(ids, '{');
	for (size_t i = 0; i < n; i++) {
		msgid_put(ids, i == 0, items[i].msgid);
		r[i] = (char *)items[i].recipient;
		e[i] = (char *)items[i].event_id;
	}
	mbuf_putc(ids, '}');
	store_text_array(rcpts, r, n);
	store_text_array(eids, e, n);
	free(r);
	free(e);
}

int
store_fed_lookup(PGconn *conn, const char *domain, struct store_fed_item *items, size_t n,
                 bool *transient_r, const char **error_r)
{
	struct mbuf ids = MBUF_INIT, rcpts = MBUF_INIT, eids = MBUF_INIT;
	const char *params[4];
	PGresult *res;

	*transient_r = false;
	item_arrays(items, n, &ids, &rcpts, &eids);
	params[0] = domain;
	params[1] = mbuf_str(&ids);
	params[2] = mbuf_str(&rcpts);
	params[3] = mbuf_str(&eids);
	/* sql/013: one function, planned once per session (a statement of its own was
	   planned again for every report, which cost more than running it) */
	res = PQexecParams(conn,
	                   "SELECT item, sent, tracking_id, message_id, taken, taken_ms, stored"
	                   " FROM msgstatus_fed_lookup($1, $2::text[], $3::text[], $4::text[])",
	                   4, NULL, params, NULL, NULL, 0);
	mbuf_free(&ids);
	mbuf_free(&rcpts);
	mbuf_free(&eids);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if ((size_t)PQntuples(res) != n) {
		PQclear(res);
		*error_r = "federation lookup: unexpected number of rows";
		return -1;
	}
	for (int row = 0; row < (int)n; row++) {
		long i = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;
		struct store_fed_item *it;

		if (i < 0 || (size_t)i >= n)
			continue;
		it = &items[i];
		it->found = PQgetvalue(res, row, 1)[0] == 't';
		it->tracking_id = store_get_str(res, row, 2);
		it->message_id = store_get_str(res, row, 3);
		it->taken = PQgetvalue(res, row, 4)[0] == 't';
		it->taken_time_ms = it->taken ? strtoll(PQgetvalue(res, row, 5), NULL, 10) : 0;
		it->stored = PQgetvalue(res, row, 6)[0] == 't';
	}
	PQclear(res);
	return 0;
}

int
store_fed_known(PGconn *conn, const uint8_t *const *msgids, size_t n, int64_t settle_ms,
                bool *known_r, bool *transient_r, const char **error_r)
{
	struct mbuf ids = MBUF_INIT;
	char settle[32];
	const char *params[2] = {NULL, settle};
	PGresult *res;

	*transient_r = false;
	for (size_t i = 0; i < n; i++)
		known_r[i] = false;
	if (n == 0)
		return 0;
	mbuf_putc(&ids, '{');
	for (size_t i = 0; i < n; i++)
		msgid_put(&ids, i == 0, msgids[i]);
	mbuf_putc(&ids, '}');
	params[0] = mbuf_str(&ids);
	snprintf(settle, sizeof(settle), "%lld", (long long)settle_ms);
	/* the expressions of the indexes messages_fed_tid/_mid, as in store_fed_lookup */
	res = PQexecParams(conn,
	                   "SELECT u.i FROM unnest($1::text[]) WITH ORDINALITY AS u(msgid, i)"
	                   " WHERE EXISTS (SELECT 1 FROM messages m"
	                   "   WHERE (msgstatus_fed_tid(m.tracking_id) = decode(u.msgid, 'hex')"
	                   "      OR msgstatus_fed_mid(m.message_id) = decode(u.msgid, 'hex'))"
	                   "     AND m.created_at <= now() - $2::bigint * interval '1 ms')",
	                   2, NULL, params, NULL, NULL, 0);
	mbuf_free(&ids);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	for (int row = 0; row < PQntuples(res); row++) {
		long i = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;

		if (i >= 0 && (size_t)i < n)
			known_r[i] = true;
	}
	PQclear(res);
	return 0;
}

void
store_fed_items_clear(struct store_fed_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].tracking_id);
		free(items[i].message_id);
		items[i].tracking_id = items[i].message_id = NULL;
	}
}

int
store_fed_remember(PGconn *conn, const char *domain, const struct store_fed_item *items, size_t n,
                   bool *transient_r, const char **error_r)
{
	struct mbuf eids = MBUF_INIT, times = MBUF_INIT, sids = MBUF_INIT;
	char **e, **s;
	const char *params[4];
	PGresult *res;

	*transient_r = false;
	if (n == 0)
		return 0;
	e = calloc(n, sizeof(*e));
	s = calloc(n, sizeof(*s));
	mbuf_putc(&times, '{');
	for (size_t i = 0; i < n; i++) {
		e[i] = (char *)items[i].event_id;
		s[i] = (char *)items[i].stored_id;
		mbuf_printf(&times, "%s%lld", i ? "," : "", (long long)items[i].time_ms);
	}
	mbuf_putc(&times, '}');
	store_text_array(&eids, e, n);
	store_text_array(&sids, s, n);
	free(e);
	free(s);
	params[0] = domain;
	params[1] = mbuf_str(&eids);
	params[2] = mbuf_str(&times);
	params[3] = mbuf_str(&sids);
	res = PQexecParams(
	        conn,
	        "INSERT INTO fed_events (domain, event_id, event_time, stored_id)"
	        " SELECT $1, u.eid, to_timestamp(0) + u.ms * interval '1 millisecond', u.sid"
	        " FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(eid, ms, sid)"
	        " ON CONFLICT (domain, event_id) DO NOTHING",
	        4, NULL, params, NULL, NULL, 0);
	mbuf_free(&eids);
	mbuf_free(&times);
	mbuf_free(&sids);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, transient_r, error_r);
	PQclear(res);
	return 0;
}

int
store_fed_expire(PGconn *conn, int64_t now, int64_t retention_ms, const char **error_r)
{
	char ret[32], at[32];
	const char *params[1] = {ret}, *nparams[2] = {at, ret};
	bool transient;
	PGresult *res;

	snprintf(at, sizeof(at), "%lld", (long long)(now - STORE_FED_NONCE_KEEP_S));
	res = PQexecParams(conn, "DELETE FROM fed_nonces WHERE expires < to_timestamp($1::bigint)",
	                   1, NULL, nparams, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, &transient, error_r);
	PQclear(res);
	snprintf(ret, sizeof(ret), "%lld", (long long)retention_ms);
	res = PQexecParams(conn,
	                   "DELETE FROM fed_events"
	                   " WHERE event_time < now() - make_interval(secs => $1::bigint / 1000.0)",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return store_failed(conn, res, &transient, error_r);
	PQclear(res);
	return 0;
}
