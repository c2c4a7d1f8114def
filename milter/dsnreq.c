/*
 * dsnreq - the DSNs msgstatus-milter asks for. See dsnreq.h.
 */
#include "dsnreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"

struct drcpt {
	char *arg;   /* as given */
	char *addr;  /* without <> */
	char *orcpt; /* the submitter's ORCPT=... parameter, or NULL */
	bool remote; /* delivered by one of dsn_transports */
	bool change; /* remote, no NOTIFY of the submitter's, usable */
	bool never;  /* the submitter said NOTIFY=NEVER */
	bool asked;  /* the submitter gave a NOTIFY other than NEVER */
};

struct dsnreq {
	char *from;
	bool enabled;
	bool from_usable;  /* no unusable RET or ENVID */
	char *ret, *envid; /* the submitter's, or NULL */
	struct drcpt *rcpts;
	size_t nrcpts, cap;
};

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		msg_fatal("out of memory");
	return p;
}

struct dsnreq *
dsnreq_new(void)
{
	struct dsnreq *d = calloc(1, sizeof(*d));

	if (d == NULL)
		msg_fatal("out of memory");
	return d;
}

void
dsnreq_free(struct dsnreq **dp)
{
	struct dsnreq *d = *dp;

	if (d == NULL)
		return;
	*dp = NULL;
	for (size_t i = 0; i < d->nrcpts; i++) {
		free(d->rcpts[i].arg);
		free(d->rcpts[i].addr);
		free(d->rcpts[i].orcpt);
	}
	free(d->rcpts);
	free(d->from);
	free(d->ret);
	free(d->envid);
	free(d);
}

/* Printable ASCII without spaces, 1..DSNREQ_PARAM_MAX bytes. */
static bool
usable(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DSNREQ_PARAM_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

const char *
dsnreq_param(const char *const *params, const char *name)
{
	size_t n = strlen(name);

	for (; params != NULL && *params != NULL; params++)
		if (strncasecmp(*params, name, n) == 0 && (*params)[n] == '=')
			return *params + n + 1;
	return NULL;
}

bool
dsnreq_transport_listed(const char *list, const char *mailer)
{
	size_t mlen;

	if (list == NULL || mailer == NULL || (mlen = strlen(mailer)) == 0)
		return false;
	for (const char *p = list; *p != '\0';) {
		size_t n;

		p += strspn(p, " ,\t");
		n = strcspn(p, " ,\t");
		if (n == 0)
			break;
		if (n == mlen && strncmp(p, mailer, n) == 0)
			return true;
		p += n;
	}
	return false;
}

int
dsnreq_xtext(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f)
			return -1;
		if (c == '+' || c == '=' || c == ' ') {
			if (o + 3 >= outlen)
				return -1;
			snprintf(out + o, 4, "+%02X", c);
			o += 3;
		} else {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

void
dsnreq_mail(struct dsnreq *d, const char *from, const char *const *params, bool enabled)
{
	const char *ret = dsnreq_param(params, "RET"), *envid = dsnreq_param(params, "ENVID");

	/* a new transaction: nothing of the last one stays */
	free(d->from);
	free(d->ret);
	free(d->envid);
	for (size_t i = 0; i < d->nrcpts; i++) {
		free(d->rcpts[i].arg);
		free(d->rcpts[i].addr);
		free(d->rcpts[i].orcpt);
	}
	d->nrcpts = 0;
	d->from = xstrdup(from != NULL ? from : "");
	d->ret = ret != NULL ? xstrdup(ret) : NULL;
	d->envid = envid != NULL ? xstrdup(envid) : NULL;
	d->from_usable = (ret == NULL || usable(ret)) && (envid == NULL || usable(envid));
	d->enabled = enabled;
}

void
dsnreq_rcpt(struct dsnreq *d, const char *rcpt, const char *const *params, const char *mailer,
            const char *transports, size_t max)
{
	const char *notify = dsnreq_param(params, "NOTIFY"), *orcpt = dsnreq_param(params, "ORCPT");
	struct drcpt *r;
	size_t len;

	if (!d->enabled || rcpt == NULL || d->nrcpts >= max)
		return;
	if (d->nrcpts == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		if ((d->rcpts = realloc(d->rcpts, d->cap * sizeof(*d->rcpts))) == NULL)
			msg_fatal("out of memory");
	}
	r = &d->rcpts[d->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->arg = xstrdup(rcpt);
	len = strlen(rcpt);
	if (len >= 2 && rcpt[0] == '<' && rcpt[len - 1] == '>')
		r->addr = strndup(rcpt + 1, len - 2);
	else
		r->addr = strdup(rcpt);
	if (r->addr == NULL)
		msg_fatal("out of memory");
	r->remote = r->addr[0] != '\0' && dsnreq_transport_listed(transports, mailer);
	if (orcpt != NULL)
		r->orcpt = xstrdup(orcpt);
	r->never = notify != NULL && strcasecmp(notify, "NEVER") == 0;
	r->asked = notify != NULL && !r->never;
	r->change = r->remote && notify == NULL && (orcpt == NULL || usable(orcpt)) &&
	            strlen(r->arg) <= DSNREQ_PARAM_MAX;
}

bool
dsnreq_submitter_asks(const struct dsnreq *d)
{
	for (size_t i = 0; d->enabled && i < d->nrcpts; i++)
		if (d->rcpts[i].asked)
			return true;
	return false;
}

/* Is another recipient than i the same address, and left alone or planned earlier? */
static bool
shadowed(const struct dsnreq *d, size_t i)
{
	for (size_t j = 0; j < d->nrcpts; j++)
		if (j != i && strcasecmp(d->rcpts[j].addr, d->rcpts[i].addr) == 0 &&
		    (!d->rcpts[j].change || j < i))
			return true;
	return false;
}

bool
dsnreq_plan(struct dsnreq *d, const char *envid, struct dsnreq_plan *plan)
{
	char x[3 * DSNREQ_PARAM_MAX + 1];
	size_t asks = 0; /* remote recipients a DSN may come back for */

	memset(plan, 0, sizeof(*plan));
	if (!d->enabled)
		return false;
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct drcpt *r = &d->rcpts[i];
		size_t n;

		if (!r->remote)
			continue;
		plan->remote++;
		if (!r->never)
			asks++;
		if (!r->change || shadowed(d, i)) {
			plan->kept++;
			continue;
		}
		if (plan->rcpts == NULL &&
		    (plan->rcpts = calloc(d->nrcpts, sizeof(*plan->rcpts))) == NULL)
			msg_fatal("out of memory");
		n = sizeof("NOTIFY=" DSNREQ_NOTIFY " ORCPT=rfc822;") + sizeof(x);
		if ((plan->rcpts[plan->nrcpts].args = malloc(n)) == NULL)
			msg_fatal("out of memory");
		if (r->orcpt != NULL)
			snprintf(plan->rcpts[plan->nrcpts].args, n, "NOTIFY=%s ORCPT=%s",
			         DSNREQ_NOTIFY, r->orcpt);
		else if (dsnreq_xtext(x, sizeof(x), r->addr) == 0)
			snprintf(plan->rcpts[plan->nrcpts].args, n, "NOTIFY=%s ORCPT=rfc822;%s",
			         DSNREQ_NOTIFY, x);
		else
			snprintf(plan->rcpts[plan->nrcpts].args, n, "NOTIFY=%s", DSNREQ_NOTIFY);
		plan->rcpts[plan->nrcpts++].rcpt = r->arg;
	}
	/*
	 * MAIL FROM: only if some DSN can come back for a remote recipient, and only what the
	 * submitter left open (their RET and ENVID are repeated, so Postfix keeps them).
	 */
	if (asks > 0 && d->from_usable && d->from[0] != '\0' &&
	    strlen(d->from) <= DSNREQ_PARAM_MAX && (d->ret == NULL || d->envid == NULL)) {
		size_t n = 2 * DSNREQ_PARAM_MAX + 32;

		if ((plan->from_args = malloc(n)) == NULL)
			msg_fatal("out of memory");
		snprintf(plan->from_args, n, "RET=%s ENVID=%s", d->ret ? d->ret : DSNREQ_RET,
		         d->envid ? d->envid : envid);
		plan->from = d->from;
		plan->chgfrom = true;
	}
	return plan->chgfrom || plan->nrcpts > 0;
}

void
dsnreq_plan_clear(struct dsnreq_plan *plan)
{
	for (size_t i = 0; i < plan->nrcpts; i++)
		free(plan->rcpts[i].args);
	free(plan->rcpts);
	free(plan->from_args);
	memset(plan, 0, sizeof(*plan));
}
