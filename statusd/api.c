/*
 * api - statusd's REST endpoints. See api.h and docs/api.md.
 */
#include "api.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "dbworker.h"
#include "feed.h"
#include "http.h"
#include "ingest.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "randid.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"
#include "webhook.h"

#define ARG_BUF      (MSEVENT_ADDR_MAX + 8)
#define TYPING_MS    10000
#define TIMELINE_MAX 1000 /* events in a page of a timeline */

/* --- database jobs ------------------------------------------------------------------- */

enum job_kind {
	J_HEALTH,
	J_STATUS,
	J_TIMELINE,
	J_LIST,
	J_RECEIPT_TARGET,
	J_PREFS_GET,
	J_PREFS_SET,
	J_PRESENCE_GET,
	J_PRESENCE_TOUCH,
};

struct api_job {
	struct dbjob job;
	enum job_kind kind;
	const struct http_env *env;
	struct req_ticket *ticket;
	struct principal *who;
	char *id;   /* a message reference, or a user */
	char *text; /* J_PRESENCE_TOUCH: typing_to; J_LIST: recipient filter */
	struct store_list_filter filter;
	int a, b;      /* J_PREFS_SET: read_receipts, presence; J_PRESENCE_TOUCH: online */
	int64_t ms;    /* J_PRESENCE_TOUCH: online for */
	int64_t after; /* J_TIMELINE: the cursor, a log offset (0: from the start) */
	/* results */
	struct json_object *doc;
	char *owner, *sender, *tracking_id;
	bool flag;
	int found;
	bool transient;
	char error[300];
	int64_t head, epoch;
	int version;
};

static enum dbw_result
job_run(struct dbjob *dj, PGconn *conn)
{
	struct api_job *j = (struct api_job *)dj;
	const char *error = NULL;
	const struct principal *p = j->who;

	switch (j->kind) {
	case J_HEALTH:
		j->found = store_log_head(conn, &j->head, &j->epoch, &error) == 0 ? 1 : -1;
		if (j->found > 0 && (j->version = store_schema_version(conn, &error)) < 0)
			j->found = -1;
		j->transient = j->found < 0;
		break;
	case J_STATUS:
	case J_TIMELINE:
		j->found = store_status(conn, j->id, p->user, p->admin_domains, p->nadmin,
		                        j->kind == J_TIMELINE ? TIMELINE_MAX : 0, j->after, &j->doc,
		                        &j->owner, &j->sender, &j->transient, &error);
		break;
	case J_LIST:
		j->filter.recipient = j->text;
		j->found = store_list(conn, p->user, p->admin_domains, p->nadmin, &j->filter,
		                      &j->doc, &j->transient, &error) == 0
		                   ? 1
		                   : -1;
		break;
	case J_RECEIPT_TARGET:
		j->found = store_receipt_target(conn, j->id, p->user, &j->tracking_id, &j->flag,
		                                &j->transient, &error);
		break;
	case J_PREFS_SET:
		if (store_prefs_set(conn, p->user, j->a, j->b, &j->transient, &error) < 0) {
			j->found = -1;
			break;
		}
		/* answer with the preferences as they are now */
		__attribute__((fallthrough));
	case J_PREFS_GET:
		j->found = store_prefs_get(conn, p->user, &j->doc, &j->transient, &error) == 0 ? 1
		                                                                               : -1;
		break;
	case J_PRESENCE_GET:
		j->found = store_presence_get(conn, j->id, &j->doc, &j->transient, &error);
		break;
	case J_PRESENCE_TOUCH:
		j->found = store_presence_touch(conn, p->user, "webmail", j->ms, j->text,
		                                j->text ? TYPING_MS : 0, &j->transient, &error) == 0
		                   ? 1
		                   : -1;
		break;
	}
	if (j->found < 0)
		snprintf(j->error, sizeof(j->error), "%s", error ? error : "database error");
	return j->found < 0 && j->transient && PQstatus(conn) != CONNECTION_OK ? DBW_RETRY
	                                                                       : DBW_DONE;
}

static void
job_free(struct api_job *j)
{
	json_object_put(j->doc);
	principal_free(&j->who);
	free(j->id);
	free(j->text);
	free(j->owner);
	free(j->sender);
	free(j->tracking_id);
	free(j);
}

static void job_done(struct dbjob *dj);

static struct api_job *
job_new(const struct http_env *env, struct req *r, enum job_kind kind, const struct principal *p,
        const char *id)
{
	struct api_job *j = mycalloc(1, sizeof(*j));

	if (id != NULL)
		j->id = mystrdup(id);
	j->job.run = job_run;
	j->job.done = job_done;
	j->job.no_retry = true; /* a client waits: fail fast when the database is down */
	j->kind = kind;
	j->env = env;
	j->who = principal_dup(p);
	j->ticket = req_ticket(r);
	return j;
}

static void
submit(struct api_job *j)
{
	dbworker_submit(j->env->db, &j->job);
}

/* The answer when the database failed. */
static void
db_trouble(struct req *r, struct api_job *j)
{
	if (j->job.failed || j->transient)
		req_problem(r, 503, "Service Unavailable", "the database is unavailable");
	else {
		msg_error("http: database query failed: %s", j->error);
		req_problem(r, 500, "Internal Server Error", NULL);
	}
}

static void health_answer(struct req *r, struct api_job *j);
static void receipt_store(struct req *r, struct api_job *j);

static void
job_done(struct dbjob *dj)
{
	struct api_job *j = (struct api_job *)dj;
	struct req *r = req_redeem(j->ticket);

	if (r == NULL)
		goto out; /* the client went away */
	if (j->kind == J_HEALTH) {
		health_answer(r, j);
		goto out;
	}
	if (j->job.failed || j->found < 0) {
		db_trouble(r, j);
		goto out;
	}
	switch (j->kind) {
	case J_STATUS:
	case J_TIMELINE:
		/* someone else's message looks the same as none at all */
		if (j->found == 0 || !principal_may_see(j->who, j->owner, j->sender))
			req_problem(r, 404, "Not Found", "no message with that id among yours");
		else
			req_json(r, 200, j->doc);
		break;
	case J_RECEIPT_TARGET:
		if (j->found == 0)
			req_problem(r, 404, "Not Found",
			            "no message with that id of which you are a recipient");
		else if (!j->flag)
			req_problem(r, 409, "Conflict",
			            "your read receipts are turned off (preferences)");
		else
			receipt_store(r, j);
		break;
	case J_PRESENCE_GET: {
		struct json_object *to = NULL;

		if (j->found == 0) {
			req_problem(r, 404, "Not Found", "that user shares no presence");
			break;
		}
		/* whom someone is writing to is only for that person (and the writer) to know */
		if (json_object_object_get_ex(j->doc, "typing_to", &to) && to != NULL &&
		    strcasecmp(json_object_get_string(to), j->who->user) != 0 &&
		    strcasecmp(j->id, j->who->user) != 0)
			json_object_object_add(j->doc, "typing_to", NULL);
		req_json(r, 200, j->doc);
		break;
	}
	case J_PRESENCE_TOUCH: {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "ok", json_object_new_boolean(1));
		req_json(r, 200, doc);
		json_object_put(doc);
		break;
	}
	default:
		req_json(r, 200, j->doc);
		break;
	}
out:
	job_free(j);
}

/* --- health and metrics (no authentication) ------------------------------------------- */

static void
health_answer(struct req *r, struct api_job *j)
{
	struct json_object *doc = json_object_new_object(), *log, *ing;
	struct ingest_stats st;
	struct feed_stats fs;
	bool up = !j->job.failed && j->found > 0;

	ingest_stats(j->env->ingest, &st);
	feed_stats(j->env->feed, &fs);
	json_object_object_add(doc, "status", json_object_new_string(up ? "ok" : "unavailable"));
	json_object_object_add(doc, "version", json_object_new_string(MSGSTATUS_VERSION));
	json_object_object_add(doc, "database", json_object_new_string(up ? "up" : "down"));
	if (up) {
		json_object_object_add(doc, "schema_version", json_object_new_int(j->version));
		log = json_object_new_object();
		json_object_object_add(log, "epoch", json_object_new_int64(j->epoch));
		json_object_object_add(log, "head", json_object_new_int64(j->head));
		json_object_object_add(doc, "log", log);
	} else if (j->error[0] != '\0')
		json_object_object_add(doc, "error", json_object_new_string(j->error));
	ing = json_object_new_object();
	json_object_object_add(ing, "connections", json_object_new_int64(st.connections));
	json_object_object_add(ing, "received", json_object_new_int64((int64_t)st.received));
	json_object_object_add(ing, "logged", json_object_new_int64((int64_t)st.logged));
	json_object_object_add(ing, "rejected", json_object_new_int64((int64_t)st.rejected));
	json_object_object_add(ing, "pending", json_object_new_int64(st.pending));
	json_object_object_add(doc, "ingest", ing);
	json_object_object_add(doc, "feed_subscribers", json_object_new_int64(fs.subscribers));
	req_json(r, up ? 200 : 503, doc);
	json_object_put(doc);
}

void
api_health(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
           const struct mbuf *body)
{
	submit(job_new(env, r, J_HEALTH, NULL, NULL));
}

static void
metric(struct mbuf *out, const char *name, const char *type, const char *help, double value)
{
	mbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
	            value);
}

/* Per-endpoint webhook counters, labelled by position and origin (never the full URL). */
static void
metric_webhooks(struct mbuf *out, struct webhooks *w)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	        {"msgstatus_webhook_delivered_total", "counter",
	         "Events a webhook endpoint acknowledged with a 2xx."},
	        {"msgstatus_webhook_failed_total", "counter",
	         "Webhook requests that got no 2xx (each retry counts)."},
	        {"msgstatus_webhook_lag_events", "gauge",
	         "Events in the log not yet acknowledged by the endpoint (-1: not known yet)."},
	        {"msgstatus_webhook_failing", "gauge",
	         "1 while the endpoint's deliveries are failing."},
	};
	struct webhook_stats st[32];
	size_t n = webhooks_stats(w, st, sizeof(st) / sizeof(st[0]));

	if (n > sizeof(st) / sizeof(st[0]))
		n = sizeof(st) / sizeof(st[0]);
	if (n == 0)
		return;
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		mbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		            m[k].type);
		for (size_t i = 0; i < n; i++) {
			double v = k == 0   ? (double)st[i].delivered
			           : k == 1 ? (double)st[i].failed
			           : k == 2 ? (double)st[i].lag
			                    : (double)st[i].failing;

			mbuf_printf(out, "%s{endpoint=\"%u\",origin=\"%s\"} %.17g\n", m[k].name,
			            st[i].index, st[i].origin, v);
		}
	}
}

void
api_metrics(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
            const struct mbuf *body)
{
	struct mbuf out = MBUF_INIT;
	struct ingest_stats st;
	struct feed_stats fs;

	ingest_stats(env->ingest, &st);
	feed_stats(env->feed, &fs);
	metric(&out, "msgstatus_events_received_total", "counter",
	       "Event records read from producers (socket and pickup files).", (double)st.received);
	metric(&out, "msgstatus_events_logged_total", "counter",
	       "Events that entered the log (rate() gives events per second).", (double)st.logged);
	metric(&out, "msgstatus_events_rejected_total", "counter",
	       "Event records answered with an error.", (double)st.rejected);
	metric(&out, "msgstatus_ingest_pending", "gauge",
	       "Events read and not yet stored and acknowledged.", (double)st.pending);
	metric(&out, "msgstatus_ingest_connections", "gauge", "Producer connections.",
	       (double)st.connections);
	metric(&out, "msgstatus_ingest_lag_seconds", "gauge",
	       "Time from the newest stored event's own time to its commit.",
	       (double)st.lag_ms / 1000.0);
	metric(&out, "msgstatus_db_batch_seconds", "gauge",
	       "Duration of the last stored batch (PostgreSQL latency).",
	       (double)st.batch_ms / 1000.0);
	metric(&out, "msgstatus_db_batches_total", "counter", "Batches stored.",
	       (double)st.batches);
	metric(&out, "msgstatus_log_head", "gauge", "Offset of the newest published event.",
	       (double)fs.head);
	metric(&out, "msgstatus_feed_subscribers", "gauge", "Feed connections (WebSocket and SSE).",
	       (double)fs.subscribers);
	metric(&out, "msgstatus_feed_live_subscribers", "gauge",
	       "Feed connections that are caught up.", (double)fs.live);
	metric(&out, "msgstatus_feed_events_sent_total", "counter",
	       "Events handed to feed connections.", (double)fs.sent);
	metric(&out, "msgstatus_feed_slow_closed_total", "counter",
	       "Feed connections closed for falling too far behind.", (double)fs.slow_closed);
	metric_webhooks(&out, env->webhooks);
	req_text(r, 200, "text/plain; version=0.0.4", &out);
}

/* --- messages ------------------------------------------------------------------------ */

/* An argument or NULL; buf holds it. */
static const char *
arg(struct req *r, const char *name, char *buf, size_t size)
{
	return req_arg(r, name, buf, size) ? buf : NULL;
}

void
api_status(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
           const struct mbuf *body)
{
	submit(job_new(env, r, J_STATUS, p, param));
}

void
api_timeline(const struct http_env *env, struct req *r, const struct principal *p,
             const char *param, const struct mbuf *body)
{
	char cursor[ARG_BUF];
	const char *error;
	int64_t after;
	struct api_job *j;

	if (params_timeline(arg(r, "cursor", cursor, sizeof(cursor)), &after, &error) < 0) {
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(env, r, J_TIMELINE, p, param);
	j->after = after;
	submit(j);
}

void
api_list(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
         const struct mbuf *body)
{
	/* each as large as the largest valid one, plus room to tell "too long" */
	char status[ARG_BUF], since[ARG_BUF], until[ARG_BUF], limit[ARG_BUF], cursor[ARG_BUF],
	        rcpt[ARG_BUF];
	struct params_list_args args = {
	        .status = arg(r, "status", status, sizeof(status)),
	        .since = arg(r, "since", since, sizeof(since)),
	        .until = arg(r, "until", until, sizeof(until)),
	        .limit = arg(r, "limit", limit, sizeof(limit)),
	        .cursor = arg(r, "cursor", cursor, sizeof(cursor)),
	        .recipient = arg(r, "recipient", rcpt, sizeof(rcpt)),
	};
	struct store_list_filter flt;
	const char *error;
	struct api_job *j;

	if (params_list(&args, &flt, &error) < 0) {
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(env, r, J_LIST, p, NULL);
	if (flt.recipient != NULL)
		j->text = mystrdup(flt.recipient);
	j->filter = flt;
	submit(j);
}

/* --- receipts ------------------------------------------------------------------------ */

struct receipt {
	struct req_ticket *ticket;
	char event_id[RANDID_LEN + 1];
};

static void
on_receipt_stored(void *ctx, unsigned acked, unsigned rejected)
{
	struct receipt *rc = ctx;
	struct req *r = req_redeem(rc->ticket);

	if (r != NULL) {
		if (acked == 1) {
			struct json_object *doc = json_object_new_object();
			json_object_object_add(doc, "event_id",
			                       json_object_new_string(rc->event_id));
			json_object_object_add(doc, "status", json_object_new_string("read"));
			req_json(r, 202, doc);
			json_object_put(doc);
		} else
			req_problem(r, 500, "Internal Server Error", "the receipt was not stored");
	}
	free(rc);
}

/* The user is a recipient with receipts on: store a read event through the ingest path. */
static void
receipt_store(struct req *r, struct api_job *j)
{
	struct receipt *rc = mycalloc(1, sizeof(*rc));
	struct mbuf line = MBUF_INIT;
	struct msevent ev;

	msevent_init(&ev);
	ev.id = randid_new(rc->event_id);
	ev.type = MSEV_READ;
	ev.time_ms = time_now_ms();
	ev.source = "api";
	ev.tracking_id = j->tracking_id;
	ev.recipient = j->who->user;
	msevent_detail_str(&ev, "via", "api");
	msevent_format(&ev, &line);
	msevent_clear(&ev);
	rc->ticket = req_ticket(r);
	ingest_source_start(j->env->ingest, "api receipt", line.data, line.len, on_receipt_stored,
	                    rc);
	mbuf_free(&line);
}

/* The request's JSON object body (params_body), or NULL after answering 400. */
static struct json_object *
body_object(struct req *r, const struct mbuf *body, bool required)
{
	const char *error = "the body must be a JSON object";
	struct json_object *obj =
	        params_body(body ? body->data : NULL, body ? body->len : 0, required, &error);

	if (obj == NULL)
		req_problem(r, 400, "Bad Request", error);
	return obj;
}

void
api_receipt(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
            const struct mbuf *body)
{
	struct json_object *obj = body_object(r, body, false);
	const char *error;

	if (obj == NULL)
		return;
	if (params_receipt(obj, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	json_object_put(obj);
	submit(job_new(env, r, J_RECEIPT_TARGET, p, param));
}

/* --- preferences and presence -------------------------------------------------------- */

void
api_prefs_get(const struct http_env *env, struct req *r, const struct principal *p,
              const char *param, const struct mbuf *body)
{
	submit(job_new(env, r, J_PREFS_GET, p, NULL));
}

void
api_prefs_put(const struct http_env *env, struct req *r, const struct principal *p,
              const char *param, const struct mbuf *body)
{
	struct json_object *obj = body_object(r, body, true);
	int rr, pr;
	const char *error;
	struct api_job *j;

	if (obj == NULL)
		return;
	if (params_prefs(obj, &rr, &pr, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	json_object_put(obj);
	j = job_new(env, r, J_PREFS_SET, p, NULL);
	j->a = rr;
	j->b = pr;
	submit(j);
}

void
api_presence_get(const struct http_env *env, struct req *r, const struct principal *p,
                 const char *param, const struct mbuf *body)
{
	char lower[MSEVENT_ADDR_MAX + 1];
	size_t i;

	for (i = 0; param[i] && i < MSEVENT_ADDR_MAX; i++)
		lower[i] = (char)((param[i] >= 'A' && param[i] <= 'Z') ? param[i] + 32 : param[i]);
	lower[i] = '\0';
	submit(job_new(env, r, J_PRESENCE_GET, p, lower));
}

void
api_presence_post(const struct http_env *env, struct req *r, const struct principal *p,
                  const char *param, const struct mbuf *body)
{
	struct json_object *obj = body_object(r, body, true);
	const char *state, *to, *error;
	struct api_job *j;

	if (obj == NULL)
		return;
	if (params_presence(obj, &state, &to, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(env, r, J_PRESENCE_TOUCH, p, NULL);
	j->ms = strcmp(state, "offline") == 0 ? 0 : env->cfg->presence_timeout;
	if (to != NULL)
		j->text = mystrdup(to);
	json_object_put(obj);
	submit(j);
}
