/*
 * test_smtpreply - smtpreply_form(): RFC 8621 smtpReply from the texts Postfix 3.7/3.10
 * logs for a delivery (smtp and lmtp), from DSN Diagnostic-Codes, and from what holds no
 * reply. Table-driven, printing got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpreply.h"

static void
test_form(void **state)
{
	static const struct {
		const char *text, *status, *want; /* want NULL: -1 */
	} cases[] = {
	        /* Postfix smtp(8): a rejected recipient */
	        {"host mx.remote.example[192.0.2.1] said: 550 5.1.1 <d@remote.example>: "
	         "Recipient address rejected: User unknown (in reply to RCPT TO command)",
	         "5.1.1", "550 5.1.1 <d@remote.example>: Recipient address rejected: User unknown"},
	        /* greylisting, with and without the server's own enhanced code */
	        {"host mx.r.example[192.0.2.1] said: 450 4.7.1 <g@r.example>: Recipient address "
	         "rejected: Greylisted, see http://postgrey.schweikert.ch/help/r.example.html (in "
	         "reply to RCPT TO command)",
	         "4.7.1",
	         "450 4.7.1 <g@r.example>: Recipient address rejected: Greylisted, see "
	         "http://postgrey.schweikert.ch/help/r.example.html"},
	        {"host mx.r.example[192.0.2.1] said: 450 Greylisted, try later (in reply to "
	         "end of DATA command)",
	         "4.7.1", "450 4.7.1 Greylisted, try later"},
	        /* LMTP to Dovecot */
	        {"host mail.example.com[private/dovecot-lmtp] said: 550 5.1.1 <nobody@example.com> "
	         "User doesn't exist: nobody@example.com (in reply to RCPT TO command)",
	         "5.1.1", "550 5.1.1 <nobody@example.com> User doesn't exist: nobody@example.com"},
	        {"250 2.0.0 <bob@example.com> 3B4cJm5yR2VpBgAAGDd0ZQ Saved", "2.0.0",
	         "250 2.0.0 <bob@example.com> 3B4cJm5yR2VpBgAAGDd0ZQ Saved"},
	        /* status=sent by smtp(8) */
	        {"250 2.0.0 Ok: queued as 4XyZ", "2.0.0", "250 2.0.0 Ok: queued as 4XyZ"},
	        {"250 2.0.0 Ok: queued as 4XyZ", NULL, "250 2.0.0 Ok: queued as 4XyZ"},
	        /* a multi-line reply, as Postfix logs it (lines joined by spaces) */
	        {"host gmail-smtp-in.l.google.com[142.250.27.26] said: 550-5.1.1 The email account "
	         "that you tried to reach does not exist. Please try 550-5.1.1 double-checking the "
	         "recipient's email address for typos or 550-5.1.1 unnecessary spaces. Learn more "
	         "at 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp (in "
	         "reply to RCPT TO command)",
	         "5.1.1",
	         "550 5.1.1 The email account that you tried to reach does not exist. Please try "
	         "double-checking the recipient's email address for typos or unnecessary spaces. "
	         "Learn more at https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp"},
	        {"host mx.r.example[192.0.2.1] said: 554-mx.r.example 554-No SMTP service here 554 "
	         "Go away (in reply to end of DATA command)",
	         "5.0.0", "554 5.0.0 mx.r.example No SMTP service here Go away"},
	        /* RFC 8621's own example */
	        {"550-5.7.1 Our system has detected that 550-5.7.1 this message is 550 5.7.1 "
	         "likely "
	         "spam.",
	         NULL, "550 5.7.1 Our system has detected that this message is likely spam."},
	        /* a single line is left as it is, even with a code in its text */
	        {"550 5.7.1 blocked, see 550 5.7.1 above", NULL,
	         "550 5.7.1 blocked, see 550 5.7.1 above"},
	        /* the greeting refused; a suspended queue */
	        {"host a.example[192.0.2.2] refused to talk to me: 554 5.7.1 No thanks", NULL,
	         "554 5.7.1 No thanks"},
	        {"delivery temporarily suspended: host a.example[192.0.2.2] refused to talk to me: "
	         "421 4.7.0 Try again later",
	         "4.7.0", "421 4.7.0 Try again later"},
	        /* a DSN's Diagnostic-Code */
	        {"smtp; 550 5.7.1 Message rejected", "5.7.1", "550 5.7.1 Message rejected"},
	        {"550 User unknown", NULL, "550 User unknown"},
	        {"550", NULL, "550"},
	        {"550", "5.1.1", "550 5.1.1"},
	        {"550 5.1.1\x01text", NULL, "550 5.1.1 text"},
	        {"550 x", "5.1.1junk", "550 x"},
	        /* no SMTP reply: -1, the caller keeps the text */
	        {"connect to mx.remote.example[192.0.2.1]:25: Connection refused", "4.4.1", NULL},
	        {"delivery temporarily suspended: connect to mx.remote.example[192.0.2.1]:25: "
	         "Connection refused",
	         "4.4.1", NULL},
	        {"lost connection with mx.remote.example[192.0.2.1] while receiving the initial "
	         "server greeting",
	         "4.4.2", NULL},
	        {"conversation with mx.remote.example[192.0.2.1] timed out while sending RCPT TO",
	         "4.4.2", NULL},
	        {"Host or domain name not found. Name service error for name=nx.example type=MX: "
	         "Host not found",
	         "5.4.4", NULL},
	        {"delivered to mailbox", "2.0.0", NULL},
	        {"forwarded as 4XyZ", "2.0.0", NULL},
	        {"X-Postfix; delivery via local: delivered to mailbox", NULL, NULL},
	        {"host x said: hello", NULL, NULL},
	        {"", NULL, NULL},
	        {"650 bad class", NULL, NULL},
	        {"5501 too long", NULL, NULL},
	};
	char out[512], small[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = smtpreply_form(cases[i].text, cases[i].status, out, sizeof(out));
		if (cases[i].want == NULL ? rc != -1 : rc != 0 || strcmp(out, cases[i].want) != 0)
			fail_msg("\"%s\": got %d \"%s\", want \"%s\"", cases[i].text, rc,
			         rc == 0 ? out : "", cases[i].want ? cases[i].want : "-1");
	}
	assert_int_equal(smtpreply_form("550 5.1.1 long text", NULL, small, sizeof(small)), 0);
	assert_string_equal(small, "550 5.1");
	assert_int_equal(smtpreply_form(NULL, NULL, out, sizeof(out)), -1);
	assert_int_equal(smtpreply_form("550 x", NULL, out, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
