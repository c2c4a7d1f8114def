/*
 * fedaccept - the decisions of the report endpoint, without I/O. See fedaccept.h.
 */
#include "fedaccept.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fedrec.h"
#include "htable.h"
#include "httpsig.h"
#include "mimistatus.h"
#include "mymalloc.h"

#define MEDIA_TYPE "application/vnd.msgstatus.report+cbor"

static const struct fedin_errinfo errinfo[FEDIN_ERR_MAX] = {
        [FEDIN_OK] = {200, "ok", "OK"},
        [FEDIN_DISABLED] = {404, "not-accepting", "Not Found"},
        [FEDIN_CONTENT_TYPE] = {415, "content-type", "Unsupported Media Type"},
        [FEDIN_TOO_LARGE] = {413, "too-large", "Content Too Large"},
        [FEDIN_MALFORMED] = {400, "malformed", "Bad Request"},
        [FEDIN_SIGNATURE_MISSING] = {401, "signature-missing", "Unauthorized"},
        [FEDIN_SIGNATURE_INVALID] = {401, "signature-invalid", "Unauthorized"},
        [FEDIN_PROFILE] = {401, "signature-profile", "Unauthorized"},
        [FEDIN_STALE] = {401, "stale", "Unauthorized"},
        [FEDIN_DIGEST] = {401, "digest-mismatch", "Unauthorized"},
        [FEDIN_KEY_UNKNOWN] = {403, "key-unknown", "Forbidden"},
        [FEDIN_KEY_REVOKED] = {403, "key-revoked", "Forbidden"},
        [FEDIN_DOMAIN_MISMATCH] = {403, "domain-mismatch", "Forbidden"},
        [FEDIN_RECIPIENT_DOMAIN] = {403, "recipient-domain", "Forbidden"},
        [FEDIN_REPLAY] = {409, "replay", "Conflict"},
        [FEDIN_RATE_LIMITED] = {429, "rate-limited", "Too Many Requests"},
        [FEDIN_DNS_UNAVAILABLE] = {503, "dns-unavailable", "Service Unavailable"},
        [FEDIN_DB_UNAVAILABLE] = {503, "storage-unavailable", "Service Unavailable"},
        [FEDIN_BUSY] = {503, "busy", "Service Unavailable"},
        [FEDIN_CLIENT_LIMITED] = {429, "client-rate-limited", "Too Many Requests"},
};

const struct fedin_errinfo *
fedin_errinfo(enum fedin_err err)
{
	if ((int)err < 0 || err >= FEDIN_ERR_MAX)
		err = FEDIN_SIGNATURE_INVALID;
	return &errinfo[err];
}

bool
fedaccept_content_type_ok(const char *value)
{
	size_t n;

	if (value == NULL)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	return n == strlen(MEDIA_TYPE) && strncasecmp(value, MEDIA_TYPE, n) == 0;
}

enum fedin_err
fedaccept_verify_failure(const struct httpsig_params *p, bool key_called, bool replay_called,
                         int64_t now, int64_t skew, int64_t max_life)
{
	if (p == NULL)
		return FEDIN_SIGNATURE_INVALID;
	if (!key_called)
		return FEDIN_PROFILE; /* the profile check refused it before the key lookup */
	if (replay_called)
		return FEDIN_DIGEST; /* the only check after the replay check */
	/* the signature, or freshness: the same checks as httpsig_verify()'s step 5 */
	if (p->created > now + skew || !p->has_expires || p->expires <= now ||
	    p->expires < p->created || p->expires - p->created > max_life)
		return FEDIN_STALE;
	return FEDIN_SIGNATURE_INVALID;
}

const char *const fedaccept_required[FEDACCEPT_NREQUIRED] = {"@method", "@target-uri",
                                                             "content-type", "content-digest"};

/* What fedin.c can give httpsig for the signature base (reqhead.c keeps no other field). */
static const char *const understood[] = {"@method", "@target-uri",  "@authority",
                                         "@path",   "content-type", "content-digest"};

static bool
covers(const struct httpsig_params *p, const char *name)
{
	for (size_t k = 0; k < p->ncomponents; k++)
		if (strcmp(p->components[k], name) == 0)
			return true;
	return false;
}

enum fedin_err
fedaccept_precheck(const struct httpsig_params *p, int64_t now, int64_t skew, int64_t max_life,
                   const char **detail_r)
{
	char selector[FEDREC_SELECTOR_MAX + 1], domain[FEDREC_DOMAIN_MAX + 1];
	const char *error = NULL;

	if (strcmp(p->alg, "ed25519") != 0) {
		*detail_r = "signature alg is not ed25519";
		return FEDIN_PROFILE;
	}
	for (size_t i = 0; i < FEDACCEPT_NREQUIRED; i++)
		if (!covers(p, fedaccept_required[i])) {
			*detail_r = "signature does not cover a required component";
			return FEDIN_PROFILE;
		}
	for (size_t k = 0; k < p->ncomponents; k++) {
		bool known = false;

		for (size_t i = 0; i < sizeof(understood) / sizeof(understood[0]); i++)
			known = known || strcmp(p->components[k], understood[i]) == 0;
		if (!known) {
			*detail_r = "signature covers a component this receiver does not take";
			return FEDIN_PROFILE;
		}
	}
	if (!p->has_created || !p->has_expires || p->keyid[0] == '\0' || p->nonce[0] == '\0') {
		*detail_r = "signature lacks a required parameter (created, expires, keyid, nonce)";
		return FEDIN_PROFILE;
	}
	if (fedrec_keyid_split(p->keyid, strlen(p->keyid), selector, domain, &error) < 0) {
		*detail_r = "keyid is not <selector>._msgstatus-key.<domain>";
		return FEDIN_PROFILE;
	}
	if (p->created > now + skew) {
		*detail_r = "signature created in the future";
		return FEDIN_STALE;
	}
	if (p->expires <= now) {
		*detail_r = "signature expired";
		return FEDIN_STALE;
	}
	if (p->expires < p->created || p->expires - p->created > max_life) {
		*detail_r = "signature lifetime longer than allowed";
		return FEDIN_STALE;
	}
	return FEDIN_OK;
}

bool
fedaccept_recipient_in(const char *recipient, const char *domain)
{
	const char *at = strrchr(recipient, '@');

	return at != NULL && at != recipient && strcasecmp(at + 1, domain) == 0;
}

enum fedin_err
fedaccept_claims(const struct mimistatus_report *report, const char *key_domain,
                 const char **detail_r)
{
	if (report->domain == NULL || strcasecmp(report->domain, key_domain) != 0) {
		*detail_r = "the report's domain is not the domain of the signing key";
		return FEDIN_DOMAIN_MISMATCH;
	}
	for (size_t i = 0; i < report->count; i++) {
		if (report->events == NULL ||
		    !fedaccept_recipient_in(report->events[i].recipient, key_domain)) {
			*detail_r = "an event's recipient is not in the reporting domain";
			return FEDIN_RECIPIENT_DOMAIN;
		}
	}
	return FEDIN_OK;
}

/* Events this far in the future are refused, as the ingest refuses them (a day). */
#define FUTURE_MAX_MS (24LL * 3600 * 1000)

enum fedaccept_verdict
fedaccept_event(unsigned code, int64_t time_ms, int64_t now_ms, int64_t retention_ms,
                const char **type_r)
{
	switch (code) {
	case MIMI_DELIVERED:
		*type_r = "delivered";
		break;
	case MIMI_READ:
		*type_r = "read";
		break;
	case MIMI_UNREAD:
		*type_r = "unread";
		break;
	case MIMI_DELETED:
		*type_r = "deleted";
		break;
	default:
		*type_r = NULL;
		return FEDACCEPT_IGNORE;
	}
	if (time_ms < now_ms - retention_ms || time_ms > now_ms + FUTURE_MAX_MS)
		return FEDACCEPT_REFUSE;
	return FEDACCEPT_STORE;
}

enum fedaccept_verdict
fedaccept_unknown(int64_t time_ms, int64_t now_ms, int64_t started_ms, int64_t window_ms)
{
	/* a time ahead of this clock counts as now (it would else be waited for until it has
	   passed), and one more than the window ahead is refused: such an event keeps coming
	   back "later" for at most twice the window */
	int64_t at = time_ms < now_ms ? time_ms : now_ms;
	int64_t since = at > started_ms ? at : started_ms;

	if (window_ms <= 0 || time_ms > now_ms + window_ms)
		return FEDACCEPT_REFUSE;
	return now_ms - since < window_ms ? FEDACCEPT_LATER : FEDACCEPT_REFUSE;
}

void
fedaccept_stored_id(const char *domain, const char *event_id, char *buf)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, domain, strlen(domain) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, event_id, strlen(event_id)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < 20)
		abort(); /* SHA-256 of a few bytes cannot fail but for a broken OpenSSL */
	EVP_MD_CTX_free(ctx);
	memcpy(buf, "fed-", 4);
	for (int i = 0; i < 20; i++)
		snprintf(buf + 4 + 2 * i, 3, "%02x", md[i]);
}

/* --- rate limit ------------------------------------------------------------------------ */

struct bucket {
	double tokens;
	int64_t at_ms;
	struct bucket *newer, *older; /* in the LRU list */
	struct htable_entry *entry;   /* in buckets; NULL for the overflow bucket */
};

struct fedrate {
	struct htable *buckets;         /* charged domain -> struct bucket */
	struct bucket *newest, *oldest; /* the buckets by their last use */
	struct bucket overflow;         /* shared by new keys while no bucket is idle */
	struct bucket all;              /* all domains together */
	double rate, burst;
	bool clients; /* keys as they are, no bucket over all */
};

struct fedrate *
fedrate_new(double rate, double burst)
{
	struct fedrate *r = mycalloc(1, sizeof(*r));

	r->buckets = htable_create(64);
	r->rate = rate;
	r->burst = burst < 1 ? 1 : burst;
	r->all.tokens = r->burst * FEDRATE_ALL_FACTOR;
	r->overflow.tokens = r->burst;
	return r;
}

struct fedrate *
fedrate_new_clients(double rate, double burst)
{
	struct fedrate *r = fedrate_new(rate, burst);

	r->clients = true;
	return r;
}

void
fedrate_free(struct fedrate **rp)
{
	if (*rp == NULL)
		return;
	htable_free(&(*rp)->buckets, free);
	free(*rp);
	*rp = NULL;
}

const char *
fedrate_charged(const char *domain)
{
	const char *p = domain + strlen(domain);
	int dots = 0;

	while (p > domain) {
		p--;
		if (*p == '.' && ++dots == 2)
			return p + 1;
	}
	return domain;
}

/* Refill b to now_ms at rate per second, up to burst. */
static void
refill(struct bucket *b, int64_t now_ms, double rate, double burst)
{
	if (now_ms > b->at_ms)
		b->tokens += (double)(now_ms - b->at_ms) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at_ms = now_ms;
}

static void
lru_unlink(struct fedrate *r, struct bucket *b)
{
	if (b->newer != NULL)
		b->newer->older = b->older;
	else
		r->newest = b->older;
	if (b->older != NULL)
		b->older->newer = b->newer;
	else
		r->oldest = b->newer;
	b->newer = b->older = NULL;
}

static void
lru_push(struct fedrate *r, struct bucket *b)
{
	b->older = r->newest;
	b->newer = NULL;
	if (r->newest != NULL)
		r->newest->newer = b;
	r->newest = b;
	if (r->oldest == NULL)
		r->oldest = b;
}

/* Make room for one bucket: the least recently used goes if it is full again (a new
   bucket starts full, so nothing is lost). 0, or -1 when it is not: no bucket is idle. */
static int
evict(struct fedrate *r, int64_t now_ms)
{
	struct bucket *b = r->oldest;

	if (b == NULL)
		return -1;
	if (b->tokens + (double)(now_ms - b->at_ms) * r->rate / 1000.0 < r->burst)
		return -1;
	lru_unlink(r, b);
	htable_remove(r->buckets, b->entry, free);
	return 0;
}

/* The bucket of key (len bytes), made when new: a bucket of its own while there is room
   or an idle one to forget, else the overflow bucket all such keys share. */
static struct bucket *
bucket_of(struct fedrate *r, const char *key, size_t len, int64_t now_ms)
{
	struct htable_entry *e = htable_locate(r->buckets, key, len);
	struct bucket *b;

	if (e != NULL) {
		b = e->value;
		lru_unlink(r, b);
		lru_push(r, b);
		return b;
	}
	if (htable_used(r->buckets) >= FEDRATE_DOMAINS_MAX && evict(r, now_ms) < 0) {
		if (r->overflow.at_ms == 0)
			r->overflow.at_ms = now_ms;
		return &r->overflow;
	}
	b = mycalloc(1, sizeof(*b));
	b->tokens = r->burst;
	b->at_ms = now_ms;
	b->entry = htable_enter(r->buckets, key, len, b);
	lru_push(r, b);
	return b;
}

bool
fedrate_take(struct fedrate *r, const char *domain, int64_t now_ms, int *retry_s)
{
	const char *charged = r->clients ? domain : fedrate_charged(domain);
	struct bucket *b = bucket_of(r, charged, strlen(charged), now_ms);
	double all_rate = r->rate * FEDRATE_ALL_FACTOR, all_burst = r->burst * FEDRATE_ALL_FACTOR;

	refill(b, now_ms, r->rate, r->burst);
	refill(&r->all, now_ms, all_rate, all_burst);
	if (b->tokens < 1.0) {
		*retry_s = (int)((1.0 - b->tokens) / r->rate) + 1;
		return false;
	}
	if (r->clients) {
		b->tokens -= 1.0;
		return true;
	}
	if (r->all.tokens < 1.0) {
		*retry_s = (int)((1.0 - r->all.tokens) / all_rate) + 1;
		return false;
	}
	b->tokens -= 1.0;
	r->all.tokens -= 1.0;
	return true;
}

int
fedaccept_client_key(const struct sockaddr *addr, char *buf)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char text[INET6_ADDRSTRLEN];

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

		return inet_ntop(AF_INET, &in->sin_addr, buf, FEDACCEPT_CLIENT_KEY_MAX) ? 0 : -1;
	}
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
		struct in6_addr net = in6->sin6_addr;

		if (memcmp(net.s6_addr, mapped, sizeof(mapped)) == 0)
			return inet_ntop(AF_INET, net.s6_addr + 12, buf, FEDACCEPT_CLIENT_KEY_MAX)
			               ? 0
			               : -1;
		memset(net.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &net, text, sizeof(text)) == NULL)
			return -1;
		snprintf(buf, FEDACCEPT_CLIENT_KEY_MAX, "%s/64", text);
		return 0;
	}
	return -1;
}
