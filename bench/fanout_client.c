/*
 * fanout_client - many idle WebSocket subscribers, for the fan-out benchmark (bench/fanout.py).
 *
 *	fanout_client -p PORT -u PATH -n CONNS -m MESSAGES -k MARKER [-H HEADER] [-t SECS]
 *
 * Opens CONNS WebSocket connections to 127.0.0.1:PORT PATH (optionally with one extra
 * request HEADER, e.g. "Authorization: Bearer ..."), answers the server's pings, and
 * prints "READY open=N failed=F" when every handshake has finished. Then it records, for
 * every connection, the CLOCK_REALTIME time at which each text message containing MARKER
 * arrived (the j-th such message is message j), until every connection has MESSAGES of
 * them or SECS (default 60) pass without progress. It prints one line per message:
 *	MSG j count t1 t2 ...	(receive times in ns since the epoch, in arrival order)
 * and "DONE open=N cpu=S", S being the CPU seconds the client used after READY.
 *
 * DESIGN
 *	One epoll loop, non-blocking sockets, a fixed buffer per connection: the client must
 *	cost far less than the servers it measures, so that the latencies are theirs. It is a
 *	benchmark client, not a WebSocket library: it does not check Sec-WebSocket-Accept and
 *	expects unfragmented messages of at most BUF_SIZE bytes (statusd's and nchan's
 *	messages here are a few hundred). Written by hand because no Debian-packaged client
 *	library drives ten thousand connections from one thread this cheaply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 16384

enum state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

struct conn {
	int fd;
	enum state state;
	size_t len; /* bytes in buf */
	unsigned int got;
	unsigned char buf[BUF_SIZE];
};

static const char *marker;
static unsigned int n_conns, n_msgs;
static int64_t *times; /* n_conns * n_msgs */
static unsigned int open_count, failed_count, done_count;
static uint64_t got_total; /* messages recorded, over all connections */

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU seconds (user and system) this process has used. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void
conn_fail(int ep, struct conn *c)
{
	if (c->state == ST_DEAD)
		return;
	if (c->state != ST_OPEN)
		failed_count++;
	else
		open_count--;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->state = ST_DEAD;
}

/* Send a masked control frame (pong) with the given payload. */
static void
send_control(struct conn *c, int opcode, const unsigned char *payload, size_t len)
{
	unsigned char frame[2 + 4 + 125];
	size_t n = 0;

	if (len > 125)
		len = 125;
	frame[n++] = (unsigned char)(0x80 | opcode);
	frame[n++] = (unsigned char)(0x80 | len);
	memset(frame + n, 0, 4); /* mask key 0: the payload goes as is */
	n += 4;
	memcpy(frame + n, payload, len);
	n += len;
	(void)send(c->fd, frame, n, MSG_NOSIGNAL);
}

/* Handle the complete frames in c->buf; keep a partial one. */
static void
frames(int ep, struct conn *c, unsigned int idx)
{
	size_t pos = 0;

	for (;;) {
		unsigned char *p = c->buf + pos;
		size_t avail = c->len - pos, hdr = 2;
		uint64_t plen;
		int opcode;

		if (avail < 2)
			break;
		opcode = p[0] & 0x0f;
		plen = p[1] & 0x7f;
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = (uint64_t)p[2] << 8 | p[3];
			hdr = 4;
		} else if (plen == 127) {
			if (avail < 10)
				break;
			plen = 0;
			for (int i = 2; i < 10; i++)
				plen = plen << 8 | p[i];
			hdr = 10;
		}
		if (plen > BUF_SIZE - hdr) {
			fprintf(stderr, "fanout_client: a message of %llu bytes: too large\n",
			        (unsigned long long)plen);
			conn_fail(ep, c);
			return;
		}
		if (avail < hdr + plen)
			break;
		if (opcode == 1 && c->got < n_msgs &&
		    memmem(p + hdr, (size_t)plen, marker, strlen(marker)) != NULL) {
			times[(size_t)idx * n_msgs + c->got++] = now_ns();
			got_total++;
			if (c->got == n_msgs)
				done_count++;
		} else if (opcode == 9) {
			send_control(c, 10, p + hdr, (size_t)plen);
		} else if (opcode == 8) {
			conn_fail(ep, c);
			return;
		}
		pos += hdr + (size_t)plen;
	}
	memmove(c->buf, c->buf + pos, c->len - pos);
	c->len -= pos;
}

static void
on_readable(int ep, struct conn *c, unsigned int idx)
{
	for (;;) {
		size_t room = BUF_SIZE - c->len;
		ssize_t n = read(c->fd, c->buf + c->len, room);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_fail(ep, c);
			return;
		}
		c->len += (size_t)n;
		if (c->state == ST_HANDSHAKE) {
			unsigned char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			size_t hlen;

			if (end == NULL) {
				if (c->len == BUF_SIZE)
					conn_fail(ep, c);
				continue;
			}
			if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
				unsigned char *eol = memchr(c->buf, '\r', c->len);

				fprintf(stderr, "fanout_client: handshake refused: %.*s\n",
				        (int)(eol - c->buf), (char *)c->buf);
				conn_fail(ep, c);
				return;
			}
			hlen = (size_t)(end - c->buf) + 4;
			memmove(c->buf, c->buf + hlen, c->len - hlen);
			c->len -= hlen;
			c->state = ST_OPEN;
			open_count++;
		}
		frames(ep, c, idx);
		/* a short read emptied the socket: epoll (level-triggered) says when there is
		   more, without a read that only finds EAGAIN */
		if (c->state == ST_DEAD || (size_t)n < room)
			return;
	}
}

int
main(int argc, char **argv)
{
	const char *path = "/", *header = NULL;
	int port = 0, timeout = 60, opt, ep;
	struct rlimit rl;
	struct conn *conns;
	char request[8192];
	int reqlen;
	unsigned int started = 0;
	int64_t last_progress;
	double cpu_ready;
	unsigned int last_done = 0;
	uint64_t last_total = 0;

	while ((opt = getopt(argc, argv, "p:u:n:m:k:H:t:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'u':
			path = optarg;
			break;
		case 'n':
			n_conns = (unsigned int)atoi(optarg);
			break;
		case 'm':
			n_msgs = (unsigned int)atoi(optarg);
			break;
		case 'k':
			marker = optarg;
			break;
		case 'H':
			header = optarg;
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: fanout_client -p PORT -u PATH -n CONNS -m MESSAGES "
			                "-k MARKER [-H HEADER] [-t SECS]\n");
			return 2;
		}
	}
	if (port <= 0 || n_conns == 0 || n_msgs == 0 || marker == NULL) {
		fprintf(stderr, "fanout_client: -p, -n, -m and -k are required\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n_conns + 64) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < n_conns + 64) {
			fprintf(stderr, "fanout_client: need %u file descriptors\n", n_conns + 64);
			return 1;
		}
	}
	reqlen = snprintf(request, sizeof(request),
	                  "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	                  "Connection: Upgrade\r\nSec-WebSocket-Key: bXNnc3RhdHVzYmVuY2gxMg==\r\n"
	                  "Sec-WebSocket-Version: 13\r\n%s%s\r\n",
	                  path, port, header ? header : "", header ? "\r\n" : "");
	if (reqlen <= 0 || (size_t)reqlen >= sizeof(request))
		return 2;
	conns = calloc(n_conns, sizeof(*conns));
	times = calloc((size_t)n_conns * n_msgs, sizeof(*times));
	if (conns == NULL || times == NULL)
		die("calloc");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");

	/* connect in batches, so that the server's listen backlog is not overrun */
	while (open_count + failed_count < n_conns) {
		struct epoll_event evs[512];
		int n;

		while (started < n_conns && started - open_count - failed_count < 256) {
			struct conn *c = &conns[started];
			struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
			struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = started};

			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (c->fd < 0)
				die("socket");
			if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
			    errno != EINPROGRESS)
				die("connect");
			c->state = ST_CONNECTING;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
				die("epoll_ctl");
			started++;
		}
		n = epoll_wait(ep, evs, 512, 10000);
		if (n == 0) {
			fprintf(stderr, "fanout_client: handshakes stalled at %u open\n",
			        open_count);
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = &conns[evs[i].data.u32];

			if (c->state == ST_CONNECTING && (evs[i].events & EPOLLOUT)) {
				struct epoll_event ev = {.events = EPOLLIN,
				                         .data.u32 = evs[i].data.u32};
				int one = 1;

				setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				if (send(c->fd, request, (size_t)reqlen, MSG_NOSIGNAL) != reqlen) {
					conn_fail(ep, c);
					continue;
				}
				c->state = ST_HANDSHAKE;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			} else if (c->state != ST_DEAD &&
			           (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
				on_readable(ep, c, evs[i].data.u32);
			}
		}
	}
	printf("READY open=%u failed=%u\n", open_count, failed_count);
	fflush(stdout);
	cpu_ready = cpu_s();

	last_progress = now_ns();
	while (done_count < open_count) {
		struct epoll_event evs[512];
		int n = epoll_wait(ep, evs, 512, 1000);

		for (int i = 0; i < n; i++) {
			struct conn *c = &conns[evs[i].data.u32];

			if (c->state != ST_DEAD)
				on_readable(ep, c, evs[i].data.u32);
		}
		/* a running count: a scan of every connection per wakeup would cost the
		   client most when a server's writes trickle in, and so skew the comparison */
		if (got_total != last_total || done_count != last_done) {
			last_progress = now_ns();
			last_total = got_total;
			last_done = done_count;
		}
		if (now_ns() - last_progress > (int64_t)timeout * 1000000000) {
			fprintf(stderr, "fanout_client: no progress for %d s\n", timeout);
			break;
		}
	}
	for (unsigned int j = 0; j < n_msgs; j++) {
		unsigned int count = 0;

		for (unsigned int i = 0; i < n_conns; i++)
			count += conns[i].got > j;
		printf("MSG %u %u", j, count);
		for (unsigned int i = 0; i < n_conns; i++)
			if (conns[i].got > j)
				printf(" %lld", (long long)times[(size_t)i * n_msgs + j]);
		putchar('\n');
	}
	printf("DONE open=%u cpu=%.3f\n", open_count, cpu_s() - cpu_ready);
	return 0;
}
