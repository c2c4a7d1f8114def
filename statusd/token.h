/*
 * token - the bearer credentials of statusd's API, as pure functions: API tokens
 * ("mst_" + 32 base32 characters) and their SHA-256, signed tokens (JSON Web Tokens,
 * HS256) and the shared secret they are signed with. auth.c (statusd), statusctl and the
 * unit tests share this; it has no event loop, database or HTTP in it.
 *
 * DESIGN
 *	Stateless and thread-safe. Times are passed in (ms since the epoch) so that tests can
 *	pin them. Strings returned are malloc'd and freed by the caller.
 *
 * SECURITY
 *	Everything a token carries is untrusted: its length is bounded (TOKEN_MAX), base64url
 *	is decoded strictly (no padding, no stray characters, canonical trailing bits), the
 *	signature is compared in constant time (CRYPTO_memcmp) before the claims are read,
 *	only "alg":"HS256" is accepted (never "none", never another algorithm), and the
 *	user ("sub") must be a short, well-formed UTF-8 string without control characters.
 *	The secret file must not be readable by others.
 *
 * DIAGNOSTICS
 *	Functions return 0 or -1 with a short reason in *error_r, for the log only; the
 *	reason never quotes the token.
 */
#ifndef TOKEN_H
#define TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX        4096 /* longest token looked at (= AUTH_TOKEN_MAX) */
#define TOKEN_API_PREFIX "mst_"
#define TOKEN_API_LEN    36    /* "mst_" + 32 base32 characters: 160 random bits */
#define TOKEN_HASH_LEN   32    /* SHA-256 */
#define TOKEN_USER_MAX   320   /* bytes of a user name (an address: 64 + 1 + 255) */
#define TOKEN_SKEW_MS    60000 /* how far "iat" may lie in the future */
#define TOKEN_SECRET_MIN 32    /* bytes of shared secret at least */
#define TOKEN_SECRET_MAX 4096

/* A new API token into buf (TOKEN_API_LEN + 1 bytes), from getrandom(2). */
void token_api_new(char *buf);
/* Whether s looks like an API token (prefix, length and alphabet; no database check). */
bool token_api_valid(const char *s);
/* SHA-256 of len bytes at data. */
void token_sha256(const void *data, size_t len, unsigned char hash[TOKEN_HASH_LEN]);

/*
 * base64url without padding (RFC 4648 section 5). encode writes 4 * ceil(n / 3) bytes at
 * most plus a NUL into out (outsize) and returns the length, or -1 if out is too small.
 * decode accepts only the canonical form and returns the number of bytes written to out
 * (at most outsize), or -1.
 */
long token_b64url_encode(const void *data, size_t n, char *out, size_t outsize);
long token_b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsize);

/*
 * Check a user name: 1..TOKEN_USER_MAX bytes of UTF-8 without control characters.
 * Returns a lower-cased (ASCII) copy, or NULL with *error_r.
 */
char *token_user(const char *s, size_t len, const char **error_r);

/* What a verified signed token says. */
struct token_claims {
	char *user;         /* "sub", lower case; caller frees */
	int64_t iat_ms;     /* "iat" */
	int64_t expires_ms; /* "exp" */
};

/*
 * Verify a signed token at time now_ms: HS256 with key (keylen bytes); "typ" JWT or absent;
 * no "crit"; "exp" in the future; "iat" not more than TOKEN_SKEW_MS in the future; "nbf",
 * if present, passed (with the same skew); exp - iat positive and at most max_lifetime_ms;
 * "sub" a user (token_user). Returns 0 and fills *claims_r (free with token_claims_free),
 * or -1 with *error_r.
 */
int token_jwt_verify(const char *jwt, const unsigned char *key, size_t keylen, int64_t now_ms,
                     int64_t max_lifetime_ms, struct token_claims *claims_r, const char **error_r);
void token_claims_free(struct token_claims *claims);

/*
 * Mint a signed token for user (used as is) with "iat" iat_s and "exp" exp_s (seconds),
 * as a webmail backend would. Returns it (caller frees).
 */
char *token_jwt_sign(const char *user, int64_t iat_s, int64_t exp_s, const unsigned char *key,
                     size_t keylen);

/*
 * Read a shared secret (setting: the configuration setting that names the file, for the
 * errors) from path: a regular file, not accessible to others (mode & 007
 * == 0), TOKEN_SECRET_MIN..TOKEN_SECRET_MAX bytes after dropping one trailing newline (or
 * CR LF). Returns 0 with *secret_r (free it with token_secret_free) and *len_r, or -1
 * with *error_r naming the file.
 */
int token_secret_load(const char *setting, const char *path, unsigned char **secret_r,
                      size_t *len_r, const char **error_r);
/* Wipe and free a secret from token_secret_load; NULL-safe. */
void token_secret_free(unsigned char **secret, size_t len);

#endif
