/*
 * principal - who a caller of statusd's API is, and the rules of what it may see.
 *
 * A principal is a user name (lower case: the SASL login or mail address mail is sent
 * with) plus the domains it administers (users.domain_admin), and when the credential it
 * came with stops being valid. auth.c makes principals from tokens; the API (api.c) and the
 * feeds (feed.c, for each event, also when a feed resumes from memory) ask these functions.
 *
 * The rules:
 *	- a user sees the messages it owns (messages.owner: the SASL login, or the envelope
 *	  sender), whatever the case of either;
 *	- an administrator of a domain also sees every message whose envelope sender is in
 *	  that domain: the part after the sender's last '@' (x@example.com@example.net is
 *	  example.net's), equal to the domain whatever its case, not a parent or subdomain;
 *	- nobody else: not a recipient of the message, not another user of the domain;
 *	- a credential is expired from its expiry time on (0: it does not expire).
 *
 * DESIGN
 *	Pure functions: no I/O and no clock of their own (the caller passes the time), so
 *	that tests/unit/test_principal.c checks every rule directly. A principal is not
 *	changed once made; whoever keeps one keeps a copy (principal_dup).
 *
 * SECURITY
 *	owner and sender come from the database (validated events); the principal from a
 *	checked token. A missing principal, owner or sender grants nothing.
 *
 * DIAGNOSTICS
 *	None; out of memory in principal_dup is fatal.
 */
#ifndef PRINCIPAL_H
#define PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct principal {
	char *user;           /* lower case */
	char **admin_domains; /* lower case */
	size_t nadmin;
	int64_t expires_ms; /* when the credential stops being valid (wall clock ms); 0: never */
};

/* May p see a message with this owner and envelope sender (either may be NULL)? */
bool principal_may_see(const struct principal *p, const char *owner, const char *sender);
/* Has p's credential expired at now_ms (wall clock)? */
bool principal_expired(const struct principal *p, int64_t now_ms);
/* A copy of p (NULL-safe); principal_free frees a copy. */
struct principal *principal_dup(const struct principal *p);
void principal_free(struct principal **p);

#endif
