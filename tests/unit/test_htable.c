/*
 * test_htable - unit tests for lib/htable (hash table of byte-string keys).
 *
 * Covers: the hash, SipHash-2-4, against the paper's vectors and OpenSSL's SIPHASH for
 * every length from 0 to 64 (each tail length, one and more blocks); a table of operations
 * run in order (enter, find, delete, used) with keys that differ only in length, a NUL
 * inside, the empty key and a NULL value; growth from the smallest table to 100,000
 * entries with every key found, entry pointers unchanged and the count right, then half of
 * them deleted by key or by entry; walk visiting each entry once; free calling free_value
 * once per value; two tables hashing the same key differently (a seed per table); and
 * panics for a key entered twice and an entry removed from a table it is not in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <signal.h>
#include <openssl/params.h>

#include "htable.h"

#include "check.h"
#include "child.h"

static const unsigned char key16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* SipHash-2-4 with OpenSSL's EVP_MAC "SIPHASH", 8-byte output, as a little-endian integer. */
static uint64_t
openssl_siphash(const unsigned char *in, size_t len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx;
	size_t size = 8, outl = 0;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t("size", &size), OSSL_PARAM_END};
	unsigned char out[8];
	uint64_t v = 0;

	assert_non_null(mac);
	assert_non_null(ctx = EVP_MAC_CTX_new(mac));
	assert_int_equal(EVP_MAC_init(ctx, key16, sizeof(key16), params), 1);
	assert_int_equal(EVP_MAC_update(ctx, in, len), 1);
	assert_int_equal(EVP_MAC_final(ctx, out, &outl, sizeof(out)), 1);
	assert_int_equal(outl, 8);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | out[i];
	return v;
}

static void
test_siphash(void **state)
{
	unsigned char in[64];
	char what[64];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)i;
	/* the paper's vectors: key 00..0f, messages of 0 and 15 bytes 00, 01, ... */
	CHECK_INT("paper, empty", htable_siphash(key16, NULL, 0) == 0x726fdb47dd0e0e31ULL, 1);
	CHECK_INT("paper, 15 bytes", htable_siphash(key16, in, 15) == 0xa129ca6149be45e5ULL, 1);
	for (size_t len = 0; len <= sizeof(in); len++) {
		snprintf(what, sizeof(what), "%zu bytes, as OpenSSL", len);
		CHECK_INT(what, htable_siphash(key16, in, len) == openssl_siphash(in, len), 1);
	}
	check_done();
}

enum op { ENTER, FIND, ABSENT, DELETE, DELETE_ABSENT, USED };

static const struct {
	enum op op;
	const char *key;
	size_t len;
	const char *value; /* ENTER: the value; FIND: the value wanted; USED: unused */
	size_t used;       /* USED: the count wanted */
} script[] = {
        {USED, NULL, 0, NULL, 0},         {ABSENT, "a", 1, NULL, 0},
        {ENTER, "a", 1, "A", 0},          {FIND, "a", 1, "A", 0},
        {ABSENT, "ab", 2, NULL, 0},  /* a longer key with the same start */
        {ABSENT, "", 0, NULL, 0},    /* the empty key */
        {ABSENT, "a\0", 2, NULL, 0}, /* "a" and a NUL */
        {ENTER, "ab", 2, "AB", 0},        {ENTER, "a\0", 2, "A-NUL", 0}, /* */
        {ENTER, "", 0, "EMPTY", 0},                                      /* */
        {ENTER, "a\0b", 3, "A-NUL-B", 0},                                /* a NUL inside */
        {ENTER, "null", 4, NULL, 0}, /* a NULL value is a value */
        {USED, NULL, 0, NULL, 6},         {FIND, "a", 1, "A", 0},
        {FIND, "ab", 2, "AB", 0},         {FIND, "a\0", 2, "A-NUL", 0},
        {FIND, "", 0, "EMPTY", 0},        {FIND, "a\0b", 3, "A-NUL-B", 0},
        {FIND, "a\0c", 3, NULL, 0}, /* absent: only the byte after the NUL differs */
        {ABSENT, "A", 1, NULL, 0},  /* keys are bytes: case counts */
        {DELETE, "a", 1, NULL, 0},        {ABSENT, "a", 1, NULL, 0},
        {FIND, "ab", 2, "AB", 0},         {FIND, "a\0", 2, "A-NUL", 0},
        {DELETE_ABSENT, "a", 1, NULL, 0}, {USED, NULL, 0, NULL, 5},
        {ENTER, "a", 1, "A2", 0}, /* again, after its deletion */
        {FIND, "a", 1, "A2", 0},          {DELETE, "", 0, NULL, 0},
        {DELETE, "null", 4, NULL, 0},     {ABSENT, "null", 4, NULL, 0},
        {USED, NULL, 0, NULL, 4},
};

static void
test_script(void **state)
{
	struct htable *ht = htable_create(0);
	struct htable_entry *e;
	char what[80];

	for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
		const char *key = script[i].key;
		size_t len = script[i].len;

		snprintf(what, sizeof(what), "row %zu (\"%s\", %zu bytes)", i, key ? key : "", len);
		switch (script[i].op) {
		case ENTER:
			e = htable_enter(ht, key, len, (void *)script[i].value);
			CHECK_INT(what, e->key_len, len);
			CHECK_INT(what, memcmp(e->key, key, len), 0);
			CHECK_INT(what, e->key[len], '\0');
			CHECK_INT(what, htable_locate(ht, key, len) == e, 1);
			break;
		case FIND:
			CHECK_STR(what, htable_find(ht, key, len), script[i].value);
			break;
		case ABSENT:
			CHECK_INT(what, htable_locate(ht, key, len) == NULL, 1);
			CHECK_INT(what, htable_delete(ht, key, len, NULL), 0);
			break;
		case DELETE:
			CHECK_INT(what, htable_delete(ht, key, len, NULL), 1);
			break;
		case DELETE_ABSENT:
			CHECK_INT(what, htable_delete(ht, key, len, NULL), 0);
			break;
		case USED:
			CHECK_INT(what, htable_used(ht), script[i].used);
			break;
		}
	}
	htable_free(&ht, NULL);
	CHECK_INT("htable_free sets NULL", ht == NULL, 1);
	htable_free(&ht, NULL); /* and takes NULL */
	check_done();
}

#define MANY 100000

static void
test_growth_and_deletion(void **state)
{
	struct htable *ht = htable_create(1);
	struct htable_entry **entries = calloc(MANY, sizeof(*entries));
	char key[32], what[64];
	int len;

	assert_non_null(entries);
	for (intptr_t i = 0; i < MANY; i++) {
		len = snprintf(key, sizeof(key), "Q%lx", (long)i);
		entries[i] = htable_enter(ht, key, (size_t)len, (void *)(i + 1));
	}
	CHECK_INT("used", htable_used(ht), MANY);
	for (intptr_t i = 0; i < MANY && failures == 0; i++) {
		len = snprintf(key, sizeof(key), "Q%lx", (long)i);
		snprintf(what, sizeof(what), "key %s after growing", key);
		CHECK_INT(what, (intptr_t)htable_find(ht, key, (size_t)len), i + 1);
		CHECK_INT(what, htable_locate(ht, key, (size_t)len) == entries[i], 1);
	}
	/* delete the even ones: by key for i % 4 == 0, by entry for i % 4 == 2 */
	for (intptr_t i = 0; i < MANY; i += 2) {
		len = snprintf(key, sizeof(key), "Q%lx", (long)i);
		if (i % 4 == 0)
			CHECK_INT("delete by key", htable_delete(ht, key, (size_t)len, NULL), 1);
		else
			htable_remove(ht, entries[i], NULL);
	}
	CHECK_INT("used after deleting half", htable_used(ht), MANY / 2);
	for (intptr_t i = 0; i < MANY && failures == 0; i++) {
		len = snprintf(key, sizeof(key), "Q%lx", (long)i);
		snprintf(what, sizeof(what), "key %s after deleting", key);
		CHECK_INT(what, (intptr_t)htable_find(ht, key, (size_t)len), i % 2 ? i + 1 : 0);
	}
	htable_free(&ht, NULL);
	free(entries);
	check_done();
}

static void
count_walk(struct htable_entry *e, void *ctx)
{
	int *seen = ctx;

	seen[(intptr_t)e->value]++;
}

static int freed[64];

static void
count_free(void *value)
{
	freed[(intptr_t)value]++;
}

static void
test_walk_and_free(void **state)
{
	struct htable *ht = htable_create(4);
	int seen[64] = {0};
	char key[8];

	for (intptr_t i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "k%ld", (long)i);
		htable_enter(ht, key, strlen(key), (void *)i);
	}
	htable_walk(ht, count_walk, seen);
	for (int i = 0; i < 64; i++)
		CHECK_INT("walk visits each entry once", seen[i], 1);
	htable_delete(ht, "k7", 2, count_free);
	CHECK_INT("delete frees the value", freed[7], 1);
	htable_free(&ht, count_free);
	for (int i = 0; i < 64; i++)
		CHECK_INT("free frees each value once", freed[i], 1);
	check_done();
}

/* Two tables do not hash alike: keys colliding in one table need not in the other. */
static void
test_seed_per_table(void **state)
{
	struct htable *a = htable_create(0), *b = htable_create(0);
	struct htable_entry *ea = htable_enter(a, "same", 4, NULL);
	struct htable_entry *eb = htable_enter(b, "same", 4, NULL);

	CHECK_INT("different hashes of one key", ea->hash != eb->hash, 1);
	htable_free(&a, NULL);
	htable_free(&b, NULL);
	check_done();
}

static void
enter_twice(void)
{
	struct htable *ht = htable_create(0);

	htable_enter(ht, "q", 1, NULL);
	htable_enter(ht, "q", 1, NULL);
}

static void
remove_foreign(void)
{
	struct htable *a = htable_create(0), *b = htable_create(0);

	htable_remove(b, htable_enter(a, "q", 1, NULL), NULL);
}

/* The caller's broken invariants are panics (abort, with a message). */
static void
test_panics(void **state)
{
	static const struct {
		const char *name;
		void (*fn)(void);
		const char *log;
	} cases[] = {
	        {"a key entered twice", enter_twice, "already in the table"},
	        {"an entry of another table removed", remove_foreign, "not in this table"},
	};
	char log[2048];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status = run_child(cases[i].fn, log, sizeof(log));
		CHECK_INT(cases[i].name, WIFSIGNALED(status) ? WTERMSIG(status) : -1, SIGABRT);
		CHECK_HAS(cases[i].name, log, cases[i].log);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_siphash),
	        cmocka_unit_test(test_script),
	        cmocka_unit_test(test_growth_and_deletion),
	        cmocka_unit_test(test_walk_and_free),
	        cmocka_unit_test(test_seed_per_table),
	        cmocka_unit_test(test_panics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
