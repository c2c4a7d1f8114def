/*
 * test_mbuf - unit tests for lib/mbuf (the growable byte buffer).
 *
 * Covers an empty buffer (mbuf_str() is "", reset/truncate/consume/free on it), growth by
 * mbuf_append() in one piece and byte by byte across many sizes (every size to 3000 and
 * powers of two around the doubling points up to 1 MiB), mbuf_printf()/mbuf_vprintf()
 * output of every length from 0 to 600 after prefixes that put it just below, at and above
 * the spare room, mbuf_puts()/mbuf_putc(), binary data with NUL bytes, mbuf_consume(),
 * mbuf_putll() and mbuf_format_ll() against printf's %lld, mbuf_truncate(), mbuf_reset() (keeps the
 * allocation), mbuf_reserve(), reuse after mbuf_free(), and that misuse panics (consume or
 * truncate past the end) and that a size overflow is fatal. Every check compares against a plain
 * reference array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbuf.h"

#include "check.h"
#include "child.h"

/* The buffer holds exactly want[0..n) followed by a NUL, within its capacity. */
static int
same(const char *what, const struct mbuf *b, const char *want, size_t n)
{
	if (b->len != n) {
		print_error("%s: len: got %zu, want %zu\n", what, b->len, n);
		failures++;
		return 0;
	}
	if (b->data == NULL) {
		if (n != 0) {
			print_error("%s: data is NULL with len %zu\n", what, n);
			failures++;
			return 0;
		}
		return 1;
	}
	if (b->cap < n + 1) {
		print_error("%s: cap %zu too small for len %zu plus NUL\n", what, b->cap, n);
		failures++;
		return 0;
	}
	if (n > 0 && memcmp(b->data, want, n) != 0) {
		size_t i = 0;
		while (b->data[i] == want[i])
			i++;
		print_error("%s: first difference at byte %zu: got 0x%02x, want 0x%02x\n", what, i,
		            (unsigned char)b->data[i], (unsigned char)want[i]);
		failures++;
		return 0;
	}
	if (b->data[n] != '\0') {
		print_error("%s: no NUL after %zu bytes (got 0x%02x)\n", what, n,
		            (unsigned char)b->data[n]);
		failures++;
		return 0;
	}
	return 1;
}

/* A reference pattern with every byte value, NUL included. */
static char *
pattern(size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)((i * 7 + i / 251) & 0xff);
	p[n] = '\0';
	return p;
}

static void
test_empty(void **state)
{
	struct mbuf b = MBUF_INIT;

	CHECK_STR("fresh", mbuf_str(&b), "");
	CHECK_INT("fresh", b.len, 0);
	CHECK_INT("fresh data", b.data == NULL, 1);
	mbuf_reset(&b);
	mbuf_truncate(&b, 0);
	mbuf_consume(&b, 0);
	CHECK_STR("after reset/truncate/consume of nothing", mbuf_str(&b), "");
	CHECK_INT("still no allocation", b.data == NULL, 1);
	mbuf_free(&b);
	CHECK_INT("free of an empty buffer", b.data == NULL && b.len == 0 && b.cap == 0, 1);

	/* appending nothing allocates but keeps it empty and terminated */
	mbuf_append(&b, "", 0);
	CHECK_STR("append of 0 bytes", mbuf_str(&b), "");
	CHECK_INT("append of 0 bytes", b.len, 0);
	same("append of 0 bytes", &b, "", 0);
	mbuf_free(&b);

	/* an empty buffer after use still reads as "" */
	mbuf_puts(&b, "abc");
	mbuf_reset(&b);
	CHECK_STR("reset after use", mbuf_str(&b), "");
	mbuf_free(&b);
	check_done();
}

static void
test_append_one_piece(void **state)
{
	size_t sizes[3000 + 3 * 15];
	size_t nsizes = 0;
	char *ref = pattern((size_t)1 << 20);

	for (size_t n = 0; n < 3000; n++)
		sizes[nsizes++] = n;
	for (int k = 12; k <= 20; k++) {
		sizes[nsizes++] = ((size_t)1 << k) - 2;
		sizes[nsizes++] = ((size_t)1 << k) - 1;
		sizes[nsizes++] = (size_t)1 << k;
	}
	for (size_t i = 0; i < nsizes && !failures; i++) {
		struct mbuf b = MBUF_INIT;
		char what[48];

		snprintf(what, sizeof(what), "one append of %zu bytes", sizes[i]);
		mbuf_append(&b, ref, sizes[i]);
		same(what, &b, ref, sizes[i]);
		mbuf_free(&b);
	}
	free(ref);
	check_done();
}

static void
test_append_byte_by_byte(void **state)
{
	const size_t total = 70000;
	char *ref = pattern(total);
	struct mbuf b = MBUF_INIT;
	size_t last_cap = 0;

	for (size_t i = 0; i < total && !failures; i++) {
		mbuf_putc(&b, ref[i]);
		if (b.len != i + 1 || b.data[b.len] != '\0' || b.cap < b.len + 1 ||
		    b.data[i] != ref[i]) {
			print_error("after %zu putc: len %zu cap %zu\n", i + 1, b.len, b.cap);
			failures++;
		}
		if (b.cap < last_cap) {
			print_error("capacity shrank from %zu to %zu\n", last_cap, b.cap);
			failures++;
		}
		last_cap = b.cap;
	}
	same("70000 putc", &b, ref, total);
	mbuf_free(&b);
	free(ref);
	check_done();
}

static void
test_append_chunks(void **state)
{
	char *ref = pattern(200 * 201 / 2);
	struct mbuf b = MBUF_INIT;
	size_t off = 0;

	for (size_t n = 1; n <= 200; n++) {
		char what[48];

		mbuf_append(&b, ref + off, n);
		off += n;
		snprintf(what, sizeof(what), "after chunk of %zu", n);
		if (!same(what, &b, ref, off))
			break;
	}
	mbuf_free(&b);
	free(ref);
	check_done();
}

static void
test_puts_putc(void **state)
{
	struct mbuf b = MBUF_INIT;

	mbuf_puts(&b, "hello");
	mbuf_putc(&b, ',');
	mbuf_putc(&b, ' ');
	mbuf_puts(&b, "");
	mbuf_puts(&b, "world");
	CHECK_STR("puts/putc", mbuf_str(&b), "hello, world");
	CHECK_INT("puts/putc", b.len, 12);
	mbuf_free(&b);
	check_done();
}

static void
test_binary_with_nul(void **state)
{
	static const char bin[] = "a\0b\0\0c\xff\x00\x01";
	size_t n = sizeof(bin) - 1;
	struct mbuf b = MBUF_INIT;
	char twice[2 * sizeof(bin)];

	mbuf_append(&b, bin, n);
	same("binary", &b, bin, n);
	CHECK_INT("C string view stops at the first NUL", strlen(mbuf_str(&b)), 1);
	mbuf_putc(&b, '\0');
	CHECK_INT("putc of NUL counts", b.len, n + 1);
	mbuf_truncate(&b, n);
	mbuf_append(&b, bin, n);
	memcpy(twice, bin, n);
	memcpy(twice + n, bin, n);
	same("binary twice", &b, twice, 2 * n);
	mbuf_consume(&b, 2);
	same("binary after consuming 2", &b, twice + 2, 2 * n - 2);
	mbuf_free(&b);
	check_done();
}

static void vprintf_wrapper(struct mbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
vprintf_wrapper(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

static void
test_printf_every_length(void **state)
{
	/* prefixes chosen around the first capacity (64) and its doublings */
	static const size_t prefixes[] = {0, 1, 2, 30, 62, 63, 64, 65, 100, 126, 127, 128, 200};
	char *arg = malloc(601);
	char *want = malloc(2000);

	assert_non_null(arg);
	assert_non_null(want);
	memset(arg, 'x', 600);
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
		for (size_t n = 0; n <= 600 && !failures; n++) {
			struct mbuf b = MBUF_INIT;
			char what[64];
			int wlen;

			arg[n] = '\0';
			for (size_t i = 0; i < prefixes[p]; i++)
				mbuf_putc(&b, (char)('A' + i % 26));
			memcpy(want, b.data ? b.data : "", prefixes[p]);
			wlen = snprintf(want + prefixes[p], 2000 - prefixes[p], "<%s|%zu>", arg, n);
			snprintf(what, sizeof(what), "printf of %d bytes after %zu", wlen,
			         prefixes[p]);
			if (n % 2)
				mbuf_printf(&b, "<%s|%zu>", arg, n);
			else
				vprintf_wrapper(&b, "<%s|%zu>", arg, n);
			same(what, &b, want, prefixes[p] + (size_t)wlen);
			/* and again, appended to itself */
			memcpy(want + prefixes[p] + wlen, want + prefixes[p], (size_t)wlen);
			mbuf_printf(&b, "<%s|%zu>", arg, n);
			same(what, &b, want, prefixes[p] + 2 * (size_t)wlen);
			arg[n] = 'x';
			mbuf_free(&b);
		}
	free(arg);
	free(want);
	check_done();
}

static void
test_printf_formats(void **state)
{
	struct mbuf b = MBUF_INIT;

	mbuf_printf(&b, "%d %lld %s %c %05.1f %x %%", -42, (long long)INT64_MIN, "str", 'c',
	            3.14159, 255u);
	CHECK_STR("formats", mbuf_str(&b), "-42 -9223372036854775808 str c 003.1 ff %");
	mbuf_reset(&b);
	mbuf_printf(&b, "%s", "");
	CHECK_STR("empty result", mbuf_str(&b), "");
	CHECK_INT("empty result", b.len, 0);
	mbuf_free(&b);
	check_done();
}

/* mbuf_putll() writes what printf's %lld writes, at the ends of the range and between. */
static void
test_putll(void **state)
{
	static const long long values[] = {
	        0,   1,         -1,        9,         10,        -10,           99,
	        100, 123456789, -98765432, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
	struct mbuf b = MBUF_INIT;
	uint64_t x = 88172645463325252ull;

	for (int i = 0; i < 10000; i++) {
		char want[32], what[48];
		long long v;

		if (i < (int)(sizeof(values) / sizeof(values[0])))
			v = values[i];
		else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			v = (long long)(x >> (1 + i % 63));      /* below 2^63: -v is defined */
			if (i % 2)
				v = -v;
		}
		snprintf(want, sizeof(want), "<%lld>", v);
		snprintf(what, sizeof(what), "%lld", v);
		mbuf_reset(&b);
		mbuf_putc(&b, '<');
		mbuf_putll(&b, v);
		mbuf_putc(&b, '>');
		CHECK_STR(what, mbuf_str(&b), want);
	}
	mbuf_free(&b);
	check_done();
}

static const struct {
	const char *name;
	const char *initial;
	size_t n;
	const char *want;
} consume_cases[] = {
        {"nothing", "abcdef", 0, "abcdef"}, {"one", "abcdef", 1, "bcdef"},
        {"middle", "abcdef", 3, "def"},     {"all but one", "abcdef", 5, "f"},
        {"all", "abcdef", 6, ""},           {"empty buffer, nothing", "", 0, ""},
};

static void
test_consume(void **state)
{
	for (size_t i = 0; i < sizeof(consume_cases) / sizeof(consume_cases[0]); i++) {
		struct mbuf b = MBUF_INIT;
		char want[64];

		mbuf_puts(&b, consume_cases[i].initial);
		mbuf_consume(&b, consume_cases[i].n);
		same(consume_cases[i].name, &b, consume_cases[i].want,
		     strlen(consume_cases[i].want));
		CHECK_STR(consume_cases[i].name, mbuf_str(&b), consume_cases[i].want);
		/* the buffer keeps working after a consume */
		mbuf_puts(&b, "XYZ");
		snprintf(want, sizeof(want), "%sXYZ", consume_cases[i].want);
		CHECK_STR(consume_cases[i].name, mbuf_str(&b), want);
		mbuf_free(&b);
	}
	check_done();
}

/* Consume as a reader of a stream does: a large buffer eaten in uneven pieces. */
static void
test_consume_stream(void **state)
{
	const size_t total = 50000;
	char *ref = pattern(total);
	struct mbuf b = MBUF_INIT;
	size_t off = 0, step = 1;

	mbuf_append(&b, ref, total);
	while (off < total && !failures) {
		size_t n = step < total - off ? step : total - off;
		mbuf_consume(&b, n);
		off += n;
		step = step * 3 % 997 + 1;
		same("stream consume", &b, ref + off, total - off);
	}
	CHECK_INT("all consumed", b.len, 0);
	mbuf_free(&b);
	free(ref);
	check_done();
}

static void
test_truncate_reset(void **state)
{
	struct mbuf b = MBUF_INIT;
	char *data;
	size_t cap;

	mbuf_puts(&b, "0123456789");
	mbuf_truncate(&b, 10);
	CHECK_STR("truncate to len", mbuf_str(&b), "0123456789");
	mbuf_truncate(&b, 4);
	CHECK_STR("truncate to 4", mbuf_str(&b), "0123");
	CHECK_INT("truncate to 4", b.len, 4);
	mbuf_puts(&b, "ab");
	CHECK_STR("append after truncate", mbuf_str(&b), "0123ab");
	mbuf_truncate(&b, 0);
	CHECK_STR("truncate to 0", mbuf_str(&b), "");

	for (int i = 0; i < 100; i++)
		mbuf_puts(&b, "0123456789");
	data = b.data;
	cap = b.cap;
	mbuf_reset(&b);
	CHECK_INT("reset empties", b.len, 0);
	CHECK_STR("reset empties", mbuf_str(&b), "");
	CHECK_INT("reset keeps the allocation", b.data == data && b.cap == cap, 1);
	mbuf_puts(&b, "again");
	CHECK_STR("append after reset", mbuf_str(&b), "again");
	CHECK_INT("no reallocation for a small append", b.data == data, 1);
	mbuf_free(&b);
	check_done();
}

static void
test_reserve_and_free(void **state)
{
	struct mbuf b = MBUF_INIT;
	char *data;

	mbuf_reserve(&b, 100);
	CHECK_INT("reserve 100 on empty: cap", b.cap >= 101, 1);
	CHECK_INT("reserve does not change len", b.len, 0);
	mbuf_puts(&b, "abc");
	mbuf_reserve(&b, 1000);
	CHECK_INT("reserve 1000 more: cap", b.cap >= 1004, 1);
	CHECK_STR("reserve keeps contents", mbuf_str(&b), "abc");
	data = b.data;
	for (int i = 0; i < 1000; i++)
		mbuf_putc(&b, 'z');
	CHECK_INT("reserved room is used without reallocating", b.data == data, 1);
	CHECK_INT("len after filling the reserve", b.len, 1003);
	mbuf_reserve(&b, 0);
	CHECK_INT("reserve 0 keeps room for the NUL", b.cap >= b.len + 1, 1);

	mbuf_free(&b);
	CHECK_INT("free resets", b.data == NULL && b.len == 0 && b.cap == 0, 1);
	CHECK_STR("free resets", mbuf_str(&b), "");
	mbuf_printf(&b, "reused %d", 7);
	CHECK_STR("reuse after free", mbuf_str(&b), "reused 7");
	mbuf_free(&b);
	mbuf_free(&b); /* twice is harmless */
	CHECK_INT("double free", b.data == NULL, 1);
	check_done();
}

static void
consume_too_much(void)
{
	struct mbuf b = MBUF_INIT;

	mbuf_puts(&b, "abc");
	mbuf_consume(&b, 4);
}

static void
truncate_too_far(void)
{
	struct mbuf b = MBUF_INIT;

	mbuf_puts(&b, "abc");
	mbuf_truncate(&b, 4);
}

static void
reserve_overflow(void)
{
	struct mbuf b = MBUF_INIT;

	mbuf_puts(&b, "abc");
	mbuf_reserve(&b, SIZE_MAX - 2);
}

static void
test_misuse_panics(void **state)
{
	static const struct {
		const char *name;
		void (*fn)(void);
		int want_signal; /* SIGABRT for a panic, 0 for a fatal exit(1) */
		const char *want_log;
	} cases[] = {
	        {"consume past the end", consume_too_much, SIGABRT, "panic: mbuf_consume: 4 > 3"},
	        {"truncate past the end", truncate_too_far, SIGABRT, "panic: mbuf_truncate: 4 > 3"},
	        {"size overflow", reserve_overflow, 0, "fatal: mbuf_reserve: size overflow"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char log[1024];
		int status = run_child(cases[i].fn, log, sizeof(log));

		if (cases[i].want_signal) {
			CHECK_INT(cases[i].name, WIFSIGNALED(status), 1);
			CHECK_INT(cases[i].name, WIFSIGNALED(status) ? WTERMSIG(status) : -1,
			          cases[i].want_signal);
		} else {
			CHECK_INT(cases[i].name, WIFEXITED(status), 1);
			CHECK_INT(cases[i].name, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1);
		}
		CHECK_HAS(cases[i].name, log, cases[i].want_log);
	}
	check_done();
}

/* mbuf_format_ll() writes what printf's %lld writes, at every length and both ends. */
static void
test_put_ll(void **state)
{
	long long cases[] = {0,
	                     1,
	                     9,
	                     10,
	                     11,
	                     99,
	                     100,
	                     101,
	                     999,
	                     1000,
	                     12345,
	                     100000,
	                     1234567,
	                     99999999,
	                     100000000,
	                     9223372036854775807LL,
	                     -1,
	                     -9,
	                     -10,
	                     -99,
	                     -100,
	                     -12345,
	                     -9223372036854775807LL - 1};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char got[32], want[32], *end;

		memset(got, 'x', sizeof(got));
		end = mbuf_format_ll(got, cases[i]);
		*end = '\0';
		snprintf(want, sizeof(want), "%lld", cases[i]);
		CHECK_STR(want, got, want);
	}
	for (long long v = 1; v < 1000000000000000000LL; v *= 10)
		for (long long d = -1; d <= 1; d++) {
			char got[32], want[32];

			*mbuf_format_ll(got, v + d) = '\0';
			snprintf(want, sizeof(want), "%lld", v + d);
			CHECK_STR(want, got, want);
		}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_put_ll),
	        cmocka_unit_test(test_append_one_piece),
	        cmocka_unit_test(test_append_byte_by_byte),
	        cmocka_unit_test(test_append_chunks),
	        cmocka_unit_test(test_puts_putc),
	        cmocka_unit_test(test_putll),
	        cmocka_unit_test(test_binary_with_nul),
	        cmocka_unit_test(test_printf_every_length),
	        cmocka_unit_test(test_printf_formats),
	        cmocka_unit_test(test_consume),
	        cmocka_unit_test(test_consume_stream),
	        cmocka_unit_test(test_truncate_reset),
	        cmocka_unit_test(test_reserve_and_free),
	        cmocka_unit_test(test_misuse_panics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
