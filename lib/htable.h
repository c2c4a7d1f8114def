/*
 * htable - a hash table of byte-string keys to pointers, in the style of Postfix's
 * htable(3): the table owns a copy of each key and an entry per key; the values are the
 * caller's.
 *
 * Why written here: of what Debian packages, json-c's lh_table is explicitly not for use
 * outside json-c; GLib's GHashTable and APR's apr_hash would bring a large library (and
 * APR its pools) into every program for one data structure; uthash (uthash-dev) is macros
 * over the caller's structs, and its default hash is unseeded, so keys a peer chooses can
 * be made to collide (it then stops growing the table and every operation walks one long
 * chain). glibc's hsearch_r(3) cannot delete. Postfix, Dovecot and Redis each keep a small
 * table of their own for the same reasons; this is one, about 200 lines.
 *
 * DESIGN
 *	Separate chaining. The table doubles its buckets when it holds more entries than
 *	buckets, so the mean chain is at most one entry long; it never shrinks. An entry is
 *	one allocation with the key's copy inside it, and stays where it is until it is
 *	deleted (growing relinks entries, it does not move them), so a caller may keep a
 *	struct htable_entry pointer, e.g. in an eviction list of its own. Not thread-safe:
 *	one owner at a time.
 *
 * SECURITY
 *	Keys may come from peers (queue ids from log lines, user names, token hashes). They
 *	are hashed with SipHash-2-4 under a random 128-bit key per table (getrandom(2)), so
 *	that nobody who cannot read the process's memory can choose keys that collide: every
 *	operation stays O(1) on average whatever the keys are.
 *
 * DIAGNOSTICS
 *	Out of memory is fatal (msg_fatal). Entering a key that is already there, and deleting
 *	an entry of another table, are panics (broken invariants of the caller).
 */
#ifndef HTABLE_H
#define HTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct htable;

struct htable_entry {
	void *value;    /* the caller's */
	size_t key_len; /* bytes of key */
	/* the table's */
	struct htable_entry *next;
	uint64_t hash;
	char key[]; /* the table's copy, with a NUL after key_len bytes */
};

typedef void htable_free_fn(void *value);
typedef void htable_walk_fn(struct htable_entry *e, void *ctx);

/* A new, empty table with room for about size entries before it first grows. */
struct htable *htable_create(size_t size);
/* Free the table and its entries, calling free_value (unless NULL) on each value. */
void htable_free(struct htable **ht, htable_free_fn *free_value);

/* Add key (len bytes) with value; the key must not be in the table. Returns the entry. */
struct htable_entry *htable_enter(struct htable *ht, const void *key, size_t len, void *value);
/* The entry for key, or NULL. */
struct htable_entry *htable_locate(const struct htable *ht, const void *key, size_t len);
/* The value for key, or NULL (also when the value is NULL: use htable_locate to tell). */
void *htable_find(const struct htable *ht, const void *key, size_t len);
/* Remove key's entry, calling free_value (unless NULL) on its value; false if absent. */
bool htable_delete(struct htable *ht, const void *key, size_t len, htable_free_fn *free_value);
/* Remove the entry e of ht (as htable_delete, without looking the key up first). */
void htable_remove(struct htable *ht, struct htable_entry *e, htable_free_fn *free_value);

/* The number of entries. */
size_t htable_used(const struct htable *ht);
/* Call fn on every entry, in no particular order; fn must not enter or delete entries. */
void htable_walk(const struct htable *ht, htable_walk_fn *fn, void *ctx);

/* SipHash-2-4 of in (len bytes) under key (16 bytes): the table's hash, here for tests. */
uint64_t htable_siphash(const unsigned char key[16], const void *in, size_t len);

#endif
