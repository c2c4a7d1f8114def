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
	if (m != NULL && --m->refs == 0)
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

struct feed_msg *
feed_msg_copy(const struct feed_msg *m)
{
	struct feed_msg *c = mymalloc(sizeof(*c) + m->len + 1);

	c->refs = 1;
	c->offset = m->offset;
	c->len = m->len;
	memcpy(c->data, m->data, m->len + 1);
	return c;
}
