/*
 * mdnsend - statusd's MDN sender: writes the message disposition notifications that
 * statusd decided to send (store_mdn.c, docs/mdn.md) and hands them to the local Postfix
 * through its sendmail command, off the event loop.
 *
 * DESIGN
 *	One thread with its own PostgreSQL connection, as a webhook endpoint's (webhook.c):
 *	it LISTENs on msgstatus_mdn, claims one due notification at a time, composes it
 *	(mdn_compose), runs `mdn_sendmail -i -f <> -- ADDRESS` with the notification on its
 *	standard input (the null envelope sender of RFC 8098 section 2.1's loop rule), and
 *	records the outcome. sendmail exiting non-zero, or not within MDNSEND_TIMEOUT_MS (it
 *	is then killed), did not queue the mail: the notification is due again after a
 *	backoff (10 s doubling to an hour) and given up after MDNSEND_ATTEMPTS_MAX attempts.
 *	A claim is committed before sendmail runs, so a notification that was being handed
 *	over when statusd stopped is never handed over again (at most once): two minutes
 *	after its claim it is marked unknown, and logged.
 *
 *	Stopping: mdnsend_stop() writes to a pipe the thread polls; a sendmail that runs is
 *	waited for (it is short) up to its timeout.
 *
 * SECURITY
 *	sendmail gets the address as one argument after "--", checked by mdn_addr_parse()
 *	(printable ASCII, no spaces, not starting with '-'); no shell is involved. The command
 *	(mdn_sendmail) is the administrator's.
 *
 * DIAGNOSTICS
 *	Each notification handed over is logged with its user, Message-ID and address; a
 *	failed attempt with sendmail's exit status and the start of what it printed; database
 *	trouble once per outage.
 */
#ifndef MDNSEND_H
#define MDNSEND_H

struct sd_config;
struct mdnsend;

#define MDNSEND_TIMEOUT_MS   60000 /* for one sendmail run */
#define MDNSEND_ATTEMPTS_MAX 50

/* Start the sender (NULL with mdn_sendmail empty: decisions are recorded, nothing sent). */
struct mdnsend *mdnsend_start(const struct sd_config *cfg, const char **error_r);
/* Stop and free it; *m is NULL after. */
void mdnsend_stop(struct mdnsend **m);

#endif
