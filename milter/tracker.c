/*
 * tracker - msgstatus-milter's decisions about one message. See tracker.h.
 */
#include "tracker.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkimverify.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "utf8.h"

#define HEADER_VALUE_MAX 998

struct tracker_msg *
tracker_msg_new(void)
{
	return mycalloc(1, sizeof(struct tracker_msg));
}

void
tracker_msg_free(struct tracker_msg **mp)
{
	struct tracker_msg *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m->sender);
	free(m->sasl_user);
	free(m->message_id);
	free(m->foreign_id);
	free(m);
}

/* UTF-8, no control characters, at most max bytes. */
static bool
usable(const char *s, size_t len, size_t max)
{
	if (len > max || !utf8_valid(s, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* A tracking id as the Dovecot plugin takes one: 1-64 of [A-Za-z0-9._-]. */
static bool
id_usable(const char *s, size_t len)
{
	if (len == 0 || len > MSEVENT_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* "<addr>" (with optional spaces) -> addr; NULL if not bracketed. */
static char *
strip_brackets(const char *arg)
{
	size_t len;

	while (*arg == ' ')
		arg++;
	len = strlen(arg);
	while (len > 0 && arg[len - 1] == ' ')
		len--;
	if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>')
		return mystrndup(arg + 1, len - 2);
	return mystrndup(arg, len); /* Postfix always brackets; tolerate bare addresses */
}

bool
tracker_domain_listed(const char *list, const char *address)
{
	const char *at = strrchr(address, '@'), *p = list;
	size_t dlen;

	if (list == NULL || at == NULL || at[1] == '\0')
		return false;
	at++;
	dlen = strlen(at);
	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n == 0)
			break;
		if (p[0] == '.') {
			/* ".example.org": any subdomain of example.org */
			if (dlen > n && strncasecmp(at + dlen - n, p, n) == 0)
				return true;
		} else if (n == dlen && strncasecmp(at, p, n) == 0)
			return true;
		p += n;
	}
	return false;
}

bool
tracker_is_local_submission(const char *host, const char *addr, unsigned port)
{
	/* Postfix's cleanup(8) emulates "localhost" [127.0.0.1 or ::1] port 0 for sendmail. */
	return port == 0 && host != NULL && strcmp(host, "localhost") == 0 && addr != NULL &&
	       (strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0);
}

void
tracker_mail(struct tracker_msg *m, const char *envfrom, const char *sasl_user, const char *domains,
             const char *trust, bool local)
{
	free(m->sender);
	free(m->sasl_user);
	m->sender = strip_brackets(envfrom ? envfrom : "");
	m->sasl_user = NULL;
	if (sasl_user != NULL && *sasl_user != '\0' &&
	    usable(sasl_user, strlen(sasl_user), MSEVENT_ADDR_MAX))
		m->sasl_user = mystrndup(sasl_user, strlen(sasl_user));
	m->enabled = false;
	if (m->sender[0] == '\0')
		m->why_not = "null sender";
	else if (!usable(m->sender, strlen(m->sender), MSEVENT_ADDR_MAX))
		m->why_not = "sender address is not usable (too long, not UTF-8, or control "
		             "characters)";
	else if (domains == NULL)
		m->why_not = "Postfix sent no {msgstatus_domains} (milter_macro_defaults)";
	else if (!tracker_domain_listed(domains, m->sender))
		m->why_not = "sender domain not enabled";
	else if (m->sasl_user == NULL && !local && !(trust && strcasecmp(trust, "any") == 0))
		m->why_not = "not submitted by an authenticated or local user";
	else {
		m->enabled = true;
		m->why_not = NULL;
	}
}

void
tracker_rcpt(struct tracker_msg *m, const char *rcpt, size_t max_recipients)
{
	char *addr = strip_brackets(rcpt ? rcpt : "");

	if (addr[0] == '\0' || !usable(addr, strlen(addr), MSEVENT_ADDR_MAX) ||
	    m->nrcpts >= max_recipients) {
		m->rcpts_dropped++;
		free(addr);
		return;
	}
	if (m->nrcpts == m->rcpt_cap) {
		m->rcpt_cap = m->rcpt_cap ? m->rcpt_cap * 2 : 8;
		m->rcpts = myreallocarray(m->rcpts, m->rcpt_cap, sizeof(*m->rcpts));
	}
	m->rcpts[m->nrcpts++] = addr;
}

void
tracker_header(struct tracker_msg *m, const char *name, const char *value)
{
	size_t vlen = value ? strlen(value) : 0;

	m->size += strlen(name) + 2 + vlen + 2;
	if (strcasecmp(name, TRACKER_HEADER) == 0) {
		if (m->foreign_tags++ == 0 && value != NULL) {
			const char *v = value;

			while (*v == ' ' || *v == '\t')
				v++;
			vlen = strcspn(v, " \t\r\n");
			if (id_usable(v, vlen) && v[vlen + strspn(v + vlen, " \t\r\n")] == '\0')
				m->foreign_id = mystrndup(v, vlen);
		}
		return;
	}
	if (m->message_id == NULL && strcasecmp(name, "Message-ID") == 0 && value != NULL) {
		/* trim folding white space */
		while (vlen > 0 &&
		       (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')) {
			value++;
			vlen--;
		}
		while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t' ||
		                    value[vlen - 1] == '\r' || value[vlen - 1] == '\n'))
			vlen--;
		if (vlen > 0 && usable(value, vlen,
		                       MSEVENT_MSGID_MAX < HEADER_VALUE_MAX ? MSEVENT_MSGID_MAX
		                                                            : HEADER_VALUE_MAX))
			m->message_id = mystrndup(value, vlen);
	}
}

void
tracker_body(struct tracker_msg *m, size_t len)
{
	m->size += len;
}

/*
 * One event of type per recipient, under res->tracking_id, appended to events and counted
 * in res->events. An inbound event carries the authenticating signature's facts (sig, dkim)
 * in its details, and no SASL login.
 */
static void
append_events(const struct tracker_msg *m, enum msevent_type type, const char *queue_id,
              int64_t now_ms, const struct dkimverify_sig *sig,
              const struct dkimverify_result *dkim, struct tracker_result *res, struct mbuf *events)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		char evid[RANDID_LEN + 1];
		struct msevent ev;
		const char *why;

		msevent_init(&ev);
		ev.id = randid_new(evid);
		ev.type = type;
		ev.time_ms = now_ms;
		ev.source = "milter";
		ev.tracking_id = res->tracking_id;
		ev.message_id = m->message_id;
		ev.queue_id = queue_id && *queue_id ? queue_id : NULL;
		ev.recipient = m->rcpts[i];
		ev.sender = m->sender;
		ev.size = (int64_t)m->size;
		if (sig != NULL) {
			msevent_detail_str(&ev, "origin_tracking_id", m->foreign_id);
			msevent_detail_str(&ev, "dkim_domain", sig->domain);
			if (dkim->from_domain[0] != '\0')
				msevent_detail_str(&ev, "from_domain", dkim->from_domain);
			msevent_detail_str(&ev, "aligned",
			                   sig->envelope_aligned && sig->from_aligned
			                           ? "envelope,from"
			                   : sig->envelope_aligned ? "envelope"
			                                           : "from");
		} else
			ev.sasl_user = m->sasl_user;
		if (ev.queue_id != NULL && msevent_validate(&ev, &why) < 0)
			ev.queue_id = NULL; /* not a Postfix queue id: leave it out */
		if (msevent_validate(&ev, &why) < 0) {
			msg_warn("not recording recipient %zu: %s", i + 1, why);
			msevent_clear(&ev);
			continue;
		}
		msevent_format(&ev, events);
		msevent_clear(&ev);
		res->events++;
	}
}

void
tracker_eom(struct tracker_msg *m, const char *queue_id, int64_t now_ms, struct tracker_result *res,
            struct mbuf *events)
{
	memset(res, 0, sizeof(*res));
	res->delete_tags = m->foreign_tags;
	if (!m->enabled || m->nrcpts == 0)
		return;
	res->tag = true;
	randid_new(res->tracking_id);
	append_events(m, MSEV_QUEUED, queue_id, now_ms, NULL, NULL, res, events);
	if (res->events == 0)
		res->tag = false; /* nothing could be recorded: do not pretend */
}

bool
tracker_wants_dkim(const struct tracker_msg *m)
{
	return !m->enabled && m->foreign_tags == 1 && m->foreign_id != NULL && m->nrcpts > 0;
}

const char *
tracker_sender_domain(const struct tracker_msg *m)
{
	const char *at = m->sender ? strrchr(m->sender, '@') : NULL;

	return at != NULL ? at + 1 : "";
}

void
tracker_inbound(struct tracker_msg *m, const struct dkimverify_result *dkim, const char *queue_id,
                int64_t now_ms, struct tracker_result *res, struct mbuf *events)
{
	const struct dkimverify_sig *sig = NULL;

	memset(res, 0, sizeof(*res));
	res->delete_tags = m->foreign_tags;
	if (!tracker_wants_dkim(m))
		return;
	/* the signature for the envelope sender's domain (whose site issued the id), else
	   the one for the From domain */
	for (size_t i = 0; i < dkim->nsigs && sig == NULL; i++)
		if (dkim->sigs[i].envelope_aligned)
			sig = &dkim->sigs[i];
	for (size_t i = 0; i < dkim->nsigs && sig == NULL; i++)
		if (dkim->sigs[i].from_aligned)
			sig = &dkim->sigs[i];
	if (sig == NULL)
		return;
	randid_new(res->tracking_id);
	append_events(m, MSEV_INBOUND, queue_id, now_ms, sig, dkim, res, events);
	res->tag = res->inbound = res->events > 0;
}
