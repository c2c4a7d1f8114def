/*
 * test_token - unit tests for statusd/token (API tokens, signed tokens, the shared secret).
 *
 * Covers the API token format (prefix, length, alphabet, 160 random bits, no repeats) and
 * token_api_valid() on near misses; SHA-256 and base64url against the RFC 4648 / FIPS 180
 * vectors and strict base64url decoding; token_jwt_verify() table-driven over valid tokens
 * and every way a token can be wrong (signature, algorithm, type, "crit", time claims and
 * their edges, lifetime, "sub", base64url, dots, size, JSON that is not an object); the
 * RFC 7515 A.1 example (an independent HS256 implementation: its signature must verify);
 * token_jwt_sign() against a token minted by Python's hmac module; token_user(); and
 * token_secret_load() on good, short, world-readable and missing files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token.h"

#define NOW_S       1795341845LL /* 2026-11-22T10:04:05Z */
#define NOW_MS      (NOW_S * 1000)
#define MAX_LIFE_MS 86400000LL /* auth_token_max_lifetime's default, 1d */

static const unsigned char KEY[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN (sizeof(KEY) - 1)

#include "check.h"

/* json-c 0.18's strict mode refuses a number beyond 64 bits itself: the payload does not
   parse, before its "exp" is looked at. Rejected either way. */
#if JSON_C_VERSION_NUM >= 0x001200
#define EXP_HUGE_ERROR "the payload is not a JSON object"
#else
#define EXP_HUGE_ERROR "\"exp\" is not a date"
#endif

static char *
b64(const void *data, size_t n)
{
	size_t size = n / 3 * 4 + 5;
	char *out = malloc(size);

	assert_non_null(out);
	assert_true(token_b64url_encode(data, n, out, size) >= 0);
	return out;
}

/* A token with this header and payload JSON, signed with key: what a backend would send. */
static char *
make_jwt(const char *head, const char *payload, const unsigned char *key, size_t keylen)
{
	char *h = b64(head, strlen(head)), *p = b64(payload, strlen(payload)), *s, *out;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t n = strlen(h) + strlen(p) + 64;

	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%s.%s", h, p);
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)out, strlen(out), mac,
	                     &maclen));
	s = b64(mac, maclen);
	snprintf(out, n, "%s.%s.%s", h, p, s);
	free(h);
	free(p);
	free(s);
	return out;
}

/* The claims {"sub":sub,"iat":NOW+iat,"exp":NOW+exp} (offsets in seconds) with extra. */
static char *
claims(const char *sub_json, long long iat, long long exp, const char *extra)
{
	size_t size = 1024;
	char *out = malloc(size);
	int n;

	assert_non_null(out);
	n = snprintf(out, size, "{");
	if (sub_json)
		n += snprintf(out + n, size - (size_t)n, "\"sub\":%s,", sub_json);
	n += snprintf(out + n, size - (size_t)n, "\"iat\":%lld,\"exp\":%lld", NOW_S + iat,
	              NOW_S + exp);
	if (extra)
		n += snprintf(out + n, size - (size_t)n, ",%s", extra);
	snprintf(out + n, size - (size_t)n, "}");
	return out;
}

/* Sign already encoded parts as they are (to test what only a signed token reaches). */
static char *
sign_parts(const char *h64, const char *p64)
{
	size_t n = strlen(h64) + strlen(p64) + 64;
	char *out = malloc(n), *s;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;

	assert_non_null(out);
	snprintf(out, n, "%s.%s", h64, p64);
	assert_non_null(HMAC(EVP_sha256(), KEY, (int)KEYLEN, (unsigned char *)out, strlen(out), mac,
	                     &maclen));
	s = b64(mac, maclen);
	snprintf(out, n, "%s.%s.%s", h64, p64, s);
	free(s);
	return out;
}

/* --- API tokens, SHA-256, base64url -------------------------------------------------- */

static void
test_api_token_format(void **state)
{
	char a[TOKEN_API_LEN + 1], b[TOKEN_API_LEN + 1];
	unsigned seen[256] = {0};

	for (int round = 0; round < 200; round++) {
		token_api_new(a);
		CHECK_INT("length", strlen(a), TOKEN_API_LEN);
		CHECK_INT("prefix", strncmp(a, "mst_", 4), 0);
		CHECK_INT("token_api_valid(new token)", token_api_valid(a), 1);
		for (size_t i = 4; i < TOKEN_API_LEN; i++)
			seen[(unsigned char)a[i]]++;
		token_api_new(b);
		CHECK_INT("two tokens differ", strcmp(a, b) != 0, 1);
	}
	/* 6400 characters from a 32-letter alphabet: every letter shows up */
	for (const char *c = "abcdefghijklmnopqrstuvwxyz234567"; *c; c++)
		CHECK_INT("alphabet letter used", seen[(unsigned char)*c] > 0, 1);
	for (int c = 0; c < 256; c++)
		if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')))
			CHECK_INT("letter outside the alphabet", seen[c], 0);
	check_done();
}

static void
test_api_token_valid(void **state)
{
	static const struct {
		const char *s;
		bool want;
	} cases[] = {
	        {"mst_abcdefghijklmnopqrstuvwxyz234567", true},
	        {"mst_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
	        {"mst_abcdefghijklmnopqrstuvwxyz23456", false},   /* 31 */
	        {"mst_abcdefghijklmnopqrstuvwxyz2345677", false}, /* 33 */
	        {"MST_abcdefghijklmnopqrstuvwxyz234567", false},
	        {"msx_abcdefghijklmnopqrstuvwxyz234567", false},
	        {"mst_Abcdefghijklmnopqrstuvwxyz234567", false},
	        {"mst_abcdefghijklmnopqrstuvwxyz234561", false}, /* 1 */
	        {"mst_abcdefghijklmnopqrstuvwxyz234568", false}, /* 8 */
	        {"mst_abcdefghijklmnopqrstuvwxyz23456=", false},
	        {"mst_abcdefghijklmnopqrstuvwxyz2345 7", false},
	        {"mst_", false},
	        {"", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(cases[i].s, token_api_valid(cases[i].s), cases[i].want);
	check_done();
}

static void
hex(const unsigned char *h, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static void
test_sha256(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	};
	unsigned char h[TOKEN_HASH_LEN];
	char got[2 * TOKEN_HASH_LEN + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		token_sha256(cases[i].in, strlen(cases[i].in), h);
		hex(h, sizeof(h), got);
		CHECK_STR(cases[i].in, got, cases[i].want);
	}
	check_done();
}

static void
test_base64url(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} enc[] = {
	        {"", 0, ""},
	        {"f", 1, "Zg"},
	        {"fo", 2, "Zm8"},
	        {"foo", 3, "Zm9v"},
	        {"foob", 4, "Zm9vYg"},
	        {"fooba", 5, "Zm9vYmE"},
	        {"foobar", 6, "Zm9vYmFy"},
	        {"\xfb\xff", 2, "-_8"},
	        {"\x00\x00\x00", 3, "AAAA"},
	};
	static const char *const bad[] = {
	        "Z",                /* a lone character is never a byte */
	        "Zh",               /* non-canonical: trailing bits set */
	        "Zm9",              /* non-canonical ("Zm8" is "fo") */
	        "Zm9v=",            /* padding */
	        "Zm9vYg==", "Zm+v", /* standard base64, not url */
	        "Zm/v",     "Zm9 v", "Zm9\nv", "Zm9v*",
	};
	unsigned char out[64];
	char text[64];
	long n;

	for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
		n = token_b64url_encode(enc[i].in, enc[i].len, text, sizeof(text));
		CHECK_STR("encode", text, enc[i].want);
		CHECK_INT("encode length", n, strlen(enc[i].want));
		n = token_b64url_decode(enc[i].want, strlen(enc[i].want), out, sizeof(out));
		CHECK_INT(enc[i].want, n, enc[i].len);
		CHECK_INT(enc[i].want, n >= 0 && memcmp(out, enc[i].in, enc[i].len) == 0, 1);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(bad[i], token_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out)),
		          -1);
	/* bounds: the output buffer and the encoder's NUL */
	CHECK_INT("decode into too small a buffer", token_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
	CHECK_INT("decode into exactly enough", token_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
	CHECK_INT("encode without room for NUL", token_b64url_encode("foo", 3, text, 4), -1);
	CHECK_INT("encode with room for NUL", token_b64url_encode("foo", 3, text, 5), 4);
	check_done();
}

/* --- signed tokens ------------------------------------------------------------------- */

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

struct jwt_case {
	const char *name;
	const char *head;   /* header JSON */
	char *payload;      /* claims JSON (from claims()), freed */
	const char *other;  /* a literal token instead of head/payload */
	const char *want;   /* NULL: valid; else a part of the error */
	const char *user;   /* valid: the user */
	int64_t expires_ms; /* valid: "exp" */
};

static void
run_jwt_cases(struct jwt_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct jwt_case *c = &cases[i];
		char *jwt =
		        c->other ? strdup(c->other) : make_jwt(c->head, c->payload, KEY, KEYLEN);
		struct token_claims got;
		const char *error = NULL;
		int rc;

		rc = token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS, MAX_LIFE_MS, &got, &error);
		if (c->want == NULL) {
			CHECK_INT(c->name, rc, 0);
			if (rc != 0)
				print_error("  %s: error \"%s\"\n", c->name, error);
			else {
				CHECK_STR(c->name, got.user, c->user);
				CHECK_INT(c->name, got.expires_ms, c->expires_ms);
			}
		} else {
			CHECK_INT(c->name, rc, -1);
			if (rc == -1)
				CHECK_HAS(c->name, error, c->want);
			CHECK_INT(c->name, got.user == NULL, 1);
		}
		token_claims_free(&got);
		free(jwt);
		free(c->payload);
	}
}

static void
test_jwt_valid(void **state)
{
	char long_user[TOKEN_USER_MAX + 3];
	struct jwt_case cases[] = {
	        {"valid", HS256, claims("\"Alice@Example.ORG\"", 0, 3600, NULL), NULL, NULL,
	         "alice@example.org", (NOW_S + 3600) * 1000},
	        {"no typ", "{\"alg\":\"HS256\"}", claims("\"bob\"", 0, 60, NULL), NULL, NULL, "bob",
	         (NOW_S + 60) * 1000},
	        {"typ in lower case", "{\"typ\":\"jwt\",\"alg\":\"HS256\"}",
	         claims("\"bob\"", 0, 60, NULL), NULL, NULL, "bob", (NOW_S + 60) * 1000},
	        {"other header fields", "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
	         claims("\"bob\"", 0, 60, NULL), NULL, NULL, "bob", (NOW_S + 60) * 1000},
	        {"iat 59 s ahead (clock skew)", HS256, claims("\"bob\"", 59, 120, NULL), NULL, NULL,
	         "bob", (NOW_S + 120) * 1000},
	        {"iat 60 s ahead", HS256, claims("\"bob\"", 60, 120, NULL), NULL, NULL, "bob",
	         (NOW_S + 120) * 1000},
	        {"lifetime exactly the maximum", HS256, claims("\"bob\"", -10, 86400 - 10, NULL),
	         NULL, NULL, "bob", (NOW_S + 86390) * 1000},
	        {"exp one second ahead", HS256, claims("\"bob\"", -1, 1, NULL), NULL, NULL, "bob",
	         (NOW_S + 1) * 1000},
	        {"nbf passed", HS256, claims("\"bob\"", 0, 60, "\"nbf\":1795341845"), NULL, NULL,
	         "bob", (NOW_S + 60) * 1000},
	        {"extra claims", HS256,
	         claims("\"bob\"", 0, 60, "\"iss\":\"webmail\",\"x\":[1,{}]"), NULL, NULL, "bob",
	         (NOW_S + 60) * 1000},
	        {"UTF-8 user, only ASCII lower-cased", HS256,
	         claims("\"J\\u00d6RG@Example.org\"", 0, 60, NULL), NULL, NULL,
	         "j\xc3\x96rg@example.org", (NOW_S + 60) * 1000},
	        {"whitespace in the JSON", "{ \"alg\" : \"HS256\" }\r\n",
	         claims("\"bob\"", 0, 60, NULL), NULL, NULL, "bob", (NOW_S + 60) * 1000},
	        {"user of 320 bytes", HS256, NULL, NULL, NULL, NULL, (NOW_S + 60) * 1000},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	static char user320[TOKEN_USER_MAX + 1];

	memset(long_user, 'u', sizeof(long_user));
	long_user[0] = '"';
	long_user[TOKEN_USER_MAX + 1] = '"';
	long_user[TOKEN_USER_MAX + 2] = '\0';
	cases[n - 1].payload = claims(long_user, 0, 60, NULL);
	memset(user320, 'u', TOKEN_USER_MAX);
	cases[n - 1].user = user320;
	run_jwt_cases(cases, n);
	check_done();
}

static void
test_jwt_invalid(void **state)
{
	static const unsigned char other_key[] = "0123456789abcdef0123456789abcdeX";
	char long_user[TOKEN_USER_MAX + 4], *too_long = malloc(TOKEN_MAX + 2);
	char *wrong_key = make_jwt(HS256, "{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1795345445}",
	                           other_key, sizeof(other_key) - 1);
	char *good = make_jwt(HS256, "{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1795345445}", KEY,
	                      KEYLEN);
	char *tampered = strdup(good), *swapped, *none_nosig;
	char *h_none = b64("{\"alg\":\"none\"}", 14);
	char *p = strchr(good, '.') + 1;

	assert_non_null(too_long);
	/* a different last signature character, still canonical base64url */
	tampered[strlen(tampered) - 2] = tampered[strlen(tampered) - 2] == 'A' ? 'B' : 'A';
	/* the payload of a valid token under another header */
	swapped = malloc(strlen(good) + 64);
	snprintf(swapped, strlen(good) + 64, "%s.%s", h_none, p);
	none_nosig = malloc(strlen(good) + 64);
	snprintf(none_nosig, strlen(good) + 64, "%s.%.*s.", h_none, (int)(strchr(p, '.') - p), p);
	memset(too_long, 'A', TOKEN_MAX + 1);
	too_long[10] = '.';
	too_long[20] = '.';
	too_long[TOKEN_MAX + 1] = '\0';
	memset(long_user, 'u', sizeof(long_user));
	long_user[0] = '"';
	long_user[TOKEN_USER_MAX + 2] = '"';
	long_user[TOKEN_USER_MAX + 3] = '\0';

	struct jwt_bad {
		const char *name, *head;
		char *payload;
		const char *other, *want;
	} bad[] = {
	        /* the signature */
	        {"signed with another key", NULL, NULL, wrong_key, "bad signature"},
	        {"signature changed", NULL, NULL, tampered, "signature"},
	        {"alg none with the old signature", NULL, NULL, swapped, "HS256"},
	        {"alg none, no signature", NULL, NULL, none_nosig, "empty"},
	        {"alg none (signed)", "{\"alg\":\"none\"}", claims("\"a\"", 0, 60, NULL), NULL,
	         "HS256"},
	        {"alg HS512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims("\"a\"", 0, 60, NULL),
	         NULL, "HS256"},
	        {"alg RS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims("\"a\"", 0, 60, NULL),
	         NULL, "HS256"},
	        {"alg hs256", "{\"alg\":\"hs256\"}", claims("\"a\"", 0, 60, NULL), NULL, "HS256"},
	        {"alg with a NUL", "{\"alg\":\"HS256\\u0000\"}", claims("\"a\"", 0, 60, NULL), NULL,
	         "HS256"},
	        {"alg missing", "{\"typ\":\"JWT\"}", claims("\"a\"", 0, 60, NULL), NULL, "HS256"},
	        {"alg not a string", "{\"alg\":256}", claims("\"a\"", 0, 60, NULL), NULL, "HS256"},
	        {"typ JOSE+JSON", "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}",
	         claims("\"a\"", 0, 60, NULL), NULL, "typ"},
	        {"typ not a string", "{\"alg\":\"HS256\",\"typ\":1}", claims("\"a\"", 0, 60, NULL),
	         NULL, "typ"},
	        {"crit", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", claims("\"a\"", 0, 60, NULL),
	         NULL, "crit"},
	        /* time */
	        {"expired", HS256, claims("\"a\"", -3600, -1, NULL), NULL, "expired"},
	        {"expires this very second", HS256, claims("\"a\"", -3600, 0, NULL), NULL,
	         "expired"},
	        {"iat in the future", HS256, claims("\"a\"", 61, 3600, NULL), NULL, "future"},
	        {"nbf in the future", HS256, claims("\"a\"", 0, 3600, "\"nbf\":1795345445"), NULL,
	         "nbf"},
	        {"nbf not a date", HS256, claims("\"a\"", 0, 3600, "\"nbf\":\"soon\""), NULL,
	         "nbf"},
	        {"lifetime too long", HS256, claims("\"a\"", 0, 86401, NULL), NULL,
	         "auth_token_max_lifetime"},
	        {"lifetime far too long", HS256, claims("\"a\"", -86400 * 365, 3600, NULL), NULL,
	         "auth_token_max_lifetime"},
	        {"exp before iat", HS256, claims("\"a\"", 50, 40, NULL), NULL, "not after"},
	        {"no exp", HS256, strdup("{\"sub\":\"a\",\"iat\":1795341845}"), NULL, "no \"exp\""},
	        {"no iat", HS256, strdup("{\"sub\":\"a\",\"exp\":1795345445}"), NULL, "no \"iat\""},
	        {"exp a string", HS256,
	         strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":\"1795345445\"}"), NULL,
	         "\"exp\" is not a date"},
	        {"exp null", HS256, strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":null}"), NULL,
	         "\"exp\" is not a date"},
	        {"exp negative", HS256, strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":-5}"),
	         NULL, "\"exp\" is not a date"},
	        {"exp huge", HS256,
	         strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":99999999999999999999}"), NULL,
	         EXP_HUGE_ERROR},
	        {"exp 1e300", HS256, strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1e300}"),
	         NULL, "\"exp\" is not a date"},
	        {"iat boolean", HS256, strdup("{\"sub\":\"a\",\"iat\":true,\"exp\":1795345445}"),
	         NULL, "\"iat\" is not a date"},
	        /* the user */
	        {"sub missing", HS256, claims(NULL, 0, 60, NULL), NULL, "no \"sub\""},
	        {"sub empty", HS256, claims("\"\"", 0, 60, NULL), NULL, "empty"},
	        {"sub a number", HS256, claims("42", 0, 60, NULL), NULL, "not a string"},
	        {"sub null", HS256, claims("null", 0, 60, NULL), NULL, "not a string"},
	        {"sub of 321 bytes", HS256, claims(long_user, 0, 60, NULL), NULL,
	         "longer than 320"},
	        {"sub with a control character", HS256, claims("\"a\\u0001b\"", 0, 60, NULL), NULL,
	         "control"},
	        {"sub with a newline", HS256, claims("\"a\\nb\"", 0, 60, NULL), NULL, "control"},
	        {"sub with a NUL", HS256, claims("\"a\\u0000b\"", 0, 60, NULL), NULL, "control"},
	        {"sub with DEL", HS256, claims("\"a\\u007fb\"", 0, 60, NULL), NULL, "control"},
	        {"sub with a C1 control", HS256, claims("\"a\\u0085b\"", 0, 60, NULL), NULL,
	         "control"},
	        {"sub not UTF-8", HS256, claims("\"a\xff\xfe b\"", 0, 60, NULL), NULL, "UTF-8"},
	        /* shape and encoding */
	        {"no dots", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9", "three parts"},
	        {"one dot", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0", "three parts"},
	        {"three dots", NULL, NULL, "a.b.c.d", "three parts"},
	        {"four parts of a real token", NULL, NULL, NULL, "three parts"},
	        {"only dots", NULL, NULL, "..", "empty"},
	        {"empty payload", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9..c2ln", "empty"},
	        {"empty header", NULL, NULL, ".eyJzdWIiOiJhIn0.c2ln", "empty"},
	        {"empty string", NULL, NULL, "", "three parts"},
	        {"too long", NULL, NULL, too_long, "too long"},
	        {"header with padding", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9=.eyJzdWIiOiJhIn0.c2ln",
	         "header is not base64url"},
	        {"header in standard base64", NULL, NULL,
	         "eyJhbGciOi+IUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "header is not base64url"},
	        {"signature not base64url", NULL, NULL,
	         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
	         "signature"},
	        {"signature too short", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
	         "signature"},
	        {"payload not base64url", NULL, NULL, NULL, "payload is not base64url"},
	        /* JSON */
	        {"header not JSON", "alg=HS256", claims("\"a\"", 0, 60, NULL), NULL,
	         "header is not a JSON object"},
	        {"header an array", "[\"HS256\"]", claims("\"a\"", 0, 60, NULL), NULL,
	         "header is not a JSON object"},
	        {"payload an array", HS256, strdup("[1,2]"), NULL, "payload is not a JSON object"},
	        {"payload a string", HS256, strdup("\"sub\""), NULL,
	         "payload is not a JSON object"},
	        {"payload a number", HS256, strdup("1795345445"), NULL,
	         "payload is not a JSON object"},
	        {"payload truncated", HS256, strdup("{\"sub\":\"a\""), NULL,
	         "payload is not a JSON object"},
	        {"payload with trailing text", HS256,
	         strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1795345445} x"), NULL,
	         "payload is not a JSON object"},
	        {"two objects", HS256,
	         strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1795345445}{}"), NULL,
	         "payload is not a JSON object"},
	        {"single quotes (not strict JSON)", HS256,
	         strdup("{'sub':'a','iat':1795341845,'exp':1795345445}"), NULL,
	         "payload is not a JSON object"},
	        {"nested too deep", HS256,
	         strdup("{\"sub\":\"a\",\"iat\":1795341845,\"exp\":1795345445,\"x\":"
	                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
	         NULL, "payload is not a JSON object"},
	};
	size_t n = sizeof(bad) / sizeof(bad[0]);
	struct jwt_case cases[sizeof(bad) / sizeof(bad[0])];
	char *four = NULL, *badpayload = NULL;

	/* the cases that need a real token to start from */
	four = malloc(strlen(good) + 8);
	snprintf(four, strlen(good) + 8, "%s.AAAA", good);
	badpayload = sign_parts("eyJhbGciOiJIUzI1NiJ9", "eyJzdWIi*OiJhIn0");
	for (size_t i = 0; i < n; i++) {
		cases[i] = (struct jwt_case){bad[i].name,
		                             bad[i].head,
		                             bad[i].payload,
		                             bad[i].other,
		                             bad[i].want,
		                             NULL,
		                             0};
		if (strcmp(cases[i].name, "four parts of a real token") == 0)
			cases[i].other = four;
		if (strcmp(cases[i].name, "payload not base64url") == 0)
			cases[i].other = badpayload;
	}
	run_jwt_cases(cases, n);
	free(four);
	free(badpayload);
	free(too_long);
	free(wrong_key);
	free(good);
	free(tampered);
	free(swapped);
	free(none_nosig);
	free(h_none);
	check_done();
}

/* RFC 7515 appendix A.1: an HS256 JWS made by someone else. */
static void
test_jwt_rfc7515(void **state)
{
	static const char jwt[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	                          ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGF"
	                          "tcGxlLmNvbS9pc19yb290"
	                          "Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	static const char jwk_k[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3"
	                            "Yj0iPS4hcgUuTwjAzZr1Z9CAow";
	unsigned char key[128];
	long keylen = token_b64url_decode(jwk_k, strlen(jwk_k), key, sizeof(key));
	struct token_claims got;
	const char *error = NULL;

	CHECK_INT("JWK key length", keylen, 64);
	/* the signature verifies, so the complaint is about the claims: it has no "iat" */
	CHECK_INT("verify",
	          token_jwt_verify(jwt, key, (size_t)keylen, 1300819300000LL, MAX_LIFE_MS, &got,
	                           &error),
	          -1);
	CHECK_STR("error after a good signature", error, "no \"iat\" claim");
	key[0] ^= 1;
	token_jwt_verify(jwt, key, (size_t)keylen, 1300819300000LL, MAX_LIFE_MS, &got, &error);
	CHECK_STR("another key", error, "bad signature");
	check_done();
}

static void
test_jwt_sign(void **state)
{
	/* made with Python: hmac.new(KEY, h + "." + p, hashlib.sha256), compact JSON */
	static const char want[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	                           "eyJzdWIiOiJhbGljZUBleGFtcGxlLm9yZyIsImlhdCI6MTc5NTM0MTg0NSwiZXh"
	                           "wIjoxNzk1MzQ1NDQ1fQ."
	                           "rAWkEeqwoQDkgdF1-B2xFGY_N7a18n56T75ZR-VJfFI";
	char *jwt = token_jwt_sign("alice@example.org", NOW_S, NOW_S + 3600, KEY, KEYLEN);
	struct token_claims got;
	const char *error = NULL;

	CHECK_STR("token_jwt_sign", jwt, want);
	CHECK_INT("verify what was signed",
	          token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS, MAX_LIFE_MS, &got, &error), 0);
	CHECK_STR("user", got.user, "alice@example.org");
	CHECK_INT("iat", got.iat_ms, NOW_MS);
	CHECK_INT("exp", got.expires_ms, NOW_MS + 3600000);
	token_claims_free(&got);
	/* an hour later it has expired; a minute before it was issued it is from the future */
	CHECK_INT("an hour later",
	          token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS + 3600000, MAX_LIFE_MS, &got, &error),
	          -1);
	CHECK_HAS("an hour later", error, "expired");
	CHECK_INT("61 s before",
	          token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS - 61000, MAX_LIFE_MS, &got, &error),
	          -1);
	CHECK_HAS("61 s before", error, "future");
	CHECK_INT("a shorter limit",
	          token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS, 3599000, &got, &error), -1);
	CHECK_HAS("a shorter limit", error, "auth_token_max_lifetime");
	free(jwt);
	/* quotes and backslashes in the user are JSON-escaped, not injected */
	jwt = token_jwt_sign("a\"b\\c", NOW_S, NOW_S + 60, KEY, KEYLEN);
	CHECK_INT("escaped user",
	          token_jwt_verify(jwt, KEY, KEYLEN, NOW_MS, MAX_LIFE_MS, &got, &error), 0);
	CHECK_STR("escaped user", got.user, "a\"b\\c");
	token_claims_free(&got);
	free(jwt);
	check_done();
}

static void
test_user(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want; /* NULL: rejected */
	} cases[] = {
	        {"Alice@Example.ORG", 17, "alice@example.org"},
	        {"postmaster", 10, "postmaster"},
	        {"a b", 3, "a b"},
	        {"\xc3\x96", 2, "\xc3\x96"},
	        {"", 0, NULL},
	        {"a\tb", 3, NULL},
	        {"a\x7f", 2, NULL},
	        {"a\0b", 3, NULL},
	        {"\xc2\x85", 2, NULL}, /* NEL, a C1 control */
	        {"\xc3", 1, NULL},     /* truncated UTF-8 */
	        {"\xc0\xaf", 2, NULL}, /* overlong */
	};
	const char *error;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = token_user(cases[i].in, cases[i].len, &error);
		if (cases[i].want == NULL)
			CHECK_INT(cases[i].in, got == NULL, 1);
		else
			CHECK_STR(cases[i].in, got, cases[i].want);
		free(got);
	}
	check_done();
}

/* --- the shared secret --------------------------------------------------------------- */

static char *
secret_file(const char *content, size_t len, mode_t mode)
{
	char *path = strdup("/tmp/test_token.XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_secret(void **state)
{
	static const struct {
		const char *name;
		const char *content;
		mode_t mode;
		long want_len; /* -1: refused */
		const char *want_error;
	} cases[] = {
	        {"48 bytes and a newline", "0123456789abcdef0123456789abcdef0123456789abcdef\n",
	         0600, 48, NULL},
	        {"no newline", "0123456789abcdef0123456789abcdef", 0600, 32, NULL},
	        {"CR LF", "0123456789abcdef0123456789abcdef\r\n", 0640, 32, NULL},
	        {"only one newline is dropped", "0123456789abcdef0123456789abcdef\n\n", 0600, 33,
	         NULL},
	        {"31 bytes", "0123456789abcdef0123456789abcde\n", 0600, -1, "shorter than 32"},
	        {"empty", "", 0600, -1, "shorter than 32"},
	        {"readable by others", "0123456789abcdef0123456789abcdef\n", 0644, -1,
	         "accessible to others"},
	        {"executable by others", "0123456789abcdef0123456789abcdef\n", 0601, -1,
	         "accessible to others"},
	};
	unsigned char *secret = NULL;
	const char *error = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = secret_file(cases[i].content, strlen(cases[i].content), cases[i].mode);
		int rc = token_secret_load("auth_secret_file", path, &secret, &len, &error);
		if (cases[i].want_len < 0) {
			CHECK_INT(cases[i].name, rc, -1);
			if (rc < 0) {
				CHECK_HAS(cases[i].name, error, cases[i].want_error);
				CHECK_HAS(cases[i].name, error, path);
			}
		} else {
			CHECK_INT(cases[i].name, rc, 0);
			CHECK_INT(cases[i].name, len, cases[i].want_len);
			if (rc == 0)
				CHECK_INT(cases[i].name, memcmp(secret, cases[i].content, len), 0);
			token_secret_free(&secret, len);
			CHECK_INT("token_secret_free sets NULL", secret == NULL, 1);
		}
		unlink(path);
		free(path);
	}
	CHECK_INT(
	        "missing file",
	        token_secret_load("auth_secret_file", "/nonexistent/secret", &secret, &len, &error),
	        -1);
	CHECK_HAS("missing file", error, "/nonexistent/secret");
	CHECK_INT("a directory",
	          token_secret_load("auth_secret_file", "/tmp", &secret, &len, &error), -1);
	CHECK_HAS("a directory", error, "regular file");
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_api_token_format),
	        cmocka_unit_test(test_api_token_valid),
	        cmocka_unit_test(test_sha256),
	        cmocka_unit_test(test_base64url),
	        cmocka_unit_test(test_jwt_valid),
	        cmocka_unit_test(test_jwt_invalid),
	        cmocka_unit_test(test_jwt_rfc7515),
	        cmocka_unit_test(test_jwt_sign),
	        cmocka_unit_test(test_user),
	        cmocka_unit_test(test_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
