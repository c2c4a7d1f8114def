/*
 * check - table-driven checks for the cmocka unit tests: a failing CHECK_* prints where
 * and what (and the test goes on to the next row); check_done() then fails the test if any
 * row failed, so one run shows every failing row. Include after <cmocka.h>.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* A heap copy of exactly n bytes (no NUL after it), so that reading past n is an ASan
   error. The caller frees it. */
static inline char *
exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	if (n)
		memcpy(p, s, n);
	return p;
}

#define CHECK_INT(what, got, want)                                                                 \
	check_int(__FILE__, __LINE__, (what), #got, (long long)(got), (long long)(want))
/* want NULL means "absent". */
#define CHECK_STR(what, got, want) check_str(__FILE__, __LINE__, (what), #got, (got), (want))
#define CHECK_HAS(what, got, want) check_has(__FILE__, __LINE__, (what), #got, (got), (want))

static inline void
check_int(const char *file, int line, const char *what, const char *expr, long long got,
          long long want)
{
	if (got != want) {
		print_error("%s:%d: %s: %s: got %lld, want %lld\n", file, line, what, expr, got,
		            want);
		failures++;
	}
}

static inline void
check_str(const char *file, int line, const char *what, const char *expr, const char *got,
          const char *want)
{
	bool same = got == NULL || want == NULL ? got == want : strcmp(got, want) == 0;

	if (!same) {
		print_error("%s:%d: %s: %s: got %s%s%s, want %s%s%s\n", file, line, what, expr,
		            got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want ? "\"" : "",
		            want ? want : "NULL", want ? "\"" : "");
		failures++;
	}
}

static inline void
check_has(const char *file, int line, const char *what, const char *expr, const char *got,
          const char *want)
{
	if (got == NULL || strstr(got, want) == NULL) {
		print_error("%s:%d: %s: %s: got \"%s\", want it to contain \"%s\"\n", file, line,
		            what, expr, got ? got : "(null)", want);
		failures++;
	}
}

/* End of a table-driven test: fail it if any row failed (all failing rows were printed). */
static inline void
check_done(void)
{
	int n = failures;

	failures = 0;
	if (n != 0) {
		print_error("%d check(s) failed\n", n);
		fail();
	}
}

#endif
