/*
 * mdn - the decisions and the text of server-sent MDNs. See mdn.h.
 */
#include "mdn.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mbuf.h"
#include "utf8.h"

#define LIST_SEEN_MAX 8 /* distinct addresses remembered while counting a list */

enum mdn_pref
mdn_pref_parse(const char *s)
{
	if (s != NULL && strcmp(s, "never") == 0)
		return MDN_PREF_NEVER;
	if (s != NULL && strcmp(s, "always") == 0)
		return MDN_PREF_ALWAYS;
	return MDN_PREF_UNSET;
}

const char *
mdn_pref_name(enum mdn_pref pref)
{
	return pref == MDN_PREF_NEVER ? "never" : pref == MDN_PREF_ALWAYS ? "always" : NULL;
}

const char *
mdn_decision_name(enum mdn_decision d)
{
	return d == MDN_SEND ? "send" : d == MDN_DECLINED ? "declined" : "refused";
}

/* --- addresses ---------------------------------------------------------------------- */

/* Whether s is an addr-spec we hand on: local@domain, printable ASCII without spaces, a
   local part quoted or of atoms, a domain of atoms and dots. */
static bool
addr_ok(const char *s, size_t len)
{
	const char *at = NULL;
	size_t i = 0;

	if (len == 0 || len > MDN_ADDR_MAX || s[0] == '-')
		return false;
	if (s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++)
			if (s[i] == '\\' || (unsigned char)s[i] < 0x20 ||
			    (unsigned char)s[i] > 0x7e)
				return false;
		if (i >= len)
			return false;
		i++;
	} else {
		for (; i < len && s[i] != '@'; i++)
			if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e ||
			    strchr("\"(),:;<>[\\]", s[i]) != NULL)
				return false;
	}
	if (i == 0 || i >= len || s[i] != '@')
		return false;
	at = s + i;
	if (at + 1 == s + len)
		return false;
	for (const char *d = at + 1; d < s + len; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') ||
		      (*d >= '0' && *d <= '9') || *d == '-' || *d == '.'))
			return false;
	return at[1] != '.' && s[len - 1] != '.';
}

bool
mdn_addr_same(const char *a, const char *b)
{
	const char *ad = strrchr(a, '@'), *bd = strrchr(b, '@');

	if (ad == NULL || bd == NULL || ad - a != bd - b)
		return false;
	return strncmp(a, b, (size_t)(ad - a)) == 0 && strcasecmp(ad, bd) == 0;
}

/* One element of an address list: what stands in <...> if anything does, else the text
   outside comments and whitespace. *end_r is where the next element starts. */
struct element {
	char addr[MDN_ADDR_MAX + 2];
	size_t len;
	bool angle, too_long, broken;
	bool space; /* whitespace or a comment since the last character kept */
};

static void
element_put(struct element *e, char c)
{
	/* "a b@c" or "a@b c": words of an address must be joined by '.' or '@' */
	if (e->space && e->len > 0 && c != '.' && c != '@' && e->addr[e->len - 1] != '.' &&
	    e->addr[e->len - 1] != '@')
		e->broken = true;
	e->space = false;
	if (e->len < sizeof(e->addr) - 1)
		e->addr[e->len++] = c;
	else
		e->too_long = true;
}

static const char *
element_parse(const char *p, struct element *e)
{
	bool in_angle = false, angle_done = false;

	memset(e, 0, sizeof(*e));
	for (; *p != '\0'; p++) {
		if (*p == '(') {
			int depth = 1;
			for (p++; *p != '\0' && depth > 0; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
			}
			p--;
			e->space = true;
			continue;
		}
		if (*p == '"') {
			bool keep = in_angle || !e->angle;
			if (keep)
				element_put(e, '"');
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (keep)
					element_put(e, *p);
			}
			if (*p == '\0')
				break;
			if (keep)
				element_put(e, '"');
			continue;
		}
		if (*p == ',' && !in_angle) {
			p++;
			break;
		}
		if (*p == '<' && !in_angle) {
			/* what came before was a display name: forget it */
			e->broken = angle_done;
			e->too_long = false;
			in_angle = e->angle = true;
			e->len = 0;
			e->space = false;
			continue;
		}
		if (*p == '>' && in_angle) {
			in_angle = false;
			angle_done = true;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			e->space = true;
			continue;
		}
		if (angle_done)
			continue; /* only comments and spaces may follow <...> */
		if (in_angle || !e->angle)
			element_put(e, *p);
	}
	if (in_angle)
		e->broken = true;
	e->addr[e->len] = '\0';
	/* a source route (<@a,@b:x@y>) is dropped */
	if (e->angle && e->addr[0] == '@') {
		char *colon = strchr(e->addr, ':');
		if (colon == NULL)
			e->broken = true;
		else {
			e->len -= (size_t)(colon + 1 - e->addr);
			memmove(e->addr, colon + 1, e->len + 1);
		}
	}
	return p;
}

int
mdn_addr_parse(const char *value, char addr_r[MDN_ADDR_MAX + 1], int *distinct_r)
{
	char seen[LIST_SEEN_MAX][MDN_ADDR_MAX + 1];
	int nseen = 0, distinct = 0;
	bool null_path = false;
	const char *p = value;

	addr_r[0] = '\0';
	if (distinct_r != NULL)
		*distinct_r = 0;
	if (value == NULL)
		return -1;
	while (*p != '\0') {
		struct element e;
		bool again = false;

		p = element_parse(p, &e);
		if (e.broken || e.too_long)
			return -1;
		if (e.len == 0) {
			null_path |= e.angle;
			continue;
		}
		if (!addr_ok(e.addr, e.len))
			return -1;
		for (int i = 0; i < nseen && !again; i++)
			again = mdn_addr_same(seen[i], e.addr);
		if (again)
			continue;
		if (distinct == 0)
			memcpy(addr_r, e.addr, e.len + 1);
		if (nseen < LIST_SEEN_MAX)
			memcpy(seen[nseen++], e.addr, e.len + 1);
		distinct++;
	}
	if (distinct_r != NULL)
		*distinct_r = distinct;
	if (distinct > 0)
		return 1;
	return null_path ? 0 : -1;
}

/* --- the decision ------------------------------------------------------------------- */

/* Whether a Message-ID can be repeated in headers: <...> of printable ASCII, no spaces. */
static bool
message_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n < 3 || n > MDN_MSGID_MAX || id[0] != '<' || id[n - 1] != '>')
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] > 0x7e || id[i] == '<' ||
		    id[i] == '>')
			return false;
	return true;
}

/* Whether Content-Type names a multipart/report. */
static bool
is_report(const char *content_type)
{
	const char *p = content_type;

	if (p == NULL)
		return false;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return strncasecmp(p, "multipart/report", 16) == 0 &&
	       (p[16] == '\0' || p[16] == ';' || p[16] == ' ' || p[16] == '\t');
}

/* Whether Disposition-Notification-Options has a parameter of importance "required":
   "attr=required,value; attr=optional,value" (RFC 8098 section 2.2). */
static bool
has_required_option(const char *options)
{
	const char *p = options;

	if (p == NULL)
		return false;
	while ((p = strchr(p, '=')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "required", 8) == 0 &&
		    (p[8] == ',' || p[8] == ' ' || p[8] == '\t' || p[8] == ';' || p[8] == '\0'))
			return true;
	}
	return false;
}

enum mdn_decision
mdn_decide(const struct mdn_request *req, enum mdn_pref pref, char to_r[MDN_ADDR_MAX + 1],
           const char **reason_r)
{
	char rp[MDN_ADDR_MAX + 1];
	int distinct, r;

	to_r[0] = '\0';
	if (pref == MDN_PREF_UNSET)
		pref = req->mdn_default == MDN_PREF_ALWAYS ? MDN_PREF_ALWAYS : MDN_PREF_NEVER;
	if (pref != MDN_PREF_ALWAYS) {
		*reason_r = "the user's preference is never";
		return MDN_DECLINED;
	}
	if (is_report(req->content_type)) {
		*reason_r = "the message is a report (multipart/report)";
		return MDN_REFUSED;
	}
	if (req->message_id == NULL || req->message_id[0] == '\0') {
		*reason_r = "the message has no Message-ID";
		return MDN_REFUSED;
	}
	if (!message_id_ok(req->message_id)) {
		*reason_r = "the Message-ID is malformed";
		return MDN_REFUSED;
	}
	if (req->user == NULL || !addr_ok(req->user, strlen(req->user))) {
		*reason_r = "the user name is not a mail address";
		return MDN_REFUSED;
	}
	if (mdn_addr_parse(req->dnt, to_r, &distinct) != 1) {
		to_r[0] = '\0';
		*reason_r = "Disposition-Notification-To holds no usable address";
		return MDN_REFUSED;
	}
	if (distinct > 1) {
		to_r[0] = '\0';
		*reason_r = "Disposition-Notification-To holds more than one address";
		return MDN_REFUSED;
	}
	if (req->return_path == NULL) {
		to_r[0] = '\0';
		*reason_r = "the message has no Return-Path";
		return MDN_REFUSED;
	}
	if ((r = mdn_addr_parse(req->return_path, rp, &distinct)) != 1 || distinct != 1) {
		to_r[0] = '\0';
		*reason_r = r == 0 ? "the Return-Path is null" : "the Return-Path is no address";
		return MDN_REFUSED;
	}
	if (!mdn_addr_same(to_r, rp)) {
		to_r[0] = '\0';
		*reason_r = "Disposition-Notification-To differs from the Return-Path";
		return MDN_REFUSED;
	}
	if (has_required_option(req->dn_options)) {
		to_r[0] = '\0';
		*reason_r = "Disposition-Notification-Options has a required parameter";
		return MDN_REFUSED;
	}
	*reason_r = "sent automatically: the user's preference is always";
	return MDN_SEND;
}

/* --- the notification --------------------------------------------------------------- */

/* The subject, cut at MDN_SUBJECT_MAX bytes on a character, control characters and
   broken bytes made spaces and '?'. */
static void
subject_clean(const char *s, char out[MDN_SUBJECT_MAX + 1], bool *ascii_r)
{
	size_t n = strlen(s), o = 0;

	*ascii_r = true;
	while (*s == ' ' || *s == '\t')
		s++, n--;
	for (size_t i = 0, k; i < n; i += k) {
		k = utf8_seq_len(s + i, n - i);
		if (k == 0) {
			k = 1;
			if (o + 1 > MDN_SUBJECT_MAX)
				break;
			out[o++] = '?';
			continue;
		}
		if (o + k > MDN_SUBJECT_MAX)
			break;
		if (k == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f))
			out[o++] = ' ';
		else {
			memcpy(out + o, s + i, k);
			o += k;
			*ascii_r &= k == 1;
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* Append text as RFC 2047 encoded words (UTF-8, base64), at most 45 bytes each, whole
   characters, folded onto lines of their own. */
static void
put_encoded_words(struct mbuf *out, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		unsigned char b64[64];
		size_t take = 0, k;

		while (i + take < n && (k = utf8_seq_len(s + i + take, n - i - take)) > 0 &&
		       take + k <= 45)
			take += k;
		if (take == 0)
			take = 1; /* cannot happen with clean text; never loop */
		EVP_EncodeBlock(b64, (const unsigned char *)s + i, (int)take);
		mbuf_printf(out, "%s=?UTF-8?B?%s?=", i > 0 ? "\n " : "", (const char *)b64);
		i += take;
	}
}

void
mdn_compose(const struct mdn_request *req, const struct mdn_env *env, struct mbuf *out)
{
	char subject[MDN_SUBJECT_MAX + 1] = "", date[64];
	bool ascii = true;
	struct tm tm;
	time_t t = (time_t)env->date;

	if (req->subject != NULL)
		subject_clean(req->subject, subject, &ascii);
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);

	mbuf_printf(out, "From: <%s>\n", req->user);
	mbuf_printf(out, "To: <%s>\n", env->notify_to);
	mbuf_puts(out, "Subject: ");
	if (ascii)
		mbuf_printf(out, "Displayed: %s\n", subject);
	else {
		mbuf_puts(out, "Displayed:\n ");
		put_encoded_words(out, subject);
		mbuf_putc(out, '\n');
	}
	mbuf_printf(out, "Date: %s\n", date);
	mbuf_printf(out, "Message-ID: %s\n", env->own_message_id);
	mbuf_printf(out, "In-Reply-To: %s\n", req->message_id);
	mbuf_printf(out, "References: %s\n", req->message_id);
	mbuf_puts(out, "Auto-Submitted: auto-replied\n");
	mbuf_puts(out, "MIME-Version: 1.0\n");
	mbuf_printf(out,
	            "Content-Type: multipart/report; report-type=disposition-notification;\n"
	            "\tboundary=\"%s\"\n\n",
	            env->boundary);
	mbuf_puts(out, "This is a message disposition notification (RFC 8098) in MIME format.\n\n");

	mbuf_printf(out, "--%s\n", env->boundary);
	mbuf_puts(out, "Content-Type: text/plain; charset=utf-8\n"
	               "Content-Transfer-Encoding: 8bit\n\n");
	mbuf_printf(out,
	            "The message %s%s%s to <%s> was displayed in the recipient's mailbox.\n"
	            "This is no guarantee that the message has been read or understood.\n\n",
	            subject[0] != '\0' ? "\"" : "", subject, subject[0] != '\0' ? "\"" : "",
	            req->user);

	mbuf_printf(out, "--%s\n", env->boundary);
	mbuf_puts(out, "Content-Type: message/disposition-notification\n\n");
	mbuf_printf(out, "Reporting-UA: %s; msgstatus\n", env->reporting_host);
	mbuf_printf(out, "Final-Recipient: rfc822; %s\n", req->user);
	mbuf_printf(out, "Original-Message-ID: %s\n", req->message_id);
	mbuf_puts(out, "Disposition: automatic-action/MDN-sent-automatically; displayed\n\n");
	mbuf_printf(out, "--%s--\n", env->boundary);
}
