/*
 * test_status - unit tests for lib/status (order-independent status derivation).
 *
 * The rules under test (status.h): a recipient's status is a function of the set of its
 * events. Delivery axis: queued < deferred < bounced = expired < relayed < delivered, equal
 * ranks won by the later event; reading axis (read, unread): latest wins, at the same
 * millisecond unread > read; mailbox axis: the latest expunge, and a count of copies (+1 per
 * copy that enters a mailbox, -1 per expunge); deleted is shown when an expunge was seen and
 * no copy is left, else the reading axis when present (reading implies delivery), else the
 * delivery axis; "displayed" is yes once any read was seen.
 *
 * The expected results come from an independent reference model written from those rules
 * (it compares events, not keys). Covers: status_axis() for every type; status_key()
 * round trips through status_key_type()/status_key_time() and its clamping; every ordered
 * pair of the 9 event types with equal and distinct timestamps applied in both orders
 * (same state, same view, the view the model wants); applying any event twice changes
 * nothing; named scenarios (deferred/relayed, two deferrals, read before delivered,
 * unread after read, deleted, bounced/expired ties); the JMAP delivered/displayed mapping
 * for every status; status_merge(); a randomized check of random multisets in random
 * orders, with replays and split-and-merge, against the model; moves, copies and expunges
 * (IMAP MOVE, COPY + EXPUNGE, the Trash and its emptying, Sieve fileinto, an older plugin's
 * deleted) in every order of their events; status_copies() per type and source; bad types
 * panic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "status.h"

#include "check.h"
#include "child.h"

/* The tables of events leave out copies where they count none (0). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define T0          1709164800000LL /* 2024-02-29T00:00:00Z */
#define TIME_MAX_MS ((INT64_C(1) << 44) - 1)

static const char *
tname(enum msevent_type t)
{
	static const char *const names[] = {
	        "none", "queued", "deferred", "relayed", "delivered", "bounced", "expired",
	        "read", "unread", "deleted",  "online",  "offline",   "copied",  "expunged"};
	return (int)t >= 0 && (int)t <= MSEV_TYPE_MAX ? names[t] : "?";
}

/* ---- the reference model, from the rules in status.h ---- */

struct ev {
	enum msevent_type type;
	int64_t time;
	int copies; /* what it counts (status_copies); 0 for a replay, which is not counted */
};

static int
model_rank(enum msevent_type t)
{
	switch (t) {
	case MSEV_QUEUED:
		return 0;
	case MSEV_DEFERRED:
		return 1;
	case MSEV_BOUNCED:
	case MSEV_EXPIRED:
		return 2;
	case MSEV_RELAYED:
		return 3;
	case MSEV_DELIVERED:
		return 4;
	default:
		return -1; /* reading or mailbox axis */
	}
}

static int
model_is_expunge(enum msevent_type t)
{
	return t == MSEV_DELETED || t == MSEV_EXPUNGED;
}

static int
model_reading_pref(enum msevent_type t)
{
	return t == MSEV_READ ? 1 : t == MSEV_UNREAD ? 2 : 0;
}

static int64_t
model_clamp(int64_t t)
{
	return t < 0 ? 0 : t > TIME_MAX_MS ? TIME_MAX_MS : t;
}

/* True if a beats b on the delivery axis: higher rank, then later, then higher code. */
static int
model_delivery_beats(const struct ev *a, const struct ev *b)
{
	if (model_rank(a->type) != model_rank(b->type))
		return model_rank(a->type) > model_rank(b->type);
	if (model_clamp(a->time) != model_clamp(b->time))
		return model_clamp(a->time) > model_clamp(b->time);
	return a->type > b->type;
}

/* True if a beats b on the reading axis: later, then unread > read. */
static int
model_reading_beats(const struct ev *a, const struct ev *b)
{
	if (model_clamp(a->time) != model_clamp(b->time))
		return model_clamp(a->time) > model_clamp(b->time);
	return model_reading_pref(a->type) > model_reading_pref(b->type);
}

static const char *
model_delivered(enum msevent_type t)
{
	switch (t) {
	case MSEV_NONE:
	case MSEV_QUEUED:
	case MSEV_DEFERRED:
		return "queued";
	case MSEV_RELAYED:
		return "unknown";
	case MSEV_BOUNCED:
	case MSEV_EXPIRED:
		return "no";
	default:
		return "yes";
	}
}

static void
model_view(const struct ev *evs, size_t n, struct status_view *out)
{
	const struct ev *d = NULL, *r = NULL, *x = NULL, *win;
	int displayed = 0;
	long copies = 0;

	for (size_t i = 0; i < n; i++) {
		copies += evs[i].copies;
		if (model_rank(evs[i].type) >= 0) {
			if (d == NULL || model_delivery_beats(&evs[i], d))
				d = &evs[i];
		} else if (model_is_expunge(evs[i].type)) {
			if (x == NULL || model_clamp(evs[i].time) > model_clamp(x->time))
				x = &evs[i];
		} else if (evs[i].type != MSEV_COPIED) {
			if (r == NULL || model_reading_beats(&evs[i], r))
				r = &evs[i];
			if (evs[i].type == MSEV_READ)
				displayed = 1;
		}
	}
	win = x != NULL && copies <= 0 ? x : r != NULL ? r : d;
	out->status = win == NULL ? MSEV_NONE : win == x ? MSEV_DELETED : win->type;
	out->time_ms = win ? model_clamp(win->time) : 0;
	out->delivered = model_delivered(out->status);
	out->displayed = displayed ? "yes" : "unknown";
}

/* ---- helpers ---- */

static void
apply_all(struct status_state *st, const struct ev *evs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		status_apply(st, evs[i].type, evs[i].time);
		status_count(st, evs[i].copies);
	}
}

static void
describe(char *buf, size_t size, const struct ev *evs, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s@T%+lld", i ? ", " : "",
		                        tname(evs[i].type), (long long)(evs[i].time - T0));
}

/* Compare a view with the one wanted, naming the event list on failure. */
static int
view_is(const char *what, const struct status_view *got, const struct status_view *want)
{
	if (got->status == want->status && got->time_ms == want->time_ms &&
	    strcmp(got->delivered, want->delivered) == 0 &&
	    strcmp(got->displayed, want->displayed) == 0)
		return 1;
	print_error("%s: got {%s, T%+lld, delivered=%s, displayed=%s}, want {%s, T%+lld, "
	            "delivered=%s, displayed=%s}\n",
	            what, tname(got->status), (long long)(got->time_ms - T0), got->delivered,
	            got->displayed, tname(want->status), (long long)(want->time_ms - T0),
	            want->delivered, want->displayed);
	failures++;
	return 0;
}

static int
state_is(const char *what, const struct status_state *got, const struct status_state *want)
{
	if (got->dkey == want->dkey && got->rkey == want->rkey && got->xkey == want->xkey &&
	    got->copies == want->copies && got->displayed == want->displayed)
		return 1;
	print_error("%s: got state {dkey=%#llx, rkey=%#llx, xkey=%#llx, copies=%lld, "
	            "displayed=%d}, want {dkey=%#llx, rkey=%#llx, xkey=%#llx, copies=%lld, "
	            "displayed=%d}\n",
	            what, (unsigned long long)got->dkey, (unsigned long long)got->rkey,
	            (unsigned long long)got->xkey, (long long)got->copies, got->displayed,
	            (unsigned long long)want->dkey, (unsigned long long)want->rkey,
	            (unsigned long long)want->xkey, (long long)want->copies, want->displayed);
	failures++;
	return 0;
}

/* ---- tests ---- */

static void
test_axis(void **state)
{
	static const struct {
		enum msevent_type type;
		enum status_axis want;
	} cases[] = {
	        {MSEV_QUEUED, STATUS_AXIS_DELIVERY},  {MSEV_DEFERRED, STATUS_AXIS_DELIVERY},
	        {MSEV_RELAYED, STATUS_AXIS_DELIVERY}, {MSEV_DELIVERED, STATUS_AXIS_DELIVERY},
	        {MSEV_BOUNCED, STATUS_AXIS_DELIVERY}, {MSEV_EXPIRED, STATUS_AXIS_DELIVERY},
	        {MSEV_READ, STATUS_AXIS_READING},     {MSEV_UNREAD, STATUS_AXIS_READING},
	        {MSEV_DELETED, STATUS_AXIS_MAILBOX},  {MSEV_COPIED, STATUS_AXIS_MAILBOX},
	        {MSEV_EXPUNGED, STATUS_AXIS_MAILBOX},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(tname(cases[i].type), status_axis(cases[i].type), cases[i].want);
	check_done();
}

static void
test_key_round_trip(void **state)
{
	static const struct {
		int64_t in, want;
	} times[] = {
	        {0, 0},
	        {1, 1},
	        {999, 999},
	        {T0, T0},
	        {16725225600000LL, 16725225600000LL}, /* 2500-01-01 */
	        {253402300799999LL, TIME_MAX_MS},     /* 9999-12-31: past 2527, clamped */
	        {TIME_MAX_MS, TIME_MAX_MS},           /* year 2527 */
	        {TIME_MAX_MS + 1, TIME_MAX_MS},       /* clamped */
	        {INT64_MAX, TIME_MAX_MS},
	        {-1, 0}, /* before the epoch: clamped */
	        {INT64_MIN, 0},
	};

	for (int t = 1; t <= MSEV_STATUS_MAX; t++)
		for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
			int64_t key = status_key((enum msevent_type)t, times[i].in);
			char what[64];

			snprintf(what, sizeof(what), "%s at %lld", tname((enum msevent_type)t),
			         (long long)times[i].in);
			CHECK_INT(what, key > 0, 1);
			CHECK_INT(what, status_key_type(key), t);
			CHECK_INT(what, status_key_time(key), times[i].want);
		}
	check_done();
}

/* Keys order events the way the rules say, whatever the times. */
static void
test_key_order(void **state)
{
	static const enum msevent_type by_rank[] = {MSEV_QUEUED, MSEV_DEFERRED, MSEV_BOUNCED,
	                                            MSEV_RELAYED, MSEV_DELIVERED};

	for (size_t i = 0; i + 1 < sizeof(by_rank) / sizeof(by_rank[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "%s (latest) < %s (earliest)", tname(by_rank[i]),
		         tname(by_rank[i + 1]));
		CHECK_INT(what, status_key(by_rank[i], TIME_MAX_MS) < status_key(by_rank[i + 1], 0),
		          1);
	}
	CHECK_INT("expired ranks with bounced: later wins",
	          status_key(MSEV_EXPIRED, T0) < status_key(MSEV_BOUNCED, T0 + 1), 1);
	CHECK_INT("bounced ranks with expired: later wins",
	          status_key(MSEV_BOUNCED, T0) < status_key(MSEV_EXPIRED, T0 + 1), 1);
	CHECK_INT("an expunge's key is deleted's",
	          status_event_key(MSEV_EXPUNGED, T0) == status_key(MSEV_DELETED, T0), 1);
	CHECK_INT("copied has no key", status_event_key(MSEV_COPIED, T0) == 0, 1);
	CHECK_INT("same ms: unread beats read",
	          status_key(MSEV_UNREAD, T0) > status_key(MSEV_READ, T0), 1);
	check_done();
}

/* Every ordered pair of types, at equal and distinct times, in both orders. */
static void
test_every_pair_both_orders(void **state)
{
	static const int64_t dt[][2] = {{0, 0}, {0, 1}, {1, 0}, {0, 86400000}, {86400000, 0}};
	int pairs = 0;

	for (int a = 1; a <= MSEV_STATUS_MAX; a++)
		for (int b = 1; b <= MSEV_STATUS_MAX; b++)
			for (size_t k = 0; k < sizeof(dt) / sizeof(dt[0]); k++) {
				struct ev evs[2] = {{(enum msevent_type)a, T0 + dt[k][0]},
				                    {(enum msevent_type)b, T0 + dt[k][1]}};
				struct ev rev[2] = {evs[1], evs[0]};
				struct status_state s1 = {0}, s2 = {0}, s3 = {0};
				struct status_view v1, v2, want;
				char what[128];

				describe(what, sizeof(what), evs, 2);
				apply_all(&s1, evs, 2);
				apply_all(&s2, rev, 2);
				state_is(what, &s2, &s1);
				status_view(&s1, &v1);
				status_view(&s2, &v2);
				model_view(evs, 2, &want);
				view_is(what, &v1, &want);
				view_is(what, &v2, &want);
				/* replaying both, in yet another order, changes nothing */
				apply_all(&s3, rev, 2);
				apply_all(&s3, evs, 2);
				apply_all(&s3, rev, 2);
				state_is(what, &s3, &s1);
				pairs++;
			}
	CHECK_INT("pairs tried", pairs, 9 * 9 * 5);
	check_done();
}

static void
test_apply_twice_changes_nothing(void **state)
{
	static const int64_t times[] = {0, 1, T0, TIME_MAX_MS};

	for (int t = 1; t <= MSEV_STATUS_MAX; t++)
		for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
			struct status_state once = {0}, twice = {0};
			char what[64];

			snprintf(what, sizeof(what), "%s at %lld twice",
			         tname((enum msevent_type)t), (long long)times[i]);
			status_apply(&once, (enum msevent_type)t, times[i]);
			status_apply(&twice, (enum msevent_type)t, times[i]);
			status_apply(&twice, (enum msevent_type)t, times[i]);
			state_is(what, &twice, &once);
		}
	check_done();
}

#define MAXEV 6

static const struct scenario {
	const char *name;
	size_t n;
	struct ev evs[MAXEV];
	enum msevent_type want;
	int64_t want_time;
	const char *delivered, *displayed;
} scenarios[] = {
        {"no events", 0, {{0}}, MSEV_NONE, 0, "queued", "unknown"},
        {"queued", 1, {{MSEV_QUEUED, T0}}, MSEV_QUEUED, T0, "queued", "unknown"},
        {"deferred then relayed",
         2,
         {{MSEV_DEFERRED, T0}, {MSEV_RELAYED, T0 + 60000}},
         MSEV_RELAYED,
         T0 + 60000,
         "unknown",
         "unknown"},
        {"relayed then a late deferred (older event arrives last)",
         2,
         {{MSEV_RELAYED, T0 + 60000}, {MSEV_DEFERRED, T0}},
         MSEV_RELAYED,
         T0 + 60000,
         "unknown",
         "unknown"},
        {"relayed then a deferred stamped later still relayed",
         2,
         {{MSEV_RELAYED, T0}, {MSEV_DEFERRED, T0 + 60000}},
         MSEV_RELAYED,
         T0,
         "unknown",
         "unknown"},
        {"two deferrals: the later wins",
         2,
         {{MSEV_DEFERRED, T0}, {MSEV_DEFERRED, T0 + 300000}},
         MSEV_DEFERRED,
         T0 + 300000,
         "queued",
         "unknown"},
        {"two deferrals arriving in reverse: the later wins",
         2,
         {{MSEV_DEFERRED, T0 + 300000}, {MSEV_DEFERRED, T0}},
         MSEV_DEFERRED,
         T0 + 300000,
         "queued",
         "unknown"},
        {"queued, deferred",
         2,
         {{MSEV_QUEUED, T0}, {MSEV_DEFERRED, T0 + 1}},
         MSEV_DEFERRED,
         T0 + 1,
         "queued",
         "unknown"},
        {"deferred then bounced",
         2,
         {{MSEV_DEFERRED, T0}, {MSEV_BOUNCED, T0 + 1}},
         MSEV_BOUNCED,
         T0 + 1,
         "no",
         "unknown"},
        {"deferred then expired",
         3,
         {{MSEV_QUEUED, T0}, {MSEV_DEFERRED, T0 + 1}, {MSEV_EXPIRED, T0 + 2}},
         MSEV_EXPIRED,
         T0 + 2,
         "no",
         "unknown"},
        {"bounced then expired later: the later wins",
         2,
         {{MSEV_BOUNCED, T0}, {MSEV_EXPIRED, T0 + 5}},
         MSEV_EXPIRED,
         T0 + 5,
         "no",
         "unknown"},
        {"expired then bounced later: the later wins",
         2,
         {{MSEV_EXPIRED, T0}, {MSEV_BOUNCED, T0 + 5}},
         MSEV_BOUNCED,
         T0 + 5,
         "no",
         "unknown"},
        {"bounced and expired in the same ms: expired (higher code)",
         2,
         {{MSEV_BOUNCED, T0}, {MSEV_EXPIRED, T0}},
         MSEV_EXPIRED,
         T0,
         "no",
         "unknown"},
        {"delivered then a late queued",
         2,
         {{MSEV_DELIVERED, T0 + 10}, {MSEV_QUEUED, T0}},
         MSEV_DELIVERED,
         T0 + 10,
         "yes",
         "unknown"},
        {"relayed then delivered",
         2,
         {{MSEV_RELAYED, T0}, {MSEV_DELIVERED, T0 + 10}},
         MSEV_DELIVERED,
         T0 + 10,
         "yes",
         "unknown"},
        {"read before its delivered arrives",
         1,
         {{MSEV_READ, T0 + 10}},
         MSEV_READ,
         T0 + 10,
         "yes",
         "yes"},
        {"read, then the delivered arrives",
         3,
         {{MSEV_QUEUED, T0}, {MSEV_READ, T0 + 10}, {MSEV_DELIVERED, T0 + 5}},
         MSEV_READ,
         T0 + 10,
         "yes",
         "yes"},
        {"read over a bounced delivery axis: reading implies delivered",
         2,
         {{MSEV_BOUNCED, T0}, {MSEV_READ, T0 + 10}},
         MSEV_READ,
         T0 + 10,
         "yes",
         "yes"},
        {"unread after read",
         3,
         {{MSEV_DELIVERED, T0}, {MSEV_READ, T0 + 10}, {MSEV_UNREAD, T0 + 20}},
         MSEV_UNREAD,
         T0 + 20,
         "yes",
         "yes"},
        {"unread arriving before the older read",
         2,
         {{MSEV_UNREAD, T0 + 20}, {MSEV_READ, T0 + 10}},
         MSEV_UNREAD,
         T0 + 20,
         "yes",
         "yes"},
        {"read again after unread",
         3,
         {{MSEV_READ, T0 + 10}, {MSEV_UNREAD, T0 + 20}, {MSEV_READ, T0 + 30}},
         MSEV_READ,
         T0 + 30,
         "yes",
         "yes"},
        {"unread without any read",
         2,
         {{MSEV_DELIVERED, T0}, {MSEV_UNREAD, T0 + 20}},
         MSEV_UNREAD,
         T0 + 20,
         "yes",
         "unknown"},
        {"read and unread in the same ms: unread",
         2,
         {{MSEV_UNREAD, T0}, {MSEV_READ, T0}},
         MSEV_UNREAD,
         T0,
         "yes",
         "yes"},
        {"deleted after read",
         3,
         {{MSEV_DELIVERED, T0}, {MSEV_READ, T0 + 10}, {MSEV_DELETED, T0 + 20}},
         MSEV_DELETED,
         T0 + 20,
         "yes",
         "yes"},
        {"deleted unread",
         2,
         {{MSEV_DELIVERED, T0}, {MSEV_DELETED, T0 + 20}},
         MSEV_DELETED,
         T0 + 20,
         "yes",
         "unknown"},
        {"deleted, unread, read in the same ms: deleted",
         3,
         {{MSEV_READ, T0}, {MSEV_DELETED, T0}, {MSEV_UNREAD, T0}},
         MSEV_DELETED,
         T0,
         "yes",
         "yes"},
        {"deleted arriving before the read it follows",
         3,
         {{MSEV_DELETED, T0 + 20}, {MSEV_DELIVERED, T0}, {MSEV_READ, T0 + 10}},
         MSEV_DELETED,
         T0 + 20,
         "yes",
         "yes"},
        {"a replayed mix",
         6,
         {{MSEV_QUEUED, T0},
          {MSEV_DELIVERED, T0 + 5},
          {MSEV_QUEUED, T0},
          {MSEV_READ, T0 + 9},
          {MSEV_DELIVERED, T0 + 5},
          {MSEV_READ, T0 + 9}},
         MSEV_READ,
         T0 + 9,
         "yes",
         "yes"},
        {"a time before the epoch shows as the epoch",
         1,
         {{MSEV_QUEUED, -5000}},
         MSEV_QUEUED,
         0,
         "queued",
         "unknown"},
};

static void
test_scenarios(void **state)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *sc = &scenarios[i];
		struct status_state st = {0}, rev = {0};
		struct status_view got,
		        want = {sc->want, sc->want_time, sc->delivered, sc->displayed}, model;

		apply_all(&st, sc->evs, sc->n);
		status_view(&st, &got);
		view_is(sc->name, &got, &want);
		/* the model agrees with the hand-written expectation */
		model_view(sc->evs, sc->n, &model);
		view_is(sc->name, &model, &want);
		/* and the reverse order gives the same */
		for (size_t j = sc->n; j-- > 0;) {
			status_apply(&rev, sc->evs[j].type, sc->evs[j].time);
			status_count(&rev, sc->evs[j].copies);
		}
		state_is(sc->name, &rev, &st);
	}
	check_done();
}

/* The JMAP fields for each status reached by a single event. */
static void
test_jmap_mapping(void **state)
{
	static const struct {
		enum msevent_type type;
		const char *delivered, *displayed;
	} cases[] = {
	        {MSEV_QUEUED, "queued", "unknown"},
	        {MSEV_DEFERRED, "queued", "unknown"},
	        {MSEV_RELAYED, "unknown", "unknown"},
	        {MSEV_DELIVERED, "yes", "unknown"},
	        {MSEV_BOUNCED, "no", "unknown"},
	        {MSEV_EXPIRED, "no", "unknown"},
	        {MSEV_READ, "yes", "yes"},
	        {MSEV_UNREAD, "yes", "unknown"},
	        {MSEV_DELETED, "yes", "unknown"},
	};
	struct status_state empty = {0};
	struct status_view v;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct status_state st = {0};

		status_apply(&st, cases[i].type, T0);
		status_view(&st, &v);
		CHECK_INT(tname(cases[i].type), v.status, cases[i].type);
		CHECK_INT(tname(cases[i].type), v.time_ms, T0);
		CHECK_STR(tname(cases[i].type), v.delivered, cases[i].delivered);
		CHECK_STR(tname(cases[i].type), v.displayed, cases[i].displayed);
	}
	/* and after a read, every later reading status keeps displayed = yes */
	for (int t = MSEV_READ; t <= MSEV_DELETED; t++) {
		struct status_state st = {0};

		status_apply(&st, MSEV_READ, T0);
		status_apply(&st, (enum msevent_type)t, T0 + 1);
		status_view(&st, &v);
		CHECK_INT(tname((enum msevent_type)t), v.status, t);
		CHECK_STR(tname((enum msevent_type)t), v.displayed, "yes");
		CHECK_STR(tname((enum msevent_type)t), v.delivered, "yes");
	}
	status_view(&empty, &v);
	CHECK_INT("no events", v.status, MSEV_NONE);
	CHECK_INT("no events", v.time_ms, 0);
	CHECK_STR("no events", v.delivered, "queued");
	CHECK_STR("no events", v.displayed, "unknown");
	check_done();
}

/* A verified DSN's failed after relayed shows bounced; of a DSN's delivered and failed the
   later wins; the JMAP field follows (delivered yes, bounced no). */
static void
test_report_keys(void **state)
{
	static const struct {
		const char *name;
		enum msevent_type first;
		bool first_report;
		enum msevent_type second;
		bool second_report;
		enum msevent_type want;
		const char *delivered;
	} cases[] = {
	        {"DSN failed after relayed", MSEV_RELAYED, false, MSEV_BOUNCED, true, MSEV_BOUNCED,
	         "no"},
	        {"DSN delivered after relayed", MSEV_RELAYED, false, MSEV_DELIVERED, true,
	         MSEV_DELIVERED, "yes"},
	        {"DSN failed after DSN delivered", MSEV_DELIVERED, true, MSEV_BOUNCED, true,
	         MSEV_BOUNCED, "no"},
	        {"DSN delivered after DSN failed", MSEV_BOUNCED, true, MSEV_DELIVERED, true,
	         MSEV_DELIVERED, "yes"},
	        {"DSN delayed after relayed", MSEV_RELAYED, false, MSEV_DEFERRED, true,
	         MSEV_RELAYED, "unknown"},
	        {"a log's bounce before relayed", MSEV_BOUNCED, false, MSEV_RELAYED, false,
	         MSEV_RELAYED, "unknown"},
	        {"relayed after a DSN's failed", MSEV_BOUNCED, true, MSEV_RELAYED, false,
	         MSEV_BOUNCED, "no"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t k1 = cases[i].first_report ? status_report_key(cases[i].first, T0)
		                                   : status_event_key(cases[i].first, T0);
		int64_t k2 = cases[i].second_report ? status_report_key(cases[i].second, T0 + 1)
		                                    : status_event_key(cases[i].second, T0 + 1);
		struct status_state st = {0};
		struct status_view v;

		st.dkey = k1 > k2 ? k1 : k2;
		status_view(&st, &v);
		CHECK_INT(cases[i].name, v.status, cases[i].want);
		CHECK_STR(cases[i].name, v.delivered, cases[i].delivered);
		CHECK_INT(cases[i].name, status_key_type(status_report_key(cases[i].second, T0)),
		          cases[i].second);
	}
	/* only a bounce changes rank: every other status keeps its ordinary key */
	for (int t = MSEV_QUEUED; t <= MSEV_STATUS_MAX; t++)
		if (t != MSEV_BOUNCED)
			CHECK_INT(tname((enum msevent_type)t),
			          status_report_key((enum msevent_type)t, T0) ==
			                  status_event_key((enum msevent_type)t, T0),
			          1);
	check_done();
}

static void
test_merge(void **state)
{
	const struct ev evs[] = {{MSEV_QUEUED, T0},        {MSEV_DEFERRED, T0 + 1},
	                         {MSEV_DELIVERED, T0 + 2}, {MSEV_READ, T0 + 3},
	                         {MSEV_UNREAD, T0 + 4},    {MSEV_DEFERRED, T0 + 9}};
	size_t n = sizeof(evs) / sizeof(evs[0]);
	struct status_state all = {0}, empty = {0};

	apply_all(&all, evs, n);
	for (size_t cut = 0; cut <= n; cut++) {
		struct status_state a = {0}, b = {0}, ab, ba;
		char what[48];

		snprintf(what, sizeof(what), "split at %zu", cut);
		apply_all(&a, evs, cut);
		apply_all(&b, evs + cut, n - cut);
		ab = a;
		status_merge(&ab, &b);
		ba = b;
		status_merge(&ba, &a);
		state_is(what, &ab, &all);
		state_is(what, &ba, &all);
		status_merge(&ab, &ab); /* merging with itself changes nothing */
		state_is(what, &ab, &all);
	}
	{
		struct status_state x = all;
		status_merge(&x, &empty);
		state_is("merge with empty", &x, &all);
		x = empty;
		status_merge(&x, &all);
		state_is("merge into empty", &x, &all);
	}
	check_done();
}

static uint64_t
next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
shuffle(struct ev *evs, size_t n, uint64_t *seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(next_rand(seed) % i);
		struct ev tmp = evs[i - 1];
		evs[i - 1] = evs[j];
		evs[j] = tmp;
	}
}

/*
 * Random multisets (duplicates included, times from a small pool so that ties are common)
 * applied in random orders, replayed, and split and merged: always the model's answer.
 */
static void
test_random_multisets(void **state)
{
	static const int64_t pool[] = {T0, T0, T0 + 1, T0 + 2, T0 + 1000, T0 + 86400000};
	uint64_t seed = 20240229;
	int iters = 0;

	for (int iter = 0; iter < 5000 && failures == 0; iter++, iters++) {
		struct ev evs[24], perm[24];
		size_t n = 1 + (size_t)(next_rand(&seed) % 12);
		struct status_state s1 = {0}, s2 = {0}, s3 = {0}, half1 = {0}, half2 = {0};
		struct status_view v1, want;
		size_t cut;
		char what[512];

		for (size_t i = 0; i < n; i++) {
			/* the nine statuses, copied and expunged */
			int t = 1 + (int)(next_rand(&seed) % (MSEV_STATUS_MAX + 2));

			evs[i].type = t <= MSEV_STATUS_MAX       ? (enum msevent_type)t
			              : t == MSEV_STATUS_MAX + 1 ? MSEV_COPIED
			                                         : MSEV_EXPUNGED;
			evs[i].time = pool[next_rand(&seed) % (sizeof(pool) / sizeof(pool[0]))];
			evs[i].copies = status_copies(evs[i].type,
			                              next_rand(&seed) % 2 ? "dovecot" : "postfix");
		}
		/* duplicate some events: a replay carries the same type and time, and statusd
		   recognizes its id, so it is not counted again */
		for (size_t i = 0; i < n; i++) {
			evs[n + i] = evs[next_rand(&seed) % n];
			evs[n + i].copies = 0;
		}
		describe(what, sizeof(what), evs, n);
		model_view(evs, n, &want);

		apply_all(&s1, evs, n);
		status_view(&s1, &v1);
		view_is(what, &v1, &want);

		memcpy(perm, evs, sizeof(evs[0]) * 2 * n);
		shuffle(perm, 2 * n, &seed);
		apply_all(&s2, perm, 2 * n);
		state_is(what, &s2, &s1);

		shuffle(perm, 2 * n, &seed);
		cut = (size_t)(next_rand(&seed) % (2 * n + 1));
		apply_all(&half1, perm, cut);
		apply_all(&half2, perm + cut, 2 * n - cut);
		s3 = half2;
		status_merge(&s3, &half1);
		state_is(what, &s3, &s1);
	}
	CHECK_INT("iterations run", iters, 5000);
	check_done();
}

/* What each event counts: copies into a mailbox the plugin saw, and expunges. */
static void
test_copies(void **state)
{
	static const struct {
		enum msevent_type type;
		const char *source;
		int want;
	} cases[] = {
	        {MSEV_DELIVERED, "dovecot", 1}, {MSEV_DELIVERED, "postfix", 0},
	        {MSEV_DELIVERED, "api", 0},     {MSEV_DELIVERED, NULL, 0},
	        {MSEV_COPIED, "dovecot", 1},    {MSEV_EXPUNGED, "dovecot", -1},
	        {MSEV_DELETED, "dovecot", -1},  {MSEV_READ, "dovecot", 0},
	        {MSEV_UNREAD, "dovecot", 0},    {MSEV_QUEUED, "milter", 0},
	        {MSEV_RELAYED, "postfix", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "%s from %s", tname(cases[i].type),
		         cases[i].source ? cases[i].source : "(null)");
		CHECK_INT(what, status_copies(cases[i].type, cases[i].source), cases[i].want);
	}
	check_done();
}

/* One event of a mailbox scenario: what the plugin (or Postfix) reports. */
struct mev {
	enum msevent_type type;
	int64_t time;
	const char *source;
};

static const struct mailbox_case {
	const char *name;
	size_t n;
	struct mev evs[MAXEV];
	enum msevent_type want;
	int64_t want_time;
} mailbox_cases[] = {
        {"UID MOVE to Archive: copied, then the INBOX copy expunged",
         4,
         {{MSEV_QUEUED, T0, "milter"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_COPIED, T0 + 10, "dovecot"},
          {MSEV_EXPUNGED, T0 + 10, "dovecot"}},
         MSEV_DELIVERED,
         T0 + 1},
        {"read, then COPY + \\Deleted + EXPUNGE: still read",
         5,
         {{MSEV_DELIVERED, T0, "postfix"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_READ, T0 + 5, "dovecot"},
          {MSEV_COPIED, T0 + 10, "dovecot"},
          {MSEV_EXPUNGED, T0 + 20, "dovecot"}},
         MSEV_READ,
         T0 + 5},
        {"moved to the Trash, then the Trash emptied: deleted",
         5,
         {{MSEV_DELIVERED, T0, "postfix"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_COPIED, T0 + 10, "dovecot"},
          {MSEV_EXPUNGED, T0 + 11, "dovecot"},
          {MSEV_EXPUNGED, T0 + 30, "dovecot"}},
         MSEV_DELETED,
         T0 + 30},
        {"Sieve fileinto and keep: two copies, one expunged",
         4,
         {{MSEV_DELIVERED, T0, "postfix"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_EXPUNGED, T0 + 30, "dovecot"}},
         MSEV_DELIVERED,
         T0 + 1},
        {"Postfix's delivered is no copy: one expunge deletes",
         3,
         {{MSEV_DELIVERED, T0, "postfix"},
          {MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_EXPUNGED, T0 + 30, "dovecot"}},
         MSEV_DELETED,
         T0 + 30},
        {"an older plugin's deleted is an expunge",
         3,
         {{MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_READ, T0 + 2, "dovecot"},
          {MSEV_DELETED, T0 + 30, "dovecot"}},
         MSEV_DELETED,
         T0 + 30},
        {"copied back out of the Trash after an expunge: not deleted",
         5,
         {{MSEV_DELIVERED, T0 + 1, "dovecot"},
          {MSEV_COPIED, T0 + 10, "dovecot"},
          {MSEV_EXPUNGED, T0 + 11, "dovecot"},
          {MSEV_COPIED, T0 + 20, "dovecot"},
          {MSEV_EXPUNGED, T0 + 21, "dovecot"}},
         MSEV_DELIVERED,
         T0 + 1},
        {"an expunge without the delivery seen: deleted",
         2,
         {{MSEV_RELAYED, T0, "postfix"}, {MSEV_EXPUNGED, T0 + 30, "dovecot"}},
         MSEV_DELETED,
         T0 + 30},
};

/* Next permutation of idx[0..n) in lexicographic order; 0 after the last. */
static int
next_perm(size_t *idx, size_t n)
{
	size_t i = n - 1, j = n - 1;

	while (i > 0 && idx[i - 1] >= idx[i])
		i--;
	if (i == 0)
		return 0;
	while (idx[j] <= idx[i - 1])
		j--;
	size_t t = idx[i - 1];
	idx[i - 1] = idx[j];
	idx[j] = t;
	for (size_t a = i, b = n - 1; a < b; a++, b--) {
		t = idx[a];
		idx[a] = idx[b];
		idx[b] = t;
	}
	return 1;
}

/* Each mailbox scenario in every order of its events: the same state and the same status,
   the one written down and the model's. */
static void
test_mailbox_every_order(void **state)
{
	size_t orders = 0;

	for (size_t c = 0; c < sizeof(mailbox_cases) / sizeof(mailbox_cases[0]); c++) {
		const struct mailbox_case *mc = &mailbox_cases[c];
		struct ev evs[MAXEV];
		size_t idx[MAXEV];
		struct status_state first = {0};
		struct status_view want = {mc->want, mc->want_time, "yes", "unknown"}, model;
		int perm = 0;

		for (size_t i = 0; i < mc->n; i++) {
			evs[i].type = mc->evs[i].type;
			evs[i].time = mc->evs[i].time;
			evs[i].copies = status_copies(mc->evs[i].type, mc->evs[i].source);
			idx[i] = i;
			if (evs[i].type == MSEV_READ)
				want.displayed = "yes";
		}
		model_view(evs, mc->n, &model);
		view_is(mc->name, &model, &want);
		do {
			struct status_state st = {0};
			struct status_view got;
			char what[160];

			for (size_t i = 0; i < mc->n; i++) {
				status_apply(&st, evs[idx[i]].type, evs[idx[i]].time);
				status_count(&st, evs[idx[i]].copies);
			}
			snprintf(what, sizeof(what), "%s, order %d", mc->name, perm);
			status_view(&st, &got);
			view_is(what, &got, &want);
			if (perm == 0)
				first = st;
			else
				state_is(what, &st, &first);
			perm++;
			orders++;
		} while (next_perm(idx, mc->n));
	}
	CHECK_INT("orders tried", (int)orders, 24 + 120 + 120 + 24 + 6 + 6 + 120 + 2);
	check_done();
}

static void
key_of_none(void)
{
	(void)status_key(MSEV_NONE, T0);
}

static void
key_of_ten(void)
{
	(void)status_key((enum msevent_type)(MSEV_STATUS_MAX + 1), T0);
}

static void
test_bad_type_panics(void **state)
{
	char log[1024];
	int status;

	status = run_child(key_of_none, log, sizeof(log));
	CHECK_INT("status_key(MSEV_NONE)", WIFSIGNALED(status) ? WTERMSIG(status) : -1, SIGABRT);
	CHECK_INT("status_key(MSEV_NONE) log", strstr(log, "status_key: bad type 0") != NULL, 1);
	status = run_child(key_of_ten, log, sizeof(log));
	CHECK_INT("status_key(10)", WIFSIGNALED(status) ? WTERMSIG(status) : -1, SIGABRT);
	CHECK_INT("status_key(10) log", strstr(log, "status_key: bad type 10") != NULL, 1);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_axis),
	        cmocka_unit_test(test_key_round_trip),
	        cmocka_unit_test(test_key_order),
	        cmocka_unit_test(test_every_pair_both_orders),
	        cmocka_unit_test(test_apply_twice_changes_nothing),
	        cmocka_unit_test(test_scenarios),
	        cmocka_unit_test(test_jmap_mapping),
	        cmocka_unit_test(test_report_keys),
	        cmocka_unit_test(test_merge),
	        cmocka_unit_test(test_random_multisets),
	        cmocka_unit_test(test_copies),
	        cmocka_unit_test(test_mailbox_every_order),
	        cmocka_unit_test(test_bad_type_panics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
