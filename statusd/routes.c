/*
 * routes - every path statusd serves over HTTP. See routes.h.
 */
#include "routes.h"

#include <libwebsockets.h>
#include <string.h>

#include "fedin.h"
#include "mymalloc.h"
#include "params.h"
#include "webassets.h"

#define REF_HELP "expected a tracking id or a URL-encoded Message-ID"

#define GET   LWSHUMETH_GET
#define POST  LWSHUMETH_POST
#define PUT   LWSHUMETH_PUT
#define AUTH  ROUTE_AUTH
#define WRITE (ROUTE_AUTH | ROUTE_WRITE)

/* Searched in order: the first match wins. */
static const struct route routes[] = {
        /* kind, method, prefix, suffix, flags, handler, param_ok, param_help */
        {ROUTE_REST, GET, "/healthz", NULL, 0, api_health, NULL, NULL},
        {ROUTE_REST, GET, "/metrics", NULL, 0, api_metrics, NULL, NULL},
        {ROUTE_SSE, GET, "/api/v1/messages/events", NULL, AUTH, NULL, NULL, NULL},
        {ROUTE_WS, GET, "/api/v1/messages/stream", NULL, AUTH, NULL, NULL, NULL},
        {ROUTE_REST, GET, "/api/v1/messages", NULL, AUTH, api_list, NULL, NULL},
        {ROUTE_REST, GET, "/api/v1/messages/", "/status", AUTH, api_status, params_ref_ok,
         REF_HELP},
        {ROUTE_REST, GET, "/api/v1/messages/", "/timeline", AUTH, api_timeline, params_ref_ok,
         REF_HELP},
        {ROUTE_REST, POST, "/api/v1/messages/", "/receipt", WRITE, api_receipt, params_ref_ok,
         REF_HELP},
        {ROUTE_REST, GET, "/api/v1/preferences", NULL, AUTH, api_prefs_get, NULL, NULL},
        {ROUTE_REST, PUT, "/api/v1/preferences", NULL, WRITE, api_prefs_put, NULL, NULL},
        {ROUTE_REST, GET, "/api/v1/presence/", "", AUTH, api_presence_get, params_user_ok,
         "expected a user"},
        {ROUTE_REST, POST, "/api/v1/presence", NULL, WRITE, api_presence_post, NULL, NULL},
        /* other sites' reports: the signature is the authentication (fedin.c) */
        {ROUTE_REST, POST, "/api/v1/federation/reports", NULL, 0, api_fed_reports, NULL, NULL},
        {ROUTE_REST, GET, "/api/v1/reports/", "", AUTH, api_report, params_report_ok,
         "expected a report id"},
        /* the JavaScript client, served without the dashboard too */
        {ROUTE_STATIC, GET, "/msgstatus.js", NULL, 0, NULL, NULL, NULL},
        /* every other file of webassets.h */
        {ROUTE_STATIC, GET, NULL, NULL, ROUTE_DASHBOARD, NULL, NULL, NULL},
};

const struct web_asset *
route_asset(const char *path)
{
	for (const struct web_asset *a = web_assets; a->path != NULL; a++)
		if (strcmp(a->path, path) == 0)
			return a;
	return NULL;
}

/* Does rt's path match? An {id} with a slash belongs to a longer route unless no other
   matches: the routes are tried in order. */
static bool
path_match(const struct route *rt, const char *path, size_t plen)
{
	size_t pre, suf;

	if (rt->prefix == NULL)
		return route_asset(path) != NULL;
	if (rt->suffix == NULL)
		return strcmp(path, rt->prefix) == 0;
	pre = strlen(rt->prefix);
	suf = strlen(rt->suffix);
	return plen > pre + suf && strncmp(path, rt->prefix, pre) == 0 &&
	       strcmp(path + plen - suf, rt->suffix) == 0;
}

const struct route *
route_find(int method, const char *path, char **param_r)
{
	size_t plen = strlen(path);

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];

		if (!path_match(rt, path, plen) || (method != -1 && rt->method != method))
			continue;
		if (param_r != NULL && rt->suffix != NULL) {
			size_t pre = strlen(rt->prefix);
			*param_r = mystrndup(path + pre, plen - pre - strlen(rt->suffix));
		}
		return rt;
	}
	return NULL;
}
