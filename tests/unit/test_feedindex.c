/*
 * test_feedindex - unit tests for statusd/feedindex.c, the feed's index of live subscribers
 * by the user they authenticated as and by the domains they administer.
 *
 * A subscriber is found under its user and under each domain it administers, once per
 * domain even when its principal names a domain twice, and is gone from every list after it
 * leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "feed.h"
#include "feedindex.h"
#include "principal.h"

#include "check.h"

static size_t
count(struct feed_link *l, const struct feed_sub *sub)
{
	size_t n = 0;

	for (; l != NULL; l = l->next)
		if (l->sub == sub)
			n++;
	return n;
}

static void
test_enter_leave(void **state)
{
	char *domains[] = {"example.com", "example.org", "example.com"};
	struct principal who = {"alice@example.com", domains, 3, 0};
	char *none[] = {NULL};
	struct principal other = {"bob@example.net", none, 0, 0};
	struct feed_sub a, b;
	struct feed_index *x = feed_index_new();

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.who = &who;
	b.who = &other;
	feed_index_enter(x, &a);
	feed_index_enter(x, &b);
	CHECK_INT("by user", count(feed_index_user(x, "alice@example.com"), &a), 1);
	CHECK_INT("other user", count(feed_index_user(x, "bob@example.net"), &b), 1);
	CHECK_INT("not another's", count(feed_index_user(x, "bob@example.net"), &a), 0);
	/* example.com named twice: one link, so the fan-out meets the subscriber once */
	CHECK_INT("domain named twice", count(feed_index_domain(x, "carol@example.com"), &a), 1);
	CHECK_INT("second domain", count(feed_index_domain(x, "dave@example.org"), &a), 1);
	CHECK_INT("last @ decides", count(feed_index_domain(x, "x@y@example.org"), &a), 1);
	CHECK_INT("no admin", count(feed_index_domain(x, "bob@example.net"), &b), 0);
	feed_index_leave(&a);
	CHECK_INT("gone by user", count(feed_index_user(x, "alice@example.com"), &a), 0);
	CHECK_INT("gone by domain", count(feed_index_domain(x, "carol@example.com"), &a), 0);
	CHECK_INT("others stay", count(feed_index_user(x, "bob@example.net"), &b), 1);
	feed_index_leave(&b);
	feed_index_free(&x);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_enter_leave),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
