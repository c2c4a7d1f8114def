/*
 * dkimverify - DKIM verification with libopendkim, keys through our resolver. See
 * dkimverify.h.
 */
#include "dkimverify.h"

#include <opendkim/dkim.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "resolver.h"
#include "rfc3339.h"

#define HEADER_MAX 65536 /* one header, name and value; longer ones are not fed */

struct dkimverify {
	DKIM_LIB *lib;
	struct resolver *resolver;
	int64_t budget_ms;
};

struct dkimverify_msg {
	struct dkimverify *v;
	DKIM *dkim;         /* NULL: libopendkim refused the message (why says so) */
	const char *why;    /* the first failure, static text */
	unsigned lookups;   /* key lookups made */
	int64_t deadline;   /* monotonic ms: no lookup starts after it */
	unsigned ignored;   /* signatures left unchecked (prescreen) */
	struct mbuf header; /* one header being put together */
};

bool
dkimverify_aligned(const char *sig_domain, const char *domain)
{
	size_t slen, dlen;

	if (sig_domain == NULL || domain == NULL)
		return false;
	slen = strlen(sig_domain);
	dlen = strlen(domain);
	if (slen > 0 && sig_domain[slen - 1] == '.')
		slen--;
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (slen == 0 || dlen == 0 || memchr(sig_domain, '.', slen) == NULL ||
	    sig_domain[0] == '.' || domain[0] == '.')
		return false;
	if (dlen == slen)
		return strncasecmp(sig_domain, domain, slen) == 0;
	/* domain = "<labels>." sig_domain */
	return dlen > slen + 1 && domain[dlen - slen - 1] == '.' &&
	       strncasecmp(domain + dlen - slen, sig_domain, slen) == 0;
}

/* libopendkim's key lookup: the TXT record at <selector>._domainkey.<domain>. */
static DKIM_CBSTAT
key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkimverify_msg *m = dkim_get_user_context(dkim);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	char name[512], clean[200];
	const char *error = NULL;
	struct dns_txt *t;
	DKIM_CBSTAT rc;

	if (m == NULL || sel == NULL || dom == NULL || buflen == 0)
		return DKIM_CBSTAT_ERROR;
	if (m->v->resolver == NULL)
		return DKIM_CBSTAT_NOTFOUND; /* no DNS at all (the fuzz target) */
	if (m->lookups >= DKIMVERIFY_LOOKUPS_MAX || time_mono_ms() >= m->deadline) {
		if (m->why == NULL)
			m->why = "too many signatures or too slow DNS: key lookups stopped";
		return DKIM_CBSTAT_TRYAGAIN;
	}
	m->lookups++;
	if ((size_t)snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom) >= sizeof(name))
		return DKIM_CBSTAT_NOTFOUND;
	t = resolver_txt(m->v->resolver, name, &error);
	switch (t->status) {
	case DNS_OK:
		/* RFC 6376 section 3.6.2.2: several strings are concatenated; several records
		   make the result undefined, and libopendkim takes the first. */
		if (t->len[0] + 1 > buflen || memchr(t->data[0], '\0', t->len[0]) != NULL)
			rc = DKIM_CBSTAT_ERROR;
		else {
			memcpy(buf, t->data[0], t->len[0] + 1);
			rc = DKIM_CBSTAT_CONTINUE;
		}
		break;
	case DNS_NODATA:
		rc = DKIM_CBSTAT_NOTFOUND;
		break;
	default:
		msg_clean(clean, sizeof(clean), name, strlen(name));
		msg_warn("DKIM key %s: %s", clean, error ? error : "lookup failed");
		rc = DKIM_CBSTAT_TRYAGAIN;
		break;
	}
	dns_txt_free(&t);
	return rc;
}

/* libopendkim's prescreen, after the headers: at most DKIMVERIFY_LOOKUPS_MAX signatures
   are checked, those whose d= aligns with the From domain first, then the others in header
   order. libopendkim itself checks every one, each with its own body hash (l=, c=): a
   message with hundreds would cost hundreds of times the work, and signatures a relay or
   list added in front would use up the lookups before the sender's own. */
static DKIM_CBSTAT
prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct dkimverify_msg *m = dkim_get_user_context(dkim);
	const char *from = (const char *)dkim_getdomain(dkim);
	int kept = 0;

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < nsigs; i++) {
			const char *d = (const char *)dkim_sig_getdomain(sigs[i]);
			bool aligned = d != NULL && from != NULL && dkimverify_aligned(d, from);

			if (aligned != (pass == 0))
				continue;
			if (kept < DKIMVERIFY_LOOKUPS_MAX)
				kept++;
			else {
				dkim_sig_ignore(sigs[i]);
				if (m != NULL)
					m->ignored++;
			}
		}
	return DKIM_CBSTAT_CONTINUE;
}

struct dkimverify *
dkimverify_new(struct resolver *r, int64_t lookup_budget_ms, const char **error_r)
{
	struct dkimverify *v = mycalloc(1, sizeof(*v));
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;

	v->resolver = r;
	v->budget_ms = lookup_budget_ms;
	if ((v->lib = dkim_init(NULL, NULL)) == NULL) {
		*error_r = "libopendkim: dkim_init failed";
		free(v);
		return NULL;
	}
	if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	            DKIM_STAT_OK ||
	    dkim_set_key_lookup(v->lib, key_lookup) != DKIM_STAT_OK ||
	    dkim_set_prescreen(v->lib, prescreen) != DKIM_STAT_OK) {
		*error_r = "libopendkim: cannot set its options";
		dkim_close(v->lib);
		free(v);
		return NULL;
	}
	return v;
}

void
dkimverify_free(struct dkimverify **vp)
{
	struct dkimverify *v = *vp;

	if (v == NULL)
		return;
	*vp = NULL;
	dkim_close(v->lib);
	free(v);
}

struct dkimverify_msg *
dkimverify_start(struct dkimverify *v, const char *id)
{
	struct dkimverify_msg *m = mycalloc(1, sizeof(*m));
	DKIM_STAT st = DKIM_STAT_OK;

	m->v = v;
	m->deadline = time_mono_ms() + v->budget_ms; /* again at the end of the message */
	m->header = (struct mbuf)MBUF_INIT;
	m->dkim =
	        dkim_verify(v->lib, (const unsigned char *)(id && *id ? id : "NOQUEUE"), NULL, &st);
	if (m->dkim == NULL)
		m->why = "libopendkim refused the message";
	else
		dkim_set_user_context(m->dkim, m);
	return m;
}

/* A libopendkim failure: keep the first reason, stop feeding. */
static void
failed(struct dkimverify_msg *m, DKIM_STAT st)
{
	if (m->why == NULL)
		m->why = st == DKIM_STAT_NOSIG ? "no DKIM signature" : dkim_getresultstr(st);
	dkim_free(m->dkim);
	m->dkim = NULL;
}

void
dkimverify_header(struct dkimverify_msg *m, const char *name, const char *value)
{
	DKIM_STAT st;

	if (m->dkim == NULL)
		return;
	m->header.len = 0;
	mbuf_puts(&m->header, name);
	mbuf_puts(&m->header, ": "); /* libmilter drops the space after the colon */
	/* Postfix folds with a bare LF, which libopendkim's headers do not fix: CRLF */
	for (const char *v = value ? value : ""; *v != '\0'; v++) {
		if (*v == '\n' && (v == value || v[-1] != '\r'))
			mbuf_putc(&m->header, '\r');
		mbuf_putc(&m->header, *v);
	}
	if (m->header.len > HEADER_MAX)
		return; /* not fed: a signature covering it fails */
	st = dkim_header(m->dkim, (u_char *)m->header.data, m->header.len);
	if (st != DKIM_STAT_OK)
		failed(m, st);
}

void
dkimverify_eoh(struct dkimverify_msg *m)
{
	DKIM_STAT st;

	if (m->dkim != NULL && (st = dkim_eoh(m->dkim)) != DKIM_STAT_OK)
		failed(m, st);
}

void
dkimverify_body(struct dkimverify_msg *m, const unsigned char *chunk, size_t len)
{
	DKIM_STAT st;

	if (m->dkim != NULL && len > 0 &&
	    (st = dkim_body(m->dkim, (u_char *)chunk, len)) != DKIM_STAT_OK)
		failed(m, st);
}

/* d= as a lowercase DNS name into out; false when it is not one. */
static bool
domain_copy(const char *d, char *out)
{
	size_t len = d ? strlen(d) : 0;

	if (len == 0 || len > DKIMVERIFY_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = d[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		           ch == '.' || ch == '_'))
			return false;
		out[i] = ch;
	}
	out[len] = '\0';
	return true;
}

void
dkimverify_eom(struct dkimverify_msg *m, const char *envelope_domain, struct dkimverify_result *res)
{
	DKIM_SIGINFO **sigs = NULL;
	const char *from;
	int nsigs = 0;
	_Bool testkey = 0;
	DKIM_STAT st;

	memset(res, 0, sizeof(*res));
	if (m->dkim == NULL) {
		res->why = m->why ? m->why : "not verified";
		return;
	}
	/* the lookups left for dkim_eom(): their budget starts now, however long the body
	   took to arrive */
	m->deadline = time_mono_ms() + m->v->budget_ms;
	st = dkim_eom(m->dkim, &testkey);
	res->ignored = m->ignored;
	from = (const char *)dkim_getdomain(m->dkim);
	if (from == NULL || !domain_copy(from, res->from_domain))
		res->from_domain[0] = '\0';
	if (dkim_getsiglist(m->dkim, &sigs, &nsigs) != DKIM_STAT_OK)
		nsigs = 0;
	for (int i = 0; i < nsigs && res->nsigs < DKIMVERIFY_SIGS_MAX; i++) {
		unsigned int flags = dkim_sig_getflags(sigs[i]);
		struct dkimverify_sig *s = &res->sigs[res->nsigs];

		/* passed, body hash matched, not ignored, not a key in test mode (t=y) */
		if ((flags & DKIM_SIGFLAG_PASSED) == 0 || (flags & DKIM_SIGFLAG_IGNORE) != 0 ||
		    (flags & DKIM_SIGFLAG_TESTKEY) != 0 ||
		    dkim_sig_getbh(sigs[i]) != DKIM_SIGBH_MATCH ||
		    !domain_copy((const char *)dkim_sig_getdomain(sigs[i]), s->domain))
			continue;
		s->from_aligned = res->from_domain[0] != '\0' &&
		                  dkimverify_aligned(s->domain, res->from_domain);
		s->envelope_aligned = dkimverify_aligned(s->domain, envelope_domain);
		res->nsigs++;
	}
	if (res->nsigs == 0 && nsigs > 0 && m->why == NULL) {
		/* the first signature's failure, for the log */
		char d[DKIMVERIFY_DOMAIN_MAX + 1];
		int err = dkim_sig_geterror(sigs[0]);
		const char *what = err != DKIM_SIGERROR_OK ? dkim_sig_geterrorstr(err)
		                   : dkim_sig_getbh(sigs[0]) != DKIM_SIGBH_MATCH
		                           ? "body hash mismatch"
		                           : "signature did not verify";

		if (!domain_copy((const char *)dkim_sig_getdomain(sigs[0]), d))
			strcpy(d, "?");
		snprintf(res->why_buf, sizeof(res->why_buf),
		         "no valid DKIM signature (d=%s: %.80s)", d, what ? what : "unknown error");
		res->why = res->why_buf;
	} else if (res->nsigs == 0)
		res->why = m->why                  ? m->why
		           : st == DKIM_STAT_NOSIG ? "no DKIM signature"
		                                   : dkim_getresultstr(st);
}

void
dkimverify_msg_free(struct dkimverify_msg **mp)
{
	struct dkimverify_msg *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	if (m->dkim != NULL)
		dkim_free(m->dkim);
	mbuf_free(&m->header);
	free(m);
}
