/*
 * ingest_batch - the batches of statusd's event socket: events collected from every
 * connection go to PostgreSQL together (store_ingest; a small one in one round trip,
 * store_ingest_small; a plain one on the fast path, ingest_fast_store), on the query
 * worker's thread, one batch at a time; their replies and the feeds follow on the loop
 * thread. See ingest.h.
 */
#include "ingest_int.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mdn.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "sdconfig.h"

/* --- mdn events ------------------------------------------------------------------------ */

/* What the Dovecot plugin's mdn event asks (docs/protocol.md), owned. */
struct ingest_mdn {
	struct mdn_request req;
	struct store_mdn_read rd;
	char *strings[10];
};

static const char *
mdn_keep(struct ingest_mdn *m, int i, const char *s)
{
	m->strings[i] = s != NULL ? mystrdup(s) : NULL;
	return m->strings[i];
}

struct ingest_mdn *
ingest_mdn_new(const struct msevent *ev)
{
	struct ingest_mdn *m = mycalloc(1, sizeof(*m));
	struct json_object *uid;

	m->req.user = mdn_keep(m, 0, ev->recipient);
	m->req.message_id = mdn_keep(m, 1, ev->message_id);
	m->req.dnt = mdn_keep(m, 2, msevent_detail_get(ev, "disposition_notification_to"));
	m->req.return_path = mdn_keep(m, 3, msevent_detail_get(ev, "return_path"));
	m->req.subject = mdn_keep(m, 4, msevent_detail_get(ev, "subject"));
	m->req.content_type = mdn_keep(m, 5, msevent_detail_get(ev, "content_type"));
	m->req.dn_options =
	        mdn_keep(m, 6, msevent_detail_get(ev, "disposition_notification_options"));
	m->req.mdn_default = mdn_pref_parse(msevent_detail_get(ev, "mdn_default"));
	m->rd.req = &m->req;
	m->rd.mailbox = mdn_keep(m, 7, msevent_detail_get(ev, "mailbox"));
	m->rd.event_id = mdn_keep(m, 8, ev->id);
	m->rd.time_ms = ev->time_ms;
	m->rd.uid = -1;
	if (ev->details != NULL && json_object_object_get_ex(ev->details, "uid", &uid) &&
	    json_object_is_type(uid, json_type_int) && json_object_get_int64(uid) >= 0)
		m->rd.uid = json_object_get_int64(uid);
	return m;
}

static void
ingest_mdn_free(struct ingest_mdn **mp)
{
	struct ingest_mdn *m = *mp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < sizeof(m->strings) / sizeof(m->strings[0]); i++)
		free(m->strings[i]);
	free(m);
	*mp = NULL;
}

/* Worker thread: decide the batch's mdn events. DBW_DONE, or DBW_RETRY when the database
   went away (the decisions made so far stand: deciding again finds them). */
static enum dbw_result
batch_mdn(struct batch *b, PGconn *conn)
{
	for (int i = 0; i < b->count; i++) {
		struct batch_ref *r = &b->refs[i];
		const char *error;
		bool transient;

		if (r->mdn == NULL || b->errors[i] != NULL)
			continue;
		if (store_mdn_decide(conn, &r->mdn->rd, &r->mdn_send, &transient, &error) == 0)
			continue;
		if (transient) {
			msg_warn("events: deciding about an MDN failed, will retry: %s", error);
			return DBW_RETRY;
		}
		b->errors[i] = mystrdup(errfmt("rejected by the database: %s", error));
	}
	return DBW_DONE;
}

/* --- batches ------------------------------------------------------------------------- */

struct batch *
ingest_batch_new(struct ingest *ing)
{
	struct batch *b = mycalloc(1, sizeof(*b));
	size_t n = (size_t)ing->cfg->ingest_batch_max;

	b->refs = mycalloc(n, sizeof(*b->refs));
	b->errors = mycalloc(n, sizeof(*b->errors));
	b->ing = ing;
	return b;
}

void
ingest_batch_free(struct batch *b)
{
	for (int i = 0; i < b->count; i++) {
		free(b->errors[i]);
		ingest_mdn_free(&b->refs[i].mdn);
	}
	free(b->errors);
	store_logged_free(b->logged, b->nlogged);
	free(b->refs);
	mbuf_free(&b->copy);
	free(b);
}

bool
ingest_batch_full(const struct ingest *ing)
{
	return ing->filling != NULL && ing->filling->count >= ing->cfg->ingest_batch_max;
}

/* Keep what a part of the batch logged. */
static void
add_logged(struct batch *b, struct store_logged *more, size_t n)
{
	if (n == 0) {
		free(more);
		return;
	}
	b->logged = myreallocarray(b->logged, b->nlogged + n, sizeof(*b->logged));
	memcpy(b->logged + b->nlogged, more, n * sizeof(*more));
	b->nlogged += n;
	free(more);
}

/* Worker thread: store rows (the batch's, or one of them) of the batch: on the fast path
   when they are all the plain case, else in one round trip when they are few and need none
   of the steps store_ingest_small() leaves out. */
static int
batch_store(struct batch *b, PGconn *conn, const struct mbuf *copy, int rows,
            struct store_logged **logged_r, size_t *nlogged_r, bool *transient_r,
            const char **error_r)
{
	b->path = INGEST_PATH_TODAY;
	/* on the fast path when its events are all the plain case (schema 019): a small one
	   too, which then costs PostgreSQL less than its one round trip (docs/performance.md,
	   "Schema 019") */
	if (b->ing->fast_schema && !b->inbound && !b->reports && !b->outbox_run) {
		if (ingest_fast_store(conn, copy, logged_r, nlogged_r, &b->head, &b->epoch,
		                      &b->path, transient_r, error_r) < 0)
			return -1;
		if (b->path != INGEST_PATH_TODAY)
			return 0;
	}
	if (b->ing->small_schema && rows <= STORE_SMALL_BATCH && !b->inbound && !b->reports &&
	    !b->outbox_run)
		return store_ingest_small(conn, copy, logged_r, nlogged_r, &b->head, &b->epoch,
		                          transient_r, error_r);
	return store_ingest(conn, copy, b->inbound, b->reports, b->ing->steps_schema,
	                    b->outbox_run ? &b->outbox : NULL, logged_r, nlogged_r, &b->head,
	                    &b->epoch, transient_r, error_r);
}

/* Worker thread: store the batch; on a permanent failure, store its events one by one. */
static enum dbw_result
batch_run(struct dbjob *job, PGconn *conn)
{
	struct batch *b = (struct batch *)job;
	struct store_logged *logged;
	size_t nlogged;
	const char *error;
	bool transient;
	/* one by one: the outbox rows of the events stored (the sum), -1 if each of them said
	   the site remembers no other site's mail */
	int64_t added = 0;
	bool told = false, remembered = false;

	for (int i = 0; i < b->count; i++) {
		free(b->errors[i]);
		b->errors[i] = NULL;
	}
	store_logged_free(b->logged, b->nlogged);
	b->logged = NULL;
	b->nlogged = 0;
	b->started_ms = time_mono_ms();
	if (b->copy.len == 0) /* mdn events only */
		return batch_mdn(b, conn);
	/* the outbox step needs schema 011: asked until the database has it (once, normally) */
	if (b->outbox_run && !b->ing->outbox_schema &&
	    store_outbox_available(conn, &b->ing->outbox_schema, &error) < 0) {
		msg_warn("events: %s", error);
		return DBW_RETRY;
	}
	if (!b->ing->outbox_schema)
		b->outbox_run = false;
	/* the ingest's steps one by one need schema 012: asked until the database has them */
	if (!b->ing->steps_schema &&
	    store_ingest_steps_available(conn, &b->ing->steps_schema, &error) < 0) {
		msg_warn("events: %s", error);
		return DBW_RETRY;
	}
	/* and a small batch in one call, schema 017 */
	if (!b->ing->small_schema &&
	    store_ingest_small_available(conn, &b->ing->small_schema, &error) < 0) {
		msg_warn("events: %s", error);
		return DBW_RETRY;
	}
	/* and the fast path, schema 019 */
	if (!b->ing->fast_schema && ingest_fast_available(conn, &b->ing->fast_schema, &error) < 0) {
		msg_warn("events: %s", error);
		return DBW_RETRY;
	}
	if (batch_store(b, conn, &b->copy, b->count, &logged, &nlogged, &transient, &error) == 0) {
		add_logged(b, logged, nlogged);
		b->took_ms = time_mono_ms() - b->started_ms;
		return batch_mdn(b, conn);
	}
	if (transient) {
		msg_warn("events: storing a batch of %d failed, will retry: %s", b->count, error);
		return DBW_RETRY;
	}
	msg_warn("events: the database rejected a batch of %d: %s; storing its events one by one",
	         b->count, error);
	for (int i = 0; i < b->count; i++) {
		struct mbuf one = MBUF_INIT;
		int rc;

		if (b->refs[i].mdn != NULL)
			continue;
		mbuf_append(&one, b->copy.data + b->refs[i].row_start, b->refs[i].row_len);
		rc = batch_store(b, conn, &one, 1, &logged, &nlogged, &transient, &error);
		mbuf_free(&one);
		if (rc < 0 && transient)
			return DBW_RETRY; /* the ones stored so far are skipped as duplicates */
		if (rc < 0) {
			b->errors[i] = mystrdup(errfmt("rejected by the database: %s", error));
		} else {
			add_logged(b, logged, nlogged);
			if (b->outbox_run) {
				told = true;
				remembered |= b->outbox.added >= 0;
				added += b->outbox.added > 0 ? b->outbox.added : 0;
			}
		}
	}
	if (b->outbox_run)
		b->outbox.added = told && !remembered ? -1 : added;
	return batch_mdn(b, conn);
}

static struct slot *
conn_slot(struct conn *c, uint64_t seq)
{
	uint64_t first = c->slots[c->head].seq;

	if (c->count == 0 || seq < first || seq - first >= c->count)
		msg_panic("ingest: no reply slot for record %llu", (unsigned long long)seq);
	return &c->slots[c->head + (size_t)(seq - first)];
}

/* Loop thread: acknowledge what the batch stored, resume reading. */
static void
batch_done(struct dbjob *job)
{
	struct batch *b = (struct batch *)job;
	struct ingest *ing = b->ing;
	bool failed = job->failed; /* the job is part of the batch, freed below */
	struct conn *c;

	if (!failed) {
		int64_t newest = 0;
		ing->stats.logged += (uint64_t)b->nlogged;
		ing->stats.batches++;
		ing->stats.batches_fast += b->path == INGEST_PATH_FAST;
		ing->stats.batches_declined += b->path == INGEST_PATH_DECLINED;
		ing->stats.batches_replay += b->path == INGEST_PATH_REPLAY;
		ing->stats.batch_ms = b->took_ms;
		if (b->head > 0 || b->epoch > 0) {
			ing->stats.head = b->head;
			ing->stats.epoch = b->epoch;
		}
		for (size_t i = 0; i < b->nlogged; i++)
			if (b->logged[i].time_ms > newest)
				newest = b->logged[i].time_ms;
		if (newest > 0)
			ing->stats.lag_ms = time_now_ms() - newest;
		if (b->outbox_run) {
			ing->fed_no_inbound = b->outbox.added < 0;
			if (b->outbox.added > 0)
				ing->stats.outbox_added += (uint64_t)b->outbox.added;
		} else if (b->inbound)
			ing->fed_no_inbound = false;
	}
	/* States first, then replies, then references: a connection is freed only when its
	   last reference goes, so nothing below touches a freed connection. */
	for (int i = 0; i < b->count; i++) {
		struct batch_ref *r = &b->refs[i];
		c = r->conn;
		ing->stats.pending--;
		if (failed || c->closed)
			continue;
		struct slot *s = conn_slot(c, r->seq);
		if (b->errors[i] != NULL) {
			s->state = SLOT_NAK;
			s->error = b->errors[i];
			b->errors[i] = NULL;
			ing->stats.rejected++;
		} else {
			s->state = SLOT_ACK;
			if (r->mdn != NULL)
				s->mdn = r->mdn_send ? MDN_REPLY_SEND : MDN_REPLY_NOT;
		}
	}
	ing->inflight = NULL;
	for (int i = 0; i < b->count; i++)
		if (!b->refs[i].conn->closed)
			ingest_conn_flush(b->refs[i].conn);
	/* The feeds after the acknowledgements: a fan-out to many subscribers takes a while,
	   and the producers need not wait for it. */
	if (!failed && ing->on_logged != NULL && b->nlogged > 0)
		ing->on_logged(ing->on_logged_ctx, b->logged, b->nlogged);
	for (int i = 0; i < b->count; i++) {
		c = b->refs[i].conn;
		c->refs--;
		ingest_conn_maybe_close(c);
	}
	ingest_batch_free(b);
	for (c = ing->conns; c != NULL; c = c->next)
		if (c->blocked && !ing->shutting_down) {
			c->blocked = false;
			ingest_conn_process(c);
		}
	/* A batch fails only when the worker is stopping (it retries otherwise): then nothing
	   more goes to the database, and the shutdown is already being forced. */
	if (ing->shutting_down && !failed) {
		ingest_batch_submit(ing);
		if (ing->inflight == NULL && ing->shutdown_done != NULL) {
			void (*done)(void *) = ing->shutdown_done;
			ing->shutdown_done = NULL;
			done(ing->shutdown_ctx);
		}
	}
}

void
ingest_batch_submit(struct ingest *ing)
{
	struct batch *b = ing->filling;

	if (ing->inflight != NULL || b == NULL || b->count == 0)
		return;
	ing->filling = NULL;
	ing->inflight = b;
	/* The federation outbox (sql/011), for batches that may hold events of other sites'
	   mail or remember some (whose events may have come first), unless the site remembers
	   no such mail (then until a batch brings some), or its policy sends nothing anywhere:
	   one statement more per such batch, none else. */
	b->outbox_run = (b->fedout || b->inbound) && ing->cfg->fed_policy_any &&
	                (!ing->fed_no_inbound || b->inbound);
	if (b->outbox_run) {
		b->outbox.default_level = (int)ing->cfg->fed_policy.dflt;
		b->outbox.sql_domains = ing->cfg->fed_policy.sql_domains;
		b->outbox.sql_levels = ing->cfg->fed_policy.sql_levels;
		b->outbox.added = 0;
	}
	b->job.run = batch_run;
	b->job.done = batch_done;
	dbworker_submit(ing->db, &b->job);
}

/* After each loop iteration's I/O: hand the collected events to the database. */
void
ingest_on_check(uv_check_t *handle)
{
	ingest_batch_submit(handle->data);
}
