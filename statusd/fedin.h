/*
 * fedin - statusd's report endpoint, POST /api/v1/federation/reports (docs/federation.md,
 * "Receiving a report"): other sites' signed reports about this site's mail, verified and
 * stored as ordinary status events of source "federation" through the normal ingest.
 *
 * DESIGN
 *	The handler (loop thread) checks what costs nothing: that this site takes reports
 *	(federation_accept), the client address's token bucket (fedrate_new_clients), the
 *	media type, the size, that the request is signed, and then
 *	the signature's form, profile and freshness (fedaccept_precheck) and the body's
 *	Content-Digest. Only such a report becomes a job on a database worker of its own
 *	(dbworker.h), whose thread may block: the key lookup through federation/resolver
 *	(with dns_timeout), the signature, the replay check and the lookups in PostgreSQL.
 *	So a slow DNS server delays reports, never the loop or the API's queries. At most
 *	PENDING_MAX reports are jobs at once (more are answered 503 busy); a job whose
 *	client went away (req_ticket_gone, looked at every GONE_CHECK_MS), or whose
 *	signature expired while it waited, is skipped before its lookup; a zone (the last
 *	two labels of the keyid's domain) whose lookup failed for a moment is not asked
 *	again for DNS_DOWN_MS. So a sender without a key, who chooses its keyids freely,
 *	holds the worker for at most one dns_timeout per zone and window, and never makes
 *	the queue grow without bound. The job hands the accepted events, as event records,
 *	back to the loop thread, which feeds them to the ingest (ingest_source_start) and
 *	answers once the ingest has committed them: a site acknowledges only what it
 *	stored.
 *	Old nonces and remembered events are deleted by a job of their own on the same
 *	worker, every EXPIRE_EVERY (10 minutes, or maintenance_interval when shorter),
 *	whether reports come or not.
 *	Ownership: struct fedin is main.c's; the rate buckets and the failed zones belong to
 *	the worker thread, the client buckets, the counters and the
 *	list of waiting jobs to the loop thread; a job's "gone" flag is set by the loop thread and
 *read by the worker (atomic); the stored ids in flight are the worker's, the ones done come to it
 *from the loop thread under a mutex.
 *
 * SECURITY
 *	Everything in the request is untrusted. Order of the checks, each refusing the whole
 *	report with its own code (fedaccept.h) at the first failure:
 *	1. federation_accept; the client address's rate (federation_client_rate, in memory:
 *	   a client that sends many reports, e.g. under made-up keyids, gets 429 before any
 *	   lookup or signature work); Content-Type, size, Signature-Input and Signature
 *	   present; then on the loop thread: they parse, the profile (only components this receiver
 *	   rebuilds), created/expires, the body's Content-Digest; the cap on waiting jobs;
 *	2. httpsig_verify() in docs/federation.md's order: parse, profile, the key at keyid
 *	   (its MSK1 record; missing or revoked refuses), the signature, freshness, then the
 *	   rate limit of the keyid's (now authenticated) domain, the replay check of (keyid,
 *	   nonce) in PostgreSQL, the body's Content-Digest;
 *	3. only then the body: decoded by mimistatus_decode(), its domain and recipients
 *	   against the keyid's domain (fedaccept_claims);
 *	4. per event: the duplicate check by (domain, event id): stored, or handed to the
 *	   ingest by an earlier report and not yet answered (the worker's set of stored ids in
 *	   flight); the code and the time (fedaccept_event: an ignored code is acknowledged,
 *	   a time out of range refused, whatever the message); this site sent that message to
 *	   that recipient (store_fed_lookup). An event about a message this site does not know
 *	   at all, within federation_unknown_window (fedaccept_unknown, store_fed_known), is
 *	   neither stored nor refused for good: the report's other events are stored, and the
 *	   200 answer names it in "later", so that the sender sends it again.
 *	A forged, replayed or unsigned report changes nothing but the nonce table.
 *
 * DIAGNOSTICS
 *	Each refused report is answered with a problem document (status, "code", "detail")
 *	and logged on one line, sanitized, and so is each report answered 200 (its counts);
 *	a client over federation_client_rate is logged once a minute, not per report.
 *	Counters for /metrics (fedin_stats).
 */
#ifndef FEDIN_H
#define FEDIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "fedaccept.h"

struct ingest;
struct mbuf;
struct sd_config;
struct fedin;

/*
 * The endpoint's state: NULL when this site takes no reports (federation_accept, see
 * statusd.conf(5)). Fatal on a bad DNS setting.
 */
struct fedin *fedin_new(uv_loop_t *loop, const struct sd_config *cfg, struct ingest *ingest);
/* Hold / release the worker until the schema is in place (as main.c does the others). */
void fedin_hold(struct fedin *fi);
void fedin_release(struct fedin *fi);
/* Stop the worker (pending reports are answered 503) and free; loop thread. */
void fedin_free(struct fedin **fi);

/* POST /api/v1/federation/reports (routes.c). */
api_handler api_fed_reports;

/* The endpoint's counters, for /metrics (metrics.c); all 0 when fi is NULL. */
struct fedin_stats {
	uint64_t reports[FEDIN_ERR_MAX]; /* reports answered, by outcome (FEDIN_OK: 200) */
	uint64_t events_stored, events_duplicate, events_refused, events_ignored;
	uint64_t events_later;      /* answered "later": to be sent again, not refused */
	uint64_t reports_abandoned; /* the client went away before the report was checked */
};
void fedin_stats(const struct fedin *fi, struct fedin_stats *out);

#endif
