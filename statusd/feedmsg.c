/*
 * feedmsg - one event as the feeds send it. See feedmsg.h.
 */
#include "feedmsg.h"

#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "mymalloc.h"
#include "render.h"
#include "store.h"

#define SLAB_BLOCK 65536 /* below malloc's mmap threshold, so freed blocks are reused */
#define SLAB_ALIGN 16

struct slab_block {
	struct slab_block *next;
	size_t used, cap;
	_Alignas(SLAB_ALIGN) char mem[];
};

struct feed_slab {
	int refs; /* its messages, and the maker's until feed_slab_release */
	struct slab_block *blocks;
};

static void
slab_unref(struct feed_slab *slab)
{
	if (--slab->refs > 0)
		return;
	for (struct slab_block *b = slab->blocks, *next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	free(slab);
}

struct feed_slab *
feed_slab_new(void)
{
	struct feed_slab *slab = mycalloc(1, sizeof(*slab));

	slab->refs = 1;
	return slab;
}

void
feed_slab_release(struct feed_slab **slabp)
{
	struct feed_slab *slab = *slabp;

	*slabp = NULL;
	if (slab != NULL)
		slab_unref(slab);
}

/* size bytes of slab's memory, aligned for a struct feed_msg. */
static void *
slab_alloc(struct feed_slab *slab, size_t size)
{
	struct slab_block *b = slab->blocks;
	void *p;

	size = (size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1);
	if (b == NULL || b->cap - b->used < size) {
		size_t cap = size > SLAB_BLOCK - sizeof(*b) ? size : SLAB_BLOCK - sizeof(*b);
		b = mymalloc(sizeof(*b) + cap);
		b->used = 0;
		b->cap = cap;
		b->next = slab->blocks;
		slab->blocks = b;
	}
	p = b->mem + b->used;
	b->used += size;
	return p;
}

void
feed_msg_ref(struct feed_msg *m)
{
	m->refs++;
}

void
feed_msg_unref(struct feed_msg **mp)
{
	struct feed_msg *m = *mp;

	*mp = NULL;
	if (m == NULL || --m->refs > 0)
		return;
	if (m->slab != NULL)
		slab_unref(m->slab);
	else
		free(m);
}

/* The event's message, rendered in scratch, in slab's memory (NULL: an allocation of its own). */
static struct feed_msg *
msg_make(struct feed_slab *slab, const struct store_logged *l, int64_t epoch, struct mbuf *scratch)
{
	static const char prefix[] = "{\"type\":\"event\",";
	struct feed_msg *m;
	size_t size;

	mbuf_reset(scratch);
	render_logged(l, epoch, scratch);
	size = sizeof(*m) + scratch->len + sizeof(prefix);
	if (slab != NULL) {
		m = slab_alloc(slab, size);
		slab->refs++;
	} else
		m = mymalloc(size);
	m->slab = slab;
	m->refs = 1;
	m->offset = l->log_offset;
	memcpy(m->data, prefix, sizeof(prefix) - 1);
	memcpy(m->data + sizeof(prefix) - 1, scratch->data + 1, scratch->len - 1); /* its "{" */
	m->len = sizeof(prefix) - 1 + scratch->len - 1;
	m->data[m->len] = '\0';
	return m;
}

struct feed_msg *
feed_msg_new(const struct store_logged *l, int64_t epoch, struct mbuf *scratch)
{
	return msg_make(NULL, l, epoch, scratch);
}

struct feed_msg *
feed_msg_new_in(struct feed_slab *slab, const struct store_logged *l, int64_t epoch,
                struct mbuf *scratch)
{
	return msg_make(slab, l, epoch, scratch);
}

struct feed_msg *
feed_msg_copy(const struct feed_msg *m)
{
	struct feed_msg *c = mymalloc(sizeof(*c) + m->len + 1);

	c->refs = 1;
	c->slab = NULL;
	c->offset = m->offset;
	c->len = m->len;
	memcpy(c->data, m->data, m->len + 1);
	return c;
}
