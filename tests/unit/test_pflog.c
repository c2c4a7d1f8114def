/*
 * test_pflog - unit tests for logd/pflog (one line of Postfix's log -> struct pflog_rec).
 *
 * The lines are real: captured from a private Postfix 3.7.11 (Debian 12) driven with swaks,
 * sendmail, smtplib, postsuper and smtp-sink (accepting, 4xx, 5xx at RCPT and at end of
 * DATA, a 1300-byte and a 3000-byte reply, LMTP, IPv6), with local aliases, virtual
 * aliases, pipe, discard, error and retry transports, short and long queue ids,
 * soft_bounce, a 70 s maximal_queue_lifetime and postsuper -e. tests/data/maillog-sample.txt
 * is that log (domains are example.*). Where a test needs a form this machine does not
 * write (rsyslog's RFC 3339 and space-padded timestamps, a raw "<PRI>" datagram, CRLF,
 * conn_use=, a global IPv6 relay), it rewrites a real line the way that logger would.
 *
 * Covers: every recognized kind with every field; the header forms; lines that must be
 * PFLOG_OTHER (other programs, warnings, NOQUEUE, probes, delay notices, odd Message-IDs,
 * malformed fields, overflowing numbers); every truncation of every recognized line; the
 * 2000-byte record limit of Postfix's logger; the sample log's counts per kind; and
 * pflog_time() (zero- and space-padded days, fractions, RFC 3339, year inference around
 * New Year and Feb 29, summer and winter time). Every parse is of an exact-size heap copy,
 * so ASan catches a read past the end, and every returned piece is checked to lie inside
 * the line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "check.h"
#include "pflog.h"

/* check.h's check_int, labelled with the case and the field rather than the expression */
#define CHECK_NUM(name, field, got, want)                                                          \
	check_int(__FILE__, __LINE__, (name), (field), (long long)(got), (long long)(want))

static const char *const kind_names[] = {"OTHER",   "DELIVERY", "QUEUED", "EXPIRED",
                                         "REMOVED", "MSGID",    "BOUNCE"};

static const char *
kind_name(enum pflog_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

/* A parse of an exact-size heap copy of the line (no NUL after it). */
struct parsed {
	char *buf;
	size_t len;
	struct pflog_rec rec;
	enum pflog_kind kind;
};

static void
parse_copy(const char *line, size_t len, struct parsed *p)
{
	p->buf = malloc(len ? len : 1);
	assert_non_null(p->buf);
	memcpy(p->buf, line, len);
	p->len = len;
	p->kind = pflog_parse(p->buf, len, &p->rec);
}

static void
parsed_free(struct parsed *p)
{
	free(p->buf);
	p->buf = NULL;
}

#define NSTRS 15

static void
rec_strs(const struct pflog_rec *r, const struct pflog_str *out[NSTRS], const char *names[NSTRS])
{
	int i = 0;
#define ADD(f)                                                                                     \
	do {                                                                                       \
		names[i] = #f;                                                                     \
		out[i++] = &r->f;                                                                  \
	} while (0)
	ADD(timestamp);
	ADD(host);
	ADD(program);
	ADD(service);
	ADD(queue_id);
	ADD(to);
	ADD(orig_to);
	ADD(relay);
	ADD(delay);
	ADD(delays);
	ADD(dsn);
	ADD(status_text);
	ADD(from);
	ADD(message_id);
	ADD(bounce_queue_id);
#undef ADD
}

/* Every piece lies inside the parsed line, and kind == the return value. */
static void
check_bounds(const char *name, const struct parsed *p)
{
	const struct pflog_str *s[NSTRS];
	const char *names[NSTRS];

	rec_strs(&p->rec, s, names);
	for (int i = 0; i < NSTRS; i++) {
		if (s[i]->ptr == NULL) {
			if (s[i]->len != 0) {
				print_error("%s: %s: NULL ptr with len %zu\n", name, names[i],
				            s[i]->len);
				failures++;
			}
			continue;
		}
		if (s[i]->ptr < p->buf || s[i]->ptr > p->buf + p->len ||
		    s[i]->len > (size_t)(p->buf + p->len - s[i]->ptr)) {
			print_error("%s: %s lies outside the line\n", name, names[i]);
			failures++;
		}
	}
	if (p->rec.kind != p->kind) {
		print_error("%s: rec.kind %s, returned %s\n", name, kind_name(p->rec.kind),
		            kind_name(p->kind));
		failures++;
	}
}

/* want NULL: absent (len 0); otherwise exactly these bytes. */
static void
check_field(const char *name, const char *field, const struct pflog_str *got, const char *want)
{
	if (want == NULL) {
		if (got->len != 0) {
			print_error("%s: %s: got \"%.*s\", want absent\n", name, field,
			            (int)got->len, got->ptr);
			failures++;
		}
		return;
	}
	if (got->ptr == NULL || got->len != strlen(want) || memcmp(got->ptr, want, got->len) != 0) {
		print_error("%s: %s: got \"%.*s\"%s, want \"%s\"\n", name, field, (int)got->len,
		            got->ptr ? got->ptr : "", got->ptr ? "" : " (NULL)", want);
		failures++;
	}
}

struct want {
	enum pflog_kind kind;
	const char *service, *queue_id;
	const char *to, *orig_to, *relay, *delay, *delays, *dsn;
	enum pflog_status status;
	const char *status_text;
	const char *from; /* NULL: absent, "": the null sender <> */
	int64_t size;     /* checked for QUEUED only (else -1 is wanted) */
	long nrcpt;       /* checked for QUEUED only (else -1 is wanted) */
	const char *message_id, *bounce_queue_id;
};

#define DLV(svc, qid, to_, orig, rel, dl, dls, dsn_, st, text)                                     \
	{                                                                                          \
		.kind = PFLOG_DELIVERY, .service = svc, .queue_id = qid, .to = to_,                \
		.orig_to = orig, .relay = rel, .delay = dl, .delays = dls, .dsn = dsn_,            \
		.status = st, .status_text = text                                                  \
	}

static void
check_rec(const char *name, const struct parsed *p, const struct want *w)
{
	const struct pflog_rec *r = &p->rec;

	check_bounds(name, p);
	if (p->kind != w->kind) {
		print_error("%s: kind: got %s, want %s\n", name, kind_name(p->kind),
		            kind_name(w->kind));
		failures++;
	}
	check_field(name, "service", &r->service, w->service);
	check_field(name, "queue_id", &r->queue_id, w->queue_id);
	check_field(name, "to", &r->to, w->to);
	check_field(name, "orig_to", &r->orig_to, w->orig_to);
	check_field(name, "relay", &r->relay, w->relay);
	check_field(name, "delay", &r->delay, w->delay);
	check_field(name, "delays", &r->delays, w->delays);
	check_field(name, "dsn", &r->dsn, w->dsn);
	CHECK_NUM(name, "status", r->status, w->status);
	check_field(name, "status_text", &r->status_text, w->status_text);
	check_field(name, "from", &r->from, w->from);
	if (w->from != NULL && r->from.ptr == NULL) {
		print_error("%s: from: NULL ptr, want <> (ptr set, len 0)\n", name);
		failures++;
	}
	CHECK_NUM(name, "size", r->size, w->kind == PFLOG_QUEUED ? w->size : -1);
	CHECK_NUM(name, "nrcpt", r->nrcpt, w->kind == PFLOG_QUEUED ? w->nrcpt : -1);
	check_field(name, "message_id", &r->message_id, w->message_id);
	check_field(name, "bounce_queue_id", &r->bounce_queue_id, w->bounce_queue_id);
}

/* ---- real lines, one per shape ---------------------------------------------------------- */

static const struct {
	const char *name;
	const char *line;
	struct want want;
} real_cases[] = {
        {"smtp sent, short queue id",
         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<bob@remote.example>, "
         "relay=127.0.0.1[127.0.0.1]:56413, delay=0.04, delays=0.02/0.03/0/0, dsn=2.0.0, "
         "status=sent (250 2.0.0 Ok)",
         DLV("smtp", "A6BE6A74596", "bob@remote.example", NULL, "127.0.0.1[127.0.0.1]:56413",
             "0.04", "0.02/0.03/0/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"quoted local part with a space",
         "Nov 22 13:37:01 mail postfix/smtp[5948]: C7720A74596: to=<\"john doe\"@remote.example>, "
         "relay=127.0.0.1[127.0.0.1]:56413, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent "
         "(250 2.0.0 Ok)",
         DLV("smtp", "C7720A74596", "\"john doe\"@remote.example", NULL,
             "127.0.0.1[127.0.0.1]:56413", "0.01", "0/0/0/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"quoted local part with '>' and ', ', long queue id",
         "Nov 22 13:37:19 mail postfix/smtp[6689]: 4jXVVl2jRhz1bckc: to=<\"a>b, "
         "c\"@remote.example>, relay=127.0.0.1[127.0.0.1]:56413, delay=0.01, delays=0/0/0/0, "
         "dsn=2.0.0, status=sent (250 2.0.0 Ok)",
         DLV("smtp", "4jXVVl2jRhz1bckc", "\"a>b, c\"@remote.example", NULL,
             "127.0.0.1[127.0.0.1]:56413", "0.01", "0/0/0/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"quoted local part with an escaped quote",
         "Nov 22 13:37:19 mail postfix/smtp[6684]: 4jXVVl2l3Xz1bckd: "
         "to=<\"x\\\"y\"@remote.example>, "
         "relay=127.0.0.1[127.0.0.1]:56413, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent "
         "(250 2.0.0 Ok)",
         DLV("smtp", "4jXVVl2l3Xz1bckd", "\"x\\\"y\"@remote.example", NULL,
             "127.0.0.1[127.0.0.1]:56413", "0.01", "0/0/0/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"IPv6 relay, quoted local part with a comma",
         "Nov 22 13:37:19 mail postfix/smtp[6689]: 4jXVVl2mnjz1bckc: to=<\"odd,one\"@v6.example>, "
         "relay=::1[::1]:54273, delay=0.02, delays=0.01/0/0.01/0, dsn=2.0.0, status=sent (250 "
         "2.0.0 Ok)",
         DLV("smtp", "4jXVVl2mnjz1bckc", "\"odd,one\"@v6.example", NULL, "::1[::1]:54273", "0.02",
             "0.01/0/0.01/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"virtual alias: orig_to",
         "Nov 22 13:37:02 mail postfix/smtp[5948]: 01655A74596: to=<bob@remote.example>, "
         "orig_to=<team@example.com>, relay=127.0.0.1[127.0.0.1]:56413, delay=0, "
         "delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
         DLV("smtp", "01655A74596", "bob@remote.example", "team@example.com",
             "127.0.0.1[127.0.0.1]:56413", "0", "0/0/0/0", "2.0.0", PFLOG_SENT, "250 2.0.0 Ok")},
        {"local: alias forwarded",
         "Nov 22 13:37:02 mail postfix/local[5968]: 44245A74452: to=<info@mail.example.com>, "
         "relay=local, delay=0.05, delays=0/0.04/0/0, dsn=2.0.0, status=sent (forwarded as "
         "4EEE3A7447B)",
         DLV("local", "44245A74452", "info@mail.example.com", NULL, "local", "0.05", "0/0.04/0/0",
             "2.0.0", PFLOG_SENT, "forwarded as 4EEE3A7447B")},
        {"local: alias to a file, orig_to",
         "Nov 22 13:37:02 mail postfix/local[5968]: 5C537A74452: to=<alice@mail.example.com>, "
         "orig_to=<staff@mail.example.com>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, "
         "status=sent (delivered to file: /dev/null)",
         DLV("local", "5C537A74452", "alice@mail.example.com", "staff@mail.example.com", "local",
             "0", "0/0/0/0", "2.0.0", PFLOG_SENT, "delivered to file: /dev/null")},
        {"local: orig_to without a domain",
         "Nov 22 13:37:02 mail postfix/local[5968]: 7D635A74452: to=<postmaster@mail.example.com>, "
         "orig_to=<postmaster>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent "
         "(delivered to file: /dev/null)",
         DLV("local", "7D635A74452", "postmaster@mail.example.com", "postmaster", "local", "0",
             "0/0/0/0", "2.0.0", PFLOG_SENT, "delivered to file: /dev/null")},
        {"local: command with '>' in the status text",
         "Nov 22 13:37:02 mail postfix/local[5968]: 6BEECA74452: to=<archive@mail.example.com>, "
         "relay=local, delay=0.02, delays=0/0/0/0.02, dsn=2.0.0, status=sent (delivered to "
         "command: /bin/cat >/dev/null)",
         DLV("local", "6BEECA74452", "archive@mail.example.com", NULL, "local", "0.02",
             "0/0/0/0.02", "2.0.0", PFLOG_SENT, "delivered to command: /bin/cat >/dev/null")},
        {"deferred with nested parentheses",
         "Nov 22 13:37:02 mail postfix/smtp[5948]: 8FDCBA74452: to=<frank@defer.example>, "
         "relay=127.0.0.1[127.0.0.1]:46815, delay=0.03, delays=0/0/0/0.02, dsn=4.7.1, "
         "status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.7.1 Greylisted, please try "
         "again in 5 minutes (see https://example.net/grey) (in reply to RCPT TO command))",
         DLV("smtp", "8FDCBA74452", "frank@defer.example", NULL, "127.0.0.1[127.0.0.1]:46815",
             "0.03", "0/0/0/0.02", "4.7.1", PFLOG_DEFERRED,
             "host 127.0.0.1[127.0.0.1] said: 451 4.7.1 Greylisted, please try again in 5 minutes "
             "(see https://example.net/grey) (in reply to RCPT TO command)")},
        {"bounced at RCPT, '<' '>' in the reply",
         "Nov 22 13:37:02 mail postfix/smtp[5948]: A1969A7447E: to=<nobody@reject.example>, "
         "relay=127.0.0.1[127.0.0.1]:53689, delay=0.03, delays=0/0/0/0.03, dsn=5.1.1, "
         "status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@reject.example>: "
         "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO "
         "command))",
         DLV("smtp", "A1969A7447E", "nobody@reject.example", NULL, "127.0.0.1[127.0.0.1]:53689",
             "0.03", "0/0/0/0.03", "5.1.1", PFLOG_BOUNCED,
             "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@reject.example>: Recipient address "
             "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)")},
        {"bounced after DATA, commas and parentheses in the reply",
         "Nov 22 13:37:02 mail postfix/smtp[5948]: B4BE0A7447E: to=<grace@rejdot.example>, "
         "relay=127.0.0.1[127.0.0.1]:43169, delay=0.01, delays=0/0/0/0, dsn=5.7.1, "
         "status=bounced (host 127.0.0.1[127.0.0.1] said: 554 5.7.1 Spam detected (score 12.5, "
         "required 5.0), message refused (in reply to end of DATA command))",
         DLV("smtp", "B4BE0A7447E", "grace@rejdot.example", NULL, "127.0.0.1[127.0.0.1]:43169",
             "0.01", "0/0/0/0", "5.7.1", PFLOG_BOUNCED,
             "host 127.0.0.1[127.0.0.1] said: 554 5.7.1 Spam detected (score 12.5, required 5.0), "
             "message refused (in reply to end of DATA command)")},
        {"lmtp",
         "Nov 22 13:37:02 mail postfix/lmtp[5982]: D95D0A7447E: to=<ivan@lmtp.example>, "
         "relay=127.0.0.1[127.0.0.1]:41941, delay=0.03, delays=0/0.03/0.01/0, dsn=2.2.0, "
         "status=sent (250 2.2.0 Ok)",
         DLV("lmtp", "D95D0A7447E", "ivan@lmtp.example", NULL, "127.0.0.1[127.0.0.1]:41941", "0.03",
             "0/0.03/0.01/0", "2.2.0", PFLOG_SENT, "250 2.2.0 Ok")},
        {"deferred: connection refused, relay=none",
         "Nov 22 13:37:02 mail postfix/smtp[5948]: EBC67A7447E: to=<mallory@dead.example>, "
         "relay=none, delay=0, delays=0/0/0/0, dsn=4.4.1, status=deferred (connect to "
         "127.0.0.1[127.0.0.1]:38241: Connection refused)",
         DLV("smtp", "EBC67A7447E", "mallory@dead.example", NULL, "none", "0", "0/0/0/0", "4.4.1",
             PFLOG_DEFERRED, "connect to 127.0.0.1[127.0.0.1]:38241: Connection refused")},
        {"discard",
         "Nov 22 13:37:03 mail postfix/discard[5985]: 0752DA74597: to=<oscar@discard.example>, "
         "relay=none, delay=0.02, delays=0/0.02/0/0, dsn=2.0.0, status=sent (silently discarded)",
         DLV("discard", "0752DA74597", "oscar@discard.example", NULL, "none", "0.02", "0/0.02/0/0",
             "2.0.0", PFLOG_SENT, "silently discarded")},
        {"pipe, parentheses and double spaces in the text",
         "Nov 22 13:37:03 mail postfix/pipe[5988]: 279D5A74597: to=<trent@pipe.example>, "
         "relay=mypipe, delay=0.03, delays=0/0.02/0/0.01, dsn=2.0.0, status=sent (delivered via "
         "mypipe service (Received: from client.example.org (localhost [127.0.0.1])  by "
         "mail.example.com (Postfix) with ESMTP id 279D5A74597  ))",
         DLV("pipe", "279D5A74597", "trent@pipe.example", NULL, "mypipe", "0.03", "0/0.02/0/0.01",
             "2.0.0", PFLOG_SENT,
             "delivered via mypipe service (Received: from client.example.org (localhost "
             "[127.0.0.1])  by mail.example.com (Postfix) with ESMTP id 279D5A74597  )")},
        {"error transport: bounced",
         "Nov 22 13:41:29 mail postfix/error[20051]: A46A0A74695: to=<victor@nonexistent.example>, "
         "relay=none, delay=0.12, delays=0.06/0.04/0/0.02, dsn=5.1.2, status=bounced (domain does "
         "not exist here)",
         DLV("error", "A46A0A74695", "victor@nonexistent.example", NULL, "none", "0.12",
             "0.06/0.04/0/0.02", "5.1.2", PFLOG_BOUNCED, "domain does not exist here")},
        {"retry transport (error(8)): deferred",
         "Nov 22 13:41:29 mail postfix/error[20052]: AB1C8A7443E: to=<peggy@retry.example>, "
         "relay=none, delay=0.16, delays=0.01/0.12/0/0.03, dsn=4.4.1, status=deferred (upstream "
         "is down, try later)",
         DLV("error", "AB1C8A7443E", "peggy@retry.example", NULL, "none", "0.16",
             "0.01/0.12/0/0.03", "4.4.1", PFLOG_DEFERRED, "upstream is down, try later")},
        {"soft_bounce = yes: SOFTBOUNCE is a deferral",
         "Nov 22 13:37:28 mail postfix/smtp[8686]: 4jXVVw4xhvz1bclZ: to=<nobody@reject.example>, "
         "relay=127.0.0.1[127.0.0.1]:53689, delay=0.13, delays=0.04/0.04/0/0.04, dsn=4.1.1, "
         "status=SOFTBOUNCE (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@reject.example>: "
         "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO "
         "command))",
         DLV("smtp", "4jXVVw4xhvz1bclZ", "nobody@reject.example", NULL,
             "127.0.0.1[127.0.0.1]:53689", "0.13", "0.04/0.04/0/0.04", "4.1.1", PFLOG_DEFERRED,
             "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@reject.example>: Recipient address "
             "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)")},
        {"qmgr: queue active",
         "Nov 22 13:37:01 mail postfix/qmgr[5941]: A6BE6A74596: from=<alice@mail.example.com>, "
         "size=403, nrcpt=1 (queue active)",
         {.kind = PFLOG_QUEUED,
          .service = "qmgr",
          .queue_id = "A6BE6A74596",
          .from = "alice@mail.example.com",
          .size = 403,
          .nrcpt = 1}},
        {"qmgr: queue active, null sender (a bounce)",
         "Nov 22 13:37:02 mail postfix/qmgr[5941]: A98F8A74481: from=<>, size=2556, nrcpt=1 (queue "
         "active)",
         {.kind = PFLOG_QUEUED,
          .service = "qmgr",
          .queue_id = "A98F8A74481",
          .from = "",
          .size = 2556,
          .nrcpt = 1}},
        {"qmgr: queue active, three recipients",
         "Nov 22 13:37:01 mail postfix/qmgr[5941]: E601DA74596: from=<alice@mail.example.com>, "
         "size=420, nrcpt=3 (queue active)",
         {.kind = PFLOG_QUEUED,
          .service = "qmgr",
          .queue_id = "E601DA74596",
          .from = "alice@mail.example.com",
          .size = 420,
          .nrcpt = 3}},
        {"qmgr: expired",
         "Nov 22 13:38:18 mail postfix/qmgr[9462]: EBC67A7447E: from=<alice@mail.example.com>, "
         "status=expired, returned to sender",
         {.kind = PFLOG_EXPIRED,
          .service = "qmgr",
          .queue_id = "EBC67A7447E",
          .status = PFLOG_EXPIRED_STATUS,
          .from = "alice@mail.example.com"}},
        {"qmgr: force-expired (postsuper -e)",
         "Nov 22 13:41:37 mail postfix/qmgr[20079]: 4jXVbf41W0z1bctm: "
         "from=<alice@mail.example.com>, status=force-expired, returned to sender",
         {.kind = PFLOG_EXPIRED,
          .service = "qmgr",
          .queue_id = "4jXVbf41W0z1bctm",
          .status = PFLOG_EXPIRED_STATUS,
          .from = "alice@mail.example.com"}},
        {"qmgr: removed",
         "Nov 22 13:37:01 mail postfix/qmgr[5941]: A6BE6A74596: removed",
         {.kind = PFLOG_REMOVED, .service = "qmgr", .queue_id = "A6BE6A74596"}},
        {"postsuper -d: removed",
         "Nov 22 13:37:24 mail postfix/postsuper[8096]: 4jXVVp3C8Hz1bckw: removed",
         {.kind = PFLOG_REMOVED, .service = "postsuper", .queue_id = "4jXVVp3C8Hz1bckw"}},
        {"cleanup: message-id of the client",
         "Nov 22 13:37:01 mail postfix/cleanup[5947]: A6BE6A74596: "
         "message-id=<20261122133701.005943@client.example.org>",
         {.kind = PFLOG_MSGID,
          .service = "cleanup",
          .queue_id = "A6BE6A74596",
          .message_id = "<20261122133701.005943@client.example.org>"}},
        {"cleanup: message-id Postfix added",
         "Nov 22 13:37:02 mail postfix/cleanup[5947]: 7D635A74452: "
         "message-id=<20261122133702.7D635A74452@mail.example.com>",
         {.kind = PFLOG_MSGID,
          .service = "cleanup",
          .queue_id = "7D635A74452",
          .message_id = "<20261122133702.7D635A74452@mail.example.com>"}},
        {"cleanup: no Message-ID at all",
         "Nov 22 13:41:30 mail postfix/cleanup[20050]: 3EA07A74836: message-id=<>",
         {.kind = PFLOG_MSGID,
          .service = "cleanup",
          .queue_id = "3EA07A74836",
          .message_id = "<>"}},
        {"bounce: sender non-delivery notification",
         "Nov 22 13:37:02 mail postfix/bounce[5979]: A1969A7447E: sender non-delivery "
         "notification: A98F8A74481",
         {.kind = PFLOG_BOUNCE,
          .service = "bounce",
          .queue_id = "A1969A7447E",
          .bounce_queue_id = "A98F8A74481"}},
        {"bounce: postmaster non-delivery notification",
         "Nov 22 13:37:02 mail postfix/bounce[5979]: A1969A7447E: postmaster non-delivery "
         "notification: AA21AA74483",
         {.kind = PFLOG_BOUNCE,
          .service = "bounce",
          .queue_id = "A1969A7447E",
          .bounce_queue_id = "AA21AA74483"}},
        {"bounce: sender delivery status notification (NOTIFY=SUCCESS)",
         "Nov 22 13:37:03 mail postfix/bounce[5998]: 7B164A74593: sender delivery status "
         "notification: 7FDB6A74572",
         {.kind = PFLOG_BOUNCE,
          .service = "bounce",
          .queue_id = "7B164A74593",
          .bounce_queue_id = "7FDB6A74572"}},
        {"bounce: long queue ids",
         "Nov 22 13:38:18 mail postfix/bounce[10158]: 8FDCBA74452: sender non-delivery "
         "notification: 4jXVWt45vVz1bcg9",
         {.kind = PFLOG_BOUNCE,
          .service = "bounce",
          .queue_id = "8FDCBA74452",
          .bounce_queue_id = "4jXVWt45vVz1bcg9"}},

        /* Real lines that are not the caller's business. */
        {"address probe: status=deliverable",
         "Nov 22 13:37:03 mail postfix/smtp[5948]: 8C64EA74573: to=<bob@remote.example>, "
         "relay=127.0.0.1[127.0.0.1]:56413, delay=0.01, delays=0/0/0/0, dsn=2.1.5, "
         "status=deliverable (250 2.1.5 Ok)",
         {.kind = PFLOG_OTHER, .service = "smtp"}},
        {"bounce: sender delay notification",
         "Nov 22 13:37:36 mail postfix/bounce[9480]: EBC67A7447E: sender delay notification: "
         "4jXVW45SPhz1bclc",
         {.kind = PFLOG_OTHER, .service = "bounce"}},
        {"cleanup: Message-ID without angle brackets",
         "Nov 22 13:41:30 mail postfix/cleanup[20045]: 3F35EA74837: message-id=not an id "
         "(comment)",
         {.kind = PFLOG_OTHER, .service = "cleanup"}},
        {"cleanup: resent-message-id",
         "Nov 22 13:41:30 mail postfix/cleanup[20050]: 3FBD2A74836: "
         "resent-message-id=<r.1@remote.example>",
         {.kind = PFLOG_OTHER, .service = "cleanup"}},
        {"submission smtpd: client=",
         "Nov 22 13:37:17 mail postfix/submission/smtpd[7192]: 4jXVVj0V4Hz1bck8: "
         "client=localhost[127.0.0.1]",
         {.kind = PFLOG_OTHER, .service = "smtpd"}},
        {"pickup: uid= from=",
         "Nov 22 13:37:03 mail postfix/pickup[5940]: 8C64EA74573: uid=0 from=<root>",
         {.kind = PFLOG_OTHER, .service = "pickup"}},
        {"postsuper -h",
         "Nov 22 13:37:24 mail postfix/postsuper[8093]: 4jXVVp3C8Hz1bckw: placed on hold",
         {.kind = PFLOG_OTHER, .service = "postsuper"}},
        {"postsuper -e",
         "Nov 22 13:41:37 mail postfix/postsuper[20232]: 4jXVbf41W0z1bctm: expired",
         {.kind = PFLOG_OTHER, .service = "postsuper"}},
        {"postsuper: Deleted: (capitalized word, then a colon)",
         "Nov 22 13:37:24 mail postfix/postsuper[8096]: Deleted: 1 message",
         {.kind = PFLOG_OTHER, .service = "postsuper"}},
        {"NOQUEUE reject with to=<> and from=<>",
         "Nov 22 13:37:02 mail postfix/smtpd[5944]: NOQUEUE: reject: RCPT from "
         "localhost[127.0.0.1]: 550 5.1.1 <nosuchuser@mail.example.com>: Recipient address "
         "rejected: User unknown in local recipient table; from=<alice@mail.example.com> "
         "to=<nosuchuser@mail.example.com> proto=ESMTP helo=<client.example.org>",
         {.kind = PFLOG_OTHER, .service = "smtpd"}},
        {"smtpd connect",
         "Nov 22 13:37:01 mail postfix/smtpd[5944]: connect from localhost[127.0.0.1]",
         {.kind = PFLOG_OTHER, .service = "smtpd"}},
        {"smtpd disconnect",
         "Nov 22 13:37:01 mail postfix/smtpd[5944]: disconnect from localhost[127.0.0.1] ehlo=1 "
         "mail=1 rcpt=0/2 quit=1 commands=3/5",
         {.kind = PFLOG_OTHER, .service = "smtpd"}},
        {"TLS",
         "Nov 22 13:42:32 mail postfix/smtpd[21418]: Anonymous TLS connection established from "
         "unknown[::1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange "
         "X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
         {.kind = PFLOG_OTHER, .service = "smtpd"}},
        {"warning",
         "Nov 22 13:41:29 mail postfix/smtp[20059]: warning: 127.0.0.1[127.0.0.1]:38227: response "
         "longer than 2048: 550 5.7.1 xxxxxxxxxxxxxxxxxxxx...",
         {.kind = PFLOG_OTHER, .service = "smtp"}},
        {"warning from bounce",
         "Nov 22 13:37:36 mail postfix/bounce[9480]: warning: please reduce time unit \"hours\" of "
         "\"delay_warning_time_hours\" in delay template",
         {.kind = PFLOG_OTHER, .service = "bounce"}},
        {"anvil statistics",
         "Nov 22 13:37:13 mail postfix/anvil[5994]: statistics: max connection rate 1/60s for "
         "(127.0.0.1:52101:127.0.0.2) at Nov 22 13:37:03",
         {.kind = PFLOG_OTHER, .service = "anvil"}},
        {"postscreen",
         "Nov 22 13:41:30 mail postfix/postscreen[20065]: CONNECT from [127.0.0.1]:33128 to "
         "[127.0.0.1]:36705",
         {.kind = PFLOG_OTHER, .service = "postscreen"}},
        {"postscreen ALLOWLISTED (capitals, no colon)",
         "Nov 22 13:41:30 mail postfix/postscreen[20065]: ALLOWLISTED [127.0.0.1]:33128",
         {.kind = PFLOG_OTHER, .service = "postscreen"}},
        {"master",
         "Nov 22 13:36:58 mail postfix/master[5939]: daemon started -- version 3.7.11, "
         "configuration /etc/postfix",
         {.kind = PFLOG_OTHER, .service = "master"}},
        {"postfix-script",
         "Nov 22 13:36:58 mail postfix/postfix-script[5937]: starting the Postfix mail system",
         {.kind = PFLOG_OTHER, .service = "postfix-script"}},
};

static void
test_real_lines(void **state)
{
	for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++) {
		struct parsed p;

		parse_copy(real_cases[i].line, strlen(real_cases[i].line), &p);
		check_rec(real_cases[i].name, &p, &real_cases[i].want);
		parsed_free(&p);
	}
	check_done();
}

/* ---- the header -------------------------------------------------------------------------- */

static const char base_text[] = "A6BE6A74596: to=<bob@remote.example>, "
                                "relay=127.0.0.1[127.0.0.1]:56413, delay=0.04, "
                                "delays=0.02/0.03/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)";

static const struct {
	const char *name;
	const char *prefix; /* the line is prefix + base_text */
	const char *timestamp, *host, *program, *service;
	long pid;
} header_cases[] = {
        {"maillog_file (postlogd): zero-padded day, first host label",
         "Nov 22 13:37:01 mail postfix/smtp[5948]: ", "Nov 22 13:37:01", "mail", "postfix/smtp",
         "smtp", 5948},
        {"rsyslog traditional: space-padded day", "Nov  2 03:04:05 mx1 postfix/smtp[5948]: ",
         "Nov  2 03:04:05", "mx1", "postfix/smtp", "smtp", 5948},
        {"fraction after the seconds", "Nov 22 13:37:01.123456 mail postfix/smtp[5948]: ",
         "Nov 22 13:37:01.123456", "mail", "postfix/smtp", "smtp", 5948},
        {"rsyslog RFC 3339 (Debian 12 default)",
         "2026-11-22T13:37:01.123456+01:00 mail.example.com postfix/smtp[5948]: ",
         "2026-11-22T13:37:01.123456+01:00", "mail.example.com", "postfix/smtp", "smtp", 5948},
        {"RFC 3339 UTC without fraction", "2026-11-22T12:37:01Z mail postfix/smtp[5948]: ",
         "2026-11-22T12:37:01Z", "mail", "postfix/smtp", "smtp", 5948},
        {"raw syslog(3) datagram: <PRI>, no host", "<22>Nov 22 13:37:01 postfix/smtp[5948]: ",
         "Nov 22 13:37:01", NULL, "postfix/smtp", "smtp", 5948},
        {"<PRI> with a host", "<22>Nov 22 13:37:01 mail postfix/smtp[5948]: ", "Nov 22 13:37:01",
         "mail", "postfix/smtp", "smtp", 5948},
        {"<PRI> before an RFC 3339 time", "<166>2026-11-22T13:37:01+01:00 mail postfix/smtp[1]: ",
         "2026-11-22T13:37:01+01:00", "mail", "postfix/smtp", "smtp", 1},
        {"syslog_name with a slash", "Nov 22 13:37:01 mail postfix/submission/smtp[5948]: ",
         "Nov 22 13:37:01", "mail", "postfix/submission/smtp", "smtp", 5948},
        {"multi-instance syslog_name", "Nov 22 13:37:01 mail postfix-out/relay[42]: ",
         "Nov 22 13:37:01", "mail", "postfix-out/relay", "relay", 42},
        {"no pid", "Nov 22 13:37:01 mail postfix/smtp: ", "Nov 22 13:37:01", "mail", "postfix/smtp",
         "smtp", -1},
        {"IPv6 literal as the host (rsyslog without DNS)",
         "Nov 22 13:37:01 2001:db8::25 postfix/smtp[5948]: ", "Nov 22 13:37:01", "2001:db8::25",
         "postfix/smtp", "smtp", 5948},
};

static void
test_headers(void **state)
{
	for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		const char *name = header_cases[i].name;
		char line[512];
		struct parsed p;

		snprintf(line, sizeof(line), "%s%s", header_cases[i].prefix, base_text);
		parse_copy(line, strlen(line), &p);
		check_bounds(name, &p);
		CHECK_NUM(name, "kind", p.kind, PFLOG_DELIVERY);
		check_field(name, "timestamp", &p.rec.timestamp, header_cases[i].timestamp);
		check_field(name, "host", &p.rec.host, header_cases[i].host);
		check_field(name, "program", &p.rec.program, header_cases[i].program);
		check_field(name, "service", &p.rec.service, header_cases[i].service);
		CHECK_NUM(name, "pid", p.rec.pid, header_cases[i].pid);
		check_field(name, "to", &p.rec.to, "bob@remote.example");
		check_field(name, "status_text", &p.rec.status_text, "250 2.0.0 Ok");
		parsed_free(&p);
	}
	check_done();
}

/* ---- variants of the real lines, as other loggers and transports write them ---------- */

/* Same kind and the same bytes in every message field. */
static void
check_same(const char *name, const struct parsed *a, const struct parsed *b)
{
	const struct pflog_str *sa[NSTRS], *sb[NSTRS];
	const char *names[NSTRS];

	check_bounds(name, b);
	CHECK_NUM(name, "kind", b->kind, a->kind);
	rec_strs(&a->rec, sa, names);
	rec_strs(&b->rec, sb, names);
	for (int i = 2; i < NSTRS; i++) { /* not timestamp and host */
		if (sa[i]->len != sb[i]->len ||
		    (sa[i]->len && memcmp(sa[i]->ptr, sb[i]->ptr, sa[i]->len) != 0)) {
			print_error("%s: %s: got \"%.*s\", want \"%.*s\"\n", name, names[i],
			            (int)sb[i]->len, sb[i]->ptr ? sb[i]->ptr : "", (int)sa[i]->len,
			            sa[i]->ptr ? sa[i]->ptr : "");
			failures++;
		}
	}
	CHECK_NUM(name, "status", b->rec.status, a->rec.status);
	CHECK_NUM(name, "size", b->rec.size, a->rec.size);
	CHECK_NUM(name, "nrcpt", b->rec.nrcpt, a->rec.nrcpt);
	CHECK_NUM(name, "pid", b->rec.pid, a->rec.pid);
}

static void
test_variants(void **state)
{
	for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++) {
		const char *line = real_cases[i].line, *rest;
		char buf[4096], name[256];
		struct parsed a, b;
		int n;

		parse_copy(line, strlen(line), &a);
		/* everything after "Nov 22 13:37:01 mail " */
		rest = strchr(line + 16, ' ') + 1;
		static const struct {
			const char *what, *suffix;
		} forms[] = {
		        {"CR at the end", "\r"},
		        {"CRLF at the end", "\r\n"},
		        {"LF at the end", "\n"},
		};
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			n = snprintf(buf, sizeof(buf), "%s%s", line, forms[f].suffix);
			snprintf(name, sizeof(name), "%s (%s)", real_cases[i].name, forms[f].what);
			parse_copy(buf, (size_t)n, &b);
			check_same(name, &a, &b);
			parsed_free(&b);
		}
		n = snprintf(buf, sizeof(buf), "<22>%.15s %s", line, rest);
		snprintf(name, sizeof(name), "%s (raw datagram)", real_cases[i].name);
		parse_copy(buf, (size_t)n, &b);
		check_same(name, &a, &b);
		check_field(name, "host", &b.rec.host, NULL);
		parsed_free(&b);

		n = snprintf(buf, sizeof(buf), "2026-11-22T%.8s.004211+01:00 mail.example.com %s",
		             line + 7, rest);
		snprintf(name, sizeof(name), "%s (RFC 3339)", real_cases[i].name);
		parse_copy(buf, (size_t)n, &b);
		check_same(name, &a, &b);
		check_field(name, "host", &b.rec.host, "mail.example.com");
		parsed_free(&b);
		parsed_free(&a);
	}
	check_done();
}

/* Shapes this machine did not write, made from a real line the way Postfix would. */
static void
test_synthesized_shapes(void **state)
{
	static const struct {
		const char *name, *line;
		struct want want;
	} cases[] = {
	        {"conn_use= (log_adhoc.c puts it after relay=)",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<bob@remote.example>, "
	         "relay=mx.example.com[2001:db8::1]:25, conn_use=2, delay=0.04, "
	         "delays=0.02/0.03/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4ABC (x))",
	         DLV("smtp", "A6BE6A74596", "bob@remote.example", NULL,
	             "mx.example.com[2001:db8::1]:25", "0.04", "0.02/0.03/0/0", "2.0.0", PFLOG_SENT,
	             "250 2.0.0 Ok: queued as 4ABC (x)")},
	        {"tls= (Postfix 3.10+ logs it before dsn=)",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<bob@remote.example>, "
	         "relay=mx.example.com[192.0.2.1]:25, delay=0.04, delays=0.02/0.03/0/0, "
	         "tls=(may)/(dane)?, dsn=2.0.0, status=sent (250 ok)",
	         DLV("smtp", "A6BE6A74596", "bob@remote.example", NULL,
	             "mx.example.com[192.0.2.1]:25", "0.04", "0.02/0.03/0/0", "2.0.0", PFLOG_SENT,
	             "250 ok")},
	        {"an emoticon: more ')' than '(' in the reply",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<bob@remote.example>, "
	         "relay=mx.example.com[192.0.2.1]:25, delay=0.04, delays=0.02/0.03/0/0, "
	         "dsn=5.0.0, status=bounced (host mx.example.com[192.0.2.1] said: 550 no :) (in "
	         "reply to RCPT TO command))",
	         DLV("smtp", "A6BE6A74596", "bob@remote.example", NULL,
	             "mx.example.com[192.0.2.1]:25", "0.04", "0.02/0.03/0/0", "5.0.0",
	             PFLOG_BOUNCED,
	             "host mx.example.com[192.0.2.1] said: 550 no :) (in reply to RCPT TO "
	             "command)")},
	        {"empty status text",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<bob@remote.example>, "
	         "relay=none, delay=0, delays=0/0/0/0, dsn=4.0.0, status=deferred ()",
	         DLV("smtp", "A6BE6A74596", "bob@remote.example", NULL, "none", "0", "0/0/0/0",
	             "4.0.0", PFLOG_DEFERRED, "")},
	        {"internal address form: unbalanced quote",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<a\"b@remote.example>, "
	         "relay=none, delay=0, delays=0/0/0/0, dsn=4.0.0, status=deferred (x)",
	         DLV("smtp", "A6BE6A74596", "a\"b@remote.example", NULL, "none", "0", "0/0/0/0",
	             "4.0.0", PFLOG_DEFERRED, "x")},
	        {"quoted '>, relay=' inside the address",
	         "Nov 22 13:37:01 mail postfix/smtp[5948]: A6BE6A74596: to=<\"x>, "
	         "relay=evil\"@remote.example>, relay=none, delay=0, delays=0/0/0/0, dsn=4.0.0, "
	         "status=deferred (x)",
	         DLV("smtp", "A6BE6A74596", "\"x>, relay=evil\"@remote.example", NULL, "none", "0",
	             "0/0/0/0", "4.0.0", PFLOG_DEFERRED, "x")},
	        {"an expired status per recipient is read too",
	         "Nov 22 13:37:01 mail postfix/qmgr[5941]: A6BE6A74596: to=<bob@remote.example>, "
	         "relay=none, delay=432000, delays=432000/0/0/0, dsn=4.4.7, status=expired "
	         "(message "
	         "too old)",
	         DLV("qmgr", "A6BE6A74596", "bob@remote.example", NULL, "none", "432000",
	             "432000/0/0/0", "4.4.7", PFLOG_EXPIRED_STATUS, "message too old")},
	        {"message-id with blanks after it",
	         "Nov 22 13:37:01 mail postfix/cleanup[5947]: A6BE6A74596: message-id=<a@b>  ",
	         {.kind = PFLOG_MSGID,
	          .service = "cleanup",
	          .queue_id = "A6BE6A74596",
	          .message_id = "<a@b>"}},
	        {"a very large size",
	         "Nov 22 13:37:01 mail postfix/qmgr[5941]: A6BE6A74596: from=<a@b>, "
	         "size=9223372036854775807, nrcpt=2147483647 (queue active)",
	         {.kind = PFLOG_QUEUED,
	          .service = "qmgr",
	          .queue_id = "A6BE6A74596",
	          .from = "a@b",
	          .size = INT64_MAX,
	          .nrcpt = 2147483647}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed p;

		parse_copy(cases[i].line, strlen(cases[i].line), &p);
		check_rec(cases[i].name, &p, &cases[i].want);
		parsed_free(&p);
	}
	check_done();
}

/* ---- lines that must be PFLOG_OTHER ---------------------------------------------------- */

#define DLV_TAIL                                                                                   \
	"A6BE6A74596: to=<bob@remote.example>, relay=none, delay=0, delays=0/0/0/0, dsn=2.0.0, "   \
	"status=sent (250 ok)"

static const struct {
	const char *name, *line;
} other_cases[] = {
        {"empty", ""},
        {"just a timestamp", "Nov 22 13:37:01"},
        {"dovecot", "Nov 22 13:37:02 mail dovecot: lmtp(ivan)<123><abc>: msgid=<x@y>: saved mail "
                    "to INBOX"},
        {"sshd", "Nov 22 13:37:02 mail sshd[123]: Accepted publickey for root from 192.0.2.7"},
        {"kernel", "Nov 22 13:37:02 mail kernel: [ 123.456] eth0: link up"},
        {"cron, no host", "<78>Nov 22 13:37:02 CRON[99]: (root) CMD (true)"},
        {"program without a slash", "Nov 22 13:37:02 mail postfix[1]: " DLV_TAIL},
        {"program ending in a slash", "Nov 22 13:37:02 mail postfix/[1]: " DLV_TAIL},
        {"program starting with a slash", "Nov 22 13:37:02 mail /smtp[1]: " DLV_TAIL},
        {"no colon after the program", "Nov 22 13:37:02 mail postfix/smtp[1] " DLV_TAIL},
        {"pid not a number", "Nov 22 13:37:02 mail postfix/smtp[1x]: " DLV_TAIL},
        {"empty pid", "Nov 22 13:37:02 mail postfix/smtp[]: " DLV_TAIL},
        {"bad month", "Foo 22 13:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"one-digit hour", "Nov 22 1:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"lower-case month", "nov 22 13:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"bad RFC 3339", "2026-11-22 13:37:02+01:00 mail postfix/smtp[1]: " DLV_TAIL},
        {"RFC 3339 without a zone", "2026-11-22T13:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"PRI too large", "<192>Nov 22 13:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"PRI not closed", "<22Nov 22 13:37:02 mail postfix/smtp[1]: " DLV_TAIL},
        {"two spaces before the host", "Nov 22 13:37:02  mail postfix/smtp[1]: " DLV_TAIL},
        {"NOQUEUE as a queue id", "Nov 22 13:37:02 mail postfix/smtp[1]: NOQUEUE: removed"},
        {"lower-case word as a queue id", "Nov 22 13:37:02 mail postfix/smtp[1]: warning: removed"},
        {"queue id with a dash", "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE-6A74596: removed"},
        {"queue id of 33 characters",
         "Nov 22 13:37:02 mail postfix/qmgr[1]: A23456789012345678901234567890123: removed"},
        {"no space after the queue id",
         "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596:removed"},
        {"removed with more after it",
         "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: removed x"},
        {"to= without '<'",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=bob@x, relay=none, "
         "delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"address never closed",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x relay=none, "
         "delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"no relay=", "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, delay=0, "
                      "delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"empty relay",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=, delay=0, "
         "delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"no delay=", "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
                      "delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"no delays=", "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
                       "delay=0, dsn=2.0.0, status=sent (ok)"},
        {"delay not a number",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
         "delay=soon, delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
        {"bad dsn", "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
                    "delay=0, delays=0/0/0/0, dsn=2.0, status=sent (ok)"},
        {"dsn with letters",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
         "delay=0, delays=0/0/0/0, dsn=2.x.0, status=sent (ok)"},
        {"unknown status",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, "
         "delay=0, delays=0/0/0/0, dsn=2.0.0, status=delivered (ok)"},
        {"undeliverable probe",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, "
         "relay=none, delay=0, delays=0/0/0/0, dsn=5.0.0, status=undeliverable (no)"},
        {"status without text", "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, "
                                "relay=none, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent"},
        {"text after the status text",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, "
         "relay=none, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (ok) x"},
        {"an unclosed '(' in the text: looks cut",
         "Nov 22 13:37:02 mail postfix/smtp[1]: A6BE6A74596: to=<bob@x>, relay=none, delay=0, "
         "delays=0/0/0/0, dsn=5.0.0, status=bounced (550 see (policy)"},
        {"size overflows int64", "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: from=<a@b>, "
                                 "size=9223372036854775808, nrcpt=1 (queue active)"},
        {"nrcpt overflows",
         "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: from=<a@b>, size=1, "
         "nrcpt=2147483648 (queue active)"},
        {"negative size", "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: from=<a@b>, size=-1, "
                          "nrcpt=1 (queue active)"},
        {"queue active misspelt", "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: from=<a@b>, "
                                  "size=1, nrcpt=1 (queue activ)"},
        {"expired with more after it",
         "Nov 22 13:37:02 mail postfix/qmgr[1]: A6BE6A74596: from=<a@b>, "
         "status=expired, returned to sender."},
        {"message-id not closed",
         "Nov 22 13:37:02 mail postfix/cleanup[1]: A6BE6A74596: message-id=<a@b"},
        {"message-id empty", "Nov 22 13:37:02 mail postfix/cleanup[1]: A6BE6A74596: message-id="},
        {"bounce id not a queue id", "Nov 22 13:37:02 mail postfix/bounce[1]: A6BE6A74596: sender "
                                     "non-delivery notification: A98F-8A74481"},
        {"bounce id missing", "Nov 22 13:37:02 mail postfix/bounce[1]: A6BE6A74596: sender "
                              "non-delivery notification: "},
};

static void
test_other_lines(void **state)
{
	for (size_t i = 0; i < sizeof(other_cases) / sizeof(other_cases[0]); i++) {
		struct parsed p;

		parse_copy(other_cases[i].line, strlen(other_cases[i].line), &p);
		check_bounds(other_cases[i].name, &p);
		CHECK_NUM(other_cases[i].name, "kind", p.kind, PFLOG_OTHER);
		/* nothing of a message shape is left behind in an OTHER record */
		check_field(other_cases[i].name, "to", &p.rec.to, NULL);
		check_field(other_cases[i].name, "relay", &p.rec.relay, NULL);
		check_field(other_cases[i].name, "from", &p.rec.from, NULL);
		CHECK_NUM(other_cases[i].name, "status", p.rec.status, PFLOG_STATUS_NONE);
		CHECK_NUM(other_cases[i].name, "size", p.rec.size, -1);
		parsed_free(&p);
	}
	{
		struct pflog_rec rec;
		CHECK_NUM("NULL line", "kind", pflog_parse(NULL, 0, &rec), PFLOG_OTHER);
	}
	check_done();
}

/* ---- cut lines --------------------------------------------------------------------------- */

/*
 * Every proper prefix of every recognized line is PFLOG_OTHER, with one documented
 * exception: a BOUNCE line ends in the new queue id, and a cut inside it cannot be seen
 * (the prefix parses with bounce_queue_id a prefix of the real one).
 */
static void
test_every_cut(void **state)
{
	for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++) {
		const char *line = real_cases[i].line;
		size_t len = strlen(line);
		struct parsed full;

		if (real_cases[i].want.kind == PFLOG_OTHER)
			continue;
		parse_copy(line, len, &full);
		for (size_t n = 0; n < len; n++) {
			struct parsed p;
			char name[300];

			snprintf(name, sizeof(name), "%s, cut to %zu of %zu", real_cases[i].name, n,
			         len);
			parse_copy(line, n, &p);
			check_bounds(name, &p);
			if (p.kind == PFLOG_BOUNCE && full.kind == PFLOG_BOUNCE &&
			    p.rec.bounce_queue_id.len < full.rec.bounce_queue_id.len &&
			    memcmp(p.rec.bounce_queue_id.ptr, full.rec.bounce_queue_id.ptr,
			           p.rec.bounce_queue_id.len) == 0) {
				parsed_free(&p);
				continue;
			}
			CHECK_NUM(name, "kind", p.kind, PFLOG_OTHER);
			parsed_free(&p);
		}
		parsed_free(&full);
	}
	check_done();
}

/* ---- long replies and Postfix's own 2000-byte cut ------------------------------------- */

static void
test_long_replies(void **state)
{
	char reply[2048], line[4096];
	size_t r = 0;
	struct parsed p;
	int n;

	/* The 1300-byte reply smtp-sink gave (heidi@long.example in the sample). */
	r = (size_t)snprintf(reply, sizeof(reply), "550 5.7.1");
	for (int i = 0; i < 16; i++)
		r += (size_t)snprintf(reply + r, sizeof(reply) - r,
		                      " Message rejected by policy (rule %d, see "
		                      "https://www.example.org/policy?id=%d&x=(a,b))",
		                      i, i);
	n = snprintf(
	        line, sizeof(line),
	        "Nov 22 13:37:02 mail postfix/smtp[5948]: C53ADA7447E: to=<heidi@long.example>, "
	        "relay=127.0.0.1[127.0.0.1]:38943, delay=0.01, delays=0/0/0/0, dsn=5.7.1, "
	        "status=bounced (host 127.0.0.1[127.0.0.1] said: %s (in reply to RCPT TO "
	        "command))",
	        reply);
	CHECK_NUM("long reply", "line length", n, 1612);
	parse_copy(line, (size_t)n, &p);
	check_bounds("long reply", &p);
	CHECK_NUM("long reply", "kind", p.kind, PFLOG_DELIVERY);
	CHECK_NUM("long reply", "status", p.rec.status, PFLOG_BOUNCED);
	CHECK_NUM("long reply", "status_text length", (long long)p.rec.status_text.len,
	          (long long)(strlen("host 127.0.0.1[127.0.0.1] said: ") + r +
	                      strlen(" (in reply to RCPT TO command)")));
	parsed_free(&p);

	/*
	 * A 3000-byte reply: Postfix cuts the record to 2000 bytes of text, so the line has
	 * no closing parenthesis (huge@huge.example in the sample, 2042 bytes).
	 */
	{
		const char *head = "Nov 22 13:41:29 mail postfix/smtp[20059]: ";
		const char *text =
		        "D3D46A747A8: to=<huge@huge.example>, "
		        "relay=127.0.0.1[127.0.0.1]:38227, delay=0.04, delays=0/0.03/0/0, "
		        "dsn=5.7.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 "
		        "5.7.1 ";
		size_t h = strlen(head), t = strlen(text);

		memcpy(line, head, h);
		memcpy(line + h, text, t);
		memset(line + h + t, 'x', 2000 - t);
		parse_copy(line, h + 2000, &p);
		check_bounds("cut at 2000", &p);
		CHECK_NUM("cut at 2000", "kind", p.kind, PFLOG_DELIVERY);
		CHECK_NUM("cut at 2000", "status", p.rec.status, PFLOG_BOUNCED);
		check_field("cut at 2000", "to", &p.rec.to, "huge@huge.example");
		CHECK_NUM("cut at 2000", "status_text length", (long long)p.rec.status_text.len,
		          (long long)(2000 - t +
		                      strlen("host 127.0.0.1[127.0.0.1] said: 550 5.7.1 ")));
		parsed_free(&p);
		/* one byte less or more is not Postfix's cut: a broken line */
		parse_copy(line, h + 1999, &p);
		CHECK_NUM("cut at 1999", "kind", p.kind, PFLOG_OTHER);
		parsed_free(&p);
		line[h + 2000] = 'x';
		parse_copy(line, h + 2001, &p);
		CHECK_NUM("2001 bytes, unclosed", "kind", p.kind, PFLOG_OTHER);
		parsed_free(&p);
		/* with a CR after it (a CRLF log) it is still Postfix's cut */
		line[h + 2000] = '\r';
		parse_copy(line, h + 2001, &p);
		CHECK_NUM("cut at 2000 + CR", "kind", p.kind, PFLOG_DELIVERY);
		parsed_free(&p);
	}
	check_done();
}

/* ---- the captured sample log ----------------------------------------------------------- */

static char *
sample_path(void)
{
	const char *dir = getenv("MSGSTATUS_SOURCE_DIR");
	static const char rel[] = "tests/data/maillog-sample.txt";
	char *path;

	if (dir != NULL) {
		path = malloc(strlen(dir) + sizeof(rel) + 1);
		assert_non_null(path);
		sprintf(path, "%s/%s", dir, rel);
		return path;
	}
	/* __FILE__ is .../tests/unit/test_pflog.c: the data is in .../tests/data/ */
	path = malloc(strlen(__FILE__) + sizeof(rel));
	assert_non_null(path);
	strcpy(path, __FILE__);
	{
		char *cut = strstr(path, "tests/unit/test_pflog.c");
		assert_non_null(cut);
		strcpy(cut, rel);
	}
	return path;
}

static void
test_sample_log(void **state)
{
	static const long want[] = {
	        [PFLOG_OTHER] = 280, [PFLOG_DELIVERY] = 154, [PFLOG_QUEUED] = 148,
	        [PFLOG_EXPIRED] = 5, [PFLOG_REMOVED] = 104,  [PFLOG_MSGID] = 104,
	        [PFLOG_BOUNCE] = 32,
	};
	static const long want_status[] = {
	        [PFLOG_SENT] = 90,
	        [PFLOG_DEFERRED] = 53,
	        [PFLOG_BOUNCED] = 11,
	        [PFLOG_EXPIRED_STATUS] = 0,
	};
	long got[7] = {0}, got_status[5] = {0}, lines = 0;
	char *path = sample_path(), buf[8192];
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		print_error("cannot open %s\n", path);
		free(path);
		fail();
	}
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		size_t len = strlen(buf);
		struct parsed p, q;
		char name[64];

		if (len > 0 && buf[len - 1] == '\n')
			len--;
		lines++;
		snprintf(name, sizeof(name), "%s:%ld", "maillog-sample.txt", lines);
		parse_copy(buf, len, &p);
		check_bounds(name, &p);
		got[p.kind]++;
		if (p.kind == PFLOG_DELIVERY)
			got_status[p.rec.status]++;
		if (p.kind == PFLOG_DELIVERY || p.kind == PFLOG_EXPIRED) {
			CHECK_NUM(name, "time", pflog_time(&p.rec.timestamp, 1795351200000) > 0, 1);
		}
		/* cut in half: nothing */
		parse_copy(buf, len / 2, &q);
		CHECK_NUM(name, "kind of the first half", q.kind, PFLOG_OTHER);
		parsed_free(&q);
		/* with the whole line still there plus CRLF: the same */
		memcpy(buf + len, "\r\n", 2);
		parse_copy(buf, len + 2, &q);
		check_same(name, &p, &q);
		parsed_free(&q);
		parsed_free(&p);
	}
	fclose(fp);
	free(path);
	CHECK_NUM("sample", "lines", lines, 827);
	for (int k = 0; k < 7; k++)
		CHECK_NUM("sample", kind_names[k], got[k], want[k]);
	CHECK_NUM("sample", "sent", got_status[PFLOG_SENT], want_status[PFLOG_SENT]);
	CHECK_NUM("sample", "deferred (incl. SOFTBOUNCE)", got_status[PFLOG_DEFERRED],
	          want_status[PFLOG_DEFERRED]);
	CHECK_NUM("sample", "bounced", got_status[PFLOG_BOUNCED], want_status[PFLOG_BOUNCED]);
	check_done();
}

/* ---- pflog_time --------------------------------------------------------------------------- */

static int64_t
time_of(const char *ts, int64_t now_ms)
{
	struct pflog_str s;
	char *copy = malloc(strlen(ts) + 1);
	int64_t t;

	assert_non_null(copy);
	memcpy(copy, ts, strlen(ts)); /* no NUL: pflog_time must honour len */
	s.ptr = copy;
	s.len = strlen(ts);
	t = pflog_time(&s, now_ms);
	free(copy);
	return t;
}

/* Expected values computed with Python's zoneinfo (Europe/Berlin). */
static void
test_time(void **state)
{
	static const struct {
		const char *name, *ts;
		int64_t now, want;
	} cases[] = {
	        {"same day", "Nov 22 13:37:01", 1795351200000, 1795351021000},
	        {"zero-padded day", "Nov 02 03:04:05", 1795351200000, 1793585045000},
	        {"space-padded day", "Nov  2 03:04:05", 1795351200000, 1793585045000},
	        {"fraction: ms", "Nov 22 13:37:01.123456", 1795351200000, 1795351021123},
	        {"fraction: one digit", "Nov 22 13:37:01.1", 1795351200000, 1795351021100},
	        {"less than a day ahead: this year", "Nov 23 12:00:00", 1795351200000,
	         1795431600000},
	        {"more than a day ahead: last year", "Nov 24 12:00:00", 1795351200000,
	         1763982000000},
	        {"Dec 31 read on Jan 1", "Dec 31 23:59:59", 1798758030000, 1798757999000},
	        {"Jan 1 read on Dec 31 (clock skew): next year", "Jan  1 00:01:00", 1798757940000,
	         1798758060000},
	        {"Feb 29 in a common year: the last leap year", "Feb 29 12:00:00", 1803898800000,
	         1709204400000},
	        {"Feb 29 in a leap year", "Feb 29 12:00:00", 1835427600000, 1835434800000},
	        {"summer time (CEST)", "Jul 15 12:00:00", 1795351200000, 1784109600000},
	        {"winter time (CET)", "Jan 15 12:00:00", 1795351200000, 1768474800000},
	        {"RFC 3339 with offset", "2026-11-22T12:00:00.123456+01:00", 0, 1795345200123},
	        {"RFC 3339 UTC", "2026-11-22T12:37:01Z", 0, 1795351021000},
	        {"day 32", "Nov 32 00:00:00", 1795351200000, -1},
	        {"day 0", "Nov 00 00:00:00", 1795351200000, -1},
	        {"hour 24", "Nov 22 24:00:00", 1795351200000, -1},
	        {"minute 60", "Nov 22 23:60:00", 1795351200000, -1},
	        {"Feb 30", "Feb 30 12:00:00", 1795351200000, -1},
	        {"bad month", "Xyz 22 12:00:00", 1795351200000, -1},
	        {"trailing text", "Nov 22 12:00:00 x", 1795351200000, -1},
	        {"cut", "Nov 22 12:00:0", 1795351200000, -1},
	        {"empty", "", 1795351200000, -1},
	        {"RFC 3339 month 13", "2026-13-22T12:00:00Z", 0, -1},
	        {"RFC 3339 without zone", "2026-11-22T12:00:00.123", 0, -1},
	};
	char *old_tz = getenv("TZ") ? strdup(getenv("TZ")) : NULL;

	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_NUM(cases[i].name, cases[i].ts, time_of(cases[i].ts, cases[i].now),
		          cases[i].want);
	{
		struct pflog_str none = {NULL, 0};
		CHECK_NUM("NULL timestamp", "pflog_time", pflog_time(&none, 0), -1);
		CHECK_NUM("NULL pointer", "pflog_time", pflog_time(NULL, 0), -1);
	}
	/* The timestamp a parse returns is what pflog_time reads. */
	{
		struct parsed p;
		const char *line = real_cases[0].line;
		parse_copy(line, strlen(line), &p);
		CHECK_NUM("parsed timestamp", "pflog_time",
		          pflog_time(&p.rec.timestamp, 1795351200000), 1795351021000);
		parsed_free(&p);
	}
	if (old_tz) {
		setenv("TZ", old_tz, 1);
		free(old_tz);
	} else {
		unsetenv("TZ");
	}
	tzset();
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_real_lines),   cmocka_unit_test(test_headers),
	        cmocka_unit_test(test_variants),     cmocka_unit_test(test_synthesized_shapes),
	        cmocka_unit_test(test_other_lines),  cmocka_unit_test(test_every_cut),
	        cmocka_unit_test(test_long_replies), cmocka_unit_test(test_sample_log),
	        cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
