/*
 * front - statusd's HTTP listening socket; see front.h.
 */
#include "front.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "reqhead.h"
#include "rfc3339.h"
#include "routes.h"
#include "sdconfig.h"

#define ACCEPT_BURST 64   /* connections accepted per turn of the loop */
#define LINGER_MS    2000 /* how long a refused client's last bytes are read and dropped */

struct front {
	uv_loop_t *loop;
	struct lws_vhost *vhost;
	const struct sd_config *cfg;
	bool tls;
	int fd;
	uv_poll_t listen;
	uv_timer_t tick;
	struct fconn *head, *tail; /* waiting, oldest first */
	struct fbody *bodies;      /* read, not taken yet */
	front_handoff_fn *handoff; /* feed requests to other loops, or NULL */
	void *handoff_ctx;
	long long waiting;
	int handles; /* open uv handles; the front is freed when the last closes */
	bool paused; /* out of file descriptors: accepting again on the next tick */
	bool stopping;
};

/* A connection whose head is still arriving, or that was refused and is lingering. */
struct fconn {
	struct front *f;
	int fd;
	uv_poll_t poll;
	bool polling;   /* poll is initialized */
	bool lingering; /* answered with an error: the rest is read and dropped */
	int64_t deadline;
	struct fconn *prev, *next;
	struct reqhead_scan scan;
	struct reqhead head; /* once the head passed: what lws gets */
	long long body_left; /* -1 while the head arrives, then bytes of body to read */
	struct mbuf body;    /* what arrived of it */
	size_t len;
	char buf[REQHEAD_MAX];
};

/* A request body read here, for http.c to take when lws reports the request. */
struct fbody {
	int fd;
	struct mbuf body;
	struct fbody *next;
};

static void front_release(struct front *f);
static void body_forget(struct front *f, int fd);
static void on_tick(uv_timer_t *timer);

/* --- the waiting list ------------------------------------------------------------------ */

static void
list_add(struct fconn *c)
{
	struct front *f = c->f;

	c->prev = f->tail;
	c->next = NULL;
	if (f->tail != NULL)
		f->tail->next = c;
	else
		f->head = c;
	f->tail = c;
	if (f->waiting++ == 0)
		uv_timer_start(&f->tick, on_tick, 1000, 1000);
}

static void
list_remove(struct fconn *c)
{
	struct front *f = c->f;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		f->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		f->tail = c->prev;
	c->prev = c->next = NULL;
	if (--f->waiting == 0 && !f->paused)
		uv_timer_stop(&f->tick);
}

/* --- connections ----------------------------------------------------------------------- */

static void
conn_closed(uv_handle_t *handle)
{
	struct fconn *c = handle->data;
	struct front *f = c->f;

	free(c);
	f->handles--;
	front_release(f);
}

/* Forget c; close its socket unless it went to lws. */
static void
conn_free(struct fconn *c, bool close_fd)
{
	bool polling = c->polling;
	int fd = c->fd;

	list_remove(c);
	mbuf_free(&c->head.out);
	mbuf_free(&c->body);
	if (polling)
		uv_close((uv_handle_t *)&c->poll, conn_closed); /* stops watching fd now */
	else
		free(c);
	if (close_fd) /* after libuv has stopped watching it */
		close(fd);
}

static void on_conn_readable(uv_poll_t *handle, int status, int events);

static int
conn_watch(struct fconn *c)
{
	if (!c->polling) {
		if (uv_poll_init_socket(c->f->loop, &c->poll, c->fd) != 0)
			return -1;
		c->poll.data = c;
		c->polling = true;
		c->f->handles++;
	}
	return uv_poll_start(&c->poll, UV_READABLE, on_conn_readable) == 0 ? 0 : -1;
}

/* Answer a head that fails a check, then linger. */
static void
conn_refuse(struct fconn *c, unsigned status, const char *error)
{
	const char *reason = reqhead_reason(status);
	char body[512], out[1024];
	int blen, n;

	msg_info("http: refused a request: %u %s: %s", status, reason, error);
	blen = snprintf(
	        body, sizeof(body),
	        "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%u,\"detail\":\"%s\"}\n",
	        reason, status, error);
	n = snprintf(
	        out, sizeof(out),
	        "HTTP/1.1 %u %s\r\nserver: statusd\r\ncontent-type: application/problem+json\r\n"
	        "content-length: %d\r\ncache-control: no-store\r\n"
	        "x-content-type-options: nosniff\r\nconnection: close\r\n\r\n%s",
	        status, reason, blen, body);
	/* a few hundred bytes into an empty send buffer: what does not fit is not sent */
	(void)send(c->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->deadline = time_mono_ms() + LINGER_MS;
	if (conn_watch(c) < 0)
		conn_free(c, true);
}

/* Drop a body nobody took: its connection (which had this fd) is gone. */
static void
body_forget(struct front *f, int fd)
{
	for (struct fbody **p = &f->bodies; *p != NULL; p = &(*p)->next)
		if ((*p)->fd == fd) {
			struct fbody *b = *p;
			*p = b->next;
			mbuf_free(&b->body);
			free(b);
			return;
		}
}

/* A GET of a feed's path (the SSE path, or the WebSocket path with an upgrade) in the
   origin form: one that another loop may serve. */
static bool
feed_request(const struct fconn *c)
{
	const char *line = c->buf + strspn(c->buf, "\r\n");
	char path[128];
	const struct route *rt;
	size_t n;

	if (c->body.len > 0 || strncmp(line, "GET /", 5) != 0)
		return false;
	line += 4;
	n = strcspn(line, " ?\r\n");
	if (n >= sizeof(path))
		return false;
	memcpy(path, line, n);
	path[n] = '\0';
	if ((rt = route_find(-1, path, NULL)) == NULL)
		return false;
	return c->head.upgrade ? rt->kind == ROUTE_WS : rt->kind == ROUTE_SSE;
}

/* Head and body are in: hand the connection to lws, here or on another loop. */
static void
conn_adopt(struct fconn *c)
{
	struct front *f = c->f;
	struct mbuf head = c->head.out;
	int fd = c->fd;

	if (f->handoff != NULL && feed_request(c)) {
		c->head.out = (struct mbuf)MBUF_INIT;
		conn_free(c, false); /* libuv stops watching fd before another loop starts to */
		if (f->handoff(f->handoff_ctx, fd, &head))
			return;
		goto here;
	}
	if (c->body.len > 0) {
		struct fbody *b = mycalloc(1, sizeof(*b));
		b->fd = fd;
		b->body = c->body;
		b->next = f->bodies;
		f->bodies = b;
		c->body = (struct mbuf)MBUF_INIT;
	}
	c->head.out = (struct mbuf)MBUF_INIT;
	conn_free(c, false); /* libuv stops watching fd before lws starts to */
here:
	if (lws_adopt_socket_vhost_readbuf(f->vhost, fd, head.data, head.len) == NULL) {
		msg_warn("http: the HTTP library could not take a connection");
		body_forget(f, fd);
	}
	mbuf_free(&head);
}

/* The head is in c->buf[0..end), and no byte after it was read: check it, then read the
   body, if there is one. */
static bool
conn_head(struct fconn *c, size_t end)
{
	const char *error, *line;
	unsigned status;

	if ((status = reqhead_check(c->buf, end, &c->head, &error)) != 0) {
		conn_refuse(c, status, error);
		return false;
	}
	if (c->head.content_length > c->f->cfg->http_body_max) {
		conn_refuse(c, 413, "the request body is too large");
		return false;
	}
	/* Only POST and PUT carry a body here, and http.c takes it when lws reports the
	   request; another request's body would wait for nobody (a WebSocket handshake's
	   until the descriptor is reused). */
	line = c->buf + strspn(c->buf, "\r\n"); /* blank lines may come first */
	if (c->head.content_length > 0 && (c->head.upgrade || (strncmp(line, "POST ", 5) != 0 &&
	                                                       strncmp(line, "PUT ", 4) != 0))) {
		conn_refuse(c, 400, "only POST and PUT requests have a body here");
		return false;
	}
	/* a client that waits for leave to send the body: a few bytes into an empty send
	   buffer; a client that does not wait gets the 100 all the same (RFC 9110 §15.2.1) */
	if (c->head.expect_continue && c->head.content_length > 0)
		(void)send(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL | MSG_DONTWAIT);
	c->body_left = c->head.content_length > 0 ? c->head.content_length : 0;
	return true;
}

/*
 * Read what the client sent; pass, refuse or wait on. Bytes of the head are looked at
 * before they are taken (MSG_PEEK), and only the head's are taken; then exactly the body's,
 * so that what follows (WebSocket frames) stays in the socket for lws.
 */
static void
conn_read(struct fconn *c)
{
	unsigned status;
	const char *error;
	ssize_t n;
	long end;

	for (;;) {
		if (c->lingering) {
			char sink[16384];
			if ((n = recv(c->fd, sink, sizeof(sink), 0)) > 0)
				continue;
		} else if (c->body_left == 0) {
			conn_adopt(c);
			return;
		} else if (c->body_left > 0) {
			size_t want = c->body_left > 65536 ? 65536 : (size_t)c->body_left;
			mbuf_reserve(&c->body, want);
			if ((n = recv(c->fd, c->body.data + c->body.len, want, 0)) > 0) {
				c->body.len += (size_t)n;
				c->body.data[c->body.len] = '\0';
				c->body_left -= n;
				continue;
			}
		} else if ((n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_PEEK)) >
		           0) {
			size_t had = c->len;
			end = reqhead_end(c->buf, c->len + (size_t)n, &c->scan, &status, &error);
			if (end < 0) {
				conn_refuse(c, status, error);
				return;
			}
			/* take the head's bytes of those looked at: all, or up to its end */
			c->len = end > 0 ? (size_t)end : c->len + (size_t)n;
			if (recv(c->fd, c->buf + had, c->len - had, 0) != (ssize_t)(c->len - had)) {
				conn_free(c, true);
				return;
			}
			if (end > 0 && !conn_head(c, (size_t)end))
				return;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (conn_watch(c) < 0)
				conn_free(c, true);
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		conn_free(c, true); /* the client closed, or an error */
		return;
	}
}

static void
on_conn_readable(uv_poll_t *handle, int status, int events)
{
	struct fconn *c = handle->data;

	(void)events;
	if (status < 0) {
		conn_free(c, true);
		return;
	}
	conn_read(c);
}

static void
conn_new(struct front *f, int fd)
{
	struct fconn *c;

	if (f->tls) {
		/* the head is encrypted: lws does the TLS handshake and reads it */
		if (lws_adopt_socket_vhost(f->vhost, fd) == NULL)
			msg_warn("http: the HTTP library could not take a connection");
		return;
	}
	if (f->waiting >= f->cfg->http_head_pending_max && f->head != NULL) {
		msg_info("http: %lld connections wait for their request heads "
		         "(http_head_pending_max): closed the oldest",
		         f->waiting);
		conn_free(f->head, true);
	}
	body_forget(f, fd); /* a body left by the last connection with this fd */
	c = mycalloc(1, sizeof(*c));
	c->f = f;
	c->fd = fd;
	c->body_left = -1;
	c->deadline = time_mono_ms() + f->cfg->http_head_timeout;
	list_add(c);
	conn_read(c);
}

bool
front_body_take(struct front *f, int fd, struct mbuf *body)
{
	if (f == NULL) /* stopping */
		return false;
	for (struct fbody **p = &f->bodies; *p != NULL; p = &(*p)->next)
		if ((*p)->fd == fd) {
			struct fbody *b = *p;
			*p = b->next;
			mbuf_free(body);
			*body = b->body;
			free(b);
			return true;
		}
	return false;
}

void
front_handoff(struct front *f, front_handoff_fn *fn, void *ctx)
{
	if (f == NULL)
		return; /* stopped */
	f->handoff = fn;
	f->handoff_ctx = ctx;
}

/* --- listening ------------------------------------------------------------------------- */

static void
on_accept(uv_poll_t *handle, int status, int events)
{
	struct front *f = handle->data;

	(void)events;
	if (status < 0)
		return;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(f->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS &&
			    errno != ENOMEM)
				return; /* EAGAIN, or this connection's error (accept(2)): go on */
			msg_warn("http: accept: %s; accepting again in a second", strerror(errno));
			/* out of descriptors (EMFILE): the socket stays readable, so wait */
			uv_poll_stop(&f->listen);
			f->paused = true;
			uv_timer_start(&f->tick, on_tick, 1000, 1000);
			return;
		}
		/* answers are written in pieces (head, then body; WebSocket frames): without
		   this, Nagle holds a piece back until the peer acknowledges the last one,
		   which a peer that delays its ACKs does for up to 40 ms */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		conn_new(f, fd);
	}
}

/* Each second: close the connections whose head or lingering time is up; accept again
   after a pause. */
static void
on_tick(uv_timer_t *timer)
{
	struct front *f = timer->data;
	int64_t now = time_mono_ms();
	struct fconn *c, *next;

	if (f->paused) {
		f->paused = false;
		uv_poll_start(&f->listen, UV_READABLE, on_accept);
		if (f->waiting == 0)
			uv_timer_stop(&f->tick);
	}
	for (c = f->head; c != NULL; c = next) {
		next = c->next;
		if (c->deadline > now)
			continue;
		if (!c->lingering)
			msg_info("http: a client sent no complete request head within "
			         "http_head_timeout: closed");
		conn_free(c, true);
	}
}

static int
listen_socket(const struct sd_config *cfg)
{
	struct addrinfo hints = {0}, *res, *ai;
	char port[16];
	int fd = -1, one = 1, err;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", cfg->http_port);
	if ((err = getaddrinfo(cfg->http_host, port, &hints, &res)) != 0)
		msg_fatal("http_listen %s: %s", cfg->http_listen, gai_strerror(err));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
		errno = err;
	}
	freeaddrinfo(res);
	if (fd < 0)
		msg_fatal("http_listen %s: cannot listen: %s", cfg->http_listen, strerror(errno));
	return fd;
}

struct front *
front_start(uv_loop_t *loop, const struct sd_config *cfg, struct lws_vhost *vhost)
{
	struct front *f = mycalloc(1, sizeof(*f));

	f->loop = loop;
	f->cfg = cfg;
	f->vhost = vhost;
	f->tls = cfg->http_tls_cert[0] != '\0';
	f->fd = listen_socket(cfg);
	uv_poll_init_socket(loop, &f->listen, f->fd);
	f->listen.data = f;
	uv_timer_init(loop, &f->tick);
	f->tick.data = f;
	f->handles = 2;
	uv_poll_start(&f->listen, UV_READABLE, on_accept);
	return f;
}

static void
front_release(struct front *f)
{
	if (f->stopping && f->handles == 0)
		free(f);
}

static void
front_handle_closed(uv_handle_t *handle)
{
	struct front *f = handle->data;

	f->handles--;
	front_release(f);
}

void
front_stop(struct front **fp)
{
	struct front *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	f->stopping = true;
	while (f->head != NULL)
		conn_free(f->head, true);
	while (f->bodies != NULL)
		body_forget(f, f->bodies->fd);
	uv_close((uv_handle_t *)&f->listen, front_handle_closed);
	close(f->fd);
	uv_close((uv_handle_t *)&f->tick, front_handle_closed);
}
