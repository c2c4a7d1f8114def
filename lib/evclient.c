/*
 * evclient - the producer's side of statusd's event socket. See evclient.h.
 *
 * SECURITY
 *	Replies come from statusd, a trusted local peer, but they are still parsed with
 *	bounds and strictly (lib/jsonparse): a reply line longer than REPLY_MAX, one that is
 *	not one JSON object with a record number and exactly one of "ack" or "error", one whose
 *	number is not the next, and one about a record not wholly sent yet break the
 *	connection (as the Dovecot plugin's reader does). UTF-8 is not validated: statusd cuts
 *	a long reason at a byte count, and the reason is only logged.
 */
#include "evclient.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "jsonparse.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "utf8.h"

#define REPLY_MAX   4096
#define REPLY_DEPTH 4 /* a flat object; members added later may nest a little */

struct pending {
	uint64_t cookie;
	size_t off, len; /* the record in c->records */
};

struct evclient {
	char *path;
	int fd;
	struct mbuf out;     /* bytes not yet written */
	struct mbuf in;      /* reply bytes not yet parsed */
	struct mbuf records; /* copies of the unanswered records, back to back */
	struct pending *pending;
	size_t phead, pcount, pcap;
	size_t rec_base; /* records.data[0] is at this logical offset */
	uint64_t seq;    /* replies seen on this connection */
};

struct evclient *
evclient_new(const char *socket_path)
{
	struct evclient *c = mycalloc(1, sizeof(*c));

	c->path = mystrdup(socket_path);
	c->fd = -1;
	return c;
}

void
evclient_free(struct evclient **cp)
{
	struct evclient *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	evclient_disconnect(c, NULL, NULL);
	mbuf_free(&c->out);
	mbuf_free(&c->in);
	mbuf_free(&c->records);
	free(c->pending);
	free(c->path);
	free(c);
}

int
evclient_connect(struct evclient *c, const char **error_r)
{
	struct sockaddr_un sun;
	size_t plen = strlen(c->path);

	if (c->fd >= 0)
		return 0;
	if (plen >= sizeof(sun.sun_path)) {
		*error_r = errfmt("socket path too long: %s", c->path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, c->path, plen);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		*error_r = errfmt("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
		*error_r = errfmt("connect %s: %s", c->path, strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->seq = 0;
	mbuf_reset(&c->in);
	/* Records queued while disconnected go out first, in order. */
	mbuf_reset(&c->out);
	for (size_t i = 0; i < c->pcount; i++) {
		struct pending *p = &c->pending[c->phead + i];
		mbuf_append(&c->out, c->records.data + (p->off - c->rec_base), p->len);
	}
	return 0;
}

bool
evclient_connected(const struct evclient *c)
{
	return c->fd >= 0;
}

int
evclient_fd(const struct evclient *c)
{
	return c->fd;
}

void
evclient_queue(struct evclient *c, const char *rec, size_t len, uint64_t cookie)
{
	struct pending *p;

	if (c->phead + c->pcount == c->pcap) {
		if (c->phead > 0) {
			memmove(c->pending, c->pending + c->phead, c->pcount * sizeof(*p));
			c->phead = 0;
		} else {
			c->pcap = c->pcap ? c->pcap * 2 : 64;
			c->pending = myreallocarray(c->pending, c->pcap, sizeof(*p));
		}
	}
	p = &c->pending[c->phead + c->pcount++];
	p->cookie = cookie;
	p->off = c->rec_base + c->records.len;
	p->len = len;
	mbuf_append(&c->records, rec, len);
	if (c->fd >= 0)
		mbuf_append(&c->out, rec, len);
}

int
evclient_flush(struct evclient *c, const char **error_r)
{
	size_t done = 0;

	if (c->fd < 0) {
		*error_r = "not connected";
		return -1;
	}
	while (done < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + done, c->out.len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			mbuf_consume(&c->out, done);
			*error_r = errfmt("send: %s", strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	mbuf_consume(&c->out, done);
	return 0;
}

bool
evclient_want_write(const struct evclient *c)
{
	return c->fd >= 0 && c->out.len > 0;
}

size_t
evclient_unacked(const struct evclient *c)
{
	return c->pcount;
}

/* Forget the oldest record; compact the copies once most of the buffer is dead. */
static void
pop_pending(struct evclient *c)
{
	struct pending *p = &c->pending[c->phead];
	size_t end = p->off + p->len - c->rec_base;

	c->phead++;
	c->pcount--;
	if (c->pcount == 0) {
		c->phead = 0;
		c->rec_base += c->records.len;
		mbuf_reset(&c->records);
	} else if (end > 65536 && end > c->records.len / 2) {
		mbuf_consume(&c->records, end);
		c->rec_base += end;
	}
}

int
evclient_parse_reply(const char *line, size_t len, uint64_t *seq_r, bool *ok_r,
                     const char **error_r)
{
	static _Thread_local char reason[512];
	struct json_object *obj, *seq, *ack = NULL, *err = NULL;
	const char *why;
	int64_t n;

	/* JSON text is UTF-8 (RFC 8259); json-c's strict mode checks that on 0.18 only */
	if (!utf8_valid(line, len) ||
	    (obj = jsonparse_object(line, len, REPLY_DEPTH, false, &why)) == NULL)
		return -1;
	json_object_object_get_ex(obj, "ack", &ack);
	json_object_object_get_ex(obj, "error", &err);
	/* a record number from 1, and either an event id or statusd's reason, not both */
	if (!json_object_object_get_ex(obj, "seq", &seq) ||
	    !json_object_is_type(seq, json_type_int) || (n = json_object_get_int64(seq)) < 1 ||
	    n == INT64_MAX || (ack == NULL) == (err == NULL) ||
	    (ack != NULL && !json_object_is_type(ack, json_type_string)) ||
	    (err != NULL && !json_object_is_type(err, json_type_string))) {
		json_object_put(obj);
		return -1;
	}
	*seq_r = (uint64_t)n;
	*ok_r = ack != NULL;
	*error_r = NULL;
	if (err != NULL) {
		snprintf(reason, sizeof(reason), "%s", json_object_get_string(err));
		*error_r = reason;
	}
	json_object_put(obj);
	return 0;
}

/* Bytes of the oldest unanswered record that have gone out: all of it, before statusd can
   have answered it. c->out holds the unsent end of the unanswered records. */
static bool
oldest_sent(const struct evclient *c)
{
	const struct pending *p = &c->pending[c->phead];
	size_t queued = c->rec_base + c->records.len - p->off;

	/* c->out may still hold the tail of a record answered early (see evclient_read) */
	return queued >= c->out.len && queued - c->out.len >= p->len;
}

int
evclient_read(struct evclient *c, evclient_reply_cb *cb, void *ctx, const char **error_r)
{
	for (;;) {
		ssize_t n;
		char *nl;

		mbuf_reserve(&c->in, 4096);
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			*error_r = errfmt("recv: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			*error_r = "statusd closed the connection";
			return -1;
		}
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		while ((nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
			size_t len = (size_t)(nl - c->in.data);
			uint64_t seq, cookie;
			const char *reason;
			bool ok;

			if (evclient_parse_reply(c->in.data, len, &seq, &ok, &reason) < 0) {
				*error_r = "malformed reply from statusd";
				return -1;
			}
			if (c->pcount == 0 || seq != c->seq + 1) {
				*error_r = errfmt("reply %llu out of order from statusd",
				                  (unsigned long long)seq);
				return -1;
			}
			/* statusd refuses a record over ingest_record_max before all of it has
			   arrived, and skips its tail; only an ack needs the whole record sent */
			if (ok && !oldest_sent(c)) {
				*error_r = errfmt("reply %llu to a record not yet sent",
				                  (unsigned long long)seq);
				return -1;
			}
			c->seq = seq;
			cookie = c->pending[c->phead].cookie;
			pop_pending(c);
			mbuf_consume(&c->in, len + 1);
			cb(ctx, cookie, ok, reason);
		}
		if (c->in.len > REPLY_MAX) {
			*error_r = "reply from statusd too long";
			return -1;
		}
	}
}

void
evclient_disconnect(struct evclient *c, evclient_unacked_cb *cb, void *ctx)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	mbuf_reset(&c->out);
	mbuf_reset(&c->in);
	while (c->pcount > 0) {
		struct pending *p = &c->pending[c->phead];
		if (cb != NULL)
			cb(ctx, c->records.data + (p->off - c->rec_base), p->len, p->cookie);
		pop_pending(c);
	}
}
