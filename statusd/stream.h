/*
 * stream - the two transports of the live feed (feed.h): WebSocket
 * (GET /api/v1/messages/stream) and Server-Sent Events (GET /api/v1/messages/events).
 *
 * DESIGN
 *	A stream is one client connection subscribed to the feed. It queues what the feed
 *	hands it (shared feed_msg references and control documents) and writes it out when lws
 *	says the connection is writable, as many messages per turn as the socket takes; but a
 *	WebSocket with nothing queued and nothing held back by lws writes an event the moment
 *	the feed hands it over, so that a fan-out costs one send() per subscriber instead of a
 *	writable-callback round trip (lws 4.1 frames it, and keeps and later sends what a
 *	short write leaves, the same in and out of the callback). It reports its queued bytes
 *	to the feed, which closes a live stream that falls feed_buffer_max behind (the reason
 *	says which offset to resume from) and pauses a catching-up one until it drains.
 *
 *	WebSocket: one text message per event or control document; the client may send
 *	{"type":"ping"} (answered with {"type":"pong"}); anything else is a protocol error
 *	(close 1003/1007 with a reason). Idle clients get a ping every feed_ping_interval and
 *	one silent for three intervals is hung up on: one timer walks the WebSocket streams in
 *	the order they last showed life, so a turn touches only those that are due (lws 4.1's
 *	own keep-alive keeps a timer per connection in one sorted list that every re-arm walks,
 *	a quarter of a CPU at 10,000 idle connections). The same once-a-second timer ends the
 *	streams whose credential has expired, kept in a heap by expiry time.
 *	SSE: "id: EPOCH-OFFSET", "event: status|hello|error", "data: ..." records; a comment
 *	line every feed_ping_interval keeps proxies from dropping an idle stream.
 *
 *	Ownership: the stream is malloc'd, pointed to by the lws per-session data; the lws
 *	glue (http.c) calls stream_closed() when the connection goes.
 *	Threads: each event loop that serves feeds (feedloop.h) has its own set of the lists,
 *	heap and timers above (thread-local), made by stream_init() on that loop's thread; a
 *	stream is only ever touched by the thread of the loop it was started on.
 */
#ifndef STREAM_H
#define STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct feed;
struct lws;
struct principal;
struct sd_config;
struct stream;

enum stream_kind { STREAM_WS, STREAM_SSE };

/* Start streaming to wsi (authenticated as who) from offset `from` of `epoch`. */
struct stream *stream_start(enum stream_kind kind, struct lws *wsi, struct feed *feed,
                            const struct principal *who, int64_t from, int64_t epoch);
/* lws says writable: write what is queued. Returns -1 when the connection must close. */
int stream_writable(struct stream *s);
/* A WebSocket message from the client (already reassembled by lws). -1: close. */
int stream_receive(struct stream *s, const void *data, size_t len);
/* The WebSocket client answered a ping. */
void stream_pong(struct stream *s);
/* The WebSocket client sent a close frame: write nothing more (lws answers it). */
void stream_peer_closed(struct stream *s);
/* The connection is gone: unsubscribe and free. */
void stream_closed(struct stream **s);

/* The timers of the streams of this thread's loop (call on that loop's thread). */
void stream_init(uv_loop_t *loop, const struct sd_config *cfg);
void stream_done(void);

/*
 * Send a WebSocket close frame with code and reason (at most 123 bytes are sent) from a
 * writable callback; the caller then returns -1. (lws 4.1 on a foreign loop does not send
 * the frame for lws_close_reason() + -1 by itself.)
 */
void stream_ws_close(struct lws *wsi, int code, const char *reason);

#endif
