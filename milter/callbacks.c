/*
 * callbacks - msgstatus-milter's libmilter glue: pass what Postfix reports to tracker.c and
 * carry out its decisions at end of message.
 *
 * DESIGN
 *	libmilter calls the callbacks of one MTA connection one at a time, though not always
 *	on the same thread (Debian's libmilter is built with its pool of workers: a connection
 *	whose next command is more than 1 ms away goes back to a controller thread, and the
 *	next command is run by whichever worker is idle, or a new one); the per-connection
 *	state (struct mconn: config snapshot, client facts) is the milter's private data, the
 *	per-message state (tracker_msg) lives from MAIL FROM to end of message or abort, so
 *	both are freed at fixed points (eom/abort/close). Nothing here waits for the network:
 *	the events of a tracked message are appended to the local spool (one write) and the
 *	sender thread ships them. Protocol options ask Postfix not to wait for replies to
 *	anything but end of message, so the milter adds one round trip per message.
 *	What a message costs is libmilter's more than ours (docs/performance.md, "Milter: its
 *	own cost per message"): Postfix sends some 25 commands for a message of a few headers
 *	(macros before each stage and before each header), libmilter spends three poll(2)
 *	and two read(2) on each, and the callbacks are about 2 % of the milter's CPU. The body
 *	is streamed only to count its size: Postfix has no macro for the size, so SMFIP_NOBODY
 *	would lose it (one command per 64 KiB of body).
 *	Mail that is not tracked has its headers kept (one buffer, up to HEADERS_KEEP_MAX
 *	bytes) until the end of headers; only if it carries a foreign Msgstatus-Id
 *	(tracker_wants_dkim) are they, and then the body, fed to a DKIM check (dkimverify.h),
 *	whose key lookups may wait for the DNS at end of message, at most 2 x dns_timeout.
 *	A report coming back (reportin.h: not tracked, to local addresses only, Content-Type
 *	multipart/report) is kept from the same buffer on, up to REPORT_KEEP_MAX, DKIM-checked
 *	too, read at end of message (on a local connection, sendmail(1) or Postfix's own
 *	notices, only a DSN with our ENVID), and discarded there when reportin says it is
 *	consumed and its events are in the spool (not when they wait in the shipper's
 *	memory). Everything else drops the buffer at the end of headers: no DKIM work, no DNS.
 *
 * SECURITY
 *	All arguments come from the SMTP client through Postfix; tracker.c bounds and checks
 *	them. Log lines quote client data only through msg_clean().
 *
 * DIAGNOSTICS
 *	Nothing here rejects or delays mail: every callback continues (a consumed report is
 *	discarded, not rejected). Events the spool cannot
 *	take (its disk full, spool_max_size reached, a disk error) wait in the shipper's memory
 *	(up to 1 MiB; a warning with the queue id for each message); only when that is full
 *	too is a message left untagged, with an error ("NOT recorded").
 */
#include "callbacks.h"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkimverify.h"
#include "dsnreq.h"
#include "envmac.h"
#include "mbuf.h"
#include "mconfig.h"
#include "msg.h"
#include "report.h"
#include "reportin.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "shipper.h"
#include "spool.h"
#include "tracker.h"

struct mconn {
	struct mconfig *cfg;
	unsigned long nr;      /* SMFIP_NR_* agreed with the MTA: stages not to reply to */
	unsigned long actions; /* SMFIF_* agreed with the MTA */
	bool local;            /* Postfix emulated this connection (sendmail, its own notices) */
	struct tracker_msg *msg;
	struct dsnreq *dsn; /* lives with msg */
	/* mail from elsewhere: its headers until the end of headers, then its DKIM check */
	struct mbuf headers; /* "name\0value\0" pairs */
	bool headers_dropped;
	struct dkimverify_msg *dkim; /* lives with msg */
	/* a report coming back (reportin.h): the message, from the end of its headers */
	char *content_type; /* the first Content-Type header's value */
	bool rcpt_remote;   /* a recipient leaves this site ({rcpt_mailer}) */
	bool report_on;
	bool report_cut; /* more came than REPORT_KEEP_MAX: the rest was not kept */
	struct mbuf report;
};

/* Headers kept for a DKIM check; a message with more is not checked. */
#define HEADERS_KEEP_MAX (256 * 1024)
/* What is kept of a report: its report parts come first and are small (a DSN asked for
   with RET=HDRS is a few KiB; statusd keeps at most one record, MSEVENT_RECORD_MAX, of
   the raw text), so the rest of a large one (a returned message) is not kept. */
#define REPORT_KEEP_MAX (256 * 1024)

/* What asking for DSNs needs the MTA to allow. */
#define DSN_ACTIONS (SMFIF_CHGFROM | SMFIF_DELRCPT | SMFIF_ADDRCPT_PAR)

static struct spool *the_spool;
static struct shipper *the_shipper;
static struct dkimverify *the_dkim; /* NULL: dkim_verify = no */

/* Drop what lives with the message. */
static void
message_done(struct mconn *c)
{
	tracker_msg_free(&c->msg);
	dsnreq_free(&c->dsn);
	dkimverify_msg_free(&c->dkim);
	mbuf_free(&c->headers);
	c->headers_dropped = false;
	free(c->content_type);
	c->content_type = NULL;
	c->rcpt_remote = false;
	c->report_on = false;
	c->report_cut = false;
	mbuf_free(&c->report);
}

/* The connection's state, created at option negotiation (or connect, if there was none). */
static struct mconn *
conn_of(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c == NULL) {
		c = mycalloc(1, sizeof(*c));
		c->cfg = mconfig_get();
		smfi_setpriv(ctx, c);
	}
	return c;
}

static sfsistat
cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	/* Replies that Postfix need not wait for: everything before end of message. */
	unsigned long want = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
	                     SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_HDR | SMFIP_NR_EOH |
	                     SMFIP_NR_BODY | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA;

	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | DSN_ACTIONS);
	*pf1 = f1 & want;
	*pf2 = *pf3 = 0;
	conn_of(ctx)->nr = *pf1;
	conn_of(ctx)->actions = *pf0;
	(void)f2;
	(void)f3;
	/* Ask for the macros tracking needs, whatever milter_*_macros say. */
	smfi_setsymlist(ctx, SMFIM_ENVFROM,
	                "{auth_authen} {msgstatus_domains} {msgstatus_trust} "
	                "{msgstatus_dsn_domains}");
	smfi_setsymlist(ctx, SMFIM_ENVRCPT, "{rcpt_mailer}");
	smfi_setsymlist(ctx, SMFIM_EOM, "i");
	return SMFIS_CONTINUE;
}

/* The answer for a stage: none at all if the MTA agreed not to wait for one. */
static sfsistat
done(struct mconn *c, unsigned long nr_bit)
{
	return c != NULL && (c->nr & nr_bit) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	struct mconn *c = conn_of(ctx);
	char addr[INET6_ADDRSTRLEN] = "";
	unsigned port = 1;

	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		port = ntohs(in->sin_port);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		port = ntohs(in6->sin6_port);
	}
	c->local = tracker_is_local_submission(host, addr, port);
	return done(c, SMFIP_NR_CONN);
}

static sfsistat
cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct mconn *c = conn_of(ctx);

	message_done(c);
	c->msg = tracker_msg_new();
	tracker_mail(c->msg, argv[0], smfi_getsymval(ctx, "{auth_authen}"),
	             smfi_getsymval(ctx, "{msgstatus_domains}"),
	             smfi_getsymval(ctx, "{msgstatus_trust}"), c->local);
	/* DSNs: for tracked SMTP submissions of listed domains, if Postfix lets us. */
	c->dsn = dsnreq_new();
	dsnreq_mail(c->dsn, argv[0], (const char *const *)argv + 1,
	            c->msg->enabled && !c->local && (c->actions & DSN_ACTIONS) == DSN_ACTIONS &&
	                    tracker_domain_listed(smfi_getsymval(ctx, "{msgstatus_dsn_domains}"),
	                                          c->msg->sender));
	return done(c, SMFIP_NR_MAIL);
}

static sfsistat
cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mconn *c = conn_of(ctx);

	if (c->msg != NULL)
		tracker_rcpt(c->msg, argv[0], (size_t)c->cfg->max_recipients);
	if (c->dsn != NULL)
		dsnreq_rcpt(c->dsn, argv[0], (const char *const *)argv + 1,
		            smfi_getsymval(ctx, "{rcpt_mailer}"), c->cfg->dsn_transports,
		            (size_t)c->cfg->max_recipients);
	/* a report is read only where it is delivered: not when it passes through */
	const char *mailer = smfi_getsymval(ctx, "{rcpt_mailer}");
	if (mailer != NULL && dsnreq_transport_listed(c->cfg->dsn_transports, mailer))
		c->rcpt_remote = true;
	return done(c, SMFIP_NR_RCPT);
}

static sfsistat
cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct mconn *c = conn_of(ctx);

	if (c->msg != NULL) {
		tracker_header(c->msg, name, value);
		if (c->content_type == NULL && strcasecmp(name, "Content-Type") == 0)
			c->content_type = mystrdup(value ? value : "");
		/* kept for a DKIM check in case the message turns out to need one, and for
		   reading a report */
		if ((the_dkim != NULL || c->cfg->read_reports) && !c->msg->enabled &&
		    !c->headers_dropped) {
			size_t vlen = value ? strlen(value) : 0;

			if (c->headers.len + strlen(name) + vlen + 2 > HEADERS_KEEP_MAX) {
				c->headers_dropped = true;
				mbuf_free(&c->headers);
			} else {
				mbuf_append(&c->headers, name, strlen(name) + 1);
				mbuf_append(&c->headers, value ? value : "", vlen + 1);
			}
		}
	}
	return done(c, SMFIP_NR_HDR);
}

/* Is the message a report to read (reportin.h)? Known at the end of headers. */
static bool
wants_report(const struct mconn *c)
{
	return c->msg != NULL && c->cfg->read_reports && !c->msg->enabled && !c->rcpt_remote &&
	       !c->headers_dropped && c->msg->nrcpts > 0 &&
	       reportin_candidate(c->content_type, c->msg->sender);
}

static sfsistat
cb_eoh(SMFICTX *ctx)
{
	struct mconn *c = conn_of(ctx);
	bool report = wants_report(c);

	if (report) {
		/* the message as it came, for the parser and the raw copy statusd keeps */
		const char *p = c->headers.data, *end = p + c->headers.len;

		c->report_on = true;
		while (p != NULL && p < end) {
			const char *value = p + strlen(p) + 1;

			mbuf_printf(&c->report, "%s: %s\r\n", p, value);
			p = value + strlen(value) + 1;
		}
		mbuf_puts(&c->report, "\r\n");
	}
	if (c->msg != NULL && the_dkim != NULL && !c->headers_dropped &&
	    (tracker_wants_dkim(c->msg) || report)) {
		const char *p = c->headers.data, *end = p + c->headers.len;

		c->dkim = dkimverify_start(the_dkim, "msgstatus");
		while (p != NULL && p < end) {
			const char *value = p + strlen(p) + 1;

			dkimverify_header(c->dkim, p, value);
			p = value + strlen(value) + 1;
		}
		dkimverify_eoh(c->dkim);
	} else if (c->msg != NULL && c->headers_dropped && tracker_wants_dkim(c->msg))
		msg_info("a message with a Msgstatus-Id and over %d KiB of headers: not checked, "
		         "not remembered",
		         HEADERS_KEEP_MAX / 1024);
	mbuf_free(&c->headers);
	return done(c, SMFIP_NR_EOH);
}

static sfsistat
cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct mconn *c = conn_of(ctx);

	if (c->msg != NULL)
		tracker_body(c->msg, len);
	if (c->dkim != NULL)
		dkimverify_body(c->dkim, chunk, len);
	if (c->report_on && !c->report_cut) {
		size_t room = c->report.len < REPORT_KEEP_MAX ? REPORT_KEEP_MAX - c->report.len : 0;

		if (len > room) {
			/* keep what fits, stop there: the report parts come first */
			mbuf_append(&c->report, chunk, room);
			c->report_cut = true;
		} else
			mbuf_append(&c->report, chunk, len);
	}
	return done(c, SMFIP_NR_BODY);
}

/* Carry out dsnreq's plan for a tagged message (docs/deployment.md, "Asking for DSNs"). */
static void
ask_for_dsns(SMFICTX *ctx, const struct mconfig *cfg, struct dsnreq *d, const char *tracking_id,
             const char *clean)
{
	struct dsnreq_plan plan;
	size_t failed = 0;
	char envid[ENVMAC_ENVID_LEN + 1];

	/* with the site's secret, the ENVID proves that a report was asked for by us; when the
	   submitter asked for DSNs of their own (any recipient, local ones included: the ENVID
	   is the whole envelope's), the keep variant, whose reports are never consumed */
	if (cfg->report_secret != NULL)
		envmac_make(envid, cfg->report_secret, cfg->report_secret_len, tracking_id,
		            dsnreq_submitter_asks(d));
	else
		snprintf(envid, sizeof(envid), "%s", tracking_id);
	if (!dsnreq_plan(d, envid, &plan)) {
		if (plan.remote > 0 && msg_verbose())
			msg_debug("%s: no DSNs asked for: the submitter's own DSN options", clean);
		dsnreq_plan_clear(&plan);
		return;
	}
	if (plan.chgfrom && smfi_chgfrom(ctx, (char *)plan.from, plan.from_args) != MI_SUCCESS)
		failed++;
	for (size_t i = 0; i < plan.nrcpts; i++)
		if (smfi_delrcpt(ctx, (char *)plan.rcpts[i].rcpt) != MI_SUCCESS ||
		    smfi_addrcpt_par(ctx, (char *)plan.rcpts[i].rcpt, plan.rcpts[i].args) !=
		            MI_SUCCESS)
			failed++;
	if (failed > 0)
		msg_warn("%s: %zu DSN request%s failed", clean, failed, failed == 1 ? "" : "s");
	msg_info("%s: DSNs asked for %zu of %zu remote recipient%s%s", clean, plan.nrcpts,
	         plan.remote, plan.remote == 1 ? "" : "s",
	         plan.kept ? " (the others chose their own)" : "");
	dsnreq_plan_clear(&plan);
}

/* Record events: to the spool, else the shipper's memory. false if neither took them;
   *durable_r (if not NULL) says whether the spool took them (memory is lost with the
   milter). */
static bool
record(const struct mbuf *events, const char *clean, unsigned n, bool *durable_r)
{
	const char *why;
	size_t held;

	if (durable_r != NULL)
		*durable_r = false;
	if (spool_append(the_spool, events->data, events->len, &why) == 0) {
		if (durable_r != NULL)
			*durable_r = true;
		return true;
	}
	if (shipper_hold(the_shipper, events->data, events->len, &held) == 0) {
		msg_warn("%s: %u events held in memory (%zu bytes in all) until statusd takes "
		         "them: %s",
		         clean, n, held, why);
		return true;
	}
	msg_error("%s: %u events NOT recorded: %s (and %zu bytes already held in memory)", clean, n,
	          why, held);
	return false;
}

/* A report that came back (reportin.h): its events; true if the message is to be
   discarded (a DSN we asked for that says all is well, its events in the spool). */
static bool
read_report(struct mconn *c, const char *clean, const struct dkimverify_result *dr)
{
	struct reportin_input in = {
	        .data = c->report.data,
	        .len = c->report.len,
	        .secret = c->cfg->report_secret,
	        .secret_len = c->cfg->report_secret_len,
	        .dkim = dr,
	        .now_ms = time_now_ms(),
	        .cut = c->report_cut,
	};
	struct reportin_result res;
	struct mbuf events = MBUF_INIT;
	const char *why;
	bool recorded, durable;

	if (c->report_cut)
		msg_info("%s: a report of over %u KiB: only its first %u KiB kept and read", clean,
		         REPORT_KEEP_MAX / 1024, REPORT_KEEP_MAX / 1024);
	if (reportin_read(&in, &res, &events, &why) < 0) {
		msg_info("%s: a report not read: %s", clean, why);
		mbuf_free(&events);
		return false;
	}
	/*
	 * A local connection is Postfix's emulation for sendmail(1) and for its own notices
	 * alike (cleanup(8) gives a milter nothing to tell them apart, not even pickup's
	 * Received header, and no {rcpt_mailer} to tell a remote recipient by). Only
	 * Postfix's notices about our own mail carry our ENVID: anything else from there
	 * (statusd's own MDNs, a user's report to someone) is no report that came back.
	 */
	if (c->local && !(res.dsn && res.envid_ok)) {
		msg_info("%s: a report submitted on this host without an ENVID of ours (sendmail): "
		         "not read",
		         clean);
		mbuf_free(&events);
		return false;
	}
	recorded = record(&events, clean, res.events, &durable);
	mbuf_free(&events);
	msg_info("%s: %s report %s read: %u entr%s%s, tracking id %s, ENVID %s, DKIM %s%s", clean,
	         res.dsn ? "DSN" : "MDN", res.report_id, res.events, res.events == 1 ? "y" : "ies",
	         res.skipped ? " (some left out)" : "",
	         res.tracking_id[0] ? res.tracking_id : "none", res.envid_ok ? "ours" : "not ours",
	         dr != NULL && dr->nsigs > 0 ? dr->sigs[0].domain : "none",
	         durable && res.consume    ? "; consumed"
	         : recorded && res.consume ? "; kept: its events are only in memory"
	                                   : "");
	/* consumed only once its events are in the spool: held in memory, they would be lost
	   with the milter, and the report with them */
	return durable && res.consume;
}

/* A message from elsewhere with a foreign tag: remember it if DKIM authenticates it. */
static void
check_inbound(struct mconn *c, const char *clean, const char *qid,
              const struct dkimverify_result *drp, struct tracker_result *res, struct mbuf *events)
{
	const struct dkimverify_result dr = *drp;
	char origin[80];

	tracker_inbound(c->msg, &dr, qid, time_now_ms(), res, events);
	msg_clean(origin, sizeof(origin), c->msg->foreign_id, strlen(c->msg->foreign_id));
	if (res->tag)
		msg_info("%s: remembered as %s: tracking id %s, DKIM-authenticated, %u "
		         "recipient%s",
		         clean, res->tracking_id, origin, res->events, res->events == 1 ? "" : "s");
	else if (dr.nsigs == 0)
		msg_info("%s: not remembered (tracking id %s): %s", clean, origin,
		         dr.why ? dr.why : "no valid DKIM signature");
	else
		msg_info("%s: not remembered (tracking id %s): DKIM signature of %s, not aligned "
		         "with the From or envelope sender domain",
		         clean, origin, dr.sigs[0].domain);
}

static sfsistat
cb_eom(SMFICTX *ctx)
{
	struct mconn *c = conn_of(ctx);
	struct tracker_result res;
	struct dkimverify_result *dr = NULL;
	struct mbuf events = MBUF_INIT;
	const char *qid;
	char clean[128];
	bool discard = false;

	if (c->msg == NULL)
		return SMFIS_CONTINUE;
	qid = smfi_getsymval(ctx, "i");
	msg_clean(clean, sizeof(clean), qid ? qid : "NOQUEUE", strlen(qid ? qid : "NOQUEUE"));
	tracker_eom(c->msg, qid, time_now_ms(), &res, &events);
	if (c->dkim != NULL) {
		dr = mymalloc(sizeof(*dr));
		dkimverify_eom(c->dkim, tracker_sender_domain(c->msg), dr);
	}
	if (!res.tag && dr != NULL && tracker_wants_dkim(c->msg))
		check_inbound(c, clean, qid, dr, &res, &events);
	if (res.tag && !record(&events, clean, res.events, NULL)) {
		msg_error("%s: message not tagged", clean);
		res.tag = false;
	}
	if (c->report_on)
		discard = read_report(c, clean, dr);
	free(dr);
	/* Delete every Msgstatus-Id that came with the message, last occurrence first. */
	for (unsigned i = res.delete_tags; i > 0; i--)
		if (smfi_chgheader(ctx, TRACKER_HEADER, (int)i, NULL) != MI_SUCCESS)
			msg_warn("%s: cannot delete a foreign %s header", clean, TRACKER_HEADER);
	if (res.delete_tags > 0)
		msg_info("%s: removed %u %s header%s the message came with", clean, res.delete_tags,
		         TRACKER_HEADER, res.delete_tags > 1 ? "s" : "");
	if (res.tag && smfi_insheader(ctx, 0, TRACKER_HEADER, res.tracking_id) != MI_SUCCESS)
		msg_error("%s: cannot add the %s header", clean, TRACKER_HEADER);
	if (res.tag && !res.inbound) {
		msg_info("%s: tracked as %s, %u recipient%s%s", clean, res.tracking_id, res.events,
		         res.events == 1 ? "" : "s",
		         c->msg->rcpts_dropped ? " (some recipients not recorded)" : "");
		if (c->dsn != NULL)
			ask_for_dsns(ctx, c->cfg, c->dsn, res.tracking_id, clean);
	} else if (!res.tag && msg_verbose())
		msg_debug("%s: not tracked: %s", clean,
		          c->msg->why_not ? c->msg->why_not : "no usable recipient");
	mbuf_free(&events);
	message_done(c);
	return discard ? SMFIS_DISCARD : SMFIS_CONTINUE;
}

static sfsistat
cb_abort(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL)
		message_done(c);
	return SMFIS_CONTINUE;
}

static sfsistat
cb_close(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL) {
		message_done(c);
		mconfig_unref(&c->cfg);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

void
callbacks_register(struct spool *sp, struct shipper *sh, struct dkimverify *dkim)
{
	static struct smfiDesc desc = {
	        .xxfi_name = "msgstatus-milter",
	        .xxfi_version = SMFI_VERSION,
	        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | DSN_ACTIONS,
	        .xxfi_connect = cb_connect,
	        .xxfi_envfrom = cb_envfrom,
	        .xxfi_envrcpt = cb_envrcpt,
	        .xxfi_header = cb_header,
	        .xxfi_eoh = cb_eoh,
	        .xxfi_body = cb_body,
	        .xxfi_eom = cb_eom,
	        .xxfi_abort = cb_abort,
	        .xxfi_close = cb_close,
	        .xxfi_negotiate = cb_negotiate,
	};

	the_spool = sp;
	the_shipper = sh;
	the_dkim = dkim;
	if (smfi_register(desc) == MI_FAILURE)
		msg_fatal("smfi_register failed");
}
