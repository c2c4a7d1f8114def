/*
 * fedrec - the federation's DNS TXT records: parsers and printers (see fedrec.h).
 */
#include "fedrec.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define TAG_MAX   16
#define TAGS_MAX  16
#define KEY_B64   44 /* base64 of 32 bytes, with its one '=' */
#define KEYID_MID "._msgstatus-key."

struct tag {
	char name[TAG_MAX + 1];
	const char *value;
	size_t len;
};

bool
fedrec_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > FEDREC_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		           (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static size_t
skip_wsp(const char *s, size_t len, size_t i)
{
	while (i < len && is_wsp(s[i]))
		i++;
	return i;
}

/* Checks 1 to 3: the whole record's grammar into tags[] (the version tag first). */
static int
parse_tags(const char *s, size_t len, const char *version, struct tag *tags, size_t *n_r,
           const char **error_r)
{
	size_t i = 0, n = 0, vlen = strlen(version);

	if (len > FEDREC_TXT_MAX) {
		*error_r = "record longer than 1024 bytes";
		return -1;
	}
	for (size_t k = 0; k < len; k++) {
		if (!is_wsp(s[k]) && (s[k] < '!' || s[k] > '~')) {
			*error_r = "record has a byte that is not printable ASCII";
			return -1;
		}
	}
	if (len < vlen || memcmp(s, version, vlen) != 0 ||
	    (len > vlen && !is_wsp(s[vlen]) && s[vlen] != ';')) {
		*error_r = "record does not start with its version tag";
		return -1;
	}
	i = vlen;
	for (;;) {
		size_t start;

		i = skip_wsp(s, len, i);
		if (i == len)
			break;
		if (s[i] != ';') {
			*error_r = "record: ';' expected between tags";
			return -1;
		}
		i = skip_wsp(s, len, i + 1);
		if (i == len)
			break; /* a final ';' is allowed */
		start = i;
		if (!(s[i] >= 'a' && s[i] <= 'z')) {
			*error_r = "record: tag name expected";
			return -1;
		}
		while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		                   s[i] == '_'))
			i++;
		if (i - start > TAG_MAX) {
			*error_r = "record: tag name longer than 16";
			return -1;
		}
		if (n == TAGS_MAX) {
			*error_r = "record: more than 16 tags";
			return -1;
		}
		memcpy(tags[n].name, s + start, i - start);
		tags[n].name[i - start] = '\0';
		i = skip_wsp(s, len, i);
		if (i == len || s[i] != '=') {
			*error_r = "record: '=' expected after a tag name";
			return -1;
		}
		i = skip_wsp(s, len, i + 1);
		tags[n].value = s + i;
		while (i < len && s[i] != ';' && !is_wsp(s[i]))
			i++;
		tags[n].len = (size_t)(s + i - tags[n].value);
		for (size_t k = 0; k <= n; k++) {
			/* tags[] holds the tags after v=; a second v= repeats it too */
			if (k < n ? strcmp(tags[k].name, tags[n].name) == 0
			          : strcmp(tags[n].name, "v") == 0) {
				*error_r = "record: a tag appears twice";
				return -1;
			}
		}
		n++;
	}
	*n_r = n;
	return 0;
}

static const struct tag *
find(const struct tag *tags, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(tags[i].name, name) == 0)
			return &tags[i];
	}
	return NULL;
}

/* https://host[:port]/path, host a valid domain, port 1..65535, path of RFC 3986 pchars
   and '/' (no query, fragment or user info). */
static bool
url_valid(const char *s, size_t len)
{
	static const char scheme[] = "https://";
	size_t i = sizeof(scheme) - 1, host, port = 0, digits = 0;

	if (len > FEDREC_URL_MAX || len < i || memcmp(s, scheme, i) != 0)
		return false;
	host = i;
	while (i < len && s[i] != ':' && s[i] != '/')
		i++;
	if (!fedrec_domain_valid(s + host, i - host))
		return false;
	if (i < len && s[i] == ':') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			port = port * 10 + (size_t)(s[i] - '0');
			if (++digits > 5)
				return false;
		}
		if (digits == 0 || port == 0 || port > 65535 ||
		    (digits > 1 && s[i - digits] == '0'))
			return false;
	}
	if (i == len || s[i] != '/')
		return false;
	for (; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~!$&'()*+,=:@/%", c) != NULL) ||
		    c == '\0')
			return false;
		if (c == '%' && (i + 2 >= len || !strchr("0123456789ABCDEFabcdef", s[i + 1]) ||
		                 !strchr("0123456789ABCDEFabcdef", s[i + 2]) || s[i + 1] == '\0' ||
		                 s[i + 2] == '\0'))
			return false;
	}
	return true;
}

int
fedrec_parse_msr(const char *txt, size_t len, struct fedrec_msr *rec_r, const char **error_r)
{
	struct tag tags[TAGS_MAX];
	const struct tag *u;
	size_t n;

	if (parse_tags(txt, len, "v=MSR1", tags, &n, error_r) < 0)
		return -1;
	if ((u = find(tags, n, "u")) == NULL) {
		*error_r = "MSR1 record: no u= (report endpoint)";
		return -1;
	}
	if (!url_valid(u->value, u->len)) {
		*error_r =
		        "MSR1 record: u= is not an https URL of the form https://host[:port]/path";
		return -1;
	}
	memcpy(rec_r->url, u->value, u->len);
	rec_r->url[u->len] = '\0';
	return 0;
}

int
fedrec_parse_msk(const char *txt, size_t len, struct fedrec_msk *rec_r, const char **error_r)
{
	struct tag tags[TAGS_MAX];
	const struct tag *k, *p;
	unsigned char raw[KEY_B64 / 4 * 3];
	char again[KEY_B64 + 1];
	size_t n;

	if (parse_tags(txt, len, "v=MSK1", tags, &n, error_r) < 0)
		return -1;
	if ((k = find(tags, n, "k")) == NULL || k->len != 7 ||
	    memcmp(k->value, "ed25519", 7) != 0) {
		*error_r = "MSK1 record: k= is not ed25519";
		return -1;
	}
	if ((p = find(tags, n, "p")) == NULL) {
		*error_r = "MSK1 record: no p= (public key)";
		return -1;
	}
	memset(rec_r, 0, sizeof(*rec_r));
	if (p->len == 0) {
		rec_r->revoked = true;
		return 0;
	}
	/* Canonical base64 only: decode, re-encode, compare. */
	if (p->len != KEY_B64 ||
	    EVP_DecodeBlock(raw, (const unsigned char *)p->value, KEY_B64) != (int)sizeof(raw) ||
	    EVP_EncodeBlock((unsigned char *)again, raw, FEDREC_KEY_LEN) != KEY_B64 ||
	    memcmp(again, p->value, KEY_B64) != 0) {
		*error_r = "MSK1 record: p= is not the base64 of a 32-byte key";
		return -1;
	}
	memcpy(rec_r->key, raw, FEDREC_KEY_LEN);
	return 0;
}

int
fedrec_select(enum fedrec_kind kind, const char *const *txts, const size_t *lens, size_t n,
              const char **error_r)
{
	const char *version = kind == FEDREC_MSR ? "v=MSR1" : "v=MSK1";
	size_t vlen = strlen(version);
	int found = -1;

	for (size_t i = 0; i < n; i++) {
		if (lens[i] >= vlen && memcmp(txts[i], version, vlen) == 0 &&
		    (lens[i] == vlen || is_wsp(txts[i][vlen]) || txts[i][vlen] == ';')) {
			if (found >= 0) {
				*error_r = "more than one record with the version tag";
				return -1;
			}
			found = (int)i;
		}
	}
	if (found < 0)
		*error_r = "no record with the version tag";
	return found;
}

int
fedrec_format_msr(const char *url, char *buf, const char **error_r)
{
	if (!url_valid(url, strlen(url))) {
		*error_r =
		        "report endpoint is not an https URL of the form https://host[:port]/path";
		return -1;
	}
	snprintf(buf, FEDREC_TXT_MAX + 1, "v=MSR1; u=%s", url);
	return 0;
}

void
fedrec_format_msk(const struct fedrec_msk *rec, char *buf)
{
	char b64[KEY_B64 + 1] = "";

	if (!rec->revoked)
		EVP_EncodeBlock((unsigned char *)b64, rec->key, FEDREC_KEY_LEN);
	snprintf(buf, FEDREC_TXT_MAX + 1, "v=MSK1; k=ed25519; p=%s", b64);
}

static bool
selector_valid(const char *s, size_t len)
{
	/* one LDH label, lowercase */
	return len <= FEDREC_SELECTOR_MAX && memchr(s, '.', len) == NULL &&
	       fedrec_domain_valid(s, len);
}

int
fedrec_msr_name(const char *domain, char *buf, const char **error_r)
{
	if (!fedrec_domain_valid(domain, strlen(domain))) {
		*error_r = "not a valid domain";
		return -1;
	}
	snprintf(buf, FEDREC_NAME_MAX, "_msgstatus.%s", domain);
	return 0;
}

int
fedrec_msk_name(const char *selector, const char *domain, char *buf, const char **error_r)
{
	if (!selector_valid(selector, strlen(selector))) {
		*error_r = "not a valid selector";
		return -1;
	}
	if (!fedrec_domain_valid(domain, strlen(domain))) {
		*error_r = "not a valid domain";
		return -1;
	}
	snprintf(buf, FEDREC_NAME_MAX, "%s" KEYID_MID "%s", selector, domain);
	return 0;
}

int
fedrec_keyid_split(const char *keyid, size_t len, char *selector, char *domain,
                   const char **error_r)
{
	size_t mid = sizeof(KEYID_MID) - 1, sel = 0;

	while (sel < len && keyid[sel] != '.')
		sel++;
	if (!selector_valid(keyid, sel) || len - sel < mid ||
	    memcmp(keyid + sel, KEYID_MID, mid) != 0 ||
	    !fedrec_domain_valid(keyid + sel + mid, len - sel - mid)) {
		*error_r = "key id is not <selector>._msgstatus-key.<domain>";
		return -1;
	}
	memcpy(selector, keyid, sel);
	selector[sel] = '\0';
	memcpy(domain, keyid + sel + mid, len - sel - mid);
	domain[len - sel - mid] = '\0';
	return 0;
}
