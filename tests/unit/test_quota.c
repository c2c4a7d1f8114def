/*
 * test_quota - unit tests for statusd/quota: a user's writes per second (a token bucket of
 * write_burst refilled at write_rate) and feed connections at once (feed_max_per_user),
 * each user apart from the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quota.h"
#include "sdconfig.h"

#include "check.h"

struct write_step {
	const char *user;
	int64_t at_ms;
	bool ok;
	int retry_s; /* when refused */
};

/* write_burst 3, write_rate 2 per second */
static const struct write_step write_steps[] = {
        {"alice", 1000, true, 0},  {"alice", 1000, true, 0}, {"alice", 1000, true, 0},
        {"alice", 1000, false, 1},                           /* the burst is spent */
        {"bob", 1000, true, 0},                              /* someone else's bucket */
        {"alice", 1250, false, 1},                           /* half a write refilled */
        {"alice", 1500, true, 0},                            /* one */
        {"alice", 1500, false, 1}, {"alice", 9000, true, 0}, /* refilled up to the burst */
        {"alice", 9000, true, 0},  {"alice", 9000, true, 0}, {"alice", 9000, false, 1},
};

static void
test_write_rate(void **state)
{
	struct sd_config cfg;
	struct quota *q;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.write_burst = 3;
	cfg.write_rate = 2;
	q = quota_new(&cfg);
	for (size_t i = 0; i < sizeof(write_steps) / sizeof(write_steps[0]); i++) {
		const struct write_step *w = &write_steps[i];
		char what[64];
		int retry = 0;
		bool ok = quota_write_ok(q, w->user, w->at_ms, &retry);

		snprintf(what, sizeof(what), "step %zu (%s at %lld ms)", i, w->user,
		         (long long)w->at_ms);
		CHECK_INT(what, ok, w->ok);
		if (!w->ok)
			CHECK_INT(what, retry, w->retry_s);
	}
	quota_free(&q);
	assert_null(q);
	check_done();
}

static void
test_feed_count(void **state)
{
	struct sd_config cfg;
	struct quota *q;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.feed_max_per_user = 2;
	q = quota_new(&cfg);
	CHECK_INT("first", quota_feed_take(q, "alice"), true);
	CHECK_INT("second", quota_feed_take(q, "alice"), true);
	CHECK_INT("third, over the limit", quota_feed_take(q, "alice"), false);
	CHECK_INT("another user", quota_feed_take(q, "bob"), true);
	quota_feed_put(q, "alice");
	CHECK_INT("after one closed", quota_feed_take(q, "alice"), true);
	CHECK_INT("full again", quota_feed_take(q, "alice"), false);
	quota_feed_put(q, "alice");
	quota_feed_put(q, "alice");
	quota_feed_put(q, "alice"); /* one more than taken: no harm, and no credit */
	CHECK_INT("from none", quota_feed_take(q, "alice"), true);
	CHECK_INT("from none", quota_feed_take(q, "alice"), true);
	CHECK_INT("from none, over", quota_feed_take(q, "alice"), false);
	quota_free(&q);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_write_rate),
	        cmocka_unit_test(test_feed_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
