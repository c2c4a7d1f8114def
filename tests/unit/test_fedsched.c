/*
 * test_fedsched - the federation sender's decisions (statusd/fedsched.c): what an answer
 * means for a report's rows, Retry-After, the backoff with its cap and jitter, and how a
 * destination's waiting rows are cut into reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "check.h"
#include "fedsched.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_answer),
	        cmocka_unit_test(test_retry_after),
	        cmocka_unit_test(test_backoff),
	        cmocka_unit_test(test_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
