/*
 * webhook - signed deliveries of the event log to HTTP endpoints. See webhook.h.
 *
 * DESIGN
 *	Each endpoint's thread runs this loop, all of it blocking and all of it its own:
 *
 *	    connect to PostgreSQL (non-blocking connect, so that stopping interrupts it),
 *	    LISTEN msgstatus_log, asynchronous commits (see below)
 *	    take the endpoint: pg_try_advisory_lock on the URL; another statusd holding it
 *	        means standing by and trying again every POLL_MS
 *	    load the cursor (webhook_cursors; created at the log head the first time)
 *	    loop: read the head; deliver up to BATCH events after the cursor, one request
 *	        each, in offset order, retrying an event until it gets a 2xx; save the cursor
 *	        after each acknowledged event; with nothing new, wait in poll() for a
 *	        notification, the stop signal or POLL_MS
 *
 *	Database trouble drops the connection (and with it the lock) and reconnects with
 *	backoff (100 ms doubling up to database_retry_max); the cursor in memory is never
 *	behind what was acknowledged, and the saved one wins only if it is further on (another
 *	instance delivered meanwhile).
 *
 *	Cursor updates use synchronous_commit = off: a cursor write lost in a PostgreSQL
 *	crash only means re-delivering a few events, which at-least-once allows, and it
 *	saves a WAL flush per event. A stopping statusd has committed every cursor it moved.
 *
 *	Stopping: webhooks_stop() sets a flag and writes to a pipe that every thread polls
 *	alongside its database socket; a request in flight sees the flag through libcurl's
 *	progress callback (called about once a second at worst) and is aborted once
 *	STOP_GRACE_MS have passed, so a responsive endpoint's last answer is still counted.
 *	Statements on the database are short and not interrupted.
 *
 * SECURITY
 *	The endpoint's answer is untrusted: only its status code is used, the body is read
 *	and dropped, redirects are not followed, the whole request is bounded by
 *	webhook_timeout. The secret is read once and wiped when stopping. Error texts from
 *	libcurl name the host, never the URL's credentials.
 */
#include "webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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
#include <time.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "render.h"
#include "store.h"
#include "token.h"

#define WEBHOOKS_MAX       32    /* endpoints: each is a thread and a database connection */
#define BATCH              100   /* events read from the log at a time */
#define POLL_MS            5000  /* look at the log even without a notification */
#define BACKOFF_MIN_MS     1000  /* first retry of a failed delivery */
#define DB_BACKOFF_MIN_MS  100   /* first reconnect */
#define CONNECT_TIMEOUT_MS 15000 /* PostgreSQL */
#define STOP_GRACE_MS      500   /* a request in flight at stop may finish within this */
#define CURSORS_SCHEMA     1     /* the schema version that brought webhook_cursors */
#define USER_AGENT         "msgstatus-statusd/" MSGSTATUS_VERSION " (webhook)"

struct hook {
	struct webhooks *w;
	unsigned index;
	char *url;   /* as configured: the key in webhook_cursors */
	char *label; /* for the log: no credentials, no query */
	char origin[128];
	pthread_t thread;
	bool started;

	/* the thread's own */
	PGconn *conn;
	bool locked;          /* we hold the URL's advisory lock on conn */
	bool db_trouble;      /* logged the database as unavailable */
	bool standby_logged;  /* logged that another statusd delivers it */
	long long db_backoff; /* ms */
	int64_t cursor;       /* last acknowledged offset; -1: not known yet */
	int64_t epoch;
	unsigned streak; /* failed attempts in a row */
	CURL *curl;
	char curl_error[CURL_ERROR_SIZE];

	/* read by webhooks_stats() from any thread */
	atomic_uint_least64_t delivered, failed;
	atomic_int_least64_t head, acked; /* -1: not known yet */
	atomic_int failing;
};

struct webhooks {
	const struct sd_config *cfg;
	unsigned char *secret;
	size_t secret_len;
	int wake[2]; /* written once, at stop: readable from then on, in every thread */
	atomic_bool stopping;
	atomic_int_least64_t stop_ms; /* when stopping began (monotonic) */
	size_t n;
	struct hook *hooks;
};

static bool
stopping(const struct webhooks *w)
{
	return atomic_load(&w->stopping);
}

/* store_connect()'s question */
static bool
stop_asked(const void *arg)
{
	return atomic_load(&((const struct webhooks *)arg)->stopping);
}

static long long
backoff_next(long long cur, long long min, long long max)
{
	if (cur <= 0)
		return min < max ? min : max;
	return cur > max / 2 ? max : cur * 2;
}

/* --- settings ------------------------------------------------------------------------- */

/* Check one URL of webhook_urls and make its names for the log and for metrics. */
static int
hook_init(struct hook *h, const char *url, const char **error_r)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	char shown[200];
	struct mbuf label = MBUF_INIT;
	CURLU *u = mynonnull(curl_url());
	CURLUcode uc;
	int rc = -1;

	msg_clean(shown, sizeof(shown), url, strlen(url));
	if ((uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME)) != CURLUE_OK) {
		*error_r = errfmt("webhook_urls: \"%s\" is not a URL (%s)", shown,
		                  curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		*error_r = errfmt("webhook_urls: \"%s\": only http:// and https:// URLs are "
		                  "supported",
		                  shown);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		*error_r = errfmt("webhook_urls: \"%s\" has no host", shown);
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* NULL if not given */
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	mbuf_printf(&label, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
	snprintf(h->origin, sizeof(h->origin), "%s", mbuf_str(&label));
	mbuf_printf(&label, "%s%s", path ? path : "/", query ? "?..." : "");
	h->url = mystrdup(url);
	h->label = mystrdup(mbuf_str(&label));
	rc = 0;
out:
	mbuf_free(&label);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

/* --- waiting -------------------------------------------------------------------------- */

/* Read what the database sent; notifications of a new head update h->head. -1: gone. */
static int
hook_drain(struct hook *h, bool *news_r)
{
	PGnotify *n;

	if (!PQconsumeInput(h->conn))
		return -1;
	while ((n = PQnotifies(h->conn)) != NULL) {
		long long head = strtoll(n->extra, NULL, 10);

		if (head > atomic_load(&h->head))
			atomic_store(&h->head, head);
		if (head > h->cursor)
			*news_r = true;
		PQfreemem(n);
	}
	return 0;
}

/*
 * Wait up to ms for stopping or, with wake_on_news, a notification of events after the
 * cursor; notifications are consumed either way. Returns 1 for news, 0 otherwise, -1 if
 * the database connection broke (h->conn is left to the caller).
 */
static int
hook_wait(struct hook *h, long long ms, bool wake_on_news)
{
	int64_t deadline = time_mono_ms() + ms, left;
	struct pollfd pfd[2];
	bool news = false;
	nfds_t nfd;

	for (;;) {
		if (h->conn != NULL) {
			if (hook_drain(h, &news) < 0)
				return -1;
			if (news && wake_on_news)
				return 1;
		}
		if (stopping(h->w) || (left = deadline - time_mono_ms()) <= 0)
			return 0;
		pfd[0].fd = h->w->wake[0];
		pfd[0].events = POLLIN;
		nfd = 1;
		if (h->conn != NULL) {
			pfd[1].fd = PQsocket(h->conn);
			pfd[1].events = POLLIN;
			nfd = 2;
		}
		if (poll(pfd, nfd, (int)left) < 0 && errno != EINTR)
			msg_panic("webhook: poll: %s", strerror(errno));
	}
}

/* --- the database --------------------------------------------------------------------- */

/* Lost the connection (or gave it up): say so once per outage (unless quiet) and close it. */
static void
hook_db_lost(struct hook *h, const char *error, bool quiet)
{
	if (!h->db_trouble && !quiet && !stopping(h->w)) {
		msg_warn("webhook %s: database unavailable: %s", h->label, error);
		h->db_trouble = true;
	} else
		msg_debug("webhook %s: database: %s", h->label, error);
	if (h->conn != NULL)
		PQfinish(h->conn);
	h->conn = NULL;
	h->locked = false;
}

/* Database trouble: drop the connection and wait before trying again. */
static void
hook_db_trouble(struct hook *h, const char *error, bool quiet)
{
	hook_db_lost(h, error, quiet);
	h->db_backoff =
	        backoff_next(h->db_backoff, DB_BACKOFF_MIN_MS, h->w->cfg->database_retry_max);
	(void)hook_wait(h, h->db_backoff, false);
}

/* Connect without blocking past a stop, and set the session up. */
static int
hook_db_open(struct hook *h, const char **error_r)
{
	if (store_connect(h->w->cfg->database, h->w->wake[0], stop_asked, h->w, CONNECT_TIMEOUT_MS,
	                  &h->conn, error_r) < 0)
		return -1;
	return store_webhook_session(h->conn, error_r);
}

/* Save the cursor (only ever to an acknowledged offset). */
static int
cursor_save(struct hook *h, const char **error_r)
{
	if (h->conn == NULL) {
		*error_r = "connection lost";
		return -1;
	}
	return store_webhook_cursor_save(h->conn, h->url, h->cursor, error_r);
}

/*
 * Take the endpoint: take its advisory lock, load (or create) its cursor. Returns 1 when
 * taken, 0 when another statusd holds it, -1 on error, -2 while the schema is not there
 * yet (the ingest worker migrates it when it connects, maybe just now).
 */
static int
hook_take(struct hook *h, const char **error_r)
{
	int version, locked;
	bool created;
	int64_t saved;

	if ((version = store_schema_version(h->conn, error_r)) < 0)
		return -1;
	if (version < CURSORS_SCHEMA) {
		*error_r = "waiting for the database schema";
		return -2;
	}
	if ((locked = store_webhook_lock(h->conn, h->url, error_r)) < 0)
		return -1;
	h->locked = locked == 1;
	if (!h->locked) {
		if (!h->standby_logged)
			msg_info("webhook %s: another statusd delivers to this endpoint; standing "
			         "by",
			         h->label);
		h->standby_logged = true;
		return 0;
	}
	if (store_webhook_cursor_load(h->conn, h->url, &saved, &created, error_r) < 0)
		return -1;
	if (h->cursor > saved) {
		/* acknowledged before the connection broke, not saved then */
		if (cursor_save(h, error_r) < 0)
			return -1;
	} else
		h->cursor = saved;
	atomic_store(&h->acked, h->cursor);
	if (h->db_trouble)
		msg_info("webhook %s: database available again", h->label);
	h->db_trouble = false;
	h->db_backoff = 0;
	h->standby_logged = false;
	if (created)
		msg_info("webhook %s: new endpoint: delivering the events after offset %lld "
		         "(earlier ones are not sent)",
		         h->label, (long long)h->cursor);
	else
		msg_info("webhook %s: delivering the events after offset %lld", h->label,
		         (long long)h->cursor);
	return 1;
}

/* --- HTTP ----------------------------------------------------------------------------- */

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	(void)data;
	(void)ctx;
	return size * nmemb; /* the answer's body is not used */
}

static int
on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct hook *h = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (!stopping(h->w))
		return 0;
	return time_mono_ms() - atomic_load(&h->w->stop_ms) >= STOP_GRACE_MS; /* non-zero: abort */
}

static CURL *
hook_curl(struct hook *h)
{
	CURL *c = curl_easy_init();

	if (c == NULL)
		msg_fatal("webhook: cannot make a libcurl handle");
	curl_easy_setopt(c, CURLOPT_URL, h->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->w->cfg->webhook_timeout);
	curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_error);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
	return c;
}

static struct curl_slist *header(struct curl_slist *list, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static struct curl_slist *
header(struct curl_slist *list, const char *fmt, ...)
{
	struct mbuf line = MBUF_INIT;
	struct curl_slist *l;
	va_list ap;

	va_start(ap, fmt);
	mbuf_vprintf(&line, fmt, ap);
	va_end(ap);
	l = mynonnull(curl_slist_append(list, mbuf_str(&line)));
	mbuf_free(&line);
	return l;
}

/* POST one event. Returns 0 for a 2xx answer, else -1 with why (a status or an error). */
static int
hook_post(struct hook *h, const char *key, const struct mbuf *body, char *why, size_t whysize)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	char ts[24], sig[2 * EVP_MAX_MD_SIZE + 1];
	struct mbuf msg = MBUF_INIT;
	struct curl_slist *hdrs = NULL;
	CURLcode res;
	long code = 0;

	/* v1 = HMAC-SHA256(secret, "<timestamp>.<body>"), in lower-case hex */
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	mbuf_printf(&msg, "%s.", ts);
	mbuf_append(&msg, body->data, body->len);
	if (HMAC(EVP_sha256(), h->w->secret, (int)h->w->secret_len, (const unsigned char *)msg.data,
	         msg.len, mac, &maclen) == NULL)
		msg_panic("HMAC-SHA256 failed");
	mbuf_free(&msg);
	for (unsigned i = 0; i < maclen; i++)
		snprintf(sig + 2 * i, 3, "%02x", mac[i]);

	hdrs = header(hdrs, "Content-Type: application/json");
	hdrs = header(hdrs, "Msgstatus-Event: %s", key);
	hdrs = header(hdrs, "Msgstatus-Timestamp: %s", ts);
	hdrs = header(hdrs, "Msgstatus-Signature: v1=%s", sig);
	hdrs = header(hdrs, "Expect:"); /* no 100-continue round trip */
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	h->curl_error[0] = '\0';
	res = curl_easy_perform(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	if (res != CURLE_OK) {
		snprintf(why, whysize, "%s",
		         h->curl_error[0] != '\0' ? h->curl_error : curl_easy_strerror(res));
		return -1;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		snprintf(why, whysize, "HTTP status %ld", code);
		return -1;
	}
	return 0;
}

/* Deliver one event until an attempt gets a 2xx. Returns 0, or -1 when stopping first. */
static int
hook_deliver(struct hook *h, const struct store_logged *l)
{
	struct mbuf body = MBUF_INIT;
	long long backoff = 0;
	char key[48], why[CURL_ERROR_SIZE + 32];
	int rc = -1;

	render_logged(l, h->epoch, &body);
	snprintf(key, sizeof(key), "%lld-%lld", (long long)h->epoch, (long long)l->log_offset);
	while (!stopping(h->w)) {
		if (hook_post(h, key, &body, why, sizeof(why)) == 0) {
			if (h->streak > 0)
				msg_info("webhook %s: delivering again (event %s) after %u failed "
				         "attempts",
				         h->label, key, h->streak);
			h->streak = 0;
			atomic_store(&h->failing, 0);
			rc = 0;
			break;
		}
		if (stopping(h->w))
			break; /* aborted by the stop, not the endpoint's fault */
		atomic_fetch_add(&h->failed, 1);
		atomic_store(&h->failing, 1);
		backoff = backoff_next(backoff, BACKOFF_MIN_MS, h->w->cfg->webhook_retry_max);
		if (h->streak++ == 0)
			msg_warn("webhook %s: event %s not delivered: %s; retrying it with backoff "
			         "(1 s doubling up to %lld s)",
			         h->label, key, why, h->w->cfg->webhook_retry_max / 1000);
		else
			msg_debug("webhook %s: event %s, attempt %u: %s; next in %lld ms", h->label,
			          key, h->streak, why, backoff);
		if (hook_wait(h, backoff, false) < 0)
			hook_db_lost(h, store_error(h->conn, NULL), false);
	}
	mbuf_free(&body);
	return rc;
}

/* --- the thread ----------------------------------------------------------------------- */

/*
 * Deliver what the log holds after the cursor, up to BATCH events. Returns how many were
 * delivered (0: nothing new, or stopping), -1 on database trouble.
 */
static int
hook_step(struct hook *h, const char **error_r)
{
	struct store_logged *logged = NULL;
	int64_t head, epoch;
	size_t n = 0, i;
	bool transient;
	int rc = 0;

	if (store_log_head(h->conn, &head, &epoch, error_r) < 0)
		return -1;
	h->epoch = epoch;
	atomic_store(&h->head, head);
	if (head < h->cursor) {
		msg_warn("webhook %s: the event log ends at offset %lld, before this endpoint's "
		         "cursor %lld (was the database restored?): going on from the head",
		         h->label, (long long)head, (long long)h->cursor);
		h->cursor = head;
		atomic_store(&h->acked, head);
		return cursor_save(h, error_r);
	}
	if (head == h->cursor)
		return 0;
	if (store_log_range(h->conn, h->cursor, head, BATCH, NULL, NULL, 0, &logged, &n, &transient,
	                    error_r) < 0)
		return -1;
	if (n == 0) {
		/* the events up to the head are gone (retention): nothing to deliver there */
		h->cursor = head;
		atomic_store(&h->acked, head);
		rc = cursor_save(h, error_r);
	}
	for (i = 0; i < n; i++) {
		if (hook_deliver(h, &logged[i]) < 0)
			break;
		h->cursor = logged[i].log_offset;
		atomic_store(&h->acked, h->cursor);
		atomic_fetch_add(&h->delivered, 1);
		if (cursor_save(h, error_r) < 0) {
			rc = -1;
			break;
		}
		rc++;
	}
	store_logged_free(logged, n);
	return rc;
}

static void *
hook_main(void *arg)
{
	struct hook *h = arg;
	const char *error;
	int r;

	h->curl = hook_curl(h);
	while (!stopping(h->w)) {
		if (h->conn == NULL && hook_db_open(h, &error) < 0) {
			hook_db_trouble(h, error, false);
			continue;
		}
		if (!h->locked) {
			if ((r = hook_take(h, &error)) < 0)
				hook_db_trouble(h, error, r == -2);
			else if (r == 0 && hook_wait(h, POLL_MS, false) < 0)
				hook_db_trouble(h, store_error(h->conn, NULL), false);
			continue;
		}
		if ((r = hook_step(h, &error)) < 0)
			hook_db_trouble(h, error, false);
		else if (r == 0 && hook_wait(h, POLL_MS, true) < 0)
			hook_db_trouble(h, store_error(h->conn, NULL), false);
	}
	if (h->conn != NULL)
		PQfinish(h->conn);
	h->conn = NULL;
	curl_easy_cleanup(h->curl);
	h->curl = NULL;
	return NULL;
}

/* --- the API -------------------------------------------------------------------------- */

static void
webhooks_free(struct webhooks *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->hooks[i].url);
		free(w->hooks[i].label);
	}
	free(w->hooks);
	token_secret_free(&w->secret, w->secret_len);
	if (w->wake[0] >= 0)
		close(w->wake[0]);
	if (w->wake[1] >= 0)
		close(w->wake[1]);
	free(w);
	curl_global_cleanup();
}

struct webhooks *
webhooks_start(const struct sd_config *cfg, const char **error_r)
{
	static const char sep[] = ", \t";
	char *list = mystrdup(cfg->webhook_urls), *save = NULL, *url;
	struct webhooks *w;
	sigset_t all, old;
	size_t n = 0;
	CURLcode cc;
	int rc;

	*error_r = NULL;
	for (url = strtok_r(list, sep, &save); url != NULL; url = strtok_r(NULL, sep, &save))
		n++;
	free(list);
	if (n == 0)
		return NULL;
	if (n > WEBHOOKS_MAX) {
		*error_r = errfmt("webhook_urls: %zu URLs, at most %d", n, WEBHOOKS_MAX);
		return NULL;
	}
	if ((cc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		*error_r = errfmt("webhook_urls: cannot initialize libcurl: %s",
		                  curl_easy_strerror(cc));
		return NULL;
	}
	w = mycalloc(1, sizeof(*w));
	w->hooks = mycalloc(n, sizeof(*w->hooks));
	w->cfg = cfg;
	w->wake[0] = w->wake[1] = -1;
	list = mystrdup(cfg->webhook_urls);
	for (url = strtok_r(list, sep, &save); url != NULL; url = strtok_r(NULL, sep, &save)) {
		struct hook *h = &w->hooks[w->n];

		for (size_t i = 0; i < w->n; i++)
			if (strcmp(w->hooks[i].url, url) == 0) {
				*error_r = errfmt("webhook_urls: %s is listed twice",
				                  w->hooks[i].label);
				goto fail;
			}
		if (hook_init(h, url, error_r) < 0)
			goto fail;
		h->w = w;
		h->index = (unsigned)w->n++;
		h->cursor = -1;
		atomic_init(&h->head, -1);
		atomic_init(&h->acked, -1);
	}
	free(list);
	list = NULL;
	if (token_secret_load("webhook_secret_file", cfg->webhook_secret_file, &w->secret,
	                      &w->secret_len, error_r) < 0)
		goto fail;
	if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = errfmt("webhook_urls: pipe: %s", strerror(errno));
		goto fail;
	}
	/* signals are the event loop's: the threads block them all */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < w->n; i++) {
		if ((rc = pthread_create(&w->hooks[i].thread, NULL, hook_main, &w->hooks[i])) != 0)
			msg_fatal("webhook: cannot start a thread: %s", strerror(rc));
		w->hooks[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	msg_info("webhooks: delivering to %zu endpoint%s", w->n, w->n == 1 ? "" : "s");
	return w;
fail:
	free(list);
	webhooks_free(w);
	return NULL;
}

void
webhooks_stop(struct webhooks **wp)
{
	struct webhooks *w = *wp;
	ssize_t wr;

	if (w == NULL)
		return;
	*wp = NULL;
	atomic_store(&w->stop_ms, time_mono_ms());
	atomic_store(&w->stopping, true);
	do
		wr = write(w->wake[1], "x", 1);
	while (wr < 0 && errno == EINTR);
	for (size_t i = 0; i < w->n; i++)
		if (w->hooks[i].started)
			pthread_join(w->hooks[i].thread, NULL);
	webhooks_free(w);
}

size_t
webhooks_stats(struct webhooks *w, struct webhook_stats *out, size_t max)
{
	if (w == NULL)
		return 0;
	for (size_t i = 0; i < w->n && i < max; i++) {
		struct hook *h = &w->hooks[i];
		int64_t head = atomic_load(&h->head), acked = atomic_load(&h->acked);

		out[i].index = h->index;
		snprintf(out[i].origin, sizeof(out[i].origin), "%s", h->origin);
		out[i].delivered = atomic_load(&h->delivered);
		out[i].failed = atomic_load(&h->failed);
		out[i].lag = head < 0 || acked < 0 ? -1 : head > acked ? head - acked : 0;
		out[i].failing = atomic_load(&h->failing);
	}
	return w->n;
}
