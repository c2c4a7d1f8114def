/*
 * httpsig - the subset of HTTP Message Signatures (RFC 9421) that signs a federation
 * report POST, with Ed25519 through OpenSSL (EVP_PKEY_ED25519), and the Content-Digest
 * (RFC 9530, sha-256) of its body. docs/federation.md, "Signatures", is the profile.
 *
 * DESIGN
 *	Pure functions over a request described by struct httpsig_request (method, target
 *	URI, authority, path and a field lookup callback), so the HTTP library stays outside.
 *	Signature-Input and Signature are parsed by a hand-written strict subset of RFC 8941
 *	(structured fields): exactly one dictionary member each, an inner list of plain
 *	strings, parameters created/expires (integers), keyid/nonce/alg/tag (strings). No
 *	Debian library parses structured fields; the subset is small and fuzzed. Key lookup
 *	and the replay cache are callbacks, so DNS and storage stay outside too. No static
 *	state; everything the caller passes it owns.
 *
 * SECURITY
 *	Signature-Input, Signature, the covered fields and the body are untrusted. Order of
 *	checks in httpsig_verify():
 *	1. parse: both fields at most HTTPSIG_FIELD_MAX bytes, the strict grammar above, in
 *	   canonical serialization only (the text must equal its re-serialization, so the
 *	   "@signature-params" line is exactly what was signed); at most
 *	   HTTPSIG_COMPONENTS_MAX components, none repeated; no repeated or unknown parameter;
 *	   the same label in both fields (and the policy's label, if it names one); the
 *	   signature 64 bytes of canonical base64;
 *	2. profile: alg, if present, is "ed25519"; the policy's required components are all
 *	   covered and its required parameters present;
 *	3. key lookup by keyid (the callback), nothing from the request read before;
 *	4. the signature base (RFC 9421 section 2.5) from the request, and the Ed25519
 *	   signature over it (RFC 8032, no prehash);
 *	5. freshness: created not after now + skew, expires after now, expires - created not
 *	   above the policy's maximum; then the replay check of (keyid, nonce) (callback);
 *	6. only then the body: its sha-256 Content-Digest must equal the covered field.
 *	The caller reads the body's claims only after 0 is returned.
 *
 * DIAGNOSTICS
 *	0 on success; -1 with *error_r set to text naming the failed check (static, or the
 *	callback's).
 */
#ifndef HTTPSIG_H
#define HTTPSIG_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbuf.h"

#define HTTPSIG_FIELD_MAX      4096
#define HTTPSIG_COMPONENTS_MAX 12
#define HTTPSIG_NAME_MAX       64  /* component name, label */
#define HTTPSIG_PARAM_MAX      256 /* keyid, nonce, alg, tag values */
#define HTTPSIG_SIG_LEN        64
/* "sha-256=:" + 44 base64 + ":" + NUL */
#define HTTPSIG_DIGEST_BUFSIZE 56

struct httpsig_request {
	const char *method;     /* "POST" */
	const char *target_uri; /* "https://status.example.org/api/v1/federation/reports" */
	const char *authority;  /* "status.example.org", lowercase, port only if not default */
	const char *path;       /* "/api/v1/federation/reports" */
	/* The value of the field with this lowercase name (several lines joined with ", "),
	   or NULL when absent. */
	const char *(*field)(void *ctx, const char *name);
	void *ctx;
};

struct httpsig_params {
	char label[HTTPSIG_NAME_MAX + 1];
	size_t ncomponents;
	char components[HTTPSIG_COMPONENTS_MAX][HTTPSIG_NAME_MAX + 1];
	bool has_created, has_expires;
	int64_t created, expires; /* seconds since the epoch */
	/* empty when absent */
	char keyid[HTTPSIG_PARAM_MAX + 1], nonce[HTTPSIG_PARAM_MAX + 1];
	char alg[HTTPSIG_PARAM_MAX + 1], tag[HTTPSIG_PARAM_MAX + 1];
	/* parameter names in the order they appear, e.g. "created", "keyid" */
	size_t nparams;
	const char *order[6];
};

struct httpsig_policy {
	const char *label; /* NULL: any */
	const char *const *required_components;
	size_t nrequired;
	bool require_expires, require_nonce, require_alg; /* created and keyid always */
	int64_t now;                                      /* seconds since the epoch */
	int64_t skew;              /* seconds a created may lie in the future */
	int64_t max_life;          /* maximum expires - created, seconds; 0: no expires required */
	const unsigned char *body; /* non-NULL: check the content-digest field against it */
	size_t body_len;
};

/* Return the public key for keyid (the caller's reference, released by the verifier with
   EVP_PKEY_free), or -1 and *error_r. */
typedef int httpsig_key_fn(void *ctx, const char *keyid, EVP_PKEY **key_r, const char **error_r);
/* Record (keyid, nonce) until expires; -1 and *error_r if seen before. */
typedef int httpsig_replay_fn(void *ctx, const char *keyid, const char *nonce, int64_t expires,
                              const char **error_r);

/* Parse the two fields (step 1 above) into *params_r and sig_r. */
int httpsig_parse(const char *input, size_t input_len, const char *signature, size_t sig_len,
                  struct httpsig_params *params_r, unsigned char sig_r[HTTPSIG_SIG_LEN],
                  const char **error_r);
/* Append the signature base for params over req to out (no trailing newline). */
int httpsig_base(const struct httpsig_params *params, const struct httpsig_request *req,
                 struct mbuf *out, const char **error_r);
/* Append the Signature-Input member value (inner list and parameters) to out. */
void httpsig_params_serialize(const struct httpsig_params *params, struct mbuf *out);

/* The whole verification, in the order above. replay may be NULL (no nonce check). On
   success *params_r holds what was verified. */
int httpsig_verify(const struct httpsig_request *req, const char *input, size_t input_len,
                   const char *signature, size_t sig_len, const struct httpsig_policy *policy,
                   httpsig_key_fn *key, httpsig_replay_fn *replay, void *ctx,
                   struct httpsig_params *params_r, const char **error_r);

/* Sign req with key (an Ed25519 private key) under params (label, components and
   parameters filled in by the caller; order[] is set here to created, expires, nonce,
   alg, keyid, tag for those present). Appends the Signature-Input and Signature field
   values to input_r and sig_r. */
int httpsig_sign(const struct httpsig_request *req, struct httpsig_params *params, EVP_PKEY *key,
                 struct mbuf *input_r, struct mbuf *sig_r, const char **error_r);

/* "sha-256=:<base64>:" of len bytes at body into buf (HTTPSIG_DIGEST_BUFSIZE bytes). */
void httpsig_content_digest(const unsigned char *body, size_t len, char *buf);

#endif
