/*
 * reqhead - an HTTP/1.1 request head, checked by RFC 9112 and rewritten for libwebsockets.
 * See reqhead.h for the order of the checks.
 */
#include "reqhead.h"

#include <string.h>
#include <strings.h>

/* The fields lws gets, because statusd (http.c, stream.c) or lws's WebSocket handshake
   reads them. A field http.c starts to read must be added here. */
enum kept_kind { KEPT_ONE = 0, KEPT_LIST, KEPT_CONTENT_LENGTH, KEPT_UPGRADE };
static const struct kept {
	const char *name;
	enum kept_kind kind; /* all but KEPT_LIST come once: a second one is refused */
} kept[] = {
        {"host", KEPT_ONE},
        {"authorization", KEPT_ONE},
        {"origin", KEPT_ONE},
        {"last-event-id", KEPT_ONE},
        {"upgrade", KEPT_UPGRADE},
        {"connection", KEPT_LIST},
        {"content-length", KEPT_CONTENT_LENGTH},
        {"content-type", KEPT_ONE},
        {"accept", KEPT_LIST},
        {"sec-websocket-key", KEPT_ONE},
        {"sec-websocket-version", KEPT_ONE},
        {"sec-websocket-protocol", KEPT_LIST},
        /* a federation report's signature (fedin.c) */
        {"signature-input", KEPT_ONE},
        {"signature", KEPT_ONE},
        {"content-digest", KEPT_ONE},
};
#define NKEPT (sizeof(kept) / sizeof(kept[0]))

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

/* RFC 9110 §5.6.2 tchar */
static bool
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9110 §5.5 field-vchar, or a blank within the value */
static bool
value_char(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

long
reqhead_end(const char *buf, size_t len, struct reqhead_scan *scan, unsigned *status_r,
            const char **error_r)
{
	size_t i, lim = len < REQHEAD_MAX ? len : REQHEAD_MAX;

	for (i = scan->pos; i < lim; i++) {
		if (buf[i] == '\r') {
			if (i + 1 == len)
				break; /* its LF may follow */
			if (i + 1 == lim)
				continue; /* too long anyway */
			if (buf[i + 1] != '\n')
				goto bare;
			continue;
		}
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			goto bare;
		if (i - 1 == scan->line_start && scan->request_line) {
			scan->pos = i + 1;
			return (long)(i + 1); /* the blank line after the fields */
		}
		if (i - 1 != scan->line_start)
			scan->request_line = true; /* else a blank line before it: skipped */
		scan->line_start = i + 1;
	}
	scan->pos = i;
	if (len >= REQHEAD_MAX) {
		if (!scan->request_line) {
			*status_r = 414;
			*error_r = "the request line is longer than the server takes";
		} else {
			*status_r = 431;
			*error_r = "the request's header fields are larger than the server takes";
		}
		return -1;
	}
	return 0;
bare:
	*status_r = 400;
	*error_r = "every line of a request head ends with CR LF";
	return -1;
}

/* Trim blanks (OWS) from both ends of [*p, *p + *n). */
static void
trim(const char **p, size_t *n)
{
	while (*n > 0 && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

static unsigned
request_line(const char *line, size_t n, struct reqhead *h, const char **error_r)
{
	const char *sp1 = memchr(line, ' ', n), *sp2, *target, *version, *q;
	size_t mlen, tlen, vlen, i;
	bool known = false;

	for (i = 0; i < n; i++)
		if (((unsigned char)line[i] < 0x21 && line[i] != ' ') || line[i] == 0x7f) {
			*error_r = "the request line holds a control character";
			return 400;
		}
	if (sp1 == NULL || sp1 == line ||
	    (sp2 = memchr(sp1 + 1, ' ', (size_t)(line + n - sp1 - 1))) == NULL ||
	    memchr(sp2 + 1, ' ', (size_t)(line + n - sp2 - 1)) != NULL) {
		*error_r = "a request line is a method, a target and HTTP/1.1, one space apart";
		return 400;
	}
	mlen = (size_t)(sp1 - line);
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	version = sp2 + 1;
	vlen = (size_t)(line + n - version);
	for (i = 0; i < mlen; i++)
		if (!tchar((unsigned char)line[i])) {
			*error_r = "the method is not a token";
			return 400;
		}
	if (vlen != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
	    version[6] != '.' || version[7] < '0' || version[7] > '9') {
		*error_r = "a request line ends with the HTTP version, such as HTTP/1.1";
		return 400;
	}
	h->http11 = memcmp(version, "HTTP/1.1", 8) == 0;
	if (!h->http11 && memcmp(version, "HTTP/1.0", 8) != 0) {
		*error_r = "only HTTP/1.1 and HTTP/1.0 are served";
		return 505;
	}
	if (tlen == 0 || target[0] != '/') {
		*error_r = "the request target is a path starting with /";
		return 400;
	}
	for (i = 0; i < tlen; i++)
		if ((unsigned char)target[i] > 0x7e) {
			*error_r = "the request target is ASCII (percent-encode the rest)";
			return 400;
		}
	if (tlen > REQHEAD_TARGET_MAX ||
	    (size_t)(((q = memchr(target, '?', tlen)) ? q : target + tlen) - target) >
	            REQHEAD_PATH_MAX) {
		*error_r = "the request target is longer than the server takes";
		return 414;
	}
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
		if (strlen(methods[m]) == mlen && memcmp(methods[m], line, mlen) == 0)
			known = true;
	if (!known) {
		*error_r = "the method is not one the server serves";
		return 501;
	}
	mbuf_append(&h->out, line, n);
	mbuf_puts(&h->out, "\r\n");
	return 0;
}

bool
reqhead_content_length(const char *v, size_t n, long long *len_r)
{
	long long x = 0;

	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (v[i] - '0');
	}
	*len_r = x;
	return true;
}

bool
reqhead_chunked(const char *v, size_t n)
{
	return n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 &&
	       (n == 7 || v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t');
}

unsigned
reqhead_check(const char *buf, size_t len, struct reqhead *h, const char **error_r)
{
	const char *p = buf, *end = buf + len, *eol;
	unsigned status, seen[NKEPT] = {0}, fields = 0;
	bool te = false, te_chunked = false;

	h->len = len;
	h->content_length = -1;
	h->upgrade = false;
	h->http11 = false;
	h->expect_continue = false;
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2; /* blank lines before the request line */
	if ((eol = memchr(p, '\r', (size_t)(end - p))) == NULL || eol + 1 >= end ||
	    eol[1] != '\n') {
		*error_r = "every line of a request head ends with CR LF";
		return 400;
	}
	if ((status = request_line(p, (size_t)(eol - p), h, error_r)) != 0)
		return status;
	for (p = eol + 2; p < end; p = eol + 2) {
		const char *colon, *v;
		size_t n, vn, k;

		if ((eol = memchr(p, '\r', (size_t)(end - p))) == NULL || eol + 1 >= end ||
		    eol[1] != '\n') {
			*error_r = "every line of a request head ends with CR LF";
			return 400;
		}
		n = (size_t)(eol - p);
		if (n == 0)
			break; /* the blank line: the end */
		if (n > REQHEAD_LINE_MAX || ++fields > REQHEAD_FIELDS_MAX) {
			*error_r = n > REQHEAD_LINE_MAX
			                   ? "a header field is longer than the server takes"
			                   : "a request has too many header fields";
			return 431;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			*error_r = "a header field cannot continue on the next line (obs-fold)";
			return 400;
		}
		if ((colon = memchr(p, ':', n)) == NULL || colon == p) {
			*error_r = "a header field is a name, a colon and a value";
			return 400;
		}
		for (const char *c = p; c < colon; c++)
			if (!tchar((unsigned char)*c)) {
				*error_r =
				        *c == ' ' || *c == '\t'
				                ? "no whitespace is allowed between a header name "
				                  "and its colon"
				                : "a header name is a token";
				return 400;
			}
		v = colon + 1;
		vn = (size_t)(eol - v);
		for (size_t i = 0; i < vn; i++)
			if (!value_char((unsigned char)v[i])) {
				*error_r = "a header value holds a control character";
				return 400;
			}
		trim(&v, &vn);
		n = (size_t)(colon - p);
		if (n == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
			te = true;
			te_chunked = reqhead_chunked(v, vn);
			continue;
		}
		if (n == 6 && strncasecmp(p, "expect", 6) == 0) {
			/* RFC 9110 §10.1.1: front.c sends the 100 before it reads the body */
			if (vn != 12 || strncasecmp(v, "100-continue", 12) != 0) {
				*error_r = "the only expectation served is 100-continue";
				return 417;
			}
			h->expect_continue = true;
			continue;
		}
		for (k = 0; k < NKEPT; k++)
			if (strlen(kept[k].name) == n && strncasecmp(kept[k].name, p, n) == 0)
				break;
		if (k == NKEPT)
			continue; /* not for lws */
		if (kept[k].kind != KEPT_LIST && seen[k]++ > 0) {
			*error_r = kept[k].kind == KEPT_CONTENT_LENGTH
			                   ? "Content-Length must be one number, given once"
			                   : "a header field that is given once came twice";
			return 400;
		}
		if (kept[k].kind == KEPT_CONTENT_LENGTH &&
		    !reqhead_content_length(v, vn, &h->content_length)) {
			*error_r = "Content-Length must be one number, given once";
			return 400;
		}
		if (kept[k].kind == KEPT_UPGRADE)
			h->upgrade = true;
		if (kept[k].kind == KEPT_CONTENT_LENGTH)
			continue; /* the body goes apart: see the end */
		mbuf_puts(&h->out, kept[k].name);
		mbuf_puts(&h->out, ": ");
		mbuf_append(&h->out, v, vn);
		mbuf_puts(&h->out, "\r\n");
	}
	if (te && h->content_length >= 0) {
		*error_r = "Content-Length and Transfer-Encoding must not come together";
		return 400;
	}
	if (te && te_chunked) {
		*error_r = "a request body needs a Content-Length (chunked bodies are not "
		           "supported)";
		return 411;
	}
	if (te) {
		*error_r = "a Transfer-Encoding that does not end with chunked has no length";
		return 400;
	}
	if (h->http11 && seen[0] == 0) { /* kept[0]: host */
		*error_r = "an HTTP/1.1 request needs a Host header field";
		return 400;
	}
	/* the body goes apart: lws reads none (without a length, lws 4.1 would take the
	   rest of the connection for the body of a POST or PUT) */
	mbuf_puts(&h->out, "content-length: 0\r\n\r\n");
	return 0;
}

const char *
reqhead_reason(unsigned status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}
