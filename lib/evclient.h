/*
 * evclient - the producer's side of statusd's event socket (docs/protocol.md).
 *
 * A connection that never blocks: the caller owns the event loop (a poll() loop in the
 * milter's sender thread, Dovecot's iolooop in the plugin, a plain loop in statusctl) and
 * calls evclient_flush() when the socket is writable and evclient_read() when it is
 * readable. Records wait in a queue until statusd answers them; statusd answers every
 * record, in order, so the oldest record in the queue is the one each reply is about.
 *
 * DESIGN
 *	Each queued record keeps a copy of its bytes and the caller's 64-bit cookie until its
 *	reply arrives, so that when the connection breaks the caller gets back every record
 *	that was not acknowledged (evclient_disconnect) and can resend or spool it. Not
 *	thread-safe: one thread uses a client.
 *
 * DIAGNOSTICS
 *	Functions return -1 with *error_r when the connection is broken or unusable; the
 *	caller then disconnects, which hands back the unacknowledged records.
 */
#ifndef EVCLIENT_H
#define EVCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evclient;

/* The outcome of one record: ok, or rejected for good with statusd's reason. */
typedef void evclient_reply_cb(void *ctx, uint64_t cookie, bool ok, const char *error);
/* A record handed back by evclient_disconnect(). */
typedef void evclient_unacked_cb(void *ctx, const char *rec, size_t len, uint64_t cookie);

struct evclient *evclient_new(const char *socket_path);
void evclient_free(struct evclient **c);

/* Connect without blocking (a UNIX socket connects at once or fails). 0 or -1. */
int evclient_connect(struct evclient *c, const char **error_r);
bool evclient_connected(const struct evclient *c);
/* The socket, or -1 when not connected. */
int evclient_fd(const struct evclient *c);

/* Queue one record (len bytes, ending in a newline) with a cookie for its reply. */
void evclient_queue(struct evclient *c, const char *rec, size_t len, uint64_t cookie);
/* Write queued bytes until the socket would block. 0, or -1 if the connection broke. */
int evclient_flush(struct evclient *c, const char **error_r);
/* Whether there are bytes waiting to be written. */
bool evclient_want_write(const struct evclient *c);
/* Read the replies that arrived and report each through cb. 0, or -1 (broken, or EOF). */
int evclient_read(struct evclient *c, evclient_reply_cb *cb, void *ctx, const char **error_r);
/* Records queued and not yet answered. */
size_t evclient_unacked(const struct evclient *c);
/*
 * Close the connection. Every record without a reply is handed to cb (if not NULL) in
 * order and dropped from the client.
 */
void evclient_disconnect(struct evclient *c, evclient_unacked_cb *cb, void *ctx);

/*
 * Parse one reply line strictly: one JSON object with "seq" (a record number from 1) and
 * exactly one of "ack" or "error" (strings); other members are ignored. 0 with *seq_r,
 * *ok_r and *error_r (the rejection reason, in a thread-local buffer, or NULL) set; -1 if
 * it is not such a reply.
 */
int evclient_parse_reply(const char *line, size_t len, uint64_t *seq_r, bool *ok_r,
                         const char **error_r);

#endif
