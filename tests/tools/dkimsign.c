/*
 * dkimsign - sign a message with OpenDKIM's libopendkim, for the end-to-end tests
 * (tests/e2e/test_dkim_inbound.py): rsa-sha256, the canonicalization asked for.
 *
 *	dkimsign -d DOMAIN -s SELECTOR -k KEYFILE [-c simple|relaxed] [-a sha1|sha256] < in > out
 *
 * The message on standard input (CRLF or LF lines); on standard output the DKIM-Signature
 * header (CRLF, folded by libopendkim) followed by the message as it came in.
 * Exit status 0, 1 when libopendkim fails, 2 for bad usage.
 */
#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *
slurp(FILE *f, size_t *len_r)
{
	size_t cap = 65536, len = 0, n;
	unsigned char *buf = malloc(cap);

	while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap && (buf = realloc(buf, cap *= 2)) == NULL)
			break;
	}
	if (buf == NULL) {
		fprintf(stderr, "dkimsign: out of memory\n");
		exit(1);
	}
	*len_r = len;
	return buf;
}

int
main(int argc, char **argv)
{
	const char *domain = NULL, *selector = NULL, *keyfile = NULL;
	dkim_canon_t canon = DKIM_CANON_RELAXED;
	dkim_alg_t alg = DKIM_SIGN_RSASHA256;
	unsigned char *key, *msg, *hdr = NULL;
	size_t keylen, msglen, hdrlen = 0;
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
	DKIM_LIB *lib;
	DKIM *dkim;
	DKIM_STAT st;
	FILE *f;
	int ch;

	while ((ch = getopt(argc, argv, "d:s:k:c:a:")) != -1) {
		switch (ch) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'c':
			canon = strcmp(optarg, "simple") == 0 ? DKIM_CANON_SIMPLE
			                                      : DKIM_CANON_RELAXED;
			break;
		case 'a':
			alg = strcmp(optarg, "sha1") == 0 ? DKIM_SIGN_RSASHA1 : DKIM_SIGN_RSASHA256;
			break;
		default:
			goto usage;
		}
	}
	if (domain == NULL || selector == NULL || keyfile == NULL || optind != argc)
		goto usage;
	if ((f = fopen(keyfile, "r")) == NULL) {
		perror(keyfile);
		return 2;
	}
	key = slurp(f, &keylen);
	fclose(f);
	key[keylen < 65535 ? keylen : 65535] = '\0';
	msg = slurp(stdin, &msglen);

	if ((lib = dkim_init(NULL, NULL)) == NULL ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	            DKIM_STAT_OK)
		return 1;
	dkim = dkim_sign(lib, (const unsigned char *)"dkimsign", NULL, key,
	                 (const unsigned char *)selector, (const unsigned char *)domain, canon,
	                 canon, alg, -1, &st);
	if (dkim == NULL || (st = dkim_chunk(dkim, msg, msglen)) != DKIM_STAT_OK ||
	    (st = dkim_chunk(dkim, NULL, 0)) != DKIM_STAT_OK ||
	    (st = dkim_eom(dkim, NULL)) != DKIM_STAT_OK ||
	    (st = dkim_getsighdr_d(dkim, strlen(DKIM_SIGNHEADER) + 2, &hdr, &hdrlen)) !=
	            DKIM_STAT_OK) {
		fprintf(stderr, "dkimsign: %s\n", dkim_getresultstr(st));
		return 1;
	}
	printf("%s: ", DKIM_SIGNHEADER);
	/* libopendkim folds with LF: the message's own line ends are CRLF */
	for (size_t i = 0; i < hdrlen; i++) {
		if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
			putchar('\r');
		putchar(hdr[i]);
	}
	printf("\r\n");
	fwrite(msg, 1, msglen, stdout);
	dkim_free(dkim);
	dkim_close(lib);
	free(msg);
	free(key);
	return fflush(stdout) == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: dkimsign -d DOMAIN -s SELECTOR -k KEYFILE [-c simple|relaxed] "
	                "[-a sha1|sha256] < message\n");
	return 2;
}
