/*
 * tracker - what msgstatus-milter decides about one message, without libmilter.
 *
 * The milter's callbacks (callbacks.c) feed a tracker_msg with what Postfix tells them;
 * tracker_eom() then says what to do: which forged Msgstatus-Id headers to delete, whether
 * to tag the message, and the "queued" events to record, one per recipient. Keeping this
 * free of libmilter lets the unit tests drive every case directly.
 *
 * The rules (docs/deployment.md, "Which mail is tracked"):
 *  - A message is tracked when its envelope sender's domain is listed in the macro
 *    {msgstatus_domains} (set in Postfix's main.cf with milter_macro_defaults; "example.org"
 *    is that domain only, ".example.org" its subdomains) and it was submitted by one of
 *    our users: the client authenticated with SASL ({auth_authen}), or the mail was
 *    submitted locally with sendmail, or the Postfix service sets {msgstatus_trust} to
 *    "any" (a listener only trusted clients reach). Bounces (null sender) are never tracked.
 *  - The sender that may see the status is the SASL login when there is one, else the
 *    envelope sender (statusd derives it from the event's sasl_user and sender).
 *  - Every Msgstatus-Id header already in a message is deleted, tracked or not: only the
 *    milter's own tag may attach events to a message.
 *  - Mail from elsewhere (not tracked) that carries exactly one Msgstatus-Id, a usable id,
 *    is DKIM-checked (dkimverify.h; tracker_wants_dkim). Only if a valid signature aligns
 *    with the From or envelope sender domain is it remembered (tracker_inbound): it gets a
 *    tag of ours, so that the Dovecot plugin reports its delivered and read as for any
 *    tagged message, and one "inbound" event per recipient ties our tag to the sender
 *    site's id and the authenticated domain (docs/federation.md, "Correlation"). Otherwise
 *    nothing is remembered and no tag is added.
 *
 * SECURITY
 *	Everything here comes from the SMTP client: addresses and header values are bounded,
 *	must be UTF-8 without control characters to be used (a bad sender means not tracked,
 *	a bad recipient is skipped, a bad Message-ID is left out), and at most max_recipients
 *	recipients are recorded per message.
 */
#ifndef TRACKER_H
#define TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "randid.h"

#define TRACKER_HEADER "Msgstatus-Id"

struct mbuf;

struct tracker_msg {
	char *sender;        /* envelope sender without <>, "" for the null sender */
	char *sasl_user;     /* {auth_authen}, NULL if none */
	bool enabled;        /* sender domain listed and submission trusted */
	const char *why_not; /* when !enabled: a reason for the log */
	char **rcpts;
	size_t nrcpts, rcpt_cap;
	size_t rcpts_dropped;  /* over max_recipients or unusable */
	char *message_id;      /* first Message-ID header, trimmed; NULL if none or unusable */
	unsigned foreign_tags; /* Msgstatus-Id headers seen */
	char *foreign_id;      /* the first one's value, trimmed, if a usable id; else NULL */
	uint64_t size;         /* header and body bytes */
};

struct tracker_result {
	bool tag;     /* add our header */
	bool inbound; /* the tag is for remembered mail from elsewhere (tracker_inbound) */
	char tracking_id[RANDID_LEN + 1];
	unsigned delete_tags; /* delete Msgstatus-Id occurrences 1..delete_tags */
	unsigned events;      /* events appended */
};

struct tracker_msg *tracker_msg_new(void);
void tracker_msg_free(struct tracker_msg **m);

/*
 * MAIL FROM: envfrom is the address argument as libmilter gives it ("<a@b>"); domains and
 * trust are the macro values (NULL if Postfix did not send them); local says that the
 * mail was submitted with the sendmail command.
 */
void tracker_mail(struct tracker_msg *m, const char *envfrom, const char *sasl_user,
                  const char *domains, const char *trust, bool local);
void tracker_rcpt(struct tracker_msg *m, const char *rcpt, size_t max_recipients);
void tracker_header(struct tracker_msg *m, const char *name, const char *value);
void tracker_body(struct tracker_msg *m, size_t len);
/*
 * End of message: decide, and append the events (wire records) to events. queue_id is
 * Postfix's {i} (NULL if unknown).
 */
void tracker_eom(struct tracker_msg *m, const char *queue_id, int64_t now_ms,
                 struct tracker_result *res, struct mbuf *events);

/* Should the message be DKIM-checked, to be remembered? Known at the end of headers: not
   tracked, exactly one foreign Msgstatus-Id with a usable value, a recipient. */
bool tracker_wants_dkim(const struct tracker_msg *m);
/*
 * End of a DKIM-checked message (instead of tracker_eom): remember it if dkim has a valid
 * signature aligned with the envelope sender's domain or else the From domain; res and
 * events as for tracker_eom (res->inbound set). Nothing is appended otherwise.
 */
struct dkimverify_result;
void tracker_inbound(struct tracker_msg *m, const struct dkimverify_result *dkim,
                     const char *queue_id, int64_t now_ms, struct tracker_result *res,
                     struct mbuf *events);
/* The domain of the envelope sender ("" for the null sender or none). */
const char *tracker_sender_domain(const struct tracker_msg *m);

/* Is the domain of address listed in list (comma/space separated)? */
bool tracker_domain_listed(const char *list, const char *address);
/* Was this connection emulated by Postfix for a sendmail submission (127.0.0.1 or ::1,
   port 0)? host is the connect host name, addr the numeric address, port the port. */
bool tracker_is_local_submission(const char *host, const char *addr, unsigned port);

#endif
