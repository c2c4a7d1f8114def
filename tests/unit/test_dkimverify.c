/*
 * test_dkimverify - the alignment rule (milter/dkimverify.c) and what the milter decides
 * for mail from elsewhere with a Msgstatus-Id (milter/tracker.c, tracker_wants_dkim and
 * tracker_inbound): remembered only with a valid aligned signature, with an "inbound"
 * event per recipient that ties our tag to the origin's id; and that no more than
 * DKIMVERIFY_LOOKUPS_MAX signatures of one message are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "check.h"
#include "dkimverify.h"
#include "mbuf.h"
#include "msevent.h"
#include "randid.h"
#include "tracker.h"

static void
test_alignment(void **state)
{
	static const struct {
		const char *d, *domain;
		bool aligned;
	} rows[] = {
	        {"example.org", "example.org", true},
	        {"Example.ORG", "example.org", true},  /* case-insensitive */
	        {"example.org.", "example.org", true}, /* a final dot */
	        {"example.org", "EXAMPLE.org.", true},
	        {"example.org", "mail.example.org", true}, /* a subdomain of d= */
	        {"example.org", "a.b.example.org", true},
	        {"mail.example.org", "example.org", false}, /* never the parent */
	        {"example.org", "badexample.org", false},   /* a label boundary */
	        {"example.org", "example.org.evil", false},
	        {"example.org", "xample.org", false},
	        {"org", "example.org", false}, /* d= of one label */
	        {"org", "org", false},
	        {"other.example", "example.org", false},
	        {"example.org", "", false},
	        {"", "example.org", false},
	        {NULL, "example.org", false},
	        {"example.org", NULL, false},
	        {".example.org", "x.example.org", false},
	        {"example.org", ".example.org", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[128];

		snprintf(what, sizeof(what), "d=%s domain=%s", rows[i].d ? rows[i].d : "NULL",
		         rows[i].domain ? rows[i].domain : "NULL");
		CHECK_INT(what, dkimverify_aligned(rows[i].d, rows[i].domain), rows[i].aligned);
	}
	check_done();
}

/* A message from alice@<env> to bob and carol at example.net with a foreign tag. */
static struct tracker_msg *
inbound_msg(const char *env, const char *tag)
{
	struct tracker_msg *m = tracker_msg_new();

	tracker_mail(m, env, NULL, "example.net", NULL, false);
	tracker_rcpt(m, "<bob@example.net>", 100);
	tracker_rcpt(m, "<carol@example.net>", 100);
	tracker_header(m, "Message-ID", "<m1@example.org>");
	if (tag != NULL)
		tracker_header(m, "Msgstatus-Id", tag);
	return m;
}

static struct dkimverify_result
result(const char *d, bool from, bool envelope)
{
	struct dkimverify_result r;

	memset(&r, 0, sizeof(r));
	strcpy(r.from_domain, "example.org");
	if (d != NULL) {
		strcpy(r.sigs[0].domain, d);
		r.sigs[0].from_aligned = from;
		r.sigs[0].envelope_aligned = envelope;
		r.nsigs = 1;
	} else
		r.why = "no DKIM signature";
	return r;
}

static void
test_remembered_with_an_aligned_signature(void **state)
{
	struct tracker_msg *m = inbound_msg("<alice@example.org>", " orgTag123 ");
	struct dkimverify_result dr = result("example.org", true, true);
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;
	struct json_tokener *tok = msevent_tokener_new();
	const char *p, *why;
	int n = 0;

	(void)state;
	assert_true(tracker_wants_dkim(m));
	assert_string_equal(m->foreign_id, "orgTag123");
	assert_string_equal(tracker_sender_domain(m), "example.org");
	tracker_inbound(m, &dr, "4XqQ5h2kLmz7", 1795348067000LL, &res, &events);
	assert_true(res.tag);
	assert_true(res.inbound);
	assert_int_equal(res.delete_tags, 1);
	assert_int_equal(res.events, 2);
	assert_true(randid_valid(res.tracking_id, strlen(res.tracking_id)));
	assert_string_not_equal(res.tracking_id, "orgTag123");
	for (p = events.data; p < events.data + events.len; n++) {
		const char *nl = strchr(p, '\n');
		struct msevent ev;

		assert_int_equal(msevent_parse(&ev, tok, p, (size_t)(nl - p), &why), 0);
		assert_int_equal(ev.type, MSEV_INBOUND);
		assert_string_equal(ev.tracking_id, res.tracking_id);
		assert_string_equal(ev.recipient, n == 0 ? "bob@example.net" : "carol@example.net");
		assert_string_equal(ev.sender, "alice@example.org");
		assert_string_equal(ev.message_id, "<m1@example.org>");
		assert_string_equal(ev.queue_id, "4XqQ5h2kLmz7");
		assert_string_equal(msevent_detail_get(&ev, "origin_tracking_id"), "orgTag123");
		assert_string_equal(msevent_detail_get(&ev, "dkim_domain"), "example.org");
		assert_string_equal(msevent_detail_get(&ev, "from_domain"), "example.org");
		assert_string_equal(msevent_detail_get(&ev, "aligned"), "envelope,from");
		msevent_clear(&ev);
		p = nl + 1;
	}
	assert_int_equal(n, 2);
	json_tokener_free(tok);
	mbuf_free(&events);
	tracker_msg_free(&m);
}

static void
test_not_remembered(void **state)
{
	static const struct {
		const char *what, *env, *tag, *d;
		bool from, envelope, second_tag, wants;
	} rows[] = {
	        {"no signature", "<alice@example.org>", "orgTag", NULL, false, false, false, true},
	        {"not aligned", "<alice@example.org>", "orgTag", "other.example", false, false,
	         false, true},
	        {"no tag", "<alice@example.org>", NULL, "example.org", true, true, false, false},
	        {"two tags", "<alice@example.org>", "orgTag", "example.org", true, true, true,
	         false},
	        {"tag not an id", "<alice@example.org>", "org tag", "example.org", true, true,
	         false, false},
	        {"tag too long", "<alice@example.org>",
	         "0123456789012345678901234567890123456789012345678901234567890123456789",
	         "example.org", true, true, false, false},
	        {"tag with a slash", "<alice@example.org>", "a/b", "example.org", true, true, false,
	         false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tracker_msg *m = inbound_msg(rows[i].env, rows[i].tag);
		struct dkimverify_result dr = result(rows[i].d, rows[i].from, rows[i].envelope);
		struct tracker_result res;
		struct mbuf events = MBUF_INIT;

		if (rows[i].second_tag)
			tracker_header(m, "Msgstatus-Id", "another");
		CHECK_INT(rows[i].what, tracker_wants_dkim(m), rows[i].wants);
		tracker_inbound(m, &dr, "4XqQ5h2kLmz7", 1, &res, &events);
		CHECK_INT(rows[i].what, res.tag, false);
		CHECK_INT(rows[i].what, res.events, 0);
		CHECK_INT(rows[i].what, events.len, 0);
		CHECK_INT(rows[i].what, res.delete_tags,
		          (rows[i].tag != NULL) + (rows[i].second_tag ? 1 : 0));
		mbuf_free(&events);
		tracker_msg_free(&m);
	}
	check_done();
}

static void
test_tracked_mail_is_never_checked(void **state)
{
	struct tracker_msg *m = tracker_msg_new();

	(void)state;
	/* our own user's submission with a tag in it: tracked (retagged), not "inbound" */
	tracker_mail(m, "<bob@example.net>", "bob@example.net", "example.net", NULL, false);
	tracker_rcpt(m, "<alice@example.org>", 100);
	tracker_header(m, "Msgstatus-Id", "orgTag");
	assert_true(m->enabled);
	assert_false(tracker_wants_dkim(m));
	tracker_msg_free(&m);
}

static void
test_envelope_alignment_is_preferred(void **state)
{
	struct tracker_msg *m = inbound_msg("<bounce@lists.example.org>", "orgTag");
	struct dkimverify_result dr;
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;

	(void)state;
	memset(&dr, 0, sizeof(dr));
	strcpy(dr.from_domain, "example.com");
	/* first a signature for the From domain only, then one for the envelope domain */
	strcpy(dr.sigs[0].domain, "example.com");
	dr.sigs[0].from_aligned = true;
	strcpy(dr.sigs[1].domain, "example.org");
	dr.sigs[1].envelope_aligned = true;
	dr.nsigs = 2;
	tracker_inbound(m, &dr, NULL, 1, &res, &events);
	assert_true(res.tag);
	assert_non_null(strstr(events.data, "\"dkim_domain\":\"example.org\""));
	assert_non_null(strstr(events.data, "\"aligned\":\"envelope\""));
	mbuf_free(&events);
	tracker_msg_free(&m);
}

/* A message with ten signatures: four are checked, the other six ignored (each would cost
   a body hash of its own and a key lookup). */
static void
test_signatures_capped(void **state)
{
	static const char body[] = "Hello from A.\r\n";
	const char *error = NULL;
	struct dkimverify *v = dkimverify_new(NULL, 1000, &error);
	struct dkimverify_msg *m;
	struct dkimverify_result res;
	char sig[300];

	(void)state;
	assert_non_null(v);
	m = dkimverify_start(v, "4XqQ5h2kLmz7");
	for (int i = 0; i < 10; i++) {
		snprintf(sig, sizeof(sig),
		         "v=1; a=rsa-sha256; c=relaxed/relaxed; d=relay%d.example; s=s1; h=from;"
		         " l=%d; bh=AAAA; b=AAAA",
		         i, i);
		dkimverify_header(m, "DKIM-Signature", sig);
	}
	dkimverify_header(m, "From", "alice@example.org");
	dkimverify_header(m, "Subject", "ten signatures");
	dkimverify_eoh(m);
	dkimverify_body(m, (const unsigned char *)body, strlen(body));
	dkimverify_eom(m, "example.org", &res);
	CHECK_INT("signatures ignored", res.ignored, 10 - DKIMVERIFY_LOOKUPS_MAX);
	CHECK_INT("none valid", res.nsigs, 0);
	dkimverify_msg_free(&m);
	dkimverify_free(&v);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_alignment),
	        cmocka_unit_test(test_remembered_with_an_aligned_signature),
	        cmocka_unit_test(test_not_remembered),
	        cmocka_unit_test(test_tracked_mail_is_never_checked),
	        cmocka_unit_test(test_envelope_alignment_is_preferred),
	        cmocka_unit_test(test_signatures_capped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
