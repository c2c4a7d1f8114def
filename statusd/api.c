/*
 * api - statusd's REST endpoints. See api.h and docs/api.md.
 *
 * DESIGN
 *	An endpoint that needs the database has a job type of its own (struct api_job and
 *	what follows it): its run function calls the storage layer on the query worker's
 *	thread, its done function answers on the loop thread, with the JSON made by
 *	render.h. /metrics is written by metrics.c.
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
#include "metrics.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "randid.h"
#include "render.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"
#include "webhook.h"

#define ARG_BUF      (MSEVENT_ADDR_MAX + 8)
#define TYPING_MS    10000
#define TIMELINE_MAX 1000 /* events in a page of a timeline */

/* --- database jobs ------------------------------------------------------------------- */

/*
 * Each endpoint that needs the database has a job type of its own: a struct that starts
 * with this one, a run function (the query worker's thread) and a done function (the loop
 * thread), on the dbjob's pointers.
 */
struct api_job {
	struct dbjob job;
	const struct http_env *env;
	struct req_ticket *ticket;
	struct principal *who; /* NULL for the open routes */
	int rc;                /* what the store function returned: -1 on error */
	bool transient;        /* the error may go away on a new connection */
	char error[300];
};

/* A zeroed job of size bytes (a struct that starts with struct api_job). */
static void *
job_new(size_t size, const struct http_env *env, struct req *r, const struct principal *p,
        enum dbw_result (*run)(struct dbjob *, PGconn *), void (*done)(struct dbjob *))
{
	struct api_job *j = mycalloc(1, size);

	j->job.run = run;
	j->job.done = done;
	j->job.no_retry = true; /* a client waits: fail fast when the database is down */
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

/* The end of a run: keep the error, and ask for a retry when the connection went away. */
static enum dbw_result
job_ran(struct api_job *j, PGconn *conn, const char *error)
{
	if (j->rc < 0)
		snprintf(j->error, sizeof(j->error), "%s", error ? error : "database error");
	return j->rc < 0 && j->transient && PQstatus(conn) != CONNECTION_OK ? DBW_RETRY : DBW_DONE;
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

/*
 * The start of a done function: the request to answer, or NULL when the client went away
 * or the database failed (answered here).
 */
static struct req *
job_request(struct api_job *j)
{
	struct req *r = req_redeem(j->ticket);

	if (r != NULL && (j->job.failed || j->rc < 0)) {
		db_trouble(r, j);
		return NULL;
	}
	return r;
}

static void
job_free(struct api_job *j)
{
	principal_free(&j->who);
	free(j);
}

/* --- health and metrics (no authentication) ------------------------------------------- */

struct health_job {
	struct api_job base;
	int64_t head, epoch; /* of the log */
	int version;         /* the schema's */
};

static enum dbw_result
health_run(struct dbjob *dj, PGconn *conn)
{
	struct health_job *j = (struct health_job *)dj;
	const char *error = NULL;

	j->base.rc = store_log_head(conn, &j->head, &j->epoch, &error) == 0 ? 1 : -1;
	if (j->base.rc > 0 && (j->version = store_schema_version(conn, &error)) < 0)
		j->base.rc = -1;
	j->base.transient = j->base.rc < 0;
	return job_ran(&j->base, conn, error);
}

/* Answered also when the database is down: that is what it tells. */
static void
health_done(struct dbjob *dj)
{
	struct health_job *j = (struct health_job *)dj;
	struct req *r = req_redeem(j->base.ticket);
	struct json_object *doc, *log, *ing;
	struct ingest_stats st;
	struct feed_stats fs;
	bool up = !j->base.job.failed && j->base.rc > 0;

	if (r == NULL)
		goto out; /* the client went away */
	doc = json_object_new_object();
	ingest_stats(j->base.env->ingest, &st);
	feed_stats(j->base.env->feed, &fs);
	json_object_object_add(doc, "status", json_object_new_string(up ? "ok" : "unavailable"));
	json_object_object_add(doc, "version", json_object_new_string(MSGSTATUS_VERSION));
	json_object_object_add(doc, "database", json_object_new_string(up ? "up" : "down"));
	if (up) {
		json_object_object_add(doc, "schema_version", json_object_new_int(j->version));
		log = json_object_new_object();
		json_object_object_add(log, "epoch", json_object_new_int64(j->epoch));
		json_object_object_add(log, "head", json_object_new_int64(j->head));
		json_object_object_add(doc, "log", log);
	} else if (j->base.error[0] != '\0')
		json_object_object_add(doc, "error", json_object_new_string(j->base.error));
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
out:
	job_free(&j->base);
}

void
api_health(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
           const struct mbuf *body)
{
	submit(job_new(sizeof(struct health_job), env, r, NULL, health_run, health_done));
}

void
api_metrics(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
            const struct mbuf *body)
{
	struct mbuf out = MBUF_INIT;

	metrics_text(env->ingest, env->feed, env->webhooks, env->fedout, &out);
	metrics_federation(env->fedin, &out);
	req_text(r, 200, "text/plain; version=0.0.4", &out);
}

/* --- messages ------------------------------------------------------------------------ */

/* An argument or NULL; buf holds it. */
static const char *
arg(struct req *r, const char *name, char *buf, size_t size)
{
	return req_arg(r, name, buf, size) ? buf : NULL;
}

/* A message's status (GET .../status) or its timeline too (GET .../timeline). */
struct status_job {
	struct api_job base;
	char *id;      /* the message: tracking id or Message-ID */
	int64_t after; /* the timeline's cursor, a log offset (0: from the start) */
	struct store_message *msg;
};

static enum dbw_result
status_lookup(struct status_job *j, PGconn *conn, int events_max)
{
	const struct principal *p = j->base.who;
	const char *error = NULL;

	j->base.rc = store_status(conn, j->id, p->user, p->admin_domains, p->nadmin, events_max,
	                          j->after, &j->msg, &j->base.transient, &error);
	return job_ran(&j->base, conn, error);
}

static enum dbw_result
status_run(struct dbjob *dj, PGconn *conn)
{
	return status_lookup((struct status_job *)dj, conn, 0);
}

static enum dbw_result
timeline_run(struct dbjob *dj, PGconn *conn)
{
	return status_lookup((struct status_job *)dj, conn, TIMELINE_MAX);
}

static void
status_answer(struct status_job *j, bool timeline)
{
	struct req *r = job_request(&j->base);

	if (r == NULL)
		;
	/* someone else's message looks the same as none at all */
	else if (j->base.rc == 0 || !principal_may_see(j->base.who, j->msg->owner, j->msg->sender))
		req_problem(r, 404, "Not Found", "no message with that id among yours");
	else {
		struct json_object *doc = render_status(j->msg, timeline);
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	store_messages_free(j->msg, j->msg ? 1 : 0);
	free(j->id);
	job_free(&j->base);
}

static void
status_done(struct dbjob *dj)
{
	status_answer((struct status_job *)dj, false);
}

static void
timeline_done(struct dbjob *dj)
{
	status_answer((struct status_job *)dj, true);
}

void
api_status(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
           const struct mbuf *body)
{
	struct status_job *j = job_new(sizeof(*j), env, r, p, status_run, status_done);

	j->id = mystrdup(param);
	submit(&j->base);
}

void
api_timeline(const struct http_env *env, struct req *r, const struct principal *p,
             const char *param, const struct mbuf *body)
{
	char cursor[ARG_BUF];
	const char *error;
	int64_t after;
	struct status_job *j;

	if (params_timeline(arg(r, "cursor", cursor, sizeof(cursor)), &after, &error) < 0) {
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(sizeof(*j), env, r, p, timeline_run, timeline_done);
	j->id = mystrdup(param);
	j->after = after;
	submit(&j->base);
}

/* The messages a principal may see (GET /api/v1/messages). */
struct list_job {
	struct api_job base;
	struct store_list_filter filter; /* its recipient is the job's */
	char *recipient;
	struct store_message *msgs;
	size_t n;
	bool more;
};

static enum dbw_result
list_run(struct dbjob *dj, PGconn *conn)
{
	struct list_job *j = (struct list_job *)dj;
	const struct principal *p = j->base.who;
	const char *error = NULL;

	j->base.rc = store_list(conn, p->user, p->admin_domains, p->nadmin, &j->filter, &j->msgs,
	                        &j->n, &j->more, &j->base.transient, &error);
	return job_ran(&j->base, conn, error);
}

static void
list_done(struct dbjob *dj)
{
	struct list_job *j = (struct list_job *)dj;
	struct req *r = job_request(&j->base);

	if (r != NULL) {
		struct json_object *doc = render_list(j->msgs, j->n, j->more);
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	store_messages_free(j->msgs, j->n);
	free(j->recipient);
	job_free(&j->base);
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
	struct list_job *j;

	if (params_list(&args, &flt, &error) < 0) {
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(sizeof(*j), env, r, p, list_run, list_done);
	j->filter = flt;
	j->recipient = flt.recipient != NULL ? mystrdup(flt.recipient) : NULL;
	j->filter.recipient = j->recipient;
	submit(&j->base);
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

/* A manual read receipt (POST .../receipt): first whether the user may give one. */
struct receipt_job {
	struct api_job base;
	char *id; /* the message: tracking id or Message-ID */
	char *tracking_id;
	bool receipts; /* the user has read receipts on */
};

static enum dbw_result
receipt_run(struct dbjob *dj, PGconn *conn)
{
	struct receipt_job *j = (struct receipt_job *)dj;
	const char *error = NULL;

	j->base.rc = store_receipt_target(conn, j->id, j->base.who->user, &j->tracking_id,
	                                  &j->receipts, &j->base.transient, &error);
	return job_ran(&j->base, conn, error);
}

/* The user is a recipient with receipts on: store a read event through the ingest path. */
static void
receipt_store(struct req *r, struct receipt_job *j)
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
	ev.recipient = j->base.who->user;
	msevent_detail_str(&ev, "via", "api");
	msevent_format(&ev, &line);
	msevent_clear(&ev);
	rc->ticket = req_ticket(r);
	ingest_source_start(j->base.env->ingest, "api receipt", line.data, line.len,
	                    on_receipt_stored, rc);
	mbuf_free(&line);
}

static void
receipt_done(struct dbjob *dj)
{
	struct receipt_job *j = (struct receipt_job *)dj;
	struct req *r = job_request(&j->base);

	if (r == NULL)
		;
	else if (j->base.rc == 0)
		req_problem(r, 404, "Not Found",
		            "no message with that id of which you are a recipient");
	else if (!j->receipts)
		req_problem(r, 409, "Conflict", "your read receipts are turned off (preferences)");
	else
		receipt_store(r, j);
	free(j->id);
	free(j->tracking_id);
	job_free(&j->base);
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
	struct receipt_job *j;
	const char *error;

	if (obj == NULL)
		return;
	if (params_receipt(obj, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	json_object_put(obj);
	j = job_new(sizeof(*j), env, r, p, receipt_run, receipt_done);
	j->id = mystrdup(param);
	submit(&j->base);
}

/* --- preferences and presence -------------------------------------------------------- */

/* The caller's preferences (GET /api/v1/preferences). */
struct prefs_job {
	struct api_job base;
	struct store_prefs prefs;
};

static enum dbw_result
prefs_get_run(struct dbjob *dj, PGconn *conn)
{
	struct prefs_job *j = (struct prefs_job *)dj;
	const char *error = NULL;

	j->base.rc =
	        store_prefs_get(conn, j->base.who->user, &j->prefs, &j->base.transient, &error) == 0
	                ? 1
	                : -1;
	return job_ran(&j->base, conn, error);
}

/* Answers GET and PUT alike: with the preferences as they are now. */
static void
prefs_done(struct dbjob *dj)
{
	struct prefs_job *j = (struct prefs_job *)dj;
	struct req *r = job_request(&j->base);

	if (r != NULL) {
		struct json_object *doc = render_prefs(j->base.who->user, &j->prefs);
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	job_free(&j->base);
}

void
api_prefs_get(const struct http_env *env, struct req *r, const struct principal *p,
              const char *param, const struct mbuf *body)
{
	struct prefs_job *j = job_new(sizeof(*j), env, r, p, prefs_get_run, prefs_done);

	submit(&j->base);
}

/* Set the caller's preferences (PUT /api/v1/preferences), then read them back. */
struct prefs_put_job {
	struct prefs_job get; /* the answer */
	int read_receipts;    /* 1, 0 or -1: leave as is */
	int presence;         /* likewise */
	const char *mdn;      /* "never", "always", "default" or NULL: leave as is */
};

static enum dbw_result
prefs_put_run(struct dbjob *dj, PGconn *conn)
{
	struct prefs_put_job *j = (struct prefs_put_job *)dj;
	const char *error = NULL;

	if (store_prefs_set(conn, j->get.base.who->user, j->read_receipts, j->presence, j->mdn,
	                    &j->get.base.transient, &error) < 0) {
		j->get.base.rc = -1;
		return job_ran(&j->get.base, conn, error);
	}
	return prefs_get_run(dj, conn);
}

void
api_prefs_put(const struct http_env *env, struct req *r, const struct principal *p,
              const char *param, const struct mbuf *body)
{
	struct json_object *obj = body_object(r, body, true);
	int rr, pr;
	const char *error, *mdn;
	struct prefs_put_job *j;

	if (obj == NULL)
		return;
	if (params_prefs(obj, &rr, &pr, &mdn, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	json_object_put(obj);
	j = job_new(sizeof(*j), env, r, p, prefs_put_run, prefs_done);
	j->read_receipts = rr;
	j->presence = pr;
	j->mdn = mdn;
	submit(&j->get.base);
}

/* A user's presence (GET /api/v1/presence/{user}). */
struct presence_job {
	struct api_job base;
	char *user; /* whose, lower case */
	struct store_presence presence;
};

static enum dbw_result
presence_get_run(struct dbjob *dj, PGconn *conn)
{
	struct presence_job *j = (struct presence_job *)dj;
	const char *error = NULL;

	j->base.rc = store_presence_get(conn, j->user, &j->presence, &j->base.transient, &error);
	return job_ran(&j->base, conn, error);
}

static void
presence_get_done(struct dbjob *dj)
{
	struct presence_job *j = (struct presence_job *)dj;
	struct req *r = job_request(&j->base);
	struct store_presence *pr = &j->presence;

	if (r == NULL)
		;
	else if (j->base.rc == 0)
		req_problem(r, 404, "Not Found", "that user shares no presence");
	else {
		struct json_object *doc;

		/* whom someone is writing to is only for that person (and the writer) to know */
		if (pr->typing_to != NULL && strcasecmp(pr->typing_to, j->base.who->user) != 0 &&
		    strcasecmp(j->user, j->base.who->user) != 0) {
			free(pr->typing_to);
			pr->typing_to = NULL;
		}
		doc = render_presence(j->user, pr);
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	store_presence_clear(pr);
	free(j->user);
	job_free(&j->base);
}

void
api_presence_get(const struct http_env *env, struct req *r, const struct principal *p,
                 const char *param, const struct mbuf *body)
{
	char lower[MSEVENT_ADDR_MAX + 1];
	struct presence_job *j;
	size_t i;

	for (i = 0; param[i] && i < MSEVENT_ADDR_MAX; i++)
		lower[i] = (char)((param[i] >= 'A' && param[i] <= 'Z') ? param[i] + 32 : param[i]);
	lower[i] = '\0';
	j = job_new(sizeof(*j), env, r, p, presence_get_run, presence_get_done);
	j->user = mystrdup(lower);
	submit(&j->base);
}

/* A sign of life from webmail (POST /api/v1/presence). */
struct presence_post_job {
	struct api_job base;
	int64_t online_ms; /* online for this long from now (0: offline) */
	char *typing_to;   /* NULL: not typing */
};

static enum dbw_result
presence_post_run(struct dbjob *dj, PGconn *conn)
{
	struct presence_post_job *j = (struct presence_post_job *)dj;
	const char *error = NULL;

	j->base.rc =
	        store_presence_touch(conn, j->base.who->user, "webmail", j->online_ms, j->typing_to,
	                             j->typing_to ? TYPING_MS : 0, &j->base.transient, &error) == 0
	                ? 1
	                : -1;
	return job_ran(&j->base, conn, error);
}

static void
presence_post_done(struct dbjob *dj)
{
	struct presence_post_job *j = (struct presence_post_job *)dj;
	struct req *r = job_request(&j->base);

	if (r != NULL) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "ok", json_object_new_boolean(1));
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	free(j->typing_to);
	job_free(&j->base);
}

void
api_presence_post(const struct http_env *env, struct req *r, const struct principal *p,
                  const char *param, const struct mbuf *body)
{
	struct json_object *obj = body_object(r, body, true);
	const char *state, *to, *error;
	struct presence_post_job *j;

	if (obj == NULL)
		return;
	if (params_presence(obj, &state, &to, &error) < 0) {
		json_object_put(obj);
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	j = job_new(sizeof(*j), env, r, p, presence_post_run, presence_post_done);
	j->online_ms = strcmp(state, "offline") == 0 ? 0 : env->cfg->presence_timeout;
	if (to != NULL)
		j->typing_to = mystrdup(to);
	json_object_put(obj);
	submit(&j->base);
}

/* --- reports (sql/009) ----------------------------------------------------------------- */

struct report_job {
	struct api_job base;
	char *id;
	char *raw, *tracking_id;
	bool truncated;
};

static enum dbw_result
report_run(struct dbjob *dj, PGconn *conn)
{
	struct report_job *j = (struct report_job *)dj;
	const char *error = NULL;

	j->base.rc = store_report_raw(conn, j->id, j->base.who->user, &j->raw, &j->truncated,
	                              &j->tracking_id, &j->base.transient, &error);
	return job_ran(&j->base, conn, error);
}

static void
report_done(struct dbjob *dj)
{
	struct report_job *j = (struct report_job *)dj;
	struct req *r = job_request(&j->base);

	if (r == NULL)
		;
	else if (j->base.rc == 0)
		req_problem(r, 404, "Not Found", "no report with that id about a message of yours");
	else {
		struct json_object *doc =
		        render_report(j->id, j->tracking_id, j->raw, j->truncated);
		req_json(r, 200, doc);
		json_object_put(doc);
	}
	free(j->raw);
	free(j->tracking_id);
	free(j->id);
	job_free(&j->base);
}

void
api_report(const struct http_env *env, struct req *r, const struct principal *p, const char *param,
           const struct mbuf *body)
{
	struct report_job *j = job_new(sizeof(*j), env, r, p, report_run, report_done);

	j->id = mystrdup(param);
	submit(&j->base);
}
