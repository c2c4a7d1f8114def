/*
 * quota - what one user may use of statusd's HTTP interface at a time: writes per second
 * (a token bucket of write_burst, refilled at write_rate) and feed connections open at
 * once (feed_max_per_user, WebSocket and SSE together). docs/api.md tells clients.
 *
 * DESIGN
 *	Two hash tables keyed by user name, owned by the first loop's HTTP server and shared
 *	with the other feed loops' (feedloop.h) behind one mutex, so that feed_max_per_user
 *	holds across loops. A user's feed count is kept only while it is not 0; a write bucket is
 *	kept for the server's lifetime. The settings are read from the configuration given
 *	to quota_new(), which must outlive it.
 *
 * SECURITY
 *	The user is an authenticated principal's name, not a peer's text; the limits keep one
 *	user from starving the others.
 *
 * DIAGNOSTICS
 *	None: a yes or no (and when to try again); the caller answers 429.
 */
#ifndef QUOTA_H
#define QUOTA_H

#include <stdbool.h>
#include <stdint.h>

struct sd_config;
struct quota;

struct quota *quota_new(const struct sd_config *cfg);
void quota_free(struct quota **q);

/* May user write now (at now_ms, a monotonic clock)? If so, one write is taken; if not,
 *retry_s says in how many seconds to try again. */
bool quota_write_ok(struct quota *q, const char *user, int64_t now_ms, int *retry_s);

/* Count a feed connection for user: false (and nothing counted) if the user has
   feed_max_per_user open already. */
bool quota_feed_take(struct quota *q, const char *user);
/* A feed connection counted for user has closed. */
void quota_feed_put(struct quota *q, const char *user);

#endif
