/*
 * reportin - DSNs (RFC 3464) and MDNs (RFC 8098) that come back to this site become
 * "report" events for statusd, without libmilter.
 *
 * callbacks.c gives every message that is not tracked and goes to a local address a look
 * at the end of its headers: only one whose Content-Type is multipart/report (or a
 * multipart/mixed from the null sender, as some MTAs send DSNs) is kept, headers and
 * body, up to 256 KiB (REPORT_KEEP_MAX; the rest of a larger one is not kept, and what
 * was kept is read, with cut set); any other mail costs nothing more. At end of
 * message reportin_read() parses it with report_parse() (reports/report.h) and appends
 * one report event (type 15, docs/protocol.md) per recipient entry:
 *  - tracking_id: the one in a valid ENVID (envmac.h), else the returned Msgstatus-Id,
 *    else none; message_id: Original-Message-ID, else the returned Message-ID;
 *  - recipient: Original-Recipient, else Final-Recipient, its domain in lower case;
 *  - details: kind (dsn|mdn), status (report_event()'s name), action or disposition, dsn
 *    (Status), smtp_reply (smtpreply_form()), reporting_mta, remote_mta, envid_ok, dkim
 *    (the d= of every valid signature, space-separated), from_domain, report_id (one
 *    random id per report) and, on the first entry only, raw: the report as it came, as
 *    much as fits in one record (MSEVENT_RECORD_MAX) with raw_truncated when cut.
 * Whether a report counts is statusd's decision (docs/security.md, "Reports from other
 * mail systems"): it knows the message's recipients. What the milter decides is whether
 * the report is consumed: a DSN that this site asked for (valid ENVID mac) whose every
 * entry says delivered, relayed or delayed is discarded once its events are recorded; a
 * failure, an unverifiable DSN, a DSN whose ENVID has the keep mac (the submitter asked
 * for DSNs too, envmac.h) and every MDN reach the user as before.
 *
 * DESIGN
 *	Pure functions, as tracker.h: callbacks.c keeps the message and carries out the
 *	decision (spool, smfi_discard); reportin_read() allocates only for its result and
 *	frees it before it returns. One report is parsed once; the raw text is copied once
 *	(made valid UTF-8) and cut with the record measured by msevent_format().
 *
 * SECURITY
 *	The message is anyone's. report_parse() bounds it; here every value that goes into an
 *	event is checked as msevent_validate() would (an entry that fails is left out, and
 *	counted), the raw text is made valid UTF-8 without NULs, and nothing the report says is
 *	believed: envid_ok and dkim are facts this site established itself.
 *
 * DIAGNOSTICS
 *	reportin_read() returns -1 with *why (static text) when the message is not a report
 *	it can use: not one report_parse() understands, or naming no message.
 */
#ifndef REPORTIN_H
#define REPORTIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "randid.h"

struct dkimverify_result;
struct mbuf;

struct reportin_input {
	const char *data; /* the whole message, headers and body */
	size_t len;
	const unsigned char *secret; /* report_secret_file's bytes, NULL if none */
	size_t secret_len;
	const struct dkimverify_result *dkim; /* NULL when not checked */
	int64_t now_ms;
	bool cut; /* data is the start of a longer message: raw_truncated, whatever fits */
};

struct reportin_result {
	bool dsn;                         /* a DSN (else an MDN) */
	bool envid_ok;                    /* its Original-Envelope-Id has our mac */
	bool consume;                     /* discard it once its events are recorded */
	char tracking_id[RANDID_LEN + 1]; /* "" if none */
	char report_id[RANDID_LEN + 1];
	unsigned events;  /* events appended */
	unsigned skipped; /* entries left out: no usable recipient, or over the parser's limit */
};

/* Should a message with this top-level Content-Type value (NULL if none) from sender ("" is
   the null sender) be kept and read as a report? */
bool reportin_candidate(const char *content_type, const char *sender);

/* Read a kept message: 0 and the events appended to events, or -1 and *why. */
int reportin_read(const struct reportin_input *in, struct reportin_result *res, struct mbuf *events,
                  const char **why);

#endif
