/*
 * ingest_fast - the fast path of a batch (schema 019, sql/019_fast_path.sql): when every
 * event of a batch is the plain case, statusd numbers the events, COPYs them straight into
 * events, folds them per recipient itself and upserts those rows, instead of staging them
 * for msgstatus_ingest_append()'s joins. See ingest_fast.h.
 *
 * DESIGN
 *	Runs on the ingest worker's thread, on the batch's COPY rows (store_copy_row), which
 *	hold everything the fast path needs (the keys, the copies). Per batch, one transaction:
 *	- the rows are read back into fields and checked (sql/019's step 0): every event a
 *	  status or mailbox event with a tracking id and an ASCII recipient, no orig_recipient,
 *	  no event twice, each message's fields the same in each of its events, no two events
 *	  of a recipient with the same delivery key and different details. Else INGEST_PATH_TODAY
 *	  and nothing is sent;
 *	- msgstatus_fast_begin() with the batch's messages and folded recipients as arrays
 *	  (the lock, the messages, whether the batch may take the fast path; the messages' ids,
 *	  owners, senders and Message-IDs);
 *	- fast: under a savepoint, the COPY into events (offsets h + 1 ... in batch order, the
 *	  message, rcpt the recipient in lower case); a unique violation is a replay: back to
 *	  the savepoint, and today's way; then msgstatus_fast_fold() of the recipient rows,
 *	  folded with lib/status.c's merge;
 *	- today's way after the begin: the COPY into ingest_stage and msgstatus_fast_slow();
 *	- msgstatus_ingest_end(), the head, COMMIT.
 *	The logged events for the feeds are made here on the fast path, as
 *	msgstatus_ingest_append() returns them (details as the producer's JSON text, which the
 *	feeds parse again).
 *
 * SECURITY
 *	The rows come from store_copy_row, escaped there; the COPY into events reuses their
 *	fields as they are (lower-casing an escaped ASCII field keeps it escaped: the escapes are
 *	lower case). Arrays go as quoted text[] literals in query parameters (array_item).
 *
 * DIAGNOSTICS
 *	As store.h: 0 or -1 with a one-line *error_r and *transient_r; the path taken in
 *	*path_r (statusd's metrics count them).
 */
#include "ingest_fast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "status.h"
#include "store_int.h"

/* store_copy_row's fields, in ingest_stage's column order */
enum {
	F_SEQ,
	F_ID,
	F_TIME,
	F_TYPE,
	F_DKEY,
	F_RKEY,
	F_SOURCE,
	F_TID,
	F_QID,
	F_MID,
	F_RCPT,
	F_ORIG,
	F_SENDER,
	F_SASL,
	F_SIZE,
	F_DETAILS,
	F_XKEY,
	F_COPIES,
	NFIELDS
};

struct fev {
	const char *raw[NFIELDS]; /* the escaped field in the batch's COPY text */
	size_t rawlen[NFIELDS];
	char *val[NFIELDS]; /* unescaped, NULL for \N */
	int64_t time_ms;
	int type;
	struct status_state st;
	size_t msg, row;
	char *rcpt; /* the recipient in lower case */
};

struct fmsg {
	const char *f[NFIELDS]; /* its fields: those its events name (they agree) */
	int64_t queued_ms;      /* its earliest queued event's time, -1 if none */
	int64_t id;
	char *owner, *sender, *message_id; /* the message's, from msgstatus_fast_begin() */
};

struct frow {
	size_t msg;
	const char *rcpt;
	struct status_state st;
	bool queued;
	const char *details; /* of the event that set the delivery axis */
};

struct fbatch {
	char *text; /* the unescaped fields */
	struct fev *ev;
	size_t n;
	struct fmsg *msgs;
	size_t nmsgs;
	struct frow *rows;
	size_t nrows;
};

static void
fbatch_free(struct fbatch *fb)
{
	for (size_t i = 0; i < fb->n; i++)
		free(fb->ev[i].rcpt);
	for (size_t i = 0; i < fb->nmsgs; i++) {
		free(fb->msgs[i].owner);
		free(fb->msgs[i].sender);
		free(fb->msgs[i].message_id);
	}
	free(fb->text);
	free(fb->ev);
	free(fb->msgs);
	free(fb->rows);
}

/* Unescape COPY text [p, end) into out (at most as long), NUL-terminated. */
static void
unescape(const char *p, const char *end, char *out)
{
	while (p < end) {
		char c = *p++;

		if (c == '\\' && p < end) {
			c = *p++;
			c = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
		}
		*out++ = c;
	}
	*out = '\0';
}

/* Read the rows back into fields; false if they are not store_copy_row's. */
static bool
parse_rows(struct fbatch *fb, const struct mbuf *copy)
{
	const char *base = copy->data, *p = base, *end = base + copy->len;
	size_t cap = 0;

	fb->text = mymalloc(copy->len + 1);
	while (p < end) {
		struct fev *e;

		if (fb->n == cap) {
			cap = cap ? 2 * cap : 64;
			fb->ev = myreallocarray(fb->ev, cap, sizeof(*fb->ev));
		}
		e = &fb->ev[fb->n++];
		memset(e, 0, sizeof(*e));
		for (int f = 0; f < NFIELDS; f++) {
			const char *s = p;

			while (p < end && *p != '\t' && *p != '\n')
				p++;
			if (p == end || (*p == '\n') != (f == NFIELDS - 1))
				return false;
			e->raw[f] = s;
			e->rawlen[f] = (size_t)(p - s);
			if (!(p - s == 2 && s[0] == '\\' && s[1] == 'N')) {
				e->val[f] = fb->text + (s - base);
				unescape(s, p, e->val[f]);
			}
			p++;
		}
	}
	return fb->n > 0;
}

static int
cmp_str(const char *a, const char *b)
{
	return a == NULL ? (b == NULL ? 0 : -1) : b == NULL ? 1 : strcmp(a, b);
}

static int
by_tracking_id(const void *a, const void *b)
{
	const struct fev *x = *(struct fev *const *)a, *y = *(struct fev *const *)b;

	return strcmp(x->val[F_TID], y->val[F_TID]);
}

static int
by_event(const void *a, const void *b)
{
	const struct fev *x = *(struct fev *const *)a, *y = *(struct fev *const *)b;
	int c = strcmp(x->val[F_ID], y->val[F_ID]);

	return c != 0 ? c : (x->time_ms > y->time_ms) - (x->time_ms < y->time_ms);
}

static int
by_recipient(const void *a, const void *b)
{
	const struct fev *x = *(struct fev *const *)a, *y = *(struct fev *const *)b;

	if (x->msg != y->msg)
		return x->msg < y->msg ? -1 : 1;
	return strcmp(x->rcpt, y->rcpt);
}

/* One event: the plain case? (sql/019's step 0, the event's part) */
static bool
plain_event(struct fev *e)
{
	const char *error;

	e->type = e->val[F_TYPE] != NULL ? atoi(e->val[F_TYPE]) : 0;
	if (!(MSEV_IS_STATUS(e->type) || e->type == MSEV_COPIED || e->type == MSEV_EXPUNGED) ||
	    e->val[F_ID] == NULL || e->val[F_TIME] == NULL || e->val[F_TID] == NULL ||
	    e->val[F_RCPT] == NULL || e->val[F_ORIG] != NULL || e->val[F_DKEY] == NULL ||
	    e->val[F_RKEY] == NULL || e->val[F_XKEY] == NULL || e->val[F_COPIES] == NULL ||
	    e->val[F_SOURCE] == NULL)
		return false;
	if (rfc3339_parse(e->val[F_TIME], strlen(e->val[F_TIME]), &e->time_ms, &error) < 0)
		return false;
	/* lower() of PostgreSQL and of here agree on ASCII only */
	e->rcpt = mystrdup(e->val[F_RCPT]);
	for (char *s = e->rcpt; *s; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
	e->st.dkey = strtoll(e->val[F_DKEY], NULL, 10);
	e->st.rkey = strtoll(e->val[F_RKEY], NULL, 10);
	e->st.xkey = strtoll(e->val[F_XKEY], NULL, 10);
	e->st.copies = strtoll(e->val[F_COPIES], NULL, 10);
	e->st.displayed = e->type == MSEV_READ;
	return true;
}

/* The message fields msgstatus_ingest_messages() aggregates per tracking id */
static const int msg_fields[] = {F_MID, F_QID, F_SENDER, F_SASL, F_SIZE};

/* Group the events by message and by (message, recipient); false if not the plain case. */
static bool
classify(struct fbatch *fb)
{
	struct fev **v = mycalloc(fb->n, sizeof(*v));
	bool ok = true;

	for (size_t i = 0; i < fb->n; i++) {
		v[i] = &fb->ev[i];
		if (!plain_event(v[i])) {
			free(v);
			return false;
		}
	}
	/* no event twice (today's path stores the first of them) */
	qsort(v, fb->n, sizeof(*v), by_event);
	for (size_t i = 1; i < fb->n && ok; i++)
		ok = by_event(&v[i - 1], &v[i]) != 0;
	/* the messages, in the order of their tracking ids; their fields agree */
	qsort(v, fb->n, sizeof(*v), by_tracking_id);
	fb->msgs = mycalloc(fb->n, sizeof(*fb->msgs));
	for (size_t i = 0; i < fb->n && ok; i++) {
		struct fmsg *m;

		if (i == 0 || by_tracking_id(&v[i - 1], &v[i]) != 0) {
			m = &fb->msgs[fb->nmsgs++];
			m->f[F_TID] = v[i]->val[F_TID];
			m->queued_ms = -1;
		}
		m = &fb->msgs[fb->nmsgs - 1];
		v[i]->msg = fb->nmsgs - 1;
		for (size_t k = 0; k < sizeof(msg_fields) / sizeof(msg_fields[0]); k++) {
			const char *s = v[i]->val[msg_fields[k]];

			if (s != NULL && m->f[msg_fields[k]] != NULL &&
			    strcmp(s, m->f[msg_fields[k]]))
				ok = false;
			else if (s != NULL)
				m->f[msg_fields[k]] = s;
		}
		if (v[i]->type == MSEV_QUEUED &&
		    (m->queued_ms < 0 || v[i]->time_ms < m->queued_ms)) {
			m->queued_ms = v[i]->time_ms;
		}
	}
	/* the recipients, folded (lib/status.c's merge) */
	qsort(v, fb->n, sizeof(*v), by_recipient);
	fb->rows = mycalloc(fb->n, sizeof(*fb->rows));
	for (size_t i = 0; i < fb->n && ok; i++) {
		struct frow *r;

		if (i == 0 || by_recipient(&v[i - 1], &v[i]) != 0) {
			r = &fb->rows[fb->nrows++];
			r->msg = v[i]->msg;
			r->rcpt = v[i]->rcpt;
		} else
			r = &fb->rows[fb->nrows - 1];
		v[i]->row = fb->nrows - 1;
		if (v[i]->st.dkey > 0 && v[i]->st.dkey == r->st.dkey &&
		    cmp_str(v[i]->val[F_DETAILS], r->details) != 0)
			ok = false; /* which details today's path keeps is not defined */
		if (v[i]->st.dkey > r->st.dkey)
			r->details = v[i]->val[F_DETAILS];
		status_merge(&r->st, &v[i]->st);
		r->queued = r->queued || v[i]->type == MSEV_QUEUED;
	}
	free(v);
	return ok;
}

/* An item of a PostgreSQL array literal: NULL, or s quoted */
static void
array_item(struct mbuf *out, const char *s)
{
	if (out->len > 0 && out->data[out->len - 1] != '{')
		mbuf_putc(out, ',');
	if (s == NULL) {
		mbuf_puts(out, "NULL");
		return;
	}
	mbuf_putc(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			mbuf_putc(out, '\\');
		mbuf_putc(out, *s);
	}
	mbuf_putc(out, '"');
}

static void
array_int(struct mbuf *out, long long v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", v);
	array_item(out, buf);
}

/* c into each of the n arrays a (their brackets) */
static void
each_putc(struct mbuf *a, int n, char c)
{
	for (int k = 0; k < n; k++)
		mbuf_putc(&a[k], c);
}

#define BEGIN_PARAMS 12
#define FOLD_PARAMS  10

/* msgstatus_fast_begin()'s arrays */
static void
begin_arrays(const struct fbatch *fb, struct mbuf *a)
{
	char when[RFC3339_BUFSIZE];

	each_putc(a, BEGIN_PARAMS, '{');
	for (size_t i = 0; i < fb->nmsgs; i++) {
		const struct fmsg *m = &fb->msgs[i];

		array_item(&a[0], m->f[F_TID]);
		array_item(&a[1], m->f[F_MID]);
		array_item(&a[2], m->f[F_QID]);
		array_item(&a[3], m->f[F_SENDER]);
		array_item(&a[4], m->f[F_SASL]);
		array_item(&a[5], m->f[F_SIZE]);
		array_item(&a[6], m->queued_ms >= 0 ? rfc3339_format(m->queued_ms, when) : NULL);
	}
	for (size_t i = 0; i < fb->nrows; i++) {
		array_int(&a[7], (long long)fb->rows[i].msg + 1);
		array_item(&a[8], fb->rows[i].rcpt);
		array_item(&a[9], fb->rows[i].queued ? "t" : "f");
	}
	for (size_t i = 0; i < fb->n; i++) {
		const struct fev *e = &fb->ev[i];

		if (e->type == MSEV_READ || e->type == MSEV_UNREAD)
			array_item(&a[10], e->rcpt);
		if (e->type == MSEV_QUEUED && e->val[F_MID] != NULL)
			array_item(&a[11], e->val[F_MID]);
	}
	each_putc(a, BEGIN_PARAMS, '}');
}

/* msgstatus_fast_fold()'s arrays */
static void
fold_arrays(const struct fbatch *fb, struct mbuf *a)
{
	each_putc(a, FOLD_PARAMS, '{');
	for (size_t i = 0; i < fb->nrows; i++) {
		const struct frow *r = &fb->rows[i];

		array_int(&a[0], (long long)fb->msgs[r->msg].id);
		array_item(&a[1], r->rcpt);
		array_item(&a[2], NULL);
		array_int(&a[3], (long long)r->st.dkey);
		array_int(&a[4], (long long)r->st.rkey);
		array_int(&a[5], (long long)r->st.xkey);
		array_int(&a[6], (long long)r->st.copies);
		array_item(&a[7], r->st.displayed ? "t" : "f");
		array_item(&a[8], r->queued ? "t" : "f");
		array_item(&a[9], r->st.dkey > 0 ? r->details : NULL);
	}
	each_putc(a, FOLD_PARAMS, '}');
}

/* A query with parameters from mbufs; its result if it has ncols columns, else NULL. */
static PGresult *
query(PGconn *conn, const char *sql, struct mbuf *a, int n, int format, int ncols,
      bool *transient_r, const char **error_r)
{
	const char *params[BEGIN_PARAMS];
	PGresult *res;

	for (int k = 0; k < n; k++)
		params[k] = mbuf_str(&a[k]);
	res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, format);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
		store_failed(conn, res, transient_r, error_r);
		return NULL;
	}
	return res;
}

#define BEGIN_SQL                                                                                  \
	"SELECT b.h, b.known, b.fast, u.id, u.owner, u.sender, u.message_id"                       \
	" FROM msgstatus_fast_begin($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"   \
	" $6::bigint[], $7::timestamptz[], $8::int[], $9::text[], $10::boolean[], $11::text[],"    \
	" $12::text[]) b"                                                                          \
	" LEFT JOIN LATERAL unnest(b.ids, b.owners, b.msenders, b.message_ids) WITH ORDINALITY"    \
	" u (id, owner, sender, message_id, ord) ON true ORDER BY u.ord"
#define FOLD_SQL                                                                                   \
	"SELECT msgstatus_fast_fold($1::bigint[], $2::text[], $3::text[], $4::bigint[],"           \
	" $5::bigint[], $6::bigint[], $7::int[], $8::boolean[], $9::boolean[], $10::jsonb[])"
#define EVENTS_COPY                                                                                \
	"COPY events (event_time, event_id, log_offset, type, source, message, dkey, rkey, xkey,"  \
	" copies, tracking_id, queue_id, message_id, recipient, orig_recipient, rcpt, details)"    \
	" FROM STDIN"

/* msgstatus_fast_begin(): 1 fast, 0 not, -1 failed; *h_r and *known_r, and the messages */
static int
fast_begin(PGconn *conn, struct fbatch *fb, int64_t *h_r, int64_t *known_r, bool *transient_r,
           const char **error_r)
{
	struct mbuf a[BEGIN_PARAMS];
	PGresult *res;
	int rc = 0;

	memset(a, 0, sizeof(a));
	begin_arrays(fb, a);
	res = query(conn, BEGIN_SQL, a, BEGIN_PARAMS, 0, 7, transient_r, error_r);
	for (int k = 0; k < BEGIN_PARAMS; k++)
		mbuf_free(&a[k]);
	if (res == NULL)
		return -1;
	if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) {
		*error_r = "msgstatus_fast_begin() returned no head";
		PQclear(res);
		return -1;
	}
	*h_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*known_r = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		if ((size_t)PQntuples(res) != fb->nmsgs) {
			*error_r = "msgstatus_fast_begin() returned other messages";
			PQclear(res);
			return -1;
		}
		for (size_t i = 0; i < fb->nmsgs; i++) {
			struct fmsg *m = &fb->msgs[i];

			m->id = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
			m->owner = store_get_str(res, (int)i, 4);
			m->sender = store_get_str(res, (int)i, 5);
			m->message_id = store_get_str(res, (int)i, 6);
		}
		rc = 1;
	}
	PQclear(res);
	return rc;
}

/* The events' rows for COPY into events, numbered after h. */
static void
events_rows(const struct fbatch *fb, int64_t h, struct mbuf *out)
{
	static const int before[] = {F_TIME, F_ID},
	                 after[] = {F_DKEY, F_RKEY, F_XKEY, F_COPIES, F_TID, F_QID, F_MID, F_RCPT};

	for (size_t i = 0; i < fb->n; i++) {
		const struct fev *e = &fb->ev[i];

		for (size_t k = 0; k < sizeof(before) / sizeof(before[0]); k++) {
			mbuf_append(out, e->raw[before[k]], e->rawlen[before[k]]);
			mbuf_putc(out, '\t');
		}
		mbuf_printf(out, "%lld\t%d\t", (long long)(h + 1 + (int64_t)i), e->type);
		mbuf_append(out, e->raw[F_SOURCE], e->rawlen[F_SOURCE]);
		mbuf_printf(out, "\t%lld", (long long)fb->msgs[e->msg].id);
		for (size_t k = 0; k < sizeof(after) / sizeof(after[0]); k++) {
			mbuf_putc(out, '\t');
			mbuf_append(out, e->raw[after[k]], e->rawlen[after[k]]);
		}
		mbuf_puts(out, "\t\\N\t");
		for (size_t k = 0; k < e->rawlen[F_RCPT]; k++) {
			char c = e->raw[F_RCPT][k];

			mbuf_putc(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
		}
		mbuf_putc(out, '\t');
		mbuf_append(out, e->raw[F_DETAILS], e->rawlen[F_DETAILS]);
		mbuf_putc(out, '\n');
	}
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? mystrdup(s) : NULL;
}

/* What entered the log, as msgstatus_ingest_append() returns it */
static struct store_logged *
logged_events(const struct fbatch *fb, int64_t h)
{
	struct store_logged *logged = mycalloc(fb->n, sizeof(*logged));

	for (size_t i = 0; i < fb->n; i++) {
		const struct fev *e = &fb->ev[i];
		const struct fmsg *m = &fb->msgs[e->msg];
		struct store_logged *l = &logged[i];

		l->log_offset = h + 1 + (int64_t)i;
		l->time_ms = e->time_ms;
		l->type = e->type;
		l->message = m->id;
		l->event_id = mystrdup(e->val[F_ID]);
		l->recipient = mystrdup(e->rcpt);
		l->details = dup_or_null(e->val[F_DETAILS]);
		l->tracking_id = mystrdup(m->f[F_TID]);
		l->message_id = dup_or_null(m->message_id);
		l->owner = dup_or_null(m->owner);
		l->sender = dup_or_null(m->sender);
	}
	return logged;
}

/* The fast path after the begin: 1 stored, 0 a replay (rolled back to the savepoint), -1 */
static int
fast_write(PGconn *conn, struct fbatch *fb, int64_t h, bool *transient_r, const char **error_r)
{
	struct mbuf rows = MBUF_INIT, a[FOLD_PARAMS];
	char state[6] = "";
	PGresult *res;
	int rc;

	if (store_exec(conn, "SAVEPOINT fast", transient_r, error_r) < 0)
		return -1;
	events_rows(fb, h, &rows);
	rc = store_copy_in(conn, EVENTS_COPY, rows.data, rows.len, state, transient_r, error_r);
	mbuf_free(&rows);
	if (rc < 0 && strcmp(state, "23505") == 0) {
		/* an event stored before: a replay, today's path skips what was stored */
		return store_exec(conn, "ROLLBACK TO SAVEPOINT fast", transient_r, error_r) < 0 ? -1
		                                                                                : 0;
	}
	if (rc < 0)
		return -1;
	memset(a, 0, sizeof(a));
	fold_arrays(fb, a);
	res = query(conn, FOLD_SQL, a, FOLD_PARAMS, 0, 1, transient_r, error_r);
	for (int k = 0; k < FOLD_PARAMS; k++)
		mbuf_free(&a[k]);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 1;
}

/* Today's steps after the begin: the COPY into ingest_stage, msgstatus_fast_slow() */
static int
slow_write(PGconn *conn, const struct mbuf *copy, int64_t h, int64_t known,
           struct store_logged **logged_r, size_t *nlogged_r, bool *transient_r,
           const char **error_r)
{
	char hs[24], ks[24];
	const char *params[2] = {hs, ks};
	PGresult *res;

	if (store_copy_in(conn, "COPY ingest_stage FROM STDIN", copy->data, copy->len, NULL,
	                  transient_r, error_r) < 0)
		return -1;
	snprintf(hs, sizeof(hs), "%lld", (long long)h);
	snprintf(ks, sizeof(ks), "%lld", (long long)known);
	res = PQexecParams(conn, "SELECT * FROM msgstatus_fast_slow($1::bigint, $2::bigint)", 2,
	                   NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 11)
		return store_failed(conn, res, transient_r, error_r);
	*logged_r = store_logged_from(res, nlogged_r);
	PQclear(res);
	return 0;
}

int
ingest_fast_available(PGconn *conn, bool *available_r, const char **error_r)
{
	return store_function_available(conn, "msgstatus_fast_begin", available_r, error_r);
}

int
ingest_fast_store(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
                  size_t *nlogged_r, int64_t *head_r, int64_t *epoch_r, enum ingest_path *path_r,
                  bool *transient_r, const char **error_r)
{
	struct fbatch fb = {0};
	struct store_logged *logged = NULL;
	size_t nl = 0;
	int64_t h, known;
	char hs[24], ns[24];
	const char *params[2] = {hs, ns};
	PGresult *res;
	int fast, began = 0;

	*transient_r = false;
	*logged_r = NULL;
	*nlogged_r = 0;
	*path_r = INGEST_PATH_TODAY;
	if (!parse_rows(&fb, copy) || !classify(&fb)) {
		fbatch_free(&fb);
		return 0;
	}
	if (store_exec(conn, "BEGIN", transient_r, error_r) < 0)
		goto fail;
	if ((fast = fast_begin(conn, &fb, &h, &known, transient_r, error_r)) < 0)
		goto fail;
	began = fast;
	if (fast && (fast = fast_write(conn, &fb, h, transient_r, error_r)) < 0)
		goto fail;
	if (fast) {
		*path_r = INGEST_PATH_FAST;
		logged = logged_events(&fb, h);
		nl = fb.n;
	} else {
		*path_r = began ? INGEST_PATH_REPLAY : INGEST_PATH_DECLINED;
		if (slow_write(conn, copy, h, known, &logged, &nl, transient_r, error_r) < 0)
			goto fail;
	}
	snprintf(hs, sizeof(hs), "%lld", (long long)h);
	snprintf(ns, sizeof(ns), "%zu", nl);
	res = PQexecParams(conn, "SELECT msgstatus_ingest_end($1::bigint, $2::bigint)", 2, NULL,
	                   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		store_failed(conn, res, transient_r, error_r);
		goto fail;
	}
	PQclear(res);
	if (store_log_head(conn, head_r, epoch_r, error_r) < 0) {
		*transient_r = true;
		goto fail;
	}
	if (store_exec(conn, "COMMIT", transient_r, error_r) < 0) {
		store_logged_free(logged, nl);
		fbatch_free(&fb);
		return -1;
	}
	fbatch_free(&fb);
	*logged_r = logged;
	*nlogged_r = nl;
	return 0;
fail:
	store_logged_free(logged, nl);
	store_rollback(conn);
	fbatch_free(&fb);
	return -1;
}
