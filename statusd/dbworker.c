/*
 * dbworker - PostgreSQL work off the event loop. See dbworker.h.
 */
#include "dbworker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "mymalloc.h"
#include "store.h"

struct dbworker {
	char *name;
	char *conninfo;
	long long retry_max_ms;
	int (*on_connect)(PGconn *, void *, const char **);
	void *ctx;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dbjob *head, *tail;           /* submitted, not started */
	struct dbjob *done_head, *done_tail; /* finished, not yet handed to done() */
	bool stopping;
	bool held; /* dbworker_hold() until dbworker_release() */
	bool connected;

	uv_async_t async; /* wakes the loop thread for finished jobs */
	PGconn *conn;     /* worker thread only */
};

static void
push(struct dbjob **head, struct dbjob **tail, struct dbjob *job)
{
	job->next = NULL;
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static struct dbjob *
pop(struct dbjob **head, struct dbjob **tail)
{
	struct dbjob *job = *head;

	if (job) {
		*head = job->next;
		if (*head == NULL)
			*tail = NULL;
		job->next = NULL;
	}
	return job;
}

/* Sleep up to ms, waking early when stopping. Called with the lock held. */
static void
nap(struct dbworker *w, long long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (!w->stopping && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
		;
}

static void
set_connected(struct dbworker *w, bool up, const char *why)
{
	pthread_mutex_lock(&w->lock);
	if (up && !w->connected)
		msg_info("%s: connected to the database", w->name);
	else if (!up && w->connected)
		msg_warn("%s: database unavailable: %s", w->name, why);
	w->connected = up;
	pthread_mutex_unlock(&w->lock);
}

/* Make sure w->conn is usable; false if not (after logging). Worker thread, lock not held. */
static bool
ensure_conn(struct dbworker *w, bool *first_failure)
{
	const char *why;

	if (w->conn != NULL && PQstatus(w->conn) == CONNECTION_OK)
		return true;
	if (w->conn != NULL) {
		PQfinish(w->conn);
		w->conn = NULL;
	}
	w->conn = PQconnectdb(w->conninfo);
	if (PQstatus(w->conn) != CONNECTION_OK) {
		why = store_error(w->conn, NULL);
		if (*first_failure) {
			/* the first failure at start-up is worth a line even if never connected */
			msg_warn("%s: cannot connect to the database: %s", w->name, why);
			*first_failure = false;
		}
		set_connected(w, false, why);
		PQfinish(w->conn);
		w->conn = NULL;
		return false;
	}
	PQsetErrorVerbosity(w->conn, PQERRORS_DEFAULT);
	if (w->on_connect != NULL && w->on_connect(w->conn, w->ctx, &why) < 0) {
		msg_warn("%s: database session set-up failed: %s", w->name, why);
		set_connected(w, false, why);
		PQfinish(w->conn);
		w->conn = NULL;
		return false;
	}
	*first_failure = true;
	set_connected(w, true, NULL);
	return true;
}

static void
finish(struct dbworker *w, struct dbjob *job)
{
	pthread_mutex_lock(&w->lock);
	push(&w->done_head, &w->done_tail, job);
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

static void *
worker_main(void *arg)
{
	struct dbworker *w = arg;
	bool first_failure = true;
	long long backoff = 0;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct dbjob *job;

		while (!w->stopping && w->head == NULL)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stopping)
			break;
		job = pop(&w->head, &w->tail);
		pthread_mutex_unlock(&w->lock);

		for (;;) {
			pthread_mutex_lock(&w->lock);
			while (w->held && !w->stopping && !job->no_retry)
				pthread_cond_wait(&w->cond, &w->lock);
			bool held = w->held;
			pthread_mutex_unlock(&w->lock);
			if (held) {
				job->failed = true; /* a no_retry job, or stopping while held */
				break;
			}
			if (ensure_conn(w, &first_failure)) {
				backoff = 0;
				if (job->run(job, w->conn) == DBW_DONE)
					break;
				/* the connection broke under the job: reconnect and retry */
				if (w->conn != NULL && PQstatus(w->conn) == CONNECTION_OK) {
					/* a transient server-side error: back off anyway */
				} else {
					set_connected(w, false, "connection lost");
				}
			}
			if (job->no_retry) {
				job->failed = true;
				break;
			}
			backoff = backoff == 0 ? 100 : backoff * 2;
			if (backoff > w->retry_max_ms)
				backoff = w->retry_max_ms;
			pthread_mutex_lock(&w->lock);
			nap(w, backoff);
			bool stop = w->stopping;
			pthread_mutex_unlock(&w->lock);
			if (stop) {
				job->failed = true;
				break;
			}
		}
		finish(w, job);
		pthread_mutex_lock(&w->lock);
	}
	/* Fail whatever is still queued. */
	while (w->head != NULL) {
		struct dbjob *job = pop(&w->head, &w->tail);
		job->failed = true;
		push(&w->done_head, &w->done_tail, job);
	}
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
	if (w->conn != NULL)
		PQfinish(w->conn);
	w->conn = NULL;
	return NULL;
}

static void
drain_done(struct dbworker *w)
{
	struct dbjob *list;

	pthread_mutex_lock(&w->lock);
	list = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (list != NULL) {
		struct dbjob *job = list;
		list = job->next;
		job->done(job);
	}
}

static void
on_async(uv_async_t *handle)
{
	drain_done(handle->data);
}

struct dbworker *
dbworker_start(uv_loop_t *loop, const char *name, const char *conninfo, long long retry_max_ms,
               int (*on_connect)(PGconn *, void *, const char **), void *ctx)
{
	struct dbworker *w = mycalloc(1, sizeof(*w));
	int rc;

	w->name = mystrdup(name);
	w->conninfo = mystrdup(conninfo);
	w->retry_max_ms = retry_max_ms > 0 ? retry_max_ms : 5000;
	w->on_connect = on_connect;
	w->ctx = ctx;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (uv_async_init(loop, &w->async, on_async) != 0)
		msg_fatal("uv_async_init failed");
	w->async.data = w;
	if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0)
		msg_fatal("cannot start database thread: %s", strerror(rc));
	return w;
}

void
dbworker_hold(struct dbworker *w)
{
	pthread_mutex_lock(&w->lock);
	w->held = true;
	pthread_mutex_unlock(&w->lock);
}

void
dbworker_release(struct dbworker *w)
{
	pthread_mutex_lock(&w->lock);
	w->held = false;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void
dbworker_submit(struct dbworker *w, struct dbjob *job)
{
	job->failed = false;
	pthread_mutex_lock(&w->lock);
	push(&w->head, &w->tail, job);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void
on_async_closed(uv_handle_t *handle)
{
	struct dbworker *w = handle->data;

	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->name);
	free(w->conninfo);
	free(w);
}

void
dbworker_stop(struct dbworker **wp)
{
	struct dbworker *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	drain_done(w);
	uv_close((uv_handle_t *)&w->async, on_async_closed);
}
