/*
 * pflog - parse one line of Postfix's log (maillog_file via postlogd, or a syslog line).
 *
 * Recognizes the lines msgstatus needs and skips everything else quickly:
 *
 *   DELIVERY  a delivery agent's per-recipient result (smtp, lmtp, local, virtual, pipe,
 *             error, retry, discard; also qmgr's per-recipient "status=expired"):
 *             QID: to=<...>, [orig_to=<...>,] relay=..., [conn_use=N,] delay=..., delays=a/b/c/d,
 *             dsn=X.Y.Z, status=sent|deferred|bounced|expired (text)
 *   QUEUED    qmgr:    QID: from=<...>, size=N, nrcpt=N (queue active)
 *   EXPIRED   qmgr:    QID: from=<...>, status=expired, returned to sender
 *   REMOVED   qmgr or postsuper: QID: removed
 *   MSGID     cleanup: QID: message-id=<...>
 *   BOUNCE    bounce:  QID: sender non-delivery notification: NEWQID
 *             (also "sender delivery status notification" and "postmaster non-delivery
 *             notification")
 *
 * Line shape: "Mmm dd HH:MM:SS host syslog_name/service[pid]: text", where syslog_name may
 * itself contain slashes ("postfix/submission/smtpd"); an RFC 3339 timestamp (rsyslog's
 * high-precision format) or a leading "<PRI>" (a raw syslog datagram) is accepted too.
 * The service is the last path component of the program name, which must contain a '/'.
 *
 * DESIGN
 *	Hand-written, one pass, no regular expressions and no allocation: the result points
 *	into the caller's line (struct pflog_str), so the caller must copy what it keeps.
 *	Fast enough for millions of lines a second (bench/pflog).
 *
 * SECURITY
 *	The line is untrusted (anyone who can log through syslog can write one): every field
 *	is bounded by the line, lengths are checked, and a line cut short or malformed is
 *	PFLOG_OTHER, never an error that stops the caller.
 */
#ifndef PFLOG_H
#define PFLOG_H

#include <stddef.h>
#include <stdint.h>

enum pflog_kind {
	PFLOG_OTHER = 0, /* not a line msgstatus cares about (or malformed) */
	PFLOG_DELIVERY,
	PFLOG_QUEUED,
	PFLOG_EXPIRED,
	PFLOG_REMOVED,
	PFLOG_MSGID,
	PFLOG_BOUNCE,
};

enum pflog_status {
	PFLOG_STATUS_NONE = 0,
	PFLOG_SENT,
	PFLOG_DEFERRED,
	PFLOG_BOUNCED,
	PFLOG_EXPIRED_STATUS,
};

/* A piece of the line: ptr points into it, len bytes, not NUL-terminated. len 0: absent. */
struct pflog_str {
	const char *ptr;
	size_t len;
};

struct pflog_rec {
	enum pflog_kind kind;
	/* when: the timestamp as written (the caller interprets it, see pflog_time) */
	struct pflog_str timestamp;
	struct pflog_str host;
	struct pflog_str program; /* e.g. "postfix/submission/smtpd" */
	struct pflog_str service; /* last component: "smtp", "lmtp", "qmgr", ... */
	long pid;
	struct pflog_str queue_id;
	/* DELIVERY */
	struct pflog_str to;      /* without the angle brackets */
	struct pflog_str orig_to; /* without the angle brackets */
	struct pflog_str relay;   /* "mx.example.com[192.0.2.1]:25", "local", "none", ... */
	struct pflog_str delay;   /* "0.52" seconds, as written */
	struct pflog_str delays;  /* "0.1/0.01/0.2/0.21" */
	struct pflog_str dsn;     /* "2.0.0" */
	enum pflog_status status;
	struct pflog_str status_text; /* the text in parentheses after the status, unwrapped */
	/* QUEUED / EXPIRED */
	struct pflog_str from; /* without the angle brackets; len 0 and from.ptr != NULL: <> */
	int64_t size;          /* -1 if absent */
	long nrcpt;            /* -1 if absent */
	/* MSGID */
	struct pflog_str message_id; /* with its angle brackets, as logged */
	/* BOUNCE */
	struct pflog_str bounce_queue_id; /* the queue id of the generated notification */
};

/* Parse len bytes of one line (no newline). Fills rec and returns rec->kind. */
enum pflog_kind pflog_parse(const char *line, size_t len, struct pflog_rec *rec);

/*
 * The time of a parsed timestamp in ms since the epoch. A syslog timestamp has no year and
 * no zone: it is read in the local time zone, in the year that puts it at most a day after
 * now_ms. Returns -1 if the timestamp is malformed.
 */
int64_t pflog_time(const struct pflog_str *timestamp, int64_t now_ms);

#endif
