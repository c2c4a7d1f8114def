/*
 * feedindex - the feed's index of live subscribers: who gets an event the moment it is
 * published. A subscriber is entered under its user and under each domain it administers;
 * an event goes to the subscribers of its owner and to those of its sender's domain.
 *
 * DESIGN
 *	Two hash tables (lib/htable) of buckets, user -> subscribers and domain ->
 *	subscribers, each bucket a doubly linked list of links. A subscriber's links are its
 *	own (struct feed_sub's links, one for its user and one per admin domain), so entering
 *	and leaving cost one lookup per key and nothing per other subscriber; a bucket goes
 *	with its last link. Loop thread only, owned by the feed.
 *
 * SECURITY
 *	This index is only who may be told at once: the owner and the domain's administrators
 *	are exactly those principal_may_see() admits (principal.h). Keys are a principal's
 *	user and domains and an event's sender, never a peer's text.
 *
 * DIAGNOSTICS
 *	None: lookups return a list or NULL.
 */
#ifndef FEEDINDEX_H
#define FEEDINDEX_H

struct feed_bucket;
struct feed_sub;
struct feed_index;

/* One place of a subscriber in the index. */
struct feed_link {
	struct feed_sub *sub;
	struct feed_bucket *bucket; /* NULL: not in the index */
	struct feed_link *next, *prev;
};

struct feed_index *feed_index_new(void);
/* Free the index and whatever buckets are left (their subscribers keep dangling links:
   call after every subscriber has left). */
void feed_index_free(struct feed_index **x);

/* Enter sub under sub->who's user and admin domains; sets sub->links and sub->nlinks. */
void feed_index_enter(struct feed_index *x, struct feed_sub *sub);
/* Take sub out of the index and free its links. */
void feed_index_leave(struct feed_sub *sub);

/*
 * The live subscribers of user owner / of the administrators of sender's domain (the part
 * after its last '@', in any case); NULL if none or the key is NULL. Walk the list with
 * ->next, reading it before handing an event on: the subscriber may leave meanwhile.
 */
struct feed_link *feed_index_user(struct feed_index *x, const char *owner);
struct feed_link *feed_index_domain(struct feed_index *x, const char *sender);

#endif
