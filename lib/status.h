/*
 * status - derive a recipient's status from its events, whatever order they come in.
 *
 * A recipient's status is a function of the set of its events, not of their arrival
 * order: events arrive late, twice and out of order (a read can overtake its delivered).
 * Each event maps to a 63-bit key on one of two axes, and the state of a recipient is just
 * the maximum key seen on each axis plus a "was ever displayed" flag. Maximum is
 * commutative, associative and idempotent, so any order and any number of replays give
 * the same state; PostgreSQL keeps the state with GREATEST() and the rules live here.
 *
 *	delivery axis	queued < deferred < bounced = expired < relayed < delivered;
 *			equal ranks: the later event wins (a second deferral replaces the first)
 *	reading axis	read, unread, deleted: the latest event wins; at the same millisecond
 *			deleted > unread > read
 *
 * The shown status is the reading axis when it has any event (reading implies delivery),
 * else the delivery axis. Key layout, high to low bits: [0:1][rank:3][time_ms:44][0:10]
 * [tie:2][code:4], so the status code is always key & 15 and the time (key >> 16) &
 * (2^44 - 1); 44 bits of milliseconds reach the year 2527. The reading axis has rank 0
 * and uses tie for its same-millisecond preference.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "msevent.h"

enum status_axis { STATUS_AXIS_DELIVERY, STATUS_AXIS_READING };

struct status_state {
	int64_t dkey;   /* delivery axis maximum, 0 = none */
	int64_t rkey;   /* reading axis maximum, 0 = none */
	bool displayed; /* a read event was ever seen */
};

struct status_view {
	enum msevent_type status; /* MSEV_NONE when there is no event at all */
	int64_t time_ms;          /* time of the event that set it */
	const char *delivered;    /* JMAP deliveryStatus.delivered: queued|yes|no|unknown */
	const char *displayed;    /* JMAP deliveryStatus.displayed: unknown|yes */
};

/* The axis an event type belongs to. */
enum status_axis status_axis(enum msevent_type type);
/* The key of one event on its axis (> 0). */
int64_t status_key(enum msevent_type type, int64_t time_ms);
/* Fold one event into a state. */
void status_apply(struct status_state *st, enum msevent_type type, int64_t time_ms);
/* Combine two states (for merging partial results); the result is in a. */
void status_merge(struct status_state *a, const struct status_state *b);
/* What to show for a state. */
void status_view(const struct status_state *st, struct status_view *out);
/* The code and the time stored in a key. */
enum msevent_type status_key_type(int64_t key);
int64_t status_key_time(int64_t key);

#endif
