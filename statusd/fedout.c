/*
 * fedout - statusd's federation report sender. See fedout.h and docs/federation.md.
 *
 * DESIGN
 *	One thread of its own, all of it blocking and none of it on the event loop, with its
 *	own PostgreSQL connection (LISTEN msgstatus_outbox, which the ingest's outbox step
 *	notifies) and its own libcurl handle. A round:
 *
 *	    once a minute: drop the rows older than federation_expiry (counted as expired
 *	        if still waiting; a destination's own are dropped before it is served)
 *	    for each destination with waiting rows, no backoff now (fed_peers.next_try) and
 *	    a token in its pace bucket (fedsched_pace: federation_send_rate reports a
 *	    second, federation_send_burst at once; kept here, in memory):
 *	        read its first rows in id order; the report is the longest run of them with
 *	            one reporting domain (the recipients' domain), at most 1000, and of those
 *	            as many as encode in federation_report_max bytes (60 KiB by default: a
 *	            receiver takes 64 KiB by default); a reporting domain without a signing
 *	            key is skipped (its rows wait, read again without them) so that it holds
 *	            up no other
 *	        find its endpoint: _msgstatus.<destination> TXT (fedrec's MSR1 parser) through
 *	            federation/resolver, cached for the record's TTL
 *	        encode the wrapped MIMI report (mimistatus), sign the POST (httpsig, the
 *	            reporting domain's signing key from federation_key_dir, fedkeys), POST it
 *	        decide by the answer (fedsched_answer): acknowledged -> the rows go but those
 *	            the 200 names "later" (fedsched_later), which stay with a not_before
 *	            FEDSCHED_LATER_MS ahead, or a quarter of their age up to
 *	            FEDSCHED_LATER_MAX_MS (no failure; the rows after them may go); retry ->
 *	            the rows stay, the destination waits (fedsched_backoff) and nothing else
 *	            of it goes before them; refused -> the rows fail (kept for statusctl until
 *	            they expire), the next rows may go; 413 (too large) -> the rows stay
 *	            and go again, as the pace lets them, in reports of half as many events
 *	            (down to one)
 *	        and go on with the destination's next rows while it acknowledges and its
 *	        pace lets them
 *	    wait for a notification (then federation_batch_delay more, 0 by default; a
 *	    round starts at most every ROUND_GAP_MS), the earliest end of a pace, a
 *	    backoff or a "later" row's not_before, or POLL_MS
 *
 *	So a new event goes at once while its destination's bucket holds a token, and a
 *	destination sent to faster than federation_send_rate for long gets one report per
 *	1/federation_send_rate s with all that waited (up to 1000 events). The defaults (10
 *	a second, 20 at once) stay within a receiver's default federation_rate and
 *	federation_burst (10, 50), so that such a receiver never answers 429.
 *
 *	Destinations are served one after another: one that does not answer holds the others
 *	up for at most federation_timeout per round, then waits out its backoff without them.
 *	Rows are read again from the database each round, so a restart, a second statusd
 *	(each row's fate is written by id) or a database outage loses nothing: delivery is at
 *	least once, and the receiver drops duplicates by event id.
 *
 *	Stopping: fedout_stop() sets a flag and writes to a pipe the thread polls; a request
 *	in flight sees the flag in libcurl's progress callback and is aborted; its rows stay.
 *
 * SECURITY
 *	The DNS record is parsed strictly (fedrec) before its URL is used: https only, no
 *	redirects followed, TLS verification always on (federation_ca_file may name the CA
 *	file). The answer is untrusted: its status, Retry-After and at most 128 KiB of
 *	its body are read (fedsched). Private keys are read from federation_key_dir for each
 *	report (fedkeys checks them against the index) and never logged. Texts from the peer
 *	or libcurl are cleaned (msg_clean) before they are logged or stored.
 *
 * DIAGNOSTICS
 *	A destination's trouble is logged when its state changes (the first failure of a
 *	streak, a refusal, the success after failures), not at every retry, and so is a
 *	reporting domain's missing signing key (when first seen, and when it signs again); the
 *	counters go to GET /metrics, the state per destination to fed_peers (statusctl
 *	federation peers).
 */
#include "fedout.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fedkeys.h"
#include "fedrec.h"
#include "fedsched.h"
#include "httpsig.h"
#include "mbuf.h"
#include "mimistatus.h"
#include "msg.h"
#include "mymalloc.h"
#include "randid.h"
#include "resolver.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"

#define POLL_MS            5000  /* look at the outbox even without a notification */
#define DB_BACKOFF_MIN_MS  100   /* first reconnect */
#define CONNECT_TIMEOUT_MS 15000 /* PostgreSQL */
#define REPORTS_PER_ROUND  16    /* per destination, before the others get their turn */
#define SIG_LIFE_S         300   /* expires - created */
#define NEGATIVE_TTL_MS    60000
#define EXPIRE_EVERY_MS    60000 /* how often expired rows are looked for */
#define ROUND_GAP_MS       10    /* a notification starts a round at most this often */
#define CLOCK_SLACK_MS     60000 /* between this clock and the database's */
#define USER_AGENT         "msgstatus-statusd/" MSGSTATUS_VERSION " (federation)"
#define CONTENT_TYPE       "application/vnd.msgstatus.report+cbor"

struct fedout {
	const struct sd_config *cfg;
	struct resolver *resolver;
	int wake[2];
	atomic_bool stopping;
	pthread_t thread;
	bool started;

	/* the thread's own */
	PGconn *conn;
	bool db_trouble;
	long long db_backoff;
	int64_t expired_at; /* when expired rows were last looked for (monotonic) */
	CURL *curl;
	char curl_error[CURL_ERROR_SIZE];
	struct mbuf answer;
	char retry_after[64];
	struct keyless *keyless; /* reporting domains whose rows wait for a signing key */
	char **skip;             /* those skipped at the destination being served */
	size_t nskip;
	struct paced *paced; /* destinations whose pace bucket is not full */
	size_t npaced;
	int64_t round_ms; /* when the last round started (monotonic) */

	/* counters, read by fedout_stats() from any thread */
	atomic_uint_least64_t reports_sent, events_sent, reports_retried, reports_refused,
	        events_refused, events_expired, reports_split, events_later;
	atomic_int_least64_t depth, failing, keyless_n;
};

/* A reporting domain that could not sign (key_find) when last seen, logged once. */
struct keyless {
	char *domain;
	int64_t seen_ms; /* monotonic */
	struct keyless *next;
};

/* A destination sent to lately: its pace (fedsched_pace). */
struct paced {
	char *destination;
	struct fedsched_pace pace;
};

/* What one report attempt came to. */
struct attempt {
	enum fedsched_outcome outcome;
	char why[256]; /* cleaned, one line */
	char endpoint[FEDREC_URL_MAX + 1];
	int64_t retry_after_ms; /* -1: none */
	bool no_key;            /* the reporting domain cannot sign now: skip it */
	bool posted;            /* a request went out, at posted_ms (monotonic) */
	int64_t posted_ms;
};

static bool
stopping(const struct fedout *f)
{
	return atomic_load(&f->stopping);
}

/* store_connect()'s question */
static bool
stop_asked(const void *arg)
{
	return atomic_load(&((const struct fedout *)arg)->stopping);
}

/* --- waiting and the database ------------------------------------------------------- */

/* Consume notifications; 1 if there was one, 0 if not, -1 if the connection broke. */
static int
drain(struct fedout *f)
{
	PGnotify *n;
	int news = 0;

	if (!PQconsumeInput(f->conn))
		return -1;
	while ((n = PQnotifies(f->conn)) != NULL) {
		news = 1;
		PQfreemem(n);
	}
	return news;
}

/* Wait up to ms for stopping or (wake_on_news) a notification. 1 news, 0 none, -1 broken. */
static int
fed_wait(struct fedout *f, long long ms, bool wake_on_news)
{
	int64_t deadline = time_mono_ms() + ms, left;

	for (;;) {
		struct pollfd pfd[2] = {{f->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
		int r = 0;

		if (f->conn != NULL && (r = drain(f)) < 0)
			return -1;
		if (r > 0 && wake_on_news)
			return 1;
		if (stopping(f) || (left = deadline - time_mono_ms()) <= 0)
			return 0;
		if (f->conn != NULL)
			pfd[1].fd = PQsocket(f->conn);
		if (poll(pfd, f->conn != NULL ? 2 : 1, (int)left) < 0 && errno != EINTR)
			msg_panic("federation: poll: %s", strerror(errno));
	}
}

static void
db_trouble(struct fedout *f, const char *error)
{
	if (!f->db_trouble && !stopping(f)) {
		msg_warn("federation: database unavailable: %s", error);
		f->db_trouble = true;
	}
	if (f->conn != NULL)
		PQfinish(f->conn);
	f->conn = NULL;
	f->db_backoff = f->db_backoff == 0 ? DB_BACKOFF_MIN_MS : f->db_backoff * 2;
	if (f->db_backoff > f->cfg->database_retry_max)
		f->db_backoff = f->cfg->database_retry_max;
	(void)fed_wait(f, f->db_backoff, false);
}

/* Connect without blocking past a stop; set the session up. */
static int
db_open(struct fedout *f, const char **error_r)
{
	bool ready = false;

	if (store_connect(f->cfg->database, f->wake[0], stop_asked, f, CONNECT_TIMEOUT_MS, &f->conn,
	                  error_r) < 0)
		return -1;
	if (store_fedout_session(f->conn, error_r) < 0)
		return -1;
	/* the ingest worker migrates: until the outbox is there, there is nothing to send */
	if (store_outbox_available(f->conn, &ready, error_r) < 0)
		return -1;
	if (!ready) {
		*error_r = "the database has no federation outbox yet (schema 011)";
		return -2;
	}
	return 0;
}

/* --- one report -------------------------------------------------------------------- */

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct fedout *f = ctx;
	size_t n = size * nmemb;

	if (f->answer.len < FEDSCHED_ANSWER_MAX)
		mbuf_append(&f->answer, data,
		            n < FEDSCHED_ANSWER_MAX - f->answer.len
		                    ? n
		                    : FEDSCHED_ANSWER_MAX - f->answer.len);
	return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct fedout *f = ctx;
	size_t n = size * nmemb, len = n;
	static const char name[] = "retry-after:";

	if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		const char *v = data + sizeof(name) - 1;
		len -= sizeof(name) - 1;
		while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
			len--;
		if (len < sizeof(f->retry_after)) {
			memcpy(f->retry_after, v, len);
			f->retry_after[len] = '\0';
		}
	}
	return n;
}

static int
on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return stopping(ctx) ? 1 : 0; /* non-zero: abort; the rows stay */
}

static void attempt_set(struct attempt *a, enum fedsched_outcome outcome, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
attempt_set(struct attempt *a, enum fedsched_outcome outcome, const char *fmt, ...)
{
	char raw[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	a->outcome = outcome;
	msg_clean(a->why, sizeof(a->why), raw, strlen(raw));
}

/* The destination's endpoint (u= of its MSR1 record) into a->endpoint; -1 with a set. */
static int
endpoint_find(struct fedout *f, const char *destination, struct attempt *a)
{
	char name[FEDREC_NAME_MAX];
	struct fedrec_msr rec;
	struct dns_txt *t;
	const char *error = NULL;
	int i;

	if (fedrec_msr_name(destination, name, &error) < 0) {
		attempt_set(a, FEDSCHED_REFUSED, "%s: %s", destination, error);
		return -1;
	}
	t = resolver_txt(f->resolver, name, &error);
	switch (t->status) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		attempt_set(a, FEDSCHED_REFUSED, "%s publishes no report endpoint (%s TXT)",
		            destination, name);
		dns_txt_free(&t);
		return -1;
	default:
		attempt_set(a, FEDSCHED_RETRY, "%s TXT: %s", name, error ? error : "no answer");
		dns_txt_free(&t);
		return -1;
	}
	if ((i = fedrec_select(FEDREC_MSR, (const char *const *)t->data, t->len, t->n, &error)) <
	            0 ||
	    fedrec_parse_msr(t->data[i], t->len[i], &rec, &error) < 0) {
		attempt_set(a, FEDSCHED_REFUSED, "%s TXT: %s", name, error);
		dns_txt_free(&t);
		return -1;
	}
	dns_txt_free(&t);
	snprintf(a->endpoint, sizeof(a->endpoint), "%s", rec.url);
	return 0;
}

/* The reporting domain's signing key and its key id; -1 with a set. */
static int
key_find(struct fedout *f, const char *domain, EVP_PKEY **key_r, char *keyid, struct attempt *a)
{
	struct fedkeys_key *keys = NULL;
	const char *error;
	size_t n = 0;
	int rc = -1;

	if (fedkeys_list(f->cfg->federation_key_dir, domain, &keys, &n, &error) < 0) {
		attempt_set(a, FEDSCHED_RETRY, "signing key of %s: %s", domain, error);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (keys[i].state != FEDKEYS_SIGNING)
			continue;
		if (fedkeys_load(f->cfg->federation_key_dir, domain, keys[i].selector, key_r,
		                 &error) < 0 ||
		    fedrec_msk_name(keys[i].selector, domain, keyid, &error) < 0) {
			attempt_set(a, FEDSCHED_RETRY, "signing key of %s: %s", domain, error);
			break;
		}
		rc = 0;
		break;
	}
	if (rc < 0 && a->why[0] == '\0')
		attempt_set(a, FEDSCHED_RETRY,
		            "%s has no signing key in federation_key_dir (statusctl key make)",
		            domain);
	a->no_key = rc < 0;
	fedkeys_list_free(&keys);
	return rc;
}

/* A reporting domain that cannot sign now: logged when it starts, counted while it lasts. */
static void
keyless_note(struct fedout *f, const char *domain, const char *why)
{
	struct keyless *k;

	for (k = f->keyless; k != NULL; k = k->next)
		if (strcmp(k->domain, domain) == 0)
			break;
	if (k == NULL) {
		k = mycalloc(1, sizeof(*k));
		k->domain = mystrdup(domain);
		k->next = f->keyless;
		f->keyless = k;
		atomic_fetch_add(&f->keyless_n, 1);
		msg_warn("federation: events reported by %s wait for a signing key (those of "
		         "other reporting domains go): %s",
		         domain, why);
	}
	k->seen_ms = time_mono_ms();
}

/* Forget the reporting domains that signed again (domain) or that were not seen
   for older_ms (their rows went otherwise: expired, withdrawn); -1: all. */
static void
keyless_forget(struct fedout *f, const char *domain, int64_t older_ms)
{
	struct keyless **kp = &f->keyless, *k;
	int64_t now = time_mono_ms();

	while ((k = *kp) != NULL) {
		if ((domain != NULL && strcmp(k->domain, domain) == 0) ||
		    (domain == NULL && (older_ms < 0 || now - k->seen_ms > older_ms))) {
			if (domain != NULL)
				msg_info("federation: %s signs reports again", domain);
			*kp = k->next;
			free(k->domain);
			free(k);
			atomic_fetch_sub(&f->keyless_n, 1);
		} else
			kp = &k->next;
	}
}

/* MIMI's code for an outbox row's status (sql/011). */
static unsigned
mimi_code(int status)
{
	switch (status) {
	case MSEV_READ:
		return MIMI_READ;
	case MSEV_UNREAD:
		return MIMI_UNREAD;
	case MSEV_DELETED:
		return MIMI_DELETED;
	default:
		return MIMI_DELIVERED;
	}
}

/* The report of rows[0..n) as its body. */
static int
report_encode(const struct store_fedout_row *rows, size_t n, unsigned char **body_r, size_t *len_r,
              struct attempt *a)
{
	struct mimistatus_report r = {.domain = rows[0].reporter, .count = n};
	const char *error;
	int rc;

	r.entries = mycalloc(n, sizeof(*r.entries));
	r.events = mycalloc(n, sizeof(*r.events));
	for (size_t i = 0; i < n; i++) {
		if (mimistatus_msgid(MIMISTATUS_ID_TRACKING, rows[i].origin_tracking_id,
		                     strlen(rows[i].origin_tracking_id), r.entries[i].msgid,
		                     &error) < 0) {
			attempt_set(a, FEDSCHED_REFUSED, "event %s: %s", rows[i].event_id, error);
			rc = -1;
			goto out;
		}
		r.entries[i].status = mimi_code(rows[i].status);
		r.events[i].event_id = rows[i].event_id;
		r.events[i].recipient = rows[i].recipient;
		r.events[i].timestamp_ms = rows[i].time_ms;
	}
	if ((rc = mimistatus_encode(&r, body_r, len_r, &error)) < 0)
		attempt_set(a, FEDSCHED_REFUSED, "encoding the report: %s", error);
out:
	free(r.entries);
	free(r.events);
	return rc;
}

struct fields {
	const char *content_type, *digest;
};

static const char *
field(void *ctx, const char *name)
{
	struct fields *fl = ctx;

	if (strcmp(name, "content-type") == 0)
		return fl->content_type;
	if (strcmp(name, "content-digest") == 0)
		return fl->digest;
	return NULL;
}

/* POST the signed report; the answer decides (a set). */
static void
report_post(struct fedout *f, const char *url, const unsigned char *body, size_t len,
            size_t nevents, EVP_PKEY *key, const char *keyid, struct attempt *a)
{
	static const char *const components[] = {"@method", "@target-uri", "content-type",
	                                         "content-digest"};
	char authority[FEDREC_URL_MAX + 1], *path, digest[HTTPSIG_DIGEST_BUFSIZE];
	char nonce[RANDID_LEN + 1];
	struct fields fl = {CONTENT_TYPE, digest};
	struct httpsig_request req = {"POST", url, authority, NULL, field, &fl};
	struct httpsig_params p;
	struct mbuf input = MBUF_INIT, sig = MBUF_INIT, line = MBUF_INIT;
	struct curl_slist *hdrs = NULL;
	const char *error, *why;
	int64_t now = time_now_ms() / 1000;
	long status = 0;
	CURLcode cc;

	/* https://host[:port]/path (fedrec checked it): the authority without :443 */
	size_t ulen = strlen(url + 8), klen = strlen(keyid);

	if (ulen >= sizeof(authority) || klen >= sizeof(p.keyid)) {
		attempt_set(a, FEDSCHED_REFUSED, "endpoint or key id too long");
		return;
	}
	memcpy(authority, url + 8, ulen + 1);
	path = strchr(authority, '/');
	req.path = url + 8 + (path - authority);
	*path = '\0';
	if ((path = strrchr(authority, ':')) != NULL && strcmp(path, ":443") == 0)
		*path = '\0';
	httpsig_content_digest(body, len, digest);
	memset(&p, 0, sizeof(p));
	snprintf(p.label, sizeof(p.label), "msr");
	p.ncomponents = sizeof(components) / sizeof(components[0]);
	for (size_t i = 0; i < p.ncomponents; i++)
		snprintf(p.components[i], sizeof(p.components[i]), "%s", components[i]);
	p.has_created = p.has_expires = true;
	p.created = now;
	p.expires = now + SIG_LIFE_S;
	snprintf(p.nonce, sizeof(p.nonce), "%s", randid_new(nonce));
	snprintf(p.alg, sizeof(p.alg), "ed25519");
	memcpy(p.keyid, keyid, klen + 1);
	if (httpsig_sign(&req, &p, key, &input, &sig, &error) < 0) {
		attempt_set(a, FEDSCHED_RETRY, "signing: %s", error);
		goto out;
	}
	hdrs = mynonnull(curl_slist_append(hdrs, "Content-Type: " CONTENT_TYPE));
	mbuf_printf(&line, "Content-Digest: %s", digest);
	hdrs = mynonnull(curl_slist_append(hdrs, mbuf_str(&line)));
	line.len = 0;
	mbuf_printf(&line, "Signature-Input: %s", mbuf_str(&input));
	hdrs = mynonnull(curl_slist_append(hdrs, mbuf_str(&line)));
	line.len = 0;
	mbuf_printf(&line, "Signature: %s", mbuf_str(&sig));
	hdrs = mynonnull(curl_slist_append(hdrs, mbuf_str(&line)));
	hdrs = mynonnull(curl_slist_append(hdrs, "Expect:"));
	f->answer.len = 0;
	f->retry_after[0] = '\0';
	f->curl_error[0] = '\0';
	curl_easy_setopt(f->curl, CURLOPT_URL, url);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, (const char *)body);
	curl_easy_setopt(f->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	a->posted = true;
	a->posted_ms = time_mono_ms();
	cc = curl_easy_perform(f->curl);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
	if (cc != CURLE_OK) {
		attempt_set(a, FEDSCHED_RETRY, "%s",
		            f->curl_error[0] ? f->curl_error : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
	a->outcome = fedsched_answer(status, f->answer.data, f->answer.len, nevents, &why);
	a->retry_after_ms =
	        fedsched_retry_after(f->retry_after[0] ? f->retry_after : NULL, time_now_ms());
	attempt_set(a, a->outcome, "%s", why);
out:
	curl_slist_free_all(hdrs);
	mbuf_free(&input);
	mbuf_free(&sig);
	mbuf_free(&line);
}

/* One report of the first of rows[0..*n_r) to destination: as many as fit in
   federation_report_max bytes (at least one), their number left in *n_r; a says what came
   of it. */
static void
report_send(struct fedout *f, const char *destination, const struct store_fedout_row *rows,
            size_t *n_r, struct attempt *a)
{
	char keyid[FEDREC_NAME_MAX];
	EVP_PKEY *key = NULL;
	unsigned char *body = NULL;
	size_t len = 0, n = *n_r, max = (size_t)f->cfg->federation_report_max;

	if (endpoint_find(f, destination, a) < 0 ||
	    key_find(f, rows[0].reporter, &key, keyid, a) < 0)
		goto out;
	if (f->keyless != NULL)
		keyless_forget(f, rows[0].reporter, 0);
	for (;;) {
		if (report_encode(rows, n, &body, &len, a) < 0)
			goto out;
		if (len <= max || n == 1)
			break;
		/* fewer events, in proportion, a tenth less for the report's own bytes */
		size_t fit = (size_t)((double)n * (double)max / (double)len * 0.9);
		n = fit < 1 ? 1 : fit < n ? fit : n - 1;
		free(body);
		body = NULL;
	}
	*n_r = n;
	report_post(f, a->endpoint, body, len, n, key, keyid, a);
out:
	free(body);
	EVP_PKEY_free(key);
}

/* Of a report's rows[0..cut) answered 200, those the answer names "later" (fedsched_later):
   moved to the end, their number returned. */
static size_t
later_rows(struct fedout *f, struct store_fedout_row *rows, size_t cut)
{
	char **ids;
	size_t nids = fedsched_later(f->answer.data, f->answer.len, cut, &ids), nlater = 0;

	for (size_t i = cut; nids > 0 && i-- > 0;) {
		bool later = false;

		for (size_t k = 0; k < nids && !later; k++)
			later = strcmp(ids[k], rows[i].event_id) == 0;
		if (later) { /* to the end, behind the later ones found before */
			struct store_fedout_row row = rows[i];

			memmove(&rows[i], &rows[i + 1], (cut - nlater - i - 1) * sizeof(*rows));
			rows[cut - nlater - 1] = row;
			nlater++;
		}
	}
	fedsched_later_free(ids, nids);
	return nlater;
}

/* --- the pace per destination ------------------------------------------------------ */

static double
send_rate(const struct fedout *f)
{
	return (double)f->cfg->federation_send_rate;
}

static double
send_burst(const struct fedout *f)
{
	return (double)f->cfg->federation_send_burst;
}

/* The remembered pace of destination, or NULL (a full bucket). */
static struct paced *
pace_find(const struct fedout *f, const char *destination)
{
	for (size_t i = 0; i < f->npaced; i++)
		if (strcmp(f->paced[i].destination, destination) == 0)
			return &f->paced[i];
	return NULL;
}

/* ms until a report may go to destination (0: now); see fedsched_pace_wait(). */
static int64_t
pace_left(const struct fedout *f, const char *destination)
{
	const struct paced *p = pace_find(f, destination);

	return p == NULL
	               ? 0
	               : fedsched_pace_wait(&p->pace, time_mono_ms(), send_rate(f), send_burst(f));
}

/* A report to destination started at sent_ms. */
static void
pace_take(struct fedout *f, const char *destination, int64_t sent_ms)
{
	struct paced *p = pace_find(f, destination);

	if (p == NULL) {
		f->paced = myreallocarray(f->paced, f->npaced + 1, sizeof(*f->paced));
		p = &f->paced[f->npaced++];
		memset(p, 0, sizeof(*p));
		p->destination = mystrdup(destination);
	}
	fedsched_pace_take(&p->pace, sent_ms, send_rate(f), send_burst(f));
}

/* Forget the destinations whose bucket is full again (all: stopping). */
static void
pace_forget(struct fedout *f, bool all)
{
	int64_t now = time_mono_ms();
	size_t k = 0;

	for (size_t i = 0; i < f->npaced; i++) {
		if (all || fedsched_pace_full(&f->paced[i].pace, now, send_rate(f), send_burst(f)))
			free(f->paced[i].destination);
		else
			f->paced[k++] = f->paced[i];
	}
	f->npaced = k;
	if (k == 0) {
		free(f->paced);
		f->paced = NULL;
	}
}

static void
skip_clear(struct fedout *f)
{
	for (size_t i = 0; i < f->nskip; i++)
		free(f->skip[i]);
	free(f->skip);
	f->skip = NULL;
	f->nskip = 0;
}

/* Send a destination's waiting rows while it takes them; *wait_r is lowered to its backoff
   when it fails. -1 on database trouble. */
static int
dest_serve(struct fedout *f, const struct store_fedout_dest *d, long long *wait_r,
           const char **error_r)
{
	unsigned failures = d->failures;
	size_t limit = MIMISTATUS_ENTRIES_MAX; /* events per report, halved by each 413 */
	int64_t expired;

	skip_clear(f);
	/* what waited too long goes before anything is sent; the round's oldest waiting row
	   says whether anything can have (with a minute's slack for the database's clock),
	   which saves a statement before most reports */
	expired = 0;
	if ((d->oldest_ms == 0 ||
	     d->oldest_ms < time_now_ms() - f->cfg->federation_expiry + CLOCK_SLACK_MS) &&
	    store_fedout_expire(f->conn, d->destination, f->cfg->federation_expiry, &expired,
	                        error_r) < 0)
		return -1;
	if (expired > 0) {
		atomic_fetch_add(&f->events_expired, (uint64_t)expired);
		atomic_fetch_sub(&f->depth, expired);
		msg_warn("federation: %s: %lld events expired in the outbox (federation_expiry)",
		         d->destination, (long long)expired);
	}
	for (int k = 0; k < REPORTS_PER_ROUND && !stopping(f); k++) {
		struct store_fedout_row *rows;
		const char *reporters[MIMISTATUS_ENTRIES_MAX];
		struct attempt a;
		size_t n, cut, nlater = 0;
		int64_t delay = 0, left;
		enum store_fedout_fate fate;

		/* the next report waits for the pace; what comes meanwhile goes with it */
		if ((left = pace_left(f, d->destination)) > 0) {
			if (left < *wait_r)
				*wait_r = left;
			return 0;
		}
		if (store_fedout_rows(f->conn, d->destination, (const char *const *)f->skip,
		                      f->nskip, MIMISTATUS_ENTRIES_MAX, &rows, &n, error_r) < 0)
			return -1;
		if (n == 0) {
			/* rows wait, none of a skipped domain: answered "later", due when the
			   first of them is (or soon, if that has just passed) */
			if (d->waiting > 0 && f->nskip == 0) {
				int64_t due =
				        d->later_in_ms > 0 ? d->later_in_ms : FEDSCHED_LATER_MS;

				if (due < *wait_r)
					*wait_r = due;
			}
			store_fedout_rows_free(rows, n);
			return 0;
		}
		for (size_t i = 0; i < n; i++)
			reporters[i] = rows[i].reporter;
		cut = fedsched_cut(reporters, n, limit);
		memset(&a, 0, sizeof(a));
		a.retry_after_ms = -1;
		report_send(f, d->destination, rows, &cut, &a);
		if (a.posted)
			pace_take(f, d->destination, a.posted_ms);
		if (a.no_key) {
			/* its rows wait, read again without them: the other reporting domains' go
			   (not counted as a report: each pass skips one more domain) */
			keyless_note(f, rows[0].reporter, a.why);
			f->skip = myreallocarray(f->skip, f->nskip + 1, sizeof(*f->skip));
			f->skip[f->nskip++] = mystrdup(rows[0].reporter);
			store_fedout_rows_free(rows, n);
			k--;
			continue;
		}
		if (a.outcome == FEDSCHED_SPLIT) {
			/* the rows stay; the next reports to it have half as many events */
			limit = cut / 2;
			atomic_fetch_add(&f->reports_split, 1);
			msg_info("federation: %s: report of %zu events too large (413), sending "
			         "at most %zu per report",
			         d->destination, cut, limit);
			store_fedout_rows_free(rows, n);
			continue;
		}
		switch (a.outcome) {
		case FEDSCHED_DONE:
			fate = STORE_FEDOUT_DONE;
			/* the events it does not know yet stay, and go again soon: no failure */
			if ((nlater = later_rows(f, rows, cut)) > 0) {
				msg_debug("federation: %s: %zu of %zu events answered later",
				          d->destination, nlater, cut);
				if (store_fedout_later(f->conn, rows + cut - nlater, nlater,
				                       FEDSCHED_LATER_MS, FEDSCHED_LATER_MAX_MS,
				                       error_r) < 0) {
					store_fedout_rows_free(rows, n);
					return -1;
				}
				atomic_fetch_add(&f->events_later, nlater);
				if (*wait_r > FEDSCHED_LATER_MS)
					*wait_r = FEDSCHED_LATER_MS;
			}
			atomic_fetch_add(&f->reports_sent, 1);
			atomic_fetch_add(&f->events_sent, cut - nlater);
			atomic_fetch_sub(&f->depth, (int64_t)(cut - nlater));
			if (failures > 0)
				msg_info("federation: %s takes reports again (%s)", d->destination,
				         a.endpoint);
			failures = 0;
			break;
		case FEDSCHED_RETRY:
			fate = STORE_FEDOUT_RETRY;
			failures++;
			delay = fedsched_backoff(
			        failures, FEDSCHED_BACKOFF_MIN_MS, f->cfg->federation_retry_max,
			        (double)(random() % 1000000) / 1000000.0, a.retry_after_ms);
			atomic_fetch_add(&f->reports_retried, 1);
			if (failures == 1)
				msg_warn("federation: %s: %zu events not taken, will retry: %s",
				         d->destination, cut, a.why);
			else
				msg_debug("federation: %s: %s (attempt %u, next in %lld ms)",
				          d->destination, a.why, failures, (long long)delay);
			break;
		default:
			fate = STORE_FEDOUT_REFUSED;
			atomic_fetch_add(&f->reports_refused, 1);
			atomic_fetch_add(&f->events_refused, cut);
			atomic_fetch_sub(&f->depth, (int64_t)cut);
			msg_warn("federation: %s: report of %zu events refused: %s", d->destination,
			         cut, a.why);
			failures = 0;
			break;
		}
		if (store_fedout_result(f->conn, d->destination, a.endpoint[0] ? a.endpoint : NULL,
		                        rows, cut - nlater, fate,
		                        fate == STORE_FEDOUT_DONE ? NULL : a.why, failures, delay,
		                        error_r) < 0) {
			store_fedout_rows_free(rows, n);
			return -1;
		}
		store_fedout_rows_free(rows, n);
		if (fate == STORE_FEDOUT_RETRY) {
			atomic_fetch_add(&f->failing, 1);
			if (delay < *wait_r)
				*wait_r = delay < 1 ? 1 : delay;
			return 0;
		}
		if (fate == STORE_FEDOUT_DONE && cut == n && n < MIMISTATUS_ENTRIES_MAX)
			return 0; /* it took every waiting row */
	}
	*wait_r = 0; /* more waiting: the next round at once */
	return 0;
}

/* One round over the outbox; *wait_r: how long until the next. -1 on database trouble. */
static int
fed_round(struct fedout *f, long long *wait_r, const char **error_r)
{
	struct store_fedout_dest *d;
	int64_t expired, depth = 0, now = time_now_ms();
	size_t n;
	long long wait = POLL_MS;

	if (f->expired_at == 0 || time_mono_ms() - f->expired_at >= EXPIRE_EVERY_MS) {
		if (store_fedout_expire(f->conn, NULL, f->cfg->federation_expiry, &expired,
		                        error_r) < 0)
			return -1;
		f->expired_at = time_mono_ms();
	} else
		expired = 0;
	if (expired > 0) {
		atomic_fetch_add(&f->events_expired, (uint64_t)expired);
		msg_warn("federation: %lld events expired in the outbox (federation_expiry)",
		         (long long)expired);
	}
	if (store_fedout_dests(f->conn, false, &d, &n, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		depth += d[i].waiting;
	atomic_store(&f->depth, depth);
	atomic_store(&f->failing, 0);
	pace_forget(f, false);
	for (size_t i = 0; i < n && !stopping(f); i++) {
		int64_t withdrawn, paced;

		if (d[i].waiting == 0)
			continue;
		/* its pace holds its rows back (the policy's second look is just before they
		   go) */
		if ((paced = pace_left(f, d[i].destination)) > 0) {
			if (!d[i].due)
				atomic_fetch_add(&f->failing, 1);
			if (paced < wait)
				wait = paced;
			continue;
		}
		/* the policy and the preferences as they are now, not as they were when the
		   rows were added (a reload, a user who opted out since) */
		if (store_fedout_withdraw(
		            f->conn, d[i].destination,
		            (int)fedpolicy_level(&f->cfg->fed_policy, d[i].destination), &withdrawn,
		            error_r) < 0) {
			store_fedout_dests_free(d, n);
			return -1;
		}
		if (withdrawn > 0) {
			msg_info("federation: %lld events for %s withdrawn (federation_policy, "
			         "read_receipts)",
			         (long long)withdrawn, d[i].destination);
			atomic_fetch_sub(&f->depth, withdrawn);
			if (withdrawn == d[i].waiting)
				continue;
		}
		if (!d[i].due) {
			long long left = d[i].next_try_ms - now;
			atomic_fetch_add(&f->failing, 1);
			if (left < wait)
				wait = left < 1 ? 1 : left;
			continue;
		}
		if (dest_serve(f, &d[i], &wait, error_r) < 0) {
			store_fedout_dests_free(d, n);
			return -1;
		}
	}
	store_fedout_dests_free(d, n);
	/* a destination is tried at least every federation_retry_max: a reporting domain not
	   seen for twice that (and a poll) has no rows waiting any more */
	keyless_forget(f, NULL, 2 * f->cfg->federation_retry_max + POLL_MS);
	*wait_r = wait;
	return 0;
}

static void *
fed_main(void *arg)
{
	struct fedout *f = arg;
	const char *error;
	long long wait = 0;
	int r;

	while (!stopping(f)) {
		if (f->conn == NULL) {
			if ((r = db_open(f, &error)) < 0) {
				/* not migrated yet (the ingest worker does it) is no trouble */
				if (r == -2)
					f->db_trouble = true;
				db_trouble(f, error);
				continue;
			}
			if (f->db_trouble)
				msg_info("federation: database ready");
			f->db_trouble = false;
			f->db_backoff = 0;
		}
		f->round_ms = time_mono_ms();
		if (fed_round(f, &wait, &error) < 0) {
			db_trouble(f, error);
			continue;
		}
		/* a notification: new rows, which go at once unless their destination's pace
		   holds them (the round said how long); then federation_batch_delay more, if
		   set, to take more in one report; rounds start at most every ROUND_GAP_MS */
		if ((r = fed_wait(f, wait, true)) < 0)
			db_trouble(f, store_error(f->conn, NULL));
		else if (r > 0) {
			int64_t left = f->round_ms + ROUND_GAP_MS - time_mono_ms();
			if (left < f->cfg->federation_batch_delay)
				left = f->cfg->federation_batch_delay;
			if (left > 0 && fed_wait(f, left, false) < 0)
				db_trouble(f, store_error(f->conn, NULL));
		}
	}
	if (f->conn != NULL)
		PQfinish(f->conn);
	f->conn = NULL;
	return NULL;
}

/* --- the API ------------------------------------------------------------------------ */

static void
fed_free(struct fedout *f)
{
	if (f->curl != NULL)
		curl_easy_cleanup(f->curl);
	resolver_free(&f->resolver);
	mbuf_free(&f->answer);
	keyless_forget(f, NULL, -1);
	skip_clear(f);
	pace_forget(f, true);
	if (f->wake[0] >= 0)
		close(f->wake[0]);
	if (f->wake[1] >= 0)
		close(f->wake[1]);
	free(f);
	curl_global_cleanup();
}

struct fedout *
fedout_start(const struct sd_config *cfg, const char **error_r)
{
	struct resolver_settings rs = {
	        .server = cfg->dns_server,
	        .trust_anchor_file = cfg->dns_trust_anchor_file,
	        .timeout_ms = cfg->dns_timeout,
	        .cache_max_ttl_ms = cfg->dns_cache_max_ttl,
	        .negative_ttl_ms = NEGATIVE_TTL_MS,
	        .cache_max_entries = (size_t)cfg->dns_cache_size,
	};
	struct fedout *f;
	sigset_t all, old;
	CURLcode cc;
	int rc;

	*error_r = NULL;
	if (!cfg->fed_policy_any) {
		msg_info("federation: reporting nothing to other sites (federation_policy)");
		return NULL;
	}
	if ((cc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		*error_r =
		        errfmt("federation: cannot initialize libcurl: %s", curl_easy_strerror(cc));
		return NULL;
	}
	f = mycalloc(1, sizeof(*f));
	f->cfg = cfg;
	f->wake[0] = f->wake[1] = -1;
	if ((f->resolver = resolver_new(&rs, error_r)) == NULL) {
		*error_r = errfmt("dns_server or dns_trust_anchor_file: %s", *error_r);
		goto fail;
	}
	if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = errfmt("federation: pipe: %s", strerror(errno));
		goto fail;
	}
	if ((f->curl = curl_easy_init()) == NULL) {
		*error_r = "federation: cannot make a libcurl handle";
		goto fail;
	}
	curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, "https");
	/* HTTP/1.1: libwebsockets 4.1 (statusd's own TLS) offers h2 but keeps no unknown
	   request field of an h2 request, so Signature-Input and Signature would not arrive */
	curl_easy_setopt(f->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, (long)cfg->federation_timeout);
	curl_easy_setopt(f->curl, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, f->curl_error);
	curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
	if (cfg->federation_ca_file[0] != '\0')
		curl_easy_setopt(f->curl, CURLOPT_CAINFO, cfg->federation_ca_file);
	/* signals are the event loop's: the thread blocks them all */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((rc = pthread_create(&f->thread, NULL, fed_main, f)) != 0)
		msg_fatal("federation: cannot start a thread: %s", strerror(rc));
	f->started = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	msg_info("federation: sending reports (federation_policy %s)", cfg->federation_policy);
	return f;
fail:
	fed_free(f);
	return NULL;
}

void
fedout_stop(struct fedout **fp)
{
	struct fedout *f = *fp;
	ssize_t wr;

	if (f == NULL)
		return;
	*fp = NULL;
	atomic_store(&f->stopping, true);
	do
		wr = write(f->wake[1], "x", 1);
	while (wr < 0 && errno == EINTR);
	if (f->started)
		pthread_join(f->thread, NULL);
	fed_free(f);
}

void
fedout_stats(struct fedout *f, struct fedout_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return;
	out->reports_sent = atomic_load(&f->reports_sent);
	out->events_sent = atomic_load(&f->events_sent);
	out->reports_retried = atomic_load(&f->reports_retried);
	out->reports_refused = atomic_load(&f->reports_refused);
	out->events_refused = atomic_load(&f->events_refused);
	out->events_later = atomic_load(&f->events_later);
	out->events_expired = atomic_load(&f->events_expired);
	out->reports_split = atomic_load(&f->reports_split);
	out->outbox_depth = atomic_load(&f->depth);
	out->destinations_failing = atomic_load(&f->failing);
	out->reporters_without_key = atomic_load(&f->keyless_n);
}
