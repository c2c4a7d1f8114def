/*
 * env - statusd's shared context: the parts that the HTTP interface, its handlers (api.c)
 * and its streams reach, made once by main.c.
 *
 * DESIGN
 *	main.c fills one struct http_env on the stack and hands it to http_start(), which keeps
 *	a copy for the server's lifetime (lws_context_user() leads from a connection to it).
 *	Every member is owned by main.c and outlives the HTTP server; the handlers only borrow
 *	them, on the loop thread.
 *
 * SECURITY
 *	Nothing here is input; see the modules it points to.
 *
 * DIAGNOSTICS
 *	None: a plain structure.
 */
#ifndef ENV_H
#define ENV_H

struct auth;
struct dbworker;
struct fedout;
struct feed;
struct fedin;
struct ingest;
struct sd_config;
struct webhooks;

/* What the handlers can reach. */
struct http_env {
	const struct sd_config *cfg;
	struct dbworker *db; /* the query worker */
	struct ingest *ingest;
	struct feed *feed;
	struct auth *auth;
	struct webhooks *webhooks;  /* NULL if none configured */
	struct fedout *fedout;      /* NULL if federation_policy sends nothing */
	struct dbworker *ingest_db; /* for /healthz and /metrics only */
	struct fedin *fedin;        /* the report endpoint; NULL if this site takes none */
};

#endif
