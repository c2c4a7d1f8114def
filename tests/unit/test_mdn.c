/*
 * test_mdn - statusd's server-sent MDNs without I/O (statusd/mdn.h): the addresses of
 * Disposition-Notification-To and Return-Path, the decision and its order of rules (RFC
 * 8098 section 2.1), and the notification's text, read back with the project's own report
 * parser (reports/report.h) as a receiving site would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mbuf.h"
#include "mdn.h"
#include "msevent.h"
#include "report.h"

#include "check.h"

static void
test_addr_parse(void **state)
{
	static const struct {
		const char *value;
		int rc, distinct;
		const char *addr;
	} rows[] = {
	        {"alice@example.org", 1, 1, "alice@example.org"},
	        {"<alice@example.org>", 1, 1, "alice@example.org"},
	        {"Alice Example <alice@example.org>", 1, 1, "alice@example.org"},
	        {"\"Example, Alice\" <alice@example.org>", 1, 1, "alice@example.org"},
	        {"alice@example.org (Alice)", 1, 1, "alice@example.org"},
	        {"(c) <alice@example.org> (more)", 1, 1, "alice@example.org"},
	        {"<@relay.example:alice@example.org>", 1, 1, "alice@example.org"},
	        {" \"a b\"@example.org", 1, 1, "\"a b\"@example.org"},
	        {"a@example.org, b@example.org", 1, 2, "a@example.org"},
	        {"a@example.org, <a@EXAMPLE.org>", 1, 1, "a@example.org"},
	        {"a@example.org, A@example.org", 1, 2, "a@example.org"}, /* local parts: as is */
	        {"a@example.org,", 1, 1, "a@example.org"},
	        {"<>", 0, 0, ""},
	        {" < > ", 0, 0, ""},
	        {"", -1, 0, ""},
	        {"alice", -1, 0, ""},
	        {"alice@", -1, 0, ""},
	        {"@example.org", -1, 0, ""},
	        {"-oQ/tmp@example.org", -1, 0, ""}, /* never an option to sendmail */
	        {"<alice@example.org", -1, 0, ""},
	        {"a <b@example.org> <c@example.org>", -1, 0, ""},
	        {"alice@exa mple.org", -1, 0, ""},
	        {"alice@example.org\nBcc: x@y", -1, 0, ""},
	        {"alice@ex_ample.org", -1, 0, ""},
	        {"group: a@example.org;", -1, 0, ""},
	        {"al\xc3\xaf"
	         "ce@example.org",
	         -1, 0, ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char addr[MDN_ADDR_MAX + 1], what[96];
		int distinct = -5;

		snprintf(what, sizeof(what), "address %zu (%.40s)", i, rows[i].value);
		CHECK_INT(what, mdn_addr_parse(rows[i].value, addr, &distinct), rows[i].rc);
		CHECK_INT(what, distinct, rows[i].distinct);
		CHECK_STR(what, addr, rows[i].addr);
	}
	{
		char big[400], addr[MDN_ADDR_MAX + 1];
		memset(big, 'a', sizeof(big));
		memcpy(big + sizeof(big) - 13, "@example.org", 13);
		CHECK_INT("too long an address", mdn_addr_parse(big, addr, NULL), -1);
	}
	CHECK_INT("same: domain case", mdn_addr_same("a@Example.ORG", "a@example.org"), 1);
	CHECK_INT("same: local case", mdn_addr_same("A@example.org", "a@example.org"), 0);
	check_done();
}

/* A request that mdn_decide() sends for: each row of test_decide changes one thing. */
static struct mdn_request
base_request(void)
{
	return (struct mdn_request){
	        .user = "bob@example.org",
	        .message_id = "<m1@example.net>",
	        .dnt = "Alice <alice@example.net>",
	        .return_path = "<alice@example.net>",
	        .subject = "Hello",
	        .content_type = "text/plain; charset=utf-8",
	        .dn_options = NULL,
	        .mdn_default = MDN_PREF_NEVER,
	};
}

static void
test_decide(void **state)
{
	enum field { NONE, USER, MSGID, DNT, RP, CT, OPTIONS, DEFAULT };
	static const struct {
		enum mdn_pref pref;
		enum field field;
		const char *value;
		enum mdn_decision want;
		const char *reason;
	} rows[] = {
	        {MDN_PREF_ALWAYS, NONE, NULL, MDN_SEND, "always"},
	        {MDN_PREF_NEVER, NONE, NULL, MDN_DECLINED, "never"},
	        {MDN_PREF_UNSET, NONE, NULL, MDN_DECLINED, "never"}, /* default never */
	        {MDN_PREF_UNSET, DEFAULT, "always", MDN_SEND, "always"},
	        {MDN_PREF_NEVER, DEFAULT, "always", MDN_DECLINED, "never"}, /* the user's wins */
	        {MDN_PREF_ALWAYS, CT, "multipart/report; report-type=disposition-notification",
	         MDN_REFUSED, "report"},
	        {MDN_PREF_ALWAYS, CT, " Multipart/Report;report-type=delivery-status", MDN_REFUSED,
	         "report"},
	        {MDN_PREF_ALWAYS, CT, "multipart/reports", MDN_SEND, "always"},
	        {MDN_PREF_ALWAYS, MSGID, NULL, MDN_REFUSED, "no Message-ID"},
	        {MDN_PREF_ALWAYS, MSGID, "", MDN_REFUSED, "no Message-ID"},
	        {MDN_PREF_ALWAYS, MSGID, "m1@example.net", MDN_REFUSED, "malformed"},
	        {MDN_PREF_ALWAYS, MSGID, "<m 1@example.net>", MDN_REFUSED, "malformed"},
	        {MDN_PREF_ALWAYS, USER, "bob", MDN_REFUSED, "not a mail address"},
	        {MDN_PREF_ALWAYS, DNT, NULL, MDN_REFUSED, "no usable address"},
	        {MDN_PREF_ALWAYS, DNT, "nobody", MDN_REFUSED, "no usable address"},
	        {MDN_PREF_ALWAYS, DNT, "alice@example.net, carol@example.net", MDN_REFUSED,
	         "more than one"},
	        {MDN_PREF_ALWAYS, DNT, "alice@example.net, <alice@EXAMPLE.NET>", MDN_SEND,
	         "always"},
	        {MDN_PREF_ALWAYS, RP, NULL, MDN_REFUSED, "no Return-Path"},
	        {MDN_PREF_ALWAYS, RP, "<>", MDN_REFUSED, "null"},
	        {MDN_PREF_ALWAYS, RP, "<carol@example.net>", MDN_REFUSED, "differs"},
	        {MDN_PREF_ALWAYS, RP, "<Alice@example.net>", MDN_REFUSED, "differs"},
	        {MDN_PREF_ALWAYS, RP, "<alice@Example.NET>", MDN_SEND, "always"},
	        {MDN_PREF_ALWAYS, OPTIONS, "signed-receipt-protocol=required,pkcs7-signature",
	         MDN_REFUSED, "required"},
	        {MDN_PREF_ALWAYS, OPTIONS, "signed-receipt-protocol=optional,pkcs7-signature",
	         MDN_SEND, "always"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mdn_request req = base_request();
		char to[MDN_ADDR_MAX + 1], what[64];
		const char *reason = NULL;

		switch (rows[i].field) {
		case USER:
			req.user = rows[i].value;
			break;
		case MSGID:
			req.message_id = rows[i].value;
			break;
		case DNT:
			req.dnt = rows[i].value;
			break;
		case RP:
			req.return_path = rows[i].value;
			break;
		case CT:
			req.content_type = rows[i].value;
			break;
		case OPTIONS:
			req.dn_options = rows[i].value;
			break;
		case DEFAULT:
			req.mdn_default = mdn_pref_parse(rows[i].value);
			break;
		case NONE:
			break;
		}
		snprintf(what, sizeof(what), "decision %zu", i);
		CHECK_STR(what, mdn_decision_name(mdn_decide(&req, rows[i].pref, to, &reason)),
		          mdn_decision_name(rows[i].want));
		CHECK_HAS(what, reason, rows[i].reason);
		CHECK_STR(what, to, rows[i].want == MDN_SEND ? "alice@example.net" : "");
	}
	CHECK_INT("pref never", mdn_pref_parse("never"), MDN_PREF_NEVER);
	CHECK_INT("pref always", mdn_pref_parse("always"), MDN_PREF_ALWAYS);
	CHECK_INT("pref other", mdn_pref_parse("Always"), MDN_PREF_UNSET);
	CHECK_INT("pref NULL", mdn_pref_parse(NULL), MDN_PREF_UNSET);
	check_done();
}

static void
compose(const struct mdn_request *req, struct mbuf *out)
{
	struct mdn_env env = {.reporting_host = "mail.example.org",
	                      .notify_to = "alice@example.net",
	                      .own_message_id = "<mdn.x1@mail.example.org>",
	                      .boundary = "=_mdn_b1",
	                      .date = 1733500000};
	mdn_compose(req, &env, out);
}

static void
test_compose(void **state)
{
	struct mdn_request req = base_request();
	struct mbuf out = MBUF_INIT;
	struct report r;
	const char *error = NULL;

	(void)state;
	compose(&req, &out);
	CHECK_HAS("To", mbuf_str(&out), "\nTo: <alice@example.net>\n");
	CHECK_HAS("From", mbuf_str(&out), "From: <bob@example.org>\n");
	CHECK_HAS("Subject", mbuf_str(&out), "\nSubject: Displayed: Hello\n");
	CHECK_HAS("Date", mbuf_str(&out), "\nDate: Fri, 06 Dec 2024 15:46:40 +0000\n");
	CHECK_HAS("In-Reply-To", mbuf_str(&out), "\nIn-Reply-To: <m1@example.net>\n");
	CHECK_HAS("Auto-Submitted", mbuf_str(&out), "\nAuto-Submitted: auto-replied\n");
	CHECK_HAS("type", mbuf_str(&out),
	          "Content-Type: multipart/report; report-type=disposition-notification;\n"
	          "\tboundary=\"=_mdn_b1\"\n");
	CHECK_HAS("Disposition", mbuf_str(&out),
	          "\nDisposition: automatic-action/MDN-sent-automatically; displayed\n");
	CHECK_INT("no Disposition-Notification-To in an MDN",
	          strstr(mbuf_str(&out), "Disposition-Notification-To") == NULL, 1);

	/* what a receiving site reads of it */
	CHECK_INT("parses", report_parse(out.data, out.len, &r, &error), 0);
	CHECK_STR("parse error", error, NULL);
	CHECK_INT("kind", r.kind, REPORT_MDN);
	CHECK_STR("disposition", r.disposition,
	          "automatic-action/MDN-sent-automatically; displayed");
	CHECK_STR("Original-Message-ID", r.original_message_id, "<m1@example.net>");
	CHECK_HAS("Reporting-UA", mbuf_str(&out), "\nReporting-UA: mail.example.org; msgstatus\n");
	CHECK_INT("Reporting-UA read", r.reporting_mta != NULL, 1);
	CHECK_INT("one recipient", (int)r.nrcpts, 1);
	if (r.nrcpts == 1)
		CHECK_STR("Final-Recipient", r.rcpts[0].final_recipient, "bob@example.org");
	CHECK_INT("event", report_event(r.kind, r.disposition), MSEV_READ);
	report_clear(&r);
	mbuf_free(&out);

	/* an unfriendly subject: no header injection, non-ASCII as encoded words */
	req.subject = "Hi\r\nBcc: eve@example.com\x01";
	compose(&req, &out);
	CHECK_HAS("subject on one line", mbuf_str(&out),
	          "\nSubject: Displayed: Hi  Bcc: eve@example.com\n");
	CHECK_INT("no Bcc header", strstr(mbuf_str(&out), "\nBcc:") == NULL, 1);
	mbuf_free(&out);
	req.subject = "Gr\xc3\xbc\xc3\x9f"
	              "e aus M\xc3\xbcnchen, und noch viel mehr Text, der lang genug ist";
	compose(&req, &out);
	CHECK_HAS("encoded words", mbuf_str(&out), "\nSubject: Displayed:\n =?UTF-8?B?R3LDvMOfZS");
	CHECK_HAS("folded", mbuf_str(&out), "?=\n =?UTF-8?B?");
	CHECK_INT("parses", report_parse(out.data, out.len, &r, &error), 0);
	report_clear(&r);
	mbuf_free(&out);
	req.subject = "\xff\xfe broken";
	compose(&req, &out);
	CHECK_HAS("broken bytes", mbuf_str(&out), "\nSubject: Displayed: ?? broken\n");
	mbuf_free(&out);
	req.subject = NULL;
	compose(&req, &out);
	CHECK_HAS("no subject", mbuf_str(&out), "\nSubject: Displayed: \n");
	mbuf_free(&out);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_addr_parse),
	        cmocka_unit_test(test_decide),
	        cmocka_unit_test(test_compose),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
