/*
 * test_mymalloc - unit tests for lib/mymalloc (allocation that ends the program on
 * failure).
 *
 * Covers: each function returns writable memory of the size asked, also for zero sizes;
 * mycalloc zeroes; myrealloc and myreallocarray keep the contents; mystrdup and
 * mystrndup copy, cut and terminate (a table of strings and lengths); and an element count
 * whose size overflows is fatal ("out of memory", exit status 1) in a child process, as
 * is a NULL passed to mynonnull, which hands any other pointer back.
 * Allocation failure itself is not provoked: under ASan a huge malloc() is reported and
 * aborts instead of returning NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mymalloc.h"

#include "check.h"
#include "child.h"

static void
test_sizes(void **state)
{
	static const size_t sizes[] = {0, 1, 7, 64, 4096, 1 << 20};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *m = mymalloc(n), *c = mycalloc(n, 3);
		size_t zeros = 0;

		memset(m, 0xa5, n);
		for (size_t k = 0; k < n * 3; k++)
			zeros += c[k] == 0;
		CHECK_INT("mycalloc zeroes", zeros, n * 3);
		m = myrealloc(m, n * 2 + 1);
		CHECK_INT("myrealloc keeps the contents",
		          n == 0 || (m[0] == 0xa5 && m[n - 1] == 0xa5), 1);
		m = myreallocarray(m, n + 1, 4);
		CHECK_INT("myreallocarray keeps the contents",
		          n == 0 || (m[0] == 0xa5 && m[n - 1] == 0xa5), 1);
		memset(m, 0, (n + 1) * 4);
		free(m);
		free(c);
	}
	check_done();
}

static const struct {
	const char *s;
	size_t n;
	const char *want;
} strings[] = {
        {"", 0, ""},       {"", 5, ""},        {"abc", 0, ""},    {"abc", 2, "ab"},
        {"abc", 3, "abc"}, {"abc", 10, "abc"}, {"a\0bc", 4, "a"}, /* stops at a NUL */
};

static void
test_strings(void **state)
{
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		char *d = mystrdup(strings[i].s), *nd = mystrndup(strings[i].s, strings[i].n);

		CHECK_STR("mystrdup", d, strings[i].s);
		CHECK_STR("mystrndup", nd, strings[i].want);
		CHECK_INT("a copy", d != strings[i].s, 1);
		free(d);
		free(nd);
	}
	check_done();
}

static void
overflowing_array(void)
{
	void *p = myreallocarray(NULL, SIZE_MAX / 2 + 1, 2);

	free(p);
}

static void
test_overflow_is_fatal(void **state)
{
	char log[1024];
	int status = run_child(overflowing_array, log, sizeof(log));

	CHECK_INT("exits", WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1);
	CHECK_HAS("says why", log, "out of memory");
	check_done();
}

static void
library_failed(void)
{
	mynonnull(NULL);
}

/* What a library allocated passes through; its NULL is fatal as mymalloc's is. */
static void
test_nonnull(void **state)
{
	char log[1024], buf[1];
	int status;

	CHECK_INT("passes a pointer on", mynonnull(buf) == buf, 1);
	status = run_child(library_failed, log, sizeof(log));
	CHECK_INT("NULL exits", WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1);
	CHECK_HAS("says why", log, "out of memory");
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sizes),
	        cmocka_unit_test(test_strings),
	        cmocka_unit_test(test_overflow_is_fatal),
	        cmocka_unit_test(test_nonnull),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
