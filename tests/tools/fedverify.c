/*
 * fedverify - checks one federation report request as a receiver would
 * (docs/federation.md, "Verification order"), with federation/httpsig and mimistatus,
 * for the end-to-end tests of statusd's report sender (tests/e2e/test_federation_send.py):
 *
 *	fedverify URL HEADERS BODY PUBKEY
 *
 * URL is the request's target URI (https://host[:port]/path), HEADERS a file of
 * "name: value" lines as received, BODY a file of the body's bytes, PUBKEY the reporting
 * key's p= (base64 of the raw Ed25519 public key). The signature is verified under that
 * key (no replay check), then the report is decoded and printed as one line of JSON:
 * {"keyid":..., "domain":..., "events":[{"msgid":HEX,"status":N,"event_id":...,
 * "recipient":...,"timestamp":MS},...]}. Exit 0; 1 with the reason on stderr if the
 * request does not verify or decode; 2 for bad usage.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpsig.h"
#include "mbuf.h"
#include "mimistatus.h"

#define FIELDS_MAX 64

struct fields {
	size_t n;
	char name[FIELDS_MAX][64];
	char *value[FIELDS_MAX];
};

static const char *
field(void *ctx, const char *name)
{
	struct fields *f = ctx;

	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->name[i], name) == 0)
			return f->value[i];
	return NULL;
}

static unsigned char pub[32];

static int
key_fn(void *ctx, const char *keyid, EVP_PKEY **key_r, const char **error_r)
{
	(void)ctx;
	(void)keyid;
	*key_r = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof(pub));
	if (*key_r == NULL) {
		*error_r = "bad public key";
		return -1;
	}
	return 0;
}

static int
slurp(const char *path, struct mbuf *out)
{
	FILE *fp = fopen(path, "rb");
	char buf[4096];
	size_t n;

	if (fp == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		mbuf_append(out, buf, n);
	fclose(fp);
	return 0;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

int
main(int argc, char **argv)
{
	static const char *const required[] = {"@method", "@target-uri", "content-type",
	                                       "content-digest"};
	struct mbuf headers = MBUF_INIT, body = MBUF_INIT;
	struct fields f = {0};
	struct httpsig_request req = {"POST", NULL, NULL, NULL, field, &f};
	struct httpsig_policy pol = {0};
	struct httpsig_params params;
	struct mimistatus_report r = {0};
	char authority[512], *line, *save = NULL;
	const char *input, *sig, *error, *path;

	if (argc != 5) {
		fprintf(stderr, "usage: fedverify URL HEADERS BODY PUBKEY\n");
		return 2;
	}
	if (slurp(argv[2], &headers) < 0 || slurp(argv[3], &body) < 0 ||
	    EVP_DecodeBlock(pub, (const unsigned char *)argv[4], (int)strlen(argv[4])) != 33) {
		fprintf(stderr, "fedverify: cannot read the files or the key\n");
		return 2;
	}
	mbuf_putc(&headers, '\0');
	for (line = strtok_r(headers.data, "\r\n", &save); line && f.n < FIELDS_MAX;
	     line = strtok_r(NULL, "\r\n", &save)) {
		char *colon = strchr(line, ':');
		size_t k;

		if (colon == NULL || (size_t)(colon - line) >= sizeof(f.name[0]))
			continue;
		for (k = 0; line + k < colon; k++)
			f.name[f.n][k] = (char)tolower((unsigned char)line[k]);
		f.name[f.n][k] = '\0';
		for (colon++; *colon == ' ' || *colon == '\t'; colon++)
			;
		f.value[f.n++] = colon;
	}
	req.target_uri = argv[1];
	if (strncmp(argv[1], "https://", 8) != 0 || (path = strchr(argv[1] + 8, '/')) == NULL) {
		fprintf(stderr, "fedverify: not an https URL\n");
		return 2;
	}
	snprintf(authority, sizeof(authority), "%.*s", (int)(path - argv[1] - 8), argv[1] + 8);
	req.authority = authority;
	req.path = path;
	input = field(&f, "signature-input");
	sig = field(&f, "signature");
	if (input == NULL || sig == NULL) {
		fprintf(stderr, "fedverify: unsigned\n");
		return 1;
	}
	pol.label = "msr";
	pol.required_components = required;
	pol.nrequired = 4;
	pol.require_expires = pol.require_nonce = pol.require_alg = true;
	pol.now = (int64_t)time(NULL);
	pol.skew = 60;
	pol.max_life = 300;
	pol.body = (const unsigned char *)body.data;
	pol.body_len = body.len;
	if (httpsig_verify(&req, input, strlen(input), sig, strlen(sig), &pol, key_fn, NULL, NULL,
	                   &params, &error) < 0) {
		fprintf(stderr, "fedverify: signature: %s\n", error);
		return 1;
	}
	if (mimistatus_decode((const unsigned char *)body.data, body.len, &r, &error) < 0) {
		fprintf(stderr, "fedverify: report: %s\n", error);
		mimistatus_report_free(&r);
		return 1;
	}
	printf("{\"keyid\":");
	json_str(params.keyid);
	printf(",\"domain\":");
	json_str(r.domain);
	printf(",\"content_type\":");
	json_str(field(&f, "content-type") ? field(&f, "content-type") : "");
	printf(",\"events\":[");
	for (size_t i = 0; i < r.count; i++) {
		printf("%s{\"msgid\":\"", i ? "," : "");
		for (size_t k = 0; k < MIMISTATUS_MSGID_LEN; k++)
			printf("%02x", r.entries[i].msgid[k]);
		printf("\",\"status\":%u,\"event_id\":", r.entries[i].status);
		json_str(r.events[i].event_id);
		printf(",\"recipient\":");
		json_str(r.events[i].recipient);
		printf(",\"timestamp\":%lld}", (long long)r.events[i].timestamp_ms);
	}
	printf("]}\n");
	mimistatus_report_free(&r);
	mbuf_free(&headers);
	mbuf_free(&body);
	return 0;
}
