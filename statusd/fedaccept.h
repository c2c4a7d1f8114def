/*
 * fedaccept - the decisions of statusd's report endpoint (docs/federation.md, "Receiving a
 * report"), without I/O: which error a failed check gets, whether a report's claims fit
 * its signature, what becomes of each event, and the rate limits per reporting domain and
 * per client address. fedin.c does the I/O around them (HTTP, DNS, PostgreSQL, the ingest).
 *
 * DESIGN
 *	Pure functions and one small table (the rate buckets, owned by its caller and used by
 *	one thread). The error table is the protocol's list of failures: each has an HTTP
 *	status and a stable code that a sender acts on.
 *
 * SECURITY
 *	The report is untrusted and has been decoded by mimistatus.c; the reporting domain is
 *	the one the signature's keyid names, verified before anything here reads the report.
 *	Order of the claims (fedaccept_claims): the report's domain equals the keyid's domain,
 *	then every event's recipient is an address in that domain. Per event (fedaccept_event):
 *	the status code, then the time. Whether this site sent that message to that recipient
 *	is the caller's lookup (store_fed.h), made only for an event that passed both; for a
 *	message it does not know at all, fedaccept_unknown() says whether to refuse the event
 *	or answer it "later" (to be sent again).
 *
 * DIAGNOSTICS
 *	Functions return an enum fedin_err (FEDIN_OK or the failure), with a static detail text
 *	in *detail_r where one helps.
 */
#ifndef FEDACCEPT_H
#define FEDACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mimistatus_report;
struct httpsig_params;

/* The failures of a report as a whole (docs/federation.md, "Errors"). */
enum fedin_err {
	FEDIN_OK = 0,
	FEDIN_DISABLED,          /* 404 the site takes no reports */
	FEDIN_CONTENT_TYPE,      /* 415 */
	FEDIN_TOO_LARGE,         /* 413 */
	FEDIN_MALFORMED,         /* 400 the body does not decode as a report */
	FEDIN_SIGNATURE_MISSING, /* 401 */
	FEDIN_SIGNATURE_INVALID, /* 401 unparsable, or does not verify */
	FEDIN_PROFILE,           /* 401 the signature is not of the federation's profile */
	FEDIN_STALE,             /* 401 created in the future, expired, or too long-lived */
	FEDIN_DIGEST,            /* 401 Content-Digest does not match the body */
	FEDIN_KEY_UNKNOWN,       /* 403 no usable MSK1 record at the keyid */
	FEDIN_KEY_REVOKED,       /* 403 the MSK1 record has an empty p= */
	FEDIN_DOMAIN_MISMATCH,   /* 403 the report's domain is not the keyid's */
	FEDIN_RECIPIENT_DOMAIN,  /* 403 an event's recipient is not in the reporting domain */
	FEDIN_REPLAY,            /* 409 */
	FEDIN_RATE_LIMITED,      /* 429 (Retry-After) */
	FEDIN_DNS_UNAVAILABLE,   /* 503 (Retry-After) */
	FEDIN_DB_UNAVAILABLE,    /* 503 (Retry-After) */
	FEDIN_BUSY,              /* 503 (Retry-After) too many reports waiting to be checked */
	FEDIN_CLIENT_LIMITED,    /* 429 (Retry-After) too many reports from this client address */
	FEDIN_ERR_MAX
};

struct fedin_errinfo {
	unsigned status;   /* HTTP status */
	const char *code;  /* the problem document's "code", e.g. "replay" */
	const char *title; /* its "title" */
};

/* The status, code and title of an error (FEDIN_OK: 200, "ok"). */
const struct fedin_errinfo *fedin_errinfo(enum fedin_err err);

/* Whether a Content-Type value is the report's media type (case-insensitive, no
   parameters). */
bool fedaccept_content_type_ok(const char *value);

/*
 * Which check failed, after httpsig_verify() did not return 0: key_called and
 * replay_called say how far it came (the key and replay callbacks ran and succeeded),
 * params is what httpsig_parse() made of the fields, or NULL when they did not parse (a
 * parsed signature that never reached the key lookup failed the profile). The key and
 * replay callbacks' own failures are theirs to report.
 */
enum fedin_err fedaccept_verify_failure(const struct httpsig_params *params, bool key_called,
                                        bool replay_called, int64_t now, int64_t skew,
                                        int64_t max_life);

/* The components every report's signature covers (docs/federation.md, "Signatures"). */
#define FEDACCEPT_NREQUIRED 4
extern const char *const fedaccept_required[FEDACCEPT_NREQUIRED];

/*
 * The checks of a parsed signature (httpsig_parse) that cost nothing, made before the
 * report waits for its key: the profile (alg ed25519; the required components covered and
 * no component other than @method, @target-uri, @authority, @path, content-type and
 * content-digest, the ones the receiver rebuilds; created, expires, keyid and nonce
 * present; keyid of the form <selector>._msgstatus-key.<domain>), then freshness at now
 * (seconds since the epoch) as httpsig_verify() judges it. FEDIN_OK, FEDIN_PROFILE or
 * FEDIN_STALE with a static *detail_r.
 */
enum fedin_err fedaccept_precheck(const struct httpsig_params *p, int64_t now, int64_t skew,
                                  int64_t max_life, const char **detail_r);

/* The report's claims against the keyid's domain (see SECURITY). */
enum fedin_err fedaccept_claims(const struct mimistatus_report *report, const char *key_domain,
                                const char **detail_r);

/* Whether recipient is an address in domain: the part after its last '@' equals domain
   (ASCII case-insensitive), and the local part is not empty. */
bool fedaccept_recipient_in(const char *recipient, const char *domain);

/* What becomes of one event. */
enum fedaccept_verdict {
	FEDACCEPT_STORE,  /* a status this site stores */
	FEDACCEPT_IGNORE, /* a code this site does not store (3, 5..255): acknowledged */
	FEDACCEPT_REFUSE, /* not acceptable (its time): refused, not to be sent again */
	FEDACCEPT_LATER,  /* about a message this site may not know yet: answered "later" */
};

/*
 * The verdict for an event with MIMI status code and time time_ms, at now_ms, with the
 * event retention of this site; *type_r is the event type's wire name ("delivered",
 * "read", "unread", "deleted") for FEDACCEPT_STORE.
 */
enum fedaccept_verdict fedaccept_event(unsigned code, int64_t time_ms, int64_t now_ms,
                                       int64_t retention_ms, const char **type_r);

/*
 * The verdict for an event about a message this site does not know at all (no message
 * with its msgid, whatever the recipient), with the event's time time_ms, at now_ms, for
 * a statusd that started at started_ms (all ms since the epoch): FEDACCEPT_LATER while
 * the message may still arrive, that is while the later of min(time_ms, now_ms) and
 * started_ms is less than window_ms ago (this site's own event of the message may still
 * be on its way to the ingest: the milter hands it over asynchronously, and after a start
 * the spool is read again), else FEDACCEPT_REFUSE. An event ahead of this clock counts
 * as one of now, and one more than window_ms ahead is refused: so an event comes back
 * "later" for at most twice window_ms. window_ms 0 refuses at once. Only for an event
 * fedaccept_event() would store: its code and time are judged first.
 */
enum fedaccept_verdict fedaccept_unknown(int64_t time_ms, int64_t now_ms, int64_t started_ms,
                                         int64_t window_ms);

/* The id an event of domain with the domain's event_id is stored under in the event log:
   "fed-" and 40 hex digits of SHA-256(domain 0x00 event_id), into buf (45 bytes). */
#define FEDACCEPT_STORED_ID_LEN 44
void fedaccept_stored_id(const char *domain, const char *event_id, char *buf);

/* --- rate limits per reporting domain and per client ---------------------------------- */

/*
 * A token bucket per charged domain (fedrate_charged), burst reports at once, refilled at
 * rate per second, and one over all domains together with FEDRATE_ALL_FACTOR times both.
 * A report is taken when both buckets have a token, and then costs one of each. At most
 * FEDRATE_DOMAINS_MAX buckets are kept, in a list by last use: for a new one the least
 * recently used is forgotten if it is full again (idle: a new bucket starts full, so that
 * loses nothing); if it is not, the new key is charged to one overflow bucket (the same
 * rate and burst) that all such keys share, so that many new keys get no more than one.
 * Finding a bucket, and room for one, is O(1).
 */
#define FEDRATE_ALL_FACTOR  10
#define FEDRATE_DOMAINS_MAX 4096

struct fedrate;

struct fedrate *fedrate_new(double rate, double burst);
/* The same buckets per client (fedaccept_client_key), charged by the key as it is, and
   without the bucket over all of them: for fedrate_take() before any other check. */
struct fedrate *fedrate_new_clients(double rate, double burst);
void fedrate_free(struct fedrate **r);
/* May domain send a report now (now_ms, a monotonic clock)? If so one is taken; if not,
 *retry_s says in how many seconds to try again. */
bool fedrate_take(struct fedrate *r, const char *domain, int64_t now_ms, int *retry_s);
/* The domain whose bucket a report of domain is charged to: its last two labels (a
   sender chooses its subdomains freely; without a public suffix list, a domain under a
   two-label public suffix such as co.uk shares that suffix's bucket). Points into domain. */
const char *fedrate_charged(const char *domain);

/* The key a client address is limited by, into buf (FEDACCEPT_CLIENT_KEY_MAX bytes): an
   IPv4 address as text (also one mapped into IPv6), of IPv6 its /64 ("2001:db8:0:1::/64",
   the smallest block a site is given). -1 for another family. */
#define FEDACCEPT_CLIENT_KEY_MAX 64
int fedaccept_client_key(const struct sockaddr *addr, char *buf);

#endif
