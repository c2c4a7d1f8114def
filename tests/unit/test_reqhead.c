/*
 * test_reqhead - unit tests for statusd/reqhead.c, the check of an HTTP request head
 * before libwebsockets sees it (RFC 9112): where a head ends, each status a bad head gets
 * with its detail, and the head lws gets for a good one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reqhead.h"

#include "check.h"

#define GET "GET /api/v1/messages HTTP/1.1\r\n"

/* Where the head ends, fed at once and then one byte at a time. */
static void
test_end(void **state)
{
	static const struct {
		const char *in;
		long end; /* -1: refused */
		unsigned status;
	} rows[] = {
	        {GET "Host: x\r\n\r\n", 42, 0},
	        {GET "Host: x\r\n\r\nbody", 42, 0},
	        {GET "\r\n", 33, 0},
	        {"\r\n\r\n" GET "\r\n", 37, 0}, /* blank lines before it are skipped */
	        {GET "Host: x\r\n", 0, 0},
	        {GET "Host: x\r\n\r", 0, 0},
	        {"GET / HTTP/1.1\n\n", -1, 400},
	        {GET "Host: x\n\r\n", -1, 400},
	        {GET "Host: x\rY\r\n\r\n", -1, 400},
	        {GET "A:\r\n\r\n", 37, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = strlen(rows[i].in);
		struct reqhead_scan scan = {0}, scan1 = {0};
		unsigned status = 0, status1 = 0;
		const char *error = NULL, *error1 = NULL;
		long got = 0;
		char what[64];

		snprintf(what, sizeof(what), "end row %zu", i);
		CHECK_INT(what, reqhead_end(rows[i].in, len, &scan, &status, &error), rows[i].end);
		CHECK_INT(what, status, rows[i].status);
		for (size_t n = 1; n <= len && got == 0; n++)
			got = reqhead_end(rows[i].in, n, &scan1, &status1, &error1);
		CHECK_INT(what, got, rows[i].end);
		CHECK_INT(what, status1, rows[i].status);
		if (rows[i].end < 0)
			CHECK_HAS(what, error, "CR LF");
	}
	check_done();
}

/* REQHEAD_MAX bytes without an end: 414 in the request line, else 431. */
static void
test_too_large(void **state)
{
	static char buf[REQHEAD_MAX + 100];
	struct reqhead_scan scan = {0};
	const char *error = NULL;
	unsigned status = 0;

	(void)state;
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET /", 5);
	CHECK_INT("long line", reqhead_end(buf, REQHEAD_MAX - 1, &scan, &status, &error), 0);
	CHECK_INT("long line", reqhead_end(buf, REQHEAD_MAX, &scan, &status, &error), -1);
	CHECK_INT("long line", status, 414);
	memset(&scan, 0, sizeof(scan));
	memcpy(buf, GET "X-A: ", 37);
	CHECK_INT("big head", reqhead_end(buf, REQHEAD_MAX, &scan, &status, &error), -1);
	CHECK_INT("big head", status, 431);
	CHECK_HAS("big head", error, "larger than the server takes");
	check_done();
}

static void
test_check(void **state)
{
	static const struct {
		const char *in;
		unsigned status;
		const char *error_or_out; /* the detail, or the head lws gets */
		long long content_length;
		bool upgrade;
	} rows[] = {
	        /* passed, rewritten */
	        {GET "Host: x\r\n\r\n", 0, GET "host: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {GET "HOST:   x  \r\nX-Other: y\r\n\r\n", 0,
	         GET "host: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {GET "A: 1\r\nOrigi: 2\r\nX: 3\r\nHost: x\r\n\r\n", 0,
	         GET "host: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {GET "Origi:\r\nHost: x\r\n\r\n", 0, GET "host: x\r\ncontent-length: 0\r\n\r\n", -1,
	         false},
	        {GET "A:\r\nHost: x\r\n\r\n", 0, GET "host: x\r\ncontent-length: 0\r\n\r\n", -1,
	         false},
	        {GET "Host: x\r\nA:\r\n\r\n", 0, GET "host: x\r\ncontent-length: 0\r\n\r\n", -1,
	         false},
	        {"\r\n" GET "Host: x\r\n\r\n", 0, GET "host: x\r\ncontent-length: 0\r\n\r\n", -1,
	         false},
	        {"GET / HTTP/1.0\r\n\r\n", 0, "GET / HTTP/1.0\r\ncontent-length: 0\r\n\r\n", -1,
	         false}, /* HTTP/1.0 needs no Host */
	        {"PUT /p HTTP/1.0\r\nContent-Length: 12\r\nAuthorization: Bearer t\r\n\r\n", 0,
	         "PUT /p HTTP/1.0\r\nauthorization: Bearer t\r\ncontent-length: 0\r\n\r\n", 12,
	         false},
	        {"GET /api/v1/messages/stream HTTP/1.1\r\nHost: x\r\nUpgrade: "
	         "websocket\r\nConnection: "
	         "Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nUser-Agent: "
	         "u\r\n\r\n",
	         0,
	         "GET /api/v1/messages/stream HTTP/1.1\r\nhost: x\r\nupgrade: "
	         "websocket\r\nconnection: "
	         "Upgrade\r\nsec-websocket-key: k\r\nsec-websocket-version: 13\r\ncontent-length: "
	         "0\r\n\r\n",
	         -1, true},
	        {GET "Host: x\r\nAccept: a\r\nAccept: b\r\nObs: \x80\xff\r\n\r\n", 0,
	         GET "host: x\r\naccept: a\r\naccept: b\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {"GET /?q=%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n", 0,
	         "GET /?q=%C3%A9 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        /* Host and Expect */
	        {GET "\r\n", 400, "needs a Host", -1, false},
	        {GET "X-Host: x\r\n\r\n", 400, "needs a Host", -1, false},
	        {GET "Host: x\r\nExpect: 100-continue\r\n\r\n", 0,
	         GET "host: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {GET "Host: x\r\nExpect: 100-Continue \r\n\r\n", 0,
	         GET "host: x\r\ncontent-length: 0\r\n\r\n", -1, false},
	        {GET "Host: x\r\nExpect: 200-ok\r\n\r\n", 417, "only expectation", -1, false},
	        /* the request line */
	        {"GET /api/v1/messages\r\n\r\n", 400, "HTTP/1.1, one space apart", -1, false},
	        {"GET  / HTTP/1.1\r\n\r\n", 400, "one space apart", -1, false},
	        {"GET / HTTP/1.1 \r\n\r\n", 400, "one space apart", -1, false},
	        {"GET /healthz\x01 HTTP/1.1\r\n\r\n", 400, "control character", -1, false},
	        {"GET /a\tb HTTP/1.1\r\n\r\n", 400, "control character", -1, false},
	        {"GET /\x80 HTTP/1.1\r\n\r\n", 400, "is ASCII", -1, false},
	        {"GET /\x7f HTTP/1.1\r\n\r\n", 400, "control character", -1, false},
	        {"GET http://x/ HTTP/1.1\r\n\r\n", 400, "path starting with /", -1, false},
	        {"G(T / HTTP/1.1\r\n\r\n", 400, "not a token", -1, false},
	        {"BREW / HTTP/1.1\r\n\r\n", 501, "not one the server serves", -1, false},
	        {"GET / HTTP/2.0\r\n\r\n", 505, "only HTTP/1.1", -1, false},
	        {"GET / HTTP/1.x\r\n\r\n", 400, "HTTP version", -1, false},
	        {"GET / http/1.1\r\n\r\n", 400, "HTTP version", -1, false},
	        /* fields */
	        {GET "Transfer-Encoding : chunked\r\n\r\n", 400, "no whitespace", -1, false},
	        {GET "Content-Length\t: 2\r\n\r\n", 400, "no whitespace", -1, false},
	        {GET "X-Any : y\r\n\r\n", 400, "no whitespace", -1, false},
	        {GET "Host: x\r\n folded\r\n\r\n", 400, "obs-fold", -1, false},
	        {GET "Host: x\r\n\tfolded\r\n\r\n", 400, "obs-fold", -1, false},
	        {GET "NoColon\r\n\r\n", 400, "a name, a colon", -1, false},
	        {GET ": v\r\n\r\n", 400, "a name, a colon", -1, false},
	        {GET "X(y): v\r\n\r\n", 400, "a header name is a token", -1, false},
	        {GET "X: a\x01"
	             "b\r\n\r\n",
	         400, "control character", -1, false},
	        {GET "X: a\x7f\r\n\r\n", 400, "control character", -1, false},
	        {GET "Host: x\r\nHost: y\r\n\r\n", 400, "given once came twice", -1, false},
	        {GET "Authorization: a\r\nauthorization: b\r\n\r\n", 400, "came twice", -1, false},
	        /* framing */
	        {GET "Content-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, "given once", -1,
	         false},
	        {GET "Content-Length: 2\r\nContent-Length: 2\r\n\r\n", 400, "given once", -1,
	         false},
	        {GET "Content-Length: 2, 2\r\n\r\n", 400, "given once", -1, false},
	        {GET "Content-Length: +2\r\n\r\n", 400, "given once", -1, false},
	        {GET "Content-Length: -5\r\n\r\n", 400, "given once", -1, false},
	        {GET "Content-Length: \r\n\r\n", 400, "given once", -1, false},
	        {GET "Content-Length: 1234567890123456789\r\n\r\n", 400, "given once", -1, false},
	        {GET "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	         "must not come together", -1, false},
	        {GET "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400,
	         "must not come together", -1, false},
	        {GET "Transfer-Encoding: chunked\r\n\r\n", 411, "chunked bodies", -1, false},
	        {GET "Transfer-Encoding: gzip, chunked\r\n\r\n", 411, "chunked bodies", -1, false},
	        {GET "Transfer-Encoding: gzip\r\n\r\n", 400, "does not end with chunked", -1,
	         false},
	        {GET "Transfer-Encoding: xchunked\r\n\r\n", 400, "does not end with chunked", -1,
	         false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = strlen(rows[i].in);
		char *in = exact(rows[i].in, len);
		struct reqhead h = {0};
		const char *error = NULL;
		unsigned status;
		char what[64];

		snprintf(what, sizeof(what), "check row %zu", i);
		status = reqhead_check(in, len, &h, &error);
		CHECK_INT(what, status, rows[i].status);
		if (status == 0) {
			mbuf_putc(&h.out, '\0');
			CHECK_STR(what, h.out.data, rows[i].error_or_out);
			CHECK_INT(what, h.content_length, rows[i].content_length);
			CHECK_INT(what, h.upgrade, rows[i].upgrade);
			CHECK_INT(what, h.len, len);
		} else
			CHECK_HAS(what, error, rows[i].error_or_out);
		mbuf_free(&h.out);
		free(in);
	}
	check_done();
}

/* The limits: a field line, the target, its path, the number of fields. */
static void
test_limits(void **state)
{
	static char buf[REQHEAD_MAX * 2];
	struct reqhead h = {0};
	const char *error = NULL;
	size_t n;

	(void)state;
	/* a field line of REQHEAD_LINE_MAX passes, one byte more gets 431 */
	n = (size_t)snprintf(buf, sizeof(buf), GET "Host: x\r\nAuthorization: %0*d\r\n\r\n",
	                     REQHEAD_LINE_MAX - 15, 0);
	CHECK_INT("line max", reqhead_check(buf, n, &h, &error), 0);
	mbuf_free(&h.out);
	n = (size_t)snprintf(buf, sizeof(buf), GET "Authorization: %0*d\r\n\r\n",
	                     REQHEAD_LINE_MAX - 14, 0);
	CHECK_INT("line max + 1", reqhead_check(buf, n, &h, &error), 431);
	CHECK_HAS("line max + 1", error, "longer than the server takes");
	mbuf_free(&h.out);
	/* a path of REQHEAD_PATH_MAX passes, one more gets 414; so does a long target */
	n = (size_t)snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\nHost: x\r\n\r\n",
	                     REQHEAD_PATH_MAX - 1, 0);
	CHECK_INT("path max", reqhead_check(buf, n, &h, &error), 0);
	mbuf_free(&h.out);
	n = (size_t)snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\n\r\n", REQHEAD_PATH_MAX, 0);
	CHECK_INT("path max + 1", reqhead_check(buf, n, &h, &error), 414);
	mbuf_free(&h.out);
	n = (size_t)snprintf(buf, sizeof(buf), "GET /?q=%0*d HTTP/1.1\r\n\r\n", REQHEAD_TARGET_MAX,
	                     0);
	CHECK_INT("target", reqhead_check(buf, n, &h, &error), 414);
	CHECK_HAS("target", error, "request target is longer");
	mbuf_free(&h.out);
	/* REQHEAD_FIELDS_MAX fields pass, one more gets 431 */
	n = (size_t)snprintf(buf, sizeof(buf), GET "Host: x\r\n");
	for (int i = 1; i < REQHEAD_FIELDS_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: y\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	CHECK_INT("fields max", reqhead_check(buf, n + 2, &h, &error), 0);
	mbuf_free(&h.out);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-more: y\r\n\r\n");
	CHECK_INT("fields max + 1", reqhead_check(buf, n, &h, &error), 431);
	CHECK_HAS("fields max + 1", error, "too many header fields");
	mbuf_free(&h.out);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_end),
	        cmocka_unit_test(test_too_large),
	        cmocka_unit_test(test_check),
	        cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
