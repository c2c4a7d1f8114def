/*
 * feedmsg - one event as the feeds send it: serialized once into an immutable,
 * reference-counted message that every subscriber who gets it shares (after nchan).
 *
 * DESIGN
 *	A message is made on the first loop's thread (an event this statusd published) or on
 *	a database thread (a catch-up page, formatted as it is read), then only read. The
 *	first loop hands each published message to every other feed loop (feedloop.h), one
 *	reference per loop, so its reference count is atomic; nothing else in a message
 *	changes after it is made.
 *
 * SECURITY
 *	The document is built from a stored event (render_logged); who may receive it is
 *	the feed's decision, not this module's.
 *
 * DIAGNOSTICS
 *	None; out of memory is fatal.
 */
#ifndef FEEDMSG_H
#define FEEDMSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct mbuf;
struct store_logged;

/* One serialized event (the JSON document of docs/api.md), shared by reference. */
struct feed_msg {
	_Atomic int refs; /* held on several loops (feedloop.h) */
	int64_t offset;
	size_t len;
	char data[]; /* len bytes of JSON, NUL-terminated */
};

/* The event as the feeds send it: render_logged's document with "type":"event",
   offset l->log_offset, one reference. scratch is the caller's buffer for formatting (one
   per thread). */
struct feed_msg *feed_msg_new(const struct store_logged *l, int64_t epoch, struct mbuf *scratch);

void feed_msg_ref(struct feed_msg *m);
/* Drop a reference (the last frees m) and set *m to NULL; NULL is fine. */
void feed_msg_unref(struct feed_msg **m);

#endif
