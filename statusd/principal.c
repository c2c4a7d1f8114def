/*
 * principal - the rules of what a caller may see. See principal.h.
 */
#include "principal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "mymalloc.h"

bool
principal_may_see(const struct principal *p, const char *owner, const char *sender)
{
	const char *at;

	if (p == NULL)
		return false;
	if (owner != NULL && strcasecmp(owner, p->user) == 0)
		return true;
	if (p->nadmin == 0 || sender == NULL || (at = strrchr(sender, '@')) == NULL ||
	    at[1] == '\0')
		return false;
	for (size_t i = 0; i < p->nadmin; i++)
		if (strcasecmp(at + 1, p->admin_domains[i]) == 0)
			return true;
	return false;
}

bool
principal_expired(const struct principal *p, int64_t now_ms)
{
	return p == NULL || (p->expires_ms != 0 && p->expires_ms <= now_ms);
}

struct principal *
principal_dup(const struct principal *p)
{
	struct principal *c;

	if (p == NULL)
		return NULL;
	c = mycalloc(1, sizeof(*c));
	if (p->nadmin > 0)
		c->admin_domains = mycalloc(p->nadmin, sizeof(char *));
	c->user = mystrdup(p->user);
	for (size_t i = 0; i < p->nadmin; i++)
		c->admin_domains[i] = mystrdup(p->admin_domains[i]);
	c->nadmin = p->nadmin;
	c->expires_ms = p->expires_ms;
	return c;
}

void
principal_free(struct principal **pp)
{
	struct principal *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	for (size_t i = 0; i < p->nadmin; i++)
		free(p->admin_domains[i]);
	free(p->admin_domains);
	free(p->user);
	free(p);
}
