/*
 * token - API tokens, signed tokens and the shared secret. See token.h.
 *
 * SECURITY
 *	A signed token is checked in this order: size and shape (three non-empty base64url
 *	parts), the header (alg HS256 only), the signature (constant time), and only then the
 *	claims. Decoded JSON is parsed strictly, with bounded depth, and must be an object;
 *	the claims must be valid UTF-8.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base32.h"
#include "jsonparse.h"
#include "msg.h"
#include "mymalloc.h"
#include "randid.h"
#include "utf8.h"

#define JSON_DEPTH    8
#define TIME_MAX_S    253402300799LL /* 9999-12-31T23:59:59Z */
#define SIG_B64_LEN   43             /* base64url of 32 bytes */
#define API_RAW_BYTES 20             /* 160 bits: 32 base32 characters */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* --- API tokens ---------------------------------------------------------------------- */

void
token_api_new(char *buf)
{
	unsigned char raw[API_RAW_BYTES];
	size_t o = sizeof(TOKEN_API_PREFIX) - 1;

	randid_bytes(raw, sizeof(raw));
	memcpy(buf, TOKEN_API_PREFIX, o);
	base32_encode(buf + o, TOKEN_API_LEN - o, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
}

bool
token_api_valid(const char *s)
{
	size_t plen = sizeof(TOKEN_API_PREFIX) - 1;

	if (strncmp(s, TOKEN_API_PREFIX, plen) != 0 ||
	    strnlen(s, TOKEN_API_LEN + 1) != TOKEN_API_LEN)
		return false;
	for (size_t i = plen; i < TOKEN_API_LEN; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
			return false;
	return true;
}

void
token_sha256(const void *data, size_t len, unsigned char hash[TOKEN_HASH_LEN])
{
	if (SHA256(data, len, hash) == NULL)
		msg_panic("SHA256 failed");
}

/* --- base64url ----------------------------------------------------------------------- */

long
token_b64url_encode(const void *data, size_t n, char *out, size_t outsize)
{
	const unsigned char *p = data;
	size_t o = 0, need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);

	if (need >= outsize)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	return (long)o;
}

static int
b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
token_b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsize)
{
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > outsize)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(s[i]);
		if (v < 0)
			return -1;
		acc = ((acc << 6) | (unsigned)v) & 0xffff;
		bits += 6;
		if (bits >= 8) {
			out[o++] = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* the bits left over must be zero: one encoding per byte string */
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)o;
}

/* --- users --------------------------------------------------------------------------- */

char *
token_user(const char *s, size_t len, const char **error_r)
{
	char *user;

	if (len == 0) {
		*error_r = "the user is empty";
		return NULL;
	}
	if (len > TOKEN_USER_MAX) {
		*error_r = errfmt("the user is longer than %d bytes", TOKEN_USER_MAX);
		return NULL;
	}
	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t n = utf8_seq_len(s + i, len - i);
		if (n == 0) {
			*error_r = "the user is not valid UTF-8";
			return NULL;
		}
		/* C0 controls, DEL and the C1 controls U+0080..U+009F */
		if ((n == 1 && (u[0] < 0x20 || u[0] == 0x7f)) ||
		    (n == 2 && u[0] == 0xc2 && u[1] < 0xa0)) {
			*error_r = "the user contains a control character";
			return NULL;
		}
		i += n;
	}
	user = mymalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		user[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	user[len] = '\0';
	return user;
}

/* --- signed tokens ------------------------------------------------------------------- */

/* Parse len bytes of decoded JSON that must be an object; NULL if not. */
static struct json_object *
parse_object(const unsigned char *data, size_t len)
{
	const char *error;

	if (len == 0 || memchr(data, '\0', len) != NULL)
		return NULL;
	/* whitespace may follow */
	return jsonparse_object((const char *)data, len, JSON_DEPTH, false, &error);
}

/* A NumericDate claim in ms: 0 if present and valid, 1 if absent, -1 if not a date. */
static int
get_date(struct json_object *claims, const char *name, int64_t *ms_r)
{
	struct json_object *v;

	if (!json_object_object_get_ex(claims, name, &v))
		return 1;
	if (json_object_is_type(v, json_type_int)) {
		int64_t s = json_object_get_int64(v);
		if (s < 0 || s > TIME_MAX_S)
			return -1;
		*ms_r = s * 1000;
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (!isfinite(d) || d < 0 || d > (double)TIME_MAX_S)
			return -1;
		*ms_r = (int64_t)(d * 1000.0); /* d >= 0: truncation is floor */
		return 0;
	}
	return -1;
}

/* The claims of a token whose signature has been checked. */
static int
check_claims(struct json_object *claims, int64_t now_ms, int64_t max_lifetime_ms,
             struct token_claims *out, const char **error_r)
{
	struct json_object *sub;
	int64_t exp_ms, iat_ms, nbf_ms;
	int rc;

	if ((rc = get_date(claims, "exp", &exp_ms)) != 0) {
		*error_r = rc > 0 ? "no \"exp\" claim" : "\"exp\" is not a date";
		return -1;
	}
	if ((rc = get_date(claims, "iat", &iat_ms)) != 0) {
		*error_r = rc > 0 ? "no \"iat\" claim" : "\"iat\" is not a date";
		return -1;
	}
	if (exp_ms <= now_ms) {
		*error_r = "the token has expired";
		return -1;
	}
	if (iat_ms > now_ms + TOKEN_SKEW_MS) {
		*error_r = "the token is issued in the future (\"iat\")";
		return -1;
	}
	if ((rc = get_date(claims, "nbf", &nbf_ms)) < 0) {
		*error_r = "\"nbf\" is not a date";
		return -1;
	}
	if (rc == 0 && nbf_ms > now_ms + TOKEN_SKEW_MS) {
		*error_r = "the token is not valid yet (\"nbf\")";
		return -1;
	}
	if (exp_ms <= iat_ms) {
		*error_r = "\"exp\" is not after \"iat\"";
		return -1;
	}
	if (exp_ms - iat_ms > max_lifetime_ms) {
		*error_r = "the token lives longer than auth_token_max_lifetime";
		return -1;
	}
	if (!json_object_object_get_ex(claims, "sub", &sub)) {
		*error_r = "no \"sub\" claim";
		return -1;
	}
	if (!json_object_is_type(sub, json_type_string)) {
		*error_r = "\"sub\" is not a string";
		return -1;
	}
	if ((out->user = token_user(json_object_get_string(sub),
	                            (size_t)json_object_get_string_len(sub), error_r)) == NULL) {
		*error_r = errfmt("\"sub\": %s", *error_r);
		return -1;
	}
	out->iat_ms = iat_ms;
	out->expires_ms = exp_ms;
	return 0;
}

static int
check_header(struct json_object *head, const char **error_r)
{
	struct json_object *v;

	if (!json_object_object_get_ex(head, "alg", &v) ||
	    !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) != 5 ||
	    strcmp(json_object_get_string(v), "HS256") != 0) {
		*error_r = "the algorithm (\"alg\") is not HS256";
		return -1;
	}
	if (json_object_object_get_ex(head, "typ", &v) &&
	    (!json_object_is_type(v, json_type_string) ||
	     strcasecmp(json_object_get_string(v), "JWT") != 0)) {
		*error_r = "the type (\"typ\") is not JWT";
		return -1;
	}
	if (json_object_object_get_ex(head, "crit", &v)) {
		*error_r = "critical header extensions (\"crit\") are not supported";
		return -1;
	}
	return 0;
}

int
token_jwt_verify(const char *jwt, const unsigned char *key, size_t keylen, int64_t now_ms,
                 int64_t max_lifetime_ms, struct token_claims *claims_r, const char **error_r)
{
	size_t n = strnlen(jwt, TOKEN_MAX + 1), hlen, plen, slen;
	const char *dot1, *dot2, *payload, *sig;
	unsigned char *buf = NULL, mac[EVP_MAX_MD_SIZE], want[TOKEN_HASH_LEN + 1];
	unsigned maclen = 0;
	struct json_object *head = NULL, *claims = NULL;
	long len;
	int rc = -1;

	memset(claims_r, 0, sizeof(*claims_r));
	if (n > TOKEN_MAX) {
		*error_r = "the token is too long";
		return -1;
	}
	if ((dot1 = memchr(jwt, '.', n)) == NULL ||
	    (dot2 = memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - jwt))) == NULL ||
	    memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - jwt)) != NULL) {
		*error_r = "a signed token has three parts separated by dots";
		return -1;
	}
	payload = dot1 + 1;
	sig = dot2 + 1;
	hlen = (size_t)(dot1 - jwt);
	plen = (size_t)(dot2 - payload);
	slen = n - (size_t)(sig - jwt);
	if (hlen == 0 || plen == 0 || slen == 0) {
		*error_r = "a part of the token is empty";
		return -1;
	}
	buf = mymalloc(n);

	/* the header: which algorithm */
	if ((len = token_b64url_decode(jwt, hlen, buf, n)) < 0) {
		*error_r = "the header is not base64url";
		goto out;
	}
	if ((head = parse_object(buf, (size_t)len)) == NULL) {
		*error_r = "the header is not a JSON object";
		goto out;
	}
	if (check_header(head, error_r) < 0)
		goto out;

	/* the signature, before anything else is believed */
	if (slen != SIG_B64_LEN ||
	    token_b64url_decode(sig, slen, want, sizeof(want)) != TOKEN_HASH_LEN) {
		*error_r = "the signature is not 32 bytes of base64url";
		goto out;
	}
	if (keylen > (size_t)INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)jwt, (size_t)(dot2 - jwt),
	         mac, &maclen) == NULL ||
	    maclen != TOKEN_HASH_LEN)
		msg_panic("HMAC-SHA256 failed");
	if (CRYPTO_memcmp(mac, want, TOKEN_HASH_LEN) != 0) {
		*error_r = "bad signature";
		goto out;
	}

	/* the claims */
	if ((len = token_b64url_decode(payload, plen, buf, n)) < 0) {
		*error_r = "the payload is not base64url";
		goto out;
	}
	/* checked here, not left to json-c: 0.16 lets malformed UTF-8 through, 0.18 refuses it
	   as "not JSON" */
	if (!utf8_valid((const char *)buf, (size_t)len)) {
		*error_r = "the payload is not valid UTF-8";
		goto out;
	}
	if ((claims = parse_object(buf, (size_t)len)) == NULL) {
		*error_r = "the payload is not a JSON object";
		goto out;
	}
	rc = check_claims(claims, now_ms, max_lifetime_ms, claims_r, error_r);
out:
	json_object_put(head);
	json_object_put(claims);
	OPENSSL_cleanse(mac, sizeof(mac));
	free(buf);
	return rc;
}

void
token_claims_free(struct token_claims *claims)
{
	free(claims->user);
	claims->user = NULL;
}

char *
token_jwt_sign(const char *user, int64_t iat_s, int64_t exp_s, const unsigned char *key,
               size_t keylen)
{
	static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	struct json_object *claims = json_object_new_object();
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	const char *body;
	size_t bodylen, size;
	char *out;
	long o, k;

	json_object_object_add(claims, "sub", json_object_new_string(user));
	json_object_object_add(claims, "iat", json_object_new_int64(iat_s));
	json_object_object_add(claims, "exp", json_object_new_int64(exp_s));
	body = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN |
	                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
	bodylen = strlen(body);
	size = (sizeof(head) + bodylen + TOKEN_HASH_LEN) / 3 * 4 + 16;
	out = mymalloc(size);
	if ((o = token_b64url_encode(head, sizeof(head) - 1, out, size)) < 0)
		msg_panic("token_jwt_sign: buffer too small");
	out[o++] = '.';
	if ((k = token_b64url_encode(body, bodylen, out + o, size - (size_t)o)) < 0)
		msg_panic("token_jwt_sign: buffer too small");
	json_object_put(claims);
	o += k;
	if (keylen > (size_t)INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)out, (size_t)o, mac,
	         &maclen) == NULL ||
	    maclen != TOKEN_HASH_LEN)
		msg_panic("HMAC-SHA256 failed");
	out[o++] = '.';
	if ((k = token_b64url_encode(mac, TOKEN_HASH_LEN, out + o, size - (size_t)o)) < 0)
		msg_panic("token_jwt_sign: buffer too small");
	OPENSSL_cleanse(mac, sizeof(mac));
	return out;
}

/* --- the shared secret --------------------------------------------------------------- */

int
token_secret_load(const char *setting, const char *path, unsigned char **secret_r, size_t *len_r,
                  const char **error_r)
{
	unsigned char *buf;
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		*error_r = errfmt("%s %s: %s", setting, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = errfmt("%s %s: not a regular file", setting, path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 007) != 0) {
		*error_r = errfmt("%s %s is accessible to others (mode %04o): "
		                  "the secret would not be secret; chmod o-rwx it",
		                  setting, path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	buf = mymalloc(TOKEN_SECRET_MAX + 3);
	while (len < TOKEN_SECRET_MAX + 3) {
		got = read(fd, buf + len, TOKEN_SECRET_MAX + 3 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*error_r = errfmt("%s %s: %s", setting, path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	fd = -1;
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	if (len > TOKEN_SECRET_MAX) {
		*error_r = errfmt("%s %s: the secret is longer than %d bytes", setting, path,
		                  TOKEN_SECRET_MAX);
		goto fail;
	}
	if (len < TOKEN_SECRET_MIN) {
		*error_r = errfmt("%s %s: the secret is shorter than %d bytes "
		                  "(make one with: openssl rand -base64 48)",
		                  setting, path, TOKEN_SECRET_MIN);
		goto fail;
	}
	*secret_r = buf;
	*len_r = len;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(buf, TOKEN_SECRET_MAX + 3);
	free(buf);
	return -1;
}

void
token_secret_free(unsigned char **secret, size_t len)
{
	if (*secret == NULL)
		return;
	OPENSSL_cleanse(*secret, len);
	free(*secret);
	*secret = NULL;
}
