/*
 * feedindex - the feed's index of live subscribers. See feedindex.h.
 */
#include "feedindex.h"

#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "feed.h"
#include "htable.h"
#include "mymalloc.h"
#include "principal.h"

/* The live subscribers of one user, or the admins of one domain. */
struct feed_bucket {
	struct htable *table;
	struct htable_entry *entry; /* in table, holding the key */
	struct feed_link *head;
};

struct feed_index {
	struct htable *by_user, *by_domain; /* key -> struct feed_bucket */
};

struct feed_index *
feed_index_new(void)
{
	struct feed_index *x = mycalloc(1, sizeof(*x));

	x->by_user = htable_create(1024);
	x->by_domain = htable_create(64);
	return x;
}

void
feed_index_free(struct feed_index **xp)
{
	struct feed_index *x = *xp;

	if (x == NULL)
		return;
	*xp = NULL;
	htable_free(&x->by_user, free);
	htable_free(&x->by_domain, free);
	free(x);
}

static void
link_add(struct htable *table, const char *key, struct feed_sub *sub, struct feed_link *link)
{
	size_t len = strlen(key);
	struct feed_bucket *b;

	if ((b = htable_find(table, key, len)) == NULL) {
		b = mycalloc(1, sizeof(*b));
		b->table = table;
		b->entry = htable_enter(table, key, len, b);
	}
	link->sub = sub;
	link->bucket = b;
	link->prev = NULL;
	link->next = b->head;
	if (b->head)
		b->head->prev = link;
	b->head = link;
}

static void
link_remove(struct feed_link *link)
{
	struct feed_bucket *b = link->bucket;

	if (b == NULL)
		return;
	if (link->prev)
		link->prev->next = link->next;
	else
		b->head = link->next;
	if (link->next)
		link->next->prev = link->prev;
	link->bucket = NULL;
	if (b->head == NULL)
		htable_remove(b->table, b->entry, free); /* frees the bucket */
}

void
feed_index_enter(struct feed_index *x, struct feed_sub *sub)
{
	const struct principal *p = sub->who;

	sub->nlinks = 1 + p->nadmin;
	sub->links = mycalloc(sub->nlinks, sizeof(*sub->links));
	link_add(x->by_user, p->user, sub, &sub->links[0]);
	for (size_t i = 0; i < p->nadmin; i++) {
		bool again = false;

		/* a domain named twice gets one link: two links of one subscriber side by side
		   in a bucket would let the fan-out step onto a link freed with the subscriber */
		for (size_t j = 0; j < i && !again; j++)
			again = strcmp(p->admin_domains[j], p->admin_domains[i]) == 0;
		if (!again)
			link_add(x->by_domain, p->admin_domains[i], sub, &sub->links[1 + i]);
	}
}

void
feed_index_leave(struct feed_sub *sub)
{
	for (size_t i = 0; i < sub->nlinks; i++)
		link_remove(&sub->links[i]);
	free(sub->links);
	sub->links = NULL;
	sub->nlinks = 0;
}

struct feed_link *
feed_index_user(struct feed_index *x, const char *owner)
{
	struct feed_bucket *b;

	if (owner == NULL || (b = htable_find(x->by_user, owner, strlen(owner))) == NULL)
		return NULL;
	return b->head;
}

struct feed_link *
feed_index_domain(struct feed_index *x, const char *sender)
{
	const char *at = sender ? strrchr(sender, '@') : NULL;
	struct feed_bucket *b;
	char domain[256];
	size_t i = 0;

	if (at == NULL || strlen(at + 1) >= sizeof(domain))
		return NULL;
	for (const char *p = at + 1; *p; p++)
		domain[i++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	if ((b = htable_find(x->by_domain, domain, i)) == NULL)
		return NULL;
	return b->head;
}
