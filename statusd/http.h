/*
 * http - statusd's HTTP interface: /healthz and the status API (docs/api.md).
 *
 * DESIGN
 *	libwebsockets serves HTTP on statusd's libuv loop (a foreign loop to lws), so the
 *	event socket, the database completions and HTTP share one thread. A request that
 *	needs PostgreSQL becomes a dbworker job on the query worker; the response is written
 *	when the job is done. If the client goes away first, the job finishes unattended
 *	and its result is dropped.
 *	Ownership: lws owns the per-request state (its "pss"); a pending job points back to
 *	it, and the pointer is cleared when lws drops the request.
 *
 * SECURITY
 *	The request line and headers are parsed by lws (bounded by its header limits);
 *	path parameters are checked here before they reach SQL as parameters.
 */
#ifndef HTTP_H
#define HTTP_H

#include <uv.h>

struct dbworker;
struct ingest;
struct sd_config;
struct http;

/* Start listening on cfg->http_listen. Fatal if the address cannot be bound. */
struct http *http_start(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db,
			struct ingest *ing);
/* Stop serving; lws closes its handles as the loop runs on. */
void http_stop(struct http *http);
/* After the loop has run out: finish the teardown and free. */
void http_free(struct http **http, uv_loop_t *loop);

#endif
