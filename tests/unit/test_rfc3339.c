/*
 * test_rfc3339 - unit tests for lib/rfc3339 (timestamps as ms since the epoch, UTC).
 *
 * Covers rfc3339_format() on known instants (the epoch, before it, a leap day, the end of
 * a year, millisecond precision, the ends of the four-digit year range), rfc3339_parse() on
 * every accepted form (Z and z, t, numeric offsets, fractions of 1 to 9 digits, a leap
 * second) and on every rejected one (fields out of range, impossible dates, missing zone,
 * trailing text, every truncation of a valid string), the error texts, that parsing never
 * reads past len, and parse(format(x)) == x over a wide spread of instants. Expected
 * millisecond values were computed independently with Python's datetime.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rfc3339.h"

#include "check.h"

/* Parse a heap copy of exactly len bytes (no NUL after it): ASan catches any over-read. */
static int
parse_exact(const char *s, size_t len, int64_t *ms_r, const char **error_r)
{
	char *p = exact(s, len);
	int rc;

	rc = rfc3339_parse(p, len, ms_r, error_r);
	free(p);
	return rc;
}

static const struct {
	const char *name;
	int64_t ms;
	const char *want;
} format_cases[] = {
        {"epoch", 0, "1970-01-01T00:00:00.000Z"},
        {"one ms", 1, "1970-01-01T00:00:00.001Z"},
        {"999 ms", 999, "1970-01-01T00:00:00.999Z"},
        {"one ms before the epoch", -1, "1969-12-31T23:59:59.999Z"},
        {"one second before the epoch", -1000, "1969-12-31T23:59:59.000Z"},
        {"1001 ms before the epoch", -1001, "1969-12-31T23:59:58.999Z"},
        {"leap day 2024", 1709164800000, "2024-02-29T00:00:00.000Z"},
        {"leap day 2024 with ms", 1709210096789, "2024-02-29T12:34:56.789Z"},
        {"leap day 2000", 951782400000, "2000-02-29T00:00:00.000Z"},
        {"1900 is not leap", -2203891200000, "1900-03-01T00:00:00.000Z"},
        {"end of 2024", 1735689599999, "2024-12-31T23:59:59.999Z"},
        {"start of 2025", 1735689600000, "2025-01-01T00:00:00.000Z"},
        {"the protocol example", 1795341845123, "2026-11-22T10:04:05.123Z"},
        {"past 2038 (32-bit time_t)", 2147483648000, "2038-01-19T03:14:08.000Z"},
        {"year 1", -62135596800000, "0001-01-01T00:00:00.000Z"},
        {"year 0", -62167219200000, "0000-01-01T00:00:00.000Z"},
        {"last ms of year 9999", 253402300799999, "9999-12-31T23:59:59.999Z"},
        /* outside four-digit years the formatter writes a fixed placeholder */
        {"year 10000", 253402300800000, "0000-00-00T00:00:00.000Z"},
        {"before year 0", -62167219200001, "0000-00-00T00:00:00.000Z"},
};

static void
test_format_known(void **state)
{
	for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
		char buf[RFC3339_BUFSIZE];
		char *ret;

		memset(buf, 'X', sizeof(buf));
		ret = rfc3339_format(format_cases[i].ms, buf);
		CHECK_INT(format_cases[i].name, ret == buf, 1);
		CHECK_STR(format_cases[i].name, buf, format_cases[i].want);
	}
	check_done();
}

static const struct {
	const char *name;
	const char *text;
	int64_t want;
} parse_ok_cases[] = {
        {"epoch Z", "1970-01-01T00:00:00Z", 0},
        {"lower-case t and z", "1970-01-01t00:00:00z", 0},
        {"epoch with ms", "1970-01-01T00:00:00.000Z", 0},
        {"+00:00", "1970-01-01T00:00:00+00:00", 0},
        {"-00:00", "1970-01-01T00:00:00-00:00", 0},
        {"+01:00 is an hour earlier", "1970-01-01T01:00:00+01:00", 0},
        {"-05:30", "1969-12-31T18:30:00-05:30", 0},
        {"+23:59", "2024-02-29T12:00:00+23:59", 1709208000000 - (23 * 3600 + 59 * 60) * 1000LL},
        {"-23:59", "2024-02-29T12:00:00-23:59", 1709208000000 + (23 * 3600 + 59 * 60) * 1000LL},
        {"offset crosses the date", "2024-03-01T01:00:00+02:00", 1709164800000 + 23 * 3600000LL},
        {"leap day 2024", "2024-02-29T00:00:00Z", 1709164800000},
        {"leap day 2000", "2000-02-29T00:00:00Z", 951782400000},
        {"end of year", "2024-12-31T23:59:59.999Z", 1735689599999},
        {"before the epoch", "1969-12-31T23:59:59.999Z", -1},
        {"year 0", "0000-01-01T00:00:00Z", -62167219200000},
        {"year 9999", "9999-12-31T23:59:59.999Z", 253402300799999},
        {"fraction 1 digit", "2024-02-29T12:34:56.7Z", 1709210096700},
        {"fraction 2 digits", "2024-02-29T12:34:56.78Z", 1709210096780},
        {"fraction 3 digits", "2024-02-29T12:34:56.789Z", 1709210096789},
        {"fraction 4 digits", "2024-02-29T12:34:56.7891Z", 1709210096789},
        {"fraction 5 digits", "2024-02-29T12:34:56.78912Z", 1709210096789},
        {"fraction 6 digits", "2024-02-29T12:34:56.789123Z", 1709210096789},
        {"fraction 7 digits", "2024-02-29T12:34:56.7891234Z", 1709210096789},
        {"fraction 8 digits", "2024-02-29T12:34:56.78912345Z", 1709210096789},
        {"fraction 9 digits, truncated not rounded", "2024-02-29T12:34:56.999999999Z",
         1709210096999},
        {"fraction 9 zeros", "2024-02-29T12:34:56.000000000Z", 1709210096000},
        {"fraction with offset", "2024-02-29T13:34:56.789+01:00", 1709210096789},
        {"leap second is the second before", "2016-12-31T23:59:60Z", 1483228799000},
        {"leap second with fraction", "2016-12-31T23:59:60.500Z", 1483228799500},
        {"leap second with offset", "2017-01-01T00:59:60+01:00", 1483228799000},
};

static void
test_parse_valid(void **state)
{
	for (size_t i = 0; i < sizeof(parse_ok_cases) / sizeof(parse_ok_cases[0]); i++) {
		const char *err = NULL;
		int64_t ms = -42;
		int rc = parse_exact(parse_ok_cases[i].text, strlen(parse_ok_cases[i].text), &ms,
		                     &err);

		if (rc != 0)
			print_error("%s: \"%s\" rejected: %s\n", parse_ok_cases[i].name,
			            parse_ok_cases[i].text, err ? err : "(no error text)");
		CHECK_INT(parse_ok_cases[i].name, rc, 0);
		CHECK_INT(parse_ok_cases[i].name, ms, parse_ok_cases[i].want);
	}
	check_done();
}

static const struct {
	const char *name;
	const char *text;
	const char *want_err; /* substring of the error text */
} parse_bad_cases[] = {
        {"empty", "", "not an RFC 3339 date-time"},
        {"only a date", "2024-02-29", "not an RFC 3339"},
        {"space instead of T", "2024-02-29 12:00:00Z", "not an RFC 3339"},
        {"two-digit year", "24-02-29T12:00:00Z", "not an RFC 3339"},
        {"one-digit month", "2024-2-29T12:00:00Z", "not an RFC 3339"},
        {"slashes", "2024/02/29T12:00:00Z", "not an RFC 3339"},
        {"no seconds", "2024-02-29T12:00Z", "not an RFC 3339"},
        {"letters in the year", "20x4-02-29T12:00:00Z", "not an RFC 3339"},
        {"leading space", " 2024-02-29T12:00:00Z", "not an RFC 3339"},
        {"sign in a field", "2024-02-+9T12:00:00Z", "not an RFC 3339"},
        {"missing zone", "2024-02-29T12:00:00", "missing time zone"},
        {"missing zone after fraction", "2024-02-29T12:00:00.123", "missing time zone"},
        {"unknown zone letter", "2024-02-29T12:00:00A", "missing time zone"},
        {"zone name", "2024-02-29T12:00:00UTC", "missing time zone"},
        {"trailing character after Z", "2024-02-29T12:00:00Zx", "trailing characters"},
        {"trailing space", "2024-02-29T12:00:00Z ", "trailing characters"},
        {"trailing newline", "2024-02-29T12:00:00Z\n", "trailing characters"},
        {"two zones", "2024-02-29T12:00:00Z+01:00", "trailing characters"},
        {"trailing after offset", "2024-02-29T12:00:00+01:000", "trailing characters"},
        {"dot without digits", "2024-02-29T12:00:00.Z", "bad fraction"},
        {"fraction of 10 digits", "2024-02-29T12:00:00.1234567890Z", "bad fraction"},
        {"comma fraction", "2024-02-29T12:00:00,5Z", "missing time zone"},
        {"offset without minutes", "2024-02-29T12:00:00+01", "bad UTC offset"},
        {"offset without colon", "2024-02-29T12:00:00+0100", "bad UTC offset"},
        {"offset hour 24", "2024-02-29T12:00:00+24:00", "bad UTC offset"},
        {"offset minute 60", "2024-02-29T12:00:00-01:60", "bad UTC offset"},
        {"offset one digit", "2024-02-29T12:00:00+1:00", "bad UTC offset"},
        {"month 0", "2024-00-10T12:00:00Z", "out of range"},
        {"month 13", "2024-13-01T12:00:00Z", "out of range"},
        {"day 0", "2024-01-00T12:00:00Z", "out of range"},
        {"Jan 32", "2024-01-32T12:00:00Z", "out of range"},
        {"Apr 31", "2024-04-31T12:00:00Z", "out of range"},
        {"Jun 31", "2024-06-31T12:00:00Z", "out of range"},
        {"Sep 31", "2024-09-31T12:00:00Z", "out of range"},
        {"Nov 31", "2024-11-31T12:00:00Z", "out of range"},
        {"Feb 30 in a leap year", "2024-02-30T12:00:00Z", "out of range"},
        {"Feb 29 in 2023", "2023-02-29T12:00:00Z", "out of range"},
        {"Feb 29 in 2100", "2100-02-29T12:00:00Z", "out of range"},
        {"Feb 29 in 1900", "1900-02-29T12:00:00Z", "out of range"},
        {"hour 24", "2024-02-29T24:00:00Z", "out of range"},
        {"minute 60", "2024-02-29T12:60:00Z", "out of range"},
        {"second 61", "2024-02-29T12:00:61Z", "out of range"},
        {"second 99", "2024-02-29T12:00:99Z", "out of range"},
};

static void
test_parse_invalid(void **state)
{
	for (size_t i = 0; i < sizeof(parse_bad_cases) / sizeof(parse_bad_cases[0]); i++) {
		const char *err = NULL;
		int64_t ms = -42;
		int rc = parse_exact(parse_bad_cases[i].text, strlen(parse_bad_cases[i].text), &ms,
		                     &err);

		if (rc == 0)
			print_error("%s: \"%s\" accepted as %lld\n", parse_bad_cases[i].name,
			            parse_bad_cases[i].text, (long long)ms);
		CHECK_INT(parse_bad_cases[i].name, rc, -1);
		if (rc != 0)
			CHECK_HAS(parse_bad_cases[i].name, err, parse_bad_cases[i].want_err);
		CHECK_INT(parse_bad_cases[i].name, ms, -42); /* untouched on failure */
	}
	check_done();
}

/* Every proper prefix of a valid string is rejected, without reading past it. */
static void
test_parse_every_truncation(void **state)
{
	static const char *const full[] = {
	        "2024-02-29T12:34:56.789+01:00",
	        "2024-02-29T12:34:56.789123456Z",
	        "1970-01-01T00:00:00-00:00",
	};

	for (size_t f = 0; f < sizeof(full) / sizeof(full[0]); f++) {
		size_t n = strlen(full[f]);
		int64_t ms;
		const char *err = NULL;

		CHECK_INT(full[f], parse_exact(full[f], n, &ms, &err), 0);
		for (size_t len = 0; len < n; len++) {
			char what[96];

			err = NULL;
			snprintf(what, sizeof(what), "\"%.*s\" (prefix of %zu bytes)", (int)len,
			         full[f], len);
			CHECK_INT(what, parse_exact(full[f], len, &ms, &err), -1);
			CHECK_INT(what, err != NULL && err[0] != '\0', 1);
		}
	}
	check_done();
}

/* len bounds the input: text after it is not looked at. */
static void
test_parse_honours_len(void **state)
{
	const char *s = "2024-02-29T00:00:00ZGARBAGE";
	const char *err = NULL;
	int64_t ms = 0;

	CHECK_INT("with len 20", rfc3339_parse(s, 20, &ms, &err), 0);
	CHECK_INT("with len 20", ms, 1709164800000);
	CHECK_INT("with full len", rfc3339_parse(s, strlen(s), &ms, &err), -1);
	CHECK_HAS("with full len", err, "trailing characters");
	check_done();
}

/* A small deterministic generator (splitmix64) so the spread is the same on every run. */
static uint64_t
next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
round_trip(int64_t x)
{
	char buf[RFC3339_BUFSIZE];
	const char *err = NULL;
	int64_t back = -1;
	int rc;

	rfc3339_format(x, buf);
	rc = rfc3339_parse(buf, strlen(buf), &back, &err);
	if (rc != 0 || back != x || strlen(buf) != 24) {
		if (failures < 20)
			print_error("round trip of %lld: formatted \"%s\", parse rc %d (%s), got "
			            "%lld, want %lld\n",
			            (long long)x, buf, rc, rc ? err : "ok", (long long)back,
			            (long long)x);
		failures++;
	}
}

static void
test_round_trip(void **state)
{
	static const int64_t edges[] = {
	        0,
	        1,
	        -1,
	        999,
	        1000,
	        -999,
	        -1000,
	        -1001,
	        86399999,
	        86400000,
	        951782400000,
	        1709164800000,
	        1735689599999,
	        2147483647999,
	        2147483648000,
	        4102444800000, /* 2100-01-01 */
	        -62167219200000,
	        253402300799999,
	};
	const int64_t lo = -62167219200000, hi = 253402300799999; /* years 0000..9999 */
	uint64_t seed = 3339;

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		round_trip(edges[i]);
	for (int i = 0; i < 20000; i++)
		round_trip(lo + (int64_t)(next_rand(&seed) % (uint64_t)(hi - lo + 1)));
	/* every day boundary (and the ms around it) from 1999 to 2102, leap years included */
	for (int64_t d = 10592; d <= 48213; d++) {
		round_trip(d * 86400000);
		round_trip(d * 86400000 - 1);
		round_trip(d * 86400000 + 1);
	}
	check_done();
}

/* What rfc3339_format wrote with gmtime_r() and snprintf(), before it did it by hand. */
static void
reference_format(int64_t ms, char *buf, size_t size)
{
	time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	struct tm tm;

	assert_non_null(gmtime_r(&sec, &tm));
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)sec * 1000));
}

/* The formatter agrees with gmtime_r() over years 0000..9999 and at every day boundary. */
static void
test_format_matches_gmtime(void **state)
{
	const int64_t lo = -62167219200000, hi = 253402300799999;
	uint64_t seed = 1970;

	for (int i = 0; i < 200000; i++) {
		int64_t ms = lo + (int64_t)(next_rand(&seed) % (uint64_t)(hi - lo + 1));
		char got[RFC3339_BUFSIZE], want[64], what[32];

		if (i < 2)
			ms = i == 0 ? lo : hi;
		snprintf(what, sizeof(what), "%lld", (long long)ms);
		reference_format(ms, want, sizeof(want));
		CHECK_STR(what, rfc3339_format(ms, got), want);
	}
	for (int64_t d = -1000; d <= 60000; d++)
		for (int64_t delta = -1; delta <= 1; delta++) {
			int64_t ms = d * 86400000 + delta;
			char got[RFC3339_BUFSIZE], want[64], what[32];

			snprintf(what, sizeof(what), "%lld", (long long)ms);
			reference_format(ms, want, sizeof(want));
			CHECK_STR(what, rfc3339_format(ms, got), want);
		}
	check_done();
}

/* format(parse(s)) == s for strings already in the canonical form. */
static void
test_canonical_round_trip(void **state)
{
	for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
		const char *s = format_cases[i].want;
		char buf[RFC3339_BUFSIZE];
		const char *err = NULL;
		int64_t ms = 0;

		if (strncmp(s, "0000-00", 7) == 0)
			continue; /* the out-of-range placeholder is not a date */
		CHECK_INT(s, rfc3339_parse(s, strlen(s), &ms, &err), 0);
		CHECK_STR(s, rfc3339_format(ms, buf), s);
	}
	check_done();
}

static void
test_clocks(void **state)
{
	int64_t now = time_now_ms();
	int64_t m1 = time_mono_ms(), m2;

	/* The wall clock is after 2024-01-01 and before 2100-01-01. */
	CHECK_INT("time_now_ms after 2024", now > 1704067200000, 1);
	CHECK_INT("time_now_ms before 2100", now < 4102444800000, 1);
	m2 = time_mono_ms();
	CHECK_INT("time_mono_ms does not go back", m2 >= m1, 1);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_format_known),
	        cmocka_unit_test(test_parse_valid),
	        cmocka_unit_test(test_parse_invalid),
	        cmocka_unit_test(test_parse_every_truncation),
	        cmocka_unit_test(test_parse_honours_len),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_canonical_round_trip),
	        cmocka_unit_test(test_format_matches_gmtime),
	        cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
