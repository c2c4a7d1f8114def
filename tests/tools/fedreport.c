/*
 * fedreport - a federation report (docs/federation.md) built and signed from the command
 * line, as another site's sender would, for the end-to-end tests of the report endpoint
 * (tests/e2e/test_federation_receive.py):
 *
 *	fedreport -k KEY.pem -i KEYID -u URL -d DOMAIN -o BODYFILE [-c CREATED] [-e EXPIRES]
 *	          [-n NONCE] [-C COMPONENTS] EVENT...
 *
 * An EVENT is "KIND|ID|CODE|EVENT_ID|RECIPIENT|TIME_MS": KIND t (ID is a tracking id) or m
 * (a Message-ID), CODE the MIMI status code. The report (federation/mimistatus) goes to
 * BODYFILE; the request's fields are printed on stdout, one "Name: value" a line
 * (Content-Type, Content-Digest, Signature-Input, Signature), signed (federation/httpsig)
 * with the Ed25519 key in KEY.pem (as "statusctl key make" writes it) over "@method"
 * "@target-uri" "content-type" "content-digest" (or the comma-separated COMPONENTS).
 * CREATED and EXPIRES are seconds since the epoch (default now and now + 300), NONCE a
 * random 128 bits. Exit status 0, or 2 for bad usage or input.
 */
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fedrec.h"
#include "httpsig.h"
#include "mbuf.h"
#include "mimistatus.h"

#define CTYPE "application/vnd.msgstatus.report+cbor"

static const char *digest_value;

static const char *
field(void *ctx, const char *name)
{
	(void)ctx;
	if (strcmp(name, "content-type") == 0)
		return CTYPE;
	if (strcmp(name, "content-digest") == 0)
		return digest_value;
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: fedreport -k KEY.pem -i KEYID -u URL -d DOMAIN -o BODYFILE [-c "
	                "CREATED] [-e EXPIRES] [-n NONCE] [-C COMPONENTS] EVENT...\n");
	exit(2);
}

static void
die(const char *what, const char *error)
{
	fprintf(stderr, "fedreport: %s: %s\n", what, error);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *keyfile = NULL, *keyid = NULL, *url = NULL, *domain = NULL, *out = NULL;
	const char *nonce = NULL, *components = "@method,@target-uri,content-type,content-digest";
	long long created = (long long)time(NULL), expires = -1;
	struct mimistatus_report rep = {0};
	struct httpsig_params p;
	struct mbuf input = MBUF_INIT, sig = MBUF_INIT;
	char digest[HTTPSIG_DIGEST_BUFSIZE], authority[256], nbuf[40];
	unsigned char *body, rnd[16];
	const char *error, *host, *slash;
	size_t len;
	EVP_PKEY *key;
	FILE *f;
	int ch;

	while ((ch = getopt(argc, argv, "k:i:u:d:o:c:e:n:C:")) != -1) {
		switch (ch) {
		case 'k':
			keyfile = optarg;
			break;
		case 'i':
			keyid = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'c':
			created = atoll(optarg);
			break;
		case 'e':
			expires = atoll(optarg);
			break;
		case 'n':
			nonce = optarg;
			break;
		case 'C':
			components = optarg;
			break;
		default:
			usage();
		}
	}
	if (!keyfile || !keyid || !url || !domain || !out || strncmp(url, "https://", 8) != 0)
		usage();
	if (expires < 0)
		expires = created + 300;
	rep.domain = (char *)domain;
	rep.count = (size_t)(argc - optind);
	rep.entries = calloc(rep.count + 1, sizeof(*rep.entries));
	rep.events = calloc(rep.count + 1, sizeof(*rep.events));
	for (size_t i = 0; i < rep.count; i++) {
		/* the strings stay in argv, cut up in place */
		char *spec = argv[optind + (int)i], *part[6], *save = NULL;
		int n = 0;

		for (char *t = strtok_r(spec, "|", &save); t && n < 6;
		     t = strtok_r(NULL, "|", &save))
			part[n++] = t;
		if (n != 6 || (part[0][0] != 't' && part[0][0] != 'm'))
			die("event", "expected KIND|ID|CODE|EVENT_ID|RECIPIENT|TIME_MS");
		if (mimistatus_msgid(part[0][0] == 't' ? MIMISTATUS_ID_TRACKING
		                                       : MIMISTATUS_ID_MESSAGE,
		                     part[1], strlen(part[1]), rep.entries[i].msgid, &error) < 0)
			die("event", error);
		rep.entries[i].status = (unsigned)atoi(part[2]);
		rep.events[i].event_id = part[3];
		rep.events[i].recipient = part[4];
		rep.events[i].timestamp_ms = atoll(part[5]);
	}
	if (mimistatus_encode(&rep, &body, &len, &error) < 0)
		die("encode", error);
	if ((f = fopen(out, "wb")) == NULL || fwrite(body, 1, len, f) != len || fclose(f) != 0)
		die(out, "cannot write");
	httpsig_content_digest(body, len, digest);
	digest_value = digest;

	if ((f = fopen(keyfile, "r")) == NULL)
		die(keyfile, "cannot open");
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL)
		die(keyfile, "not a PEM private key");
	host = url + 8;
	slash = strchr(host, '/');
	if (slash == NULL || (size_t)(slash - host) >= sizeof(authority))
		usage();
	snprintf(authority, sizeof(authority), "%.*s", (int)(slash - host), host);
	struct httpsig_request req = {"POST", url, authority, slash, field, NULL};

	memset(&p, 0, sizeof(p));
	snprintf(p.label, sizeof(p.label), "msr");
	{
		char *list = strdup(components), *save = NULL;
		for (char *t = strtok_r(list, ",", &save);
		     t && p.ncomponents < HTTPSIG_COMPONENTS_MAX; t = strtok_r(NULL, ",", &save))
			snprintf(p.components[p.ncomponents++], sizeof(p.components[0]), "%s", t);
		free(list);
	}
	p.has_created = p.has_expires = true;
	p.created = created;
	p.expires = expires;
	if (nonce == NULL) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			die("nonce", "no random bytes");
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(nbuf + 2 * i, 3, "%02x", rnd[i]);
		nonce = nbuf;
	}
	snprintf(p.nonce, sizeof(p.nonce), "%s", nonce);
	snprintf(p.alg, sizeof(p.alg), "ed25519");
	snprintf(p.keyid, sizeof(p.keyid), "%s", keyid);
	if (httpsig_sign(&req, &p, key, &input, &sig, &error) < 0)
		die("sign", error);
	printf("Content-Type: %s\nContent-Digest: %s\nSignature-Input: %s\nSignature: %s\n", CTYPE,
	       digest, mbuf_str(&input), mbuf_str(&sig));
	EVP_PKEY_free(key);
	mbuf_free(&input);
	mbuf_free(&sig);
	free(body);
	free(rep.entries);
	free(rep.events);
	return 0;
}
