/*
 * http - statusd's HTTP interface. See http.h and docs/api.md.
 */
#include "http.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dbworker.h"
#include "ingest.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "sdconfig.h"
#include "store.h"

#define WRITE_CHUNK  16384
#define PATH_MAX_LEN 2048
#define BODY_MAX     65536

struct http {
	struct lws_context *ctx;
	const struct sd_config *cfg;
	struct dbworker *db;
	struct ingest *ing;
};

struct req;

/* A database job on behalf of a request. */
struct req_job {
	struct dbjob job;
	struct req *req; /* NULL once the request is gone */
	struct http *http;
	enum { JOB_STATUS, JOB_HEALTH } kind;
	char *id;
	/* results */
	struct json_object *doc;
	int found;
	bool transient;
	char error[300];
	int64_t head, epoch;
	int version;
};

/* Per-request state, allocated by lws. */
struct req {
	struct lws *wsi;
	struct req_job *job;
	int method;
	char *path;	     /* kept while a request body arrives */
	struct mbuf reqbody; /* the request body (POST, PUT, PATCH) */
	bool too_large;
	struct mbuf body;
	unsigned status;
	const char *ctype;
	size_t sent;
	bool ready, headers_sent;
};

static void
req_respond(struct req *r, unsigned status, const char *ctype, struct mbuf *body)
{
	r->status = status;
	r->ctype = ctype;
	mbuf_free(&r->body);
	r->body = *body;
	*body = (struct mbuf)MBUF_INIT;
	r->ready = true;
	lws_callback_on_writable(r->wsi);
}

static void
req_json(struct req *r, unsigned status, struct json_object *doc)
{
	struct mbuf body = MBUF_INIT;

	mbuf_puts(&body, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE));
	mbuf_putc(&body, '\n');
	req_respond(r, status, "application/json", &body);
}

/* RFC 9457 problem details. */
static void
req_problem(struct req *r, unsigned status, const char *title, const char *detail)
{
	struct json_object *doc = json_object_new_object();
	struct mbuf body = MBUF_INIT;

	json_object_object_add(doc, "type", json_object_new_string("about:blank"));
	json_object_object_add(doc, "title", json_object_new_string(title));
	json_object_object_add(doc, "status", json_object_new_int((int)status));
	if (detail != NULL)
		json_object_object_add(doc, "detail", json_object_new_string(detail));
	mbuf_puts(&body, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE));
	mbuf_putc(&body, '\n');
	json_object_put(doc);
	req_respond(r, status, "application/problem+json", &body);
}

/* --- database jobs ------------------------------------------------------------------- */

static enum dbw_result
job_run(struct dbjob *dj, PGconn *conn)
{
	struct req_job *j = (struct req_job *)dj;
	const char *error = NULL;

	switch (j->kind) {
	case JOB_STATUS:
		j->found = store_status(conn, j->id, &j->doc, &j->transient, &error);
		break;
	case JOB_HEALTH:
		j->found = store_log_head(conn, &j->head, &j->epoch, &error) == 0 ? 1 : -1;
		if (j->found > 0 && (j->version = store_schema_version(conn, &error)) < 0)
			j->found = -1;
		j->transient = j->found < 0;
		break;
	}
	if (j->found < 0)
		snprintf(j->error, sizeof(j->error), "%s", error ? error : "database error");
	return j->found < 0 && j->transient && PQstatus(conn) != CONNECTION_OK ? DBW_RETRY
									       : DBW_DONE;
}

static void
health_respond(struct req *r, struct req_job *j)
{
	struct json_object *doc = json_object_new_object(), *log, *ing;
	struct ingest_stats st;
	bool up = !j->job.failed && j->found > 0;

	ingest_stats(j->http->ing, &st);
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
	req_json(r, up ? 200 : 503, doc);
	json_object_put(doc);
}

static void
job_done(struct dbjob *dj)
{
	struct req_job *j = (struct req_job *)dj;
	struct req *r = j->req;

	if (r != NULL) {
		r->job = NULL;
		if (j->kind == JOB_HEALTH)
			health_respond(r, j);
		else if (j->job.failed)
			req_problem(r, 503, "Service Unavailable", "the database is unavailable");
		else if (j->found < 0)
			req_problem(r, j->transient ? 503 : 500,
				    j->transient ? "Service Unavailable" : "Internal Server Error",
				    j->transient ? "the database is unavailable" : NULL);
		else if (j->found == 0)
			req_problem(r, 404, "Not Found", "no message with that id");
		else
			req_json(r, 200, j->doc);
	}
	if (j->found < 0 && !j->transient)
		msg_error("http: database query failed: %s", j->error);
	json_object_put(j->doc);
	free(j->id);
	free(j);
}

static void
req_submit(struct http *h, struct req *r, int kind, const char *id)
{
	struct req_job *j = calloc(1, sizeof(*j));

	if (j == NULL || (id != NULL && (j->id = strdup(id)) == NULL))
		msg_fatal("out of memory");
	j->job.run = job_run;
	j->job.done = job_done;
	j->job.no_retry = true; /* a client waits: fail fast when the database is down */
	j->kind = kind;
	j->req = r;
	j->http = h;
	r->job = j;
	dbworker_submit(h->db, &j->job);
}

/* --- routing ------------------------------------------------------------------------- */

/* Check a message id from the URL: a tracking id or a Message-ID (with or without <>). */
static bool
message_ref_ok(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len > MSEVENT_MSGID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)id[i] < 0x21 || id[i] == 0x7f)
			return false;
	return true;
}

static void
route(struct http *h, struct req *r, int method, const char *path, const struct mbuf *reqbody)
{
	static const char prefix[] = "/api/v1/messages/", suffix[] = "/status";
	size_t len = strlen(path);

	if (strcmp(path, "/healthz") == 0) {
		if (method != LWSHUMETH_GET)
			goto bad_method;
		req_submit(h, r, JOB_HEALTH, NULL);
		return;
	}
	if (len > sizeof(prefix) - 1 + sizeof(suffix) - 1 &&
	    strncmp(path, prefix, sizeof(prefix) - 1) == 0 &&
	    strcmp(path + len - (sizeof(suffix) - 1), suffix) == 0) {
		char id[MSEVENT_MSGID_MAX + 1];
		size_t idlen = len - (sizeof(prefix) - 1) - (sizeof(suffix) - 1);

		if (method != LWSHUMETH_GET)
			goto bad_method;
		if (idlen > MSEVENT_MSGID_MAX) {
			req_problem(r, 400, "Bad Request", "message id too long");
			return;
		}
		memcpy(id, path + sizeof(prefix) - 1, idlen);
		id[idlen] = '\0';
		if (!message_ref_ok(id)) {
			req_problem(r, 400, "Bad Request",
				    "expected a tracking id or a URL-encoded Message-ID");
			return;
		}
		req_submit(h, r, JOB_STATUS, id);
		return;
	}
	req_problem(r, 404, "Not Found", "no such resource");
	return;
bad_method:
	req_problem(r, 405, "Method Not Allowed", NULL);
}

/* --- lws glue ------------------------------------------------------------------------ */

static void
req_cleanup(struct req *r)
{
	if (r->job != NULL) {
		r->job->req = NULL;
		r->job = NULL;
	}
	mbuf_free(&r->body);
	mbuf_free(&r->reqbody);
	free(r->path);
	r->path = NULL;
	r->ready = false;
}

static int
req_write(struct req *r)
{
	uint8_t buf[LWS_PRE + WRITE_CHUNK];
	uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	size_t n;
	int mode;

	if (!r->ready)
		return 0;
	if (!r->headers_sent) {
		if (lws_add_http_common_headers(r->wsi, r->status, r->ctype, r->body.len, &p, end) ||
		    lws_add_http_header_by_name(r->wsi, (const unsigned char *)"cache-control:",
						(const unsigned char *)"no-store", 8, &p, end) ||
		    lws_finalize_write_http_header(r->wsi, start, &p, end))
			return -1;
		r->headers_sent = true;
		if (r->body.len == 0)
			goto complete;
		lws_callback_on_writable(r->wsi);
		return 0;
	}
	n = r->body.len - r->sent;
	if (n > WRITE_CHUNK)
		n = WRITE_CHUNK;
	mode = r->sent + n == r->body.len ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP;
	memcpy(start, r->body.data + r->sent, n);
	if (lws_write(r->wsi, start, n, (enum lws_write_protocol)mode) != (int)n)
		return -1;
	r->sent += n;
	if (mode != LWS_WRITE_HTTP_FINAL) {
		lws_callback_on_writable(r->wsi);
		return 0;
	}
complete:
	req_cleanup(r);
	return lws_http_transaction_completed(r->wsi) ? -1 : 0;
}

static int
callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
	      size_t len)
{
	struct http *h = lws_context_user(lws_get_context(wsi));
	struct req *r = user;
	char *uri;
	int urilen;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		char path[PATH_MAX_LEN + 1];

		memset(r, 0, sizeof(*r));
		r->wsi = wsi;
		r->method = lws_http_get_uri_and_method(wsi, &uri, &urilen);
		if (len > PATH_MAX_LEN) {
			req_problem(r, 414, "URI Too Long", NULL);
			return 0;
		}
		memcpy(path, in, len);
		path[len] = '\0';
		if (r->method == LWSHUMETH_POST || r->method == LWSHUMETH_PUT ||
		    r->method == LWSHUMETH_PATCH) {
			/* route once the body is in */
			if ((r->path = strdup(path)) == NULL)
				msg_fatal("out of memory");
			return 0;
		}
		route(h, r, r->method, path, NULL);
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		if (r->too_large || r->reqbody.len + len > BODY_MAX)
			r->too_large = true;
		else
			mbuf_append(&r->reqbody, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (r->path == NULL)
			return 0;
		if (r->too_large)
			req_problem(r, 413, "Content Too Large", "the request body is too large");
		else
			route(h, r, r->method, r->path, &r->reqbody);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return r != NULL ? req_write(r) : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r != NULL)
			req_cleanup(r);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{"http", callback_http, sizeof(struct req), 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void
lws_log(int level, const char *line)
{
	char clean[512];
	size_t len = strlen(line);

	while (len > 0 && line[len - 1] == '\n')
		len--;
	msg_clean(clean, sizeof(clean), line, len);
	if (level & LLL_ERR)
		msg_error("http: %s", clean);
	else if (level & LLL_WARN)
		msg_warn("http: %s", clean);
	else
		msg_debug("http: %s", clean);
}

struct http *
http_start(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db, struct ingest *ing)
{
	struct lws_context_creation_info info;
	struct http *h = calloc(1, sizeof(*h));
	void *loops[1] = {loop};

	if (h == NULL)
		msg_fatal("out of memory");
	h->cfg = cfg;
	h->db = db;
	h->ing = ing;
	lws_set_log_level(LLL_ERR | LLL_WARN | (msg_verbose() ? LLL_NOTICE : 0), lws_log);
	memset(&info, 0, sizeof(info));
	info.port = cfg->http_port;
	info.iface = cfg->http_host;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (strchr(cfg->http_host, ':') == NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = loops;
	info.pcontext = &h->ctx; /* lws clears it when the context is finally freed */
	info.user = h;
	info.server_string = "statusd";
	info.timeout_secs = 30;
	if ((h->ctx = lws_create_context(&info)) == NULL)
		msg_fatal("http_listen %s: cannot start the HTTP server (address in use?)",
			  cfg->http_listen);
	msg_info("http: listening on %s", cfg->http_listen);
	return h;
}

void
http_stop(struct http *h)
{
	/* Starts closing lws's connections and handles; they finish as the loop runs. */
	if (h->ctx != NULL)
		lws_context_destroy(h->ctx);
}

void
http_free(struct http **hp, uv_loop_t *loop)
{
	struct http *h = *hp;

	if (h == NULL)
		return;
	*hp = NULL;
	/*
	 * With a foreign loop, lws 4.1 finishes its teardown only when told again after its
	 * handles have closed (see its eventlib-foreign example); it clears h->ctx when done.
	 */
	for (int i = 0; i < 4 && h->ctx != NULL; i++) {
		lws_context_destroy(h->ctx);
		uv_run(loop, UV_RUN_NOWAIT);
	}
	if (h->ctx != NULL)
		msg_warn("http: the HTTP library did not finish its teardown");
	free(h);
}
