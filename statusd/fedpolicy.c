/*
 * fedpolicy - the site policy for federation reports. See fedpolicy.h.
 */
#include "fedpolicy.h"

#include <stdlib.h>
#include <string.h>

#include "fedrec.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* s[0..len) without the white space around it. */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_wsp(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_wsp((*s)[*len - 1]))
		(*len)--;
}

/* VALUE: "none", "delivered" or "delivered,read" (white space around the comma). */
static int
parse_level(const char *s, size_t len, enum fedpolicy_level *level_r)
{
	const char *comma = memchr(s, ',', len);

	if (comma == NULL) {
		if (len == 4 && memcmp(s, "none", 4) == 0)
			*level_r = FEDPOLICY_NONE;
		else if (len == 9 && memcmp(s, "delivered", 9) == 0)
			*level_r = FEDPOLICY_DELIVERED;
		else
			return -1;
		return 0;
	}
	const char *a = s, *b = comma + 1;
	size_t alen = (size_t)(comma - s), blen = len - alen - 1;

	trim(&a, &alen);
	trim(&b, &blen);
	if (alen == 9 && memcmp(a, "delivered", 9) == 0 && blen == 4 && memcmp(b, "read", 4) == 0) {
		*level_r = FEDPOLICY_READ;
		return 0;
	}
	return -1;
}

int
fedpolicy_parse(const char *text, struct fedpolicy *p, const char **error_r)
{
	const char *s = text;
	bool have_default = false;
	struct mbuf doms = MBUF_INIT, levels = MBUF_INIT;

	mbuf_putc(&doms, '{');
	mbuf_putc(&levels, '{');

	memset(p, 0, sizeof(*p));
	p->dflt = FEDPOLICY_DEFAULT;
	for (;;) {
		const char *end = strchr(s, ';'), *name, *value, *colon;
		size_t len = end ? (size_t)(end - s) : strlen(s), nlen, vlen;
		enum fedpolicy_level level;
		char domain[FEDREC_DOMAIN_MAX + 1];

		name = s;
		trim(&name, &len);
		if (len == 0) {
			if (end == NULL)
				break;
			*error_r = errfmt("empty entry: NAME:VALUE entries separated by ';'");
			goto fail;
		}
		colon = memchr(name, ':', len);
		if (colon == NULL) {
			*error_r = errfmt("\"%.*s\": expected NAME:VALUE", (int)len, name);
			goto fail;
		}
		nlen = (size_t)(colon - name);
		value = colon + 1;
		vlen = len - nlen - 1;
		trim(&name, &nlen);
		trim(&value, &vlen);
		if (parse_level(value, vlen, &level) < 0) {
			*error_r =
			        errfmt("\"%.*s\": the value is none, delivered or delivered,read",
			               (int)len, s + (name - s));
			goto fail;
		}
		if (nlen == 7 && memcmp(name, "default", 7) == 0) {
			if (have_default) {
				*error_r = errfmt("default given twice");
				goto fail;
			}
			have_default = true;
			p->dflt = level;
		} else {
			if (nlen > FEDREC_DOMAIN_MAX) {
				*error_r = errfmt("\"%.*s\": not a domain", (int)nlen, name);
				goto fail;
			}
			for (size_t i = 0; i < nlen; i++)
				domain[i] = name[i] >= 'A' && name[i] <= 'Z'
				                    ? (char)(name[i] - 'A' + 'a')
				                    : name[i];
			domain[nlen] = '\0';
			if (!fedrec_domain_valid(domain, nlen)) {
				*error_r =
				        errfmt("\"%.*s\": not a domain (LDH labels, no final dot)",
				               (int)nlen, name);
				goto fail;
			}
			for (size_t i = 0; i < p->n; i++)
				if (strcmp(p->rules[i].domain, domain) == 0) {
					*error_r = errfmt("%s given twice", domain);
					goto fail;
				}
			p->rules = myreallocarray(p->rules, p->n + 1, sizeof(*p->rules));
			p->rules[p->n].domain = mystrdup(domain);
			p->rules[p->n].level = level;
			p->n++;
			mbuf_printf(&doms, "%s%s", p->n > 1 ? "," : "", domain);
			mbuf_printf(&levels, "%s%d", p->n > 1 ? "," : "", (int)level);
		}
		if (end == NULL)
			break;
		s = end + 1;
	}
	mbuf_putc(&doms, '}');
	mbuf_putc(&levels, '}');
	p->sql_domains = mystrdup(doms.data);
	p->sql_levels = mystrdup(levels.data);
	mbuf_free(&doms);
	mbuf_free(&levels);
	return 0;
fail:
	mbuf_free(&doms);
	mbuf_free(&levels);
	return -1;
}

void
fedpolicy_free(struct fedpolicy *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i].domain);
	free(p->rules);
	free(p->sql_domains);
	free(p->sql_levels);
	memset(p, 0, sizeof(*p));
}

enum fedpolicy_level
fedpolicy_level(const struct fedpolicy *p, const char *domain)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->rules[i].domain, domain) == 0)
			return p->rules[i].level;
	return p->dflt;
}

const char *
fedpolicy_level_name(enum fedpolicy_level level)
{
	switch (level) {
	case FEDPOLICY_NONE:
		return "none";
	case FEDPOLICY_DELIVERED:
		return "delivered";
	default:
		return "delivered,read";
	}
}
