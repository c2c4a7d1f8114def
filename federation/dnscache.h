/*
 * dnscache - answers from the DNS kept for their TTL: the resolver's cache (resolver.h),
 * without any I/O or clock of its own, so that the unit tests can drive expiry directly.
 *
 * DESIGN
 *	A table (lib/htable) from "<type>/<name>" (the name lowercased, without a final dot) to
 *	an immutable answer: a status and the TXT records' texts. Each answer carries the time
 *	it expires, given by the caller on a monotonic clock in ms. dnscache_get() copies what
 *	it finds (the caller owns the copy), so an entry can be replaced or dropped at any
 *	time. At most max_entries answers are kept: when full, the expired ones are dropped,
 *	and if none has expired the new answer is not cached (it is still returned to the
 *	caller by the resolver). Not thread-safe: the resolver holds its lock around calls.
 *
 * SECURITY
 *	Answers come from the DNS: the texts are stored as bytes (length-counted, NUL allowed)
 *	and are parsed only by their users (fedrec.c, OpenDKIM). A TTL is capped by the
 *	caller's maximum, so a record cannot pin itself in the cache for long.
 *
 * DIAGNOSTICS
 *	None: out of memory is fatal (mymalloc).
 */
#ifndef DNSCACHE_H
#define DNSCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a lookup found. */
enum dns_status {
	DNS_OK = 0,       /* records found (n >= 1) */
	DNS_NODATA = 1,   /* the name does not exist, or has no record of the type */
	DNS_TEMPFAIL = 2, /* no answer now (timeout, SERVFAIL, network): try again later */
	DNS_BOGUS = 3,    /* DNSSEC validation failed: treat as an attack, not as "none" */
};

/* The TXT records of one answer: each record's character-strings concatenated. */
struct dns_txt {
	enum dns_status status;
	bool secure; /* DNSSEC-validated */
	size_t n;
	char **data; /* n texts, each NUL-terminated after len[i] bytes */
	size_t *len;
};

struct dnscache;

struct dnscache *dnscache_new(size_t max_entries);
void dnscache_free(struct dnscache **c);

/* A copy of the answer for (type, name) if one is cached and not expired at now_ms, else
   NULL. The caller frees it with dns_txt_free(). */
struct dns_txt *dnscache_get(struct dnscache *c, int type, const char *name, int64_t now_ms);
/* Cache a copy of answer for (type, name) until now_ms + ttl_ms (nothing if ttl_ms <= 0). */
void dnscache_put(struct dnscache *c, int type, const char *name, const struct dns_txt *answer,
                  int64_t now_ms, int64_t ttl_ms);
/* The number of answers held (expired ones included until they are dropped). */
size_t dnscache_size(const struct dnscache *c);

/* A deep copy of an answer, and freeing one (sets *t to NULL). */
struct dns_txt *dns_txt_copy(const struct dns_txt *t);
void dns_txt_free(struct dns_txt **t);

/*
 * The TXT RDATA in wire form (RFC 1035 section 3.3.14: one or more <character-string>s,
 * each a length byte and that many bytes) into one text, the strings concatenated, NUL
 * terminated, in a new allocation (*out_r, *out_len_r). -1 when the RDATA is empty or a
 * length runs past its end (untrusted bytes from the DNS).
 */
int dns_txt_rdata(const unsigned char *rdata, size_t len, char **out_r, size_t *out_len_r);

/* The cache key for (type, name): "<type>/<name>" with the name lowercased and its final
   dot removed, into buf (size bytes); -1 when it does not fit. */
int dnscache_key(int type, const char *name, char *buf, size_t size);

#endif
