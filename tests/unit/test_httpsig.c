/*
 * test_httpsig - unit tests for federation/httpsig (RFC 9421 subset, Ed25519, RFC 9530).
 *
 * RFC 9421 Appendix B.2.6 with the test key of B.1.4: the signature base byte for byte,
 * the published signature verifies, and signing with the private key reproduces it
 * (Ed25519 is deterministic). RFC 9530's sha-256 example digest. The report profile of
 * docs/federation.md: a signed POST verifies, and each tampering or policy failure is
 * refused with its error, in the documented order (the key is looked up only after the
 * fields parse, freshness only after the signature, the body only after freshness).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpsig.h"

#include "check.h"

static const unsigned char pub_raw[32] = {0x26, 0xb4, 0x0b, 0x8f, 0x93, 0xff, 0xf3, 0xd8,
                                          0x97, 0x11, 0x2f, 0x7e, 0xbc, 0x58, 0x2b, 0x23,
                                          0x2d, 0xbd, 0x72, 0x51, 0x7d, 0x08, 0x2f, 0xe8,
                                          0x3c, 0xfb, 0x30, 0xdd, 0xce, 0x43, 0xd1, 0xbb};
static const unsigned char priv_raw[32] = {0x9f, 0x83, 0x62, 0xf8, 0x7a, 0x48, 0x4a, 0x95,
                                           0x4e, 0x6e, 0x74, 0x0c, 0x5b, 0x4c, 0x0e, 0x84,
                                           0x22, 0x91, 0x39, 0xa2, 0x0a, 0xa8, 0xab, 0x56,
                                           0xff, 0x66, 0x58, 0x6f, 0x6a, 0x7d, 0x29, 0xc5};

struct fields {
	const char *names[6], *values[6];
};

static const char *
field(void *ctx, const char *name)
{
	struct fields *f = ctx;

	for (int i = 0; i < 6 && f->names[i] != NULL; i++) {
		if (strcmp(f->names[i], name) == 0)
			return f->values[i];
	}
	return NULL;
}

struct keyctx {
	EVP_PKEY *key; /* what the lookup returns */
	const char *want_keyid;
	int lookups, replays;
	char seen_nonce[64];
};

static int
key_fn(void *ctx, const char *keyid, EVP_PKEY **key_r, const char **error_r)
{
	struct keyctx *k = ctx;

	k->lookups++;
	if (strcmp(keyid, k->want_keyid) != 0) {
		*error_r = "no such key";
		return -1;
	}
	if (EVP_PKEY_up_ref(k->key) != 1)
		return -1;
	*key_r = k->key;
	return 0;
}

static int
replay_fn(void *ctx, const char *keyid, const char *nonce, int64_t expires, const char **error_r)
{
	struct keyctx *k = ctx;

	(void)keyid;
	(void)expires;
	k->replays++;
	if (strcmp(k->seen_nonce, nonce) == 0) {
		*error_r = "replayed nonce";
		return -1;
	}
	snprintf(k->seen_nonce, sizeof(k->seen_nonce), "%s", nonce);
	return 0;
}

#define B26_INPUT                                                                                  \
	"sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" "                 \
	"\"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
#define B26_SIG                                                                                    \
	"sig-b26=:"                                                                                \
	"wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBK"      \
	"RCw==:"

static void
test_rfc9421_b26(void **state)
{
	struct fields f = {{"date", "content-type", "content-length", "content-digest"},
	                   {"Tue, 20 Apr 2021 02:07:55 GMT", "application/json", "18",
	                    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"}};
	struct httpsig_request req = {"POST",        "https://example.com/foo?param=Value&Pet=dog",
	                              "example.com", "/foo",
	                              field,         &f};
	struct httpsig_policy pol = {.now = 1618884473 + 10, .skew = 60};
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub_raw, 32);
	EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv_raw, 32);
	struct keyctx k = {pub, "test-key-ed25519", 0, 0, ""};
	struct mbuf base = MBUF_INIT, in = MBUF_INIT, sig = MBUF_INIT;
	struct httpsig_params p, signp;
	unsigned char raw[64];
	const char *error = NULL;

	(void)state;
	assert_non_null(pub);
	assert_non_null(priv);
	CHECK_INT("parse",
	          httpsig_parse(B26_INPUT, strlen(B26_INPUT), B26_SIG, strlen(B26_SIG), &p, raw,
	                        &error),
	          0);
	CHECK_INT("base", httpsig_base(&p, &req, &base, &error), 0);
	CHECK_STR("signature base", mbuf_str(&base),
	          "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n"
	          "\"@method\": POST\n"
	          "\"@path\": /foo\n"
	          "\"@authority\": example.com\n"
	          "\"content-type\": application/json\n"
	          "\"content-length\": 18\n"
	          "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" "
	          "\"content-type\" "
	          "\"content-length\");created=1618884473;keyid=\"test-key-ed25519\"");
	CHECK_INT("verify",
	          httpsig_verify(&req, B26_INPUT, strlen(B26_INPUT), B26_SIG, strlen(B26_SIG), &pol,
	                         key_fn, NULL, &k, &p, &error),
	          0);
	CHECK_STR("verify: error", error, NULL);
	/* Signing reproduces the published signature. */
	memset(&signp, 0, sizeof(signp));
	snprintf(signp.label, sizeof(signp.label), "sig-b26");
	signp.ncomponents = 6;
	for (size_t i = 0; i < 6; i++)
		snprintf(signp.components[i], sizeof(signp.components[i]), "%s",
		         (const char *[]){"date", "@method", "@path", "@authority", "content-type",
		                          "content-length"}[i]);
	signp.has_created = true;
	signp.created = 1618884473;
	snprintf(signp.keyid, sizeof(signp.keyid), "test-key-ed25519");
	CHECK_INT("sign", httpsig_sign(&req, &signp, priv, &in, &sig, &error), 0);
	CHECK_STR("Signature-Input", mbuf_str(&in), B26_INPUT);
	CHECK_STR("Signature", mbuf_str(&sig), B26_SIG);
	/* One changed covered field: refused. */
	f.values[2] = "19";
	CHECK_INT("tampered",
	          httpsig_verify(&req, B26_INPUT, strlen(B26_INPUT), B26_SIG, strlen(B26_SIG), &pol,
	                         key_fn, NULL, &k, &p, &error),
	          -1);
	CHECK_STR("tampered: error", error, "the signature does not verify");
	mbuf_free(&base);
	mbuf_free(&in);
	mbuf_free(&sig);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
	check_done();
}

static void
test_content_digest(void **state)
{
	char buf[HTTPSIG_DIGEST_BUFSIZE];

	(void)state;
	/* RFC 9530 section 2's example */
	httpsig_content_digest((const unsigned char *)"{\"hello\": \"world\"}", 18, buf);
	CHECK_STR("content digest", buf, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
	check_done();
}

/* The report profile: sign a POST, then verify variations of it. */
static const char *const required[] = {"@method", "@target-uri", "content-type", "content-digest"};
#define KEYID "s1._msgstatus-key.example.net"
#define NOW   1765017000

struct signed_req {
	struct fields f;
	char digest[HTTPSIG_DIGEST_BUFSIZE];
	struct mbuf in, sig;
};

static void
sign_report(struct signed_req *s, EVP_PKEY *priv, const char *body, int64_t created,
            int64_t expires)
{
	struct httpsig_request req = {
	        "POST", "https://status.example.org/fed", "status.example.org", "/fed", field,
	        &s->f};
	struct httpsig_params p;
	const char *error = NULL;

	httpsig_content_digest((const unsigned char *)body, strlen(body), s->digest);
	s->f = (struct fields){{"content-type", "content-digest"},
	                       {"application/vnd.msgstatus.report+cbor", s->digest}};
	memset(&p, 0, sizeof(p));
	snprintf(p.label, sizeof(p.label), "msr");
	p.ncomponents = 4;
	for (size_t i = 0; i < 4; i++)
		snprintf(p.components[i], sizeof(p.components[i]), "%s", required[i]);
	p.has_created = p.has_expires = true;
	p.created = created;
	p.expires = expires;
	snprintf(p.keyid, sizeof(p.keyid), KEYID);
	snprintf(p.nonce, sizeof(p.nonce), "n0nce0123456789abcdef");
	snprintf(p.alg, sizeof(p.alg), "ed25519");
	s->in = (struct mbuf)MBUF_INIT;
	s->sig = (struct mbuf)MBUF_INIT;
	assert_int_equal(httpsig_sign(&req, &p, priv, &s->in, &s->sig, &error), 0);
}

static int
verify(struct signed_req *s, const char *input, const char *sig, const char *body, struct keyctx *k,
       const char **error_r)
{
	struct httpsig_request req = {
	        "POST", "https://status.example.org/fed", "status.example.org", "/fed", field,
	        &s->f};
	struct httpsig_policy pol = {"msr",       required, 4,  true, true,
	                             true,        NOW,      60, 300,  (const unsigned char *)body,
	                             strlen(body)};
	struct httpsig_params p;

	*error_r = NULL;
	return httpsig_verify(&req, input, strlen(input), sig, strlen(sig), &pol, key_fn, replay_fn,
	                      k, &p, error_r);
}

static void
test_report_profile(void **state)
{
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub_raw, 32);
	EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv_raw, 32);
	EVP_PKEY *other = NULL;
	EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	struct keyctx k = {pub, KEYID, 0, 0, ""};
	struct signed_req s, old, future, longlived;
	const char *error = NULL, *body = "report body";
	char *text;
	int replays;

	(void)state;
	assert_true(gen != NULL && EVP_PKEY_keygen_init(gen) == 1 &&
	            EVP_PKEY_keygen(gen, &other) == 1);
	sign_report(&s, priv, body, NOW - 5, NOW + 295);

	CHECK_INT("good", verify(&s, s.in.data, s.sig.data, body, &k, &error), 0);
	CHECK_STR("good: error", error, NULL);
	CHECK_INT("replay", verify(&s, s.in.data, s.sig.data, body, &k, &error), -1);
	CHECK_STR("replay: error", error, "replayed nonce");
	k.seen_nonce[0] = '\0';

	CHECK_INT("other body", verify(&s, s.in.data, s.sig.data, "report bodY", &k, &error), -1);
	CHECK_STR("other body: error", error, "Content-Digest does not match the body");
	k.seen_nonce[0] = '\0';

	replays = k.replays;
	k.key = other; /* the keyid's DNS record holds another key */
	CHECK_INT("wrong key", verify(&s, s.in.data, s.sig.data, body, &k, &error), -1);
	CHECK_STR("wrong key: error", error, "the signature does not verify");
	CHECK_INT("wrong key: no replay entry", k.replays, replays);
	k.key = pub;

	sign_report(&old, priv, body, NOW - 400, NOW - 100);
	CHECK_INT("expired", verify(&old, old.in.data, old.sig.data, body, &k, &error), -1);
	CHECK_STR("expired: error", error, "signature expired");
	sign_report(&future, priv, body, NOW + 120, NOW + 400);
	CHECK_INT("future", verify(&future, future.in.data, future.sig.data, body, &k, &error), -1);
	CHECK_STR("future: error", error, "signature created in the future");
	sign_report(&longlived, priv, body, NOW - 5, NOW + 3600);
	CHECK_INT("long-lived",
	          verify(&longlived, longlived.in.data, longlived.sig.data, body, &k, &error), -1);
	CHECK_STR("long-lived: error", error, "signature lifetime longer than allowed");

	/* Parse and profile failures: the key is never looked up. */
	k.lookups = 0;
	{
		static const struct {
			const char *input, *error;
		} bad[] = {
		        {"msr=(\"@method\" \"@target-uri\" \"content-type\");created=1;expires=2;"
		         "nonce=\"n\";alg=\"ed25519\";keyid=\"" KEYID "\"",
		         "signature does not cover a required component"},
		        {"msr=(\"@method\" \"@target-uri\" \"content-type\" "
		         "\"content-digest\");created=1;"
		         "expires=2;nonce=\"n\";alg=\"rsa-v1_5-sha256\";keyid=\"" KEYID "\"",
		         "signature alg is not ed25519"},
		        {"msr=(\"@method\" \"@target-uri\" \"content-type\" "
		         "\"content-digest\");created=1;"
		         "expires=2;alg=\"ed25519\";keyid=\"" KEYID "\"",
		         "signature lacks a required parameter (created, expires, keyid, nonce)"},
		        {"msr=(\"@method\"  \"@target-uri\");created=1;keyid=\"k\"",
		         "Signature-Input: not in canonical serialization (one member, single "
		         "spaces, no "
		         "white space around it)"},
		        {"msr=(\"@method\");created=1;keyid=\"k\", other=(\"@path\");created=1",
		         "Signature-Input: parameter expected"},
		        {"msr=(\"@method\");created=1;created=2;keyid=\"k\"",
		         "Signature-Input: repeated parameter"},
		        {"msr=(\"@method\");created=1;keyid=\"k\";foo=1",
		         "Signature-Input: unknown parameter"},
		        {"msr=(\"@method\" \"@method\");created=1;keyid=\"k\"",
		         "Signature-Input: repeated component"},
		        {"msr=(\"@query\");created=1;keyid=\"k\"",
		         "Signature-Input: bad or unsupported component"},
		        {"msr=(\"Content-Type\");created=1;keyid=\"k\"",
		         "Signature-Input: bad or unsupported component"},
		        {"msr=(\"content-type\";sf);created=1;keyid=\"k\"",
		         "Signature-Input: bad inner list"},
		        {"msr=(\"@method\");created=-1;keyid=\"k\"",
		         "Signature-Input: created/expires is not a non-negative integer"},
		        {"msr=(\"@method\");created=1;keyid=\"a\\\"b\"",
		         "Signature-Input: bad string parameter"},
		        {"msr=(\"@method\";created=1", "Signature-Input: bad inner list"},
		        {"other=(\"@method\");created=1;keyid=\"k\"",
		         "Signature: not one member label=:<64 bytes in base64>: with the label of "
		         "Signature-Input"},
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			CHECK_INT(bad[i].input,
			          verify(&s, bad[i].input, s.sig.data, body, &k, &error), -1);
			CHECK_STR(bad[i].input, error, bad[i].error);
		}
	}
	/* A signature that is not canonical base64 (last character's unused bits set). */
	text = strdup(s.sig.data);
	assert_non_null(text);
	text[strlen(text) - 3] = text[strlen(text) - 3] == 'A' ? 'B' : 'A';
	CHECK_INT("sig base64", verify(&s, s.in.data, text, body, &k, &error), -1);
	free(text);
	CHECK_INT("no key lookups for parse failures", k.lookups, 0);

	mbuf_free(&s.in);
	mbuf_free(&s.sig);
	mbuf_free(&old.in);
	mbuf_free(&old.sig);
	mbuf_free(&future.in);
	mbuf_free(&future.sig);
	mbuf_free(&longlived.in);
	mbuf_free(&longlived.sig);
	EVP_PKEY_CTX_free(gen);
	EVP_PKEY_free(other);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc9421_b26),
	        cmocka_unit_test(test_content_digest),
	        cmocka_unit_test(test_report_profile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
