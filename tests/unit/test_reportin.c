/*
 * test_reportin - the ENVID mac (milter/envmac.c) and the report events the milter makes of
 * a DSN or MDN that comes back (milter/reportin.c): which ENVIDs prove our request, what
 * each event carries, the raw report on the first entry within one record, and which
 * reports are consumed.
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
#include <unistd.h>

#include "check.h"
#include "dkimverify.h"
#include "envmac.h"
#include "mbuf.h"
#include "msevent.h"
#include "reportin.h"

#define TID "abcdefghijklmnopqrstuvwxyz"
#define NOW INT64_C(1796000000000)

static const unsigned char secret[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char other[32] = "fedcba9876543210fedcba9876543210";

static void
test_envmac(void **state)
{
	char envid[ENVMAC_ENVID_LEN + 1], again[ENVMAC_ENVID_LEN + 1], tid[RANDID_LEN + 1];
	char bad[ENVMAC_ENVID_LEN + 2];

	(void)state;
	envmac_make(envid, secret, sizeof(secret), TID, false);
	CHECK_INT("length", strlen(envid), RANDID_LEN + 1 + ENVMAC_LEN);
	CHECK_INT("starts with the tracking id", strncmp(envid, TID ".", RANDID_LEN + 1), 0);
	envmac_make(again, secret, sizeof(secret), TID, false);
	CHECK_STR("deterministic", again, envid);
	/* HMAC-SHA256("0123...cdef" x2, TID), first 10 bytes, base32 (Python hmac,
	 * base64.b32encode) */
	CHECK_STR("known value", envid + RANDID_LEN + 1, "cngo7vmm6r3zuoy7");
	CHECK_INT("valid", envmac_check(envid, secret, sizeof(secret), tid, NULL), 1);
	CHECK_STR("its tracking id", tid, TID);
	CHECK_INT("another site's secret", envmac_check(envid, other, sizeof(other), tid, NULL), 0);
	CHECK_INT("no secret", envmac_check(envid, secret, 0, tid, NULL), 0);
	CHECK_INT("the tracking id alone", envmac_check(TID, secret, sizeof(secret), tid, NULL), 0);
	CHECK_INT("NULL", envmac_check(NULL, secret, sizeof(secret), tid, NULL), 0);
	/* case folded by a mail system: still ours */
	for (size_t i = 0; i < sizeof(again) - 1; i++)
		again[i] = (char)(again[i] >= 'a' && again[i] <= 'z' ? again[i] - 32 : again[i]);
	CHECK_INT("upper case", envmac_check(again, secret, sizeof(secret), tid, NULL), 1);
	CHECK_STR("upper case: the id in lower case", tid, TID);
	/* one character of the mac changed, or of the id */
	memcpy(bad, envid, sizeof(envid));
	bad[ENVMAC_ENVID_LEN - 1] = bad[ENVMAC_ENVID_LEN - 1] == 'a' ? 'b' : 'a';
	CHECK_INT("mac changed", envmac_check(bad, secret, sizeof(secret), tid, NULL), 0);
	memcpy(bad, envid, sizeof(envid));
	bad[0] = 'b';
	CHECK_INT("id changed", envmac_check(bad, secret, sizeof(secret), tid, NULL), 0);
	memcpy(bad, envid, sizeof(envid));
	bad[RANDID_LEN] = '-';
	CHECK_INT("no dot", envmac_check(bad, secret, sizeof(secret), tid, NULL), 0);
	snprintf(bad, sizeof(bad), "%sa", envid);
	CHECK_INT("too long", envmac_check(bad, secret, sizeof(secret), tid, NULL), 0);
	CHECK_INT("too short", envmac_check(envid + 1, secret, sizeof(secret), tid, NULL), 0);
	/* the keep variant: another mac, verified and told apart */
	{
		bool keep = false;

		envmac_make(again, secret, sizeof(secret), TID, true);
		CHECK_INT("keep: another mac", strcmp(again, envid) != 0, 1);
		CHECK_INT("keep: valid", envmac_check(again, secret, sizeof(secret), tid, &keep),
		          1);
		CHECK_INT("keep: said so", keep, 1);
		CHECK_INT("plain: valid", envmac_check(envid, secret, sizeof(secret), tid, &keep),
		          1);
		CHECK_INT("plain: not keep", keep, 0);
		CHECK_INT("keep: another site's secret",
		          envmac_check(again, other, sizeof(other), tid, &keep), 0);
	}
	check_done();
}

static void
test_envmac_load(void **state)
{
	unsigned char buf[ENVMAC_SECRET_MAX];
	char path[] = "/tmp/test_reportin.XXXXXX";
	size_t len = 0;
	const char *err = NULL;
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fwrite("short", 1, 5, f);
	fclose(f);
	CHECK_INT("too short", envmac_load(path, buf, &len, &err), -1);
	CHECK_HAS("too short: says so", err, "at least 16");
	f = fopen(path, "w");
	fwrite(secret, 1, sizeof(secret), f);
	fclose(f);
	CHECK_INT("32 bytes", envmac_load(path, buf, &len, &err), 0);
	CHECK_INT("32 bytes: length", len, 32);
	CHECK_INT("32 bytes: content", memcmp(buf, secret, 32), 0);
	unlink(path);
	CHECK_INT("missing", envmac_load(path, buf, &len, &err), -1);
	CHECK_HAS("missing: names the setting", err, "report_secret_file");
	check_done();
}

/* A Postfix DSN about rcpts ("addr action status" per entry) with envid. */
static char *
dsn(const char *envid, const char *const *entries, size_t n, const char *body_extra)
{
	struct mbuf b = MBUF_INIT;

	mbuf_printf(&b,
	            "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.remote.example\r\n"
	            "To: alice@example.org\r\nMIME-Version: 1.0\r\n"
	            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	            "\tboundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nReport."
	            "%s\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
	            "Reporting-MTA: dns; mx.remote.example\r\nOriginal-Envelope-Id: %s\r\n",
	            body_extra ? body_extra : "", envid);
	for (size_t i = 0; i < n; i++) {
		char addr[128], action[32], status[16];
		sscanf(entries[i], "%127s %31s %15s", addr, action, status);
		mbuf_printf(&b,
		            "\r\nFinal-Recipient: rfc822; %s\r\nOriginal-Recipient: rfc822;%s\r\n"
		            "Action: %s\r\nStatus: %s\r\nRemote-MTA: dns; mx.remote.example\r\n"
		            "Diagnostic-Code: smtp; %s %s %s\r\n",
		            addr, addr, action, status, status[0] == '2' ? "250" : "550", status,
		            status[0] == '2' ? "Ok" : "User unknown");
	}
	mbuf_puts(&b,
	          "\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	          "Message-ID: <hello-1@example.org>\r\nMsgstatus-Id: " TID "\r\n\r\n--b--\r\n");
	return (char *)mbuf_str(&b);
}

/* the next read_events() reads the start of a longer message (the milter stopped keeping) */
static bool input_cut;

/* Read msg; the events parsed into evs (up to 8); returns their number, -1 if refused. */
static int
read_events(const char *msg, const struct dkimverify_result *dkim, struct reportin_result *res,
            struct msevent *evs, size_t *reclen_r)
{
	struct reportin_input in = {.data = msg,
	                            .len = strlen(msg),
	                            .secret = secret,
	                            .secret_len = sizeof(secret),
	                            .dkim = dkim,
	                            .now_ms = NOW,
	                            .cut = input_cut};
	struct mbuf out = MBUF_INIT;
	struct json_tokener *tok = msevent_tokener_new();
	const char *why;
	int n = 0;

	if (reportin_read(&in, res, &out, &why) < 0) {
		mbuf_free(&out);
		json_tokener_free(tok);
		return -1;
	}
	for (char *p = out.data, *nl; p < out.data + out.len && n < 8; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		if (n == 0 && reclen_r != NULL)
			*reclen_r = (size_t)(nl - p) + 1;
		if (msevent_parse(&evs[n], tok, p, (size_t)(nl - p), &why) < 0)
			fail_msg("record %d does not parse: %s", n, why);
		n++;
	}
	mbuf_free(&out);
	json_tokener_free(tok);
	return n;
}

static const char *
detail(const struct msevent *ev, const char *key)
{
	struct json_object *v;

	if (ev->details == NULL || !json_object_object_get_ex(ev->details, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static void
clear_all(struct msevent *evs, int n)
{
	for (int i = 0; i < n; i++)
		msevent_clear(&evs[i]);
}

static void
test_success_dsn_of_ours(void **state)
{
	char envid[ENVMAC_ENVID_LEN + 1];
	const char *e[] = {"bob@B.Example delivered 2.0.0", "Carol@b.example relayed 2.0.0"};
	struct dkimverify_result dkim = {.from_domain = "b.example", .nsigs = 1};
	struct reportin_result res;
	struct msevent evs[8];
	char *msg;
	int n;

	(void)state;
	snprintf(dkim.sigs[0].domain, sizeof(dkim.sigs[0].domain), "b.example");
	envmac_make(envid, secret, sizeof(secret), TID, false);
	msg = dsn(envid, e, 2, NULL);
	n = read_events(msg, &dkim, &res, evs, NULL);
	CHECK_INT("two entries", n, 2);
	CHECK_INT("envid ok", res.envid_ok, 1);
	CHECK_INT("consumed", res.consume, 1);
	CHECK_STR("tracking id", res.tracking_id, TID);
	for (int i = 0; i < n; i++) {
		CHECK_INT("type", evs[i].type, MSEV_REPORT);
		CHECK_STR("tracking id", evs[i].tracking_id, TID);
		CHECK_STR("message id", evs[i].message_id, "<hello-1@example.org>");
		CHECK_STR("kind", detail(&evs[i], "kind"), "dsn");
		CHECK_STR("envid_ok", detail(&evs[i], "envid_ok"), "true");
		CHECK_STR("dkim", detail(&evs[i], "dkim"), "b.example");
		CHECK_STR("from_domain", detail(&evs[i], "from_domain"), "b.example");
		CHECK_STR("reporting_mta", detail(&evs[i], "reporting_mta"), "mx.remote.example");
		CHECK_STR("report_id", detail(&evs[i], "report_id"), res.report_id);
	}
	CHECK_STR("recipient, its domain lower case", evs[0].recipient, "bob@b.example");
	CHECK_STR("status", detail(&evs[0], "status"), "delivered");
	CHECK_STR("action", detail(&evs[0], "action"), "delivered");
	CHECK_STR("dsn", detail(&evs[0], "dsn"), "2.0.0");
	CHECK_STR("smtp_reply", detail(&evs[0], "smtp_reply"), "250 2.0.0 Ok");
	CHECK_STR("remote_mta", detail(&evs[0], "remote_mta"), "mx.remote.example");
	CHECK_STR("local part kept", evs[1].recipient, "Carol@b.example");
	CHECK_STR("relayed", detail(&evs[1], "status"), "relayed");
	CHECK_INT("raw on the first entry", detail(&evs[0], "raw") != NULL, 1);
	CHECK_STR("raw is the message", detail(&evs[0], "raw"), msg);
	CHECK_STR("not cut", detail(&evs[0], "raw_truncated"), NULL);
	CHECK_STR("raw on the first entry only", detail(&evs[1], "raw"), NULL);
	clear_all(evs, n);
	free(msg);
	check_done();
}

static void
test_not_consumed(void **state)
{
	char envid[ENVMAC_ENVID_LEN + 1];
	const char *ok[] = {"bob@b.example delivered 2.0.0"};
	const char *mixed[] = {"bob@b.example delivered 2.0.0", "nobody@b.example failed 5.1.1"};
	struct reportin_result res;
	struct msevent evs[8];
	char *msg;
	int n;

	(void)state;
	envmac_make(envid, secret, sizeof(secret), TID, false);
	/* a failure reaches the user */
	msg = dsn(envid, mixed, 2, NULL);
	n = read_events(msg, NULL, &res, evs, NULL);
	CHECK_INT("failure: events", n, 2);
	CHECK_INT("failure: envid ok", res.envid_ok, 1);
	CHECK_INT("failure: kept", res.consume, 0);
	CHECK_STR("failure: bounced", detail(&evs[1], "status"), "bounced");
	CHECK_STR("failure: no dkim", detail(&evs[1], "dkim"), NULL);
	clear_all(evs, n);
	free(msg);
	/* all good, but the submitter asked for DSNs too (the keep mac): verified, not consumed */
	envmac_make(envid, secret, sizeof(secret), TID, true);
	msg = dsn(envid, ok, 1, NULL);
	n = read_events(msg, NULL, &res, evs, NULL);
	CHECK_INT("keep: events", n, 1);
	CHECK_INT("keep: envid ok", res.envid_ok, 1);
	CHECK_STR("keep: tracking id", res.tracking_id, TID);
	CHECK_INT("keep: kept", res.consume, 0);
	clear_all(evs, n);
	free(msg);
	envmac_make(envid, secret, sizeof(secret), TID, false);
	/* the tracking id alone (anyone who saw the message knows it): not ours */
	msg = dsn(TID, ok, 1, NULL);
	n = read_events(msg, NULL, &res, evs, NULL);
	CHECK_INT("bare id: events", n, 1);
	CHECK_INT("bare id: envid not ok", res.envid_ok, 0);
	CHECK_INT("bare id: kept", res.consume, 0);
	CHECK_STR("bare id: tracking id from the returned headers", evs[0].tracking_id, TID);
	CHECK_STR("bare id: envid_ok false", detail(&evs[0], "envid_ok"), "false");
	clear_all(evs, n);
	free(msg);
	/* another site's mac */
	envmac_make(envid, other, sizeof(other), TID, false);
	msg = dsn(envid, ok, 1, NULL);
	n = read_events(msg, NULL, &res, evs, NULL);
	CHECK_INT("other secret: envid not ok", res.envid_ok, 0);
	CHECK_INT("other secret: kept", res.consume, 0);
	clear_all(evs, n);
	free(msg);
	check_done();
}

static void
test_mdn(void **state)
{
	static const char mdn[] =
	        "From: Carol <carol@b.example>\r\nTo: alice@example.org\r\nMIME-Version: 1.0\r\n"
	        "Content-Type: multipart/report; report-type=disposition-notification; "
	        "boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--m\r\n"
	        "Content-Type: message/disposition-notification\r\n\r\n"
	        "Reporting-UA: b.example; Thunderbird\r\nFinal-Recipient: "
	        "rfc822;Carol@B.example\r\n"
	        "Original-Message-ID: <hello-1@example.org>\r\n"
	        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--m--\r\n";
	struct reportin_result res;
	struct msevent evs[8];
	int n;

	(void)state;
	n = read_events(mdn, NULL, &res, evs, NULL);
	CHECK_INT("one entry", n, 1);
	CHECK_INT("kept", res.consume, 0);
	CHECK_STR("no tracking id", evs[0].tracking_id, NULL);
	CHECK_STR("message id", evs[0].message_id, "<hello-1@example.org>");
	CHECK_STR("recipient", evs[0].recipient, "Carol@b.example");
	CHECK_STR("kind", detail(&evs[0], "kind"), "mdn");
	CHECK_STR("status", detail(&evs[0], "status"), "read");
	CHECK_STR("disposition", detail(&evs[0], "disposition"),
	          "manual-action/MDN-sent-manually; displayed");
	clear_all(evs, n);
	check_done();
}

static void
test_raw_cut_to_fit(void **state)
{
	char envid[ENVMAC_ENVID_LEN + 1];
	const char *ok[] = {"bob@b.example delivered 2.0.0"};
	struct reportin_result res;
	struct msevent evs[8];
	struct mbuf big = MBUF_INIT;
	size_t reclen = 0;
	char *msg;
	int n;

	(void)state;
	/* 40 KiB of text, with quotes, tabs, non-UTF-8 bytes and NULs-to-be to escape */
	for (int i = 0; i < 4000; i++)
		mbuf_puts(&big, "\"q\"\t\xff\xfe\xe2\x82\xac\r\n");
	envmac_make(envid, secret, sizeof(secret), TID, false);
	msg = dsn(envid, ok, 1, mbuf_str(&big));
	n = read_events(msg, NULL, &res, evs, &reclen);
	CHECK_INT("one entry", n, 1);
	CHECK_INT("the record fits", reclen <= MSEVENT_RECORD_MAX, 1);
	CHECK_INT("and is nearly full", reclen > MSEVENT_RECORD_MAX / 2, 1);
	CHECK_STR("cut", detail(&evs[0], "raw_truncated"), "true");
	CHECK_INT("raw starts as the message", strncmp(detail(&evs[0], "raw"), msg, 100), 0);
	clear_all(evs, n);
	mbuf_free(&big);
	free(msg);
	check_done();
}

/* The milter kept only the start of a large report: its parts are read, and the raw text
   says it is cut even when what was kept fits in the record. */
static void
test_input_cut(void **state)
{
	char envid[ENVMAC_ENVID_LEN + 1];
	const char *ok[] = {"bob@b.example delivered 2.0.0"};
	struct reportin_result res;
	struct msevent evs[8];
	char *msg, *cut;
	int n;

	(void)state;
	envmac_make(envid, secret, sizeof(secret), TID, false);
	msg = dsn(envid, ok, 1, NULL);
	cut = strstr(msg, "Msgstatus-Id: " TID "\r\n\r\n--b--");
	assert_non_null(cut);
	cut[sizeof("Msgstatus-Id: " TID)] =
	        '\0'; /* where the milter stopped: no closing boundary */
	input_cut = true;
	n = read_events(msg, NULL, &res, evs, NULL);
	input_cut = false;
	CHECK_INT("read", n, 1);
	CHECK_STR("delivered", detail(&evs[0], "status"), "delivered");
	CHECK_STR("raw as kept", detail(&evs[0], "raw"), msg);
	CHECK_STR("said to be cut", detail(&evs[0], "raw_truncated"), "true");
	clear_all(evs, n);
	free(msg);
	check_done();
}

static void
test_refused(void **state)
{
	static const char plain[] = "From: a@b\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
	const char *ok[] = {"bob@b.example delivered 2.0.0"};
	struct reportin_result res;
	struct msevent evs[8];
	char *msg;

	(void)state;
	CHECK_INT("not a report", read_events(plain, NULL, &res, evs, NULL), -1);
	/* no ENVID of ours and no returned headers: no message to attach it to */
	msg = dsn("x", ok, 1, NULL);
	*strstr(msg, "Message-ID: <hello-1") = 'X';
	*strstr(msg, "Msgstatus-Id: ") = 'X';
	CHECK_INT("names no message", read_events(msg, NULL, &res, evs, NULL), -1);
	free(msg);
	check_done();
}

static void
test_candidate(void **state)
{
	(void)state;
	CHECK_INT("report", reportin_candidate("multipart/report; report-type=x", "x@y"), 1);
	CHECK_INT("report, case", reportin_candidate(" Multipart/Report;", "x@y"), 1);
	CHECK_INT("reports", reportin_candidate("multipart/reports", ""), 0);
	CHECK_INT("mixed from <>", reportin_candidate("multipart/mixed; boundary=x", ""), 1);
	CHECK_INT("mixed from a user", reportin_candidate("multipart/mixed", "x@y"), 0);
	CHECK_INT("plain", reportin_candidate("text/plain", ""), 0);
	CHECK_INT("none", reportin_candidate(NULL, ""), 0);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_envmac),
	        cmocka_unit_test(test_envmac_load),
	        cmocka_unit_test(test_success_dsn_of_ours),
	        cmocka_unit_test(test_not_consumed),
	        cmocka_unit_test(test_mdn),
	        cmocka_unit_test(test_raw_cut_to_fit),
	        cmocka_unit_test(test_input_cut),
	        cmocka_unit_test(test_refused),
	        cmocka_unit_test(test_candidate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
