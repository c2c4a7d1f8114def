/*
 * quota - per-user limits of the HTTP interface. See quota.h.
 */
#include "quota.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "htable.h"
#include "mymalloc.h"
#include "sdconfig.h"

struct quota {
	const struct sd_config *cfg;
	pthread_mutex_t lock;   /* every feed loop counts its connections here */
	struct htable *buckets; /* user -> write rate bucket */
	struct htable *feeds;   /* user -> feed connections open (only while not 0) */
};

struct bucket {
	double tokens;
	int64_t at_ms;
};

struct quota *
quota_new(const struct sd_config *cfg)
{
	struct quota *q = mycalloc(1, sizeof(*q));

	q->cfg = cfg;
	pthread_mutex_init(&q->lock, NULL);
	q->buckets = htable_create(256);
	q->feeds = htable_create(256);
	return q;
}

void
quota_free(struct quota **qp)
{
	struct quota *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	htable_free(&q->buckets, free);
	htable_free(&q->feeds, NULL);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static bool
write_ok(struct quota *q, const char *user, int64_t now_ms, int *retry_s)
{
	const struct sd_config *cfg = q->cfg;
	size_t len = strlen(user);
	struct bucket *b;

	if ((b = htable_find(q->buckets, user, len)) == NULL) {
		b = mycalloc(1, sizeof(*b));
		b->tokens = (double)cfg->write_burst;
		b->at_ms = now_ms;
		htable_enter(q->buckets, user, len, b);
	}
	b->tokens += (double)(now_ms - b->at_ms) * (double)cfg->write_rate / 1000.0;
	if (b->tokens > (double)cfg->write_burst)
		b->tokens = (double)cfg->write_burst;
	b->at_ms = now_ms;
	if (b->tokens < 1.0) {
		*retry_s = (int)((1.0 - b->tokens) / (double)cfg->write_rate) + 1;
		return false;
	}
	b->tokens -= 1.0;
	return true;
}

static bool
feed_take(struct quota *q, const char *user)
{
	size_t len = strlen(user);
	struct htable_entry *e = htable_locate(q->feeds, user, len);
	intptr_t n = e ? (intptr_t)e->value : 0;

	if (n >= q->cfg->feed_max_per_user)
		return false;
	if (e != NULL)
		e->value = (void *)(n + 1);
	else
		htable_enter(q->feeds, user, len, (void *)(intptr_t)1);
	return true;
}

static void
feed_put(struct quota *q, const char *user)
{
	struct htable_entry *e;

	if ((e = htable_locate(q->feeds, user, strlen(user))) == NULL)
		return;
	if ((intptr_t)e->value > 1)
		e->value = (void *)((intptr_t)e->value - 1);
	else
		htable_remove(q->feeds, e, NULL);
}

/* The same under the lock: the feed loops (feedloop.h) share one quota. */
bool
quota_write_ok(struct quota *q, const char *user, int64_t now_ms, int *retry_s)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	ok = write_ok(q, user, now_ms, retry_s);
	pthread_mutex_unlock(&q->lock);
	return ok;
}

bool
quota_feed_take(struct quota *q, const char *user)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	ok = feed_take(q, user);
	pthread_mutex_unlock(&q->lock);
	return ok;
}

void
quota_feed_put(struct quota *q, const char *user)
{
	pthread_mutex_lock(&q->lock);
	feed_put(q, user);
	pthread_mutex_unlock(&q->lock);
}
