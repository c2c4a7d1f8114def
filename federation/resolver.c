/*
 * resolver - DNS TXT lookups through libunbound, with a TTL cache. See resolver.h.
 */
#include "resolver.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"

#define RR_TYPE_TXT    16
#define RR_CLASS_IN    1
#define NAME_MAX_LEN   253
#define DISPATCH_POLL  100 /* ms between looks at the stop flag */
#define FLIGHT_KEY_MAX 300 /* dnscache_key(): "16/" and a name of NAME_MAX_LEN */

/* One query in flight: owned by the caller until it gives up, then by the callback. */
struct query {
	struct resolver *r;
	bool done, abandoned;
	int err;
	struct ub_result *result;
};

/* One name being looked up, for the lookups of the same name that wait for it (all under
   the resolver's lock): made by the lookup that queries, freed by the last one to leave. */
struct flight {
	char key[FLIGHT_KEY_MAX];
	struct flight *next; /* in resolver.flights, until done */
	unsigned refs;       /* the lookup that queries and those waiting */
	bool done;
	struct dns_txt *answer; /* when done */
	const char *error;      /* static text, for a DNS_TEMPFAIL or DNS_BOGUS answer */
};

struct resolver {
	struct ub_ctx *ub;
	struct resolver_settings s;
	pthread_mutex_t lock; /* cache, counters, flights, queries' done/abandoned */
	pthread_cond_t answered;
	struct dnscache *cache;
	struct flight *flights; /* names being looked up */
	uint64_t queries, hits, joined;
	pthread_t dispatcher;
	bool started;
	int stop; /* set once, atomically; the dispatcher looks at it between polls */
};

static void
query_done(void *arg, int err, struct ub_result *result)
{
	struct query *q = arg;
	struct resolver *r = q->r;

	pthread_mutex_lock(&r->lock);
	if (q->abandoned) {
		pthread_mutex_unlock(&r->lock);
		if (result != NULL)
			ub_resolve_free(result);
		free(q);
		return;
	}
	q->done = true;
	q->err = err;
	q->result = result;
	pthread_cond_broadcast(&r->answered);
	pthread_mutex_unlock(&r->lock);
}

static void *
dispatch_main(void *arg)
{
	struct resolver *r = arg;
	struct pollfd pfd = {.fd = ub_fd(r->ub), .events = POLLIN};

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int n = poll(&pfd, 1, DISPATCH_POLL);

		if (n > 0 && ub_process(r->ub) != 0)
			msg_warn("resolver: ub_process failed");
		else if (n < 0 && errno != EINTR)
			msg_warn("resolver: poll: %s", strerror(errno));
	}
	return NULL;
}

struct resolver *
resolver_new(const struct resolver_settings *s, const char **error_r)
{
	struct resolver *r = mycalloc(1, sizeof(*r));
	char ttl[32];
	int rc;

	r->s = *s;
	r->s.server = NULL;
	r->s.trust_anchor_file = NULL;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->answered, NULL);
	r->cache = dnscache_new(s->cache_max_entries);
	if ((r->ub = ub_ctx_create()) == NULL) {
		*error_r = "cannot create a libunbound context";
		goto bad;
	}
	/* libunbound's worker as a thread, never a forked process */
	if ((rc = ub_ctx_async(r->ub, 1)) != 0) {
		*error_r = errfmt("libunbound: threads: %s", ub_strerror(rc));
		goto bad;
	}
	/* libunbound keeps answers too: no longer than ours (whole seconds, rounded up) */
	snprintf(ttl, sizeof(ttl), "%lld", (long long)((s->cache_max_ttl_ms + 999) / 1000));
	if ((rc = ub_ctx_set_option(r->ub, "cache-max-ttl:", ttl)) != 0 ||
	    (rc = ub_ctx_set_option(r->ub, "cache-max-negative-ttl:", ttl)) != 0) {
		*error_r = errfmt("libunbound: cache-max-ttl %s: %s", ttl, ub_strerror(rc));
		goto bad;
	}
	if (s->server != NULL && *s->server != '\0') {
		/* A private server on loopback is allowed: the setting names it on purpose. */
		if ((rc = ub_ctx_set_option(r->ub, "do-not-query-localhost:", "no")) != 0 ||
		    (rc = ub_ctx_set_fwd(r->ub, s->server)) != 0) {
			*error_r = errfmt("dns_server %s: %s (expected ADDRESS or ADDRESS@PORT)",
			                  s->server, ub_strerror(rc));
			goto bad;
		}
	} else if ((rc = ub_ctx_resolvconf(r->ub, NULL)) != 0) {
		/* no resolv.conf (a container, a chroot): libunbound resolves from the root */
		msg_warn("resolver: /etc/resolv.conf: %s; resolving from the root servers",
		         ub_strerror(rc));
	}
	if (s->trust_anchor_file != NULL && *s->trust_anchor_file != '\0' &&
	    (rc = ub_ctx_add_ta_file(r->ub, s->trust_anchor_file)) != 0) {
		*error_r = errfmt("dns_trust_anchor_file %s: %s", s->trust_anchor_file,
		                  ub_strerror(rc));
		goto bad;
	}
	if ((rc = pthread_create(&r->dispatcher, NULL, dispatch_main, r)) != 0) {
		*error_r = errfmt("cannot start the resolver thread: %s", strerror(rc));
		goto bad;
	}
	r->started = true;
	return r;
bad:
	resolver_free(&r);
	return NULL;
}

void
resolver_free(struct resolver **rp)
{
	struct resolver *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (r->started) {
		__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
		pthread_join(r->dispatcher, NULL);
	}
	if (r->ub != NULL)
		ub_ctx_delete(r->ub);
	dnscache_free(&r->cache);
	pthread_cond_destroy(&r->answered);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static bool
name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

static struct dns_txt *
answer_new(enum dns_status status)
{
	struct dns_txt *t = mycalloc(1, sizeof(*t));

	t->status = status;
	return t;
}

/* libunbound's result as an answer. */
static struct dns_txt *
answer_from(const struct ub_result *res, const char **error_r)
{
	struct dns_txt *t;
	size_t n = 0;

	if (res->bogus) {
		char why[200];

		msg_clean(why, sizeof(why), res->why_bogus ? res->why_bogus : "",
		          res->why_bogus ? strlen(res->why_bogus) : 0);
		msg_warn("resolver: DNSSEC validation failed: %s", why);
		*error_r = "DNSSEC validation failed";
		return answer_new(DNS_BOGUS);
	}
	if (res->rcode != 0 && res->rcode != 3 /* NXDOMAIN */) {
		*error_r = res->rcode == 2 ? "SERVFAIL" : "the server refused the query";
		return answer_new(DNS_TEMPFAIL);
	}
	if (!res->havedata || res->data == NULL)
		return answer_new(DNS_NODATA);
	t = answer_new(DNS_OK);
	t->secure = res->secure != 0;
	while (res->data[n] != NULL && n < RESOLVER_TXT_MAX)
		n++;
	t->data = myreallocarray(NULL, n, sizeof(*t->data));
	t->len = myreallocarray(NULL, n, sizeof(*t->len));
	for (size_t i = 0; i < n; i++) {
		if (res->len[i] < 0 ||
		    dns_txt_rdata((const unsigned char *)res->data[i], (size_t)res->len[i],
		                  &t->data[t->n], &t->len[t->n]) < 0) {
			msg_warn("resolver: a malformed TXT record ignored");
			continue;
		}
		t->n++;
	}
	if (t->n == 0)
		t->status = DNS_NODATA;
	return t;
}

/* The absolute time timeout_ms from now, for pthread_cond_timedwait(). */
static struct timespec
deadline(int64_t timeout_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000);
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

/* Leave flight f (lock held): the last one frees it. */
static void
flight_leave(struct flight *f)
{
	if (--f->refs > 0)
		return;
	dns_txt_free(&f->answer);
	free(f);
}

/* The lookup of name that is in flight, or NULL (lock held). */
static struct flight *
flight_find(struct resolver *r, const char *key)
{
	for (struct flight *f = r->flights; f != NULL; f = f->next)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

/* Wait, at most the lookup timeout, for the answer of flight f, which another lookup is
   getting (lock held on entry and return). */
static struct dns_txt *
flight_wait(struct resolver *r, struct flight *f, const char **error_r)
{
	struct timespec until = deadline(r->s.timeout_ms);
	struct dns_txt *t;

	f->refs++;
	r->joined++;
	while (!f->done)
		if (pthread_cond_timedwait(&r->answered, &r->lock, &until) == ETIMEDOUT && !f->done)
			break;
	if (f->done) {
		t = dns_txt_copy(f->answer);
		if (f->error != NULL)
			*error_r = f->error;
	} else {
		t = answer_new(DNS_TEMPFAIL);
		*error_r = "timed out";
	}
	flight_leave(f);
	return t;
}

/* The query itself: the answer, and (for DNS_OK and DNS_NODATA) the cache filled. */
static struct dns_txt *
query(struct resolver *r, const char *name, const char **error_r)
{
	struct dns_txt *t;
	struct query *q;
	struct timespec until;
	int64_t ttl_ms;
	int rc, id;
	bool gave_up = false;

	q = mycalloc(1, sizeof(*q));
	q->r = r;
	rc = ub_resolve_async(r->ub, name, RR_TYPE_TXT, RR_CLASS_IN, q, query_done, &id);
	if (rc != 0) {
		free(q);
		*error_r = ub_strerror(rc);
		return answer_new(DNS_TEMPFAIL);
	}
	until = deadline(r->s.timeout_ms);
	pthread_mutex_lock(&r->lock);
	while (!q->done)
		if (pthread_cond_timedwait(&r->answered, &r->lock, &until) == ETIMEDOUT &&
		    !q->done) {
			q->abandoned = true;
			gave_up = true;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	if (gave_up) {
		/* Exactly one of us frees q: the callback if it runs, else we do (a cancel that
		   fails for want of memory or a socket leaks q rather than risk a double free). */
		if (ub_cancel(r->ub, id) == 0)
			free(q);
		*error_r = "timed out";
		return answer_new(DNS_TEMPFAIL);
	}
	if (q->err != 0 || q->result == NULL) {
		*error_r = ub_strerror(q->err);
		t = answer_new(DNS_TEMPFAIL);
	} else
		t = answer_from(q->result, error_r);
	if (t->status == DNS_OK || t->status == DNS_NODATA) {
		ttl_ms = q->result->ttl > 0        ? (int64_t)q->result->ttl * 1000
		         : t->status == DNS_NODATA ? r->s.negative_ttl_ms
		                                   : 0;
		if (ttl_ms > r->s.cache_max_ttl_ms)
			ttl_ms = r->s.cache_max_ttl_ms;
		pthread_mutex_lock(&r->lock);
		dnscache_put(r->cache, RR_TYPE_TXT, name, t, time_mono_ms(), ttl_ms);
		pthread_mutex_unlock(&r->lock);
	}
	if (q->result != NULL)
		ub_resolve_free(q->result);
	free(q);
	return t;
}

struct dns_txt *
resolver_txt(struct resolver *r, const char *name, const char **error_r)
{
	struct dns_txt *t;
	struct flight *f;
	char key[FLIGHT_KEY_MAX];
	const char *error = NULL;

	if (!name_ok(name) || dnscache_key(RR_TYPE_TXT, name, key, sizeof(key)) < 0) {
		*error_r = "not a DNS name";
		return answer_new(DNS_NODATA);
	}
	pthread_mutex_lock(&r->lock);
	t = dnscache_get(r->cache, RR_TYPE_TXT, name, time_mono_ms());
	if (t != NULL) {
		r->hits++;
		pthread_mutex_unlock(&r->lock);
		return t;
	}
	if ((f = flight_find(r, key)) != NULL) {
		t = flight_wait(r, f, error_r);
		pthread_mutex_unlock(&r->lock);
		return t;
	}
	f = mycalloc(1, sizeof(*f));
	memcpy(f->key, key, sizeof(key));
	f->refs = 1;
	f->next = r->flights;
	r->flights = f;
	r->queries++;
	pthread_mutex_unlock(&r->lock);

	t = query(r, name, &error);

	pthread_mutex_lock(&r->lock);
	for (struct flight **p = &r->flights; *p != NULL; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	f->done = true;
	f->answer = dns_txt_copy(t);
	f->error = error;
	pthread_cond_broadcast(&r->answered);
	flight_leave(f);
	pthread_mutex_unlock(&r->lock);
	if (error != NULL)
		*error_r = error;
	return t;
}

void
resolver_counters(struct resolver *r, uint64_t *queries_r, uint64_t *cache_hits_r,
                  uint64_t *joined_r)
{
	pthread_mutex_lock(&r->lock);
	*queries_r = r->queries;
	*cache_hits_r = r->hits;
	*joined_r = r->joined;
	pthread_mutex_unlock(&r->lock);
}
