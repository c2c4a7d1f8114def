/*
 * test_tracker - msgstatus-milter's decisions without libmilter (milter/tracker.c): which
 * mail is tracked, what is recorded per recipient, and which headers go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "mbuf.h"
#include "msevent.h"
#include "tracker.h"

static void
test_domain_listed(void **state)
{
	static const struct {
		const char *list, *addr;
		bool want;
	} cases[] = {
	        {"example.org", "alice@example.org", true},
	        {"example.org", "alice@EXAMPLE.ORG", true},
	        {"Example.Org", "alice@example.org", true},
	        {"example.org", "alice@mail.example.org", false},
	        {".example.org", "alice@mail.example.org", true},
	        {".example.org", "alice@example.org", false},
	        {"example.org", "alice@notexample.org", false},
	        {"example.org", "alice@example.org.evil", false},
	        {"a.example, example.org  ,b.example", "x@example.org", true},
	        {"a.example\texample.net", "x@example.net", true},
	        {"", "x@example.org", false},
	        {"example.org", "no-at-sign", false},
	        {"example.org", "trailing@", false},
	        {"example.org", "weird@local@example.org", true},
	};

	(void)state;
	assert_false(tracker_domain_listed(NULL, "a@example.org"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = tracker_domain_listed(cases[i].list, cases[i].addr);
		if (got != cases[i].want)
			fail_msg("list \"%s\" address \"%s\": got %d, want %d", cases[i].list,
			         cases[i].addr, got, cases[i].want);
	}
}

static void
test_local_submission(void **state)
{
	(void)state;
	assert_true(tracker_is_local_submission("localhost", "127.0.0.1", 0));
	assert_true(tracker_is_local_submission("localhost", "::1", 0));
	assert_false(tracker_is_local_submission("localhost", "127.0.0.1", 40000));
	assert_false(tracker_is_local_submission("mail.example", "127.0.0.1", 0));
	assert_false(tracker_is_local_submission("localhost", "192.0.2.1", 0));
	assert_false(tracker_is_local_submission(NULL, NULL, 0));
}

static void
test_which_mail_is_tracked(void **state)
{
	static const struct {
		const char *envfrom, *sasl, *domains, *trust;
		bool local, want;
		const char *why; /* substring of why_not when not tracked */
	} cases[] = {
	        {"<alice@example.org>", "alice", "example.org", NULL, false, true, NULL},
	        {"<alice@example.org>", NULL, "example.org", NULL, true, true, NULL},
	        {"<alice@example.org>", NULL, "example.org", "any", false, true, NULL},
	        {"<alice@example.org>", NULL, "example.org", "ANY", false, true, NULL},
	        {"<alice@example.org>", NULL, "example.org", NULL, false, false, "authenticated"},
	        {"<alice@example.org>", "", "example.org", "sasl", false, false, "authenticated"},
	        {"<alice@other.example>", "alice", "example.org", NULL, false, false,
	         "not enabled"},
	        {"<alice@example.org>", "alice", NULL, NULL, false, false, "msgstatus_domains"},
	        {"<>", "alice", "example.org", NULL, false, false, "null sender"},
	        {"<al\xff\xfeice@example.org>", "alice", "example.org", NULL, false, false,
	         "not usable"},
	        {"<al\x01ice@example.org>", "alice", "example.org", NULL, false, false,
	         "not usable"},
	        {"<b\xc3\xb6"
	         "b@example.org>",
	         "bob", "example.org", NULL, false, true, NULL},
	        {"alice@example.org", "alice", "example.org", NULL, false, true, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tracker_msg *m = tracker_msg_new();
		tracker_mail(m, cases[i].envfrom, cases[i].sasl, cases[i].domains, cases[i].trust,
		             cases[i].local);
		if (m->enabled != cases[i].want)
			fail_msg("case %zu (%s): got enabled=%d, want %d (%s)", i, cases[i].envfrom,
			         m->enabled, cases[i].want, m->why_not ? m->why_not : "");
		if (!cases[i].want && strstr(m->why_not, cases[i].why) == NULL)
			fail_msg("case %zu: got reason \"%s\", want one with \"%s\"", i, m->why_not,
			         cases[i].why);
		tracker_msg_free(&m);
		assert_null(m);
	}
	/* A very long sender is not used. */
	char longaddr[700];
	memset(longaddr, 'a', sizeof(longaddr));
	strcpy(longaddr + 600, "@example.org>");
	longaddr[0] = '<';
	struct tracker_msg *m = tracker_msg_new();
	tracker_mail(m, longaddr, "alice", "example.org", NULL, false);
	assert_false(m->enabled);
	tracker_msg_free(&m);
}

/* Parse the records appended by tracker_eom. */
static int
parse_events(const struct mbuf *events, struct msevent *out, int max)
{
	struct json_tokener *tok = msevent_tokener_new();
	const char *p = mbuf_str(events), *error;
	int n = 0;

	while (*p != '\0' && n < max) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		if (msevent_parse(&out[n], tok, p, (size_t)(nl - p), &error) < 0)
			fail_msg("event %d does not parse: %s", n, error);
		n++;
		p = nl + 1;
	}
	json_tokener_free(tok);
	return n;
}

static void
test_tracked_message_events(void **state)
{
	struct tracker_msg *m = tracker_msg_new();
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;
	struct msevent ev[4];
	int n;

	(void)state;
	tracker_mail(m, "<alice@example.org>", "alice@example.org", "example.org", NULL, false);
	tracker_rcpt(m, "<bob@example.net>", 100);
	tracker_rcpt(m, "<carol@example.com>", 100);
	tracker_rcpt(m, "<d\x01ave@example.com>", 100); /* control character: skipped */
	tracker_header(m, "Subject", "hello");
	tracker_header(m, "Message-ID", " \t<abc@example.org>\r\n");
	tracker_header(m, "msgstatus-id", "forged-one");
	tracker_header(m, "Msgstatus-Id", "forged-two");
	tracker_body(m, 1000);
	tracker_eom(m, "4XqQ5h2kLmz7", 1795348067000LL, &res, &events);

	assert_true(res.tag);
	assert_int_equal(res.delete_tags, 2);
	assert_int_equal(res.events, 2);
	assert_int_equal(m->rcpts_dropped, 1);
	assert_true(randid_valid(res.tracking_id, strlen(res.tracking_id)));
	n = parse_events(&events, ev, 4);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++) {
		assert_int_equal(ev[i].type, MSEV_QUEUED);
		assert_string_equal(ev[i].source, "milter");
		assert_string_equal(ev[i].tracking_id, res.tracking_id);
		assert_string_equal(ev[i].message_id, "<abc@example.org>");
		assert_string_equal(ev[i].queue_id, "4XqQ5h2kLmz7");
		assert_string_equal(ev[i].sender, "alice@example.org");
		assert_string_equal(ev[i].sasl_user, "alice@example.org");
		assert_true(ev[i].size > 1000);
		assert_int_equal(ev[i].time_ms, 1795348067000LL);
	}
	assert_string_equal(ev[0].recipient, "bob@example.net");
	assert_string_equal(ev[1].recipient, "carol@example.com");
	assert_string_not_equal(ev[0].id, ev[1].id);
	msevent_clear(&ev[0]);
	msevent_clear(&ev[1]);
	mbuf_free(&events);
	tracker_msg_free(&m);
}

static void
test_untracked_message_still_loses_forged_tags(void **state)
{
	struct tracker_msg *m = tracker_msg_new();
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;

	(void)state;
	tracker_mail(m, "<mallory@outside.example>", NULL, "example.org", NULL, false);
	tracker_rcpt(m, "<bob@example.org>", 100);
	tracker_header(m, "Msgstatus-Id", "stolen-id");
	tracker_eom(m, "4XqQ5h2kLmz7", 1, &res, &events);
	assert_false(res.tag);
	assert_int_equal(res.delete_tags, 1);
	assert_int_equal(res.events, 0);
	assert_int_equal(events.len, 0);
	tracker_msg_free(&m);
}

static void
test_missing_message_id_and_bad_queue_id(void **state)
{
	struct tracker_msg *m = tracker_msg_new();
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;
	struct msevent ev[1];

	(void)state;
	tracker_mail(m, "<alice@example.org>", "alice", "example.org", NULL, false);
	tracker_rcpt(m, "<bob@example.net>", 100);
	tracker_header(m, "Message-ID", "<bad\x01id@example.org>");
	tracker_eom(m, "not a queue id!", 1795348067000LL, &res, &events);
	assert_int_equal(parse_events(&events, ev, 1), 1);
	assert_null(ev[0].message_id);
	assert_null(ev[0].queue_id);
	msevent_clear(&ev[0]);
	mbuf_free(&events);
	tracker_msg_free(&m);
}

static void
test_many_recipients(void **state)
{
	struct tracker_msg *m = tracker_msg_new();
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;
	char rcpt[64];

	(void)state;
	tracker_mail(m, "<alice@example.org>", "alice", "example.org", NULL, false);
	for (int i = 0; i < 600; i++) {
		snprintf(rcpt, sizeof(rcpt), "<r%d@example.net>", i);
		tracker_rcpt(m, rcpt, 500);
	}
	tracker_eom(m, "4XqQ5h2kLmz7", 1795348067000LL, &res, &events);
	assert_int_equal(res.events, 500);
	assert_int_equal(m->rcpts_dropped, 100);
	size_t lines = 0;
	for (size_t i = 0; i < events.len; i++)
		lines += events.data[i] == '\n';
	assert_int_equal(lines, 500);
	mbuf_free(&events);
	tracker_msg_free(&m);
}

static void
test_no_recipients_no_tag(void **state)
{
	struct tracker_msg *m = tracker_msg_new();
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;

	(void)state;
	tracker_mail(m, "<alice@example.org>", "alice", "example.org", NULL, false);
	tracker_rcpt(m, "<\xff\xff@example.net>", 100);
	tracker_eom(m, NULL, 1, &res, &events);
	assert_false(res.tag);
	assert_int_equal(res.events, 0);
	tracker_msg_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_domain_listed),
	        cmocka_unit_test(test_local_submission),
	        cmocka_unit_test(test_which_mail_is_tracked),
	        cmocka_unit_test(test_tracked_message_events),
	        cmocka_unit_test(test_untracked_message_still_loses_forged_tags),
	        cmocka_unit_test(test_missing_message_id_and_bad_queue_id),
	        cmocka_unit_test(test_many_recipients),
	        cmocka_unit_test(test_no_recipients_no_tag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
