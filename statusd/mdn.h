/*
 * mdn - the decisions and the text of the message disposition notifications (RFC 8098) that
 * statusd sends for a local user who read a message asking for one (docs/mdn.md).
 *
 * The Dovecot plugin sends an `mdn` event when a message with Disposition-Notification-To
 * gains \Seen; ingest makes an mdn_request of it, mdn_decide() says whether a notification
 * goes out and to whom, store_mdn.c records that decision once per (user, Message-ID), and
 * mdnsend.c writes the notification with mdn_compose() and hands it to sendmail.
 *
 * DESIGN
 *	Pure functions: no I/O, no clock, no globals, so that unit tests drive every case.
 *	mdn_decide() checks, in this order, and the first that fails decides:
 *	  1. the user's preference (never, always; unset: the plugin's mdn_default);
 *	  2. the message is no report itself (multipart/report: an MDN or a DSN);
 *	  3. it has a Message-ID (the key that makes the notification happen once) of at
 *	     most MDN_MSGID_MAX printable characters in <>;
 *	  4. the user's name is an address (Final-Recipient);
 *	  5. Disposition-Notification-To holds exactly one distinct address;
 *	  6. Return-Path is there and not null (<>);
 *	  7. Disposition-Notification-To is the Return-Path's address (local part compared
 *	     as is, domain without regard to case, RFC 8098 section 2.1);
 *	  8. Disposition-Notification-Options has no parameter of importance "required"
 *	     (section 2.2: statusd understands none).
 *
 * SECURITY
 *	Every header value comes from the mail's sender, through the plugin: the addresses are
 *	parsed, not copied, and only an addr-spec of printable ASCII without spaces reaches
 *	sendmail's arguments or a header; the subject is cut, stripped of control characters and
 *	written as RFC 2047 encoded words when it is not ASCII.
 *
 * DIAGNOSTICS
 *	mdn_decide() returns the reason of its decision as a constant string, stored with it.
 */
#ifndef MDN_H
#define MDN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbuf;

#define MDN_ADDR_MAX    254 /* an addr-spec (RFC 5321's path limit less the brackets) */
#define MDN_SUBJECT_MAX 200 /* bytes of the original subject that are repeated */
#define MDN_MSGID_MAX   250 /* a Message-ID repeated in In-Reply-To, References */

enum mdn_pref {
	MDN_PREF_UNSET = 0, /* the user chose nothing: the administrator's default */
	MDN_PREF_NEVER,
	MDN_PREF_ALWAYS,
};

enum mdn_decision {
	MDN_SEND,     /* a notification goes out */
	MDN_DECLINED, /* the user's preference (or the default) is never */
	MDN_REFUSED,  /* a rule of RFC 8098 (or a missing Message-ID) forbids it */
};

/* What the plugin reported: the read message's headers and where it is. Strings are
   borrowed; NULL is a header the message does not have. */
struct mdn_request {
	const char *user;         /* the mailbox user: Final-Recipient */
	const char *message_id;   /* Message-ID, with its angle brackets */
	const char *dnt;          /* Disposition-Notification-To */
	const char *return_path;  /* Return-Path */
	const char *subject;      /* Subject (the plugin cut it already) */
	const char *content_type; /* Content-Type */
	const char *dn_options;   /* Disposition-Notification-Options */
	enum mdn_pref mdn_default;
};

/* "never" / "always" -> the preference; anything else (NULL, "") MDN_PREF_UNSET. */
enum mdn_pref mdn_pref_parse(const char *s);
/* "never", "always" or NULL (unset). */
const char *mdn_pref_name(enum mdn_pref pref);
/* "send", "declined", "refused". */
const char *mdn_decision_name(enum mdn_decision d);

/*
 * The addr-spec of a header holding one address (or an address list): 1 with it in
 * addr_r (NUL-terminated, at most MDN_ADDR_MAX bytes), 0 for a null path "<>", -1 if
 * the value holds no usable address. *distinct_r (may be NULL) counts the distinct
 * addresses of the list.
 */
int mdn_addr_parse(const char *value, char addr_r[MDN_ADDR_MAX + 1], int *distinct_r);
/* Whether two addr-specs are one address: local parts as they are, domains in any case. */
bool mdn_addr_same(const char *a, const char *b);

/*
 * Decide about req with the user's own preference pref (DESIGN has the order). Returns
 * the decision with its reason in *reason_r (a constant); for MDN_SEND the address the
 * notification goes to is in to_r.
 */
enum mdn_decision mdn_decide(const struct mdn_request *req, enum mdn_pref pref,
                             char to_r[MDN_ADDR_MAX + 1], const char **reason_r);

/* What mdn_compose() writes, besides the request's fields. */
struct mdn_env {
	const char *reporting_host; /* Reporting-UA's name: the host name */
	const char *notify_to;      /* the decided address */
	const char *own_message_id; /* the notification's Message-ID, brackets included */
	const char *boundary;       /* the MIME boundary: [A-Za-z0-9=_.-], unique */
	int64_t date;               /* seconds since the epoch, for Date: */
};

/*
 * Append the whole notification (headers and body, LF line ends, as sendmail takes it) to
 * out: multipart/report; report-type=disposition-notification with a text/plain part and
 * the message/disposition-notification part (Reporting-UA, Final-Recipient,
 * Original-Message-ID, Disposition: automatic-action/MDN-sent-automatically; displayed).
 */
void mdn_compose(const struct mdn_request *req, const struct mdn_env *env, struct mbuf *out);

#endif
