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
#include "mymalloc.h"
#include "rfc3339.h"
#include "spool.h"

#define SHIPPER_WINDOW 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define POLL_IDLE_MS   1000
#define HELD_MAX       (1024 * 1024) /* bytes of records held in memory (shipper_hold) */

/* A record sent and not answered yet: where it is in the spool, or its length in sending. */
struct inflight {
	struct spool_pos pos;
	size_t held_len; /* > 0: a record of s->sending, not of the spool */
};

struct shipper {
	struct spool *sp;
	pthread_t thread;
	pthread_mutex_t lock;
	int stopping; /* under lock */
	int64_t stop_deadline;

	char *wanted_socket; /* under lock: set by shipper_set_socket */
	struct mbuf held;    /* under lock: records the spool could not take (shipper_hold) */

	/* thread only */
	struct evclient *client;
	char *socket_path;
	struct inflight *positions; /* ring, parallel to the client's unanswered records */
	size_t phead, pcount;
	struct mbuf sending; /* held records taken for sending: answered up to sent, queued */
	size_t sent, queued; /* up to queued */
	int64_t next_attempt;
	long long backoff;
	bool down_logged;
};

static void
on_reply(void *ctx, uint64_t cookie, bool ok, const char *error)
{
	struct shipper *s = ctx;
	struct inflight in = s->positions[s->phead];
	const char *why;

	(void)cookie;
	s->phead = (s->phead + 1) % SHIPPER_WINDOW;
	s->pcount--;
	if (!ok)
		msg_error("statusd rejected a%s event for good: %s",
		          in.held_len ? "n in-memory" : " spooled", error);
	if (in.held_len > 0) {
		if ((s->sent += in.held_len) == s->sending.len) {
			mbuf_reset(&s->sending);
			s->sent = s->queued = 0;
		}
	} else if (spool_commit(s->sp, &in.pos, &why) < 0)
		msg_warn("%s", why);
}

/* The held records taken for sending and not answered go back in front of the held. */
static void
unsend(struct shipper *s)
{
	if (s->sent < s->sending.len) {
		struct mbuf back = MBUF_INIT;
		mbuf_append(&back, s->sending.data + s->sent, s->sending.len - s->sent);
		pthread_mutex_lock(&s->lock);
		mbuf_append(&back, s->held.data, s->held.len);
		mbuf_free(&s->held);
		s->held = back;
		pthread_mutex_unlock(&s->lock);
	}
	mbuf_reset(&s->sending);
	s->sent = s->queued = 0;
}

static void
disconnect(struct shipper *s, const char *why)
{
	evclient_disconnect(s->client, NULL, NULL);
	s->pcount = 0;
	s->phead = 0;
	spool_rewind(s->sp);
	unsend(s);
	if (!s->down_logged)
		msg_warn("statusd unavailable (%s): events are kept in the spool and sent later",
		         why);
	s->down_logged = true;
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
		wanted = mystrdup(s->wanted_socket);
	pthread_mutex_unlock(&s->lock);
	if (wanted == NULL)
		return;
	if (s->client != NULL) {
		msg_info("event socket is now %s", wanted);
		evclient_disconnect(s->client, NULL, NULL);
		evclient_free(&s->client);
		s->pcount = s->phead = 0;
		spool_rewind(s->sp);
		unsend(s);
	}
	free(s->socket_path);
	s->socket_path = wanted;
	s->client = evclient_new(s->socket_path);
	s->next_attempt = 0;
}

/* Queue held records while the window has room, after everything spooled before them. */
static void
fill_held(struct shipper *s)
{
	if (s->sending.len == 0) {
		/* swapped: the held take the emptied buffer, to fill again */
		pthread_mutex_lock(&s->lock);
		if (s->held.len > 0) {
			struct mbuf empty = s->sending;
			s->sending = s->held;
			s->held = empty;
		}
		pthread_mutex_unlock(&s->lock);
		s->sent = s->queued = 0;
	}
	while (s->pcount < SHIPPER_WINDOW && s->queued < s->sending.len) {
		const char *p = s->sending.data + s->queued;
		const char *nl = memchr(p, '\n', s->sending.len - s->queued);
		size_t len = (size_t)(nl - p + 1); /* shipper_hold takes whole lines only */

		s->positions[(s->phead + s->pcount) % SHIPPER_WINDOW] =
		        (struct inflight){.held_len = len};
		s->pcount++;
		s->queued += len;
		evclient_queue(s->client, p, len, 0);
	}
}

/* Queue spooled records while the window has room, then the held ones. true if it read
   all the spool has (and the window has room for more). */
static bool
fill(struct shipper *s, struct mbuf *rec)
{
	const char *why;
	int rc;

	while (s->pcount < SHIPPER_WINDOW) {
		struct spool_pos pos;

		if ((rc = spool_read(s->sp, rec, &pos, &why)) <= 0) {
			if (rc < 0)
				msg_error("%s", why);
			else
				fill_held(s);
			return rc == 0 && s->pcount < SHIPPER_WINDOW;
		}
		s->positions[(s->phead + s->pcount) % SHIPPER_WINDOW] =
		        (struct inflight){.pos = pos};
		s->pcount++;
		evclient_queue(s->client, rec->data, rec->len, 0);
	}
	return false;
}

/* At the end: what is still held goes to the spool if it takes it now, or is lost, loudly. */
static void
save_held(struct shipper *s)
{
	struct mbuf left;
	const char *why;
	size_t n = 0;

	unsend(s);
	pthread_mutex_lock(&s->lock);
	left = s->held;
	s->held = (struct mbuf)MBUF_INIT;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < left.len; i++)
		n += left.data[i] == '\n';
	if (n > 0) {
		if (spool_append(s->sp, left.data, left.len, &why) == 0)
			msg_info("stopping: %zu event%s held in memory went to the spool", n,
			         n == 1 ? "" : "s");
		else
			msg_error("stopping: %zu event%s held in memory LOST: %s", n,
			          n == 1 ? "" : "s", why);
	}
	mbuf_free(&left);
	mbuf_free(&s->sending);
}

static void
log_back(struct shipper *s)
{
	struct spool_stats st;
	size_t held;

	spool_stats(s->sp, &st);
	pthread_mutex_lock(&s->lock);
	held = s->held.len + s->sending.len;
	pthread_mutex_unlock(&s->lock);
	msg_info("statusd is back: sending %llu spooled bytes, %zu in memory",
	         (unsigned long long)st.backlog, held);
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
		bool idle;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		idle = s->pcount == 0 && s->sending.len == 0 && s->held.len == 0;
		pthread_mutex_unlock(&s->lock);
		check_socket(s);
		if (stopping && (idle || now >= s->stop_deadline))
			break;

		if (!evclient_connected(s->client) && now >= s->next_attempt) {
			if (evclient_connect(s->client, &why) < 0)
				disconnect(s, why);
			else {
				if (s->down_logged)
					log_back(s);
				s->down_logged = false;
				s->backoff = 0;
			}
		}
		if (evclient_connected(s->client)) {
			/* woken by the next append only when it has read everything and has
			   room: not per record while it is behind, nor while statusd is away */
			if (!stopping && fill(s, &rec) && !spool_notify_arm(s->sp))
				timeout = 0; /* appended meanwhile */
			else if (stopping)
				fill_held(s); /* the spool keeps its records; memory does not */
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
	save_held(s);
	return NULL;
}

struct shipper *
shipper_start(struct spool *sp, const char *socket_path)
{
	struct shipper *s = mycalloc(1, sizeof(*s));
	int rc;

	s->positions = mycalloc(SHIPPER_WINDOW, sizeof(*s->positions));
	s->sp = sp;
	s->wanted_socket = mystrdup(socket_path);
	pthread_mutex_init(&s->lock, NULL);
	if ((rc = pthread_create(&s->thread, NULL, shipper_main, s)) != 0)
		msg_fatal("cannot start the shipper thread: %s", strerror(rc));
	return s;
}

void
shipper_set_socket(struct shipper *s, const char *socket_path)
{
	char *copy = mystrdup(socket_path);

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

int
shipper_hold(struct shipper *s, const char *recs, size_t len, size_t *held_r)
{
	int rc = -1;

	if (len == 0 || recs[len - 1] != '\n')
		return -1;
	pthread_mutex_lock(&s->lock);
	if (!s->stopping && s->held.len + len <= HELD_MAX) {
		mbuf_append(&s->held, recs, len);
		rc = 0;
	}
	*held_r = s->held.len;
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		spool_wakeup(s->sp);
	return rc;
}
