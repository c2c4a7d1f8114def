/*
 * test_randid - unit tests for lib/randid (unguessable ids: 26 characters of base32 a-z2-7).
 *
 * Covers randid_new() (length, terminating NUL, alphabet, returns its buffer, writes
 * nothing past RANDID_LEN + 1), randid_valid() on its own ids and on a table of near
 * misses (wrong length, upper case, 0/1/8/9, padding, NUL inside), no duplicate in 100000
 * ids, every character appearing at every position in plausible proportion, and
 * randid_bytes() for 0, small and large sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "randid.h"

#include "check.h"

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static void
test_new_shape(void **state)
{
	for (int i = 0; i < 1000; i++) {
		char buf[RANDID_LEN + 8];
		char *ret;

		memset(buf, '#', sizeof(buf));
		ret = randid_new(buf);
		CHECK_INT("returns its buffer", ret == buf, 1);
		CHECK_INT(buf, strlen(buf), RANDID_LEN);
		CHECK_INT(buf, strspn(buf, alphabet), RANDID_LEN);
		CHECK_INT(buf, randid_valid(buf, strlen(buf)), 1);
		for (size_t j = RANDID_LEN + 1; j < sizeof(buf); j++)
			CHECK_INT("no write past RANDID_LEN + 1", buf[j], '#');
		if (failures)
			break;
	}
	CHECK_INT("RANDID_LEN", RANDID_LEN, 26);
	check_done();
}

static const struct {
	const char *name;
	const char *s;
	size_t len;
	int want;
} valid_cases[] = {
        {"all a", "aaaaaaaaaaaaaaaaaaaaaaaaaa", 26, 1},
        {"all 7", "77777777777777777777777777", 26, 1},
        {"whole alphabet", "abcdefghijklmnopqrstuvwxyz", 26, 1},
        {"digits and letters", "234567abcdefghijklmnopqrst", 26, 1},
        {"empty", "", 0, 0},
        {"25 characters", "aaaaaaaaaaaaaaaaaaaaaaaaa", 25, 0},
        {"27 characters", "aaaaaaaaaaaaaaaaaaaaaaaaaaa", 27, 0},
        {"len says 25 of 26", "aaaaaaaaaaaaaaaaaaaaaaaaaa", 25, 0},
        {"upper case", "Aaaaaaaaaaaaaaaaaaaaaaaaaa", 26, 0},
        {"all upper case", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26, 0},
        {"digit 0", "aaaaaaaaaaaaaaaaaaaaaaaaa0", 26, 0},
        {"digit 1", "1aaaaaaaaaaaaaaaaaaaaaaaaa", 26, 0},
        {"digit 8", "aaaaaaaaaaaa8aaaaaaaaaaaaa", 26, 0},
        {"digit 9", "aaaaaaaaaaaaa9aaaaaaaaaaaa", 26, 0},
        {"padding =", "aaaaaaaaaaaaaaaaaaaaaaaa==", 26, 0},
        {"dash", "aaaaaaaaaaaa-aaaaaaaaaaaaa", 26, 0},
        {"space", "aaaaaaaaaaaa aaaaaaaaaaaaa", 26, 0},
        {"NUL inside", "aaaaaaaaaaaa\0aaaaaaaaaaaaa", 26, 0},
        {"high byte",
         "aaaaaaaaaaaa\xc3\xa9"
         "aaaaaaaaaaaa",
         26, 0},
        {"char before a", "aaaaaaaaaaaa`aaaaaaaaaaaaa", 26, 0},
        {"char after z", "aaaaaaaaaaaa{aaaaaaaaaaaaa", 26, 0},
};

static void
test_valid_table(void **state)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
		CHECK_INT(valid_cases[i].name, randid_valid(valid_cases[i].s, valid_cases[i].len),
		          valid_cases[i].want);
	check_done();
}

/* Changing any one character of a real id to a character outside the alphabet breaks it. */
static void
test_valid_rejects_each_position(void **state)
{
	char id[RANDID_LEN + 1];
	static const char bad[] = "0189A=_-. ";

	randid_new(id);
	for (size_t pos = 0; pos < RANDID_LEN; pos++)
		for (size_t b = 0; b < sizeof(bad) - 1; b++) {
			char copy[RANDID_LEN + 1];
			char what[64];

			memcpy(copy, id, sizeof(copy));
			copy[pos] = bad[b];
			snprintf(what, sizeof(what), "'%c' at %zu in %s", bad[b], pos, copy);
			CHECK_INT(what, randid_valid(copy, RANDID_LEN), 0);
		}
	CHECK_INT(id, randid_valid(id, RANDID_LEN), 1);
	check_done();
}

#define NIDS 100000

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, RANDID_LEN + 1);
}

static void
test_no_duplicates_and_spread(void **state)
{
	char(*ids)[RANDID_LEN + 1] = malloc(sizeof(*ids) * NIDS);
	static unsigned counts[RANDID_LEN][32];
	size_t dups = 0;

	assert_non_null(ids);
	memset(counts, 0, sizeof(counts));
	for (size_t i = 0; i < NIDS; i++) {
		randid_new(ids[i]);
		for (size_t p = 0; p < RANDID_LEN; p++) {
			const char *at = strchr(alphabet, ids[i][p]);
			if (at == NULL || ids[i][p] == '\0') {
				print_error("id %zu \"%s\": bad character at %zu\n", i, ids[i], p);
				free(ids);
				fail();
			}
			counts[p][at - alphabet]++;
		}
	}
	qsort(ids, NIDS, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < NIDS; i++)
		if (memcmp(ids[i - 1], ids[i], RANDID_LEN + 1) == 0) {
			print_error("duplicate id \"%s\"\n", ids[i]);
			dups++;
		}
	free(ids);
	CHECK_INT("duplicates among 100000 ids", dups, 0);
	/*
	 * Each of the 32 characters is expected NIDS/32 = 3125 times at each position (standard
	 * deviation about 55): [2500, 3750] is more than 11 deviations wide on each side, so a
	 * failure means a biased or stuck position (e.g. the last character drawn from too
	 * few bits), not bad luck.
	 */
	for (size_t p = 0; p < RANDID_LEN; p++)
		for (size_t c = 0; c < 32; c++) {
			char what[64];

			snprintf(what, sizeof(what), "'%c' at position %zu in range", alphabet[c],
			         p);
			CHECK_INT(what, counts[p][c] >= 2500 && counts[p][c] <= 3750, 1);
			if (counts[p][c] < 2500 || counts[p][c] > 3750)
				print_error("  count %u, want 2500..3750\n", counts[p][c]);
		}
	check_done();
}

static void
test_bytes(void **state)
{
	unsigned char a[4096], b[4096], guard[8];
	unsigned ones = 0;

	memset(guard, 0x5a, sizeof(guard));
	randid_bytes(guard, 0);
	for (size_t i = 0; i < sizeof(guard); i++)
		CHECK_INT("0 bytes asked, none written", guard[i], 0x5a);

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	randid_bytes(a, sizeof(a));
	randid_bytes(b, sizeof(b));
	CHECK_INT("two 4096-byte draws differ", memcmp(a, b, sizeof(a)) != 0, 1);
	for (size_t i = 0; i < sizeof(a); i++)
		for (int bit = 0; bit < 8; bit++)
			ones += (a[i] >> bit) & 1;
	/* 32768 bits: expect 16384 ones, standard deviation about 90. */
	CHECK_INT("about half the bits are set", ones > 15300 && ones < 17460, 1);
	if (ones <= 15300 || ones >= 17460)
		print_error("  got %u ones, want 15300..17460\n", ones);

	/* A small odd size fills exactly that many bytes. */
	memset(a, 0, sizeof(a));
	for (int tries = 0; tries < 8; tries++)
		randid_bytes(a, 3);
	CHECK_INT("byte 3 untouched by a 3-byte fill", a[3], 0);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_new_shape),
	        cmocka_unit_test(test_valid_table),
	        cmocka_unit_test(test_valid_rejects_each_position),
	        cmocka_unit_test(test_no_duplicates_and_spread),
	        cmocka_unit_test(test_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
