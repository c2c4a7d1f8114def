/*
 * webhook - deliver the event log to the HTTP(S) endpoints in webhook_urls as signed JSON
 * POSTs, one event per request, in offset order, at least once (docs/api.md, "Webhooks").
 *
 * DESIGN
 *	One thread per endpoint, each with its own PostgreSQL connection and its own libcurl
 *	handle; nothing here touches the event loop or the ingest path, so an endpoint that
 *	is slow or dead holds up only its own thread. The endpoint's cursor (the last offset
 *	it acknowledged with a 2xx) lives in webhook_cursors and starts at the log head the
 *	first time an URL is seen. A failed attempt is retried for the same event with
 *	exponential backoff (1 s doubling up to webhook_retry_max); no event is skipped.
 *	Several statusd instances on one database share the work: a session advisory lock
 *	per URL lets one of them deliver it while the others stand by.
 *
 * SECURITY
 *	Each request is signed with HMAC-SHA256 over "<timestamp>.<body>" with the secret from
 *	webhook_secret_file (at least 32 bytes; the file must not be accessible to others).
 *	Only http:// and https:// URLs are accepted, redirects are not followed, TLS peers are
 *	verified (libcurl's defaults), and answers are read only for their status code. URLs
 *	are logged without credentials or query.
 *
 * DIAGNOSTICS
 *	Bad settings are start-up errors naming the setting. Delivery trouble is logged once
 *	per failure streak (with the HTTP status or the transport error and the endpoint),
 *	and again when the endpoint recovers; the database's loss and return likewise.
 */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

struct sd_config;
struct webhooks;

/*
 * Check the webhook settings of cfg (which must outlive the result), read the secret and
 * start one delivery thread per URL. Returns the running set; NULL with *error_r NULL when
 * webhook_urls is empty; NULL with *error_r set on a bad setting or an unusable secret.
 */
struct webhooks *webhooks_start(const struct sd_config *cfg, const char **error_r);

/*
 * Stop the threads (a request in flight gets half a second to finish, waits end at once),
 * close their connections and free everything; *w becomes NULL. NULL-safe.
 */
void webhooks_stop(struct webhooks **w);

/* One endpoint's counters since start, for /metrics. */
struct webhook_stats {
	unsigned index;     /* position in webhook_urls, from 0 */
	char origin[128];   /* scheme://host[:port], safe to show (no path, no credentials) */
	uint64_t delivered; /* events acknowledged with a 2xx */
	uint64_t failed;    /* attempts that got no 2xx */
	int64_t lag;        /* events in the log not yet acknowledged; -1 until known */
	int failing;        /* 1 while in a failure streak */
};

/*
 * Fill out[0..max) with the counters of the first max endpoints (any thread). Returns the
 * number of endpoints, 0 for NULL.
 */
size_t webhooks_stats(struct webhooks *w, struct webhook_stats *out, size_t max);

#endif
