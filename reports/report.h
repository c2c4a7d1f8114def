/*
 * report - what a delivery status notification (RFC 3464) or a message disposition
 * notification (RFC 8098) says, parsed from a raw message, without I/O.
 *
 * report_parse() reads a whole message. If it is a multipart/report of report-type
 * delivery-status (or RFC 6533's global-delivery-status) or disposition-notification, or
 * a multipart/mixed with a message/delivery-status part (as some MTAs send DSNs), it
 * fills a struct report: the per-message fields, one entry per recipient, and the
 * Msgstatus-Id and Message-ID of the returned headers (a text/rfc822-headers or
 * message/rfc822 part). An MDN that names its message neither way (some clients write
 * neither Original-Message-ID nor the headers part) is taken to be about the message
 * its own In-Reply-To names, when that is a single message id. report_event() maps a
 * DSN Action or an MDN disposition to a msgstatus event type; a recipient's
 * Diagnostic-Code becomes RFC 8621's smtpReply form "code x.y.z text" with
 * smtpreply_form() (lib/smtpreply.h, shared with msgstatus-logd).
 *
 * DESIGN
 *	MIME is GMime 3's: the message, its parts and their transfer encodings, and every
 *	header block: the per-message and per-recipient field groups of a
 *	message/delivery-status body are split at blank lines and each group is read by
 *	GMime's parser as a header block (unfolding, RFC 2047 words). GMime is initialised
 *	once per process (pthread_once); report_parse() is thread-safe and keeps nothing.
 *	Everything in a struct report is malloc'd and freed by report_clear().
 *
 * SECURITY
 *	The message comes from anyone who can send mail. It is read up to REPORT_INPUT_MAX
 *	bytes; at most REPORT_RCPTS_MAX recipients are kept (the rest counted); every string
 *	kept is at most REPORT_FIELD_MAX bytes, valid UTF-8 (other bytes become '?'), without
 *	control characters (folding becomes a space). Nothing here says that a report is
 *	genuine: that is the caller's decision (docs/security.md).
 *
 * DIAGNOSTICS
 *	report_parse() returns 0, or -1 with *error_r (static text) when the message is not
 *	a report it understands: not MIME, not multipart/report, another report-type, no
 *	status part, no recipient.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stddef.h>

#include "msevent.h"

#define REPORT_INPUT_MAX (4u << 20)
#define REPORT_RCPTS_MAX 1000
#define REPORT_FIELD_MAX 998

enum report_kind { REPORT_DSN = 1, REPORT_MDN = 2 };

struct report_rcpt {
	char *original_recipient; /* addresses: after "rfc822;", without <> */
	char *final_recipient;
	char *action;          /* lower case: failed, delayed, delivered, relayed, expanded */
	char *status;          /* "5.1.1" */
	char *diagnostic_code; /* after "smtp;" (the type is left out) */
	char *remote_mta;      /* after "dns;" */
};

struct report {
	enum report_kind kind;
	char *envelope_id;   /* Original-Envelope-Id (DSN) */
	char *reporting_mta; /* after "dns;" (DSN, and Reporting-UA for an MDN) */
	struct report_rcpt *rcpts;
	size_t nrcpts, rcpts_dropped;
	/* MDN (RFC 8098 section 3.2): one recipient, also in rcpts[0] */
	char *disposition; /* "automatic-action/MDN-sent-automatically; displayed" */
	/* or, when neither it nor returned headers name the message, the MDN's own
	   In-Reply-To if that is one "<...>" */
	char *original_message_id;
	/* the returned headers */
	char *msgstatus_id;
	char *message_id;
};

/* Parse data[0..len); 0 and *r filled (report_clear it), or -1 and *error_r. */
int report_parse(const char *data, size_t len, struct report *r, const char **error_r);
void report_clear(struct report *r);

/*
 * The event a report says for one recipient: DSN actions delivered, relayed, delayed
 * (deferred), failed (bounced); MDN dispositions displayed (read), deleted (deleted).
 * The disposition may be a whole Disposition field; its type after the ';' counts.
 * MSEV_NONE for anything else (expanded, processed, dispatched, unknown).
 */
enum msevent_type report_event(enum report_kind kind, const char *action_or_disposition);

#endif
