/*
 * test_pfevent - unit tests for logd/pfevent (a Postfix log line -> a msgstatus event).
 *
 * The lines are real ones from tests/data/maillog-sample.txt (Postfix 3.7.11). Each event
 * made is read back with msevent_parse(), the way statusd reads it, and its fields are
 * checked: the type for every delivery service and status (delivered_services, relayed,
 * forwarded, discard, deferred, bounced, qmgr's message-level expiry without a recipient),
 * the details, the Message-ID from the cleanup line, foreign programs (syslog_names), an id
 * that is the same when the line is read again and differs for another line, and the
 * Message-ID cache row by row (eviction, a queue id logged again, kept across a reload).
 * The whole sample log is also run through, counting the events per type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "mbuf.h"
#include "msevent.h"
#include "pfevent.h"

#include "check.h"

#define NOW_MS 1795354800000LL /* 2026-11-22T13:40:00Z: the sample's lines are just before */

struct made {
	struct mbuf out;
	struct msevent ev;
	struct json_tokener *tok;
};

/* Feed one line; parse the event it made (the test fails if it made none). */
static void
make(struct pfevent *pe, const char *line, struct made *m)
{
	const char *error = NULL;

	mbuf_reset(&m->out);
	msevent_clear(&m->ev);
	assert_int_equal(pfevent_line(pe, line, strlen(line), NOW_MS, &m->out), 1);
	assert_true(m->out.len > 1 && m->out.data[m->out.len - 1] == '\n');
	if (msevent_parse(&m->ev, m->tok, m->out.data, m->out.len - 1, &error) < 0)
		fail_msg("event does not parse: %s: %s", error, mbuf_str(&m->out));
}

static void
none(struct pfevent *pe, const char *line)
{
	struct mbuf out = MBUF_INIT;

	assert_int_equal(pfevent_line(pe, line, strlen(line), NOW_MS, &out), 0);
	assert_int_equal(out.len, 0);
	mbuf_free(&out);
}

static const char *
detail(const struct msevent *ev, const char *key)
{
	struct json_object *v;

	if (ev->details == NULL || !json_object_object_get_ex(ev->details, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static int
setup(void **state)
{
	struct made *m = calloc(1, sizeof(*m));

	msevent_init(&m->ev);
	m->tok = msevent_tokener_new();
	*state = m;
	return 0;
}

static int
teardown(void **state)
{
	struct made *m = *state;

	msevent_clear(&m->ev);
	json_tokener_free(m->tok);
	mbuf_free(&m->out);
	free(m);
	return 0;
}

static const char LMTP_MSGID[] = "Nov 22 13:37:02 mail postfix/cleanup[5947]: D95D0A7447E: "
                                 "message-id=<20261122133702.005981@client.example.org>";
static const char LMTP_SENT[] =
        "Nov 22 13:37:02 mail postfix/lmtp[5982]: D95D0A7447E: to=<ivan@lmtp.example>, "
        "relay=127.0.0.1[127.0.0.1]:41941, delay=0.03, delays=0/0.03/0.01/0, dsn=2.2.0, "
        "status=sent (250 2.2.0 Ok)";
static const char LMTP_SENT2[] =
        "Nov 22 13:37:02 mail postfix/lmtp[5982]: D95D0A7447E: to=<judy@lmtp.example>, "
        "relay=127.0.0.1[127.0.0.1]:41941, delay=0.03, delays=0/0.03/0.01/0, dsn=2.2.0, "
        "status=sent (250 2.2.0 Ok)";

static void
test_delivered_and_relayed(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp, local virtual", "postfix", 16);
	struct pfevent_stats st;

	none(pe, LMTP_MSGID);
	make(pe, LMTP_SENT, m);
	assert_int_equal(m->ev.type, MSEV_DELIVERED);
	assert_string_equal(m->ev.source, "postfix");
	assert_string_equal(m->ev.queue_id, "D95D0A7447E");
	assert_string_equal(m->ev.recipient, "ivan@lmtp.example");
	assert_string_equal(m->ev.message_id, "<20261122133702.005981@client.example.org>");
	assert_null(m->ev.tracking_id);
	assert_string_equal(detail(&m->ev, "mta"), "127.0.0.1[127.0.0.1]:41941");
	assert_string_equal(detail(&m->ev, "dsn"), "2.2.0");
	assert_string_equal(detail(&m->ev, "smtp_reply"), "250 2.2.0 Ok");
	assert_string_equal(detail(&m->ev, "delays"), "0/0.03/0.01/0");
	assert_string_equal(detail(&m->ev, "service"), "lmtp");
	assert_int_equal(m->ev.time_ms, NOW_MS - (2 * 60 + 58) * 1000); /* 13:37:02 UTC */
	pfevent_free(&pe);

	/* the same line, with lmtp not a delivering service: a remote server took it */
	pe = pfevent_new("local", "postfix", 16);
	make(pe, LMTP_SENT, m);
	assert_int_equal(m->ev.type, MSEV_RELAYED);
	assert_null(m->ev.message_id); /* no cleanup line seen by this one */
	make(pe,
	     "Nov 22 13:37:02 mail postfix/smtp[5963]: 3F0E6A7447B: to=<bob@remote.example>, "
	     "relay=127.0.0.1[127.0.0.1]:40467, delay=0.06, delays=0.01/0.01/0.02/0.02, "
	     "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4C1A2A74452)",
	     m);
	assert_int_equal(m->ev.type, MSEV_RELAYED);
	assert_string_equal(detail(&m->ev, "smtp_reply"), "250 2.0.0 Ok: queued as 4C1A2A74452");
	pfevent_stats(pe, &st);
	assert_int_equal(st.lines, 2);
	assert_int_equal(st.events, 2);
	pfevent_free(&pe);
}

static void
test_forwarded_discarded_deferred_bounced(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp, local, virtual", "postfix", 16);

	/* local(8) delivered it to a .forward: handed on under a new queue id */
	make(pe,
	     "Nov 22 13:37:02 mail postfix/local[5968]: 44245A74452: "
	     "to=<info@mail.example.com>, relay=local, delay=0.05, delays=0/0.04/0/0, "
	     "dsn=2.0.0, status=sent (forwarded as 4EEE3A7447B)",
	     m);
	assert_int_equal(m->ev.type, MSEV_RELAYED);
	/* local(8) into a mailbox file */
	make(pe,
	     "Nov 22 13:37:02 mail postfix/local[5968]: 44245A74452: "
	     "to=<mary@mail.example.com>, relay=local, delay=0.05, delays=0/0.04/0/0, "
	     "dsn=2.0.0, status=sent (delivered to mailbox)",
	     m);
	assert_int_equal(m->ev.type, MSEV_DELIVERED);
	make(pe,
	     "Nov 22 13:37:03 mail postfix/discard[5985]: 0752DA74597: "
	     "to=<oscar@discard.example>, relay=none, delay=0.02, delays=0/0.02/0/0, "
	     "dsn=2.0.0, status=sent (silently discarded)",
	     m);
	assert_int_equal(m->ev.type, MSEV_BOUNCED);
	make(pe,
	     "Nov 22 13:37:05 mail postfix/smtp[6001]: 4jXVVh3qWBz1bck1: to=<d@slow.example>, "
	     "relay=127.0.0.1[127.0.0.1]:40467, delay=0.1, delays=0/0/0.05/0.05, dsn=4.3.0, "
	     "status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.3.0 try again (in reply "
	     "to RCPT TO command))",
	     m);
	assert_int_equal(m->ev.type, MSEV_DEFERRED);
	assert_string_equal(detail(&m->ev, "smtp_reply"), "451 4.3.0 try again");
	assert_string_equal(detail(&m->ev, "postfix_reply"),
	                    "host 127.0.0.1[127.0.0.1] said: 451 4.3.0 try again (in reply to RCPT "
	                    "TO command)");
	make(pe,
	     "Nov 22 13:37:05 mail postfix/smtp[6001]: 4jXVVh3qWBz1bck1: to=<x@picky.example>, "
	     "orig_to=<X@Picky.example>, relay=127.0.0.1[127.0.0.1]:40468, delay=0.1, "
	     "delays=0/0/0.05/0.05, dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: "
	     "550 5.1.1 no such user (in reply to RCPT TO command))",
	     m);
	assert_int_equal(m->ev.type, MSEV_BOUNCED);
	assert_string_equal(m->ev.orig_recipient, "X@Picky.example");
	assert_string_equal(detail(&m->ev, "dsn"), "5.1.1");
	pfevent_free(&pe);
}

static void
test_expiry_is_message_level(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 16);

	make(pe,
	     "Nov 22 13:38:18 mail postfix/qmgr[9462]: EBC67A7447E: "
	     "from=<alice@mail.example.com>, status=expired, returned to sender",
	     m);
	assert_int_equal(m->ev.type, MSEV_EXPIRED);
	assert_string_equal(m->ev.queue_id, "EBC67A7447E");
	assert_null(m->ev.recipient);
	assert_string_equal(detail(&m->ev, "service"), "qmgr");
	/* queue active, removed, bounce notices make no event */
	none(pe, "Nov 22 13:37:02 mail postfix/qmgr[5941]: D95D0A7447E: "
	         "from=<alice@mail.example.com>, size=395, nrcpt=2 (queue active)");
	none(pe, "Nov 22 13:37:02 mail postfix/qmgr[5941]: D95D0A7447E: removed");
	none(pe,
	     "Nov 22 13:37:02 mail postfix/smtpd[5944]: D95D0A7447E: client=localhost[127.0.0.1]");
	pfevent_free(&pe);
}

static void
test_foreign_programs_are_ignored(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix, postfix-out", 16);
	struct pfevent_stats st;
	char line[512];

	/* a forged line from another program that looks like Postfix's */
	snprintf(line, sizeof(line), "%s", LMTP_SENT);
	memcpy(strstr(line, "postfix/lmtp"), "evilfix/lmtp", 12);
	none(pe, line);
	/* a second instance's syslog_name, and a service with its own syslog_name */
	memcpy(strstr(line, "evilfix/lmtp"), "postfix-out/", 12);
	none(pe, line); /* "postfix-out/" + "[pid]": no service left, not a Postfix line */
	make(pe,
	     "Nov 22 13:37:02 mail postfix-out/smtp[5982]: D95D0A7447E: to=<a@b.example>, "
	     "relay=127.0.0.1[127.0.0.1]:25, delay=0.03, delays=0/0.03/0.01/0, dsn=2.0.0, "
	     "status=sent (250 2.0.0 Ok)",
	     m);
	make(pe,
	     "Nov 22 13:37:02 mail postfix/submission/smtp[5982]: D95D0A7447E: "
	     "to=<a@b.example>, relay=127.0.0.1[127.0.0.1]:25, delay=0.03, "
	     "delays=0/0.03/0.01/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	     m);
	pfevent_stats(pe, &st);
	assert_int_equal(st.foreign, 1);
	pfevent_free(&pe);
	/* an empty list takes any program */
	pe = pfevent_new("lmtp", "", 16);
	snprintf(line, sizeof(line), "%s", LMTP_SENT);
	memcpy(strstr(line, "postfix/lmtp"), "evilfix/lmtp", 12);
	make(pe, line, m);
	pfevent_free(&pe);
}

static void
test_ids_are_stable_per_line(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 16);
	char first[64], again[64];

	make(pe, LMTP_SENT, m);
	assert_int_equal(strlen(m->ev.id), 28);
	assert_memory_equal(m->ev.id, "pf", 2);
	snprintf(first, sizeof(first), "%s", m->ev.id);
	make(pe, LMTP_SENT, m);
	snprintf(again, sizeof(again), "%s", m->ev.id);
	assert_string_equal(first, again);
	make(pe, LMTP_SENT2, m);
	assert_string_not_equal(first, m->ev.id);
	pfevent_free(&pe);
}

static void
test_message_id_cache_is_bounded(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 2);
	char line[256];

	none(pe, LMTP_MSGID);
	for (int i = 0; i < 2; i++) {
		snprintf(line, sizeof(line),
		         "Nov 22 13:37:02 mail postfix/cleanup[5947]: A%dB: message-id=<%d@x>", i,
		         i);
		none(pe, line);
	}
	make(pe, LMTP_SENT, m);
	assert_null(m->ev.message_id); /* pushed out by the two newer ones */
	make(pe,
	     "Nov 22 13:37:02 mail postfix/smtp[1]: A1B: to=<a@b.example>, relay=none, "
	     "delay=0.03, delays=0/0.03/0.01/0, dsn=2.0.0, status=sent (250 Ok)",
	     m);
	assert_string_equal(m->ev.message_id, "<1@x>");
	pfevent_free(&pe);
}

/*
 * The cache, row by row, with room for three queue ids: a queue id logged again takes the
 * newer Message-ID and becomes the newest (so another goes first), the oldest goes when a
 * fourth comes, and a reload (pfevent_configure) keeps what is cached.
 */
static const struct {
	char op; /* 'p': cleanup logs msgid for qid; 'g': a delivery of qid; 'r': reload */
	const char *qid, *msgid; /* 'g': the Message-ID the event must carry, NULL: none */
} cache_rows[] = {
        {'g', "A1", NULL},     {'p', "A1", "<1@x>"},  {'g', "A1", "<1@x>"},
        {'p', "A2", "<2@x>"},  {'p', "A3", "<3@x>"},  {'g', "A2", "<2@x>"},
        {'p', "A1", "<1b@x>"},                       /* A1 again: the newest now, A2 the oldest */
        {'g', "A1", "<1b@x>"}, {'p', "A4", "<4@x>"}, /* a fourth: A2 goes */
        {'g', "A2", NULL},     {'g', "A1", "<1b@x>"}, {'g', "A3", "<3@x>"},
        {'g', "A4", "<4@x>"},  {'r', NULL, NULL}, /* SIGHUP */
        {'g', "A1", "<1b@x>"}, {'g', "A3", "<3@x>"},  {'g', "A4", "<4@x>"},
        {'p', "A5", "<5@x>"}, /* the cache still holds three: A3 goes */
        {'g', "A3", NULL},     {'g', "A5", "<5@x>"},
};

static void
test_message_id_cache_rows(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 3);
	char line[300], what[64];

	for (size_t i = 0; i < sizeof(cache_rows) / sizeof(cache_rows[0]); i++) {
		snprintf(what, sizeof(what), "row %zu: %c %s", i, cache_rows[i].op,
		         cache_rows[i].qid ? cache_rows[i].qid : "");
		switch (cache_rows[i].op) {
		case 'p':
			snprintf(line, sizeof(line),
			         "Nov 22 13:37:02 mail postfix/cleanup[5947]: %s: message-id=%s",
			         cache_rows[i].qid, cache_rows[i].msgid);
			none(pe, line);
			break;
		case 'g':
			snprintf(line, sizeof(line),
			         "Nov 22 13:37:02 mail postfix/lmtp[5982]: %s: "
			         "to=<ivan@lmtp.example>, "
			         "relay=127.0.0.1[127.0.0.1]:41941, delay=0.03, "
			         "delays=0/0.03/0.01/0, dsn=2.2.0, status=sent (250 2.2.0 Ok %zu)",
			         cache_rows[i].qid, i);
			make(pe, line, m);
			CHECK_STR(what, m->ev.message_id, cache_rows[i].msgid);
			break;
		case 'r':
			pfevent_configure(pe, "lmtp", "postfix");
			break;
		}
	}
	pfevent_free(&pe);
	check_done();
}

/* A reload takes the new names: a program no longer listed is foreign. */
static void
test_configure_takes_new_names(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 16);

	none(pe, LMTP_MSGID);
	make(pe, LMTP_SENT, m);
	assert_int_equal(m->ev.type, MSEV_DELIVERED);
	pfevent_configure(pe, "local", "postfix");
	make(pe, LMTP_SENT2, m);
	assert_int_equal(m->ev.type, MSEV_RELAYED); /* lmtp no longer delivers here */
	assert_string_equal(m->ev.message_id, "<20261122133702.005981@client.example.org>");
	pfevent_configure(pe, "local", "postfix-out");
	none(pe, LMTP_SENT);
	pfevent_free(&pe);
}

/* A reply with broken UTF-8 and control bytes still makes an event statusd accepts (make()
   parses it), with '?' for each bad byte; a reply cut at TEXT_MAX is marked "...". */
static void
test_odd_bytes_in_details(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp", "postfix", 16);
	char line[3000];

	make(pe,
	     "Nov 22 13:37:02 mail postfix/smtp[5948]: 8FDCBA74452: to=<frank@defer.example>, "
	     "relay=mx\xe9[192.0.2.1]:25, delay=0.03, delays=0/0/0/0.02, dsn=4.7.1, "
	     "status=deferred (451 4.7.1 Grau\xdf"
	     "er \x01"
	     "Fehler \xe2\x9c\x93)",
	     m);
	assert_int_equal(m->ev.type, MSEV_DEFERRED);
	assert_string_equal(detail(&m->ev, "mta"), "mx?[192.0.2.1]:25");
	assert_string_equal(detail(&m->ev, "smtp_reply"), "451 4.7.1 Grau?er ?Fehler \u2713");

	snprintf(line, sizeof(line),
	         "Nov 22 13:37:02 mail postfix/smtp[5948]: 8FDCBA74452: to=<frank@defer.example>, "
	         "relay=none, delay=0, delays=0/0/0/0, dsn=4.4.1, status=deferred (%.2500d)",
	         0);
	make(pe, line, m);
	assert_null(detail(&m->ev, "smtp_reply")); /* "000...": no reply code */
	assert_int_equal(strlen(detail(&m->ev, "postfix_reply")), 2000);
	assert_string_equal(detail(&m->ev, "postfix_reply") + 1997, "...");
	pfevent_free(&pe);
}

/*
 * smtp_reply in RFC 8621's form, postfix_reply as logged: the shapes Postfix 3.7 and 3.10
 * log for smtp(8) and lmtp(8). want NULL: no smtp_reply in the details.
 */
static void
test_reply_forms(void **state)
{
#define LINE(svc, rcpt, dsn, status, text)                                                         \
	"Nov 22 13:37:05 mail postfix/" svc "[6001]: 4jXVVh3qWBz1bck1: to=<" rcpt ">, "            \
	"relay=mx.remote.example[192.0.2.1]:25, delay=0.1, delays=0/0/0.05/0.05, dsn=" dsn         \
	", status=" status " (" text ")"
	static const struct {
		const char *line, *postfix, *want;
	} cases[] = {
	        {LINE("smtp", "a@remote.example", "5.1.1", "bounced",
	              "host mx.remote.example[192.0.2.1] said: 550 5.1.1 <a@remote.example>: "
	              "Recipient address rejected: User unknown in virtual mailbox table (in reply "
	              "to RCPT TO command)"),
	         "host mx.remote.example[192.0.2.1] said: 550 5.1.1 <a@remote.example>: Recipient "
	         "address rejected: User unknown in virtual mailbox table (in reply to RCPT TO "
	         "command)",
	         "550 5.1.1 <a@remote.example>: Recipient address rejected: User unknown in "
	         "virtual "
	         "mailbox table"},
	        {LINE("smtp", "g@remote.example", "4.7.1", "deferred",
	              "host mx.remote.example[192.0.2.1] said: 450 4.7.1 <g@remote.example>: "
	              "Recipient address rejected: Greylisted for 300 seconds (in reply to RCPT TO "
	              "command)"),
	         NULL,
	         "450 4.7.1 <g@remote.example>: Recipient address rejected: Greylisted for 300 "
	         "seconds"},
	        {LINE("smtp", "c@remote.example", "4.4.1", "deferred",
	              "connect to mx.remote.example[192.0.2.1]:25: Connection refused"),
	         "connect to mx.remote.example[192.0.2.1]:25: Connection refused", NULL},
	        {LINE("smtp", "l@remote.example", "4.4.2", "deferred",
	              "lost connection with mx.remote.example[192.0.2.1] while receiving the "
	              "initial server greeting"),
	         "lost connection with mx.remote.example[192.0.2.1] while receiving the initial "
	         "server greeting",
	         NULL},
	        {LINE("smtp", "s@remote.example", "4.4.1", "deferred",
	              "delivery temporarily suspended: connect to mx.remote.example[192.0.2.1]:25: "
	              "Connection refused"),
	         NULL, NULL},
	        {LINE("lmtp", "x@example.com", "5.1.1", "bounced",
	              "host mail.example.com[private/dovecot-lmtp] said: 550 5.1.1 <x@example.com> "
	              "User doesn't exist: x@example.com (in reply to RCPT TO command)"),
	         NULL, "550 5.1.1 <x@example.com> User doesn't exist: x@example.com"},
	        {LINE("lmtp", "b@example.com", "2.0.0", "sent",
	              "250 2.0.0 <b@example.com> 3B4cJm5yR2VpBgAAGDd0ZQ Saved"),
	         "250 2.0.0 <b@example.com> 3B4cJm5yR2VpBgAAGDd0ZQ Saved",
	         "250 2.0.0 <b@example.com> 3B4cJm5yR2VpBgAAGDd0ZQ Saved"},
	        {LINE("smtp", "q@remote.example", "2.0.0", "sent",
	              "250 2.0.0 Ok: queued as 4C1A2A7"),
	         NULL, "250 2.0.0 Ok: queued as 4C1A2A7"},
	        {LINE("smtp", "m@gmail.example", "5.1.1", "bounced",
	              "host mx.remote.example[192.0.2.1] said: 550-5.1.1 The email account that "
	              "you "
	              "tried to reach does not exist. Please try 550-5.1.1 double-checking the "
	              "recipient's email address for typos or 550-5.1.1 unnecessary spaces. 550 "
	              "5.1.1  https://support.example/?p=NoSuchUser x1 - gsmtp (in reply to RCPT "
	              "TO "
	              "command)"),
	         NULL,
	         "550 5.1.1 The email account that you tried to reach does not exist. Please try "
	         "double-checking the recipient's email address for typos or unnecessary spaces. "
	         "https://support.example/?p=NoSuchUser x1 - gsmtp"},
	        {LINE("smtp", "n@remote.example", "5.0.0", "bounced",
	              "host mx.remote.example[192.0.2.1] said: 554 Transaction failed (in reply to "
	              "end of DATA command)"),
	         NULL, "554 5.0.0 Transaction failed"},
	        {LINE("local", "u@mail.example.com", "5.1.1", "bounced", "unknown user: \"u\""),
	         "unknown user: \"u\"", NULL},
	};
#undef LINE
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp, local", "postfix", 16);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got, *postfix;

		make(pe, cases[i].line, m);
		got = detail(&m->ev, "smtp_reply");
		postfix = detail(&m->ev, "postfix_reply");
		if (got == NULL ? cases[i].want != NULL
		                : cases[i].want == NULL || strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: smtp_reply got \"%s\", want \"%s\"", i,
			         got ? got : "(none)", cases[i].want ? cases[i].want : "(none)");
		if (postfix == NULL || (cases[i].postfix && strcmp(postfix, cases[i].postfix) != 0))
			fail_msg("case %zu: postfix_reply got \"%s\", want \"%s\"", i,
			         postfix ? postfix : "(none)",
			         cases[i].postfix ? cases[i].postfix : "(the logged text)");
	}
	pfevent_free(&pe);
}

static void
test_sample_log(void **state)
{
	struct made *m = *state;
	struct pfevent *pe = pfevent_new("lmtp, local, virtual", "postfix", 1000);
	int counts[MSEV_TYPE_MAX + 1] = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp = fopen(MSGSTATUS_SOURCE_DIR "/tests/data/maillog-sample.txt", "r");

	assert_non_null(fp);
	while ((n = getline(&line, &cap, fp)) > 0) {
		const char *error;
		size_t start = m->out.len;

		if (line[n - 1] == '\n')
			n--;
		if (pfevent_line(pe, line, (size_t)n, NOW_MS, &m->out) == 0)
			continue;
		msevent_clear(&m->ev);
		if (msevent_parse(&m->ev, m->tok, m->out.data + start, m->out.len - start - 1,
		                  &error) < 0)
			fail_msg("%s: %s", error, line);
		counts[m->ev.type]++;
	}
	free(line);
	fclose(fp);
	/* pflog's counts (test_pflog): 90 sent, 53 deferred, 11 bounced, 5 expired */
	assert_int_equal(counts[MSEV_DELIVERED] + counts[MSEV_RELAYED] + counts[MSEV_BOUNCED] +
	                         counts[MSEV_DEFERRED] + counts[MSEV_EXPIRED],
	                 90 + 53 + 11 + 5);
	assert_int_equal(counts[MSEV_DEFERRED], 53);
	assert_int_equal(counts[MSEV_EXPIRED], 5);
	assert_true(counts[MSEV_DELIVERED] > 0 && counts[MSEV_RELAYED] > 0);
	pfevent_free(&pe);
}

int
main(void)
{
	setenv("TZ", "UTC", 1); /* syslog times are local time */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_delivered_and_relayed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_forwarded_discarded_deferred_bounced, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_expiry_is_message_level, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_foreign_programs_are_ignored, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ids_are_stable_per_line, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_message_id_cache_is_bounded, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_message_id_cache_rows, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_configure_takes_new_names, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_odd_bytes_in_details, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reply_forms, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sample_log, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
