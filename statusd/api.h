/*
 * api - statusd's REST endpoints (docs/api.md, docs/openapi.yaml): the handlers that the
 * route table (routes.h) names. http.c does the transport, authentication and rate limits;
 * a handler gets an authenticated principal (NULL for the open routes), the route's {id}
 * and the request body, and answers now or later through the request's ticket.
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

/* The endpoints, for the route table (routes.c). */
api_handler api_health, api_metrics, api_list, api_status, api_timeline, api_receipt, api_prefs_get,
        api_prefs_put, api_presence_get, api_presence_post;
/* GET /api/v1/reports/{id}: a DSN or MDN as it came, for its message's sender. */
api_handler api_report;

#endif
