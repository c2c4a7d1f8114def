/*
 * metrics - statusd's metrics in the Prometheus text format (GET /metrics). See metrics.c.
 */
#ifndef METRICS_H
#define METRICS_H

struct fedin;
struct fedout;
struct feed;
struct ingest;
struct mbuf;
struct webhooks;

/* Append the metrics of ingest, feed, webhooks and fedout (these two may be NULL) to out. */
void metrics_text(struct ingest *ingest, struct feed *feed, struct webhooks *webhooks,
                  struct fedout *fedout, struct mbuf *out);

/* Append the report endpoint's counters (nothing when fi is NULL: it takes no reports). */
void metrics_federation(const struct fedin *fi, struct mbuf *out);

#endif
