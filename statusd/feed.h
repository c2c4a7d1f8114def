/*
 * feed - the live feeds: every event that enters the log reaches the subscribers allowed to
 * see it, in offset order, with no gap and no duplicate, and a subscriber that comes back
 * with its last offset gets what it missed first (seed 004, "catch up and follow").
 *
 * DESIGN
 *	Loop thread. The feed knows how far the log has been published (published, epoch).
 *	New events come from this statusd's own batches (feed_publish) and, for events other
 *	statusd instances stored, from PostgreSQL: a listener thread LISTENs for
 *	msgstatus_log notifications and the feed reads what it has not seen yet. Either way
 *	events are published strictly in offset order; a gap is filled from the database
 *	before anything after it goes out.
 *
 *	Each event is serialized once into an immutable, reference-counted message shared by
 *	every subscriber that gets it (feedmsg.h). Live subscribers are indexed by the user
 *	they authenticated as and by the domains they administer (feedindex.h), so an event
 *	costs work only for the subscribers who may see it. The newest FEED_RING events are
 *	kept, so a subscriber that resumes near the head is served from memory; an older
 *	offset is read from PostgreSQL a page at a time (store_log_scan, filtered there by
 *	what the subscriber may see). A page is a range of log offsets known before it is
 *	read, so consecutive pages are read at once, in turn on two database connections (the
 *	query worker and the feed's own); the database threads format the records as they read
 *	them, and the pages go to the transport in log order, each when it has drained the one
 *	before. A catching-up subscriber thus holds at most CATCHUP_WATER bytes and a page
 *	queued on its transport, and FEED_PAGES pages read or being read.
 *
 *	Feed loops (feed_threads, feedloop.h): each other event loop has a feed of its own, a
 *	follower of the first loop's, with its own ring, index of live subscribers, pending
 *	list and two database workers for catch-up pages. Only the first feed reads the log's
 *	head, listens and fills gaps. Of each batch it publishes (feed_publish, a gap read)
 *	it puts up to PUBLISH_CHUNK events in its ring, hands them to every follower, in
 *	offset order, under one mutex per follower and chunk, with a uv_async (copies of the
 *	messages, feedmsg.h, with the owner and sender; the log's head first of all), and only
 *	then fans them out to its own subscribers, so that the loops fan out at the same
 *	time. A follower publishes them into its ring and fans them out to its own
 *	subscribers as the first feed does, so a subscriber's events keep their order and the
 *	fan-out takes no lock and no atomic operation per subscriber. A follower keeps its
 *	database workers held until it learns the head (the schema is then in place).
 *	Followers are made before the first loop runs and forgotten before they are freed.
 *
 *	Subscribers are transports (WebSocket, SSE: stream.c) behind one interface, struct
 *	feed_sub_ops (after nchan). A live subscriber whose transport has feed_buffer_max bytes
 *	unsent is closed with a reason naming the offset to resume from.
 */
#ifndef FEED_H
#define FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "feedmsg.h"

struct dbworker;
struct principal;
struct sd_config;
struct store_logged;
struct feed;
struct feed_sub;

#define FEED_RING  16384
#define FEED_PAGES 4 /* catch-up pages read ahead per subscriber, on two connections */

struct feed_sub_ops {
	/*
	 * Queue msg for sending (take a reference if it is kept). Return the bytes now queued
	 * on the transport; the feed compares that with feed_buffer_max.
	 */
	size_t (*push)(struct feed_sub *sub, struct feed_msg *msg);
	/* Queue a control document (hello, reset): a NUL-terminated JSON text. */
	void (*control)(struct feed_sub *sub, const char *json);
	/* The feed ends the subscription (slow consumer, shutdown): say why and close. */
	void (*close)(struct feed_sub *sub, const char *reason);
};

enum feed_sub_state { SUB_WAITING, SUB_CATCHUP, SUB_LIVE, SUB_CLOSED };

struct feed_link;
struct feed_fetch;

/* Embedded in the transport's per-connection state; the feed owns the fields. */
struct feed_sub {
	const struct feed_sub_ops *ops;
	struct feed *feed;
	struct principal *who; /* a copy, freed by feed_unsubscribe */
	int64_t position;      /* the last offset handled for this subscriber */
	enum feed_sub_state state;
	bool paused; /* catch-up waits for the transport to drain */
	/* catch-up pages asked for, in log order: being read, or read and waiting for the
	   transport to drain; the last one ends at offset asked */
	struct feed_fetch *pages[FEED_PAGES];
	unsigned npages;
	int64_t asked;
	struct feed_link *links; /* its places in the live index (user, admin domains) */
	size_t nlinks;
	struct feed_sub *next, *prev; /* all subscribers */
};

struct feed_stats {
	unsigned subscribers, live;
	uint64_t published, sent, slow_closed;
	int64_t head, epoch;
};

/*
 * db: the worker for the feed's own reads (the head, gaps) and every other catch-up page;
 * page_db: a second worker (its own connection) for the pages in between.
 */
struct feed *feed_new(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db,
                      struct dbworker *page_db);
/*
 * A feed for another event loop, to follow first (feedloop.h): made on that loop's thread
 * before the first loop runs, then given to feed_add_follower(). db and page_db are that
 * loop's workers, held (dbworker_hold) until the follower learns the log's head.
 */
struct feed *feed_new_follower(uv_loop_t *loop, struct feed *first, struct dbworker *db,
                               struct dbworker *page_db);
/* The first feed (its loop's thread, before that loop runs): hand follower every event. */
void feed_add_follower(struct feed *first, struct feed *follower);
/* The first feed (its loop's thread): hand nothing more to the followers, which are about
   to be freed on their own loops. */
void feed_forget_followers(struct feed *first);
/* Stop listening and close every subscriber; free once the loop has run. */
void feed_free(struct feed **f);

/* Events that this statusd stored (from an ingest batch), in offset order. */
void feed_publish(struct feed *f, const struct store_logged *logged, size_t n);

/*
 * Start a subscription for principal who (copied), resuming after offset `from` of epoch
 * `epoch` (epoch 0 or from < 0: from the head). Sends a hello control message first:
 * {"type":"hello","epoch":E,"head":H,"from":F} and, if the epoch is not the log's,
 * "reset":true with F = 0.
 */
void feed_subscribe(struct feed *f, struct feed_sub *sub, const struct feed_sub_ops *ops,
                    const struct principal *who, int64_t from, int64_t epoch);
/* The transport is gone: forget the subscriber (safe in any state, and twice). */
void feed_unsubscribe(struct feed_sub *sub);
/* The transport has sent what was queued: continue a paused catch-up. */
void feed_sub_drained(struct feed_sub *sub);

/* The first feed's figures, its followers' subscribers and deliveries included. */
void feed_stats(const struct feed *f, struct feed_stats *out);

#endif
