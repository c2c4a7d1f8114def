/*
 * feedmsg - one event as the feeds send it: serialized once into an immutable,
 * reference-counted message that every subscriber who gets it shares (after nchan).
 *
 * DESIGN
 *	A message is made on the loop thread (an event this statusd published) or on a
 *	database thread (a catch-up page, formatted as it is read), then only read. Its
 *	reference count is not atomic: the thread that made a message owns it until it is
 *	handed to the loop thread, and from then on only the loop thread takes and drops
 *	references. Another feed loop (feedloop.h) gets a copy of its own (feed_msg_copy), so
 *	that a count is never shared between threads and a fan-out takes no atomic
 *	operation per subscriber. A catch-up page's messages share the blocks of one slab
 *	(feed_slab), which lives until the page and the last of them are gone.
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

#include <stddef.h>
#include <stdint.h>

struct mbuf;
struct store_logged;

struct feed_slab;

/* One serialized event (the JSON document of docs/api.md), shared by reference. */
struct feed_msg {
	int refs;
	int64_t offset;
	size_t len;
	struct feed_slab *slab; /* where its memory is, or NULL: its own allocation */
	char data[];            /* len bytes of JSON, NUL-terminated */
};

/* The event as the feeds send it: render_logged's document with "type":"event",
   offset l->log_offset, one reference. scratch is the caller's buffer for formatting (one
   per thread). */
struct feed_msg *feed_msg_new(const struct store_logged *l, int64_t epoch, struct mbuf *scratch);

/*
 * Messages made together (a catch-up page) and carved from a few large blocks instead of
 * one allocation each: a page of 2,000 events cost 2,000 malloc() on the database thread
 * and as many free() on the loop thread. The slab counts its messages like a message
 * counts its holders, and with the same rule of threads; its memory is freed when it has
 * been released and the last of its messages has been dropped.
 */
struct feed_slab *feed_slab_new(void);
/* As feed_msg_new, with the message's memory in slab (which gains a reference). */
struct feed_msg *feed_msg_new_in(struct feed_slab *slab, const struct store_logged *l,
                                 int64_t epoch, struct mbuf *scratch);
/* Drop the maker's reference and set *slab to NULL; NULL is fine. */
void feed_slab_release(struct feed_slab **slab);

/* A copy of m with one reference, for another thread's loop. */
struct feed_msg *feed_msg_copy(const struct feed_msg *m);

void feed_msg_ref(struct feed_msg *m);
/* Drop a reference (the last frees m) and set *m to NULL; NULL is fine. */
void feed_msg_unref(struct feed_msg **m);

#endif
