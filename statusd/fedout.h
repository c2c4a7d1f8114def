/*
 * fedout - statusd's federation report sender (docs/federation.md, "Sending a report"):
 * the events in the outbox (sql/011, filled by the ingest, see store.h) go to the sending
 * sites as signed MIMI message-status reports over HTTPS, batched per destination, in
 * order, again and again until acknowledged, refused or expired.
 */
#ifndef FEDOUT_H
#define FEDOUT_H

#include <stdint.h>

struct sd_config;
struct fedout;

struct fedout_stats {
	uint64_t reports_sent, events_sent;       /* acknowledged (200 with the counts) */
	uint64_t reports_retried;                 /* attempts that will be made again */
	uint64_t reports_refused, events_refused; /* 4xx, no endpoint: failed for good */
	uint64_t events_later;                    /* named "later" in a 200 (each time) */
	uint64_t events_expired;                  /* dropped after federation_expiry */
	uint64_t reports_split;                   /* 413: sent again in smaller reports */
	int64_t outbox_depth;                     /* events waiting, at the last round */
	int64_t destinations_failing;             /* destinations in backoff, last round */
	int64_t reporters_without_key;            /* reporting domains whose events wait */
};

/* Start the sender's thread, unless federation_policy sends nothing (NULL, *error_r
   NULL). NULL with *error_r for a setting it cannot use. */
struct fedout *fedout_start(const struct sd_config *cfg, const char **error_r);
/* Stop the thread (a request in flight is aborted; its rows stay) and free. */
void fedout_stop(struct fedout **f);
/* The counters (any thread; zeros for NULL). */
void fedout_stats(struct fedout *f, struct fedout_stats *out);

#endif
