/*
 * shipper - a thread that ships a spool to statusd. See shipper.h.
 */
#include "shipper.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "evclient.h"
#include "mbuf.h"
#include "msg.h"
#include "rfc3339.h"
#include "spool.h"

#define SHIPPER_WINDOW 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define POLL_IDLE_MS   1000

struct shipper {
	struct spool *sp;
	pthread_t thread;
	pthread_mutex_t lock;
	int stopping; /* under lock */
	int64_t stop_deadline;
	struct shipper_stats stats; /* under lock */

	char *wanted_socket; /* under lock: set by shipper_set_socket */

	/* thread only */
	struct evclient *client;
	char *socket_path;
	struct spool_pos *positions; /* ring, parallel to the client's unanswered records */
	size_t phead, pcount;
	int64_t next_attempt;
	long long backoff;
	bool down_logged;
};

static void
on_reply(void *ctx, uint64_t cookie, bool ok, const char *error)
{
	struct shipper *s = ctx;
	struct spool_pos pos = s->positions[s->phead];
	const char *why;

	(void)cookie;
	s->phead = (s->phead + 1) % SHIPPER_WINDOW;
	s->pcount--;
	pthread_mutex_lock(&s->lock);
	if (ok)
		s->stats.acked++;
	else
		s->stats.rejected++;
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		msg_error("statusd rejected a spooled event for good: %s", error);
	if (spool_commit(s->sp, &pos, &why) < 0)
		msg_warn("%s", why);
}

static void
disconnect(struct shipper *s, const char *why)
{
	evclient_disconnect(s->client, NULL, NULL);
	s->pcount = 0;
	s->phead = 0;
	spool_rewind(s->sp);
	if (!s->down_logged)
		msg_warn("statusd unavailable (%s): events are kept in the spool and sent later",
		         why);
	s->down_logged = true;
	pthread_mutex_lock(&s->lock);
	s->stats.connected = 0;
	pthread_mutex_unlock(&s->lock);
	s->backoff = s->backoff ? s->backoff * 2 : BACKOFF_MIN_MS;
	if (s->backoff > BACKOFF_MAX_MS)
		s->backoff = BACKOFF_MAX_MS;
	s->next_attempt = time_mono_ms() + s->backoff;
}

/* Follow a change of the event socket. */
static void
check_socket(struct shipper *s)
{
	char *wanted = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->socket_path == NULL || strcmp(s->socket_path, s->wanted_socket) != 0)
		wanted = strdup(s->wanted_socket);
	pthread_mutex_unlock(&s->lock);
	if (wanted == NULL)
		return;
	if (s->client != NULL) {
		msg_info("event socket is now %s", wanted);
		evclient_disconnect(s->client, NULL, NULL);
		evclient_free(&s->client);
		s->pcount = s->phead = 0;
		spool_rewind(s->sp);
	}
	free(s->socket_path);
	s->socket_path = wanted;
	s->client = evclient_new(s->socket_path);
	s->next_attempt = 0;
}

/* Queue spooled records while the window has room. */
static void
fill(struct shipper *s, struct mbuf *rec)
{
	const char *why;
	int rc;

	while (s->pcount < SHIPPER_WINDOW) {
		struct spool_pos pos;

		if ((rc = spool_read(s->sp, rec, &pos, &why)) <= 0) {
			if (rc < 0)
				msg_error("%s", why);
			return;
		}
		s->positions[(s->phead + s->pcount) % SHIPPER_WINDOW] = pos;
		s->pcount++;
		evclient_queue(s->client, rec->data, rec->len, 0);
	}
}

static void *
shipper_main(void *arg)
{
	struct shipper *s = arg;
	struct mbuf rec = MBUF_INIT;
	const char *why;

	for (;;) {
		struct pollfd pfd[2];
		int64_t now = time_mono_ms();
		int timeout = POLL_IDLE_MS, n = 0, stopping;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		pthread_mutex_unlock(&s->lock);
		check_socket(s);
		if (stopping && (s->pcount == 0 || now >= s->stop_deadline))
			break;

		if (!evclient_connected(s->client) && now >= s->next_attempt) {
			if (evclient_connect(s->client, &why) < 0)
				disconnect(s, why);
			else {
				if (s->down_logged) {
					struct spool_stats st;
					spool_stats(s->sp, &st);
					msg_info("statusd is back: sending %llu spooled bytes",
					         (unsigned long long)st.backlog);
				}
				s->down_logged = false;
				s->backoff = 0;
				pthread_mutex_lock(&s->lock);
				s->stats.connected = 1;
				pthread_mutex_unlock(&s->lock);
			}
		}
		if (evclient_connected(s->client)) {
			if (!stopping)
				fill(s, &rec);
			if (evclient_want_write(s->client) && evclient_flush(s->client, &why) < 0) {
				disconnect(s, why);
				continue;
			}
			pfd[n].fd = evclient_fd(s->client);
			pfd[n].events = POLLIN | (evclient_want_write(s->client) ? POLLOUT : 0);
			n++;
		} else {
			int64_t wait = s->next_attempt - now;
			timeout = wait < 0 ? 0 : wait > POLL_IDLE_MS ? POLL_IDLE_MS : (int)wait;
		}
		pfd[n].fd = spool_notify_fd(s->sp);
		pfd[n].events = POLLIN;
		n++;
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		if (pfd[n - 1].revents & POLLIN)
			spool_notify_clear(s->sp);
		if (n == 2 && pfd[0].revents != 0) {
			if (pfd[0].revents & POLLOUT && evclient_flush(s->client, &why) < 0) {
				disconnect(s, why);
				continue;
			}
			if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR) &&
			    evclient_read(s->client, on_reply, s, &why) < 0)
				disconnect(s, why);
		}
	}
	evclient_free(&s->client);
	mbuf_free(&rec);
	return NULL;
}

struct shipper *
shipper_start(struct spool *sp, const char *socket_path)
{
	struct shipper *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL || (s->positions = calloc(SHIPPER_WINDOW, sizeof(*s->positions))) == NULL)
		msg_fatal("out of memory");
	s->sp = sp;
	if ((s->wanted_socket = strdup(socket_path)) == NULL)
		msg_fatal("out of memory");
	pthread_mutex_init(&s->lock, NULL);
	if ((rc = pthread_create(&s->thread, NULL, shipper_main, s)) != 0)
		msg_fatal("cannot start the shipper thread: %s", strerror(rc));
	return s;
}

void
shipper_set_socket(struct shipper *s, const char *socket_path)
{
	char *copy = strdup(socket_path);

	if (copy == NULL)
		msg_fatal("out of memory");
	pthread_mutex_lock(&s->lock);
	free(s->wanted_socket);
	s->wanted_socket = copy;
	pthread_mutex_unlock(&s->lock);
	spool_wakeup(s->sp);
}

void
shipper_stop(struct shipper **sp, int grace_ms)
{
	struct shipper *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	s->stop_deadline = time_mono_ms() + grace_ms;
	pthread_mutex_unlock(&s->lock);
	spool_wakeup(s->sp);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	free(s->wanted_socket);
	free(s->socket_path);
	free(s->positions);
	free(s);
}

void
shipper_stats(struct shipper *s, struct shipper_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}
