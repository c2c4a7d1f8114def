/*
 * test_report - the DSN/MDN parser (reports/report.c): what it extracts from
 * multipart/report messages of Postfix, other MTAs and mail clients, what it refuses, its
 * bounds, and the mapping to events (report_event; the reply form is test_smtpreply.c's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MDN_DATA MSGSTATUS_SOURCE_DIR "/tests/data/mdn"

#include "report.h"

/* the tables leave trailing fields out */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Postfix's own success notice for a DSN asked for with NOTIFY=SUCCESS, RET=HDRS. */
static const char postfix_success[] =
        "Return-Path: <>\n"
        "From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)\n"
        "Subject: Successful Mail Delivery Report\n"
        "To: alice@example.org\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        "\tboundary=\"8A1B2C3D4E.1733500000/mx.remote.example\"\n"
        "Message-Id: <20261206101010.8A1B2C3D4E@mx.remote.example>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        "--8A1B2C3D4E.1733500000/mx.remote.example\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "Your message was successfully delivered to the destination(s)\n"
        "listed below.\n"
        "\n"
        "--8A1B2C3D4E.1733500000/mx.remote.example\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; mx.remote.example\n"
        "X-Postfix-Queue-ID: 8A1B2C3D4E\n"
        "X-Postfix-Sender: rfc822; alice@example.org\n"
        "Arrival-Date: Sun,  6 Dec 2026 10:10:09 +0000 (UTC)\n"
        "Original-Envelope-Id: abcdefghijklmnopqrstuvwxyz\n"
        "\n"
        "Final-Recipient: rfc822; carol@remote.example\n"
        "Original-Recipient: rfc822;carol@remote.example\n"
        "Action: delivered\n"
        "Status: 2.0.0\n"
        "Diagnostic-Code: X-Postfix; delivery via local: delivered to mailbox\n"
        "\n"
        "--8A1B2C3D4E.1733500000/mx.remote.example\n"
        "Content-Description: Message Headers\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        "From: Alice <alice@example.org>\n"
        "To: carol@remote.example\n"
        "Subject: hello\n"
        "Msgstatus-Id: abcdefghijklmnopqrstuvwxyz\n"
        "Message-ID: <hello-1@example.org>\n"
        "\n"
        "--8A1B2C3D4E.1733500000/mx.remote.example--\n";

/* A bounce with two recipients, CRLF, folded Diagnostic-Code, message/rfc822 returned. */
static const char two_rcpt_bounce[] =
        "From: Mail Delivery System <MAILER-DAEMON@example.org>\r\n"
        "To: alice@example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"b1\"\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "I'm sorry to have to inform you...\r\n"
        "--b1\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mail.example.org\r\n"
        "Original-Envelope-Id: tid2\r\n"
        "\r\n"
        "Final-Recipient: rfc822; <dave@remote.example>\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Remote-MTA: dns; mx.remote.example\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <dave@remote.example>: Recipient address\r\n"
        " rejected: User unknown in virtual mailbox table\r\n"
        "\r\n"
        "Final-Recipient: rfc822; erin@remote.example\r\n"
        "Original-Recipient: rfc822; Erin@Remote.Example\r\n"
        "Action: delayed\r\n"
        "Status: 4.4.1 (connection timed out)\r\n"
        "Diagnostic-Code: X-Postfix; connect to mx.remote.example[192.0.2.1]:25: Connection\r\n"
        "    timed out\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        "From: alice@example.org\r\n"
        "Message-ID: <two@example.org>\r\n"
        "Msgstatus-Id: tid2\r\n"
        "Subject: two\r\n"
        "\r\n"
        "body\r\n"
        "--b1--\r\n";

/* An MDN as Thunderbird sends it, the status part in base64. */
static const char mdn_displayed[] =
        "From: Carol <carol@remote.example>\n"
        "To: alice@example.org\n"
        "Subject: Return Receipt (displayed) - hello\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\n"
        " boundary=\"mdn\"\n"
        "\n"
        "--mdn\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "\n"
        "This is a Return Receipt for the mail that you sent.\n"
        "--mdn\n"
        "Content-Type: message/disposition-notification; name=\"MDNPart2.txt\"\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        /* Reporting-UA: remote.example; Thunderbird 115.5.0\n
           Final-Recipient: rfc822;carol@remote.example\n
           Original-Message-ID: <hello-1@example.org>\n
           Disposition: manual-action/MDN-sent-manually; displayed\n */
        "UmVwb3J0aW5nLVVBOiByZW1vdGUuZXhhbXBsZTsgVGh1bmRlcmJpcmQgMTE1LjUuMApGaW5h\n"
        "bC1SZWNpcGllbnQ6IHJmYzgyMjtjYXJvbEByZW1vdGUuZXhhbXBsZQpPcmlnaW5hbC1NZXNz\n"
        "YWdlLUlEOiA8aGVsbG8tMUBleGFtcGxlLm9yZz4KRGlzcG9zaXRpb246IG1hbnVhbC1hY3Rp\n"
        "b24vTUROLXNlbnQtbWFudWFsbHk7IGRpc3BsYXllZAo=\n"
        "--mdn\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        "Message-ID: <hello-1@example.org>\n"
        "Msgstatus-Id: abcdefghijklmnopqrstuvwxyz\n"
        "\n"
        "--mdn--\n";

static const char not_report[] = "From: a@b\nSubject: hi\nContent-Type: text/plain\n\nhello\n";
static const char arf_report[] =
        "Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n"
        "--x\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n--x--\n";
static const char no_status[] =
        "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        "--x\nContent-Type: text/plain\n\nsorry\n--x--\n";
static const char no_rcpt[] =
        "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        "--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; a.example\n\n--x--\n";
/* hostile: control characters, bytes that are not UTF-8 (GMime reads 8-bit header bytes
   in its fallback charset, Latin-1: what is kept is valid UTF-8) */
static const char hostile[] =
        "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        "--x\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; a\x01.example\n\n"
        "Final-Recipient: rfc822; b\xff\xfe@x.example\n"
        "Action: FAILED\nStatus: 5.0.0\n\n--x--\n";

struct want {
	const char *name, *msg;
	int rc;
	enum report_kind kind;
	const char *envid, *mta, *msgstatus_id, *message_id, *disposition, *orig_msgid;
	size_t nrcpts;
	const char *r0[6]; /* original, final, action, status, diagnostic, remote-mta */
	const char *r1[6];
};

static void
eq(const char *name, const char *field, const char *got, const char *want)
{
	if ((got == NULL) != (want == NULL) || (got != NULL && strcmp(got, want) != 0))
		fail_msg("%s: %s got \"%s\", want \"%s\"", name, field, got ? got : "(null)",
		         want ? want : "(null)");
}

static void
rcpt_eq(const char *name, const struct report_rcpt *r, const char *const w[6])
{
	eq(name, "original_recipient", r->original_recipient, w[0]);
	eq(name, "final_recipient", r->final_recipient, w[1]);
	eq(name, "action", r->action, w[2]);
	eq(name, "status", r->status, w[3]);
	eq(name, "diagnostic_code", r->diagnostic_code, w[4]);
	eq(name, "remote_mta", r->remote_mta, w[5]);
}

static void
test_parse(void **state)
{
	static const struct want cases[] = {
	        {"Postfix success notice",
	         postfix_success,
	         0,
	         REPORT_DSN,
	         "abcdefghijklmnopqrstuvwxyz",
	         "mx.remote.example",
	         "abcdefghijklmnopqrstuvwxyz",
	         "<hello-1@example.org>",
	         NULL,
	         NULL,
	         1,
	         {"carol@remote.example", "carol@remote.example", "delivered", "2.0.0",
	          "delivery via local: delivered to mailbox", NULL}},
	        {"bounce, two recipients, CRLF",
	         two_rcpt_bounce,
	         0,
	         REPORT_DSN,
	         "tid2",
	         "mail.example.org",
	         "tid2",
	         "<two@example.org>",
	         NULL,
	         NULL,
	         2,
	         {NULL, "dave@remote.example", "failed", "5.1.1",
	          "550 5.1.1 <dave@remote.example>: Recipient address rejected: User unknown in "
	          "virtual mailbox table",
	          "mx.remote.example"},
	         {"Erin@Remote.Example", "erin@remote.example", "delayed", "4.4.1",
	          "connect to mx.remote.example[192.0.2.1]:25: Connection timed out", NULL}},
	        {"Thunderbird MDN, base64",
	         mdn_displayed,
	         0,
	         REPORT_MDN,
	         NULL,
	         "Thunderbird 115.5.0",
	         "abcdefghijklmnopqrstuvwxyz",
	         "<hello-1@example.org>",
	         "manual-action/MDN-sent-manually; displayed",
	         "<hello-1@example.org>",
	         1,
	         {NULL, "carol@remote.example", NULL, NULL, NULL, NULL}},
	        {"hostile bytes",
	         hostile,
	         0,
	         REPORT_DSN,
	         NULL,
	         "a?.example",
	         NULL,
	         NULL,
	         NULL,
	         NULL,
	         1,
	         {NULL, "b\xc3\xbf\xc3\xbe@x.example", "failed", "5.0.0", NULL, NULL}},
	        {"not a report", not_report, -1},
	        {"feedback report", arf_report, -1},
	        {"no status part", no_status, -1},
	        {"no recipient", no_rcpt, -1},
	        {"empty", "", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct want *w = &cases[i];
		struct report r;
		const char *error = NULL;
		int rc = report_parse(w->msg, strlen(w->msg), &r, &error);

		if (rc != w->rc)
			fail_msg("%s: got %d (%s), want %d", w->name, rc, error ? error : "",
			         w->rc);
		if (rc < 0) {
			assert_non_null(error);
			assert_int_equal(r.nrcpts, 0);
			continue;
		}
		if (r.kind != w->kind || r.nrcpts != w->nrcpts)
			fail_msg("%s: kind %d, %zu recipients; want %d, %zu", w->name, r.kind,
			         r.nrcpts, w->kind, w->nrcpts);
		eq(w->name, "envelope_id", r.envelope_id, w->envid);
		eq(w->name, "reporting_mta", r.reporting_mta, w->mta);
		eq(w->name, "msgstatus_id", r.msgstatus_id, w->msgstatus_id);
		eq(w->name, "message_id", r.message_id, w->message_id);
		eq(w->name, "disposition", r.disposition, w->disposition);
		eq(w->name, "original_message_id", r.original_message_id, w->orig_msgid);
		rcpt_eq(w->name, &r.rcpts[0], w->r0);
		if (w->nrcpts > 1)
			rcpt_eq(w->name, &r.rcpts[1], w->r1);
		report_clear(&r);
	}
}

/* The MDNs of mail clients in tests/data/mdn (reconstructions: see its README.md). */
static void
test_client_mdns(void **state)
{
	static const struct {
		const char *file, *ua, *disposition, *orig_msgid, *message_id, *orig_rcpt,
		        *final_rcpt;
		enum msevent_type event;
	} cases[] = {
	        {"thunderbird-de.eml",
	         "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
	         "manual-action/MDN-sent-automatically; displayed", "<fx-thunderbird@example.org>",
	         "<fx-thunderbird@example.org>", "tb@example.net", "tb@example.net", MSEV_READ},
	        {"outlook-exchange.eml", NULL, "automatic-action/MDN-sent-automatically; displayed",
	         "<fx-outlook@example.org>", NULL, NULL, "ol@example.net", MSEV_READ},
	        {"outlook-exchange-deleted-de.eml", NULL,
	         "automatic-action/MDN-sent-automatically; deleted",
	         "<fx-outlook-deleted@example.org>", NULL, NULL, "ol@example.net", MSEV_DELETED},
	        {"google-workspace.eml", "Gmail", "manual-action/MDN-sent-manually; displayed",
	         "<fx-google@example.org>", NULL, NULL, "gm@example.net", MSEV_READ},
	        {"roundcube-de.eml", "Roundcube Webmail (Version 1.6.9)",
	         "manual-action/MDN-sent-manually; displayed", "<fx-roundcube@example.org>", NULL,
	         "rc@example.net", "rolf.carstens@example.net", MSEV_READ},
	        /* no Final-Recipient, no Original-Message-ID: the MDN's In-Reply-To */
	        {"fairemail.eml", "FairEmail 1.2230", "manual-action/MDN-sent-manually; displayed",
	         "<fx-fairemail@example.org>", NULL, "fe@example.net", NULL, MSEV_READ},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512], *data = malloc(REPORT_INPUT_MAX);
		const char *name = cases[i].file, *error = NULL;
		struct report r;
		size_t len;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", MDN_DATA, name);
		assert_non_null(data);
		if ((f = fopen(path, "rb")) == NULL)
			fail_msg("%s: cannot open", path);
		len = fread(data, 1, REPORT_INPUT_MAX, f);
		fclose(f);
		if (report_parse(data, len, &r, &error) < 0)
			fail_msg("%s: %s", name, error);
		if (r.kind != REPORT_MDN || r.nrcpts != 1)
			fail_msg("%s: kind %d, %zu recipients", name, r.kind, r.nrcpts);
		eq(name, "reporting_ua", r.reporting_mta, cases[i].ua);
		eq(name, "disposition", r.disposition, cases[i].disposition);
		eq(name, "original_message_id", r.original_message_id, cases[i].orig_msgid);
		eq(name, "message_id", r.message_id, cases[i].message_id);
		eq(name, "msgstatus_id", r.msgstatus_id, NULL);
		eq(name, "envelope_id", r.envelope_id, NULL);
		eq(name, "original_recipient", r.rcpts[0].original_recipient, cases[i].orig_rcpt);
		eq(name, "final_recipient", r.rcpts[0].final_recipient, cases[i].final_rcpt);
		if (report_event(r.kind, r.disposition) != cases[i].event)
			fail_msg("%s: event %d, want %d", name, report_event(r.kind, r.disposition),
			         cases[i].event);
		report_clear(&r);
		free(data);
	}
}

static void
test_bounds(void **state)
{
	/* more recipients than kept, and a field longer than kept */
	size_t n = REPORT_RCPTS_MAX + 5, cap = 200 + n * 80 + 3000;
	char *msg = malloc(cap), *p = msg;
	struct report r;
	const char *error;

	(void)state;
	p += sprintf(p, "Content-Type: multipart/report; report-type=delivery-status; "
	                "boundary=x\n\n--x\nContent-Type: message/delivery-status\n\n"
	                "Reporting-MTA: dns; ");
	memset(p, 'm', 2000);
	p += 2000;
	p += sprintf(p, "\n\n");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "Final-Recipient: rfc822; r%zu@x.example\nAction: failed\n\n", i);
	sprintf(p, "--x--\n");
	assert_int_equal(report_parse(msg, strlen(msg), &r, &error), 0);
	assert_int_equal(r.nrcpts, REPORT_RCPTS_MAX);
	assert_int_equal(r.rcpts_dropped, 5);
	assert_int_equal(strlen(r.reporting_mta), REPORT_FIELD_MAX);
	assert_string_equal(r.rcpts[REPORT_RCPTS_MAX - 1].final_recipient, "r999@x.example");
	report_clear(&r);
	free(msg);
}

static void
test_event(void **state)
{
	static const struct {
		enum report_kind kind;
		const char *v;
		enum msevent_type want;
	} cases[] = {
	        {REPORT_DSN, "delivered", MSEV_DELIVERED},
	        {REPORT_DSN, "Relayed", MSEV_RELAYED},
	        {REPORT_DSN, "delayed", MSEV_DEFERRED},
	        {REPORT_DSN, "failed", MSEV_BOUNCED},
	        {REPORT_DSN, "expanded", MSEV_NONE},
	        {REPORT_DSN, "failedx", MSEV_NONE},
	        {REPORT_DSN, "displayed", MSEV_NONE},
	        {REPORT_DSN, NULL, MSEV_NONE},
	        {REPORT_MDN, "manual-action/MDN-sent-manually; displayed", MSEV_READ},
	        {REPORT_MDN, "automatic-action/MDN-sent-automatically; deleted", MSEV_DELETED},
	        {REPORT_MDN, "automatic-action/MDN-sent-automatically;displayed/error", MSEV_READ},
	        {REPORT_MDN, "manual-action/MDN-sent-manually; dispatched", MSEV_NONE},
	        {REPORT_MDN, "automatic-action/MDN-sent-automatically; processed", MSEV_NONE},
	        {REPORT_MDN, "delivered", MSEV_NONE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum msevent_type got = report_event(cases[i].kind, cases[i].v);
		if (got != cases[i].want)
			fail_msg("%d \"%s\": got %d, want %d", cases[i].kind,
			         cases[i].v ? cases[i].v : "(null)", got, cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_client_mdns),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
