/*
 * stream - WebSocket and SSE transports of the live feed. See stream.h.
 *
 * SECURITY
 *	Client messages on the WebSocket are bounded by lws (rx buffer) and params.c
 *	(PARAMS_WS_MAX), must be UTF-8 JSON objects (lws validates UTF-8 of text frames) and
 *	are answered or rejected without touching anything else. A stream ends when the
 *	credential it was opened with expires (WebSocket close 4401, SSE "event: error"), so a
 *	short-lived token does not become a feed for as long as the connection lasts.
 */
#include "stream.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "feed.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "rfc3339.h"
#include "sdconfig.h"

#define WRITE_BUF 16384

struct item {
	struct feed_msg *msg; /* an event, or NULL for a control document */
	char *control;
	const char *sse_event; /* "status", "hello", "error" */
	struct item *next;
};

struct stream {
	struct feed_sub sub; /* first: the feed hands us a struct feed_sub * */
	enum stream_kind kind;
	struct lws *wsi;
	int64_t epoch; /* of the log, from the hello, for SSE ids */
	struct item *head, *tail;
	size_t queued; /* bytes */
	bool headers_sent;
	bool closing;
	char *close_reason;
	int close_code;     /* WebSocket: 4000 unless the token expired */
	int64_t expires_ms; /* when the credential expires (wall clock), or 0 */
	size_t expiring_at; /* its place in the expiring heap + 1, or 0 */
	bool want_pong;
	bool peer_closed; /* WebSocket: the client sent its close frame */
	bool failed;      /* a write outside the writable callback failed: lws closes it */
	uint64_t last_write_ms;
	struct stream *sse_next, *sse_prev;
	/* WebSocket keep-alive: the list of streams by the time they last showed life */
	uint64_t alive_ms, pinged_ms;
	bool want_ping;
	struct stream *ws_older, *ws_newer;
};

/* One set per event loop (feedloop.h): a stream lives on the loop whose thread made it,
   and only that thread touches these. */
static _Thread_local uv_loop_t *stream_loop;
static _Thread_local struct stream *sse_streams;
static _Thread_local struct stream *ws_oldest, *ws_newest;
static _Thread_local uv_timer_t ping_timer, tick_timer;
/* The streams whose credential expires: a binary heap by expires_ms, soonest first (one
   lws_sul per stream would cost O(streams) per insert in lws 4.1's sorted list). */
static _Thread_local struct stream **expiring;
static _Thread_local size_t nexpiring, expiring_cap;
static _Thread_local bool ping_running;
/* sse_reap()'s arrays, kept from one turn to the next */
static _Thread_local struct pollfd *reap_fds;
static _Thread_local struct stream **reap_of;
static _Thread_local size_t reap_cap;
static _Thread_local long long ping_interval_ms;

static void
enqueue(struct stream *s, struct feed_msg *msg, const char *control, const char *event)
{
	struct item *it = mycalloc(1, sizeof(*it));

	if (control != NULL)
		it->control = mystrdup(control);
	if (msg != NULL) {
		feed_msg_ref(msg);
		it->msg = msg;
		s->queued += msg->len;
	} else
		s->queued += strlen(control);
	it->sse_event = event;
	if (s->tail)
		s->tail->next = it;
	else {
		s->head = it;
		/* Only for the first: while anything is queued a writable callback is pending
		   (stream_writable asks again when it leaves some), and every call costs an
		   epoll_ctl() on libuv (uv_poll_start), which showed in a catch-up's profile. */
		lws_callback_on_writable(s->wsi);
	}
	s->tail = it;
}

static void
item_free(struct item *it)
{
	feed_msg_unref(&it->msg);
	free(it->control);
	free(it);
}

static bool ws_write_now(struct stream *s, const struct feed_msg *msg);

/*
 * Have lws close the connection, from outside its callbacks. lws 4.1 on a foreign loop
 * looks at a timeout set here only on its next event of this context, which a loop with
 * nothing else to do (a silent client alone on it) may never have: so ask for a writable
 * callback too, which returns -1 for a failed stream.
 */
static void
fail(struct stream *s)
{
	s->failed = true;
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	lws_callback_on_writable(s->wsi);
}

/* --- the feed's subscriber interface --------------------------------------------------- */

static size_t
op_push(struct feed_sub *sub, struct feed_msg *msg)
{
	struct stream *s = (struct stream *)sub;

	if (!s->closing && !s->failed && !ws_write_now(s, msg))
		enqueue(s, msg, NULL, "status");
	return s->queued;
}

static void
op_control(struct feed_sub *sub, const char *json)
{
	struct stream *s = (struct stream *)sub;
	struct json_object *doc = json_tokener_parse(json), *v;

	/* the hello names the log's epoch, which SSE ids carry */
	if (doc != NULL && json_object_object_get_ex(doc, "epoch", &v))
		s->epoch = json_object_get_int64(v);
	json_object_put(doc);
	if (!s->closing)
		enqueue(s, NULL, json, "hello");
}

static void
op_close(struct feed_sub *sub, const char *reason)
{
	struct stream *s = (struct stream *)sub;

	if (s->closing)
		return;
	s->closing = true;
	s->close_code = 4000;
	s->close_reason = mystrdup(reason);
	lws_callback_on_writable(s->wsi);
}

static const struct feed_sub_ops stream_ops = {op_push, op_control, op_close};

/* --- credential expiry ------------------------------------------------------------- */

static void
expiring_set(size_t i, struct stream *s)
{
	expiring[i] = s;
	s->expiring_at = i + 1;
}

static void
expiring_up(size_t i)
{
	struct stream *s = expiring[i];

	while (i > 0 && expiring[(i - 1) / 2]->expires_ms > s->expires_ms) {
		expiring_set(i, expiring[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	expiring_set(i, s);
}

static void
expiring_down(size_t i)
{
	struct stream *s = expiring[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= nexpiring)
			break;
		if (c + 1 < nexpiring && expiring[c + 1]->expires_ms < expiring[c]->expires_ms)
			c++;
		if (expiring[c]->expires_ms >= s->expires_ms)
			break;
		expiring_set(i, expiring[c]);
		i = c;
	}
	expiring_set(i, s);
}

static void
expiring_add(struct stream *s)
{
	if (nexpiring == expiring_cap) {
		expiring_cap = expiring_cap ? 2 * expiring_cap : 64;
		expiring = myreallocarray(expiring, expiring_cap, sizeof(*expiring));
	}
	expiring_set(nexpiring++, s);
	expiring_up(nexpiring - 1);
}

static void
expiring_remove(struct stream *s)
{
	size_t i = s->expiring_at - 1;
	struct stream *last;

	if (s->expiring_at == 0)
		return;
	s->expiring_at = 0;
	last = expiring[--nexpiring];
	if (nexpiring == 0) {
		free(expiring);
		expiring = NULL;
		expiring_cap = 0;
	} else if (last != s) {
		expiring_set(i, last); /* the last one takes its place, and moves up or down */
		expiring_up(i);
		expiring_down(last->expiring_at - 1);
	}
}

static void
on_expired(struct stream *s)
{
	if (s->closing)
		return;
	op_close(&s->sub, "the token has expired");
	s->close_code = 4401;
}

/* --- WebSocket keep-alive ------------------------------------------------------------- */

static void
ws_unlink(struct stream *s)
{
	if (s->ws_older)
		s->ws_older->ws_newer = s->ws_newer;
	else if (ws_oldest == s)
		ws_oldest = s->ws_newer;
	if (s->ws_newer)
		s->ws_newer->ws_older = s->ws_older;
	else if (ws_newest == s)
		ws_newest = s->ws_older;
	s->ws_older = s->ws_newer = NULL;
}

/* The client showed life (the upgrade, a message, a pong): it goes to the newest end. */
static void
ws_alive(struct stream *s)
{
	ws_unlink(s);
	s->alive_ms = uv_now(stream_loop);
	s->pinged_ms = 0;
	s->ws_older = ws_newest;
	if (ws_newest)
		ws_newest->ws_newer = s;
	else
		ws_oldest = s;
	ws_newest = s;
}

/*
 * Ping the WebSocket streams that have been silent for feed_ping_interval, again after
 * another interval without an answer, and hang up on those silent for three. The list is
 * in the order they last showed life, so a turn looks only at those that are due.
 */
static void
ws_keep_alive(uint64_t now)
{
	uint64_t every = (uint64_t)ping_interval_ms;

	for (struct stream *s = ws_oldest, *next; s && now - s->alive_ms >= every; s = next) {
		next = s->ws_newer;
		if (s->closing || s->failed || s->peer_closed)
			continue;
		if (now - s->alive_ms >= 3 * every) {
			fail(s); /* the client is gone: no close frame, as lws did */
		} else if (s->pinged_ms == 0 || now - s->pinged_ms >= every) {
			s->pinged_ms = now;
			s->want_ping = true;
			lws_callback_on_writable(s->wsi);
		}
	}
}

/*
 * End the SSE streams whose client has hung up. An SSE client sends nothing after its
 * request, and lws 4.1 does not read an HTTP/1 connection while a response is under way:
 * a hang-up would keep the event loop waking for the readable socket, at a whole CPU,
 * until a write failed (up to feed_ping_interval). Looked at once a second. Ended too: a
 * plain-HTTP client that sends anything more (no answer can follow an endless response).
 * Not looked at: HTTP/2 streams, whose connection lws reads and which others share.
 */
static void
sse_reap(void)
{
	size_t n = 0;

	for (struct stream *s = sse_streams; s != NULL; s = s->sse_next) {
		if (!s->headers_sent || s->closing || s->failed ||
		    lws_get_network_wsi(s->wsi) != s->wsi)
			continue;
		if (n == reap_cap) {
			reap_cap = reap_cap ? 2 * reap_cap : 64;
			reap_fds = myreallocarray(reap_fds, reap_cap, sizeof(*reap_fds));
			reap_of = myreallocarray(reap_of, reap_cap, sizeof(*reap_of));
		}
		reap_fds[n] = (struct pollfd){.fd = lws_get_socket_fd(s->wsi),
		                              .events = POLLIN | POLLRDHUP};
		reap_of[n++] = s;
	}
	/* one system call for them all */
	if (n == 0 || poll(reap_fds, (nfds_t)n, 0) <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct stream *s = reap_of[i];
		short ev = reap_fds[i].revents;

		if (ev == 0 ||
		    (!(ev & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) && lws_is_ssl(s->wsi)))
			continue; /* quiet, or a TLS record lws's TLS layer may want */
		fail(s);
	}
}

/* Once a second: keep-alive, hung-up SSE clients, and the end of the streams whose
   credential has expired. */
static void
on_tick(uv_timer_t *t)
{
	int64_t wall = time_now_ms();

	ws_keep_alive(uv_now(t->loop));
	sse_reap();
	while (nexpiring > 0 && expiring[0]->expires_ms <= wall) {
		struct stream *s = expiring[0];
		expiring_remove(s);
		on_expired(s);
	}
}

void
stream_pong(struct stream *s)
{
	ws_alive(s);
}

/* --- life cycle ---------------------------------------------------------------------- */

struct stream *
stream_start(enum stream_kind kind, struct lws *wsi, struct feed *feed, const struct principal *who,
             int64_t from, int64_t epoch)
{
	struct stream *s = mycalloc(1, sizeof(*s));

	s->kind = kind;
	s->wsi = wsi;
	if (kind == STREAM_SSE) {
		s->sse_next = sse_streams;
		if (sse_streams)
			sse_streams->sse_prev = s;
		sse_streams = s;
		/* a stream has no end: lws must not time the transaction out */
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	} else
		ws_alive(s);
	if (who->expires_ms > 0 && who->expires_ms < INT64_MAX) {
		s->expires_ms = who->expires_ms;
		expiring_add(s);
	}
	feed_subscribe(feed, &s->sub, &stream_ops, who, from, epoch);
	return s;
}

void
stream_closed(struct stream **sp)
{
	struct stream *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	expiring_remove(s);
	feed_unsubscribe(&s->sub);
	if (s->kind == STREAM_SSE) {
		if (s->sse_prev)
			s->sse_prev->sse_next = s->sse_next;
		else
			sse_streams = s->sse_next;
		if (s->sse_next)
			s->sse_next->sse_prev = s->sse_prev;
	} else
		ws_unlink(s);
	while (s->head) {
		struct item *it = s->head;
		s->head = it->next;
		item_free(it);
	}
	free(s->close_reason);
	free(s);
}

/* --- writing ------------------------------------------------------------------------- */

/* The SSE record of an item, appended to out. */
static void
sse_record(struct stream *s, const struct item *it, struct mbuf *out)
{
	const char *data = it->msg ? it->msg->data : it->control;

	if (strcmp(it->sse_event, "ping") == 0) {
		mbuf_puts(out, ": ping\n\n"); /* a comment: keeps the connection busy */
		return;
	}
	/* appended piece by piece: printf's cost showed in a catch-up's profile */
	if (it->msg) {
		mbuf_append(out, "id: ", 4);
		mbuf_putll(out, (long long)s->epoch);
		mbuf_putc(out, '-');
		mbuf_putll(out, (long long)it->msg->offset);
		mbuf_putc(out, '\n');
	}
	mbuf_append(out, "event: ", 7);
	mbuf_puts(out, it->sse_event);
	mbuf_append(out, "\ndata: ", 7);
	if (it->msg)
		mbuf_append(out, data, it->msg->len);
	else
		mbuf_puts(out, data);
	mbuf_append(out, "\n\n", 2);
}

/* One WebSocket text message; lws needs LWS_PRE bytes of room before it. 0 or -1. */
static int
ws_text(struct lws *wsi, const char *data, size_t len)
{
	unsigned char buf[LWS_PRE + WRITE_BUF], *p = buf + LWS_PRE, *heap = NULL;
	int n;

	if (len > WRITE_BUF) {
		heap = mymalloc(LWS_PRE + len);
		p = heap + LWS_PRE;
	}
	memcpy(p, data, len);
	n = lws_write(wsi, p, len, LWS_WRITE_TEXT);
	free(heap);
	return n < (int)len ? -1 : 0;
}

/*
 * Send an event at once, from the fan-out, instead of queueing it and asking lws for a
 * writable callback: that round trip costs two epoll_ctl() (POLLOUT on, then off), a
 * wakeup and a callback per subscriber and event; this costs one send(). Only where
 * nothing can be ahead of it — nothing queued here, nothing lws holds back from a short
 * write (lws_partial_buffered), no close under way — and only on an HTTP/1 connection,
 * where the WebSocket has the socket to itself (on HTTP/2 the network connection is
 * shared and lws must schedule the writes). lws 4.1 does the framing and the short
 * write the same in and out of the callback: what the socket does not take it keeps
 * and sends when the socket is writable, and what follows is queued behind it here.
 * A failed write cannot return -1 to lws from here, so lws is told to close the
 * connection on its next turn. True if the message is dealt with.
 */
static bool
ws_write_now(struct stream *s, const struct feed_msg *msg)
{
	if (s->kind != STREAM_WS || s->head != NULL || s->peer_closed ||
	    lws_get_network_wsi(s->wsi) != s->wsi || lws_partial_buffered(s->wsi))
		return false;
	if (ws_text(s->wsi, msg->data, msg->len) < 0) {
		fail(s);
	}
	return true;
}

static int
write_ws(struct stream *s)
{
	while (s->head != NULL && !lws_send_pipe_choked(s->wsi)) {
		struct item *it = s->head;
		const char *data = it->msg ? it->msg->data : it->control;
		size_t len = it->msg ? it->msg->len : strlen(it->control);

		if (ws_text(s->wsi, data, len) < 0)
			return -1;
		s->head = it->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->queued -= len;
		item_free(it);
	}
	return 0;
}

static int
write_sse(struct stream *s)
{
	unsigned char buf[LWS_PRE + WRITE_BUF];
	struct mbuf out = MBUF_INIT;

	if (!s->headers_sent) {
		unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
		if (lws_add_http_common_headers(s->wsi, HTTP_STATUS_OK, "text/event-stream",
		                                LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
		    lws_add_http_header_by_name(s->wsi, (const unsigned char *)"cache-control:",
		                                (const unsigned char *)"no-store", 8, &p, end) ||
		    lws_add_http_header_by_name(s->wsi, (const unsigned char *)"x-accel-buffering:",
		                                (const unsigned char *)"no", 2, &p, end) ||
		    lws_finalize_write_http_header(s->wsi, start, &p, end))
			return -1;
		s->headers_sent = true;
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	/* WRITE_BUF at a time for as long as the socket takes it: each writable callback costs
	   a poll turn and lws's POLLOUT on and off, so a backlog goes out in few of them */
	do {
		mbuf_reset(&out);
		while (s->head != NULL && out.len < WRITE_BUF) {
			struct item *it = s->head;
			s->queued -= it->msg ? it->msg->len : strlen(it->control);
			sse_record(s, it, &out);
			s->head = it->next;
			if (s->head == NULL)
				s->tail = NULL;
			item_free(it);
		}
		if (out.len > 0) {
			unsigned char *heap = mymalloc(LWS_PRE + out.len);
			memcpy(heap + LWS_PRE, out.data, out.len);
			int n = lws_write(s->wsi, heap + LWS_PRE, out.len, LWS_WRITE_HTTP);
			free(heap);
			if (n < (int)out.len) {
				mbuf_free(&out);
				return -1;
			}
			s->last_write_ms = (uint64_t)uv_now(stream_loop);
		}
	} while (s->head != NULL && !lws_send_pipe_choked(s->wsi));
	mbuf_free(&out);
	if (s->head != NULL)
		lws_callback_on_writable(s->wsi);
	return 0;
}

void
stream_ws_close(struct lws *wsi, int code, const char *reason)
{
	unsigned char buf[LWS_PRE + 125];
	size_t len = strlen(reason);

	if (len > 123)
		len = 123;
	buf[LWS_PRE] = (unsigned char)(code >> 8);
	buf[LWS_PRE + 1] = (unsigned char)code;
	memcpy(buf + LWS_PRE + 2, reason, len);
	/* 4 is lws's LWS_WRITE_CLOSE, kept out of its public header (lws-write.h says
	   "handled by lws_close_reason()", which does not reach the wire here) */
	(void)lws_write(wsi, buf + LWS_PRE, len + 2, (enum lws_write_protocol)4);
}

/* Send the reason for closing; -1 to make lws close. */
static int
write_close(struct stream *s)
{
	if (s->kind == STREAM_WS) {
		stream_ws_close(s->wsi, s->close_code, s->close_reason);
		return -1;
	}
	if (s->headers_sent) {
		struct json_object *e = json_object_new_object();
		struct mbuf out = MBUF_INIT;
		unsigned char *heap;

		json_object_object_add(e, "type", json_object_new_string("closing"));
		json_object_object_add(e, "reason", json_object_new_string(s->close_reason));
		mbuf_printf(&out, "event: error\ndata: %s\n\n",
		            json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
		json_object_put(e);
		heap = mymalloc(LWS_PRE + out.len);
		memcpy(heap + LWS_PRE, out.data, out.len);
		(void)lws_write(s->wsi, heap + LWS_PRE, out.len, LWS_WRITE_HTTP);
		free(heap);
		mbuf_free(&out);
	}
	return -1;
}

int
stream_writable(struct stream *s)
{
	static const char pong[] = "{\"type\":\"pong\"}";
	int rc;

	if (s->failed)
		return -1;
	if (s->want_ping && !s->closing) {
		/* with a payload: lws 4.1 does not report a pong without one */
		unsigned char buf[LWS_PRE + 2] = {[LWS_PRE] = 'k', 'a'};
		if (lws_write(s->wsi, buf + LWS_PRE, 2, LWS_WRITE_PING) < 0)
			return -1;
		s->want_ping = false;
	}
	if (s->want_pong && s->kind == STREAM_WS && !s->closing) {
		if (ws_text(s->wsi, pong, sizeof(pong) - 1) < 0)
			return -1;
		s->want_pong = false;
	}
	rc = s->kind == STREAM_WS ? write_ws(s) : write_sse(s);
	if (rc < 0)
		return -1;
	if (s->closing && (s->head == NULL || s->kind == STREAM_SSE))
		return write_close(s);
	if (s->head != NULL)
		lws_callback_on_writable(s->wsi);
	else if (s->sub.feed != NULL)
		feed_sub_drained(&s->sub);
	return 0;
}

void
stream_peer_closed(struct stream *s)
{
	s->peer_closed = true; /* lws answers the close frame; nothing more goes out */
}

int
stream_receive(struct stream *s, const void *data, size_t len)
{
	const char *error;

	if (params_ws_message(data, len, &error) < 0) {
		stream_ws_close(s->wsi,
		                len > PARAMS_WS_MAX ? LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE
		                                    : LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
		                error);
		return -1;
	}
	ws_alive(s);
	s->want_pong = true;
	lws_callback_on_writable(s->wsi);
	return 0;
}

/* --- SSE keep-alive ------------------------------------------------------------------ */

static void
on_ping(uv_timer_t *t)
{
	uint64_t now = uv_now(t->loop);

	for (struct stream *s = sse_streams; s != NULL; s = s->sse_next)
		if (s->headers_sent && !s->closing && s->head == NULL &&
		    now - s->last_write_ms >= (uint64_t)ping_interval_ms)
			enqueue(s, NULL, "", "ping");
}

void
stream_init(uv_loop_t *loop, const struct sd_config *cfg)
{
	stream_loop = loop;
	ping_interval_ms = cfg->feed_ping_interval;
	uv_timer_init(loop, &ping_timer);
	uv_timer_start(&ping_timer, on_ping, (uint64_t)ping_interval_ms,
	               (uint64_t)ping_interval_ms);
	uv_timer_init(loop, &tick_timer);
	uv_timer_start(&tick_timer, on_tick, 1000, 1000);
	ping_running = true;
}

void
stream_done(void)
{
	if (ping_running) {
		uv_close((uv_handle_t *)&ping_timer, NULL);
		uv_close((uv_handle_t *)&tick_timer, NULL);
	}
	ping_running = false;
	free(reap_fds);
	free(reap_of);
	reap_fds = NULL;
	reap_of = NULL;
	reap_cap = 0;
}
