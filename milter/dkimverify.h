/*
 * dkimverify - DKIM verification of incoming mail (RFC 6376) with OpenDKIM's libopendkim,
 * and the alignment rule that decides whether a valid signature authenticates the
 * sender's domain (docs/federation.md, "Correlation").
 *
 * msgstatus-milter uses it only for mail that carries a Msgstatus-Id header it did not add
 * itself: such mail is remembered (its tracking id kept, so that the recipient's delivered
 * and read can later be reported to the sender's site) only if a valid signature aligns
 * with the From or envelope sender domain. Mail without the header never comes here.
 *
 * DESIGN
 *	One struct dkimverify per process (a DKIM_LIB and the resolver, both shared by the
 *	milter's threads: libopendkim's library handle is made for that). One
 *	struct dkimverify_msg per message, fed the headers (after the end of headers is known,
 *	from the milter's own buffer), the body chunks and the end, then asked for the result.
 *	Keys are looked up with our resolver (federation/resolver.h), through libopendkim's
 *	key lookup hook (dkim_set_key_lookup), so they are cached by TTL, go to the configured
 *	server, and are bounded in number and time per message.
 *	dkimverify_aligned() is the alignment rule alone, a pure function for the unit tests.
 *
 * SECURITY
 *	The message is untrusted: libopendkim parses it. What we take from its results is
 *	bounded and checked (d= must be a DNS name; a signature counts only if libopendkim says
 *	it passed and its body hash matched). At most DKIMVERIFY_LOOKUPS_MAX signatures are
 *	checked per message (those aligned with the From domain first; libopendkim's prescreen
 *	hook ignores the rest, body hashes included), and no key lookup starts after the
 *	message's DNS budget (lookup_budget_ms, counted from the end of the message) is spent,
 *	so a message with many signatures cannot hold a milter thread for long.
 *	The alignment rule is conservative: the From (or envelope) domain must equal d= or be
 *	a subdomain of it, and d= must have at least two labels. Without a public suffix list
 *	this accepts what DMARC's relaxed mode accepts when d= is the organizational domain or
 *	below, and never lets a parent domain be authenticated by a subdomain's key (often
 *	delegated to a third party's mail service).
 *
 * DIAGNOSTICS
 *	dkimverify_new() returns NULL and *error_r. The per-message functions never fail the
 *	message: a libopendkim error means "no valid signature", and the reason is in the
 *	result's why (static text) for the milter's log.
 */
#ifndef DKIMVERIFY_H
#define DKIMVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DKIMVERIFY_SIGS_MAX    8 /* valid signatures reported per message */
#define DKIMVERIFY_LOOKUPS_MAX 4 /* key lookups per message */
#define DKIMVERIFY_DOMAIN_MAX  253

struct resolver;
struct dkimverify;
struct dkimverify_msg;

struct dkimverify_sig {
	char domain[DKIMVERIFY_DOMAIN_MAX + 1]; /* d=, lowercase */
	bool from_aligned;                      /* with the From domain */
	bool envelope_aligned;                  /* with the envelope sender's domain */
};

struct dkimverify_result {
	char from_domain[DKIMVERIFY_DOMAIN_MAX + 1]; /* "" if libopendkim found none */
	size_t nsigs;                                /* valid signatures */
	unsigned ignored; /* signatures left unchecked: over DKIMVERIFY_LOOKUPS_MAX */
	struct dkimverify_sig sigs[DKIMVERIFY_SIGS_MAX];
	const char *why; /* when nsigs == 0: a reason for the log (static or in why_buf) */
	char why_buf[DKIMVERIFY_DOMAIN_MAX + 128];
};

/* r NULL: no key is ever found (for the fuzz target: no DNS). */
struct dkimverify *dkimverify_new(struct resolver *r, int64_t lookup_budget_ms,
                                  const char **error_r);
void dkimverify_free(struct dkimverify **v);

/* A new message; id names it in libopendkim's own messages (the queue id). Never NULL. */
struct dkimverify_msg *dkimverify_start(struct dkimverify *v, const char *id);
/* One header as libmilter gives it (name, value without the space after the colon). */
void dkimverify_header(struct dkimverify_msg *m, const char *name, const char *value);
void dkimverify_eoh(struct dkimverify_msg *m);
void dkimverify_body(struct dkimverify_msg *m, const unsigned char *chunk, size_t len);
/* End of message: the valid signatures and their alignment with the From domain and with
   envelope_domain (NULL or "" for none). */
void dkimverify_eom(struct dkimverify_msg *m, const char *envelope_domain,
                    struct dkimverify_result *res);
void dkimverify_msg_free(struct dkimverify_msg **m);

/* Does a signature with d= sig_domain authenticate domain? Equal (ASCII case-insensitive,
   a final dot ignored) or domain a subdomain of sig_domain; sig_domain has two labels or
   more. false for NULL or empty. */
bool dkimverify_aligned(const char *sig_domain, const char *domain);

#endif
