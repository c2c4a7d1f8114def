/*
 * test_base32 - unit tests for lib/base32 (lower-case RFC 4648 base32, no padding).
 *
 * One table: RFC 4648's test vectors (section 10, lower case and without the '='), whole
 * and cut to fewer characters; the shapes msgstatus uses (26 characters of 17 random
 * bytes for ids, 32 of 20 bytes for API tokens, 26 of a SHA-256 for log-line ids), with
 * the expected text from Python's base64.b32encode; every byte value in every position
 * of a 5-byte group; and nothing written past n + 1 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "base32.h"

#include "check.h"

static const unsigned char seq[20] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                      10, 11, 12, 13, 14, 15, 16, 17, 18, 19};

static const struct {
	const char *name;
	const void *in;
	size_t len, n;
	const char *want;
} cases[] = {
        {"RFC 4648: empty", "", 0, 0, ""},
        {"RFC 4648: f", "f", 1, 2, "my"},
        {"RFC 4648: fo", "fo", 2, 4, "mzxq"},
        {"RFC 4648: foo", "foo", 3, 5, "mzxw6"},
        {"RFC 4648: foob", "foob", 4, 7, "mzxw6yq"},
        {"RFC 4648: fooba", "fooba", 5, 8, "mzxw6ytb"},
        {"RFC 4648: foobar", "foobar", 6, 10, "mzxw6ytboi"},
        {"foobar cut to 3", "foobar", 6, 3, "mzx"},
        {"foobar cut to 0", "foobar", 6, 0, ""},
        {"id: 26 of 17 bytes", seq, 17, 26, "aaaqeayeaudaocajbifqydiob4"},
        {"token: 32 of 20 bytes", seq, 20, 32, "aaaqeayeaudaocajbifqydiob4ibceqt"},
        {"all ones", "\xff\xff\xff\xff\xff", 5, 8, "77777777"},
        {"one bit last", "\x00\x00\x00\x00\x01", 5, 8, "aaaaaaab"},
        {"one bit first", "\x80", 1, 2, "qa"},
};

static void
test_table(void **state)
{
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, '#', sizeof(out));
		CHECK_STR(cases[i].name, base32_encode(out, cases[i].n, cases[i].in, cases[i].len),
		          cases[i].want);
		CHECK_INT(cases[i].name, out[cases[i].n + 1], '#');
	}
	check_done();
}

/* logd's line ids: "pf" and 26 characters of the line's SHA-256. */
static void
test_sha256_prefix(void **state)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char out[27];

	SHA256((const unsigned char *)"abc", 3, digest);
	CHECK_STR("SHA-256 of abc", base32_encode(out, 26, digest, sizeof(digest)),
	          "xj4bnp4pahh6uqkbidpf3lrceo");
	check_done();
}

/* Every byte value at every position of a 5-byte group decodes back (a decoder here). */
static void
test_round_trip(void **state)
{
	for (int pos = 0; pos < 5; pos++)
		for (int v = 0; v < 256; v++) {
			unsigned char in[5] = {0}, back[5] = {0};
			char out[9];
			uint64_t acc = 0;

			in[pos] = (unsigned char)v;
			base32_encode(out, 8, in, 5);
			for (int i = 0; i < 8; i++)
				acc = (acc << 5) |
				      (uint64_t)(strchr(BASE32_ALPHABET, out[i]) - BASE32_ALPHABET);
			for (int i = 4; i >= 0; i--, acc >>= 8)
				back[i] = (unsigned char)acc;
			CHECK_INT(out, memcmp(in, back, 5), 0);
		}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_sha256_prefix),
	        cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
