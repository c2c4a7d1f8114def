/*
 * auth - who is calling statusd's API, and what they may see.
 *
 * Two kinds of bearer credentials (HTTP "Authorization: Bearer ..."; the feeds also take
 * "?access_token=" because browsers' EventSource and WebSocket cannot set headers):
 *
 *  - API tokens, "mst_" followed by 32 base32 characters, made by "statusctl token create
 *    USER". Only their SHA-256 is stored (api_tokens.token_hash); they may expire and be
 *    revoked. Looked up in PostgreSQL, then cached for AUTH_CACHE_MS.
 *  - Signed tokens minted by a webmail backend with the shared secret in auth_secret_file:
 *    JSON Web Tokens, HS256 only, with claims "sub" (the user), "exp" and "iat"; lifetime
 *    at most auth_token_max_lifetime; no database needed to check them.
 *
 * A token names a principal (principal.h, which has the rules of what it may see): a user
 * name plus the domains it administers (users.domain_admin).
 *
 * DESIGN
 *	Loop thread. auth_check() answers at once for signed tokens and cached API tokens and
 *	otherwise asks the query worker; either way the answer comes through the callback, on
 *	the loop thread, after auth_check() has returned or from within it.
 *
 * SECURITY
 *	Tokens are untrusted input: bounded (AUTH_TOKEN_MAX), compared in constant time (the
 *	HMAC), never logged (only their first 8 characters), and a failure says no more than
 *	"invalid or expired token".
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "principal.h"

struct dbworker;
struct sd_config;
struct auth;

#define AUTH_TOKEN_MAX 4096
#define AUTH_CACHE_MS  60000

/* The answer: p is NULL when the token is not valid (error says why, for the log only). */
typedef void auth_done_cb(void *ctx, const struct principal *p, const char *error);

/* The error given when an API token could not be looked up (compare the pointer): the
   caller should answer 503, not 401, so that the client keeps its token. */
extern const char auth_error_db[];

/* NULL and *error_r if auth_secret_file cannot be read. */
struct auth *auth_new(const struct sd_config *cfg, struct dbworker *db, const char **error_r);
void auth_free(struct auth **a);

/* Check a bearer token; done is called exactly once (possibly before this returns). */
void auth_check(struct auth *a, const char *token, auth_done_cb *done, void *ctx);

#endif
