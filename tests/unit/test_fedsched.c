/*
 * test_fedsched - the federation sender's decisions (statusd/fedsched.c): what an answer
 * means for a report's rows (by a problem document's code too), Retry-After, the backoff
 * with its cap and jitter, how a destination's waiting rows are cut into reports, the
 * events a 200 names "later", and the pace of reports to one destination.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "check.h"
#include "fedsched.h"

/* A problem document as statusd's endpoint writes it (statusd/http.c req_problem_code). */
#define P(code)                                                                                    \
	"{\"type\":\"about:blank\",\"title\":\"Forbidden\",\"status\":403,\"code\":\"" code        \
	"\",\"detail\":\"as in the table\"}"

static void
test_answer(void **state)
{
	static const struct {
		long status;
		const char *body;
		size_t nevents;
		int want;
	} rows[] = {
	        {200, "{\"accepted\":2,\"duplicate\":0,\"refused\":1}", 3, FEDSCHED_DONE},
	        {200, "{\"refused\":0,\"accepted\":0,\"duplicate\":3}", 3, FEDSCHED_DONE},
	        /* a 200 that does not account for every event is no acknowledgement */
	        {200, "{\"accepted\":2,\"duplicate\":0,\"refused\":0}", 3, FEDSCHED_RETRY},
	        {200, "{\"accepted\":2}", 2, FEDSCHED_RETRY},
	        {200, "{\"accepted\":-1,\"duplicate\":2,\"refused\":1}", 2, FEDSCHED_RETRY},
	        {200, "{\"accepted\":\"2\",\"duplicate\":0,\"refused\":0}", 2, FEDSCHED_RETRY},
	        {200, "[2,0,0]", 2, FEDSCHED_RETRY},
	        {200, "{\"accepted\":2,\"duplicate\":0,\"refused\":0} x", 2, FEDSCHED_RETRY},
	        {200, "", 2, FEDSCHED_RETRY},
	        {200, NULL, 2, FEDSCHED_RETRY},
	        {202, "{\"accepted\":2,\"duplicate\":0,\"refused\":0}", 2, FEDSCHED_RETRY},
	        {204, NULL, 2, FEDSCHED_RETRY},
	        {301, NULL, 2, FEDSCHED_RETRY},
	        {0, NULL, 2, FEDSCHED_RETRY}, /* timeout, connection or TLS error */
	        {429, NULL, 2, FEDSCHED_RETRY},
	        {503, NULL, 2, FEDSCHED_RETRY},
	        {500, NULL, 2, FEDSCHED_RETRY},
	        {502, NULL, 2, FEDSCHED_RETRY},
	        {400, NULL, 2, FEDSCHED_REFUSED},
	        {401, NULL, 2, FEDSCHED_REFUSED},
	        {403, NULL, 2, FEDSCHED_REFUSED},
	        {409, NULL, 2, FEDSCHED_REFUSED},
	        {413, NULL, 2, FEDSCHED_SPLIT},
	        {413, NULL, 1, FEDSCHED_REFUSED},
	        {415, NULL, 2, FEDSCHED_REFUSED},
	        {422, NULL, 2, FEDSCHED_REFUSED},
	        /* by the problem document's code (docs/federation.md, "Answers") */
	        {401, P("stale"), 2, FEDSCHED_RETRY},
	        {401, P("digest-mismatch"), 2, FEDSCHED_RETRY},
	        {403, P("key-unknown"), 2, FEDSCHED_RETRY},
	        {409, P("replay"), 2, FEDSCHED_RETRY},
	        {401, P("signature-invalid"), 2, FEDSCHED_REFUSED},
	        {401, P("signature-missing"), 2, FEDSCHED_REFUSED},
	        {401, P("signature-profile"), 2, FEDSCHED_REFUSED},
	        {403, P("key-revoked"), 2, FEDSCHED_REFUSED},
	        {403, P("domain-mismatch"), 2, FEDSCHED_REFUSED},
	        {403, P("recipient-domain"), 2, FEDSCHED_REFUSED},
	        {400, P("malformed"), 2, FEDSCHED_REFUSED},
	        {404, P("not-accepting"), 2, FEDSCHED_REFUSED},
	        {415, P("content-type"), 2, FEDSCHED_REFUSED},
	        {429, P("rate-limited"), 2, FEDSCHED_RETRY},
	        {503, P("dns-unavailable"), 2, FEDSCHED_RETRY},
	        {503, P("storage-unavailable"), 2, FEDSCHED_RETRY},
	        {503, P("busy"), 2, FEDSCHED_RETRY},
	        {503, P("message-unknown"), 2, FEDSCHED_RETRY},
	        /* a code counts only with its status */
	        {400, P("key-unknown"), 2, FEDSCHED_REFUSED},
	        {403, P("stale"), 2, FEDSCHED_REFUSED},
	        {401, P("replay"), 2, FEDSCHED_REFUSED},
	        /* and only from a well-formed problem document */
	        {403, "{\"code\":\"key-unknown\"} x", 2, FEDSCHED_REFUSED},
	        {403, "{\"code\":\"Key-Unknown\"}", 2, FEDSCHED_REFUSED},
	        {403, "{\"code\":[\"key-unknown\"]}", 2, FEDSCHED_REFUSED},
	        {403, "[{\"code\":\"key-unknown\"}]", 2, FEDSCHED_REFUSED},
	        {403, "{\"detail\":\"key-unknown\"}", 2, FEDSCHED_REFUSED},
	        {403, "{\"code\":\"key-unknown\",", 2, FEDSCHED_REFUSED},
	        {403, "key-unknown", 2, FEDSCHED_REFUSED},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[96];
		const char *why = NULL;
		int got = fedsched_answer(rows[i].status, rows[i].body,
		                          rows[i].body ? strlen(rows[i].body) : 0, rows[i].nevents,
		                          &why);

		snprintf(what, sizeof(what), "row %zu (%ld)", i, rows[i].status);
		CHECK_INT(what, got, rows[i].want);
		CHECK_INT(what, why != NULL, 1);
	}
	check_done();
}

static void
test_later(void **state)
{
	/* a 200 naming events "later": counted as refused for a sender that reads only the
	   counts (so done), the list for one that reads it */
	static const char *const ok =
	        "{\"accepted\":1,\"duplicate\":0,\"refused\":2,\"later\":[\"ev-2\",\"ev-3\"]}";
	static const struct {
		const char *body;
		size_t nevents, want;
	} rows[] = {
	        {"{\"accepted\":3,\"duplicate\":0,\"refused\":0}", 3, 0}, /* none */
	        {"{\"accepted\":2,\"duplicate\":0,\"refused\":1,\"later\":[]}", 3, 0},
	        {"{\"accepted\":2,\"duplicate\":0,\"refused\":1,\"later\":\"ev-2\"}", 3, 0},
	        {"{\"accepted\":2,\"duplicate\":0,\"refused\":1,\"later\":[\"ev-2\",1]}", 3, 0},
	        {"{\"accepted\":2,\"duplicate\":0,\"refused\":1,\"later\":[\"\"]}", 3, 0},
	        {"{\"accepted\":2,\"duplicate\":0,\"refused\":1,\"later\":[\"a\\u0000b\"]}", 3, 0},
	        /* more than the report's events, an id longer than 64 bytes */
	        {"{\"accepted\":0,\"duplicate\":0,\"refused\":1,\"later\":[\"a\",\"b\"]}", 1, 0},
	        {"{\"later\":["
	         "\"12345678901234567890123456789012345678901234567890123456789012345\"]}",
	         1, 0},
	        {"{\"later\":[\"1234567890123456789012345678901234567890123456789012345678901234\"]"
	         "}",
	         1, 1},
	        {"{\"later\":[\"ev-1\"]} x", 1, 0},
	        {NULL, 1, 0},
	};
	char **ids = NULL;
	const char *why = NULL;
	size_t n;

	(void)state;
	CHECK_INT("counted as refused: done", fedsched_answer(200, ok, strlen(ok), 3, &why),
	          FEDSCHED_DONE);
	n = fedsched_later(ok, strlen(ok), 3, &ids);
	CHECK_INT("two later", n, 2);
	CHECK_STR("the first", n == 2 ? ids[0] : "", "ev-2");
	CHECK_STR("the second", n == 2 ? ids[1] : "", "ev-3");
	fedsched_later_free(ids, n);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "row %zu", i);
		n = fedsched_later(rows[i].body, rows[i].body ? strlen(rows[i].body) : 0,
		                   rows[i].nevents, &ids);
		CHECK_INT(what, n, rows[i].want);
		CHECK_INT(what, ids == NULL, rows[i].want == 0);
		fedsched_later_free(ids, n);
	}
	check_done();
}

static void
test_problem_code(void **state)
{
	char code[FEDSCHED_CODE_MAX + 1], big[5000], small[4];
	const char *nested = "{\"a\":{\"b\":{\"c\":{\"d\":{}}}},\"code\":\"stale\"}";
	const char *s;

	(void)state;
	s = P("key-unknown");
	CHECK_INT("problem document", fedsched_problem_code(s, strlen(s), code, sizeof(code)), 0);
	CHECK_STR("its code", code, "key-unknown");
	s = "{\"code\":\"replay\"}";
	CHECK_INT("code alone", fedsched_problem_code(s, strlen(s), code, sizeof(code)), 0);
	CHECK_STR("code alone", code, "replay");
	/* not a string of [a-z0-9-], too long, not the whole body, too deep, too large */
	s = "{\"code\":\"key unknown\"}";
	CHECK_INT("space", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	CHECK_STR("cleared", code, "");
	s = "{\"code\":\"key-unknown\\u0000\"}";
	CHECK_INT("NUL", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	s = "{\"code\":\"\"}";
	CHECK_INT("empty", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	s = "{\"code\":\"abcdefghijklmnopqrstuvwxyz0123456\"}"; /* 33 */
	CHECK_INT("33 bytes", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	s = "{\"code\":\"abcdefghijklmnopqrstuvwxyz012345\"}"; /* 32 */
	CHECK_INT("32 bytes", fedsched_problem_code(s, strlen(s), code, sizeof(code)), 0);
	CHECK_INT("a small buffer", fedsched_problem_code(s, strlen(s), small, sizeof(small)), -1);
	CHECK_STR("a small buffer", small, "");
	s = "{\"code\":42}";
	CHECK_INT("number", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	s = "{\"code\":\"stale\"}{}";
	CHECK_INT("trailing", fedsched_problem_code(s, strlen(s), code, sizeof(code)), -1);
	CHECK_INT("too deep", fedsched_problem_code(nested, strlen(nested), code, sizeof(code)),
	          -1);
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"code\":\"stale\"", strlen("{\"code\":\"stale\""));
	big[sizeof(big) - 1] = '}';
	CHECK_INT("over 4096 bytes", fedsched_problem_code(big, sizeof(big), code, sizeof(code)),
	          -1);
	CHECK_INT("NULL", fedsched_problem_code(NULL, 0, code, sizeof(code)), -1);
	check_done();
}

static void
test_retry_after(void **state)
{
	int64_t now = 1765017000000LL; /* 2025-12-06T10:30:00Z */

	(void)state;
	CHECK_INT("seconds", fedsched_retry_after("120", now), 120000);
	CHECK_INT("spaces", fedsched_retry_after(" 5 ", now), 5000);
	CHECK_INT("zero", fedsched_retry_after("0", now), 0);
	CHECK_INT("absent", fedsched_retry_after(NULL, now), -1);
	CHECK_INT("junk", fedsched_retry_after("soon", now), -1);
	CHECK_INT("junk after", fedsched_retry_after("5s", now), -1);
	CHECK_INT("negative", fedsched_retry_after("-5", now), -1);
	CHECK_INT("date", fedsched_retry_after("Sat, 06 Dec 2025 10:31:00 GMT", now), 60000);
	CHECK_INT("past date", fedsched_retry_after("Sat, 06 Dec 2025 10:00:00 GMT", now), 0);
	/* a wait of over a year is no answer, as a date as in seconds */
	CHECK_INT("date in years", fedsched_retry_after("Sat, 06 Dec 4050 10:31:00 GMT", now), -1);
	CHECK_INT("seconds in years", fedsched_retry_after("31536001", now), -1);
	CHECK_INT("bad date", fedsched_retry_after("Sat, 06 Dec 2025 10:31:00 CET", now), -1);
	check_done();
}

static void
test_backoff(void **state)
{
	(void)state;
	/* without jitter (r = 0) the lower bound: half of base * 2^(n-1) */
	CHECK_INT("1st", fedsched_backoff(1, 1000, 600000, 0, -1), 500);
	CHECK_INT("2nd", fedsched_backoff(2, 1000, 600000, 0, -1), 1000);
	CHECK_INT("5th", fedsched_backoff(5, 1000, 600000, 0, -1), 8000);
	/* r just below 1: just below the full delay */
	CHECK_INT("5th, r ~ 1", fedsched_backoff(5, 1000, 600000, 0.999999, -1) <= 16000, 1);
	CHECK_INT("5th, r ~ 1", fedsched_backoff(5, 1000, 600000, 0.999999, -1) >= 15990, 1);
	/* the cap, however many failures (no overflow) */
	CHECK_INT("capped", fedsched_backoff(40, 1000, 600000, 0, -1), 300000);
	CHECK_INT("capped", fedsched_backoff(4000000000u, 1000, 600000, 0.5, -1), 450000);
	/* Retry-After wins when longer, and is capped too */
	CHECK_INT("retry-after", fedsched_backoff(1, 1000, 600000, 0, 30000), 30000);
	CHECK_INT("retry-after short", fedsched_backoff(3, 1000, 600000, 0, 100), 2000);
	CHECK_INT("retry-after capped", fedsched_backoff(1, 1000, 600000, 0, 86400000), 600000);
	/* a bad r is no jitter */
	CHECK_INT("bad r", fedsched_backoff(2, 1000, 600000, 7, -1), 1000);
	check_done();
}

static void
test_cut(void **state)
{
	const char *mixed[] = {"example.net", "example.net", "other.example", "example.net"};
	const char *same[] = {"example.net", "example.net", "example.net"};

	(void)state;
	CHECK_INT("up to another reporter", fedsched_cut(mixed, 4, 1000), 2);
	CHECK_INT("one reporter", fedsched_cut(same, 3, 1000), 3);
	CHECK_INT("at most max", fedsched_cut(same, 3, 2), 2);
	CHECK_INT("from the other", fedsched_cut(mixed + 2, 2, 1000), 1);
	CHECK_INT("none", fedsched_cut(same, 0, 1000), 0);
	check_done();
}

static void
test_pace(void **state)
{
	struct fedsched_pace p = {0, 0};
	int64_t t = 5000;

	(void)state;
	/* not remembered: full, so a burst of 3 goes at once */
	CHECK_INT("new", fedsched_pace_wait(&p, t, 10, 3), 0);
	CHECK_INT("new is full", fedsched_pace_full(&p, t, 10, 3), 1);
	for (int i = 0; i < 3; i++) {
		CHECK_INT("within the burst", fedsched_pace_wait(&p, t, 10, 3), 0);
		fedsched_pace_take(&p, t, 10, 3);
	}
	/* empty: the next waits for a token, 1/rate */
	CHECK_INT("empty", fedsched_pace_wait(&p, t, 10, 3), 100);
	CHECK_INT("30 ms later", fedsched_pace_wait(&p, t + 30, 10, 3), 70);
	CHECK_INT("rounded up", fedsched_pace_wait(&p, t + 1, 3, 3), 333);
	CHECK_INT("a token", fedsched_pace_wait(&p, t + 100, 10, 3), 0);
	/* paced: one report per 100 ms */
	fedsched_pace_take(&p, t + 100, 10, 3);
	CHECK_INT("paced", fedsched_pace_wait(&p, t + 150, 10, 3), 50);
	CHECK_INT("not full", fedsched_pace_full(&p, t + 150, 10, 3), 0);
	/* a quiet spell fills it, no further than the burst */
	CHECK_INT("full again", fedsched_pace_full(&p, t + 400, 10, 3), 1);
	CHECK_INT("long quiet", fedsched_pace_full(&p, t + 1000000, 10, 3), 1);
	fedsched_pace_take(&p, t + 1000000, 10, 3);
	fedsched_pace_take(&p, t + 1000000, 10, 3);
	fedsched_pace_take(&p, t + 1000000, 10, 3);
	CHECK_INT("burst, not more", fedsched_pace_wait(&p, t + 1000000, 10, 3), 100);
	/* a clock that went back adds no token */
	CHECK_INT("clock back", fedsched_pace_wait(&p, t, 10, 3), 100);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_answer),      cmocka_unit_test(test_problem_code),
	        cmocka_unit_test(test_retry_after), cmocka_unit_test(test_backoff),
	        cmocka_unit_test(test_cut),         cmocka_unit_test(test_later),
	        cmocka_unit_test(test_pace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
