/*
 * test_dnscache - the resolver's cache (federation/dnscache.c): answers kept for their TTL
 * and no longer, keys case- and final-dot-insensitive, copies independent of the cache,
 * the size bound, and the TXT RDATA splitter that reads the DNS's bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dnscache.h"

#define TXT 16

static struct dns_txt *
answer(const char *text)
{
	static char *data[1];
	static size_t len[1];
	static struct dns_txt t;

	data[0] = (char *)text;
	len[0] = strlen(text);
	t = (struct dns_txt){.status = DNS_OK, .n = 1, .data = data, .len = len};
	return &t;
}

static void
test_ttl_expiry(void **state)
{
	struct dnscache *c = dnscache_new(100);
	struct dns_txt *t;

	(void)state;
	dnscache_put(c, TXT, "_msgstatus.example.org", answer("v=MSR1; u=https://a/"), 1000,
	             300000);
	/* within the TTL: the answer; the last millisecond still counts */
	t = dnscache_get(c, TXT, "_msgstatus.example.org", 1000);
	assert_non_null(t);
	assert_int_equal(t->status, DNS_OK);
	assert_int_equal(t->n, 1);
	assert_string_equal(t->data[0], "v=MSR1; u=https://a/");
	dns_txt_free(&t);
	assert_null(t);
	t = dnscache_get(c, TXT, "_msgstatus.example.org", 1000 + 299999);
	assert_non_null(t);
	dns_txt_free(&t);
	/* at the TTL's end: gone, and dropped from the table */
	assert_null(dnscache_get(c, TXT, "_msgstatus.example.org", 1000 + 300000));
	assert_int_equal(dnscache_size(c), 0);
	/* a new answer replaces the old one, with its own TTL */
	dnscache_put(c, TXT, "k.example", answer("one"), 0, 10);
	dnscache_put(c, TXT, "k.example", answer("two"), 5, 100);
	t = dnscache_get(c, TXT, "k.example", 50);
	assert_non_null(t);
	assert_string_equal(t->data[0], "two");
	dns_txt_free(&t);
	assert_null(dnscache_get(c, TXT, "k.example", 105));
	/* a TTL of 0 (or less) is not cached */
	dnscache_put(c, TXT, "zero.example", answer("x"), 0, 0);
	assert_null(dnscache_get(c, TXT, "zero.example", 0));
	dnscache_free(&c);
	assert_null(c);
}

static void
test_negative_answers_and_types(void **state)
{
	struct dnscache *c = dnscache_new(100);
	struct dns_txt none = {.status = DNS_NODATA}, *t;

	(void)state;
	dnscache_put(c, TXT, "s1._domainkey.example.org", &none, 0, 60000);
	t = dnscache_get(c, TXT, "s1._domainkey.example.org", 59999);
	assert_non_null(t);
	assert_int_equal(t->status, DNS_NODATA);
	assert_int_equal(t->n, 0);
	dns_txt_free(&t);
	/* another type of the same name is another entry */
	assert_null(dnscache_get(c, 1, "s1._domainkey.example.org", 0));
	dnscache_free(&c);
}

static void
test_keys(void **state)
{
	struct dnscache *c = dnscache_new(100);
	struct dns_txt *t;
	char buf[16];

	(void)state;
	dnscache_put(c, TXT, "S1._DomainKey.Example.ORG.", answer("k"), 0, 1000);
	t = dnscache_get(c, TXT, "s1._domainkey.example.org", 1);
	assert_non_null(t);
	dns_txt_free(&t);
	assert_int_equal(dnscache_key(TXT, "Ab.", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "16/ab");
	assert_int_equal(dnscache_key(TXT, "a-very-long-name.example", buf, sizeof(buf)), -1);
	dnscache_free(&c);
}

static void
test_copies_are_independent(void **state)
{
	struct dnscache *c = dnscache_new(100);
	struct dns_txt *a, *b;

	(void)state;
	dnscache_put(c, TXT, "x.example", answer("abc"), 0, 1000);
	a = dnscache_get(c, TXT, "x.example", 1);
	a->data[0][0] = 'Z';
	b = dnscache_get(c, TXT, "x.example", 1);
	assert_string_equal(b->data[0], "abc");
	dns_txt_free(&a);
	dns_txt_free(&b);
	dnscache_free(&c);
}

static void
test_size_bound(void **state)
{
	struct dnscache *c = dnscache_new(3);
	struct dns_txt *t;

	(void)state;
	dnscache_put(c, TXT, "a.example", answer("a"), 0, 10);
	dnscache_put(c, TXT, "b.example", answer("b"), 0, 1000);
	dnscache_put(c, TXT, "c.example", answer("c"), 0, 1000);
	/* full of live answers: the new one is not kept */
	dnscache_put(c, TXT, "d.example", answer("d"), 5, 1000);
	assert_int_equal(dnscache_size(c), 3);
	assert_null(dnscache_get(c, TXT, "d.example", 6));
	/* once a.example has expired it makes room */
	dnscache_put(c, TXT, "d.example", answer("d"), 20, 1000);
	assert_int_equal(dnscache_size(c), 3);
	t = dnscache_get(c, TXT, "d.example", 21);
	assert_non_null(t);
	dns_txt_free(&t);
	assert_null(dnscache_get(c, TXT, "a.example", 21));
	dnscache_free(&c);
	/* a cache of size 0 keeps nothing */
	c = dnscache_new(0);
	dnscache_put(c, TXT, "a.example", answer("a"), 0, 10);
	assert_null(dnscache_get(c, TXT, "a.example", 1));
	dnscache_free(&c);
}

static void
test_txt_rdata(void **state)
{
	static const struct {
		const char *rdata;
		size_t len;
		int rc;
		const char *text;
		size_t text_len;
	} rows[] = {
	        {"\x05hello", 6, 0, "hello", 5},
	        {"\x03"
	         "abc\x02"
	         "de",
	         7, 0, "abcde", 5},
	        {"\x00", 1, 0, "", 0},           /* one empty string */
	        {"\x00\x00\x01x", 4, 0, "x", 1}, /* empty strings around */
	        {"\x02"
	         "a\0",
	         3, 0, "a\0", 2},             /* NUL inside: kept, length counted */
	        {"", 0, -1, NULL, 0},         /* no string at all */
	        {"\x05hell", 5, -1, NULL, 0}, /* runs past the end */
	        {"\x01"
	         "a\x02"
	         "b",
	         4, -1, NULL, 0}, /* the second runs past the end */
	        {"\xff", 1, -1, NULL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *rdata = exact(rows[i].rdata, rows[i].len), *out = (char *)"unset";
		size_t out_len = 99;
		int rc = dns_txt_rdata((const unsigned char *)rdata, rows[i].len, &out, &out_len);

		CHECK_INT(rows[i].rdata, rc, rows[i].rc);
		if (rows[i].rc == 0 && rc == 0) {
			CHECK_INT(rows[i].rdata, out_len, rows[i].text_len);
			CHECK_INT(rows[i].rdata, memcmp(out, rows[i].text, out_len), 0);
			CHECK_INT(rows[i].rdata, out[out_len], '\0');
			free(out);
		} else if (rc != 0) {
			CHECK_INT(rows[i].rdata, out == NULL, 1);
			CHECK_INT(rows[i].rdata, out_len, 0);
		}
		free(rdata);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ttl_expiry),
	        cmocka_unit_test(test_negative_answers_and_types),
	        cmocka_unit_test(test_keys),
	        cmocka_unit_test(test_copies_are_independent),
	        cmocka_unit_test(test_size_bound),
	        cmocka_unit_test(test_txt_rdata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
