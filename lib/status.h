/*
 * status - derive a recipient's status from its events, whatever order they come in.
 *
 * A recipient's status is a function of the set of its events, not of their arrival
 * order: events arrive late, twice and out of order (a read can overtake its delivered).
 * Each event maps to a 63-bit key on one of three axes, and the state of a recipient is
 * the maximum key seen on each axis, a "was ever displayed" flag, and a count of the
 * message's copies in the recipient's mailboxes. Maximum is commutative, associative and
 * idempotent, a sum is commutative and associative, so any order gives the same state;
 * replays are harmless because statusd stores an event (and so counts it) once per id.
 * PostgreSQL keeps the state with GREATEST() and +, and the rules live here.
 *
 *	delivery axis	queued < deferred < bounced = expired < relayed < delivered;
 *			equal ranks: the later event wins (a second deferral replaces the first);
 *			a bounce that a verified DSN reports (status_report_key) ranks with
 *			delivered: the far side's failure after our relayed shows bounced, and
 *			of its delivered and failed the later wins
 *	reading axis	read, unread: the latest event wins; at the same millisecond
 *			unread > read
 *	mailbox axis	expunged: the latest expunge, kept as a "deleted" key;
 *			copies: +1 for each copy that enters a mailbox of the recipient (a
 *			delivered event of the Dovecot plugin, source "dovecot": delivery, Sieve
 *			fileinto; a copied event: IMAP COPY or MOVE), -1 for each expunged
 *
 * The shown status is deleted when an expunge was seen and no copy is left (copies <= 0:
 * a move copies, then expunges, and leaves one; emptying the Trash leaves none); else the
 * reading axis when it has any event (reading implies delivery); else the delivery axis.
 * Postfix's delivered (source "postfix") is no copy: only the plugin sees mailboxes.
 * Key layout, high to low bits: [0:1][rank:3][time_ms:44][0:10][tie:2][code:4], so the
 * status code is always key & 15 and the time (key >> 16) & (2^44 - 1); 44 bits of
 * milliseconds reach the year 2527. The reading axis has rank 0 and uses tie for its
 * same-millisecond preference; the mailbox axis's key is that of a deleted status.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "msevent.h"

enum status_axis { STATUS_AXIS_DELIVERY, STATUS_AXIS_READING, STATUS_AXIS_MAILBOX };

struct status_state {
	int64_t dkey;   /* delivery axis maximum, 0 = none */
	int64_t rkey;   /* reading axis maximum, 0 = none */
	int64_t xkey;   /* mailbox axis: the latest expunge as a deleted key, 0 = none */
	int64_t copies; /* copies in minus copies expunged */
	bool displayed; /* a read event was ever seen */
};

struct status_view {
	enum msevent_type status; /* MSEV_NONE when there is no event at all */
	int64_t time_ms;          /* time of the event that set it */
	const char *delivered;    /* JMAP deliveryStatus.delivered: queued|yes|no|unknown */
	const char *displayed;    /* JMAP deliveryStatus.displayed: unknown|yes */
};

/* The axis an event type (or status) belongs to; deleted, copied and expunged are on the
   mailbox axis. */
enum status_axis status_axis(enum msevent_type type);
/* The key of one status on its axis (> 0); a status type (1-9) only. */
int64_t status_key(enum msevent_type type, int64_t time_ms);
/* The key an event puts on its axis (> 0), 0 for one that has none (copied). An expunged
   event's key is that of the deleted status at its time. */
int64_t status_event_key(enum msevent_type type, int64_t time_ms);
/* The key of a status that a verified report from the far side says (a DSN's failed is a
   bounce after relayed, see above); any other status as status_event_key(). */
int64_t status_report_key(enum msevent_type type, int64_t time_ms);
/* The copies of the message an event adds to the recipient's mailboxes: +1, -1 or 0. */
int status_copies(enum msevent_type type, const char *source);
/* Fold one event's keys into a state: idempotent (a replay changes nothing). */
void status_apply(struct status_state *st, enum msevent_type type, int64_t time_ms);
/* Count an event's copies (status_copies) into a state: once per distinct event. */
void status_count(struct status_state *st, int copies);
/* Combine the states of two disjoint sets of events; the result is in a. */
void status_merge(struct status_state *a, const struct status_state *b);
/* What to show for a state. */
void status_view(const struct status_state *st, struct status_view *out);
/* The code and the time stored in a key. */
enum msevent_type status_key_type(int64_t key);
int64_t status_key_time(int64_t key);

#endif
