/*
 * front - statusd's HTTP listening socket: accepts connections, reads and checks each
 * request head (reqhead.h) before libwebsockets sees it, and hands the connection to lws.
 *
 * DESIGN
 *	One listening socket (http_listen), non-blocking, watched by a uv_poll on statusd's
 *	loop, the loop lws runs on too. An accepted connection is read at once; while its
 *	head is incomplete it waits in a list, in the order it came, with a uv_poll of its
 *	own and a deadline (http_head_timeout) that one one-second timer checks. Accepted
 *	sockets get TCP_NODELAY (lws writes an answer's head and body, and each WebSocket
 *	frame, with a write each). The front
 *	looks at bytes before it takes them (MSG_PEEK) and takes only the head's; then it
 *	reads the body (Content-Length, at most http_body_max) under the same deadline.
 *	Then the connection goes to the lws vhost with the head rewritten (reqhead_check(),
 *	without Content-Length), with lws_adopt_socket_vhost_readbuf(); the body waits here,
 *	keyed by the socket, until http.c takes it (front_body_take()) as lws reports the
 *	request. (lws 4.1 cannot be handed a body: it reads the head it was handed again as
 *	the body, and spins.) What follows, a WebSocket's first frames, stays in the socket
 *	for lws. lws reads only that one request on it: http.c closes
 *	each plain connection after its answer, so every request statusd answers has passed
 *	here. With http_tls_cert, the front accepts and hands the connection over at once:
 *	the head is encrypted, and lws reads and checks it (http.c).
 *
 *	With feed_threads > 1 (feedloop.h) the front is still the only acceptor, on the
 *	first loop; a plain connection whose head asks for a feed (a GET of the SSE path, an
 *	upgrade on the WebSocket path) may instead go, with its checked head, to another
 *	loop's lws context through the handoff function (front_handoff()), which spreads
 *	them over the loops. Everything else stays on the first loop.
 *
 * SECURITY
 *	A head is bounded (REQHEAD_MAX) and must arrive within http_head_timeout; at most
 *	http_head_pending_max connections wait for their heads, and one more pushes out the
 *	one that has waited longest (slow clients cannot keep fast ones out). A head that
 *	fails a check gets a short problem document with its status and Connection: close;
 *	then the front reads and drops what the client still sends for up to 2 s, so that
 *	the answer is not lost to a reset, and closes.
 *
 *	Out of file descriptors (EMFILE), the listening socket stays readable: the front
 *	stops watching it and tries again on the next tick, with one warning a second.
 *
 * DIAGNOSTICS
 *	front_start() is fatal on a listening socket that cannot be made. Refused heads are
 *	logged (msg_info) with their status and reason, never their bytes; a connection that
 *	lws cannot adopt is closed with a warning.
 */
#ifndef FRONT_H
#define FRONT_H

#include <stdbool.h>
#include <uv.h>

struct mbuf;
struct lws_vhost;
struct sd_config;
struct front;

/* Listen on cfg->http_listen and hand each connection whose head passes to vhost. Fatal
   if the address cannot be bound. */
struct front *front_start(uv_loop_t *loop, const struct sd_config *cfg, struct lws_vhost *vhost);

/* The body front read for the request on socket fd, moved into *body (which is freed
   first); false if it had none. */
bool front_body_take(struct front *f, int fd, struct mbuf *body);

/* Offer fn each passed feed request's connection (socket, checked head); fn returns true
   if it took them (the head is then its to free), false to leave them on this loop. */
typedef bool front_handoff_fn(void *ctx, int fd, struct mbuf *head);
void front_handoff(struct front *f, front_handoff_fn *fn, void *ctx);

/* Stop listening and close the connections still reading their heads; the memory goes
   once the loop has closed the handles. */
void front_stop(struct front **fp);

#endif
