/*
 * fedin - statusd's report endpoint. See fedin.h and docs/federation.md.
 */
#include "fedin.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbworker.h"
#include "env.h"
#include "fedaccept.h"
#include "fedrec.h"
#include "htable.h"
#include "http.h"
#include "httpsig.h"
#include "ingest.h"
#include "jsonstr.h"
#include "mbuf.h"
#include "mimistatus.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "resolver.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store_fed.h"

#define PATH           "/api/v1/federation/reports"
#define SKEW_S         60  /* a created this far in the future is taken */
#define MAX_LIFE_S     300 /* expires - created */
#define RETRY_DNS_S    30
#define RETRY_DB_S     30
#define RETRY_BUSY_S   5
#define PENDING_MAX    32          /* reports queued, checked or being stored; more: 503 busy */
#define DNS_DOWN_MS    (15 * 1000) /* a zone whose lookup failed is not asked again so soon */
#define DNS_DOWN_MAX   1024        /* zones remembered so */
#define GONE_CHECK_MS  500         /* how often waiting reports' clients are looked at */
#define EXPIRE_EVERY   (10 * 60 * 1000LL) /* ms between clean-ups (maintenance_interval if less) */
#define FIELD_BUFSIZE  (HTTPSIG_FIELD_MAX + 2)
#define LIMITED_LOG_MS (60 * 1000) /* clients over their rate: one log line at most this often */

struct fedin {
	const struct sd_config *cfg;
	struct ingest *ingest;
	struct dbworker *db;
	struct resolver *resolver;
	/* the URL senders sign (@target-uri): federation_endpoint, else from Host */
	char *target_uri, *authority, *path;
	/* worker thread only */
	struct fedrate *rate;
	struct htable *dns_down; /* zone (fedrate_charged) -> int64_t: monotonic ms until */
	struct htable *inflight; /* stored ids handed to the ingest, not yet known stored */
	/* stored ids whose ingest has answered (or that never reached it), from the loop
	   thread to the worker, which forgets them in inflight before its next lookup */
	pthread_mutex_t done_lock;
	struct mbuf done;   /* NUL-terminated ids, one after another */
	int64_t started_ms; /* wall clock, for federation_unknown_window */
	/* loop thread only */
	struct fedrate *clients;          /* federation_client_rate, per client address */
	unsigned pending;                 /* jobs submitted, not yet freed */
	struct fed_job *waiting;          /* jobs submitted, the worker not done with them */
	uv_timer_t *gone_timer;           /* looks at their clients */
	uv_timer_t *expire_timer;         /* old nonces and events go */
	bool expire_queued;               /* a clean-up job is on the worker */
	uint64_t answered[FEDIN_ERR_MAX]; /* reports, by outcome */
	uint64_t abandoned;               /* reports whose client went before they were checked */
	uint64_t events_stored, events_duplicate, events_refused, events_ignored, events_later;
	int64_t limited_logged_ms; /* when a client over its rate was last logged */
	uint64_t limited_since;    /* reports refused so since */
};

/* One report, from the handler through the worker back to the loop thread. */
struct fed_job {
	struct dbjob job;
	struct fedin *fi;
	struct req_ticket *ticket;
	/* the request */
	unsigned char *body;
	size_t body_len;
	char *sig_input, *sig, *digest, *ctype, *host;
	int64_t expires;             /* the signature's */
	bool queued;                 /* counted in fi->pending */
	struct fed_job *prev, *next; /* in fi->waiting (loop thread) */
	atomic_bool gone;            /* the client went away (set on the loop thread) */
	bool abandoned;              /* so the worker did not check it */
	PGconn *conn;                /* the worker's, while run() runs */
	/* how far verification came */
	bool key_ok, replay_ok;
	char key_domain[FEDREC_DOMAIN_MAX + 1];
	/* the outcome */
	enum fedin_err err;
	const char *detail;
	int retry_s;
	unsigned accepted, duplicate, refused, ignored;
	unsigned later;        /* events about a message not known yet: to be sent again */
	struct mbuf later_ids; /* their event ids (NUL-terminated) */
	unsigned to_store;     /* records in lines */
	struct mbuf lines;     /* event records for the ingest */
	struct mbuf handed;    /* their stored ids (NUL-terminated), in fi->inflight */
	char errbuf[256];
};

/* --- the worker thread ---------------------------------------------------------------- */

static const char *
job_field(void *ctx, const char *name)
{
	struct fed_job *j = ctx;

	if (strcmp(name, "content-type") == 0)
		return j->ctype;
	if (strcmp(name, "content-digest") == 0)
		return j->digest;
	return NULL; /* reqhead.c passes no other field on */
}

static int
fail(struct fed_job *j, enum fedin_err err, const char *detail, const char **error_r)
{
	j->err = err;
	j->detail = detail;
	*error_r = detail;
	return -1;
}

/* Was a lookup in domain's zone (its last two labels, as the rate limit's) a temporary
   failure a moment ago? Then *retry_s is when to try again. A sender's names are its own
   choice: without this, each new name in a zone that does not answer costs dns_timeout. */
static bool
dns_down(struct fedin *fi, const char *domain, int *retry_s)
{
	const char *zone = fedrate_charged(domain);
	struct htable_entry *e = htable_locate(fi->dns_down, zone, strlen(zone));
	int64_t now = time_mono_ms(), until;

	if (e == NULL)
		return false;
	until = *(int64_t *)e->value;
	if (until <= now) {
		htable_remove(fi->dns_down, e, free);
		return false;
	}
	*retry_s = (int)((until - now) / 1000) + 1;
	return true;
}

static void
dns_down_enter(struct fedin *fi, const char *domain)
{
	const char *zone = fedrate_charged(domain);
	int64_t *until = htable_find(fi->dns_down, zone, strlen(zone));

	if (until == NULL) {
		if (htable_used(fi->dns_down) >= DNS_DOWN_MAX) { /* all of them: it is brief */
			htable_free(&fi->dns_down, free);
			fi->dns_down = htable_create(64);
		}
		until = mymalloc(sizeof(*until));
		htable_enter(fi->dns_down, zone, strlen(zone), until);
	}
	*until = time_mono_ms() + DNS_DOWN_MS;
}

/* httpsig's key lookup: the MSK1 record at keyid, through the resolver. */
static int
key_lookup(void *ctx, const char *keyid, EVP_PKEY **key_r, const char **error_r)
{
	struct fed_job *j = ctx;
	char selector[FEDREC_SELECTOR_MAX + 1], domain[FEDREC_DOMAIN_MAX + 1];
	const char *error = NULL;
	struct fedrec_msk rec;
	struct dns_txt *t;
	int k;

	if (fedrec_keyid_split(keyid, strlen(keyid), selector, domain, &error) < 0)
		return fail(j, FEDIN_PROFILE, "keyid is not <selector>._msgstatus-key.<domain>",
		            error_r);
	if (dns_down(j->fi, domain, &j->retry_s))
		return fail(j, FEDIN_DNS_UNAVAILABLE, "the key cannot be looked up now", error_r);
	if (atomic_load(&j->gone)) {
		j->abandoned = true;
		return fail(j, FEDIN_DNS_UNAVAILABLE, "the client went away", error_r);
	}
	t = resolver_txt(j->fi->resolver, keyid, &error);
	switch (t->status) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		dns_txt_free(&t);
		return fail(j, FEDIN_KEY_UNKNOWN, "no key is published at keyid", error_r);
	case DNS_BOGUS:
		dns_txt_free(&t);
		return fail(j, FEDIN_KEY_UNKNOWN, "the key's record fails DNSSEC validation",
		            error_r);
	default:
		dns_txt_free(&t);
		msg_warn("federation: cannot look up %s now: %s", keyid,
		         error ? error : "temporary failure");
		dns_down_enter(j->fi, domain);
		j->retry_s = RETRY_DNS_S;
		return fail(j, FEDIN_DNS_UNAVAILABLE, "the key cannot be looked up now", error_r);
	}
	k = fedrec_select(FEDREC_MSK, (const char *const *)t->data, t->len, t->n, &error);
	if (k < 0 || fedrec_parse_msk(t->data[k], t->len[k], &rec, &error) < 0) {
		dns_txt_free(&t);
		return fail(j, FEDIN_KEY_UNKNOWN, "no valid MSK1 record at keyid", error_r);
	}
	dns_txt_free(&t);
	if (rec.revoked)
		return fail(j, FEDIN_KEY_REVOKED, "the key is revoked (empty p=)", error_r);
	*key_r = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, rec.key, sizeof(rec.key));
	if (*key_r == NULL)
		return fail(j, FEDIN_KEY_UNKNOWN, "the published key is not an Ed25519 key",
		            error_r);
	snprintf(j->key_domain, sizeof(j->key_domain), "%s", domain);
	j->key_ok = true;
	return 0;
}

/* httpsig's replay check, after the signature and freshness: first the rate limit of the
   now authenticated domain, then (keyid, nonce) in PostgreSQL. */
static int
replay_check(void *ctx, const char *keyid, const char *nonce, int64_t expires, const char **error_r)
{
	struct fed_job *j = ctx;
	const char *error = NULL;
	bool transient;
	int rc;

	if (!fedrate_take(j->fi->rate, j->key_domain, time_mono_ms(), &j->retry_s))
		return fail(j, FEDIN_RATE_LIMITED,
		            "too many reports from this domain (federation_rate)", error_r);
	rc = store_fed_nonce(j->conn, keyid, nonce, expires, &transient, &error);
	if (rc < 0) {
		msg_warn("federation: cannot record a nonce: %s", error);
		j->retry_s = RETRY_DB_S;
		return fail(j, FEDIN_DB_UNAVAILABLE, "the report cannot be checked now", error_r);
	}
	if (rc == 0)
		return fail(j, FEDIN_REPLAY, "this signature's nonce was seen before", error_r);
	j->replay_ok = true;
	return 0;
}

/* The events of a verified report: what this site has of each, then the records to store. */
static void
take_events(struct fed_job *j, const struct mimistatus_report *rep, struct store_fed_item *items,
            const bool *unknown, bool *store)
{
	int64_t now = time_now_ms();

	for (size_t i = 0; i < rep->count; i++) {
		struct store_fed_item *it = &items[i];
		char *stored_id = (char *)it->stored_id;
		const char *type;
		struct msevent ev;
		bool again = false;

		for (size_t k = 0; k < i && !again; k++)
			again = strcmp(items[k].event_id, it->event_id) == 0;
		/* taken, and stored or on its way to the ingest (by an earlier report) */
		if (again ||
		    (it->taken && (it->stored || htable_locate(j->fi->inflight, stored_id,
		                                               strlen(stored_id)) != NULL))) {
			j->duplicate++;
			continue;
		}
		/* the code and the time first: they decide whatever this site knows */
		switch (fedaccept_event(rep->entries[i].status, it->time_ms, now,
		                        j->fi->cfg->event_retention, &type)) {
		case FEDACCEPT_IGNORE:
			j->ignored++;
			continue;
		case FEDACCEPT_REFUSE:
		case FEDACCEPT_LATER:
			j->refused++;
			continue;
		case FEDACCEPT_STORE:
			break;
		}
		if (!it->found && unknown[i]) {
			j->later++; /* a message not known yet (fedaccept_unknown) */
			mbuf_append(&j->later_ids, it->event_id, strlen(it->event_id) + 1);
			continue;
		}
		if (!it->found) {
			j->refused++; /* this site never sent that message to that recipient */
			continue;
		}
		if (it->taken) /* remembered, but its first storing failed: the same time */
			it->time_ms = it->taken_time_ms;
		msevent_init(&ev);
		ev.id = stored_id;
		ev.type = msevent_type_parse(type);
		ev.time_ms = it->time_ms;
		ev.source = "federation";
		ev.tracking_id = it->tracking_id;
		ev.message_id = it->tracking_id == NULL ? it->message_id : NULL;
		ev.recipient = it->recipient;
		msevent_detail_str(&ev, "reporter", j->key_domain);
		msevent_detail_str(&ev, "event_id", it->event_id);
		msevent_format(&ev, &j->lines);
		msevent_clear(&ev);
		store[i] = true;
		j->to_store++;
		htable_enter(j->fi->inflight, stored_id, strlen(stored_id), NULL);
		mbuf_append(&j->handed, stored_id, strlen(stored_id) + 1);
	}
}

/* Forget in fi->inflight the ids whose ingest has answered since (worker thread): the
   lookup that follows sees in the database whether they were stored. */
static void
forget_done(struct fedin *fi)
{
	struct mbuf done;

	pthread_mutex_lock(&fi->done_lock);
	done = fi->done;
	fi->done = (struct mbuf)MBUF_INIT;
	pthread_mutex_unlock(&fi->done_lock);
	for (size_t off = 0; off < done.len; off += strlen(done.data + off) + 1)
		htable_delete(fi->inflight, done.data + off, strlen(done.data + off), NULL);
	mbuf_free(&done);
}

/* Which of the n events not found are about a message this site does not know at all, or
   stored less than federation_unknown_window ago (its other recipients may be in the next
   ingest batch), and may know soon (fedaccept_unknown): unknown[i]. Only those this site
   would store (their code and time, fedaccept_event) and young enough are looked up. */
static int
find_unknown(struct fed_job *j, PGconn *conn, const struct mimistatus_report *rep,
             const struct store_fed_item *items, size_t n, bool *unknown, bool *transient_r,
             const char **error_r)
{
	const uint8_t **msgids = mycalloc(n ? n : 1, sizeof(*msgids));
	size_t *at = mycalloc(n ? n : 1, sizeof(*at));
	bool *known = mycalloc(n ? n : 1, sizeof(*known));
	int64_t now = time_now_ms();
	size_t k = 0;
	int rc;

	const char *type;

	for (size_t i = 0; i < n; i++)
		if (!items[i].found &&
		    fedaccept_event(rep->entries[i].status, items[i].time_ms, now,
		                    j->fi->cfg->event_retention, &type) == FEDACCEPT_STORE &&
		    fedaccept_unknown(items[i].time_ms, now, j->fi->started_ms,
		                      j->fi->cfg->federation_unknown_window) == FEDACCEPT_LATER) {
			msgids[k] = items[i].msgid;
			at[k++] = i;
		}
	rc = store_fed_known(conn, msgids, k, j->fi->cfg->federation_unknown_window, known,
	                     transient_r, error_r);
	for (size_t m = 0; rc == 0 && m < k; m++)
		unknown[at[m]] = !known[m];
	free(msgids);
	free(at);
	free(known);
	return rc;
}

/* Steps 3 and 4 of fedin.h's SECURITY: the claims and the events. */
static void
check_report(struct fed_job *j, PGconn *conn)
{
	struct mimistatus_report rep;
	struct store_fed_item *items = NULL, *fresh = NULL;
	bool *store = NULL, *unknown = NULL;
	char(*stored_ids)[FEDACCEPT_STORED_ID_LEN + 1] = NULL;
	const char *error = NULL;
	bool transient;
	size_t n, nnew = 0;

	memset(&rep, 0, sizeof(rep));
	if (mimistatus_decode(j->body, j->body_len, &rep, &error) < 0) {
		snprintf(j->errbuf, sizeof(j->errbuf), "%s", error);
		j->err = FEDIN_MALFORMED;
		j->detail = j->errbuf;
		goto out;
	}
	if ((j->err = fedaccept_claims(&rep, j->key_domain, &j->detail)) != FEDIN_OK)
		goto out;
	n = rep.count;
	items = mycalloc(n ? n : 1, sizeof(*items));
	stored_ids = mycalloc(n ? n : 1, sizeof(*stored_ids));
	store = mycalloc(n ? n : 1, sizeof(*store));
	unknown = mycalloc(n ? n : 1, sizeof(*unknown));
	for (size_t i = 0; i < n; i++) {
		fedaccept_stored_id(j->key_domain, rep.events[i].event_id, stored_ids[i]);
		items[i].msgid = rep.entries[i].msgid;
		items[i].recipient = rep.events[i].recipient;
		items[i].event_id = rep.events[i].event_id;
		items[i].time_ms = rep.events[i].timestamp_ms;
		items[i].stored_id = stored_ids[i];
	}
	if (store_fed_lookup(conn, j->key_domain, items, n, &transient, &error) < 0)
		goto db_failed;
	if (find_unknown(j, conn, &rep, items, n, unknown, &transient, &error) < 0)
		goto db_failed;
	take_events(j, &rep, items, unknown, store);
	/* Remember the events about to be stored (taken ones keep their row), then store. */
	fresh = mycalloc(n ? n : 1, sizeof(*fresh));
	for (size_t i = 0; i < n; i++)
		if (store[i] && !items[i].taken) {
			fresh[nnew].event_id = items[i].event_id;
			fresh[nnew].time_ms = items[i].time_ms;
			fresh[nnew++].stored_id = items[i].stored_id;
		}
	if (store_fed_remember(conn, j->key_domain, fresh, nnew, &transient, &error) < 0)
		goto db_failed;
	goto out;
db_failed:
	snprintf(j->errbuf, sizeof(j->errbuf), "%s", error ? error : "database error");
	msg_warn("federation: report from %s: %s", j->key_domain, j->errbuf);
	j->err = FEDIN_DB_UNAVAILABLE;
	j->detail = "the report cannot be stored now";
	j->retry_s = RETRY_DB_S;
	mbuf_free(&j->lines);
	j->to_store = 0;
out:
	if (items != NULL) {
		store_fed_items_clear(items, n);
		free(items);
	}
	free(stored_ids);
	free(store);
	free(unknown);
	free(fresh);
	mimistatus_report_free(&rep);
}

static enum dbw_result
fed_run(struct dbjob *dj, PGconn *conn)
{
	struct fed_job *j = (struct fed_job *)dj;
	struct fedin *fi = j->fi;
	struct httpsig_params params, parsed;
	unsigned char sig[HTTPSIG_SIG_LEN];
	struct mbuf target = MBUF_INIT;
	const char *error = NULL;
	int64_t now = (int64_t)time(NULL);
	bool did_parse;

	forget_done(fi);
	/* Nothing costly for a report nobody waits for, or whose signature has died in the
	   queue (checked again by httpsig_verify()). */
	if (atomic_load(&j->gone)) {
		j->abandoned = true;
		return DBW_DONE;
	}
	if (j->expires <= now) {
		j->err = FEDIN_STALE;
		j->detail = "signature expired while the report waited";
		return DBW_DONE;
	}
	j->conn = conn;
	struct httpsig_request req = {
	        .method = "POST",
	        .target_uri = fi->target_uri,
	        .authority = fi->authority,
	        .path = fi->path,
	        .field = job_field,
	        .ctx = j,
	};
	if (fi->target_uri == NULL) { /* no federation_endpoint: https:// and the Host */
		mbuf_printf(&target, "https://%s%s", j->host, PATH);
		req.target_uri = mbuf_str(&target);
		req.authority = j->host;
		req.path = PATH;
	}
	struct httpsig_policy pol = {
	        .label = NULL,
	        .required_components = fedaccept_required,
	        .nrequired = FEDACCEPT_NREQUIRED,
	        .require_expires = true,
	        .require_nonce = true,
	        .require_alg = true,
	        .now = now,
	        .skew = SKEW_S,
	        .max_life = MAX_LIFE_S,
	        .body = j->body,
	        .body_len = j->body_len,
	};
	did_parse = httpsig_parse(j->sig_input, strlen(j->sig_input), j->sig, strlen(j->sig),
	                          &parsed, sig, &error) == 0;
	if (httpsig_verify(&req, j->sig_input, strlen(j->sig_input), j->sig, strlen(j->sig), &pol,
	                   key_lookup, replay_check, j, &params, &error) < 0) {
		if (j->err == FEDIN_OK) {
			j->err = fedaccept_verify_failure(did_parse ? &parsed : NULL, j->key_ok,
			                                  j->replay_ok, now, SKEW_S, MAX_LIFE_S);
			snprintf(j->errbuf, sizeof(j->errbuf), "%s", error ? error : "");
			j->detail = j->errbuf;
		}
	} else
		check_report(j, conn);
	mbuf_free(&target);
	j->conn = NULL;
	return DBW_DONE;
}

/* Old nonces and remembered events go (worker thread), whether reports come or not. */
struct expire_job {
	struct dbjob job;
	struct fedin *fi;
};

static enum dbw_result
expire_run(struct dbjob *dj, PGconn *conn)
{
	struct expire_job *e = (struct expire_job *)dj;
	const char *error = NULL;

	if (store_fed_expire(conn, (int64_t)time(NULL), e->fi->cfg->event_retention, &error) < 0)
		msg_warn("federation: cannot forget old nonces and events: %s", error);
	return DBW_DONE;
}

/* --- the loop thread ------------------------------------------------------------------- */

static void
expire_done(struct dbjob *dj)
{
	struct expire_job *e = (struct expire_job *)dj;

	e->fi->expire_queued = false;
	free(e);
}

/* Every EXPIRE_EVERY (or maintenance_interval): a clean-up job, unless one is queued. */
static void
expire_tick(uv_timer_t *timer)
{
	struct fedin *fi = timer->data;
	struct expire_job *e;

	if (fi->expire_queued)
		return;
	e = mycalloc(1, sizeof(*e));
	e->fi = fi;
	e->job.run = expire_run;
	e->job.done = expire_done;
	e->job.no_retry = true; /* the database is down: the next tick */
	fi->expire_queued = true;
	dbworker_submit(fi->db, &e->job);
}

static void
job_free(struct fed_job *j)
{
	if (j->handed.len > 0) { /* stored or not, the next lookup will tell */
		pthread_mutex_lock(&j->fi->done_lock);
		mbuf_append(&j->fi->done, j->handed.data, j->handed.len);
		pthread_mutex_unlock(&j->fi->done_lock);
	}
	mbuf_free(&j->handed);
	if (j->queued)
		j->fi->pending--;
	free(j->body);
	free(j->sig_input);
	free(j->sig);
	free(j->digest);
	free(j->ctype);
	free(j->host);
	mbuf_free(&j->lines);
	mbuf_free(&j->later_ids);
	free(j);
}

static void
answer_error(struct fedin *fi, struct req *r, enum fedin_err err, const char *detail, int retry_s,
             const char *domain)
{
	const struct fedin_errinfo *e = fedin_errinfo(err);
	char clean[200];

	fi->answered[err]++;
	msg_clean(clean, sizeof(clean), detail ? detail : "", detail ? strlen(detail) : 0);
	msg_info("federation: refused a report%s%s: %u %s: %s", domain && *domain ? " from " : "",
	         domain ? domain : "", e->status, e->code, clean);
	if (r != NULL)
		req_problem_code(r, e->status, e->title, e->code, detail,
		                 e->status == 429 || e->status == 503 ? retry_s : -1);
}

/* 200 with the counts; "refused" counts the events answered "later" too, as a sender that
   does not read "later" takes them (docs/federation.md, "Answers"). */
static void
answer_counts(struct fed_job *j, struct req *r)
{
	struct fedin *fi = j->fi;
	struct mbuf body = MBUF_INIT;
	size_t off = 0;

	fi->answered[FEDIN_OK]++;
	fi->events_stored += j->accepted - j->ignored;
	fi->events_duplicate += j->duplicate;
	fi->events_refused += j->refused;
	fi->events_ignored += j->ignored;
	fi->events_later += j->later;
	msg_info("federation: report from %s: %u accepted, %u duplicate, %u refused, %u later",
	         j->key_domain, j->accepted, j->duplicate, j->refused, j->later);
	if (r == NULL)
		return;
	mbuf_printf(&body, "{\"accepted\":%u,\"duplicate\":%u,\"refused\":%u", j->accepted,
	            j->duplicate, j->refused + j->later);
	if (j->later > 0) {
		mbuf_printf(&body, ",\"later\":[");
		for (unsigned k = 0; k < j->later; k++) {
			const char *id = j->later_ids.data + off;

			if (k > 0)
				mbuf_putc(&body, ',');
			jsonstr_append(&body, id, strlen(id));
			off += strlen(id) + 1;
		}
		mbuf_putc(&body, ']');
	}
	mbuf_printf(&body, "}\n");
	req_text(r, 200, "application/json", &body);
}

/* The ingest has answered every record of a report. */
static void
on_stored(void *ctx, unsigned acked, unsigned rejected)
{
	struct fed_job *j = ctx;
	struct req *r = req_redeem(j->ticket);

	j->accepted = acked + j->ignored;
	j->refused += rejected;
	answer_counts(j, r);
	job_free(j);
}

/* The worker is done with j (loop thread). */
static void
waiting_remove(struct fed_job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		j->fi->waiting = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
}

static void
fed_done(struct dbjob *dj)
{
	struct fed_job *j = (struct fed_job *)dj;
	struct fedin *fi = j->fi;

	waiting_remove(j);
	if (j->abandoned && !j->job.failed) {
		fi->abandoned++;
		(void)req_redeem(j->ticket);
		job_free(j);
		return;
	}
	if (j->job.failed) {
		j->err = FEDIN_DB_UNAVAILABLE;
		j->detail = "the database is unavailable";
		j->retry_s = RETRY_DB_S;
	}
	if (j->err != FEDIN_OK) {
		answer_error(fi, req_redeem(j->ticket), j->err, j->detail, j->retry_s,
		             j->key_domain);
		job_free(j);
		return;
	}
	if (j->to_store == 0) {
		j->accepted = j->ignored;
		answer_counts(j, req_redeem(j->ticket));
		job_free(j);
		return;
	}
	/* answered when the ingest has committed them (on_stored) */
	ingest_source_start(fi->ingest, "federation report", j->lines.data, j->lines.len, on_stored,
	                    j);
}

/* A copy of a request header, or NULL when absent (or longer than max). */
static char *
header(struct req *r, const char *name, size_t max)
{
	char *buf = mymalloc(max + 1);

	if (req_header(r, name, buf, max + 1) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Now and then (loop thread): the reports whose client went away, the worker skips. */
static void
gone_check(uv_timer_t *timer)
{
	struct fedin *fi = timer->data;

	for (struct fed_job *j = fi->waiting; j != NULL; j = j->next)
		if (!atomic_load(&j->gone) && req_ticket_gone(j->ticket))
			atomic_store(&j->gone, true);
}

/* What costs nothing, on the loop thread, before a report waits for the worker: the
   signature's form, profile and freshness (fedaccept_precheck), the body's digest. */
static enum fedin_err
precheck(struct fed_job *j, const struct mbuf *body, const char **detail_r)
{
	struct httpsig_params params;
	unsigned char sig[HTTPSIG_SIG_LEN];
	char digest[HTTPSIG_DIGEST_BUFSIZE];
	enum fedin_err err;

	if (httpsig_parse(j->sig_input, strlen(j->sig_input), j->sig, strlen(j->sig), &params, sig,
	                  detail_r) < 0)
		return FEDIN_SIGNATURE_INVALID;
	err = fedaccept_precheck(&params, (int64_t)time(NULL), SKEW_S, MAX_LIFE_S, detail_r);
	if (err != FEDIN_OK)
		return err;
	httpsig_content_digest((const unsigned char *)body->data, body->len, digest);
	if (j->digest == NULL || strcmp(j->digest, digest) != 0) {
		*detail_r = "Content-Digest does not match the body";
		return FEDIN_DIGEST;
	}
	j->expires = params.expires;
	return FEDIN_OK;
}

/* A report refused for its client's rate: answered, and logged at most once per
   LIMITED_LOG_MS with the number refused since (a client sending too fast would otherwise
   write a line per request). */
static void
client_limited(struct fedin *fi, struct req *r, const char *key, int retry_s)
{
	const struct fedin_errinfo *e = fedin_errinfo(FEDIN_CLIENT_LIMITED);
	int64_t now = time_mono_ms();

	fi->answered[FEDIN_CLIENT_LIMITED]++;
	fi->limited_since++;
	if (fi->limited_logged_ms == 0 || now - fi->limited_logged_ms >= LIMITED_LOG_MS) {
		msg_info("federation: refused %llu report(s) over federation_client_rate since the "
		         "last such line, the latest from %s: %u %s",
		         (unsigned long long)fi->limited_since, key, e->status, e->code);
		fi->limited_logged_ms = now;
		fi->limited_since = 0;
	}
	req_problem_code(r, e->status, e->title, e->code,
	                 "too many reports from this address (federation_client_rate)", retry_s);
}

/* The client address's token, before anything else is looked at (loop thread). An address
   that cannot be had is charged to one bucket of its own. */
static bool
client_take(struct fedin *fi, struct req *r, int *retry_s, char *key)
{
	struct sockaddr_storage addr;

	if (req_peer(r, &addr) < 0 || fedaccept_client_key((struct sockaddr *)&addr, key) < 0)
		snprintf(key, FEDACCEPT_CLIENT_KEY_MAX, "unknown");
	return fedrate_take(fi->clients, key, time_mono_ms(), retry_s);
}

void
api_fed_reports(const struct http_env *env, struct req *r, const struct principal *p,
                const char *param, const struct mbuf *body)
{
	struct fedin *fi = env->fedin;
	struct fed_job *j;
	enum fedin_err err;
	const char *detail = NULL;
	char key[FEDACCEPT_CLIENT_KEY_MAX];
	int retry_s = 1;

	(void)p;
	(void)param;
	if (fi == NULL) {
		req_problem_code(r, 404, "Not Found", fedin_errinfo(FEDIN_DISABLED)->code,
		                 "this site takes no reports (federation_accept)", -1);
		return;
	}
	if (!client_take(fi, r, &retry_s, key)) {
		client_limited(fi, r, key, retry_s);
		return;
	}
	j = mycalloc(1, sizeof(*j));
	j->fi = fi;
	j->ctype = header(r, "content-type", 256);
	if (!fedaccept_content_type_ok(j->ctype)) {
		answer_error(fi, r, FEDIN_CONTENT_TYPE,
		             "expected application/vnd.msgstatus.report+cbor", -1, NULL);
		job_free(j);
		return;
	}
	if (body == NULL || body->len == 0 || body->len > MIMISTATUS_BODY_MAX) {
		answer_error(fi, r, body && body->len ? FEDIN_TOO_LARGE : FEDIN_MALFORMED,
		             body && body->len ? "a report is at most 256 KiB"
		                               : "the body is empty",
		             -1, NULL);
		job_free(j);
		return;
	}
	j->sig_input = header(r, "signature-input", HTTPSIG_FIELD_MAX);
	j->sig = header(r, "signature", HTTPSIG_FIELD_MAX);
	if (j->sig_input == NULL || j->sig == NULL) {
		answer_error(fi, r, FEDIN_SIGNATURE_MISSING,
		             "a report needs Signature-Input and Signature (RFC 9421)", -1, NULL);
		job_free(j);
		return;
	}
	j->digest = header(r, "content-digest", 256);
	if ((err = precheck(j, body, &detail)) != FEDIN_OK) {
		answer_error(fi, r, err, detail, -1, NULL);
		job_free(j);
		return;
	}
	if (fi->pending >= PENDING_MAX) {
		answer_error(fi, r, FEDIN_BUSY, "too many reports are waiting to be checked",
		             RETRY_BUSY_S, NULL);
		job_free(j);
		return;
	}
	j->host = header(r, "host", 256);
	if (j->host == NULL)
		j->host = mystrdup("");
	j->body = mymalloc(body->len);
	memcpy(j->body, body->data, body->len);
	j->body_len = body->len;
	j->ticket = req_ticket(r);
	j->job.run = fed_run;
	j->job.done = fed_done;
	j->job.no_retry = true; /* a sender waits: 503 at once when the database is down */
	j->queued = true;
	fi->pending++;
	j->next = fi->waiting;
	if (fi->waiting != NULL)
		fi->waiting->prev = j;
	fi->waiting = j;
	dbworker_submit(fi->db, &j->job);
}

/* --- set-up ---------------------------------------------------------------------------- */

/* Split federation_endpoint into the parts httpsig rebuilds (@authority, @path). */
static void
endpoint_parts(struct fedin *fi, const char *url)
{
	const char *host = url + strlen("https://"), *slash = strchr(host, '/');

	fi->target_uri = mystrdup(url);
	fi->authority = mystrndup(host, (size_t)(slash - host));
	fi->path = mystrdup(slash);
}

static void
timer_closed(uv_handle_t *h)
{
	free(h);
}

struct fedin *
fedin_new(uv_loop_t *loop, const struct sd_config *cfg, struct ingest *ingest)
{
	struct fedin *fi;
	const char *error;
	struct fedrec_msr msr;
	char txt[FEDREC_TXT_MAX + 1];
	uint64_t every;

	if (!cfg->federation_accepting)
		return NULL;
	fi = mycalloc(1, sizeof(*fi));
	fi->cfg = cfg;
	fi->ingest = ingest;
	if (cfg->federation_endpoint[0] != '\0') {
		snprintf(txt, sizeof(txt), "v=MSR1; u=%s", cfg->federation_endpoint);
		if (fedrec_parse_msr(txt, strlen(txt), &msr, &error) < 0)
			msg_fatal("federation_endpoint: %s", error);
		endpoint_parts(fi, msr.url);
	}
	struct resolver_settings rs = RESOLVER_SETTINGS_OF(cfg);
	if ((fi->resolver = resolver_new(&rs, &error)) == NULL)
		msg_fatal("%s (dns_server, dns_trust_anchor_file)", error);
	fi->started_ms = time_now_ms();
	fi->rate = fedrate_new((double)cfg->federation_rate, (double)cfg->federation_burst);
	fi->clients = fedrate_new_clients((double)cfg->federation_client_rate,
	                                  (double)cfg->federation_client_burst);
	fi->dns_down = htable_create(64);
	fi->inflight = htable_create(64);
	pthread_mutex_init(&fi->done_lock, NULL);
	fi->db = dbworker_start(loop, "database (federation)", cfg->database,
	                        cfg->database_retry_max, NULL, NULL);
	fi->gone_timer = mymalloc(sizeof(*fi->gone_timer));
	uv_timer_init(loop, fi->gone_timer);
	fi->gone_timer->data = fi;
	uv_timer_start(fi->gone_timer, gone_check, GONE_CHECK_MS, GONE_CHECK_MS);
	uv_unref((uv_handle_t *)fi->gone_timer);
	every = cfg->maintenance_interval < EXPIRE_EVERY ? (uint64_t)cfg->maintenance_interval
	                                                 : (uint64_t)EXPIRE_EVERY;
	fi->expire_timer = mymalloc(sizeof(*fi->expire_timer));
	uv_timer_init(loop, fi->expire_timer);
	fi->expire_timer->data = fi;
	uv_timer_start(fi->expire_timer, expire_tick, every, every);
	uv_unref((uv_handle_t *)fi->expire_timer);
	msg_info("federation: taking reports at %s", fi->target_uri ? fi->target_uri : PATH);
	return fi;
}

void
fedin_hold(struct fedin *fi)
{
	if (fi != NULL)
		dbworker_hold(fi->db);
}

void
fedin_release(struct fedin *fi)
{
	if (fi != NULL)
		dbworker_release(fi->db);
}

void
fedin_free(struct fedin **fip)
{
	struct fedin *fi = *fip;

	if (fi == NULL)
		return;
	*fip = NULL;
	uv_timer_stop(fi->gone_timer);
	uv_close((uv_handle_t *)fi->gone_timer, timer_closed);
	uv_timer_stop(fi->expire_timer);
	uv_close((uv_handle_t *)fi->expire_timer, timer_closed);
	dbworker_stop(&fi->db);
	resolver_free(&fi->resolver);
	fedrate_free(&fi->rate);
	fedrate_free(&fi->clients);
	htable_free(&fi->dns_down, free);
	htable_free(&fi->inflight, NULL);
	pthread_mutex_destroy(&fi->done_lock);
	mbuf_free(&fi->done);
	free(fi->target_uri);
	free(fi->authority);
	free(fi->path);
	free(fi);
}

void
fedin_stats(const struct fedin *fi, struct fedin_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (fi == NULL)
		return;
	memcpy(out->reports, fi->answered, sizeof(out->reports));
	out->events_stored = fi->events_stored;
	out->events_duplicate = fi->events_duplicate;
	out->events_refused = fi->events_refused;
	out->events_ignored = fi->events_ignored;
	out->events_later = fi->events_later;
	out->reports_abandoned = fi->abandoned;
}
