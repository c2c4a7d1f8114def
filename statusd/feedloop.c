/*
 * feedloop - more event loops for the feeds. See feedloop.h.
 */
#include "feedloop.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "dbworker.h"
#include "env.h"
#include "feed.h"
#include "http.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "sdconfig.h"

/* A connection the front handed over, with its checked head. */
struct handed {
	int fd;
	struct mbuf head;
};

struct feedloop {
	struct feedloops *all;
	unsigned index; /* 1..: the first loop is main.c's */
	pthread_t thread;
	uv_loop_t uv;
	uv_async_t async;
	struct dbworker *db, *page_db;
	struct auth *auth;
	struct feed *feed;
	struct http *http;
	pthread_mutex_t lock; /* queue, stop */
	struct handed *queue;
	size_t nqueue, queue_cap;
	bool stop;
};

struct feedloops {
	struct http_env env; /* the first loop's */
	struct feed *first_feed;
	struct http *first_http;
	pthread_barrier_t started;
	unsigned nloops; /* the other loops */
	unsigned next;   /* the loop for the next feed connection, 0 the first */
	struct feedloop *loops;
};

static void
loop_teardown(struct feedloop *l)
{
	feed_free(&l->feed); /* closes the streams while lws is still there */
	http_stop(l->http);
	dbworker_stop(&l->db);
	dbworker_stop(&l->page_db);
	auth_free(&l->auth);
	uv_close((uv_handle_t *)&l->async, NULL);
}

static void
on_async(uv_async_t *a)
{
	struct feedloop *l = a->data;
	struct handed *queue;
	size_t n;
	bool stop;

	pthread_mutex_lock(&l->lock);
	queue = l->queue;
	n = l->nqueue;
	stop = l->stop;
	l->queue = NULL;
	l->nqueue = l->queue_cap = 0;
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < n; i++) {
		if (stop) {
			close(queue[i].fd);
			mbuf_free(&queue[i].head);
		} else
			http_adopt(l->http, queue[i].fd, &queue[i].head);
	}
	free(queue);
	if (stop && l->feed != NULL)
		loop_teardown(l);
}

static void *
loop_main(void *arg)
{
	struct feedloop *l = arg;
	const struct sd_config *cfg = l->all->env.cfg;
	struct http_env env = l->all->env;
	const char *error;
	char name[64];

	uv_loop_init(&l->uv);
	snprintf(name, sizeof(name), "database (feed loop %u)", l->index);
	l->db = dbworker_start(&l->uv, name, cfg->database, cfg->database_retry_max, NULL, NULL);
	snprintf(name, sizeof(name), "database (feed loop %u pages)", l->index);
	l->page_db =
	        dbworker_start(&l->uv, name, cfg->database, cfg->database_retry_max, NULL, NULL);
	/* until the first feed knows the log's head, and so the schema is in place */
	dbworker_hold(l->db);
	dbworker_hold(l->page_db);
	if ((l->auth = auth_new(cfg, l->db, &error)) == NULL)
		msg_fatal("%s", error);
	l->feed = feed_new_follower(&l->uv, l->all->first_feed, l->db, l->page_db);
	env.db = l->db;
	env.feed = l->feed;
	env.auth = l->auth;
	l->http = http_start_loop(&l->uv, &env, l->all->first_http);
	uv_async_init(&l->uv, &l->async, on_async);
	l->async.data = l;
	pthread_barrier_wait(&l->all->started);

	uv_run(&l->uv, UV_RUN_DEFAULT);
	http_free(&l->http, &l->uv);
	uv_run(&l->uv, UV_RUN_DEFAULT);
	if (uv_loop_close(&l->uv) != 0)
		msg_warn("feed loop %u closed with handles still open", l->index);
	return NULL;
}

/* The front (first loop): this feed connection to the next loop in turn. */
static bool
handoff(void *ctx, int fd, struct mbuf *head)
{
	struct feedloops *all = ctx;
	unsigned i = all->next;
	struct feedloop *l;

	all->next = (all->next + 1) % (all->nloops + 1);
	if (i == 0)
		return false; /* this one stays on the first loop */
	l = &all->loops[i - 1];
	pthread_mutex_lock(&l->lock);
	if (l->nqueue == l->queue_cap) {
		l->queue_cap = l->queue_cap ? 2 * l->queue_cap : 64;
		l->queue = myreallocarray(l->queue, l->queue_cap, sizeof(*l->queue));
	}
	l->queue[l->nqueue++] = (struct handed){fd, *head};
	pthread_mutex_unlock(&l->lock);
	*head = (struct mbuf)MBUF_INIT;
	uv_async_send(&l->async);
	return true;
}

struct feedloops *
feedloops_start(const struct http_env *env, struct feed *first_feed, struct http *first_http)
{
	struct feedloops *all;
	int rc;

	if (env->cfg->feed_threads <= 1)
		return NULL;
	if (env->cfg->http_tls_cert[0] != '\0') {
		/* every connection stays on the first loop (its head is encrypted when it is
		   accepted): other loops would have nothing to serve, and each lws context of
		   theirs would load the certificate for nothing */
		msg_info("feeds: served on the first event loop only: with http_tls_cert every "
		         "connection stays on it (feed_threads = %lld not used)",
		         env->cfg->feed_threads);
		return NULL;
	}
	all = mycalloc(1, sizeof(*all));
	all->env = *env;
	all->first_feed = first_feed;
	all->first_http = first_http;
	all->nloops = (unsigned)env->cfg->feed_threads - 1;
	all->loops = mycalloc(all->nloops, sizeof(*all->loops));
	pthread_barrier_init(&all->started, NULL, all->nloops + 1);
	for (unsigned i = 0; i < all->nloops; i++) {
		struct feedloop *l = &all->loops[i];
		l->all = all;
		l->index = i + 1;
		pthread_mutex_init(&l->lock, NULL);
		if ((rc = pthread_create(&l->thread, NULL, loop_main, l)) != 0)
			msg_fatal("feed_threads: cannot start a thread: %s", strerror(rc));
	}
	pthread_barrier_wait(&all->started);
	for (unsigned i = 0; i < all->nloops; i++)
		feed_add_follower(first_feed, all->loops[i].feed);
	http_handoff(first_http, handoff, all);
	msg_info("feeds: served on %u event loops (feed_threads)", all->nloops + 1);
	return all;
}

void
feedloops_stop(struct feedloops **lp, struct feed *first_feed, struct http *first_http)
{
	struct feedloops *all = *lp;

	if (all == NULL)
		return;
	*lp = NULL;
	http_handoff(first_http, NULL, NULL);
	feed_forget_followers(first_feed);
	for (unsigned i = 0; i < all->nloops; i++) {
		struct feedloop *l = &all->loops[i];
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_mutex_unlock(&l->lock);
		uv_async_send(&l->async);
	}
	for (unsigned i = 0; i < all->nloops; i++) {
		pthread_join(all->loops[i].thread, NULL);
		pthread_mutex_destroy(&all->loops[i].lock);
	}
	pthread_barrier_destroy(&all->started);
	free(all->loops);
	free(all);
}
