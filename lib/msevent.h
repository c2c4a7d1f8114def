/*
 * msevent - the event model and its wire codec (protocol version 1, docs/protocol.md).
 *
 * An event says that one thing happened to one recipient of one message: it was queued,
 * deferred, relayed, delivered, bounced, expired, read, marked unread, copied into another
 * of the recipient's mailboxes, or one copy of it was expunged; or that mail from another
 * site, authenticated for its sender's domain, arrived with that site's tracking id
 * (inbound), or what a report from another mail system said about one recipient (report).
 * Events come from the milter (queued, inbound, report), Postfix's log (deferred, relayed,
 *delivered, bounced, expired), the Dovecot plugin (delivered, read, unread, copied, expunged) and
 *the API (read). "deleted" is a status (status.h: no copy left), not an event; on the wire it is
 *still accepted as the name older plugins gave an expunge, and parsed as MSEV_EXPUNGED. On the wire
 *and in spool files an event is one line of JSON, at most MSEVENT_RECORD_MAX bytes with its
 *newline.
 *
 * DESIGN
 *	A parsed event borrows its strings from the json-c tree it keeps in ev->root; they
 *	live until msevent_clear(). An event built by a producer points at the producer's
 *	own strings and has no root. Either way msevent_format() writes the wire form.
 *
 * SECURITY
 *	msevent_parse() takes untrusted bytes: it bounds the record and nesting depth, demands
 *	well-formed UTF-8 without NUL characters, and checks every field's type, length and
 *	character set before anything downstream sees it.
 *
 * DIAGNOSTICS
 *	msevent_parse() returns -1 with a one-line reason in *error_r, suitable for sending
 *	back to the producer.
 */
#ifndef MSEVENT_H
#define MSEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct json_tokener;
struct mbuf;

#define MSEVENT_VERSION    1
#define MSEVENT_RECORD_MAX 16384 /* default and upper bound for one record, newline included */
#define MSEVENT_ID_MAX     64
#define MSEVENT_ADDR_MAX   512
#define MSEVENT_MSGID_MAX  998

/* The numeric codes are stored in PostgreSQL and in the status keys (status.h): keep them. */
enum msevent_type {
	MSEV_NONE = 0,
	MSEV_QUEUED = 1,
	MSEV_DEFERRED = 2,
	MSEV_RELAYED = 3,
	MSEV_DELIVERED = 4,
	MSEV_BOUNCED = 5,
	MSEV_EXPIRED = 6,
	MSEV_READ = 7,
	MSEV_UNREAD = 8,
	MSEV_DELETED = 9, /* a status only; events stored before schema 005 were expunges */
	/* presence (users who opted in): an IMAP or webmail session began or ended */
	MSEV_ONLINE = 10,
	MSEV_OFFLINE = 11,
	/* the recipient's copies of a message (status.h): one more in a mailbox (IMAP COPY or
	   MOVE), one expunged */
	MSEV_COPIED = 12,
	MSEV_EXPUNGED = 13,
	/* mail from another site, DKIM-authenticated for its sender's domain, that carried that
	   site's tracking id: the milter remembers it (docs/federation.md, "Correlation") */
	MSEV_INBOUND = 14,
	/* one recipient entry of a DSN (RFC 3464) or MDN (RFC 8098) that came back, read by the
	   milter (milter/reportin.h); statusd decides whether it counts (docs/security.md,
	   "Reports from other mail systems") */
	MSEV_REPORT = 15,
	/* a local user read a message that asks for a disposition notification (RFC 8098): the
	   Dovecot plugin asks statusd whether to send the MDN (docs/mdn.md); not a status, never
	   in the event log */
	MSEV_MDN = 16,
};
#define MSEV_TYPE_MAX 16
/* A report event's details.raw (the report itself) may fill the record; other details
   strings are at most 2048 bytes. */
#define MSEVENT_RAW_KEY "raw"
#define MSEV_STATUS_MAX 9 /* types 1-9 are statuses a recipient can have */
/* Whether a type is a status a recipient can have. */
#define MSEV_IS_STATUS(t) ((int)(t) >= MSEV_QUEUED && (int)(t) <= MSEV_STATUS_MAX)
/* Whether a type is about a message's recipient rather than a user's presence. */
#define MSEV_IS_RECIPIENT(t)                                                                       \
	(MSEV_IS_STATUS(t) || (int)(t) == MSEV_COPIED || (int)(t) == MSEV_EXPUNGED)

struct msevent {
	const char *id; /* unique per event; a replay carries the same id */
	enum msevent_type type;
	int64_t time_ms;         /* when it happened, ms since the epoch (UTC) */
	const char *source;      /* "milter", "dovecot", "imap", "postfix", "api", ... */
	const char *tracking_id; /* Msgstatus-Id */
	const char *message_id;  /* RFC 5322 Message-ID, with its angle brackets */
	const char *queue_id;    /* Postfix queue id */
	const char *recipient;   /* envelope recipient (or mailbox user); NULL only in a
	                            message-level expired event with a queue_id */
	const char *orig_recipient;
	const char *sender;          /* envelope sender; "" is the null sender */
	const char *sasl_user;       /* SASL login of the submitter */
	int64_t size;                /* message size in bytes, -1 if unknown */
	struct json_object *details; /* flat object (mta, dsn, smtp_reply, latency_ms, ...) or NULL;
	                              * the event holds a reference, dropped by msevent_clear() */
	struct json_object *root;    /* the parsed record, owned; NULL for built events */
};

/* Start an event for a producer to fill in: everything absent, size -1. */
void msevent_init(struct msevent *ev);
/* Drop what the event holds (parsed record, details); the event is empty afterwards. */
void msevent_clear(struct msevent *ev);

/*
 * Parse one record (len bytes, without the newline) into ev. tok is a tokener from
 * msevent_tokener_new(), reused across calls by one thread. On success the caller owns ev
 * and must msevent_clear() it; on failure ev is left empty.
 */
int msevent_parse(struct msevent *ev, struct json_tokener *tok, const char *line, size_t len,
                  const char **error_r);
struct json_tokener *msevent_tokener_new(void);

/* Check a built event the way msevent_parse() checks a received one. */
int msevent_validate(const struct msevent *ev, const char **error_r);

/* Append the wire form of ev, newline included, to out. */
void msevent_format(const struct msevent *ev, struct mbuf *out);

/* "queued" etc.; NULL for a bad code. */
const char *msevent_type_name(enum msevent_type type);
/* The code for a name, MSEV_NONE if unknown ("deleted" is MSEV_DELETED here, the status;
   msevent_parse() reads an event type "deleted" as MSEV_EXPUNGED). */
enum msevent_type msevent_type_parse(const char *name);

/* Details helpers for producers: set key to a string or an integer (creating details). */
void msevent_detail_str(struct msevent *ev, const char *key, const char *value);
void msevent_detail_int(struct msevent *ev, const char *key, int64_t value);
void msevent_detail_bool(struct msevent *ev, const char *key, bool value);
/* A details string, or NULL. */
const char *msevent_detail_get(const struct msevent *ev, const char *key);

#endif
