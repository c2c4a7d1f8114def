/*
 * fedpolicy - the site's policy for what leaves it about other sites' mail
 * (docs/federation.md, "Operations"; statusd.conf's federation_policy): per remote domain
 * (the sending site's, whose mail this site remembered), nothing, delivered only, or
 * delivered and read (with unread and deleted, what the recipient does with the message).
 *
 * DESIGN
 *	Pure: a parser of the setting's text into a struct, and a lookup. The text is
 *	"NAME:VALUE" entries separated by ';', NAME "default" or a domain, VALUE "none",
 *	"delivered" or "delivered,read", white space allowed around ';', ':' and ','. A domain
 *	counts for itself only (not its subdomains): it is a DKIM d= domain, and reports go to
 *	that domain's endpoint. Without a "default" entry the default is delivered,read.
 *	The recipients' own read_receipts preference is applied on top (sql/011).
 *
 * SECURITY
 *	The text is configuration (trusted), but it becomes SQL array literals: only domains
 *	valid as the federation writes them (fedrec_domain_valid) are accepted.
 *
 * DIAGNOSTICS
 *	fedpolicy_parse() returns -1 with *error_r naming the entry that is wrong.
 */
#ifndef FEDPOLICY_H
#define FEDPOLICY_H

#include <stddef.h>

enum fedpolicy_level {
	FEDPOLICY_NONE = 0,
	FEDPOLICY_DELIVERED = 1,
	FEDPOLICY_READ = 2, /* delivered, read, unread and deleted */
};

#define FEDPOLICY_DEFAULT FEDPOLICY_READ

struct fedpolicy_rule {
	char *domain; /* lower case */
	enum fedpolicy_level level;
};

struct fedpolicy {
	enum fedpolicy_level dflt;
	size_t n;
	struct fedpolicy_rule *rules;
	/* the rules as PostgreSQL array literals, for msgstatus_outbox_add() (sql/011) */
	char *sql_domains; /* "{a.example,b.example}" */
	char *sql_levels;  /* "{0,1}" */
};

/* Parse text into *p (freed with fedpolicy_free, also after a failure). */
int fedpolicy_parse(const char *text, struct fedpolicy *p, const char **error_r);
void fedpolicy_free(struct fedpolicy *p);
/* The level for a destination domain (lower case). */
enum fedpolicy_level fedpolicy_level(const struct fedpolicy *p, const char *domain);
/* "none", "delivered" or "delivered,read". */
const char *fedpolicy_level_name(enum fedpolicy_level level);

#endif
