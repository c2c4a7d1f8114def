/*
 * fuzz_httpsig - libFuzzer target for the Signature-Input and Signature parser and the
 * verifier. Input: the Signature-Input value, a newline, the Signature value. Invariants:
 * a parsed Signature-Input serializes back to exactly its text; the signature base builds
 * for any parsed input; verification runs to a refusal or success without a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
field(void *ctx, const char *name)
{
	(void)ctx;
	return strcmp(name, "content-type") == 0 ? "application/vnd.msgstatus.report+cbor" : NULL;
}

static int
key_fn(void *ctx, const char *keyid, EVP_PKEY **key_r, const char **error_r)
{
	static const unsigned char raw[32] = {1, 2, 3};

	(void)ctx;
	(void)keyid;
	*key_r = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
	if (*key_r == NULL) {
		*error_r = "no key";
		return -1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *nl = memchr(text, '\n', size), *error;
	struct httpsig_request req = {"POST", "https://a.example/r", "a.example", "/r", field,
	                              NULL};
	struct httpsig_policy pol = {.now = 1000, .skew = 60, .max_life = 300};
	struct mbuf out = MBUF_INIT;
	struct httpsig_params p;
	unsigned char sig[HTTPSIG_SIG_LEN];
	size_t ilen = nl != NULL ? (size_t)(nl - text) : size;
	const char *s = nl != NULL ? nl + 1 : text + size;
	size_t slen = nl != NULL ? size - ilen - 1 : 0;

	if (httpsig_parse(text, ilen, s, slen, &p, sig, &error) == 0) {
		size_t label = strlen(p.label) + 1;

		httpsig_params_serialize(&p, &out);
		if (out.len != ilen - label || memcmp(out.data, text + label, out.len) != 0)
			abort();
		mbuf_reset(&out);
		(void)httpsig_base(&p, &req, &out, &error);
		(void)httpsig_verify(&req, text, ilen, s, slen, &pol, key_fn, NULL, NULL, &p,
		                     &error);
	}
	mbuf_free(&out);
	return 0;
}
