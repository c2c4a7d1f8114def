/*
 * routes - every path statusd serves over HTTP, in one table (docs/api.md): the REST
 * endpoints (api.c's handlers), the two feeds (Server-Sent Events and WebSocket, stream.c)
 * and the dashboard's files (webassets.h). http.c dispatches from it.
 *
 * DESIGN
 *	A constant table, searched in order: a route is an exact path, or a prefix and a suffix
 *	around one {id}; the dashboard's route stands for every file of webassets.h. Each route
 *	says how it is served (its kind), whether it needs a bearer token and whether it counts
 *	against the write rate limit. No state: safe from any thread.
 *
 * SECURITY
 *	The path is untrusted: it is only compared, and the {id} handed on is checked by the
 *	route's param_ok before a handler sees it (http.c). Which routes need a token is decided
 *	here and nowhere else.
 *
 * DIAGNOSTICS
 *	None: a route or NULL.
 */
#ifndef ROUTES_H
#define ROUTES_H

#include <stdbool.h>

#include "api.h"

struct web_asset;

enum route_kind {
	ROUTE_REST,   /* a plain request, answered by a handler of api.c */
	ROUTE_SSE,    /* the Server-Sent Events feed (stream.c); a plain GET */
	ROUTE_WS,     /* the WebSocket feed (stream.c): only by an upgrade */
	ROUTE_STATIC, /* a file of the dashboard, or the JavaScript client (webassets.h) */
};

#define ROUTE_AUTH      1u /* needs a bearer token */
#define ROUTE_WRITE     2u /* counts against the write rate limit */
#define ROUTE_DASHBOARD 4u /* served only with http_dashboard on */

struct route {
	enum route_kind kind;
	int method;                          /* LWSHUMETH_* */
	const char *prefix;                  /* the path, or the part before {id}; NULL: a
	                                        file of webassets.h (ROUTE_STATIC) */
	const char *suffix;                  /* the part after {id}; NULL: no {id} */
	unsigned flags;                      /* ROUTE_AUTH, ... */
	api_handler *handler;                /* ROUTE_REST's */
	bool (*param_ok)(const char *param); /* NULL: any {id} */
	const char *param_help;              /* the 400 detail for an unacceptable {id} */
};

/*
 * The route for method (-1: any method) and path; *param_r gets a copy of the {id} (caller
 * frees) when param_r is not NULL. NULL if none matches.
 */
const struct route *route_find(int method, const char *path, char **param_r);

/* The file of webassets.h at path, or NULL. */
const struct web_asset *route_asset(const char *path);

#endif
