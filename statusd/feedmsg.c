/*
 * feedmsg - one event as the feeds send it. See feedmsg.h.
 */
#include "feedmsg.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "mymalloc.h"
#include "render.h"
#include "store.h"

void
feed_msg_ref(struct feed_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void
feed_msg_unref(struct feed_msg **mp)
{
	struct feed_msg *m = *mp;

	*mp = NULL;
	/* the last reference may be dropped on any loop: what others did to m happens
	   before it is freed (acq_rel) */
	if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

struct feed_msg *
feed_msg_new(const struct store_logged *l, int64_t epoch, struct mbuf *scratch)
{
	static const char prefix[] = "{\"type\":\"event\",";
	struct feed_msg *m;

	mbuf_reset(scratch);
	render_logged(l, epoch, scratch);
	m = mymalloc(sizeof(*m) + scratch->len + sizeof(prefix));
	m->refs = 1;
	m->offset = l->log_offset;
	memcpy(m->data, prefix, sizeof(prefix) - 1);
	memcpy(m->data + sizeof(prefix) - 1, scratch->data + 1, scratch->len - 1); /* its "{" */
	m->len = sizeof(prefix) - 1 + scratch->len - 1;
	m->data[m->len] = '\0';
	return m;
}
