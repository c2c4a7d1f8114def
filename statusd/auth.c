/*
 * auth - who is calling statusd's API. See auth.h; token.c has the pure parts.
 *
 * DESIGN
 *	One cache, on the loop thread, of what PostgreSQL said, in a hash table
 *	(lib/htable): for API tokens, keyed by the token's SHA-256 (the token itself is not
 *	kept), the principal it names or "no such token"; for users of signed tokens, keyed
 *	by the SHA-256 of the user name, the domains they administer. Answers are kept
 *	AUTH_CACHE_MS (an API token's no longer than it is valid), "no such token"
 *	NEGATIVE_MS; a failed lookup is not kept at all. A revoked token therefore works for
 *	at most AUTH_CACHE_MS more.
 *
 *	An entry is pending while its query runs on the query worker; further checks of the
 *	same token (or user) wait on it instead of asking again. Answered entries are kept in
 *	the order they were answered and the oldest go first when there are CACHE_MAX of them,
 *	so random tokens cannot make the cache grow without bound. Pending entries are never
 *	evicted: their number is bounded by the requests in flight.
 *
 *	Callbacks get a principal that lives until they return (callers copy it with
 *	principal_dup to keep it); they may call auth_check again.
 *
 * SECURITY
 *	Nothing is looked up in PostgreSQL for a string that is not shaped like an API token,
 *	and signed tokens are checked entirely in memory (token.c). When the database cannot
 *	say which domains a signed-token user administers, the user gets none (least privilege)
 *	rather than an error.
 *
 * DIAGNOSTICS
 *	Reasons for refusing a token go to the callback, for the caller to log; they never
 *	contain the token. Database errors are logged here.
 */
#include "auth.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbworker.h"
#include "htable.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"
#include "token.h"

const char auth_error_db[] = "the database is unavailable";

#define NEGATIVE_MS 5000  /* how long "no such token" is believed */
#define CACHE_MAX   10000 /* answered entries */

#if AUTH_TOKEN_MAX != TOKEN_MAX
#error "auth.h and token.h disagree"
#endif

enum entry_kind {
	E_TOKEN, /* an API token: key = SHA-256 of the token */
	E_USER,  /* a signed-token user's admin domains: key = SHA-256 of the user */
};

enum entry_state {
	E_PENDING,
	E_YES,
	E_NO, /* E_TOKEN only: no such valid token */
};

struct waiter {
	auth_done_cb *done;
	void *ctx;
	int64_t expires_ms; /* E_USER: the signed token's "exp" */
	struct waiter *next;
};

/* An entry's key in the table: the kind, then the SHA-256. */
#define KEY_LEN (1 + TOKEN_HASH_LEN)

struct entry {
	struct htable_entry *hent;   /* the table's entry (its key: kind and hash) */
	struct entry *older, *newer; /* answered entries, oldest first */
	enum entry_state state;
	int64_t until_ms;                       /* monotonic; answered entries */
	struct principal *p;                    /* E_YES */
	struct waiter *waiters, **waiters_tail; /* E_PENDING */
};

struct lookup_job {
	struct dbjob job;
	struct auth *a; /* NULL once auth_free() ran */
	struct lookup_job *prev, *next;
	enum entry_kind kind;
	unsigned char key[TOKEN_HASH_LEN];
	char *user; /* E_USER */
	/* results, from the worker thread */
	int found; /* 1, 0 (no such token / user), -1 (error) */
	struct principal *p;
	char error[300];
};

struct auth {
	const struct sd_config *cfg;
	struct dbworker *db;
	unsigned char *secret; /* NULL: signed tokens are not accepted */
	size_t secret_len;
	struct htable *cache; /* KEY_LEN bytes -> struct entry */
	struct entry *oldest, *newest;
	size_t nanswered;
	struct lookup_job *jobs; /* submitted, not yet done */
};

/* --- database (worker thread) -------------------------------------------------------- */

static enum dbw_result
lookup_run(struct dbjob *dj, PGconn *conn)
{
	struct lookup_job *j = (struct lookup_job *)dj;
	const char *error = NULL;
	char **domains = NULL, *name = NULL, *user;
	size_t ndomains = 0;
	int64_t expires_ms = 0;
	bool transient;

	if (j->kind == E_TOKEN)
		j->found = store_token_find(conn, j->key, TOKEN_HASH_LEN, &name, &domains,
		                            &ndomains, &expires_ms, &transient, &error);
	else
		j->found =
		        store_user_domains(conn, j->user, &domains, &ndomains, &transient, &error);
	if (j->found < 0) {
		snprintf(j->error, sizeof(j->error), "looking up a token: %s",
		         error ? error : "database error");
		return PQstatus(conn) != CONNECTION_OK ? DBW_RETRY : DBW_DONE;
	}
	if (j->kind == E_USER) {
		/* no row: a user with no privileges beyond their own mail */
		j->p = mycalloc(1, sizeof(*j->p));
		j->p->user = mystrdup(j->user);
		j->p->admin_domains = domains;
		j->p->nadmin = ndomains;
		j->found = 1;
	} else if (j->found) {
		if ((user = token_user(name, strlen(name), &error)) == NULL) {
			snprintf(j->error, sizeof(j->error), "users.name of a token: %s", error);
			j->found = -1;
			store_strings_free(domains, ndomains);
		} else {
			j->p = mycalloc(1, sizeof(*j->p));
			j->p->user = user;
			j->p->expires_ms = expires_ms;
			j->p->admin_domains = domains;
			j->p->nadmin = ndomains;
		}
	}
	free(name);
	return DBW_DONE;
}

/* --- the cache (loop thread) --------------------------------------------------------- */

static void
table_key(unsigned char out[KEY_LEN], enum entry_kind kind, const unsigned char *key)
{
	out[0] = (unsigned char)kind;
	memcpy(out + 1, key, TOKEN_HASH_LEN);
}

static void
order_unlink(struct auth *a, struct entry *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		a->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		a->newest = e->older;
	e->older = e->newer = NULL;
	a->nanswered--;
}

/* Unlink e from the table (and the order, if answered) and free it. Waiters must be gone. */
static void
entry_remove(struct auth *a, struct entry *e)
{
	htable_remove(a->cache, e->hent, NULL);
	if (e->state != E_PENDING)
		order_unlink(a, e);
	principal_free(&e->p);
	free(e);
}

/* The entry for (kind, key); answered entries past their time are dropped. */
static struct entry *
entry_find(struct auth *a, enum entry_kind kind, const unsigned char *key)
{
	unsigned char k[KEY_LEN];
	struct entry *e;

	table_key(k, kind, key);
	if ((e = htable_find(a->cache, k, sizeof(k))) == NULL)
		return NULL;
	if (e->state != E_PENDING && e->until_ms <= time_mono_ms()) {
		entry_remove(a, e);
		return NULL;
	}
	return e;
}

/* A pending entry has been answered: keep it for ttl_ms, or drop it (ttl_ms <= 0). */
static void
entry_answered(struct auth *a, struct entry *e, enum entry_state state, int64_t ttl_ms)
{
	e->state = state;
	if (ttl_ms <= 0) {
		e->state = E_PENDING; /* not in the order list */
		entry_remove(a, e);
		return;
	}
	e->until_ms = time_mono_ms() + ttl_ms;
	e->older = a->newest;
	e->newer = NULL;
	if (a->newest)
		a->newest->newer = e;
	else
		a->oldest = e;
	a->newest = e;
	if (++a->nanswered > CACHE_MAX)
		entry_remove(a, a->oldest);
}

static void
answer(auth_done_cb *done, void *ctx, struct principal *p, const char *error)
{
	done(ctx, p, p == NULL ? error : NULL);
}

static void lookup_done(struct dbjob *dj);

/* Answer from the cache, wait for a lookup under way, or start one. */
static void
lookup(struct auth *a, enum entry_kind kind, const unsigned char *key, const char *user,
       int64_t expires_ms, auth_done_cb *done, void *ctx)
{
	struct entry *e = entry_find(a, kind, key);
	unsigned char k[KEY_LEN];
	struct waiter *w;
	struct lookup_job *j;
	struct principal *p;

	if (e != NULL && e->state == E_NO) {
		answer(done, ctx, NULL, "unknown, expired or revoked API token");
		return;
	}
	if (e != NULL && e->state == E_YES) {
		p = principal_dup(e->p); /* a callback may make the cache drop e */
		if (kind == E_USER)
			p->expires_ms = expires_ms;
		answer(done, ctx, p, NULL);
		principal_free(&p);
		return;
	}
	w = mycalloc(1, sizeof(*w));
	w->done = done;
	w->ctx = ctx;
	w->expires_ms = expires_ms;
	if (e != NULL) { /* pending: wait with the others */
		*e->waiters_tail = w;
		e->waiters_tail = &w->next;
		return;
	}
	e = mycalloc(1, sizeof(*e));
	j = mycalloc(1, sizeof(*j));
	e->state = E_PENDING;
	e->waiters = w;
	e->waiters_tail = &w->next;
	table_key(k, kind, key);
	e->hent = htable_enter(a->cache, k, sizeof(k), e);

	j->job.run = lookup_run;
	j->job.done = lookup_done;
	j->job.no_retry = true; /* a client waits: fail fast when the database is down */
	j->a = a;
	j->kind = kind;
	memcpy(j->key, key, TOKEN_HASH_LEN);
	j->user = user ? mystrdup(user) : NULL;
	j->next = a->jobs;
	if (a->jobs)
		a->jobs->prev = j;
	a->jobs = j;
	dbworker_submit(a->db, &j->job);
}

static void
job_free(struct lookup_job *j)
{
	principal_free(&j->p);
	free(j->user);
	free(j);
}

/* Tell every waiter: p (a copy per call for E_USER's expiry), or NULL and error. */
static void
notify(struct waiter *list, struct principal *p, const char *error)
{
	while (list != NULL) {
		struct waiter *w = list;
		list = w->next;
		if (p != NULL && w->expires_ms != 0)
			p->expires_ms = w->expires_ms;
		answer(w->done, w->ctx, p, error);
		free(w);
	}
}

static void
lookup_done(struct dbjob *dj)
{
	struct lookup_job *j = (struct lookup_job *)dj;
	struct auth *a = j->a;
	struct waiter *waiters;
	struct principal *p = NULL;
	struct entry *e;
	unsigned char k[KEY_LEN];
	const char *error = NULL;
	int64_t ttl;

	if (a == NULL) { /* auth_free() has answered the waiters */
		job_free(j);
		return;
	}
	if (j->prev)
		j->prev->next = j->next;
	else
		a->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	table_key(k, j->kind, j->key);
	if ((e = htable_find(a->cache, k, sizeof(k))) == NULL || e->state != E_PENDING)
		msg_panic("auth: a finished lookup has no pending entry");
	waiters = e->waiters;
	e->waiters = NULL;

	if (j->job.failed || j->found < 0) {
		if (!j->job.failed)
			msg_error("auth: %s", j->error);
		entry_answered(a, e, E_PENDING, 0);
		if (j->kind == E_USER) {
			/* no admin domains then: less than the user may have, never more */
			principal_free(&j->p);
			j->p = mycalloc(1, sizeof(*j->p));
			j->p->user = mystrdup(j->user);
			p = principal_dup(j->p);
		} else
			error = auth_error_db;
	} else if (j->found == 0) {
		entry_answered(a, e, E_NO, NEGATIVE_MS);
		error = "unknown, expired or revoked API token";
	} else {
		int64_t now = time_now_ms();
		ttl = AUTH_CACHE_MS;
		if (j->kind == E_TOKEN && j->p->expires_ms - now < ttl)
			ttl = j->p->expires_ms - now;
		p = principal_dup(j->p);
		e->p = j->p;
		j->p = NULL;
		entry_answered(a, e, E_YES, ttl);
		if (j->kind == E_TOKEN && principal_expired(p, now)) {
			principal_free(&p);
			error = "the API token has expired";
		}
	}
	job_free(j);
	notify(waiters, p, error);
	principal_free(&p);
}

/* --- the API ------------------------------------------------------------------------- */

/* auth_free(): tell a pending entry's waiters, and free the entry. */
static void
entry_stopping(void *value)
{
	struct entry *e = value;
	struct waiter *waiters = e->waiters;

	e->waiters = NULL;
	notify(waiters, NULL, "statusd is stopping");
	principal_free(&e->p);
	free(e);
}

struct auth *
auth_new(const struct sd_config *cfg, struct dbworker *db, const char **error_r)
{
	struct auth *a = mycalloc(1, sizeof(*a));

	a->cfg = cfg;
	a->db = db;
	a->cache = htable_create(CACHE_MAX);
	if (cfg->auth_secret_file != NULL && cfg->auth_secret_file[0] != '\0') {
		if (token_secret_load("auth_secret_file", cfg->auth_secret_file, &a->secret,
		                      &a->secret_len, error_r) < 0) {
			htable_free(&a->cache, NULL);
			free(a);
			return NULL;
		}
	} else
		msg_info("auth_secret_file is not set: only API tokens are accepted");
	return a;
}

void
auth_free(struct auth **ap)
{
	struct auth *a = *ap;

	if (a == NULL)
		return;
	*ap = NULL;
	for (struct lookup_job *j = a->jobs; j != NULL; j = j->next)
		j->a = NULL; /* their done() only frees them now */
	htable_free(&a->cache, entry_stopping);
	token_secret_free(&a->secret, a->secret_len);
	free(a);
}

void
auth_check(struct auth *a, const char *token, auth_done_cb *done, void *ctx)
{
	unsigned char key[TOKEN_HASH_LEN];
	struct token_claims claims;
	const char *error;
	size_t n;

	if (token == NULL || token[0] == '\0') {
		answer(done, ctx, NULL, "no token");
		return;
	}
	if ((n = strnlen(token, AUTH_TOKEN_MAX + 1)) > AUTH_TOKEN_MAX) {
		answer(done, ctx, NULL, "the token is too long");
		return;
	}
	if (strncmp(token, TOKEN_API_PREFIX, sizeof(TOKEN_API_PREFIX) - 1) == 0) {
		if (!token_api_valid(token)) {
			answer(done, ctx, NULL, "a malformed API token");
			return;
		}
		token_sha256(token, n, key);
		lookup(a, E_TOKEN, key, NULL, 0, done, ctx);
		return;
	}
	if (memchr(token, '.', n) == NULL) {
		answer(done, ctx, NULL, "neither an API token nor a signed token");
		return;
	}
	if (a->secret == NULL) {
		answer(done, ctx, NULL,
		       "signed tokens are not accepted (auth_secret_file is empty)");
		return;
	}
	if (token_jwt_verify(token, a->secret, a->secret_len, time_now_ms(),
	                     a->cfg->auth_token_max_lifetime, &claims, &error) < 0) {
		answer(done, ctx, NULL, errfmt("signed token: %s", error));
		return;
	}
	token_sha256(claims.user, strlen(claims.user), key);
	lookup(a, E_USER, key, claims.user, claims.expires_ms, done, ctx);
	token_claims_free(&claims);
}
