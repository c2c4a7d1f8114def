/*
 * test_dsnreq - which DSNs the milter asks for (milter/dsnreq.c): remote recipients only,
 * what the submitter asked for wins, parameters bounded and xtext-encoded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsnreq.h"

#define T "smtp relay"

static void
test_param(void **state)
{
	const char *p[] = {"SIZE=12", "ret=hdrs", "ENVID=abc", "NOTIFYX=1", NULL};

	(void)state;
	assert_string_equal(dsnreq_param(p, "RET"), "hdrs");
	assert_string_equal(dsnreq_param(p, "envid"), "abc");
	assert_null(dsnreq_param(p, "NOTIFY"));
	assert_null(dsnreq_param(NULL, "RET"));
}

static void
test_transport_listed(void **state)
{
	static const struct {
		const char *list, *mailer;
		bool want;
	} cases[] = {
	        {"smtp relay", "smtp", true},
	        {"smtp relay", "relay", true},
	        {"smtp, relay", "relay", true},
	        {"smtp relay", "lmtp", false},
	        {"smtp relay", "smtpx", false},
	        {"smtp relay", "smt", false},
	        {"smtp relay", "", false},
	        {"smtp relay", NULL, false},
	        {"", "smtp", false},
	        {NULL, "smtp", false},
	        {"smtp relay", "error", false},
	        {"smtp relay", "SMTP", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = dsnreq_transport_listed(cases[i].list, cases[i].mailer);
		if (got != cases[i].want)
			fail_msg("list \"%s\" mailer \"%s\": got %d, want %d",
			         cases[i].list ? cases[i].list : "(null)",
			         cases[i].mailer ? cases[i].mailer : "(null)", got, cases[i].want);
	}
}

static void
test_xtext(void **state)
{
	static const struct {
		const char *in, *want; /* want NULL: -1 */
	} cases[] = {
	        {"carol@remote.example", "carol@remote.example"},
	        {"a+tag@x.example", "a+2Btag@x.example"},
	        {"a=b@x.example", "a+3Db@x.example"},
	        {"\"a b\"@x.example", "\"a+20b\"@x.example"},
	        {"", ""},
	        {"caf\xc3\xa9@x.example", NULL},
	        {"a\tb@x", NULL},
	};
	char out[64], small[4];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = dsnreq_xtext(out, sizeof(out), cases[i].in);
		if (cases[i].want == NULL ? rc != -1 : rc != 0 || strcmp(out, cases[i].want) != 0)
			fail_msg("xtext \"%s\": got %d \"%s\", want \"%s\"", cases[i].in, rc,
			         rc == 0 ? out : "", cases[i].want ? cases[i].want : "-1");
	}
	assert_int_equal(dsnreq_xtext(small, sizeof(small), "abc"), 0);
	assert_int_equal(dsnreq_xtext(small, sizeof(small), "abcd"), -1);
	assert_int_equal(dsnreq_xtext(small, sizeof(small), "a+"), -1);
}

/* One message: a MAIL FROM and recipients "addr|mailer|params..." (params space separated). */
struct rcase {
	const char *name;
	bool enabled;
	const char *mail_params; /* space separated, "" none */
	const char *rcpts[4];
	/* want */
	const char *from_args;  /* NULL: no chgfrom */
	const char *changed[4]; /* "<addr> ARGS" */
	size_t remote, kept;
};

static void
split(char *s, const char *argv[], size_t max)
{
	size_t n = 0;

	for (char *t = strtok(s, " "); t != NULL && n + 1 < max; t = strtok(NULL, " "))
		argv[n++] = t;
	argv[n] = NULL;
}

static void
test_plan(void **state)
{
	static const struct rcase cases[] = {
	        {"remote recipient",
	         true,
	         "",
	         {"<carol@remote.example>|smtp|"},
	         "RET=HDRS ENVID=TID",
	         {"<carol@remote.example> NOTIFY=SUCCESS,FAILURE,DELAY "
	          "ORCPT=rfc822;carol@remote.example"},
	         1,
	         0},
	        {"local recipient only", true, "", {"<bob@example.org>|lmtp|"}, NULL, {NULL}, 0, 0},
	        {"mixed",
	         true,
	         "",
	         {"<bob@example.org>|lmtp|", "<d@r.example>|relay|", "<e@r.example>|error|"},
	         "RET=HDRS ENVID=TID",
	         {"<d@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;d@r.example"},
	         1,
	         0},
	        {"not enabled", false, "", {"<carol@remote.example>|smtp|"}, NULL, {NULL}, 0, 0},
	        {"no rcpt_mailer (Postfix did not say)",
	         true,
	         "",
	         {"<c@r.example>||"},
	         NULL,
	         {NULL},
	         0,
	         0},
	        {"NOTIFY=NEVER wins",
	         true,
	         "",
	         {"<c@r.example>|smtp|NOTIFY=NEVER"},
	         NULL,
	         {NULL},
	         1,
	         1},
	        {"their NOTIFY wins, ENVID still ours",
	         true,
	         "",
	         {"<c@r.example>|smtp|NOTIFY=FAILURE"},
	         "RET=HDRS ENVID=TID",
	         {NULL},
	         1,
	         1},
	        {"their ORCPT kept",
	         true,
	         "",
	         {"<c@r.example>|smtp|ORCPT=rfc822;old+2Bx@r.example"},
	         "RET=HDRS ENVID=TID",
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;old+2Bx@r.example"},
	         1,
	         0},
	        {"their RET wins",
	         true,
	         "RET=FULL",
	         {"<c@r.example>|smtp|"},
	         "RET=FULL ENVID=TID",
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@r.example"},
	         1,
	         0},
	        {"their ENVID wins",
	         true,
	         "ENVID=theirs",
	         {"<c@r.example>|smtp|"},
	         "RET=HDRS ENVID=theirs",
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@r.example"},
	         1,
	         0},
	        {"their RET and ENVID: MAIL FROM unchanged",
	         true,
	         "RET=HDRS ENVID=x",
	         {"<c@r.example>|smtp|"},
	         NULL,
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@r.example"},
	         1,
	         0},
	        {"unusable ENVID: MAIL FROM unchanged",
	         true,
	         "ENVID=a\x01z",
	         {"<c@r.example>|smtp|"},
	         NULL,
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@r.example"},
	         1,
	         0},
	        {"unusable ORCPT: recipient left alone",
	         true,
	         "",
	         {"<c@r.example>|smtp|ORCPT=rfc822;\x7f"},
	         "RET=HDRS ENVID=TID",
	         {NULL},
	         1,
	         1},
	        {"xtext ORCPT",
	         true,
	         "",
	         {"<a+b=c@r.example>|smtp|"},
	         "RET=HDRS ENVID=TID",
	         {"<a+b=c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY "
	          "ORCPT=rfc822;a+2Bb+3Dc@r.example"},
	         1,
	         0},
	        {"UTF-8 recipient: no ORCPT of ours",
	         true,
	         "SMTPUTF8",
	         {"<j\xc3\xb6@r.example>|smtp|"},
	         "RET=HDRS ENVID=TID",
	         {"<j\xc3\xb6@r.example> NOTIFY=SUCCESS,FAILURE,DELAY"},
	         1,
	         0},
	        {"duplicate: planned once",
	         true,
	         "",
	         {"<c@r.example>|smtp|", "<C@r.example>|smtp|"},
	         "RET=HDRS ENVID=TID",
	         {"<c@r.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@r.example"},
	         2,
	         1},
	        {"duplicate with their NOTIFY: both left alone",
	         true,
	         "",
	         {"<c@r.example>|smtp|", "<c@r.example>|smtp|NOTIFY=NEVER"},
	         "RET=HDRS ENVID=TID",
	         {NULL},
	         2,
	         2},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rcase *c = &cases[i];
		struct dsnreq *d = dsnreq_new();
		struct dsnreq_plan plan;
		char mp[128];
		const char *margv[8];
		size_t nwant = 0;
		bool any;

		snprintf(mp, sizeof(mp), "%s", c->mail_params);
		split(mp, margv, 8);
		dsnreq_mail(d, "<alice@example.org>", margv, c->enabled);
		for (size_t r = 0; r < 4 && c->rcpts[r] != NULL; r++) {
			char buf[256], *addr, *mailer, *params;
			const char *rargv[8];

			snprintf(buf, sizeof(buf), "%s", c->rcpts[r]);
			addr = strtok(buf, "|");
			mailer = strtok(NULL, "|");
			params = strtok(NULL, "");
			if (params != NULL)
				split(params, rargv, 8);
			else
				rargv[0] = NULL;
			dsnreq_rcpt(d, addr, rargv, mailer, T, 100);
		}
		any = dsnreq_plan(d, "TID", &plan);
		while (nwant < 4 && c->changed[nwant] != NULL)
			nwant++;
		if (any != (c->from_args != NULL || nwant > 0))
			fail_msg("%s: plan says %d", c->name, any);
		if ((c->from_args == NULL) != !plan.chgfrom ||
		    (plan.chgfrom && (strcmp(plan.from_args, c->from_args) != 0 ||
		                      strcmp(plan.from, "<alice@example.org>") != 0)))
			fail_msg("%s: chgfrom got \"%s\", want \"%s\"", c->name,
			         plan.chgfrom ? plan.from_args : "(none)",
			         c->from_args ? c->from_args : "(none)");
		if (plan.nrcpts != nwant || plan.remote != c->remote || plan.kept != c->kept)
			fail_msg("%s: got %zu changed, %zu remote, %zu kept; want %zu, %zu, %zu",
			         c->name, plan.nrcpts, plan.remote, plan.kept, nwant, c->remote,
			         c->kept);
		for (size_t r = 0; r < nwant; r++) {
			char got[600];
			snprintf(got, sizeof(got), "%s %s", plan.rcpts[r].rcpt, plan.rcpts[r].args);
			if (strcmp(got, c->changed[r]) != 0)
				fail_msg("%s: recipient %zu got \"%s\", want \"%s\"", c->name, r,
				         got, c->changed[r]);
		}
		dsnreq_plan_clear(&plan);
		dsnreq_free(&d);
		assert_null(d);
	}
}

static void
test_bounds(void **state)
{
	struct dsnreq *d = dsnreq_new();
	struct dsnreq_plan plan;
	char addr[64], longp[DSNREQ_PARAM_MAX + 20];
	const char *p[] = {longp, NULL};

	(void)state;
	dsnreq_mail(d, "<alice@example.org>", NULL, true);
	for (int i = 0; i < 20; i++) {
		snprintf(addr, sizeof(addr), "<r%d@r.example>", i);
		dsnreq_rcpt(d, addr, NULL, "smtp", T, 5);
	}
	assert_true(dsnreq_plan(d, "TID", &plan));
	assert_int_equal(plan.nrcpts, 5); /* max recipients */
	dsnreq_plan_clear(&plan);
	dsnreq_free(&d);

	/* an over-long ORCPT of the submitter's: left alone, not truncated */
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	memcpy(longp, "ORCPT=rfc822;", 13);
	d = dsnreq_new();
	dsnreq_mail(d, "<alice@example.org>", NULL, true);
	dsnreq_rcpt(d, "<c@r.example>", p, "smtp", T, 5);
	assert_true(dsnreq_plan(d, "TID", &plan));
	assert_int_equal(plan.nrcpts, 0);
	assert_int_equal(plan.kept, 1);
	assert_true(plan.chgfrom);
	dsnreq_plan_clear(&plan);
	/* a new MAIL FROM on the same object starts a new transaction */
	dsnreq_mail(d, "<other@example.org>", NULL, false);
	assert_false(dsnreq_plan(d, "TID", &plan));
	dsnreq_plan_clear(&plan);
	dsnreq_mail(d, "<other@example.org>", NULL, true);
	dsnreq_rcpt(d, "<e@r.example>", NULL, "smtp", T, 5);
	assert_true(dsnreq_plan(d, "TID", &plan));
	assert_int_equal(plan.remote, 1); /* not the recipient of the last transaction */
	assert_int_equal(plan.nrcpts, 1);
	assert_string_equal(plan.rcpts[0].rcpt, "<e@r.example>");
	assert_string_equal(plan.from, "<other@example.org>");
	dsnreq_plan_clear(&plan);
	dsnreq_free(&d);
}

/* The submitter's own NOTIFY (other than NEVER), for any recipient, local ones too: their
   reports get the keep mac and are never consumed. */
static void
test_submitter_asks(void **state)
{
	static const char *const success[] = {"NOTIFY=SUCCESS", NULL};
	static const char *const delay[] = {"NOTIFY=DELAY,FAILURE", NULL};
	static const char *const never[] = {"NOTIFY=NEVER", NULL};
	struct dsnreq *d = dsnreq_new();

	(void)state;
	dsnreq_mail(d, "<a@example.org>", NULL, true);
	dsnreq_rcpt(d, "<b@r.example>", NULL, "smtp", T, 5);
	assert_false(dsnreq_submitter_asks(d)); /* no NOTIFY: ours to ask and to consume */
	dsnreq_rcpt(d, "<c@r.example>", never, "smtp", T, 5);
	assert_false(dsnreq_submitter_asks(d)); /* NEVER: they want none */
	dsnreq_rcpt(d, "<d@r.example>", success, "smtp", T, 5);
	assert_true(dsnreq_submitter_asks(d)); /* a remote recipient with SUCCESS */
	dsnreq_mail(d, "<a@example.org>", NULL, true);
	dsnreq_rcpt(d, "<b@r.example>", NULL, "smtp", T, 5);
	dsnreq_rcpt(d, "<l@example.org>", delay, "lmtp", T, 5);
	assert_true(dsnreq_submitter_asks(d)); /* a local one: the ENVID is the envelope's */
	dsnreq_mail(d, "<a@example.org>", NULL, false);
	assert_false(dsnreq_submitter_asks(d)); /* a new transaction */
	dsnreq_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_param),  cmocka_unit_test(test_transport_listed),
	        cmocka_unit_test(test_xtext),  cmocka_unit_test(test_plan),
	        cmocka_unit_test(test_bounds), cmocka_unit_test(test_submitter_asks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
