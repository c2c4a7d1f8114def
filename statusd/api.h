/*
 * api - statusd's REST endpoints (docs/api.md, docs/openapi.yaml): the route table and the
 * handlers behind it. http.c does the transport, authentication and rate limits; a handler
 * gets an authenticated principal (NULL for the open routes), the route's {id} and the
 * request body, and answers now or later through the request's ticket.
 *
 * SECURITY
 *	Handlers check what a principal may do before they touch anything: a message's status
 *	only for its owner or an administrator of the sender's domain (others get 404, as if it
 *	did not exist), a receipt only from a recipient of the message, presence only of users
 *	who opted in. Bodies are JSON objects checked field by field; unknown fields are errors.
 */
#ifndef API_H
#define API_H

#include <stdbool.h>

struct http_env;
struct mbuf;
struct principal;
struct req;

typedef void api_handler(const struct http_env *env, struct req *r, const struct principal *p,
                         const char *param, const struct mbuf *body);

struct api_route {
	int method;                          /* LWSHUMETH_* */
	const char *prefix;                  /* the path, or the part before {id} */
	const char *suffix;                  /* the part after {id}; NULL: no {id} */
	bool auth;                           /* needs a bearer token */
	bool write;                          /* counts against the write rate limit */
	api_handler *handler;                /* NULL: the SSE stream (http.c starts it) */
	bool (*param_ok)(const char *param); /* NULL: any {id} */
	const char *param_help;              /* the 400 detail for an unacceptable {id} */
};

/*
 * The route for method (-1: any method) and path; *param_r gets a copy of the {id} (caller
 * frees) when param_r is not NULL. NULL if none matches.
 */
const struct api_route *api_route_find(int method, const char *path, char **param_r);

#endif
