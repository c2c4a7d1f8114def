/*
 * envmac - the ENVID that msgstatus-milter puts on the DSNs it asks for, and its check
 * when a report comes back.
 *
 * A tracking id alone proves nothing: every recipient sees it (the Msgstatus-Id header).
 * So the ENVID (RFC 3461) is "<tracking id>.<mac>", mac the first 80 bits of
 * HMAC-SHA256(secret, tracking id) in base32 (lib/base32.h), the secret the site's own
 * (report_secret_file, msgstatus-milter.conf(5)). A report whose Original-Envelope-Id
 * carries a valid mac was asked for by this site, for that tracking id, and travelled
 * only where the message went (docs/security.md, "Reports from other mail systems").
 * The "keep" variant (the mac of "keep:<tracking id>") is put on a message whose
 * submitter asked for DSNs of their own (a NOTIFY other than NEVER): its reports are
 * verified like the others but never consumed, since the submitter wants to see them.
 *
 * DESIGN
 *	Pure functions over the caller's buffers; the secret lives in the milter's
 *	configuration snapshot (mconfig.h).
 *
 * SECURITY
 *	envmac_check() reads an Original-Envelope-Id from anyone: it takes only
 *	"<id>.<16 base32 characters>" with an id of RANDID_LEN characters, and compares the
 *	mac in constant time (case-insensitively: some mail systems fold case).
 *
 * DIAGNOSTICS
 *	envmac_load() returns -1 and *error_r (static or errfmt text) naming the file.
 */
#ifndef ENVMAC_H
#define ENVMAC_H

#include <stdbool.h>
#include <stddef.h>

#include "randid.h"

#define ENVMAC_LEN        16 /* base32 characters: 80 bits */
#define ENVMAC_ENVID_LEN  (RANDID_LEN + 1 + ENVMAC_LEN)
#define ENVMAC_SECRET_MIN 16
#define ENVMAC_SECRET_MAX 1024

/* Read the secret file (its bytes as they are, ENVMAC_SECRET_MIN..MAX of them) into
   secret (ENVMAC_SECRET_MAX bytes); 0 and *len_r, or -1 and *error_r. */
int envmac_load(const char *path, unsigned char *secret, size_t *len_r, const char **error_r);
/* The ENVID for tracking_id into out (ENVMAC_ENVID_LEN + 1 bytes); keep: the variant whose
   reports are never consumed. */
void envmac_make(char *out, const unsigned char *secret, size_t secret_len, const char *tracking_id,
                 bool keep);
/* Does envid carry a valid mac (either variant)? Then its tracking id is copied to
   tracking_id_r (RANDID_LEN + 1 bytes) and *keep_r (if not NULL) says whether it is the
   keep variant. false for NULL, for anything else, and for an empty secret. */
bool envmac_check(const char *envid, const unsigned char *secret, size_t secret_len,
                  char *tracking_id_r, bool *keep_r);

#endif
