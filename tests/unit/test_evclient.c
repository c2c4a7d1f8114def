/*
 * test_evclient - unit tests for lib/evclient: statusd's replies parsed strictly, and a
 * reply taken only for the record it is about.
 *
 * The parser's table: a reply is one JSON object (nothing after it but blanks) with a
 * record number "seq" from 1 and exactly one of "ack" (the event id) or "error" (statusd's
 * reason), both strings; other members are ignored, as the Dovecot plugin's parser does.
 * The connection tests drive a client against a UNIX socket the test listens on: replies
 * in order are reported; a refusal may come before its record has all gone out (statusd's
 * "record too long"); one out of order, an ack for a record not yet sent, or a malformed
 * reply breaks the connection and hands the record back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "evclient.h"

#include "check.h"

struct reply_case {
	const char *line;
	int rc;            /* 0 or -1 */
	uint64_t seq;      /* when 0 */
	bool ok;           /* when 0 */
	const char *error; /* when 0 and not ok */
};

static const struct reply_case reply_cases[] = {
        {"{\"seq\":1,\"ack\":\"4a6bq2c7fd3x5w7p9n2m4k6j8h\"}", 0, 1, true, NULL},
        {"{\"seq\":18,\"error\":\"missing field: recipient\"}", 0, 18, false,
         "missing field: recipient"},
        {"{\"ack\":\"x\",\"seq\":2}", 0, 2, true, NULL},
        {"{\"seq\":3,\"ack\":\"x\",\"later\":[1,2]}", 0, 3, true, NULL}, /* unknown: ignored */
        {"{\"seq\":4,\"ack\":\"x\"}\r", 0, 4, true, NULL},               /* CR LF line end */
        {"{\"seq\":5,\"error\":\"caf\xc3\xa9\"}", 0, 5, false, "caf\xc3\xa9"},
        /* not UTF-8 (statusd mends a reason it cut within a character): refused alike
           on every json-c */
        {"{\"seq\":6,\"error\":\"cut \xc3\"}", -1, 0, false, NULL},
        /* not one strict JSON object */
        {"", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":\"x\"", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":\"x\"} junk", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":\"x\"}{\"seq\":2,\"ack\":\"y\"}", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":\"x\",}", -1, 0, false, NULL},
        {"{'seq':1,'ack':'x'}", -1, 0, false, NULL},
        {"[1]", -1, 0, false, NULL},
        /* no record number */
        {"{\"ack\":\"x\"}", -1, 0, false, NULL},
        {"{\"seq\":0,\"ack\":\"x\"}", -1, 0, false, NULL},
        {"{\"seq\":-1,\"ack\":\"x\"}", -1, 0, false, NULL},
        {"{\"seq\":1.5,\"ack\":\"x\"}", -1, 0, false, NULL},
        {"{\"seq\":\"1\",\"ack\":\"x\"}", -1, 0, false, NULL},
        {"{\"seq\":99999999999999999999,\"ack\":\"x\"}", -1, 0, false, NULL},
        /* neither, both, or not strings */
        {"{\"seq\":1}", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":\"x\",\"error\":\"y\"}", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":true}", -1, 0, false, NULL},
        {"{\"seq\":1,\"ack\":null}", -1, 0, false, NULL},
        {"{\"seq\":1,\"error\":42}", -1, 0, false, NULL},
};

static void
test_parse_reply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = strlen(c->line);
		char *line = exact(c->line, len);
		uint64_t seq = 0;
		bool ok = false;
		const char *error = NULL;
		int rc = evclient_parse_reply(line, len, &seq, &ok, &error);

		CHECK_INT(c->line, rc, c->rc);
		if (rc == 0 && c->rc == 0) {
			CHECK_INT(c->line, seq, c->seq);
			CHECK_INT(c->line, ok, c->ok);
			CHECK_STR(c->line, error, c->error);
		}
		free(line);
	}
	check_done();
}

/* --- a client against a socket the test listens on --------------------------------------- */

struct peer {
	char dir[40], path[64];
	int lfd, fd; /* the listening socket, statusd's end */
	struct evclient *c;
};

struct seen {
	uint64_t cookies[8];
	bool ok[8];
	size_t n;
	uint64_t unacked[8];
	size_t nunacked;
};

static void
peer_open(struct peer *p)
{
	struct sockaddr_un sun;
	const char *error = NULL;

	snprintf(p->dir, sizeof(p->dir), "/tmp/msgstatus-evclient.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/events.sock", p->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(p->lfd, 1), 0);
	p->c = evclient_new(p->path);
	assert_int_equal(evclient_connect(p->c, &error), 0);
	p->fd = accept(p->lfd, NULL, NULL);
	assert_true(p->fd >= 0);
}

static void
peer_close(struct peer *p)
{
	evclient_free(&p->c);
	close(p->fd);
	close(p->lfd);
	unlink(p->path);
	rmdir(p->dir);
}

/* statusd's side: write a reply, and read what the client sent (n bytes expected). */
static void
peer_say(struct peer *p, const char *reply)
{
	assert_int_equal(write(p->fd, reply, strlen(reply)), (ssize_t)strlen(reply));
}

static void
peer_hear(struct peer *p, size_t n)
{
	char buf[256];
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(p->fd, buf, sizeof(buf));
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_int_equal(got, n);
}

static void
on_reply(void *ctx, uint64_t cookie, bool ok, const char *error)
{
	struct seen *s = ctx;

	(void)error;
	assert_true(s->n < 8);
	s->cookies[s->n] = cookie;
	s->ok[s->n++] = ok;
}

static void
on_unacked(void *ctx, const char *rec, size_t len, uint64_t cookie)
{
	struct seen *s = ctx;

	(void)rec;
	(void)len;
	assert_true(s->nunacked < 8);
	s->unacked[s->nunacked++] = cookie;
}

#define REC "{\"v\":1}\n"

/* Two records sent and answered in order: both reported, in order, none left. */
static void
test_replies_in_order(void **state)
{
	struct peer p;
	struct seen s = {0};
	const char *error = NULL;

	(void)state;
	peer_open(&p);
	evclient_queue(p.c, REC, strlen(REC), 7);
	evclient_queue(p.c, REC, strlen(REC), 8);
	assert_int_equal(evclient_flush(p.c, &error), 0);
	peer_hear(&p, 2 * strlen(REC));
	peer_say(&p, "{\"seq\":1,\"ack\":\"a\"}\n{\"seq\":2,\"error\":\"no\"}\n");
	assert_int_equal(evclient_read(p.c, on_reply, &s, &error), 0);
	CHECK_INT("replies", s.n, 2);
	CHECK_INT("first", s.cookies[0], 7);
	CHECK_INT("first ok", s.ok[0], true);
	CHECK_INT("second", s.cookies[1], 8);
	CHECK_INT("second ok", s.ok[1], false);
	CHECK_INT("unacked", evclient_unacked(p.c), 0);
	peer_close(&p);
	check_done();
}

/* statusd refuses a record over its size limit before the record has all arrived: the
   refusal is taken, the rest of that record still goes out (statusd skips it), and the
   next record is answered as usual on the same connection. */
static void
test_early_refusal(void **state)
{
	struct peer p;
	struct seen s = {0};
	const char *error = NULL;

	(void)state;
	peer_open(&p);
	evclient_queue(p.c, REC, strlen(REC), 7);
	evclient_queue(p.c, REC, strlen(REC), 8);
	peer_say(&p, "{\"seq\":1,\"error\":\"record too long\"}\n");
	CHECK_INT("early refusal taken", evclient_read(p.c, on_reply, &s, &error), 0);
	CHECK_INT("replies", s.n, 1);
	CHECK_INT("refused", s.cookies[0], 7);
	CHECK_INT("refused ok", s.ok[0], false);
	/* the second record is not sent yet: an ack for it now is still refused later */
	assert_int_equal(evclient_flush(p.c, &error), 0);
	peer_hear(&p, 2 * strlen(REC));
	peer_say(&p, "{\"seq\":2,\"ack\":\"b\"}\n");
	CHECK_INT("next record answered", evclient_read(p.c, on_reply, &s, &error), 0);
	CHECK_INT("replies", s.n, 2);
	CHECK_INT("second", s.cookies[1], 8);
	CHECK_INT("second ok", s.ok[1], true);
	CHECK_INT("unacked", evclient_unacked(p.c), 0);
	peer_close(&p);
	check_done();
}

/* An ack for the record after an early-refused one, before that record has gone out. */
static void
test_ack_after_early_refusal(void **state)
{
	struct peer p;
	struct seen s = {0};
	const char *error = NULL;

	(void)state;
	peer_open(&p);
	evclient_queue(p.c, REC, strlen(REC), 7);
	evclient_queue(p.c, REC, strlen(REC), 8);
	peer_say(&p, "{\"seq\":1,\"error\":\"record too long\"}\n{\"seq\":2,\"ack\":\"b\"}\n");
	CHECK_INT("ack too early", evclient_read(p.c, on_reply, &s, &error), -1);
	CHECK_HAS("ack too early", error, "not yet sent");
	CHECK_INT("refusal still reported", s.n, 1);
	peer_close(&p);
	check_done();
}

/* Replies that are not statusd's: each breaks the connection, and the record comes back
   unacknowledged. */
struct broken_case {
	const char *name;
	bool sent; /* the record was flushed before the reply came */
	const char *reply;
	const char *error; /* in the error text */
};

static const struct broken_case broken_cases[] = {
        {"out of order", true, "{\"seq\":2,\"ack\":\"a\"}\n", "out of order"},
        {"an ack for a record not yet sent", false, "{\"seq\":1,\"ack\":\"a\"}\n", "not yet sent"},
        {"not strict JSON", true, "{\"seq\":1,\"ack\":\"a\"} trailing\n", "malformed"},
        {"both ack and error", true, "{\"seq\":1,\"ack\":\"a\",\"error\":\"b\"}\n", "malformed"},
};

static void
test_reply_broken(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(broken_cases) / sizeof(broken_cases[0]); i++) {
		const struct broken_case *b = &broken_cases[i];
		struct peer p;
		struct seen s = {0};
		const char *error = NULL;

		peer_open(&p);
		evclient_queue(p.c, REC, strlen(REC), 7);
		if (b->sent) {
			assert_int_equal(evclient_flush(p.c, &error), 0);
			peer_hear(&p, strlen(REC));
		}
		peer_say(&p, b->reply);
		CHECK_INT(b->name, evclient_read(p.c, on_reply, &s, &error), -1);
		CHECK_HAS(b->name, error, b->error);
		CHECK_INT(b->name, s.n, 0);
		evclient_disconnect(p.c, on_unacked, &s);
		CHECK_INT(b->name, s.nunacked, 1);
		CHECK_INT(b->name, s.unacked[0], 7);
		peer_close(&p);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_reply),
	        cmocka_unit_test(test_replies_in_order),
	        cmocka_unit_test(test_reply_broken),
	        cmocka_unit_test(test_early_refusal),
	        cmocka_unit_test(test_ack_after_early_refusal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
