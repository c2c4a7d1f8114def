/*
 * test_utf8 - unit tests for lib/utf8 (RFC 3629 well-formedness).
 *
 * Covers utf8_seq_len() and utf8_valid(): every sequence length, the boundary code points
 * (U+007F/U+0080, U+07FF/U+0800, U+D7FF/U+E000, U+FFFF/U+10000, U+10FFFF), and every
 * way to be broken: stray continuation bytes, overlong forms, surrogates, code points above
 * U+10FFFF, truncated sequences, 0xc0/0xc1/0xf5..0xff lead bytes. A table gives named cases;
 * an exhaustive sweep compares every 1-, 2- and 3-byte sequence (and a sample of 4-byte
 * ones) against an independent reference decoder. Buffers are heap copies of exactly the
 * given length so that ASan catches any read past n.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

#include "check.h"

struct seq_case {
	const char *name;
	const char *bytes;
	size_t len;
	size_t want_seq; /* utf8_seq_len(bytes, len) */
	int want_valid;  /* utf8_valid(bytes, len) */
};

#define S(s) s, sizeof(s) - 1

static const struct seq_case seq_cases[] = {
        /* well-formed, one sequence */
        {"empty", S(""), 0, 1},
        {"NUL byte", S("\0"), 1, 1},
        {"ASCII A", S("A"), 1, 1},
        {"U+007F last 1-byte", S("\x7f"), 1, 1},
        {"U+0080 first 2-byte", S("\xc2\x80"), 2, 1},
        {"U+00E9 e-acute", S("\xc3\xa9"), 2, 1},
        {"U+07FF last 2-byte", S("\xdf\xbf"), 2, 1},
        {"U+0800 first 3-byte", S("\xe0\xa0\x80"), 3, 1},
        {"U+20AC euro", S("\xe2\x82\xac"), 3, 1},
        {"U+D7FF before surrogates", S("\xed\x9f\xbf"), 3, 1},
        {"U+E000 after surrogates", S("\xee\x80\x80"), 3, 1},
        {"U+FFFD replacement", S("\xef\xbf\xbd"), 3, 1},
        {"U+FFFF last 3-byte", S("\xef\xbf\xbf"), 3, 1},
        {"U+10000 first 4-byte", S("\xf0\x90\x80\x80"), 4, 1},
        {"U+1F600 emoji", S("\xf0\x9f\x98\x80"), 4, 1},
        {"U+10FFFF last code point", S("\xf4\x8f\xbf\xbf"), 4, 1},
        /* well-formed, several sequences: seq_len looks at the first only */
        {"mixed 1-4 bytes", S("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), 1, 1},
        {"2-byte then ASCII", S("\xc3\xa9x"), 2, 1},
        {"NUL inside text", S("a\0b"), 1, 1},
        /* stray continuation bytes */
        {"lone 0x80", S("\x80"), 0, 0},
        {"lone 0xbf", S("\xbf"), 0, 0},
        {"continuation after ASCII", S("a\x80"), 1, 0},
        {"extra continuation after 2-byte", S("\xc3\xa9\x80"), 2, 0},
        /* overlong forms */
        {"overlong '/' c0 af", S("\xc0\xaf"), 0, 0},
        {"overlong NUL c0 80", S("\xc0\x80"), 0, 0},
        {"overlong c1 bf (U+007F)", S("\xc1\xbf"), 0, 0},
        {"overlong 3-byte e0 80 af", S("\xe0\x80\xaf"), 0, 0},
        {"overlong 3-byte e0 9f bf (U+07FF)", S("\xe0\x9f\xbf"), 0, 0},
        {"overlong 4-byte f0 80 80 af", S("\xf0\x80\x80\xaf"), 0, 0},
        {"overlong 4-byte f0 8f bf bf (U+FFFF)", S("\xf0\x8f\xbf\xbf"), 0, 0},
        /* surrogates */
        {"surrogate U+D800", S("\xed\xa0\x80"), 0, 0},
        {"surrogate U+DBFF", S("\xed\xaf\xbf"), 0, 0},
        {"surrogate U+DC00", S("\xed\xb0\x80"), 0, 0},
        {"surrogate U+DFFF", S("\xed\xbf\xbf"), 0, 0},
        {"surrogate pair as CESU-8", S("\xed\xa0\xbd\xed\xb8\x80"), 0, 0},
        /* above U+10FFFF */
        {"U+110000 f4 90 80 80", S("\xf4\x90\x80\x80"), 0, 0},
        {"f4 bf bf bf", S("\xf4\xbf\xbf\xbf"), 0, 0},
        {"lead f5", S("\xf5\x80\x80\x80"), 0, 0},
        {"lead f7", S("\xf7\xbf\xbf\xbf"), 0, 0},
        {"5-byte form f8", S("\xf8\x88\x80\x80\x80"), 0, 0},
        {"6-byte form fc", S("\xfc\x84\x80\x80\x80\x80"), 0, 0},
        {"byte fe", S("\xfe"), 0, 0},
        {"byte ff", S("\xff"), 0, 0},
        {"fe ff BOM-like", S("\xfe\xff"), 0, 0},
        /* truncated */
        {"2-byte lead alone", S("\xc2"), 0, 0},
        {"3-byte lead alone", S("\xe2"), 0, 0},
        {"3-byte missing last", S("\xe2\x82"), 0, 0},
        {"4-byte lead alone", S("\xf0"), 0, 0},
        {"4-byte missing last", S("\xf0\x9f\x98"), 0, 0},
        {"3-byte cut by ASCII",
         S("\xe2\x82"
           "a"),
         0, 0},
        {"4-byte cut by ASCII",
         S("\xf0\x9f"
           "ab"),
         0, 0},
        {"2-byte then 2-byte lead", S("\xc2\xc2\x80"), 0, 0},
        {"text then truncated", S("abc\xe2\x82"), 1, 0},
        /* bad continuation */
        {"2-byte with ASCII second", S("\xc2\x41"), 0, 0},
        {"2-byte with c0 second", S("\xc2\xc0"), 0, 0},
        {"3-byte bad third", S("\xe2\x82\xc0"), 0, 0},
        {"4-byte bad fourth", S("\xf0\x9f\x98\x7f"), 0, 0},
        {"valid then ff", S("abc\xff"), 1, 0},
};

static void
test_seq_table(void **state)
{
	for (size_t i = 0; i < sizeof(seq_cases) / sizeof(seq_cases[0]); i++) {
		const struct seq_case *c = &seq_cases[i];
		char *buf = exact(c->bytes, c->len);

		CHECK_INT(c->name, utf8_seq_len(buf, c->len), c->want_seq);
		CHECK_INT(c->name, utf8_valid(buf, c->len), c->want_valid);
		free(buf);
	}
	check_done();
}

/* utf8_seq_len() must not look at more than n bytes: a complete sequence cut short is 0. */
static void
test_seq_len_respects_n(void **state)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} seqs[] = {
	        {"U+00E9", S("\xc3\xa9")},
	        {"U+20AC", S("\xe2\x82\xac")},
	        {"U+10FFFF", S("\xf4\x8f\xbf\xbf")},
	};

	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		for (size_t n = 0; n <= seqs[i].len; n++) {
			char *buf = exact(seqs[i].bytes, n);
			char what[64];

			snprintf(what, sizeof(what), "%s with n=%zu", seqs[i].name, n);
			CHECK_INT(what, utf8_seq_len(buf, n), n == seqs[i].len ? n : 0);
			CHECK_INT(what, utf8_valid(buf, n), n == seqs[i].len || n == 0);
			free(buf);
		}
	}
	check_done();
}

/*
 * Reference decoder, written from RFC 3629 section 3 rather than the table in section 4:
 * decode the structure, then demand the shortest form, no surrogate, at most U+10FFFF.
 */
static size_t
ref_seq_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0; /* overlong */
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	if (cp > 0x10ffff)
		return 0;
	return len;
}

static void
sweep_one(const unsigned char *b, size_t n)
{
	size_t got = utf8_seq_len((const char *)b, n);
	size_t want = ref_seq_len(b, n);

	if (got != want) {
		/* Print at most a screenful of disagreements. */
		if (failures < 20)
			print_error("seq %02x %02x %02x %02x (n=%zu): got %zu, want %zu\n", b[0],
			            n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n, got,
			            want);
		failures++;
	}
}

static void
test_exhaustive_sweep(void **state)
{
	unsigned char b[4];
	static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
	                                      0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff};

	for (unsigned x = 0; x < 256; x++) {
		b[0] = (unsigned char)x;
		sweep_one(b, 1);
		for (unsigned y = 0; y < 256; y++) {
			b[1] = (unsigned char)y;
			sweep_one(b, 2);
			for (unsigned z = 0; z < 256; z++) {
				b[2] = (unsigned char)z;
				sweep_one(b, 3);
				/* 4 bytes: every first three, a spread of fourth bytes */
				if (x >= 0xf0)
					for (size_t t = 0; t < sizeof(tails); t++) {
						b[3] = tails[t];
						sweep_one(b, 4);
					}
			}
		}
	}
	check_done();
}

/* Encode every scalar value and check it is accepted at its length, alone and in text. */
static size_t
encode(uint32_t cp, unsigned char *out)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

static void
test_every_code_point(void **state)
{
	unsigned char buf[6];

	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t n = encode(cp, buf + 1);
		int surrogate = cp >= 0xd800 && cp <= 0xdfff;
		size_t want = surrogate ? 0 : n;

		buf[0] = 'x';
		buf[n + 1] = 'y';
		if (utf8_seq_len((const char *)buf + 1, n) != want ||
		    utf8_valid((const char *)buf, n + 2) != !surrogate) {
			if (failures < 20)
				print_error("U+%04X: seq_len got %zu, want %zu; valid got %d, "
				            "want %d\n",
				            (unsigned)cp, utf8_seq_len((const char *)buf + 1, n),
				            want, utf8_valid((const char *)buf, n + 2), !surrogate);
			failures++;
		}
	}
	check_done();
}

/* A long valid text with one bad byte anywhere is invalid; restoring the byte fixes it. */
static void
test_valid_long_text_with_one_bad_byte(void **state)
{
	static const char unit[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ";
	size_t ulen = sizeof(unit) - 1, n = ulen * 50;
	char *text = malloc(n);

	assert_non_null(text);
	for (size_t i = 0; i < 50; i++)
		memcpy(text + i * ulen, unit, ulen);
	CHECK_INT("clean text", utf8_valid(text, n), 1);
	for (size_t pos = 0; pos < n; pos += 7) {
		char saved = text[pos];
		char what[48];

		text[pos] = (char)0xff;
		snprintf(what, sizeof(what), "0xff at %zu", pos);
		CHECK_INT(what, utf8_valid(text, n), 0);
		text[pos] = saved;
	}
	CHECK_INT("restored text", utf8_valid(text, n), 1);
	free(text);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_seq_table),
	        cmocka_unit_test(test_seq_len_respects_n),
	        cmocka_unit_test(test_exhaustive_sweep),
	        cmocka_unit_test(test_every_code_point),
	        cmocka_unit_test(test_valid_long_text_with_one_bad_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
