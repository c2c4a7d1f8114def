/*
 * smtpreply - RFC 8621 smtpReply from Postfix's text or a Diagnostic-Code. See
 * smtpreply.h.
 */
#include "smtpreply.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* A bounded writer into out: what does not fit is dropped, the NUL always fits. */
struct out {
	char *buf;
	size_t len, size;
};

static void
put(struct out *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n && o->len + 1 < o->size; i++) {
		unsigned char c = (unsigned char)p[i];
		o->buf[o->len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	o->buf[o->len] = '\0';
}

/* An enhanced status code at p (before end): [245] "." 1*3digit "." 1*3digit, then a
   space or the end. Its length in *len_r. */
static bool
is_enhanced(const char *p, const char *end, size_t *len_r)
{
	size_t i = 1, d;

	if (p >= end || (p[0] != '2' && p[0] != '4' && p[0] != '5'))
		return false;
	for (int part = 0; part < 2; part++) {
		if (p + i >= end || p[i] != '.')
			return false;
		i++;
		for (d = 0; d < 3 && p + i < end && p[i] >= '0' && p[i] <= '9'; d++)
			i++;
		if (d == 0)
			return false;
	}
	if (p + i < end && p[i] != ' ')
		return false;
	*len_r = i;
	return true;
}

static bool
is_code(const char *p, const char *end)
{
	return end - p >= 3 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '5' &&
	       p[2] >= '0' && p[2] <= '9' && (end - p == 3 || p[3] == ' ' || p[3] == '-');
}

static bool
prefixed(const char *p, const char *lit)
{
	return strncmp(p, lit, strlen(lit)) == 0;
}

int
smtpreply_form(const char *text, const char *status, char *out, size_t outlen)
{
	static const char *const lead[] = {" said: ", " refused to talk to me: "};
	static const char suspended[] = "delivery temporarily suspended: ";
	static const char inreply[] = " (in reply to ";
	const char *p = text, *end, *q, *t, *enh = NULL;
	size_t elen = 0;
	bool own_enh = false, multi;
	struct out o = {out, 0, outlen};

	if (text == NULL || outlen == 0)
		return -1;
	if (strncasecmp(p, "smtp;", 5) == 0)
		p += 5;
	while (*p == ' ' || *p == '\t')
		p++;
	if (prefixed(p, suspended))
		p += sizeof(suspended) - 1;
	if (prefixed(p, "host "))
		for (size_t i = 0; i < sizeof(lead) / sizeof(lead[0]); i++)
			if ((q = strstr(p, lead[i])) != NULL) {
				p = q + strlen(lead[i]);
				break;
			}
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	if (!is_code(p, end))
		return -1;
	/* Postfix's " (in reply to RCPT TO command)": the last one, at the very end */
	if (end[-1] == ')')
		for (q = p; (q = strstr(q, inreply)) != NULL; q++)
			end = q;
	while (end > p + 3 && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	multi = end > p + 3 && p[3] == '-';
	t = end > p + 3 ? p + 4 : end;
	if (is_enhanced(t, end, &elen)) {
		enh = t;
		own_enh = true;
		t += elen;
	} else if (status != NULL && is_enhanced(status, status + strlen(status), &elen) &&
	           status[elen] == '\0')
		enh = status;
	while (t < end && (*t == ' ' || *t == '\t'))
		t++;

	put(&o, p, 3);
	if (enh != NULL) {
		put(&o, " ", 1);
		put(&o, enh, elen);
	}
	if (t < end)
		put(&o, " ", 1);
	while (t < end) {
		/* the next line of a multi-line reply: " 550-5.7.1 " or, the last, " 550 5.7.1 " */
		const char *sp = multi ? memchr(t, ' ', (size_t)(end - t)) : NULL, *next;
		size_t l;

		if (sp == NULL) {
			put(&o, t, (size_t)(end - t));
			break;
		}
		put(&o, t, (size_t)(sp - t));
		next = sp + 1;
		if (next + 3 <= end && memcmp(next, p, 3) == 0 && is_code(next, end) &&
		    next + 3 < end) {
			const char *after = next + 4;
			if (!own_enh)
				next = after;
			else if (is_enhanced(after, end, &l) && l == elen &&
			         memcmp(after, enh, l) == 0)
				next = after + l;
			if (next != sp + 1)
				while (next < end && (*next == ' ' || *next == '\t'))
					next++;
		}
		if (next < end)
			put(&o, " ", 1);
		t = next;
	}
	return 0;
}
