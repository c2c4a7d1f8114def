/*
 * http - statusd's HTTP interface: REST, Server-Sent Events and WebSocket (docs/api.md,
 * docs/openapi.yaml).
 *
 * DESIGN
 *	libwebsockets serves HTTP(S) and WebSocket on statusd's libuv loop (a foreign loop to
 *	lws), so the event socket, database completions and HTTP share one thread. One lws
 *	protocol handles every connection, dispatched from one route table (routes.h): plain
 *	requests go to the handlers in api.c or the dashboard's files; GET
 *	/api/v1/messages/events becomes an SSE stream and a WebSocket upgrade on
 *	/api/v1/messages/stream a WebSocket stream (stream.c). The server's state (struct
 *	http, with its copy of the shared context, env.h) is the lws context's user pointer.
 *	lws's own keep-alive (its retry and idle policy) is off; stream.c pings WebSockets.
 *	With feed_threads > 1 each other feed loop (feedloop.h) has a server of its own
 *	(http_start_loop): an lws context on that loop that serves only the feed requests the
 *	first server's front hands it (http_adopt), with its own env (feed, auth, database
 *	worker) and the first server's quota. Contexts are made and destroyed under one mutex.
 *
 *	A request that needs to wait (authentication, PostgreSQL, a receipt being stored)
 *	holds a ticket: lws owns the request state and frees it when the client goes away;
 *	the ticket outlives it, so the answer that comes too late is simply dropped.
 *
 * SECURITY
 *	front.c accepts the connections and reads and checks each request head, and its
 *	body, before lws sees them (RFC 9112; reqhead.h says what is refused), and lws serves
 *	one request on each such connection: the answer closes it. With statusd's own TLS,
 *	lws parses the request line and headers (bounded by its limits: a header's value is
 *	cut at 6 KiB, and answered 431, the head at 8 KiB, which closes), and the request's
 *	framing is checked here before anything else (RFC 9112 §6.3: one Content-Length or
 *	none, no Transfer-Encoding, no blank before either's colon), and the connection closes
 *	after an answer to a request whose end lws might have read otherwise than a proxy in
 *	front (no request smuggling); bodies are bounded by http_body_max; every /api/ route except
 *	the preflight needs a bearer token (auth.h), checked before the handler runs; writes
 *	are rate-limited per user, and feed connections are counted per user
 *	(feed_max_per_user, checked once the token is); CORS headers are sent only to the
 *	origins in http_cors_origins.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "env.h"
#include "front.h"

struct json_object;
struct mbuf;
struct http;
struct req;
struct req_ticket;

/* Start listening on cfg->http_listen. Fatal if the address cannot be bound. */
struct http *http_start(uv_loop_t *loop, const struct http_env *env);
/*
 * Another event loop's server (feedloop.h), on that loop's thread: an lws context of its
 * own that listens nowhere and serves only the feeds, sharing first's per-user quota.
 */
struct http *http_start_loop(uv_loop_t *loop, const struct http_env *env, struct http *first);
/* Offer the feed requests' connections that the first server accepts to fn (front.h). */
void http_handoff(struct http *first, front_handoff_fn *fn, void *ctx);
/* Serve a connection whose checked head (freed here) the first server handed over. */
void http_adopt(struct http *http, int fd, struct mbuf *head);
/* Stop serving; lws closes its handles as the loop runs on. */
void http_stop(struct http *http);
/* After the loop has run out: finish the teardown and free. */
void http_free(struct http **http, uv_loop_t *loop);

/* --- for the handlers (api.c) -------------------------------------------------------- */

/* Answer with a JSON document (not consumed) / an RFC 9457 problem / other text. */
void req_json(struct req *r, unsigned status, struct json_object *doc);
void req_problem(struct req *r, unsigned status, const char *title, const char *detail);
void req_text(struct req *r, unsigned status, const char *ctype, struct mbuf *body);
/* A problem with a "code" member (NULL: none) and, when retry_after_s >= 0, Retry-After. */
void req_problem_code(struct req *r, unsigned status, const char *title, const char *code,
                      const char *detail, int retry_after_s);
/* The value of the request header name (lowercase) into buf: its length, 0 when empty, -1
   when absent or longer than size - 1. Only the fields reqhead.c keeps reach here. */
int req_header(struct req *r, const char *name, char *buf, size_t size);
/* The client's address (of the connection: a proxy's, behind one) into *addr_r: 0, or -1
   when it cannot be had. */
int req_peer(struct req *r, struct sockaddr_storage *addr_r);
/* A query argument (URL-decoded) into buf; false if absent. */
bool req_arg(struct req *r, const char *name, char *buf, size_t size);
/* The request's ticket, for an answer that comes later. */
struct req_ticket *req_ticket(struct req *r);
/* The request a ticket stands for, or NULL if the client went away; ends the ticket. */
struct req *req_redeem(struct req_ticket *t);
/* Whether the client of t has gone: its connection was released, or it has closed or
   reset it (a look at the socket, without reading). */
bool req_ticket_gone(const struct req_ticket *t);

#endif
