/*
 * fanout_loops - WebSocket fan-out on N event loops, for measuring what more than one loop
 * can gain with Debian's libwebsockets (bench/fanout_loops.py; docs/performance.md).
 *
 *	fanout_loops -p PORT -n LOOPS
 *
 * Serves WebSocket connections on 127.0.0.1:PORT with LOOPS threads, each running its own
 * libuv loop with its own lws context, and prints "READY" when every loop runs. Each line
 * read from standard input is a message: it is sent, as one text frame, to every open
 * connection on every loop. At the end of standard input the loops stop and it exits.
 *
 * DESIGN
 *	This is the route docs/performance.md describes for statusd with more than one loop,
 *	without statusd's feed, so that what the loops themselves cost and gain can be
 *	measured apart from it. Debian's libwebsockets 4.1.6 is built with LWS_MAX_SMP 1 (no
 *	service threads), and its LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE does not set
 *	SO_REUSEPORT (a second context's listen() fails with EADDRINUSE). So each loop opens
 *	its own listening socket with SO_REUSEPORT, accepts on it from libuv and hands each
 *	new connection to its lws context (lws_adopt_socket_vhost); the kernel spreads the
 *	connections over the sockets. lws_create_context() and lws_context_destroy() load and
 *	unload lws's event-library plugin (dlopen/dlclose): they are called under one mutex.
 *	A message is one immutable buffer with an atomic reference count: the main thread
 *	hands it to every loop (a mutex-protected queue and a uv_async), and each loop writes
 *	it at once to each connection that has nothing waiting (as statusd's stream.c does),
 *	or takes one reference per connection it queues it on.
 *	Each loop's uv_async is made before the main thread can send on it (a barrier).
 *
 * DIAGNOSTICS
 *	Start-up failures are fatal with a message on standard error. A connection whose
 *	queue of unsent messages is full is closed.
 */
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_LOOPS  16
#define CONN_QUEUE 64  /* messages queued per connection */
#define INBOX      256 /* messages handed to a loop, not yet taken */
#define MSG_MAX    4096

struct msg {
	atomic_int refs;
	size_t len;
	char data[];
};

struct conn {
	struct conn *next, *prev;
	struct lws *wsi;
	struct msg *queue[CONN_QUEUE];
	unsigned head, tail;
};

struct loop {
	pthread_t thread;
	uv_loop_t uv;
	struct lws_context *ctx;
	int listen_fd;
	uv_poll_t accept_poll;
	uv_async_t async;
	pthread_mutex_t lock; /* inbox, stop */
	struct msg *inbox[INBOX];
	unsigned ninbox;
	bool stop;
	struct conn conns; /* the list head (loop thread) */
};

static pthread_mutex_t lws_lock = PTHREAD_MUTEX_INITIALIZER; /* context create/destroy */
static pthread_barrier_t started;
static struct loop loops[MAX_LOOPS];
static int nloops, port;

static void
msg_unref(struct msg *m)
{
	if (atomic_fetch_sub(&m->refs, 1) == 1)
		free(m);
}

static int
on_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct loop *l = lws_context_user(lws_get_context(wsi));
	struct conn *c = user;
	unsigned char buf[LWS_PRE + MSG_MAX];

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		c->wsi = wsi;
		c->prev = &l->conns;
		c->next = l->conns.next;
		l->conns.next->prev = c;
		l->conns.next = c;
		break;
	case LWS_CALLBACK_CLOSED:
		if (c->wsi != NULL) {
			c->prev->next = c->next;
			c->next->prev = c->prev;
			c->wsi = NULL;
		}
		while (c->head != c->tail)
			msg_unref(c->queue[c->head++ % CONN_QUEUE]);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		while (c->head != c->tail && !lws_send_pipe_choked(wsi)) {
			struct msg *m = c->queue[c->head++ % CONN_QUEUE];
			memcpy(buf + LWS_PRE, m->data, m->len);
			int n = lws_write(wsi, buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
			msg_unref(m);
			if (n < 0)
				return -1;
		}
		if (c->head != c->tail)
			lws_callback_on_writable(wsi);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
        {"fanout", on_ws, sizeof(struct conn), 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void
stop_loop(struct loop *l)
{
	uv_poll_stop(&l->accept_poll);
	uv_close((uv_handle_t *)&l->accept_poll, NULL);
	close(l->listen_fd);
	uv_close((uv_handle_t *)&l->async, NULL);
	pthread_mutex_lock(&lws_lock);
	lws_context_destroy(l->ctx);
	pthread_mutex_unlock(&lws_lock);
}

/* Messages handed to this loop: queue each on every connection. */
static void
on_async(uv_async_t *a)
{
	struct loop *l = a->data;
	struct msg *in[INBOX];
	unsigned n;
	bool stop;

	pthread_mutex_lock(&l->lock);
	n = l->ninbox;
	memcpy(in, l->inbox, n * sizeof(in[0]));
	l->ninbox = 0;
	stop = l->stop;
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < n; i++) {
		for (struct conn *c = l->conns.next, *next; c != &l->conns; c = next) {
			next = c->next;
			if (c->tail - c->head == CONN_QUEUE) {
				lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK,
				                LWS_TO_KILL_ASYNC);
				continue; /* a slow consumer */
			}
			if (c->head == c->tail && !lws_partial_buffered(c->wsi)) {
				/* nothing waiting: write now, as statusd does (stream.c) */
				unsigned char buf[LWS_PRE + MSG_MAX];
				memcpy(buf + LWS_PRE, in[i]->data, in[i]->len);
				if (lws_write(c->wsi, buf + LWS_PRE, in[i]->len, LWS_WRITE_TEXT) <
				    0)
					lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK,
					                LWS_TO_KILL_ASYNC);
				continue;
			}
			atomic_fetch_add(&in[i]->refs, 1);
			c->queue[c->tail++ % CONN_QUEUE] = in[i];
			lws_callback_on_writable(c->wsi);
		}
		msg_unref(in[i]);
	}
	if (stop)
		stop_loop(l);
}

static void
on_accept(uv_poll_t *p, int status, int events)
{
	struct loop *l = p->data;
	struct lws_vhost *vh = lws_get_vhost_by_name(l->ctx, "default");
	int fd;

	while ((fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		if (lws_adopt_socket_vhost(vh, fd) == NULL)
			close(fd);
}

static int
listen_shared(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0) {
		perror("fanout_loops: listen");
		exit(1);
	}
	return fd;
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;
	struct lws_context_creation_info info;
	void *foreign[1] = {&l->uv};

	uv_loop_init(&l->uv);
	l->conns.next = l->conns.prev = &l->conns;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = foreign;
	info.user = l;
	info.pcontext = &l->ctx;
	info.timeout_secs = 30;
	pthread_mutex_lock(&lws_lock);
	l->ctx = lws_create_context(&info);
	pthread_mutex_unlock(&lws_lock);
	if (l->ctx == NULL) {
		fprintf(stderr, "fanout_loops: cannot create an lws context\n");
		exit(1);
	}
	l->listen_fd = listen_shared();
	uv_poll_init(&l->uv, &l->accept_poll, l->listen_fd);
	l->accept_poll.data = l;
	uv_poll_start(&l->accept_poll, UV_READABLE, on_accept);
	uv_async_init(&l->uv, &l->async, on_async);
	l->async.data = l;
	pthread_barrier_wait(&started);
	uv_run(&l->uv, UV_RUN_DEFAULT);
	/* lws 4.1 with a foreign loop finishes its teardown when told again */
	for (int i = 0; i < 4 && l->ctx != NULL; i++) {
		pthread_mutex_lock(&lws_lock);
		lws_context_destroy(l->ctx);
		pthread_mutex_unlock(&lws_lock);
		uv_run(&l->uv, UV_RUN_NOWAIT);
	}
	uv_loop_close(&l->uv);
	return NULL;
}

/* Hand m (or, with m NULL, the order to stop) to every loop. */
static void
hand_out(struct msg *m)
{
	for (int i = 0; i < nloops; i++) {
		struct loop *l = &loops[i];
		pthread_mutex_lock(&l->lock);
		if (m == NULL)
			l->stop = true;
		else if (l->ninbox < INBOX) {
			atomic_fetch_add(&m->refs, 1);
			l->inbox[l->ninbox++] = m;
		}
		pthread_mutex_unlock(&l->lock);
		uv_async_send(&l->async);
	}
	if (m != NULL)
		msg_unref(m);
}

int
main(int argc, char **argv)
{
	char line[MSG_MAX];
	int opt;

	while ((opt = getopt(argc, argv, "p:n:")) != -1) {
		if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'n')
			nloops = atoi(optarg);
		else
			break;
	}
	if (port <= 0 || nloops < 1 || nloops > MAX_LOOPS) {
		fprintf(stderr, "usage: fanout_loops -p PORT -n LOOPS (1 to %d)\n", MAX_LOOPS);
		return 2;
	}
	lws_set_log_level(LLL_ERR, NULL);
	pthread_barrier_init(&started, NULL, (unsigned)nloops + 1);
	for (int i = 0; i < nloops; i++) {
		pthread_mutex_init(&loops[i].lock, NULL);
		if (pthread_create(&loops[i].thread, NULL, loop_main, &loops[i]) != 0) {
			fprintf(stderr, "fanout_loops: cannot start a thread\n");
			return 1;
		}
	}
	pthread_barrier_wait(&started);
	printf("READY\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t len = strcspn(line, "\n");
		struct msg *m = malloc(sizeof(*m) + len);
		if (m == NULL)
			abort();
		atomic_init(&m->refs, 1);
		m->len = len;
		memcpy(m->data, line, len);
		hand_out(m);
	}
	hand_out(NULL);
	for (int i = 0; i < nloops; i++)
		pthread_join(loops[i].thread, NULL);
	return 0;
}
