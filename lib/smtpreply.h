/*
 * smtpreply - an SMTP reply in RFC 8621's smtpReply form ("code x.y.z text"), from the
 * text Postfix logs for a delivery or the Diagnostic-Code of a DSN.
 *
 * smtpreply_form() takes Postfix's status text ("host mx[192.0.2.1] said: 550 5.1.1
 * <bob@example.net>: Recipient address rejected (in reply to RCPT TO command)"), a
 * Diagnostic-Code ("smtp; 550 5.1.1 ...") or a bare reply ("250 2.0.0 Ok: queued as
 * 4XyZ") and gives "550 5.1.1 <bob@example.net>: Recipient address rejected": the reply
 * code, the enhanced status code (the reply's own, else the status given), the text.
 * Left out: an "smtp;" diagnostic-type, Postfix's "delivery temporarily suspended: ",
 * "host X said: " or "host X refused to talk to me: " and " (in reply to ... command)".
 * A multi-line reply, which Postfix logs with its lines joined by spaces ("550-5.7.1 one
 * 550-5.7.1 two 550 5.7.1 three"), becomes one line as RFC 8621 section 7 says: the
 * prefix the later lines share with the first is taken off ("550 5.7.1 one two three").
 *
 * DESIGN
 *	Pure: no allocation, no I/O, nothing kept; thread-safe. One pass over the text.
 *	Used by msgstatus-logd for every delivery line (logd/pfevent.c) and by the DSN
 *	reader (reports/).
 *
 * SECURITY
 *	The text is a remote server's reply: out is bounded by outlen and gets no control
 *	characters (they become spaces). Nothing in the text is interpreted beyond the
 *	shapes above.
 *
 * DIAGNOSTICS
 *	-1 when the text holds no SMTP reply (a connection that failed or was lost, a local
 *	delivery, a name service error: the caller keeps that text as it is).
 */
#ifndef SMTPREPLY_H
#define SMTPREPLY_H

#include <stddef.h>

/*
 * RFC 8621 smtpReply from text (NUL-terminated); status ("5.1.1") is used when the reply
 * has no enhanced status code of its own, and may be NULL. 0 with out filled (at most
 * outlen-1 bytes, NUL-terminated), or -1 if text holds no reply code.
 */
int smtpreply_form(const char *text, const char *status, char *out, size_t outlen);

#endif
