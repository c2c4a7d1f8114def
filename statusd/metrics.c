/*
 * metrics - statusd's counters and gauges in the Prometheus text format, for GET /metrics
 * (docs/api.md): ingest, the database batches, the feeds, each webhook endpoint and the
 * federation's report sender (fedout.h).
 *
 * DESIGN
 *	Called on the loop thread; reads the modules' stats functions, which are cheap and
 *	take no database round trip.
 *
 * SECURITY
 *	Webhook endpoints are labelled by position and origin, never by the full URL, which
 *	may hold credentials.
 *
 * DIAGNOSTICS
 *	None.
 */
#include "metrics.h"

#include "fedin.h"
#include "fedout.h"
#include "feed.h"
#include "ingest.h"
#include "mbuf.h"
#include "webhook.h"

static void
metric(struct mbuf *out, const char *name, const char *type, const char *help, double value)
{
	mbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
	            value);
}

/* Per-endpoint webhook counters, labelled by position and origin (never the full URL). */
static void
metric_webhooks(struct mbuf *out, struct webhooks *w)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	        {"msgstatus_webhook_delivered_total", "counter",
	         "Events a webhook endpoint acknowledged with a 2xx."},
	        {"msgstatus_webhook_failed_total", "counter",
	         "Webhook requests that got no 2xx (each retry counts)."},
	        {"msgstatus_webhook_lag_events", "gauge",
	         "Events in the log not yet acknowledged by the endpoint (-1: not known yet)."},
	        {"msgstatus_webhook_failing", "gauge",
	         "1 while the endpoint's deliveries are failing."},
	};
	struct webhook_stats st[32];
	size_t n = webhooks_stats(w, st, sizeof(st) / sizeof(st[0]));

	if (n > sizeof(st) / sizeof(st[0]))
		n = sizeof(st) / sizeof(st[0]);
	if (n == 0)
		return;
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		mbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		            m[k].type);
		for (size_t i = 0; i < n; i++) {
			double v = k == 0   ? (double)st[i].delivered
			           : k == 1 ? (double)st[i].failed
			           : k == 2 ? (double)st[i].lag
			                    : (double)st[i].failing;

			mbuf_printf(out, "%s{endpoint=\"%u\",origin=\"%s\"} %.17g\n", m[k].name,
			            st[i].index, st[i].origin, v);
		}
	}
}

/* The federation's report sender (fedout.h) and the outbox the ingest fills. */
static void
metric_federation(struct mbuf *out, const struct ingest_stats *st, struct fedout *fedout)
{
	struct fedout_stats fs;

	fedout_stats(fedout, &fs);
	metric(out, "msgstatus_federation_outbox_added_total", "counter",
	       "Events put in the federation outbox by the ingest.", (double)st->outbox_added);
	metric(out, "msgstatus_federation_outbox_depth", "gauge",
	       "Events waiting in the federation outbox (at the sender's last round).",
	       (double)fs.outbox_depth);
	metric(out, "msgstatus_federation_reports_sent_total", "counter",
	       "Reports another site acknowledged.", (double)fs.reports_sent);
	metric(out, "msgstatus_federation_events_sent_total", "counter",
	       "Events in reports another site acknowledged.", (double)fs.events_sent);
	metric(out, "msgstatus_federation_reports_retried_total", "counter",
	       "Report attempts that failed and will be made again (429, 5xx, no answer).",
	       (double)fs.reports_retried);
	/* "sent_": the endpoint's own refused counters (metrics_federation) are other families */
	metric(out, "msgstatus_federation_sent_reports_refused_total", "counter",
	       "Reports refused for good (4xx, no endpoint).", (double)fs.reports_refused);
	metric(out, "msgstatus_federation_sent_events_refused_total", "counter",
	       "Events in refused reports.", (double)fs.events_refused);
	metric(out, "msgstatus_federation_sent_events_later_total", "counter",
	       "Events another site answered \"later\" (kept and sent again; counted each time).",
	       (double)fs.events_later);
	metric(out, "msgstatus_federation_reports_split_total", "counter",
	       "Reports too large for the receiver (413), sent again in smaller ones.",
	       (double)fs.reports_split);
	metric(out, "msgstatus_federation_expired_events_total", "counter",
	       "Events dropped from the outbox after federation_expiry.",
	       (double)fs.events_expired);
	metric(out, "msgstatus_federation_destinations_failing", "gauge",
	       "Destinations waiting out a backoff.", (double)fs.destinations_failing);
	metric(out, "msgstatus_federation_reporters_without_key", "gauge",
	       "Reporting domains whose events wait for a signing key (federation_key_dir).",
	       (double)fs.reporters_without_key);
}

void
metrics_text(struct ingest *ingest, struct feed *feed, struct webhooks *webhooks,
             struct fedout *fedout, struct mbuf *out)
{
	struct ingest_stats st;
	struct feed_stats fs;

	ingest_stats(ingest, &st);
	feed_stats(feed, &fs);
	metric(out, "msgstatus_events_received_total", "counter",
	       "Event records read from producers (socket and pickup files).", (double)st.received);
	metric(out, "msgstatus_events_logged_total", "counter",
	       "Events that entered the log (rate() gives events per second).", (double)st.logged);
	metric(out, "msgstatus_events_rejected_total", "counter",
	       "Event records answered with an error.", (double)st.rejected);
	metric(out, "msgstatus_ingest_pending", "gauge",
	       "Events read and not yet stored and acknowledged.", (double)st.pending);
	metric(out, "msgstatus_ingest_connections", "gauge", "Producer connections.",
	       (double)st.connections);
	metric(out, "msgstatus_ingest_lag_seconds", "gauge",
	       "Time from the newest stored event's own time to its commit.",
	       (double)st.lag_ms / 1000.0);
	metric(out, "msgstatus_db_batch_seconds", "gauge",
	       "Duration of the last stored batch (PostgreSQL latency).",
	       (double)st.batch_ms / 1000.0);
	metric(out, "msgstatus_db_batches_total", "counter", "Batches stored.", (double)st.batches);
	metric(out, "msgstatus_db_batches_fast_total", "counter",
	       "Batches stored on the fast path (schema 019).", (double)st.batches_fast);
	metric(out, "msgstatus_db_batches_fast_declined_total", "counter",
	       "Batches tried on the fast path that took the ingest's steps: not the plain case.",
	       (double)st.batches_declined);
	metric(out, "msgstatus_db_batches_fast_replay_total", "counter",
	       "Batches tried on the fast path that took the ingest's steps: events stored before.",
	       (double)st.batches_replay);
	metric(out, "msgstatus_log_head", "gauge", "Offset of the newest published event.",
	       (double)fs.head);
	metric(out, "msgstatus_feed_subscribers", "gauge", "Feed connections (WebSocket and SSE).",
	       (double)fs.subscribers);
	metric(out, "msgstatus_feed_live_subscribers", "gauge",
	       "Feed connections that are caught up.", (double)fs.live);
	metric(out, "msgstatus_feed_events_sent_total", "counter",
	       "Events handed to feed connections.", (double)fs.sent);
	metric(out, "msgstatus_feed_slow_closed_total", "counter",
	       "Feed connections closed for falling too far behind.", (double)fs.slow_closed);
	metric_webhooks(out, webhooks);
	metric_federation(out, &st, fedout);
}

void
metrics_federation(const struct fedin *fi, struct mbuf *out)
{
	static const struct {
		const char *name, *help;
	} ev[] = {
	        {"msgstatus_federation_events_stored_total",
	         "Events of other sites' reports stored as status events."},
	        {"msgstatus_federation_events_duplicate_total",
	         "Reported events taken before (same reporting domain and event id)."},
	        {"msgstatus_federation_events_refused_total",
	         "Reported events refused one by one (no message sent to that recipient, or out of"
	         " time)."},
	        {"msgstatus_federation_events_ignored_total",
	         "Reported events of a status code this site does not store."},
	        {"msgstatus_federation_events_later_total",
	         "Reported events about a message this site does not know yet, answered \"later\""
	         " (to be sent again; counted again when they come again)."},
	};
	struct fedin_stats st;

	if (fi == NULL)
		return;
	fedin_stats(fi, &st);
	const uint64_t v[] = {st.events_stored, st.events_duplicate, st.events_refused,
	                      st.events_ignored, st.events_later};
	metric(out, "msgstatus_federation_reports_accepted_total", "counter",
	       "Reports from other sites answered 200.", (double)st.reports[FEDIN_OK]);
	mbuf_printf(out, "# HELP msgstatus_federation_reports_refused_total Reports from other"
	                 " sites refused as a whole, by the problem's code.\n"
	                 "# TYPE msgstatus_federation_reports_refused_total counter\n");
	for (int e = FEDIN_OK + 1; e < FEDIN_ERR_MAX; e++)
		mbuf_printf(out, "msgstatus_federation_reports_refused_total{reason=\"%s\"} %llu\n",
		            fedin_errinfo((enum fedin_err)e)->code,
		            (unsigned long long)st.reports[e]);
	for (size_t k = 0; k < sizeof(ev) / sizeof(ev[0]); k++)
		metric(out, ev[k].name, "counter", ev[k].help, (double)v[k]);
	metric(out, "msgstatus_federation_reports_abandoned_total", "counter",
	       "Reports not checked because their client went away while they waited.",
	       (double)st.reports_abandoned);
}
