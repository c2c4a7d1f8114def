/*
 * pfevent - Postfix log lines to msgstatus events. See pfevent.h.
 *
 * SECURITY
 *	The line is untrusted: every field copied into an event is bounded and checked by
 *	msevent_validate(); a line that would make an invalid event makes none (counted).
 *	Details texts (the reply, relay, ...) are cleaned instead (dup_text), so that a
 *	broken byte in a remote server's reply does not cost the delivery result.
 */
#include "pfevent.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base32.h"
#include "htable.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "pflog.h"
#include "smtpreply.h"

#define QID_MAX  32
#define TEXT_MAX 2000 /* bytes of a reply kept in details */

/* A queue id's Message-ID (one allocation); the table's entry has the queue id as its key. */
struct cache_item {
	struct cache_item *older, *newer; /* in the order they were logged */
	struct htable_entry *entry;
	char message_id[];
};

struct pfevent {
	char **delivered;
	size_t ndelivered;
	char **names; /* syslog_name values whose lines are Postfix's */
	size_t nnames;
	struct htable *cache;               /* queue id -> struct cache_item */
	struct cache_item *oldest, *newest; /* the oldest goes first when the cache is full */
	size_t cache_size;
	struct pfevent_stats stats;
};

/* Split a list of words separated by commas or white space. */
static void
split_words(const char *p, char ***words, size_t *n)
{
	while (*p != '\0') {
		size_t len;
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if ((len = strcspn(p, " ,\t")) == 0)
			break;
		*words = myreallocarray(*words, *n + 1, sizeof(char *));
		(*words)[(*n)++] = mystrndup(p, len);
		p += len;
	}
}

static void
free_words(char **words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

struct pfevent *
pfevent_new(const char *services, const char *syslog_names, size_t cache_size)
{
	struct pfevent *pe = mycalloc(1, sizeof(*pe));

	pe->cache_size = cache_size ? cache_size : 1;
	pe->cache = htable_create(pe->cache_size);
	pfevent_configure(pe, services, syslog_names);
	return pe;
}

void
pfevent_configure(struct pfevent *pe, const char *services, const char *syslog_names)
{
	free_words(pe->delivered, pe->ndelivered);
	free_words(pe->names, pe->nnames);
	pe->delivered = pe->names = NULL;
	pe->ndelivered = pe->nnames = 0;
	split_words(services, &pe->delivered, &pe->ndelivered);
	split_words(syslog_names, &pe->names, &pe->nnames);
}

static void
cache_item_free(void *value)
{
	free(value);
}

void
pfevent_free(struct pfevent **pep)
{
	struct pfevent *pe = *pep;

	if (pe == NULL)
		return;
	*pep = NULL;
	free_words(pe->delivered, pe->ndelivered);
	free_words(pe->names, pe->nnames);
	htable_free(&pe->cache, cache_item_free);
	free(pe);
}

static bool
str_is(const struct pflog_str *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

static bool
delivered_service(const struct pfevent *pe, const struct pflog_str *service)
{
	for (size_t i = 0; i < pe->ndelivered; i++)
		if (str_is(service, pe->delivered[i]))
			return true;
	return false;
}

/*
 * Is the line's program one of Postfix's? The program is syslog_name/service, and the
 * syslog_name may itself have slashes ("postfix/submission"): the first component must be
 * one of the configured names. An empty list accepts every program.
 */
static bool
postfix_program(const struct pfevent *pe, const struct pflog_str *program)
{
	size_t first = 0;

	if (pe->nnames == 0)
		return true;
	while (first < program->len && program->ptr[first] != '/')
		first++;
	for (size_t i = 0; i < pe->nnames; i++)
		if (strlen(pe->names[i]) == first && memcmp(program->ptr, pe->names[i], first) == 0)
			return true;
	return false;
}

/* local(8)'s "status=sent (forwarded as QID)": handed on under a new queue id. */
static bool
forwarded(const struct pflog_rec *rec)
{
	static const char prefix[] = "forwarded as ";
	return rec->status_text.len > sizeof(prefix) - 1 &&
	       memcmp(rec->status_text.ptr, prefix, sizeof(prefix) - 1) == 0;
}

static void
order_unlink(struct pfevent *pe, struct cache_item *item)
{
	if (item->older)
		item->older->newer = item->newer;
	else
		pe->oldest = item->newer;
	if (item->newer)
		item->newer->older = item->older;
	else
		pe->newest = item->older;
	item->older = item->newer = NULL;
}

static void
order_append(struct pfevent *pe, struct cache_item *item)
{
	item->older = pe->newest;
	item->newer = NULL;
	if (pe->newest)
		pe->newest->newer = item;
	else
		pe->oldest = item;
	pe->newest = item;
}

/*
 * Remember the Message-ID logged for a queue id. A queue id logged again takes the newer
 * Message-ID and counts as the newest; when the cache is full, the oldest goes.
 */
static void
cache_put(struct pfevent *pe, const struct pflog_str *qid, const struct pflog_str *msgid)
{
	struct htable_entry *e;
	struct cache_item *item, *old;

	if (qid->len == 0 || qid->len > QID_MAX || msgid->len == 0 ||
	    msgid->len > MSEVENT_MSGID_MAX)
		return;
	item = mymalloc(sizeof(*item) + msgid->len + 1);
	memcpy(item->message_id, msgid->ptr, msgid->len);
	item->message_id[msgid->len] = '\0';
	if ((e = htable_locate(pe->cache, qid->ptr, qid->len)) != NULL) {
		old = e->value;
		order_unlink(pe, old);
		free(old);
	} else {
		if (htable_used(pe->cache) >= pe->cache_size) {
			old = pe->oldest;
			order_unlink(pe, old);
			htable_remove(pe->cache, old->entry, cache_item_free);
		}
		e = htable_enter(pe->cache, qid->ptr, qid->len, NULL);
	}
	e->value = item;
	item->entry = e;
	order_append(pe, item);
}

/* The newest Message-ID logged for a queue id, or NULL. */
static const char *
cache_get(const struct pfevent *pe, const char *qid)
{
	const struct cache_item *item = htable_find(pe->cache, qid, strlen(qid));

	return item != NULL ? item->message_id : NULL;
}

/* "pf" + 26 base32 characters of SHA-256(line): stable across re-reads of the line. */
static void
line_id(const char *line, size_t len, char *out)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)line, len, digest);
	out[0] = 'p';
	out[1] = 'f';
	base32_encode(out + 2, 26, digest, sizeof(digest));
}

static char *
dup_str(const struct pflog_str *s, size_t max)
{
	if (s->ptr == NULL || s->len == 0)
		return NULL;
	return mystrndup(s->ptr, s->len < max ? s->len : max);
}

/*
 * A details text: at most max bytes, and valid UTF-8 without control characters whatever
 * the line held (msg_clean: '?' for a broken byte, "..." where it is cut), so that a remote
 * server's odd reply still makes an event statusd accepts.
 */
static char *
dup_text(const struct pflog_str *s, size_t max)
{
	size_t size = s->len < max ? s->len + 1 : max + 1; /* msg_clean keeps the length */

	if (s->ptr == NULL || s->len == 0)
		return NULL;
	if (size < 5)
		size = 5; /* msg_clean's least */
	return msg_clean(mymalloc(size), size, s->ptr, s->len);
}

int
pfevent_line(struct pfevent *pe, const char *line, size_t len, int64_t now_ms, struct mbuf *out)
{
	struct pflog_rec rec;
	struct msevent ev;
	char id[32], form[TEXT_MAX + 1], *qid = NULL, *to = NULL, *orig = NULL, *relay = NULL,
	                                 *dsn = NULL, *reply = NULL, *delay = NULL, *delays = NULL,
	                                 *service = NULL;
	const char *why;
	int made = 0;

	pe->stats.lines++;
	switch (pflog_parse(line, len, &rec)) {
	case PFLOG_MSGID:
		if (postfix_program(pe, &rec.program))
			cache_put(pe, &rec.queue_id, &rec.message_id);
		return 0;
	case PFLOG_DELIVERY:
	case PFLOG_EXPIRED:
		break;
	default:
		return 0;
	}
	if (!postfix_program(pe, &rec.program)) {
		pe->stats.foreign++;
		return 0;
	}
	msevent_init(&ev);
	if ((ev.time_ms = pflog_time(&rec.timestamp, now_ms)) < 0) {
		pe->stats.unparsable_times++;
		return 0;
	}
	if (rec.kind == PFLOG_EXPIRED) {
		/* qmgr's message-level line: it counts for every recipient still waiting */
		ev.type = MSEV_EXPIRED;
	} else
		switch (rec.status) {
		case PFLOG_SENT:
			if (str_is(&rec.service, "discard"))
				ev.type = MSEV_BOUNCED;
			else if (forwarded(&rec))
				ev.type = MSEV_RELAYED;
			else
				ev.type = delivered_service(pe, &rec.service) ? MSEV_DELIVERED
				                                              : MSEV_RELAYED;
			break;
		case PFLOG_DEFERRED:
			ev.type = MSEV_DEFERRED;
			break;
		case PFLOG_BOUNCED:
			ev.type = MSEV_BOUNCED;
			break;
		case PFLOG_EXPIRED_STATUS:
			ev.type = MSEV_EXPIRED;
			break;
		default:
			return 0;
		}
	line_id(line, len, id);
	qid = dup_str(&rec.queue_id, QID_MAX);
	to = dup_str(&rec.to, MSEVENT_ADDR_MAX + 1);
	orig = dup_str(&rec.orig_to, MSEVENT_ADDR_MAX + 1);
	relay = dup_text(&rec.relay, 512);
	dsn = dup_text(&rec.dsn, 16);
	reply = dup_text(&rec.status_text, TEXT_MAX);
	delay = dup_text(&rec.delay, 32);
	delays = dup_text(&rec.delays, 64);
	service = dup_text(&rec.service, 32);
	ev.id = id;
	ev.source = "postfix";
	ev.queue_id = qid;
	ev.message_id = qid ? cache_get(pe, qid) : NULL;
	ev.recipient = to;
	ev.orig_recipient = orig;
	if (relay)
		msevent_detail_str(&ev, "mta", relay);
	if (dsn)
		msevent_detail_str(&ev, "dsn", dsn);
	if (reply) {
		/* RFC 8621's form when the text holds a reply; Postfix's own text always */
		if (smtpreply_form(reply, dsn, form, sizeof(form)) == 0)
			msevent_detail_str(&ev, "smtp_reply", form);
		msevent_detail_str(&ev, "postfix_reply", reply);
	}
	if (delay)
		msevent_detail_str(&ev, "delay", delay);
	if (delays)
		msevent_detail_str(&ev, "delays", delays);
	if (service)
		msevent_detail_str(&ev, "service", service);
	if (ev.orig_recipient != NULL && msevent_validate(&ev, &why) < 0)
		ev.orig_recipient = NULL; /* keep the event without a bad orig_to */
	if (msevent_validate(&ev, &why) == 0) {
		msevent_format(&ev, out);
		pe->stats.events++;
		made = 1;
	} else if (msg_verbose())
		msg_debug("log line makes no valid event: %s", why);
	msevent_clear(&ev);
	free(qid);
	free(to);
	free(orig);
	free(relay);
	free(dsn);
	free(reply);
	free(delay);
	free(delays);
	free(service);
	return made;
}

void
pfevent_stats(const struct pfevent *pe, struct pfevent_stats *out)
{
	*out = pe->stats;
}
