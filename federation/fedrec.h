/*
 * fedrec - the federation's DNS TXT records (docs/federation.md, "Discovery"): where a
 * domain accepts reports (_msgstatus.<domain> TXT "v=MSR1; u=https://...") and the keys it
 * signs reports with (<selector>._msgstatus-key.<domain> TXT "v=MSK1; k=ed25519; p=...").
 * Parsers, printers and the owner names; no DNS I/O (the resolver comes later).
 *
 * DESIGN
 *	Hand-written: the grammar is a dozen lines of tag=value pairs in the manner of TLS-RPT
 *	(RFC 8460) and DKIM (RFC 6376), and no Debian library parses it. Base64 goes through
 *	OpenSSL (EVP_DecodeBlock/EVP_EncodeBlock). Results are plain structs filled in by the
 *	caller's storage; no allocation, no static state.
 *
 * SECURITY
 *	The TXT text comes from the DNS: untrusted. Order of checks in each parser:
 *	1. length: at most FEDREC_TXT_MAX bytes; every byte printable ASCII or space/tab;
 *	2. the version tag comes first and is exactly "v=MSR1" / "v=MSK1";
 *	3. the tag=value grammar for the whole record (tag names [a-z][a-z0-9_]{0,15}, values
 *	   visible ASCII without ';'), every tag at most once (a repeated tag refuses the
 *	   record), unknown tags ignored;
 *	4. only then the known tags' values: u= an https URL of the restricted form below;
 *	   k= exactly "ed25519"; p= canonical base64 of exactly 32 bytes (empty: revoked).
 *	fedrec_select() picks the one record of an RRset that starts with the version tag;
 *	none or more than one is an error (as MTA-STS, RFC 8461 section 3.1).
 *
 * DIAGNOSTICS
 *	0 on success, -1 with *error_r set to static text naming what was wrong.
 */
#ifndef FEDREC_H
#define FEDREC_H

#include <stdbool.h>
#include <stddef.h>

#define FEDREC_TXT_MAX      1024
#define FEDREC_URL_MAX      512
#define FEDREC_SELECTOR_MAX 63
#define FEDREC_DOMAIN_MAX   253
#define FEDREC_KEY_LEN      32
/* Longest owner name: selector, "._msgstatus-key.", domain, NUL. */
#define FEDREC_NAME_MAX (FEDREC_SELECTOR_MAX + 16 + FEDREC_DOMAIN_MAX + 1)

enum fedrec_kind { FEDREC_MSR, FEDREC_MSK };

struct fedrec_msr {
	char url[FEDREC_URL_MAX + 1]; /* https://host[:port]/path */
};

struct fedrec_msk {
	bool revoked; /* p= was empty */
	unsigned char key[FEDREC_KEY_LEN];
};

/* Parse one TXT record's text (its character-strings concatenated), len bytes. */
int fedrec_parse_msr(const char *txt, size_t len, struct fedrec_msr *rec_r, const char **error_r);
int fedrec_parse_msk(const char *txt, size_t len, struct fedrec_msk *rec_r, const char **error_r);

/* Of n TXT records, the index of the one that starts with kind's version tag; -1 and
 *error_r when there is none or more than one. */
int fedrec_select(enum fedrec_kind kind, const char *const *txts, const size_t *lens, size_t n,
                  const char **error_r);

/* The record's text into buf (FEDREC_TXT_MAX + 1 bytes); -1 when url is not valid. */
int fedrec_format_msr(const char *url, char *buf, const char **error_r);
void fedrec_format_msk(const struct fedrec_msk *rec, char *buf);

/* Owner names into buf (FEDREC_NAME_MAX bytes): "_msgstatus.<domain>" and
   "<selector>._msgstatus-key.<domain>"; -1 when a selector or domain is not valid. */
int fedrec_msr_name(const char *domain, char *buf, const char **error_r);
int fedrec_msk_name(const char *selector, const char *domain, char *buf, const char **error_r);

/* A key id as signatures carry it ("<selector>._msgstatus-key.<domain>") into selector
   (FEDREC_SELECTOR_MAX + 1) and domain (FEDREC_DOMAIN_MAX + 1); -1 when malformed. */
int fedrec_keyid_split(const char *keyid, size_t len, char *selector, char *domain,
                       const char **error_r);

/* true if len bytes at s are a domain as the federation writes it: lowercase LDH labels
   of 1..63 bytes, 1..253 bytes in all, no final dot. */
bool fedrec_domain_valid(const char *s, size_t len);

#endif
