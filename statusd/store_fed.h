/*
 * store_fed - what statusd keeps about reports from other sites (docs/federation.md,
 * "Receiving a report"; sql/008_fedin.sql): the nonces of signatures seen, the events taken
 * by their reporting domain's id, and the lookup of this site's message behind a MIMI
 * message id. The events themselves go through the normal ingest (ingest.h).
 *
 * DESIGN
 *	Plain functions on a PGconn, on the caller's thread (statusd's federation worker), as
 *	everything of store.h. One statement per call: the lookup takes all of a report's
 *	events at once (arrays as parameters), so a report of 1000 events is one round trip,
 *	and it is a function (sql/013, msgstatus_fed_lookup) whose plan PostgreSQL keeps for
 *	the session: planned anew for every report, it cost more than it took to run.
 *
 * SECURITY
 *	Everything here came in a report: values reach SQL only as parameters. A message is
 *	found only when it has a recipient with exactly the reported address (lower case).
 *
 * DIAGNOSTICS
 *	As store.h: 0 (or a count) or -1 with a one-line *error_r and *transient_r.
 */
#ifndef STORE_FED_H
#define STORE_FED_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* One event of a report: in, what the report says; out, what this site has. */
struct store_fed_item {
	const uint8_t *msgid;  /* 32 bytes */
	const char *recipient; /* as reported */
	const char *event_id;  /* the reporting domain's */
	int64_t time_ms;       /* as reported; for store_fed_remember, the time to store */
	const char *stored_id; /* for store_fed_remember: events.event_id */
	/* out (store_fed_lookup); strings malloc'd, freed by store_fed_items_clear() */
	bool found;            /* this site sent that message to that recipient */
	char *tracking_id;     /* of the message found (NULL if it has none) */
	char *message_id;      /* of the message found (NULL if it has none) */
	bool taken;            /* the reporting domain sent this event id before ... */
	int64_t taken_time_ms; /* ... and it was remembered with this time */
	bool stored;           /* ... and that event is in the log */
};

/*
 * Record (keyid, nonce) with its signature's expires (seconds since the epoch). Returns 1
 * when it is new, 0 when it was seen (its row is still kept), -1 on error.
 */
int store_fed_nonce(PGconn *conn, const char *keyid, const char *nonce, int64_t expires,
                    bool *transient_r, const char **error_r);

/* Fill in the out fields of n items of a report from domain. 0 or -1. */
int store_fed_lookup(PGconn *conn, const char *domain, struct store_fed_item *items, size_t n,
                     bool *transient_r, const char **error_r);
void store_fed_items_clear(struct store_fed_item *items, size_t n);

/*
 * Whether this site has a message with each of n msgids (32 bytes each), whatever its
 * recipients, stored at least settle_ms ago: known_r[i] for msgids[i]. A message stored
 * since may still get recipients (its queued events can be split across two ingest
 * batches). For the events store_fed_lookup() did not find, only. 0 or -1.
 */
int store_fed_known(PGconn *conn, const uint8_t *const *msgids, size_t n, int64_t settle_ms,
                    bool *known_r, bool *transient_r, const char **error_r);

/* Remember n events of domain (event_id, time_ms, stored_id); an event id remembered
   before keeps its first row. 0 or -1. */
int store_fed_remember(PGconn *conn, const char *domain, const struct store_fed_item *items,
                       size_t n, bool *transient_r, const char **error_r);

/* Forget nonces that expired STORE_FED_NONCE_KEEP_S before now (statusd's clock, seconds
   since the epoch: a signature that old is stale to statusd whatever PostgreSQL's clock
   says), and events older than retention_ms. 0 or -1. */
#define STORE_FED_NONCE_KEEP_S 120
int store_fed_expire(PGconn *conn, int64_t now, int64_t retention_ms, const char **error_r);

#endif
