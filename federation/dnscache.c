/*
 * dnscache - answers from the DNS kept for their TTL. See dnscache.h.
 */
#include "dnscache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htable.h"
#include "mymalloc.h"

#define KEY_MAX 300 /* "65535/" + a 253-byte name + slack */

struct entry {
	struct dns_txt *answer;
	int64_t expires_ms;
};

struct dnscache {
	struct htable *table;
	size_t max_entries;
};

static void
entry_free(void *value)
{
	struct entry *e = value;

	dns_txt_free(&e->answer);
	free(e);
}

struct dnscache *
dnscache_new(size_t max_entries)
{
	struct dnscache *c = mycalloc(1, sizeof(*c));

	c->table = htable_create(max_entries < 64 ? max_entries : 64);
	c->max_entries = max_entries;
	return c;
}

void
dnscache_free(struct dnscache **cp)
{
	struct dnscache *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	htable_free(&c->table, entry_free);
	free(c);
}

struct dns_txt *
dns_txt_copy(const struct dns_txt *t)
{
	struct dns_txt *copy = mycalloc(1, sizeof(*copy));

	copy->status = t->status;
	copy->secure = t->secure;
	copy->n = t->n;
	if (t->n > 0) {
		copy->data = myreallocarray(NULL, t->n, sizeof(*copy->data));
		copy->len = myreallocarray(NULL, t->n, sizeof(*copy->len));
		for (size_t i = 0; i < t->n; i++) {
			copy->len[i] = t->len[i];
			copy->data[i] = mymalloc(t->len[i] + 1);
			memcpy(copy->data[i], t->data[i], t->len[i]);
			copy->data[i][t->len[i]] = '\0';
		}
	}
	return copy;
}

void
dns_txt_free(struct dns_txt **tp)
{
	struct dns_txt *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < t->n; i++)
		free(t->data[i]);
	free(t->data);
	free(t->len);
	free(t);
}

int
dns_txt_rdata(const unsigned char *rdata, size_t len, char **out_r, size_t *out_len_r)
{
	size_t pos = 0, n = 0;
	char *out;

	*out_r = NULL;
	*out_len_r = 0;
	if (len == 0)
		return -1;
	/* first pass: check every length byte against the end */
	while (pos < len) {
		size_t l = rdata[pos];

		if (l > len - pos - 1)
			return -1;
		n += l;
		pos += 1 + l;
	}
	out = mymalloc(n + 1);
	for (pos = 0, n = 0; pos < len; pos += 1 + rdata[pos]) {
		memcpy(out + n, rdata + pos + 1, rdata[pos]);
		n += rdata[pos];
	}
	out[n] = '\0';
	*out_r = out;
	*out_len_r = n;
	return 0;
}

int
dnscache_key(int type, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);
	int w;

	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	w = snprintf(buf, size, "%d/", type);
	if (w < 0 || (size_t)w + nlen + 1 > size)
		return -1;
	for (size_t i = 0; i < nlen; i++) {
		char ch = name[i];
		buf[w + (int)i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	buf[(size_t)w + nlen] = '\0';
	return 0;
}

struct dnscache_sweep {
	struct htable_entry **expired;
	size_t n, cap;
	int64_t now_ms;
};

static void
collect_expired(struct htable_entry *he, void *ctx)
{
	struct dnscache_sweep *s = ctx;
	const struct entry *e = he->value;

	if (e->expires_ms > s->now_ms)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->expired = myreallocarray(s->expired, s->cap, sizeof(*s->expired));
	}
	s->expired[s->n++] = he;
}

/* Drop every expired answer. */
static void
sweep(struct dnscache *c, int64_t now_ms)
{
	struct dnscache_sweep s = {.now_ms = now_ms};

	htable_walk(c->table, collect_expired, &s);
	for (size_t i = 0; i < s.n; i++)
		htable_remove(c->table, s.expired[i], entry_free);
	free(s.expired);
}

struct dns_txt *
dnscache_get(struct dnscache *c, int type, const char *name, int64_t now_ms)
{
	char key[KEY_MAX];
	struct htable_entry *he;
	const struct entry *e;

	if (dnscache_key(type, name, key, sizeof(key)) < 0 ||
	    (he = htable_locate(c->table, key, strlen(key))) == NULL)
		return NULL;
	e = he->value;
	if (e->expires_ms <= now_ms) {
		htable_remove(c->table, he, entry_free);
		return NULL;
	}
	return dns_txt_copy(e->answer);
}

void
dnscache_put(struct dnscache *c, int type, const char *name, const struct dns_txt *answer,
             int64_t now_ms, int64_t ttl_ms)
{
	char key[KEY_MAX];
	struct entry *e;

	if (ttl_ms <= 0 || c->max_entries == 0 || dnscache_key(type, name, key, sizeof(key)) < 0)
		return;
	htable_delete(c->table, key, strlen(key), entry_free);
	if (htable_used(c->table) >= c->max_entries) {
		sweep(c, now_ms);
		if (htable_used(c->table) >= c->max_entries)
			return; /* full of live answers: this one is not kept */
	}
	e = mycalloc(1, sizeof(*e));
	e->answer = dns_txt_copy(answer);
	e->expires_ms = now_ms + ttl_ms;
	htable_enter(c->table, key, strlen(key), e);
}

size_t
dnscache_size(const struct dnscache *c)
{
	return htable_used(c->table);
}
