/*
 * feedloop - more event loops for the feeds (feed_threads): the fan-out of each event to
 * WebSocket and SSE subscribers on several cores.
 *
 * DESIGN
 *	statusd's first loop (main.c) keeps everything it has: the listening socket
 *	(front.c), ingest, the REST API, webhooks, the log's head and gaps. feed_threads - 1
 *	more threads each run a libuv loop of their own with: an lws context that listens
 *	nowhere (http_start_loop), the streams of that loop (stream.c), a feed that follows
 *	the first loop's (feed_new_follower), an auth cache, and two database workers (for
 *	token lookups and catch-up pages; two more PostgreSQL connections per loop).
 *
 *	The front on the first loop checks every request head as before; a feed request's
 *	connection (front_handoff) goes in turn to each loop, the first included: to another
 *	loop through its queue (a mutex, held to add or take one connection) and a uv_async;
 *	that loop hands it to its lws context with the head. A connection stays on its loop
 *	for its whole life. The first feed hands every loop's feed each batch of events
 *	(feed.h), so a fan-out to N subscribers is done by each loop for its own share, at
 *	the same time, with no lock per subscriber.
 *
 *	Start: every loop's handles, context and follower exist before the first loop runs
 *	(a barrier). lws contexts are made and destroyed under one mutex (http.c). Stop
 *	(first loop): no more hand-offs, the first feed forgets its followers, then each loop
 *	is told to close its streams, context and workers, and its thread is joined.
 *
 * SECURITY
 *	Nothing new is read from peers here: the heads were checked by the front; each loop
 *	authenticates its connections and applies principal_may_see() as the first loop does.
 *	The per-user feed limit (feed_max_per_user) is one count shared by all loops (quota.h).
 *
 * DIAGNOSTICS
 *	Failing to start a thread, a loop or an auth cache is fatal at start-up.
 */
#ifndef FEEDLOOP_H
#define FEEDLOOP_H

struct feed;
struct http;
struct http_env;
struct feedloops;

/*
 * Start cfg->feed_threads - 1 loops following first_feed, serving the feed requests that
 * first_http's front hands them (env: the first loop's, for the settings). Call before the
 * first loop runs. NULL when feed_threads is 1.
 */
struct feedloops *feedloops_start(const struct http_env *env, struct feed *first_feed,
                                  struct http *first_http);
/* On the first loop, before the first feed and server stop: stop the loops, wait for
   their threads, free. NULL is fine. */
void feedloops_stop(struct feedloops **loops, struct feed *first_feed, struct http *first_http);

#endif
