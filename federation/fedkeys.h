/*
 * fedkeys - a site's federation signing keys (docs/federation.md, "Operations"): the
 * Ed25519 keys it signs reports with, one or more per domain, each under a selector and
 * in one of three states:
 *	signing    the key new reports are signed with (at most one per domain);
 *	published  valid and published, not signing: made ahead of a rotation, or the
 *	           previous signing key after one (so that two keys are valid at once);
 *	retired    revoked: its record is published with an empty p=, its private key is
 *	           deleted and its selector is never used again for that domain.
 * statusctl's key commands are the front end; statusd will read the signing key here.
 *
 * DESIGN
 *	Pure file operations in one directory (statusd.conf's federation_key_dir), no
 *	database. In it:
 *	  index                                  one line per key, "domain selector state
 *	                                         created_ms changed_ms public-key-base64",
 *	                                         after a '#' comment line;
 *	  <selector>._msgstatus-key.<domain>.pem the private key, PKCS#8 PEM, mode 0600
 *	                                         (none for a retired key);
 *	  .lock                                  flock(2)ed by every change;
 *	  .tmp-*                                 files being written.
 *	Every file is written as a temporary file (O_EXCL, mode 0600), fsync()ed, and only
 *	then given its name: the index by rename(2), a key file by link(2), which fails
 *	rather than replace an existing file; then the directory is fsync()ed. A reader
 *	therefore sees the old index or the new one, never half of one; a crash leaves at
 *	worst a .tmp-* file or a key file that the index does not name (never used).
 *	Changes run under the lock, so two statusctl runs cannot lose each other's update.
 *	Retiring writes the index first and deletes the key file second.
 *	No static state; lists are allocated and freed by fedkeys_list_free().
 *
 * SECURITY
 *	Domain and selector come from the command line: untrusted. Both must be valid as
 *	fedrec writes them (lowercase LDH labels; the selector one label) before any path
 *	is built from them, so a file name can hold no '/', no ".." and no leading '.'.
 *	Files are opened relative to the directory's descriptor with O_NOFOLLOW. The
 *	directory is made with mode 0700 when missing, and refused when group or others may
 *	write to it; key files are made with mode 0600 whatever the umask, and refused when
 *	others may read them. The index is parsed strictly (a damaged one is an error that
 *	names the line, never a guess); a private key must be Ed25519 and match the public
 *	key in the index before it is used. Keys are never printed; only public keys are.
 *
 * DIAGNOSTICS
 *	0 on success; -1 with *error_r (errfmt() text naming the file or key and the
 *	reason); FEDKEYS_NOKEY (with *error_r) when the domain has no key by that selector.
 */
#ifndef FEDKEYS_H
#define FEDKEYS_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fedrec.h"
#include "mbuf.h"

#define FEDKEYS_NOKEY 1

enum fedkeys_state { FEDKEYS_SIGNING, FEDKEYS_PUBLISHED, FEDKEYS_RETIRED };

struct fedkeys_key {
	char domain[FEDREC_DOMAIN_MAX + 1];
	char selector[FEDREC_SELECTOR_MAX + 1];
	enum fedkeys_state state;
	int64_t created_ms, changed_ms; /* ms since the epoch */
	unsigned char pub[FEDREC_KEY_LEN];
};

/* "signing", "published" or "retired". */
const char *fedkeys_state_name(enum fedkeys_state state);

/* The keys in dir (of domain only, unless NULL), sorted by domain, then creation time;
   a missing dir or index is no keys. *keys_r is freed with fedkeys_list_free(). */
int fedkeys_list(const char *dir, const char *domain, struct fedkeys_key **keys_r, size_t *n_r,
                 const char **error_r);
void fedkeys_list_free(struct fedkeys_key **keys);

/* Make a key for domain under selector (dir is made if missing, its parent must exist).
   It is the signing key if the domain has none, else published. Refuses a selector the
   domain has used before, in any state, and an existing key file. *key_r: the new key. */
int fedkeys_make(const char *dir, const char *domain, const char *selector, int64_t now_ms,
                 struct fedkeys_key *key_r, const char **error_r);

/* Make selector the domain's signing key (made first if the domain has no such key:
   *made_r says so); the previous signing key, if any, stays valid as published and its
   selector goes to prev_r (FEDREC_SELECTOR_MAX + 1 bytes; "" if none). -1 if selector is
   already signing or is retired. */
int fedkeys_rotate(const char *dir, const char *domain, const char *selector, int64_t now_ms,
                   bool *made_r, char *prev_r, const char **error_r);

/* Retire a published key: revoked, its private key file deleted. -1 for the signing key
   (rotate first); retiring a retired key sets *already_r and removes a leftover file. */
int fedkeys_retire(const char *dir, const char *domain, const char *selector, int64_t now_ms,
                   bool *already_r, const char **error_r);

/* The private key of a signing or published key (checked against the index), for
   signing; the caller frees it with EVP_PKEY_free(). */
int fedkeys_load(const char *dir, const char *domain, const char *selector, EVP_PKEY **key_r,
                 const char **error_r);

/* The key file's path, dir "/" <selector>._msgstatus-key.<domain>.pem, into buf. */
int fedkeys_path(const char *dir, const char *domain, const char *selector, char *buf, size_t size,
                 const char **error_r);

/* One zone-file line: "<owner>.\t<ttl>\tIN\tTXT\t" and txt as quoted character-strings of
   at most 255 bytes each ('"' and '\\' escaped), then "\n". */
void fedkeys_zone_txt(const char *owner, long ttl, const char *txt, struct mbuf *out);

#endif
