/*
 * htable - hash table of byte-string keys. See htable.h.
 */
#include "htable.h"

#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "mymalloc.h"
#include "randid.h"

#define MIN_BUCKETS 16

struct htable {
	struct htable_entry **buckets;
	size_t size; /* buckets: a power of two */
	size_t used; /* entries */
	unsigned char seed[16];
};

/* --- SipHash-2-4 (Aumasson and Bernstein, 2012) ---------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

/* Little-endian, whatever the host is. */
static uint64_t
load64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t
htable_siphash(const unsigned char key[16], const void *in, size_t len)
{
	const unsigned char *p = len > 0 ? in : (const unsigned char *)"";
	const unsigned char *end = p + (len & ~(size_t)7);
	uint64_t k0 = load64(key), k1 = load64(key + 8), m, b = (uint64_t)len << 56;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1,
	         v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;

	for (; p != end; p += 8) {
		m = load64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* --- the table ------------------------------------------------------------------------ */

static struct htable_entry **
new_buckets(size_t n)
{
	return mycalloc(n, sizeof(struct htable_entry *));
}

struct htable *
htable_create(size_t size)
{
	struct htable *ht = mycalloc(1, sizeof(*ht));

	ht->size = MIN_BUCKETS;
	while (ht->size < size && ht->size <= SIZE_MAX / 2 / sizeof(*ht->buckets))
		ht->size *= 2;
	ht->buckets = new_buckets(ht->size);
	randid_bytes(ht->seed, sizeof(ht->seed));
	return ht;
}

void
htable_free(struct htable **htp, htable_free_fn *free_value)
{
	struct htable *ht = *htp;

	if (ht == NULL)
		return;
	*htp = NULL;
	for (size_t i = 0; i < ht->size; i++) {
		struct htable_entry *e = ht->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			if (free_value != NULL)
				free_value(e->value);
			free(e);
		}
	}
	free(ht->buckets);
	free(ht);
}

static void
grow(struct htable *ht)
{
	size_t size = ht->size * 2;
	struct htable_entry **b;

	if (size > SIZE_MAX / sizeof(*b))
		return; /* cannot happen before memory runs out; chains just get longer */
	b = new_buckets(size);
	for (size_t i = 0; i < ht->size; i++) {
		struct htable_entry *e = ht->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (size - 1)];
			b[e->hash & (size - 1)] = e;
		}
	}
	free(ht->buckets);
	ht->buckets = b;
	ht->size = size;
}

static struct htable_entry *
locate(const struct htable *ht, uint64_t hash, const void *key, size_t len)
{
	for (struct htable_entry *e = ht->buckets[hash & (ht->size - 1)]; e != NULL; e = e->next)
		if (e->hash == hash && e->key_len == len &&
		    (len == 0 || memcmp(e->key, key, len) == 0))
			return e;
	return NULL;
}

struct htable_entry *
htable_enter(struct htable *ht, const void *key, size_t len, void *value)
{
	uint64_t hash = htable_siphash(ht->seed, key, len);
	struct htable_entry *e, **head;

	if (locate(ht, hash, key, len) != NULL)
		msg_panic("htable_enter: the key is already in the table");
	if (len > SIZE_MAX - sizeof(*e) - 1)
		msg_fatal("out of memory");
	e = mymalloc(sizeof(*e) + len + 1);
	e->value = value;
	e->key_len = len;
	e->hash = hash;
	if (len > 0)
		memcpy(e->key, key, len);
	e->key[len] = '\0';
	if (ht->used >= ht->size)
		grow(ht);
	head = &ht->buckets[hash & (ht->size - 1)];
	e->next = *head;
	*head = e;
	ht->used++;
	return e;
}

struct htable_entry *
htable_locate(const struct htable *ht, const void *key, size_t len)
{
	return locate(ht, htable_siphash(ht->seed, key, len), key, len);
}

void *
htable_find(const struct htable *ht, const void *key, size_t len)
{
	struct htable_entry *e = htable_locate(ht, key, len);

	return e != NULL ? e->value : NULL;
}

void
htable_remove(struct htable *ht, struct htable_entry *e, htable_free_fn *free_value)
{
	struct htable_entry **pp = &ht->buckets[e->hash & (ht->size - 1)];

	while (*pp != e) {
		if (*pp == NULL)
			msg_panic("htable_remove: the entry is not in this table");
		pp = &(*pp)->next;
	}
	*pp = e->next;
	ht->used--;
	if (free_value != NULL)
		free_value(e->value);
	free(e);
}

bool
htable_delete(struct htable *ht, const void *key, size_t len, htable_free_fn *free_value)
{
	struct htable_entry *e = htable_locate(ht, key, len);

	if (e == NULL)
		return false;
	htable_remove(ht, e, free_value);
	return true;
}

size_t
htable_used(const struct htable *ht)
{
	return ht->used;
}

void
htable_walk(const struct htable *ht, htable_walk_fn *fn, void *ctx)
{
	for (size_t i = 0; i < ht->size; i++)
		for (struct htable_entry *e = ht->buckets[i]; e != NULL; e = e->next)
			fn(e, ctx);
}
