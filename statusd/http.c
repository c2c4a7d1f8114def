/*
 * http - statusd's HTTP interface: lws glue, routing, authentication step, CORS, rate
 * limits. See http.h; the routes are in routes.c, the handlers in api.c, the streams in
 * stream.c, the checks of a request's framing in framing.c.
 */
#include "http.h"

#include <json-c/json.h>
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "framing.h"
#include "front.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "quota.h"
#include "rfc3339.h"
#include "routes.h"
#include "sdconfig.h"
#include "stream.h"
#include "webassets.h"

#define WRITE_CHUNK  16384
#define PATH_MAX_LEN 2048
#define ARG_MAX      1024
#define HEADER_MAX   AUTH_TOKEN_MAX
/* The most lws keeps of one header or query argument (its token_limits), well within its
   header buffer (max_http_header_data): a longer one is cut there and answered 431 or 414,
   where overflowing the buffer would only close the connection. Room for a bearer token
   of AUTH_TOKEN_MAX, in the header or as ?access_token=. */
#define HEADER_VALUE_MAX 6144
#define HEADER_DATA_MAX  8192

struct http {
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	struct front *front; /* the listening socket: reads and checks request heads; NULL on
	                        another feed loop (feedloop.h), which gets its connections
	                        from the first loop's */
	struct http_env env;
	struct lws_retry_bo retry; /* none: stream.c keeps WebSockets alive */
	struct quota *quota;       /* write rate and feed connections per user */
	bool own_quota;            /* else the first loop's, shared */
	bool feeds_only;           /* another loop's: front.c hands it only feed requests */
};

/* lws_create_context() and lws_context_destroy() load and unload lws's libuv plugin
   (dlopen, dlclose): on several loops' threads at once they race inside ld.so. */
static pthread_mutex_t lws_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

struct req_ticket {
	struct req *r;
};

enum conn_kind { CONN_HTTP = 0, CONN_WS };

/* Per-connection state, allocated by lws (one protocol serves HTTP and WebSocket). */
struct req {
	enum conn_kind kind;
	struct lws *wsi;
	struct http *http;
	struct req_ticket *ticket; /* an answer is awaited */
	int method;
	char *path;   /* kept while a request body arrives */
	char *origin; /* the allowed Origin, for CORS headers */
	struct mbuf reqbody;
	bool too_large;
	const struct route *route; /* a WebSocket's too */
	char *param;               /* the route's {id} */
	/* the answer */
	struct mbuf body;
	unsigned status;
	const char *ctype;
	const char *extra_name, *extra_value; /* one extra header (WWW-Authenticate, ...) */
	char extra_buf[64];
	size_t sent;
	bool ready, headers_sent;
	/* streams */
	struct stream *stream;
	int64_t from, epoch;    /* where a stream resumes */
	char *token;            /* a WebSocket's credential, until it is checked */
	const char *bad_resume; /* why a WebSocket's resume point is impossible, or NULL */
	char *feed_user;        /* counted in http->quota while its stream lasts */
	int close_code;         /* a WebSocket refused: close with this */
	const char *close_reason;
	bool close_after; /* where the next request starts is unknown: close after the answer */
};

static struct lws_token_limits token_limits; /* HEADER_VALUE_MAX for each */

/* --- tickets ------------------------------------------------------------------------- */

struct req_ticket *
req_ticket(struct req *r)
{
	if (r->ticket == NULL) {
		r->ticket = mycalloc(1, sizeof(*r->ticket));
		r->ticket->r = r;
	}
	return r->ticket;
}

struct req *
req_redeem(struct req_ticket *t)
{
	struct req *r = t->r;

	if (r != NULL)
		r->ticket = NULL;
	free(t);
	return r;
}

bool
req_ticket_gone(const struct req_ticket *t)
{
	char c;
	ssize_t n;
	int fd;

	if (t->r == NULL)
		return true;
	if (t->r->wsi == NULL || (fd = lws_get_socket_fd(t->r->wsi)) < 0)
		return false;
	/* lws may not be reading while the answer is awaited: peek */
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* --- feed connections per user -------------------------------------------------------- */

/* Count a feed connection for user, unless the user has feed_max_per_user already. */
static bool
feed_count_take(struct req *r, const char *user)
{
	if (!quota_feed_take(r->http->quota, user))
		return false;
	r->feed_user = mystrdup(user);
	return true;
}

static void
feed_count_put(struct req *r)
{
	if (r->feed_user == NULL)
		return;
	quota_feed_put(r->http->quota, r->feed_user);
	free(r->feed_user);
	r->feed_user = NULL;
}

/* The connection goes: a pending answer finds no request any more. */
static void
req_release(struct req *r)
{
	if (r->ticket != NULL) {
		r->ticket->r = NULL;
		r->ticket = NULL;
	}
	stream_closed(&r->stream);
	feed_count_put(r);
	mbuf_free(&r->body);
	mbuf_free(&r->reqbody);
	free(r->path);
	free(r->origin);
	free(r->param);
	free(r->token);
	r->path = r->origin = r->param = r->token = NULL;
	r->ready = false;
}

/* --- answers ------------------------------------------------------------------------- */

void
req_text(struct req *r, unsigned status, const char *ctype, struct mbuf *body)
{
	r->status = status;
	r->ctype = ctype;
	mbuf_free(&r->body);
	r->body = *body;
	*body = (struct mbuf)MBUF_INIT;
	r->ready = true;
	lws_callback_on_writable(r->wsi);
}

void
req_json(struct req *r, unsigned status, struct json_object *doc)
{
	struct mbuf body = MBUF_INIT;

	mbuf_puts(&body, json_object_to_json_string_ext(
	                         doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	mbuf_putc(&body, '\n');
	req_text(r, status, "application/json", &body);
}

void
req_problem(struct req *r, unsigned status, const char *title, const char *detail)
{
	req_problem_code(r, status, title, NULL, detail, -1);
}

void
req_problem_code(struct req *r, unsigned status, const char *title, const char *code,
                 const char *detail, int retry_after_s)
{
	struct json_object *doc = json_object_new_object();
	struct mbuf body = MBUF_INIT;

	json_object_object_add(doc, "type", json_object_new_string("about:blank"));
	json_object_object_add(doc, "title", json_object_new_string(title));
	json_object_object_add(doc, "status", json_object_new_int((int)status));
	if (code != NULL)
		json_object_object_add(doc, "code", json_object_new_string(code));
	if (detail != NULL)
		json_object_object_add(doc, "detail", json_object_new_string(detail));
	if (retry_after_s >= 0) {
		snprintf(r->extra_buf, sizeof(r->extra_buf), "%d", retry_after_s);
		r->extra_name = "retry-after:";
		r->extra_value = r->extra_buf;
	}
	mbuf_puts(&body, json_object_to_json_string_ext(
	                         doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	mbuf_putc(&body, '\n');
	json_object_put(doc);
	req_text(r, status, "application/problem+json", &body);
}

bool
req_arg(struct req *r, const char *name, char *buf, size_t size)
{
	char key[64];
	const char *value;

	/* lws copies "name=value" into buf and points at the value */
	snprintf(key, sizeof(key), "%s=", name);
	if ((value = lws_get_urlarg_by_name(r->wsi, key, buf, (int)size)) == NULL)
		return false;
	memmove(buf, value, strlen(value) + 1);
	return true;
}

int
req_header(struct req *r, const char *name, char *buf, size_t size)
{
	char custom[64];
	int n;

	if (strcmp(name, "content-type") == 0)
		n = lws_hdr_copy(r->wsi, buf, (int)size, WSI_TOKEN_HTTP_CONTENT_TYPE);
	else if (strcmp(name, "host") == 0)
		n = lws_hdr_copy(r->wsi, buf, (int)size, WSI_TOKEN_HOST);
	else {
		snprintf(custom, sizeof(custom), "%s:", name);
		n = lws_hdr_custom_copy(r->wsi, buf, (int)size, custom, (int)strlen(custom));
	}
	return n;
}

int
req_peer(struct req *r, struct sockaddr_storage *addr_r)
{
	socklen_t len = sizeof(*addr_r);
	int fd = r->wsi != NULL ? lws_get_socket_fd(r->wsi) : -1;

	memset(addr_r, 0, sizeof(*addr_r));
	return fd >= 0 && getpeername(fd, (struct sockaddr *)addr_r, &len) == 0 ? 0 : -1;
}

static int
add_header(struct req *r, const char *name, const char *value, unsigned char **p,
           unsigned char *end)
{
	return lws_add_http_header_by_name(r->wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value, (int)strlen(value), p,
	                                   end);
}

/* CORS headers for an allowed origin; a preflight also learns what it may send. */
static int
add_cors(struct req *r, unsigned char **p, unsigned char *end)
{
	if (r->origin == NULL)
		return 0;
	if (add_header(r, "access-control-allow-origin:", r->origin, p, end) ||
	    add_header(r, "vary:", "Origin", p, end) ||
	    add_header(r, "access-control-expose-headers:", "Retry-After", p, end))
		return -1;
	if (r->method != LWSHUMETH_OPTIONS)
		return 0;
	return add_header(r, "access-control-allow-methods:", "GET, POST, PUT", p, end) ||
	       add_header(r, "access-control-allow-headers:", "Authorization, Content-Type", p,
	                  end) ||
	       add_header(r, "access-control-max-age:", "600", p, end);
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
		if (lws_add_http_common_headers(r->wsi, r->status, r->ctype, r->body.len, &p,
		                                end) ||
		    add_header(r, "cache-control:", "no-store", &p, end) ||
		    add_header(r, "x-content-type-options:", "nosniff", &p, end) ||
		    add_cors(r, &p, end) ||
		    (r->extra_name && add_header(r, r->extra_name, r->extra_value, &p, end)) ||
		    (r->close_after && add_header(r, "connection:", "close", &p, end)) ||
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
	req_release(r);
	if (r->close_after)
		return -1; /* lws sends what it still holds, then closes */
	return lws_http_transaction_completed(r->wsi) ? -1 : 0;
}

/* --- routing ------------------------------------------------------------------------- */

/* The bearer token: the Authorization header, or ?access_token= where allowed. */
static char *
bearer(struct req *r, bool allow_query)
{
	char buf[HEADER_MAX + 16];
	int n = lws_hdr_copy(r->wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0)
		return strdup(buf + 7);
	if (allow_query && req_arg(r, "access_token", buf, sizeof(buf)) && buf[0] != '\0')
		return strdup(buf);
	return NULL;
}

static void
unauthorized(struct req *r, const char *detail)
{
	r->extra_name = "www-authenticate:";
	r->extra_value = "Bearer realm=\"msgstatus\"";
	req_problem(r, 401, "Unauthorized", detail);
}

/* Where a stream resumes: Last-Event-ID "EPOCH-OFFSET", or ?offset=&epoch=. */
static int
resume_point(struct req *r, const char **error_r)
{
	char id[ARG_MAX], offset[ARG_MAX], epoch[ARG_MAX];
	bool has_id = lws_hdr_custom_copy(r->wsi, id, sizeof(id), "last-event-id:", 14) > 0;

	return params_resume(has_id ? id : NULL,
	                     req_arg(r, "offset", offset, sizeof(offset)) ? offset : NULL,
	                     req_arg(r, "epoch", epoch, sizeof(epoch)) ? epoch : NULL, &r->epoch,
	                     &r->from, error_r);
}

/* Close a WebSocket with a code and reason on its next writable turn (lws sends the close
   reason only from the callback that returns -1). */
static void
ws_refuse(struct req *r, int code, const char *reason)
{
	r->close_code = code;
	r->close_reason = reason;
	r->ready = true;
	lws_callback_on_writable(r->wsi);
}

#define FEED_LIMIT_TEXT "too many feed connections for this user; close one first"

static void
on_auth(void *ctx, const struct principal *p, const char *error)
{
	struct req *r = req_redeem(ctx);
	char clean[80];
	int retry;

	if (r == NULL)
		return; /* the client went away */
	if (p == NULL) {
		msg_clean(clean, sizeof(clean), error ? error : "", error ? strlen(error) : 0);
		msg_info("http: refused a credential: %s", clean);
		if (r->kind == CONN_WS) {
			ws_refuse(r, error == auth_error_db ? 1011 : 4401,
			          error == auth_error_db ? "the database is unavailable"
			                                 : "invalid or expired token");
			return;
		}
		if (error == auth_error_db)
			req_problem(r, 503, "Service Unavailable", "cannot check the token now");
		else
			unauthorized(r, "invalid or expired token");
		return;
	}
	if (r->route->kind != ROUTE_REST && !feed_count_take(r, p->user)) {
		msg_clean(clean, sizeof(clean), p->user, strlen(p->user));
		msg_info("http: refused a feed connection for %s: it has feed_max_per_user (%lld) "
		         "open",
		         clean, r->http->env.cfg->feed_max_per_user);
		if (r->kind == CONN_WS)
			ws_refuse(r, 4429, FEED_LIMIT_TEXT);
		else
			req_problem(r, 429, "Too Many Requests", FEED_LIMIT_TEXT);
		return;
	}
	if (r->kind == CONN_WS) {
		r->stream =
		        stream_start(STREAM_WS, r->wsi, r->http->env.feed, p, r->from, r->epoch);
		return;
	}
	if ((r->route->flags & ROUTE_WRITE) &&
	    !quota_write_ok(r->http->quota, p->user, time_mono_ms(), &retry)) {
		snprintf(r->extra_buf, sizeof(r->extra_buf), "%d", retry);
		r->extra_name = "retry-after:";
		r->extra_value = r->extra_buf;
		req_problem(r, 429, "Too Many Requests", "slow down");
		return;
	}
	if (r->route->kind == ROUTE_SSE) {
		r->stream =
		        stream_start(STREAM_SSE, r->wsi, r->http->env.feed, p, r->from, r->epoch);
		return;
	}
	r->route->handler(&r->http->env, r, p, r->param, &r->reqbody);
}

/* The dashboard's pages may load only themselves and talk only to this server. */
#define DASHBOARD_CSP                                                                              \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"           \
	" connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* A file of the dashboard (or the JavaScript client). */
static void
serve_asset(struct req *r)
{
	const struct web_asset *a = route_asset(r->path);
	struct mbuf body = MBUF_INIT;

	if (a == NULL) { /* a route of a file this build does not embed */
		req_problem(r, 404, "Not Found", "no such resource");
		return;
	}

	mbuf_append(&body, a->data, a->len);
	r->extra_name = "content-security-policy:";
	r->extra_value = DASHBOARD_CSP;
	req_text(r, 200, a->ctype, &body);
}

static void
dispatch(struct http *h, struct req *r)
{
	const struct route *route;
	const char *error;
	char *token;

	if (r->method == LWSHUMETH_OPTIONS) {
		/* CORS preflight: the headers go out in req_write */
		struct mbuf empty = MBUF_INIT;
		req_text(r, 204, "text/plain", &empty);
		return;
	}
	route = route_find(r->method, r->path, &r->param);
	if (route != NULL && (route->flags & ROUTE_DASHBOARD) && !h->env.cfg->http_dashboard)
		route = NULL;
	if (route != NULL && route->kind == ROUTE_STATIC) {
		serve_asset(r);
		return;
	}
	if (h->feeds_only && route != NULL && route->kind != ROUTE_SSE)
		route = NULL; /* another loop serves only the feeds (front.c sends no other) */
	if (route == NULL || route->kind == ROUTE_WS) {
		/* another method of a plain request's path; a WebSocket's path takes only an
		   upgrade, a file only GET */
		const struct route *other = route_find(-1, r->path, NULL);
		if (other != NULL && (other->kind == ROUTE_REST || other->kind == ROUTE_SSE))
			req_problem(r, 405, "Method Not Allowed", NULL);
		else
			req_problem(r, 404, "Not Found", "no such resource");
		return;
	}
	if (route->param_ok != NULL && r->param != NULL && !route->param_ok(r->param)) {
		req_problem(r, 400, "Bad Request", route->param_help);
		return;
	}
	r->route = route;
	if (!(route->flags & ROUTE_AUTH)) {
		route->handler(&h->env, r, NULL, r->param, &r->reqbody);
		return;
	}
	if (route->kind == ROUTE_SSE && resume_point(r, &error) < 0) {
		req_problem(r, 400, "Bad Request", error);
		return;
	}
	if ((token = bearer(r, route->kind == ROUTE_SSE)) == NULL) {
		unauthorized(r, "a bearer token is required");
		return;
	}
	auth_check(h->env.auth, token, on_auth, req_ticket(r));
	free(token);
}

/* The Origin header if it is one of http_cors_origins. */
static char *
allowed_origin(struct http *h, struct lws *wsi)
{
	const char *list = h->env.cfg->http_cors_origins;
	char origin[512];
	size_t n;
	int len = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

	if (len <= 0 || *list == '\0')
		return NULL;
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n > 0 && n == (size_t)len && strncasecmp(p, origin, n) == 0)
			return strdup(origin);
		p += n;
	}
	return NULL;
}

/* A page of this server itself (the dashboard): Origin is http(s):// and the Host header. */
static bool
same_origin(struct lws *wsi)
{
	char origin[512], host[256];
	const char *rest;

	if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0 ||
	    lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
		return false;
	if (strncasecmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	else
		return false;
	return strcasecmp(rest, host) == 0;
}

/* --- lws glue ------------------------------------------------------------------------ */

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	/* the server, through the context's user pointer (info.user in http_start) */
	struct http *h = wsi != NULL ? lws_context_user(lws_get_context(wsi)) : NULL;
	struct req *r = user;
	char *uri;
	int urilen;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		const char *error;
		long long clen;
		unsigned status;

		req_release(r);
		memset(r, 0, sizeof(*r));
		r->wsi = wsi;
		r->http = h;
		/* One request per plain connection: front.c checked its head, and lws must
		   not read a next one unchecked. */
		r->close_after = !lws_is_ssl(wsi);
		front_body_take(h->front, lws_get_socket_fd(wsi), &r->reqbody);
		r->method = lws_http_get_uri_and_method(wsi, &uri, &urilen);
		r->origin = allowed_origin(h, wsi);
		if ((status = framing_check(wsi, &clen, &error)) != 0) {
			r->close_after = true;
			req_problem(r, status, status == 411 ? "Length Required" : "Bad Request",
			            error);
			return 0;
		}
		if (len > PATH_MAX_LEN || (status = framing_cut(wsi, HEADER_VALUE_MAX)) == 414) {
			req_problem(r, 414, "URI Too Long", NULL);
			return 0;
		}
		if (status == 431) {
			req_problem(r, 431, "Request Header Fields Too Large",
			            "a header is longer than the server takes");
			return 0;
		}
		r->path = mystrndup(in, len);
		if ((r->method == LWSHUMETH_POST || r->method == LWSHUMETH_PUT ||
		     r->method == LWSHUMETH_PATCH) &&
		    clen != 0) {
			if (clen > 0)
				return 0; /* route once the body is in */
			/* No length: no body (RFC 9112 §6.3), but lws 4.1 would read the rest
			   of the connection as one, so it ends with this answer. */
			r->close_after = true;
		}
		dispatch(h, r); /* no body to wait for */
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		if (r->too_large || r->reqbody.len + len > (size_t)h->env.cfg->http_body_max)
			r->too_large = true;
		else
			mbuf_append(&r->reqbody, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (r->path == NULL || r->ready || r->ticket != NULL)
			return 0;
		if (r->too_large)
			req_problem(r, 413, "Content Too Large", "the request body is too large");
		else
			dispatch(h, r);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (r == NULL)
			return 0;
		if (r->stream != NULL)
			return stream_writable(r->stream);
		return req_write(r);
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r != NULL && r->kind == CONN_HTTP)
			req_release(r);
		break;

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		/* a WebSocket upgrade: only on the stream path; keep what auth needs */
		char path[64];
		int n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
		const char *error;

		memset(r, 0, sizeof(*r));
		r->kind = CONN_WS;
		r->wsi = wsi;
		r->http = h;
		if (n <= 0 || (r->route = route_find(LWSHUMETH_GET, path, NULL)) == NULL ||
		    r->route->kind != ROUTE_WS)
			return 1;
		{
			long long clen;
			if (framing_check(wsi, &clen, &error) != 0 ||
			    framing_cut(wsi, HEADER_VALUE_MAX) != 0)
				return 1; /* a body lws would not read the same way, a cut header */
		}
		if (h->env.cfg->http_cors_origins[0] != '\0' &&
		    lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 && !same_origin(wsi) &&
		    (r->origin = allowed_origin(h, wsi)) == NULL)
			return 1; /* a browser page from an origin we do not serve */
		/* problems with the request are told after the upgrade, with a close reason */
		if (resume_point(r, &error) < 0)
			r->bad_resume = error;
		r->token = bearer(r, true);
		return 0;
	}
	case LWS_CALLBACK_ESTABLISHED: {
		char *token = r->token;
		r->token = NULL;
		if (r->bad_resume != NULL)
			ws_refuse(r, 4400, r->bad_resume);
		else if (token == NULL)
			ws_refuse(r, 4401, "a bearer token is required (?access_token=)");
		else
			auth_check(h->env.auth, token, on_auth, req_ticket(r));
		free(token);
		return 0;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (r->stream != NULL)
			return stream_writable(r->stream);
		if (!r->ready)
			return 0;
		stream_ws_close(wsi, r->close_code, r->close_reason);
		return -1;
	case LWS_CALLBACK_RECEIVE:
		if (r->stream == NULL) {
			stream_ws_close(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
			                "not authenticated yet");
			return -1;
		}
		if (!lws_is_final_fragment(wsi) || lws_is_first_fragment(wsi) == 0) {
			stream_ws_close(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			                "message too large");
			return -1;
		}
		return stream_receive(r->stream, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		if (r->stream != NULL)
			stream_pong(r->stream);
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (r->stream != NULL)
			stream_peer_closed(r->stream);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (r != NULL)
			req_release(r);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* tx_packet_size: without it lws 4.1 sends at most rx_buffer_size (1 KiB) per send() and
   keeps the rest for later POLLOUT turns: a poll turn and three epoll_ctl() per KiB of an
   SSE backlog. Now a send() takes up to 64 KiB. */
static const struct lws_protocols protocols[] = {
        {"msgstatus.v1", callback, sizeof(struct req), 1024, 0, NULL, 65536},
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
	/* lws (4.1 and 4.3) logs how it takes each connection front.c hands it as an error */
	if (strstr(clean, "adopt_socket_readbuf: ") != NULL)
		level = LLL_DEBUG;
	if (level & LLL_ERR)
		msg_error("http: %s", clean);
	else if (level & LLL_WARN)
		msg_warn("http: %s", clean);
	else
		msg_debug("http: %s", clean);
}

static void
limits_init(void)
{
	for (int t = 0; t < WSI_TOKEN_COUNT; t++)
		token_limits.token_limit[t] = HEADER_VALUE_MAX;
}

struct http *
http_start_loop(uv_loop_t *loop, const struct http_env *env, struct http *first)
{
	const struct sd_config *cfg = env->cfg;
	struct lws_context_creation_info info;
	struct http *h = mycalloc(1, sizeof(*h));
	void *loops[1] = {loop};

	h->env = *env;
	if (first != NULL) {
		h->quota = first->quota;
		h->feeds_only = true;
	} else {
		h->quota = quota_new(cfg);
		h->own_quota = true;
		/* before any other loop runs: lws's log level is global */
		lws_set_log_level(LLL_ERR | LLL_WARN | (msg_verbose() ? LLL_NOTICE : 0), lws_log);
	}
	/* No lws validity timers (secs_since_valid_hangup 0): lws 4.1 keeps them in one
	   sorted list that each re-arm walks, a quarter of a CPU at 10,000 idle WebSockets.
	   stream.c pings idle WebSockets and hangs up on silent ones itself. */
	memset(&h->retry, 0, sizeof(h->retry));
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* front.c listens */
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (strchr(cfg->http_host, ':') == NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	if (cfg->http_tls_cert[0] != '\0') {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = cfg->http_tls_cert;
		info.ssl_private_key_filepath = cfg->http_tls_key;
		/* HTTP/1.1 only: over HTTP/2 the request heads (a report's signature fields among
		   them) would not reach the handlers as statusd reads them */
		info.alpn = "http/1.1";
	}
	info.retry_and_idle_policy = &h->retry;
	info.foreign_loops = loops;
	info.pcontext = &h->ctx; /* lws clears it when the context is finally freed */
	info.user = h;           /* lws_context_user(): the callback's way to the server */
	info.server_string = "statusd";
	info.timeout_secs = 30;
	info.max_http_header_data = HEADER_DATA_MAX;
	pthread_once(&limits_once, limits_init);
	info.token_limits = &token_limits;
	pthread_mutex_lock(&lws_lock);
	h->ctx = lws_create_context(&info);
	pthread_mutex_unlock(&lws_lock);
	if (h->ctx == NULL)
		msg_fatal("http_listen %s: cannot start the HTTP server (address in use, or the "
		          "TLS certificate or key cannot be read?)",
		          cfg->http_listen);
	h->vhost = lws_get_vhost_by_name(h->ctx, "default");
	if (first == NULL)
		h->front = front_start(loop, cfg, h->vhost);
	stream_init(loop, cfg);
	if (first == NULL)
		msg_info("http: listening on %s%s", cfg->http_listen,
		         cfg->http_tls_cert[0] ? " (TLS)" : "");
	return h;
}

struct http *
http_start(uv_loop_t *loop, const struct http_env *env)
{
	return http_start_loop(loop, env, NULL);
}

void
http_handoff(struct http *h, front_handoff_fn *fn, void *ctx)
{
	front_handoff(h->front, fn, ctx);
}

void
http_adopt(struct http *h, int fd, struct mbuf *head)
{
	if (h->ctx == NULL ||
	    lws_adopt_socket_vhost_readbuf(h->vhost, fd, head->data, head->len) == NULL) {
		msg_warn("http: the HTTP library could not take a connection");
		if (h->ctx == NULL)
			close(fd);
	}
	mbuf_free(head);
}

static void
context_destroy(struct http *h)
{
	pthread_mutex_lock(&lws_lock);
	lws_context_destroy(h->ctx);
	pthread_mutex_unlock(&lws_lock);
}

void
http_stop(struct http *h)
{
	front_stop(&h->front);
	stream_done();
	/* Starts closing lws's connections and handles; they finish as the loop runs. */
	if (h->ctx != NULL)
		context_destroy(h);
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
		context_destroy(h);
		uv_run(loop, UV_RUN_NOWAIT);
	}
	if (h->ctx != NULL)
		msg_warn("http: the HTTP library did not finish its teardown");
	if (h->own_quota)
		quota_free(&h->quota);
	free(h);
}
