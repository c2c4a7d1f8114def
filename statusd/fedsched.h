/*
 * fedsched - the decisions of statusd's federation sender (fedout.c), without its I/O:
 * how a destination's waiting rows are cut into reports, what an answer means for them,
 * when a destination is tried again, and the pace of reports to one destination.
 *docs/federation.md, "Sending a report" and "Receiving a report", is the contract.
 *
 * DESIGN
 *	Pure functions; randomness (the jitter) comes in as an argument so that tests can
 *	drive every case.
 *
 * SECURITY
 *	The answer's status, Retry-After and body come from the destination: untrusted. Only
 *	the status code, a bounded JSON object of three counts (a 200), the "code" of a
 *	bounded problem document (a 4xx: at most FEDSCHED_CODE_MAX of [a-z0-9-]) and
 *	Retry-After are read; a 200 whose counts do not add up to the report's events is not
 *	taken for an acknowledgement, and a 4xx is sent again only for the (status, code)
 *	pairs docs/federation.md's "Answers" table says, anything else is final.
 *
 * DIAGNOSTICS
 *	fedsched_answer() returns a one-line reason (static or errfmt text) in *why_r.
 */
#ifndef FEDSCHED_H
#define FEDSCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEDSCHED_BACKOFF_MIN_MS 1000  /* first retry of a destination */
#define FEDSCHED_LATER_MS       1000  /* an event answered "later" goes again after this, */
#define FEDSCHED_LATER_MAX_MS   60000 /* or after a quarter of its age in the outbox, up to this */
/* bytes of an answer's body read: a 200 naming 1000 events of 64-byte ids "later" fits */
#define FEDSCHED_ANSWER_MAX (128 * 1024)

enum fedsched_outcome {
	FEDSCHED_DONE,    /* every event committed, known or refused for good: delete the rows */
	FEDSCHED_RETRY,   /* keep the rows, try the destination again later */
	FEDSCHED_REFUSED, /* the report is refused: the rows fail */
	FEDSCHED_SPLIT,   /* 413: too large for the receiver; send its rows in smaller reports */
};

#define FEDSCHED_CODE_MAX 32 /* bytes of a problem document's "code" */

/*
 * The "code" of a problem document (RFC 9457, docs/federation.md "Answers"): a JSON object,
 * the whole body, at most 4096 bytes, nested at most 4 deep, whose "code" is a
 * string of 1 to FEDSCHED_CODE_MAX of [a-z0-9-]. 0 with it in code (size bytes, NUL-terminated), or
 * -1 (code "") for anything else.
 */
int fedsched_problem_code(const char *body, size_t len, char *code, size_t size);

/*
 * What an answer means for a report of nevents events. status 0: no answer (timeout,
 * connection or TLS error). body (len bytes, may be NULL) is the answer's body. A 4xx is
 * REFUSED unless its problem document's code is one the receiver's table says to send
 * again (401 stale, 401 digest-mismatch, 403 key-unknown, 409 replay): RETRY.
 */
enum fedsched_outcome fedsched_answer(long status, const char *body, size_t len, size_t nevents,
                                      const char **why_r);

/*
 * The event ids a 200 answer to a report of nevents events names in its "later" list
 * (docs/federation.md, "Answers"): events about a message the receiver does not know yet,
 * which the answer counts as refused, for a sender that reads only the counts. A sender
 * that reads the list keeps those rows and sends them again after FEDSCHED_LATER_MS (or a
 * quarter of the row's age, up to FEDSCHED_LATER_MAX_MS: a receiver that answers "later"
 * for ever gets such a row about once a minute, until federation_expiry),
 * without counting a failure of the destination. Their number, and *ids_r a new array of
 * new strings (fedsched_later_free), or 0 (and NULL) when the answer has no list or one
 * that is not an array of at most nevents strings of 1 to 64 bytes each: then all the
 * report's rows are done, as for an older receiver.
 */
size_t fedsched_later(const char *body, size_t len, size_t nevents, char ***ids_r);
void fedsched_later_free(char **ids, size_t n);

/* A Retry-After value (delta-seconds or an IMF-fixdate) in ms from now_ms; -1 if absent,
   invalid or a wait of over a year; 0 for a date in the past. */
int64_t fedsched_retry_after(const char *value, int64_t now_ms);

/*
 * The wait before the next try after failures failed attempts in a row (>= 1): base_ms
 * doubled per failure, at most cap_ms, then jittered into [d/2, d) by r in [0, 1). A
 * Retry-After (retry_after_ms >= 0) is honoured when longer, still at most cap_ms.
 */
int64_t fedsched_backoff(unsigned failures, int64_t base_ms, int64_t cap_ms, double r,
                         int64_t retry_after_ms);

/*
 * The pace of reports to one destination: a token bucket of burst reports, refilled at
 * rate a second (federation_send_rate, federation_send_burst). A report goes when the
 * bucket holds a token, and takes one. So the first events after a quiet spell go at
 * once, each in a report of its own, and a destination sent to faster than rate for
 * longer than burst gets one report per 1/rate s with everything that waited meanwhile.
 * A destination not remembered has a full bucket. Times are ms of a monotonic clock.
 */
struct fedsched_pace {
	double tokens; /* at at_ms */
	int64_t at_ms;
};

/* The ms until a report may go (0: now). */
int64_t fedsched_pace_wait(const struct fedsched_pace *p, int64_t now_ms, double rate,
                           double burst);
/* A report went at now_ms: one token less (p->at_ms 0: it was full). */
void fedsched_pace_take(struct fedsched_pace *p, int64_t now_ms, double rate, double burst);
/* Is the bucket full again at now_ms (nothing left to remember)? */
bool fedsched_pace_full(const struct fedsched_pace *p, int64_t now_ms, double rate, double burst);

/* Of n waiting rows (in id order) with these reporting domains, how many go in the first
   report: those up to the first row of another reporter, at most max. */
size_t fedsched_cut(const char *const *reporters, size_t n, size_t max);

#endif
