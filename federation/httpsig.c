/*
 * httpsig - HTTP Message Signatures subset, Ed25519, Content-Digest (see httpsig.h).
 */
#include "httpsig.h"

#include <stdio.h>
#include <string.h>

#define SIG_B64 88 /* base64 of 64 bytes */

static const char *const derived[] = {"@method", "@target-uri", "@authority", "@path"};

static bool
is_lcalpha(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A field name (RFC 9110 token, lowercase) or one of the derived components. */
static bool
component_valid(const char *s, size_t len)
{
	if (len == 0 || len > HTTPSIG_NAME_MAX)
		return false;
	if (s[0] == '@') {
		for (size_t i = 0; i < sizeof(derived) / sizeof(derived[0]); i++) {
			if (strlen(derived[i]) == len && memcmp(derived[i], s, len) == 0)
				return true;
		}
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_lcalpha(s[i]) && !is_digit(s[i]) && strchr("!#$%&'*+.^_`|~-", s[i]) == NULL)
			return false;
	}
	return true;
}

/* RFC 8941 key: lcalpha / "*" first, then lcalpha / DIGIT / "_" / "-" / "." / "*". */
static size_t
parse_key(const char *s, size_t len, size_t i, char *out, size_t max)
{
	size_t start = i;

	if (i >= len || !(is_lcalpha(s[i]) || s[i] == '*'))
		return 0;
	while (i < len && (is_lcalpha(s[i]) || is_digit(s[i]) || strchr("_-.*", s[i]) != NULL) &&
	       s[i] != '\0')
		i++;
	if (i - start > max)
		return 0;
	memcpy(out, s + start, i - start);
	out[i - start] = '\0';
	return i - start;
}

/* RFC 8941 sf-string without escapes (a backslash is refused): returns the index after
   the closing quote, 0 on error. */
static size_t
parse_string(const char *s, size_t len, size_t i, char *out, size_t max)
{
	size_t start;

	if (i >= len || s[i] != '"')
		return 0;
	start = ++i;
	while (i < len && s[i] != '"') {
		if (s[i] < ' ' || s[i] > '~' || s[i] == '\\')
			return 0;
		i++;
	}
	if (i == len || i - start > max)
		return 0;
	memcpy(out, s + start, i - start);
	out[i - start] = '\0';
	return i + 1;
}

static const char *const param_names[] = {"created", "expires", "nonce", "alg", "keyid", "tag"};

static char *
param_string(struct httpsig_params *p, const char *name)
{
	return strcmp(name, "nonce") == 0   ? p->nonce
	       : strcmp(name, "alg") == 0   ? p->alg
	       : strcmp(name, "keyid") == 0 ? p->keyid
	                                    : p->tag;
}

static int
parse_params(const char *s, size_t len, size_t i, struct httpsig_params *p, const char **error_r)
{
	while (i < len) {
		char name[16];
		size_t n, k;
		const char *known = NULL;

		if (s[i] != ';' || (n = parse_key(s, len, i + 1, name, sizeof(name) - 1)) == 0) {
			*error_r = "Signature-Input: parameter expected";
			return -1;
		}
		i += 1 + n;
		for (k = 0; k < sizeof(param_names) / sizeof(param_names[0]); k++) {
			if (strcmp(name, param_names[k]) == 0)
				known = param_names[k];
		}
		if (known == NULL) {
			*error_r = "Signature-Input: unknown parameter";
			return -1;
		}
		for (k = 0; k < p->nparams; k++) {
			if (p->order[k] == known) {
				*error_r = "Signature-Input: repeated parameter";
				return -1;
			}
		}
		if (i >= len || s[i] != '=') {
			*error_r = "Signature-Input: parameter without a value";
			return -1;
		}
		i++;
		if (known == param_names[0] || known == param_names[1]) {
			int64_t v = 0;
			size_t digits = 0;

			while (i < len && is_digit(s[i])) {
				if (++digits > 15) {
					*error_r = "Signature-Input: integer longer than 15 digits";
					return -1;
				}
				v = v * 10 + (s[i++] - '0');
			}
			if (digits == 0) {
				*error_r = "Signature-Input: created/expires is not a non-negative "
				           "integer";
				return -1;
			}
			if (known == param_names[0]) {
				p->created = v;
				p->has_created = true;
			} else {
				p->expires = v;
				p->has_expires = true;
			}
		} else {
			size_t next =
			        parse_string(s, len, i, param_string(p, known), HTTPSIG_PARAM_MAX);

			if (next == 0) {
				*error_r = "Signature-Input: bad string parameter";
				return -1;
			}
			i = next;
		}
		p->order[p->nparams++] = known;
	}
	return 0;
}

void
httpsig_params_serialize(const struct httpsig_params *p, struct mbuf *out)
{
	mbuf_putc(out, '(');
	for (size_t i = 0; i < p->ncomponents; i++) {
		if (i > 0)
			mbuf_putc(out, ' ');
		mbuf_printf(out, "\"%s\"", p->components[i]);
	}
	mbuf_putc(out, ')');
	for (size_t i = 0; i < p->nparams; i++) {
		const char *name = p->order[i];

		mbuf_printf(out, ";%s=", name);
		if (strcmp(name, "created") == 0)
			mbuf_putll(out, p->created);
		else if (strcmp(name, "expires") == 0)
			mbuf_putll(out, p->expires);
		else
			mbuf_printf(out, "\"%s\"", param_string((struct httpsig_params *)p, name));
	}
}

int
httpsig_parse(const char *input, size_t input_len, const char *signature, size_t sig_len,
              struct httpsig_params *p, unsigned char sig_r[HTTPSIG_SIG_LEN], const char **error_r)
{
	struct mbuf again = MBUF_INIT;
	char label[HTTPSIG_NAME_MAX + 1];
	unsigned char raw[SIG_B64 / 4 * 3];
	char b64[SIG_B64 + 1];
	size_t i, n, start;
	int ret;

	memset(p, 0, sizeof(*p));
	if (input_len > HTTPSIG_FIELD_MAX || sig_len > HTTPSIG_FIELD_MAX) {
		*error_r = "Signature-Input or Signature longer than 4096 bytes";
		return -1;
	}
	/* Signature-Input: label=("c1" "c2");params */
	if ((n = parse_key(input, input_len, 0, p->label, HTTPSIG_NAME_MAX)) == 0 ||
	    n >= input_len || input[n] != '=' || n + 1 >= input_len || input[n + 1] != '(') {
		*error_r = "Signature-Input: not one label=(...) member";
		return -1;
	}
	start = n + 1;
	i = start + 1;
	for (;;) {
		size_t next;

		while (i < input_len && input[i] == ' ')
			i++;
		if (i < input_len && input[i] == ')')
			break;
		if (p->ncomponents == HTTPSIG_COMPONENTS_MAX) {
			*error_r = "Signature-Input: more than 12 components";
			return -1;
		}
		next = parse_string(input, input_len, i, p->components[p->ncomponents],
		                    HTTPSIG_NAME_MAX);
		if (next == 0 || !component_valid(p->components[p->ncomponents],
		                                  strlen(p->components[p->ncomponents]))) {
			*error_r = "Signature-Input: bad or unsupported component";
			return -1;
		}
		for (size_t k = 0; k < p->ncomponents; k++) {
			if (strcmp(p->components[k], p->components[p->ncomponents]) == 0) {
				*error_r = "Signature-Input: repeated component";
				return -1;
			}
		}
		p->ncomponents++;
		i = next;
		if (i < input_len && input[i] != ' ' && input[i] != ')') {
			*error_r = "Signature-Input: bad inner list";
			return -1;
		}
	}
	if (parse_params(input, input_len, i + 1, p, error_r) < 0)
		return -1;
	/* canonical serialization only */
	httpsig_params_serialize(p, &again);
	ret = again.len == input_len - start && memcmp(again.data, input + start, again.len) == 0;
	mbuf_free(&again);
	if (!ret) {
		*error_r = "Signature-Input: not in canonical serialization (one member, single "
		           "spaces, no white space around it)";
		return -1;
	}
	/* Signature: label=:base64: */
	if ((n = parse_key(signature, sig_len, 0, label, HTTPSIG_NAME_MAX)) == 0 ||
	    strcmp(label, p->label) != 0 || sig_len != n + 1 + 1 + SIG_B64 + 1 ||
	    signature[n] != '=' || signature[n + 1] != ':' || signature[sig_len - 1] != ':') {
		*error_r = "Signature: not one member label=:<64 bytes in base64>: with the label "
		           "of Signature-Input";
		return -1;
	}
	if (EVP_DecodeBlock(raw, (const unsigned char *)signature + n + 2, SIG_B64) !=
	            (int)sizeof(raw) ||
	    EVP_EncodeBlock((unsigned char *)b64, raw, HTTPSIG_SIG_LEN) != SIG_B64 ||
	    memcmp(b64, signature + n + 2, SIG_B64) != 0) {
		*error_r = "Signature: not canonical base64 of 64 bytes";
		return -1;
	}
	memcpy(sig_r, raw, HTTPSIG_SIG_LEN);
	return 0;
}

int
httpsig_base(const struct httpsig_params *p, const struct httpsig_request *req, struct mbuf *out,
             const char **error_r)
{
	for (size_t i = 0; i < p->ncomponents; i++) {
		const char *name = p->components[i], *value;
		size_t len;

		if (strcmp(name, "@method") == 0)
			value = req->method;
		else if (strcmp(name, "@target-uri") == 0)
			value = req->target_uri;
		else if (strcmp(name, "@authority") == 0)
			value = req->authority;
		else if (strcmp(name, "@path") == 0)
			value = req->path;
		else
			value = req->field != NULL ? req->field(req->ctx, name) : NULL;
		if (value == NULL) {
			*error_r = "a covered component is absent from the request";
			return -1;
		}
		while (*value == ' ' || *value == '\t')
			value++;
		len = strlen(value);
		while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
			len--;
		for (size_t k = 0; k < len; k++) {
			if (value[k] == '\r' || value[k] == '\n') {
				*error_r = "a covered component has a line break";
				return -1;
			}
		}
		mbuf_printf(out, "\"%s\": ", name);
		mbuf_append(out, value, len);
		mbuf_putc(out, '\n');
	}
	mbuf_puts(out, "\"@signature-params\": ");
	httpsig_params_serialize(p, out);
	return 0;
}

void
httpsig_content_digest(const unsigned char *body, size_t len, char *buf)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	memcpy(buf, "sha-256=:", 9);
	if (EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		buf[9] = '\0'; /* matches no field: the check fails closed */
		return;
	}
	EVP_EncodeBlock((unsigned char *)buf + 9, md, 32);
	memcpy(buf + 9 + 44, ":", 2);
}

static int
check_profile(const struct httpsig_params *p, const struct httpsig_policy *pol,
              const char **error_r)
{
	if (pol->label != NULL && strcmp(pol->label, p->label) != 0) {
		*error_r = "signature label is not the one expected";
		return -1;
	}
	if (p->alg[0] != '\0' ? strcmp(p->alg, "ed25519") != 0 : pol->require_alg) {
		*error_r = "signature alg is not ed25519";
		return -1;
	}
	for (size_t i = 0; i < pol->nrequired; i++) {
		bool covered = false;

		for (size_t k = 0; k < p->ncomponents; k++)
			covered = covered ||
			          strcmp(p->components[k], pol->required_components[i]) == 0;
		if (!covered) {
			*error_r = "signature does not cover a required component";
			return -1;
		}
	}
	if (!p->has_created || p->keyid[0] == '\0' || (pol->require_expires && !p->has_expires) ||
	    (pol->require_nonce && p->nonce[0] == '\0')) {
		*error_r = "signature lacks a required parameter (created, expires, keyid, nonce)";
		return -1;
	}
	return 0;
}

static int
ed25519_verify(EVP_PKEY *key, const unsigned char *sig, const struct mbuf *base,
               const char **error_r)
{
	EVP_MD_CTX *ctx;
	int ok;

	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		*error_r = "the key is not an Ed25519 key";
		return -1;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	     EVP_DigestVerify(ctx, sig, HTTPSIG_SIG_LEN, (const unsigned char *)base->data,
	                      base->len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*error_r = "the signature does not verify";
		return -1;
	}
	return 0;
}

int
httpsig_verify(const struct httpsig_request *req, const char *input, size_t input_len,
               const char *signature, size_t sig_len, const struct httpsig_policy *pol,
               httpsig_key_fn *key_fn, httpsig_replay_fn *replay, void *ctx,
               struct httpsig_params *p, const char **error_r)
{
	unsigned char sig[HTTPSIG_SIG_LEN];
	struct mbuf base = MBUF_INIT;
	EVP_PKEY *key = NULL;
	int ret;

	/* 1, 2 */
	if (httpsig_parse(input, input_len, signature, sig_len, p, sig, error_r) < 0 ||
	    check_profile(p, pol, error_r) < 0)
		return -1;
	/* 3 */
	if (key_fn(ctx, p->keyid, &key, error_r) < 0)
		return -1;
	/* 4 */
	ret = httpsig_base(p, req, &base, error_r);
	if (ret == 0)
		ret = ed25519_verify(key, sig, &base, error_r);
	EVP_PKEY_free(key);
	mbuf_free(&base);
	if (ret < 0)
		return -1;
	/* 5 */
	if (p->created > pol->now + pol->skew) {
		*error_r = "signature created in the future";
		return -1;
	}
	if (p->has_expires && p->expires <= pol->now) {
		*error_r = "signature expired";
		return -1;
	}
	if (pol->max_life > 0 && (!p->has_expires || p->expires < p->created ||
	                          p->expires - p->created > pol->max_life)) {
		*error_r = "signature lifetime longer than allowed";
		return -1;
	}
	if (replay != NULL && replay(ctx, p->keyid, p->nonce, p->expires, error_r) < 0)
		return -1;
	/* 6 */
	if (pol->body != NULL) {
		char digest[HTTPSIG_DIGEST_BUFSIZE];
		const char *field =
		        req->field != NULL ? req->field(req->ctx, "content-digest") : NULL;
		bool covered = false;

		for (size_t k = 0; k < p->ncomponents; k++)
			covered = covered || strcmp(p->components[k], "content-digest") == 0;
		httpsig_content_digest(pol->body, pol->body_len, digest);
		if (!covered || field == NULL || strcmp(field, digest) != 0) {
			*error_r = "Content-Digest does not match the body";
			return -1;
		}
	}
	return 0;
}

int
httpsig_sign(const struct httpsig_request *req, struct httpsig_params *p, EVP_PKEY *key,
             struct mbuf *input_r, struct mbuf *sig_r, const char **error_r)
{
	unsigned char sig[HTTPSIG_SIG_LEN];
	char b64[SIG_B64 + 1];
	size_t siglen = sizeof(sig);
	struct mbuf base = MBUF_INIT;
	EVP_MD_CTX *ctx;
	int ok;

	p->nparams = 0;
	if (p->has_created)
		p->order[p->nparams++] = param_names[0];
	if (p->has_expires)
		p->order[p->nparams++] = param_names[1];
	for (size_t k = 2; k < sizeof(param_names) / sizeof(param_names[0]); k++) {
		if (param_string(p, param_names[k])[0] != '\0')
			p->order[p->nparams++] = param_names[k];
	}
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		*error_r = "the key is not an Ed25519 key";
		return -1;
	}
	if (httpsig_base(p, req, &base, error_r) < 0) {
		mbuf_free(&base);
		return -1;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)base.data, base.len) == 1 &&
	     siglen == sizeof(sig);
	EVP_MD_CTX_free(ctx);
	mbuf_free(&base);
	if (!ok) {
		*error_r = "Ed25519 signing failed";
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)b64, sig, sizeof(sig));
	mbuf_printf(input_r, "%s=", p->label);
	httpsig_params_serialize(p, input_r);
	mbuf_printf(sig_r, "%s=:%s:", p->label, b64);
	return 0;
}
