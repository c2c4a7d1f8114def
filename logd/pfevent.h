/*
 * pfevent - turn a parsed Postfix log line (pflog.h) into a msgstatus event.
 *
 * Mapping (docs/protocol.md, "Postfix's log"):
 *	status=sent by a service listed in delivered_services (lmtp, local, virtual: the
 *	mail is in a mailbox here)			-> delivered
 *	status=sent by any other service (smtp: a remote MX took it)	-> relayed
 *	status=sent by discard				-> bounced (discarded, never delivered)
 *	status=deferred					-> deferred (every attempt, with its reply)
 *	status=bounced					-> bounced
 *	qmgr's "from=<...>, status=expired, returned to sender" (also force-expired)
 *							-> expired, without a recipient:
 *	   Postfix logs no per-recipient line for an expiry; statusd applies a recipient-less
 *	   expired event to every recipient of the message still queued or deferred
 *	status=sent with "(forwarded as QID)" (local(8), .forward)	-> relayed
 * Details: mta (relay=), dsn, postfix_reply (the text in parentheses, as logged),
 * smtp_reply (the SMTP reply in it in RFC 8621's form, "550 5.1.1 text", without "host X
 * said:" and "(in reply to ...)": lib/smtpreply.h; absent when the text holds none, as
 * for "connect to ...: Connection refused"), delay and delays as logged, service. Only lines whose
 *program's first component is one of syslog_names count (others are foreign: anyone can write to
 *syslog). The event id is derived from the line's bytes (SHA-256), and the time from its timestamp,
 *so reading a line again gives the same event, which statusd stores once.
 *
 * DESIGN
 *	A cache remembers the Message-ID cleanup(8) logged for each queue id, so that delivery
 *	events carry it for statusd's Message-ID join: a hash table (lib/htable), so a lookup
 *	costs the same whether the queue id is there or not, bounded to msgid_cache_size queue
 *	ids, the oldest logged out first. It outlives a reload (pfevent_configure), so that
 *	mail whose cleanup(8) line came before a SIGHUP keeps its Message-ID.
 *	Not thread-safe: the follower's thread owns it.
 */
#ifndef PFEVENT_H
#define PFEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbuf;
struct pflog_rec;
struct pfevent;

/*
 * delivered_services, syslog_names: names separated by commas or spaces (an empty
 * syslog_names accepts any program).
 */
struct pfevent *pfevent_new(const char *delivered_services, const char *syslog_names,
                            size_t msgid_cache_size);
void pfevent_free(struct pfevent **pe);
/* Take new delivered_services and syslog_names (a reload); the cache stays as it is. */
void pfevent_configure(struct pfevent *pe, const char *delivered_services,
                       const char *syslog_names);

/*
 * Handle one line (len bytes, without newline): if it makes an event, append the record to
 * out and return 1; return 0 for lines that make none (they may still feed the cache).
 */
int pfevent_line(struct pfevent *pe, const char *line, size_t len, int64_t now_ms,
                 struct mbuf *out);

struct pfevent_stats {
	uint64_t lines, events, unparsable_times, foreign;
};
void pfevent_stats(const struct pfevent *pe, struct pfevent_stats *out);

#endif
