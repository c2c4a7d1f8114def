/*
 * dsnreq - which DSNs (RFC 3461) msgstatus-milter asks for on a tracked message, without
 * libmilter.
 *
 * For a tracked message whose sender domain is listed in {msgstatus_dsn_domains}, the
 * milter asks the remote side for delivery status notifications on the submitter's behalf:
 * ENVID=<tracking id> and RET=HDRS on MAIL FROM, and NOTIFY=SUCCESS,FAILURE,DELAY with
 * ORCPT=rfc822;<address> on each recipient that is not delivered here. callbacks.c feeds
 * a dsnreq with what Postfix reports at MAIL FROM and RCPT TO, and carries out the plan
 * that dsnreq_plan() makes at end of message (smfi_chgfrom, smfi_delrcpt and
 * smfi_addrcpt_par).
 *
 * The rules (docs/deployment.md, "Asking for DSNs"):
 *  - "Not delivered here" is Postfix's own answer: the recipient's delivery transport,
 *    the macro {rcpt_mailer} that smtpd sends at RCPT TO, is one of the milter's
 *    dsn_transports (default "smtp relay"). Postfix's cleanup(8) sends neither
 *    {rcpt_mailer} nor the submitter's DSN options (sendmail -N, -V, -R) to the
 *    non_smtpd_milters, so mail submitted with sendmail(1) is left as it is: the milter
 *    could not tell whether the submitter said NOTIFY=NEVER.
 *  - What the submitter asked for wins: a recipient with its own NOTIFY (NEVER included)
 *    is left alone; their ORCPT is kept; their ENVID and RET are kept.
 *  - MAIL FROM is changed only if at least one remote recipient may get a DSN (did not
 *    say NOTIFY=NEVER), and only if the submitter left RET or ENVID open.
 *
 * SECURITY
 *	The ESMTP parameters come from the SMTP client through Postfix. Only RET, ENVID,
 *	NOTIFY and ORCPT are read; a value that is not printable ASCII without spaces, or
 *	longer than DSNREQ_PARAM_MAX, makes the milter leave that recipient (or MAIL FROM)
 *	unchanged rather than pass it on. At most max recipients are planned per message.
 *	ORCPT is xtext-encoded (RFC 3461 section 4); a recipient that is not ASCII gets no
 *	ORCPT of ours.
 *
 * DIAGNOSTICS
 *	None here: the plan counts what it left alone, and callbacks.c logs it.
 */
#ifndef DSNREQ_H
#define DSNREQ_H

#include <stdbool.h>
#include <stddef.h>

#define DSNREQ_PARAM_MAX          500
#define DSNREQ_NOTIFY             "SUCCESS,FAILURE,DELAY"
#define DSNREQ_RET                "HDRS"
#define DSNREQ_TRANSPORTS_DEFAULT "smtp relay"

struct dsnreq;

/* One recipient to replace: smfi_delrcpt(rcpt), then smfi_addrcpt_par(rcpt, args). */
struct dsnreq_rcpt {
	const char *rcpt; /* as the client gave it, "<a@b>" */
	char *args;       /* "NOTIFY=... ORCPT=..." */
};

struct dsnreq_plan {
	bool chgfrom;     /* smfi_chgfrom(from, from_args) */
	const char *from; /* as the client gave it */
	char *from_args;  /* "RET=... ENVID=..." */
	struct dsnreq_rcpt *rcpts;
	size_t nrcpts;
	size_t remote; /* remote recipients seen */
	size_t kept;   /* remote recipients left alone: their own NOTIFY or unusable */
};

struct dsnreq *dsnreq_new(void);
void dsnreq_free(struct dsnreq **d);

/*
 * MAIL FROM, a new transaction (the recipients of the last one are forgotten): from is
 * libmilter's argv[0], params the ESMTP parameters after it (NULL-terminated, NULL for
 * none); enabled says that the message is tracked and its sender domain asks for DSNs.
 */
void dsnreq_mail(struct dsnreq *d, const char *from, const char *const *params, bool enabled);
/*
 * RCPT TO: rcpt is argv[0], params the rest; mailer is {rcpt_mailer} (NULL if Postfix did
 * not send it), transports the dsn_transports setting. At most max recipients are kept.
 */
void dsnreq_rcpt(struct dsnreq *d, const char *rcpt, const char *const *params, const char *mailer,
                 const char *transports, size_t max);
/*
 * End of message: the plan for a message tracked as envid (the tracking id; it must be
 * xtext-safe). Returns whether there is anything to do. The plan points into d: free it
 * with dsnreq_plan_clear() before d.
 */
/* Did the submitter give any recipient a NOTIFY other than NEVER (they want DSNs)? Then
   the ENVID's mac is the keep variant (envmac.h): their reports are never consumed. */
bool dsnreq_submitter_asks(const struct dsnreq *d);
bool dsnreq_plan(struct dsnreq *d, const char *envid, struct dsnreq_plan *plan);
void dsnreq_plan_clear(struct dsnreq_plan *plan);

/* The value of ESMTP parameter name (case-insensitive, "NAME=value") in params, or NULL. */
const char *dsnreq_param(const char *const *params, const char *name);
/* Is the transport listed in transports (space or comma separated)? */
bool dsnreq_transport_listed(const char *transports, const char *mailer);
/*
 * RFC 3461 xtext of s into out (size outlen, NUL-terminated). -1 if s is not printable
 * ASCII or out is too small.
 */
int dsnreq_xtext(char *out, size_t outlen, const char *s);

#endif
