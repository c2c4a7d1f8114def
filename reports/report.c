/*
 * report - DSN and MDN parsing with GMime 3. See report.h.
 */
#include "report.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "utf8.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

/* A copy of s[0..n) fit to keep: see SECURITY in report.h. */
static char *
clean(const char *s, size_t n)
{
	char *out;
	bool ascii_only;
	size_t o = 0;

	while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++, n--;
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (n > REPORT_FIELD_MAX)
		n = REPORT_FIELD_MAX;
	if ((out = malloc(n + 1)) == NULL)
		msg_fatal("out of memory");
	/* folding white space (and any run of it) becomes one space */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
		} else
			out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	n = o;
	out[n] = '\0';
	ascii_only = !utf8_valid(out, n);
	if (ascii_only) {
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] >= 0x80)
				out[i] = '?';
	}
	return out;
}

/* The part after "type;" (RFC 3464 address-type, diagnostic-type, mta-name-type). */
static char *
typed(const char *v, bool address)
{
	const char *semi = strchr(v, ';');
	const char *p = semi ? semi + 1 : v;
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (address && n >= 2 && p[0] == '<' && p[n - 1] == '>')
		p++, n -= 2;
	return clean(p, n);
}

static void
set(char **field, char *value)
{
	if (*field == NULL)
		*field = value;
	else
		free(value);
}

/* A header block's value, unfolded by GMime, or NULL. */
static const char *
hval(GMimeHeaderList *h, const char *name)
{
	GMimeHeader *hd = g_mime_header_list_get_header(h, name);

	return hd != NULL ? g_mime_header_get_value(hd) : NULL;
}

/* Parse one header block (text without its blank line) with GMime's parser. */
static GMimeObject *
parse_block(const char *text, size_t len)
{
	GMimeStream *st = g_mime_stream_mem_new();
	GMimeParser *p;
	GMimeObject *obj;

	g_mime_stream_write(st, text, len);
	g_mime_stream_write_string(st, "\n\n");
	g_mime_stream_reset(st);
	p = g_mime_parser_new_with_stream(st);
	obj = g_mime_parser_construct_part(p, NULL);
	g_object_unref(p);
	g_object_unref(st);
	return obj;
}

/* The decoded content of a leaf part, as a NUL-terminated GByteArray (caller unrefs). */
static GByteArray *
content_of(GMimeObject *part)
{
	GMimeDataWrapper *w;
	GMimeStream *st;
	GByteArray *a;

	if (!GMIME_IS_PART(part) || (w = g_mime_part_get_content(GMIME_PART(part))) == NULL)
		return NULL;
	a = g_byte_array_new();
	st = g_mime_stream_mem_new_with_byte_array(a);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(st), FALSE);
	g_mime_data_wrapper_write_to_stream(w, st);
	g_object_unref(st);
	if (a->len > REPORT_INPUT_MAX)
		g_byte_array_set_size(a, REPORT_INPUT_MAX);
	g_byte_array_append(a, (const guint8 *)"", 1);
	return a;
}

static void
take_dsn_msg_fields(struct report *r, GMimeHeaderList *h)
{
	const char *v;

	if ((v = hval(h, "Original-Envelope-Id")) != NULL)
		set(&r->envelope_id, clean(v, strlen(v)));
	if ((v = hval(h, "Reporting-MTA")) != NULL)
		set(&r->reporting_mta, typed(v, false));
}

static void
take_rcpt_fields(struct report *r, GMimeHeaderList *h)
{
	struct report_rcpt *rc;
	const char *v;

	if (hval(h, "Final-Recipient") == NULL && hval(h, "Original-Recipient") == NULL)
		return;
	if (r->nrcpts >= REPORT_RCPTS_MAX) {
		r->rcpts_dropped++;
		return;
	}
	if (r->nrcpts % 8 == 0 &&
	    (r->rcpts = realloc(r->rcpts, (r->nrcpts + 8) * sizeof(*r->rcpts))) == NULL)
		msg_fatal("out of memory");
	rc = &r->rcpts[r->nrcpts++];
	memset(rc, 0, sizeof(*rc));
	if ((v = hval(h, "Original-Recipient")) != NULL)
		rc->original_recipient = typed(v, true);
	if ((v = hval(h, "Final-Recipient")) != NULL)
		rc->final_recipient = typed(v, true);
	if ((v = hval(h, "Action")) != NULL) {
		rc->action = clean(v, strlen(v));
		for (char *p = rc->action; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	if ((v = hval(h, "Status")) != NULL)
		rc->status = clean(v, strcspn(v, " \t("));
	if ((v = hval(h, "Diagnostic-Code")) != NULL)
		rc->diagnostic_code = typed(v, false);
	if ((v = hval(h, "Remote-MTA")) != NULL)
		rc->remote_mta = typed(v, false);
}

static void
take_mdn_fields(struct report *r, GMimeHeaderList *h)
{
	const char *v;

	if ((v = hval(h, "Reporting-UA")) != NULL)
		set(&r->reporting_mta, typed(v, false));
	if ((v = hval(h, "Original-Message-ID")) != NULL)
		set(&r->original_message_id, clean(v, strlen(v)));
	if ((v = hval(h, "Disposition")) != NULL)
		set(&r->disposition, clean(v, strlen(v)));
	take_rcpt_fields(r, h);
}

static void
take_group(struct report *r, const char *text, size_t len, size_t *group)
{
	GMimeObject *obj = parse_block(text, len);
	GMimeHeaderList *h;

	if (obj == NULL)
		return;
	h = g_mime_object_get_header_list(obj);
	if (r->kind == REPORT_MDN)
		take_mdn_fields(r, h);
	else if (*group == 0 && hval(h, "Final-Recipient") == NULL)
		take_dsn_msg_fields(r, h);
	else
		take_rcpt_fields(r, h);
	g_object_unref(obj);
	(*group)++;
}

/* The field groups of a status part: split at blank lines, each read by GMime. */
static void
take_status(struct report *r, const char *text, size_t len)
{
	size_t start = 0, pos = 0, group = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) + 1 : len, k = pos;

		while (k < end &&
		       (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n'))
			k++;
		if (k == end) { /* a blank line ends a group */
			if (pos > start)
				take_group(r, text + start, pos - start, &group);
			start = end;
		}
		pos = end;
	}
	if (len > start)
		take_group(r, text + start, len - start, &group);
}

static void
take_returned_headers(struct report *r, GMimeHeaderList *h)
{
	const char *v;

	if ((v = hval(h, "Msgstatus-Id")) != NULL)
		set(&r->msgstatus_id, clean(v, strlen(v)));
	if ((v = hval(h, "Message-ID")) != NULL)
		set(&r->message_id, clean(v, strlen(v)));
}

/* An MDN that names its message neither in Original-Message-ID nor in returned headers
   (some clients leave both out): its own In-Reply-To, when that is one "<...>" alone. */
static void
take_in_reply_to(struct report *r, GMimeHeaderList *h)
{
	const char *v = hval(h, "In-Reply-To");
	size_t n;

	if (v == NULL)
		return;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n < 3 || v[0] != '<' || v[n - 1] != '>' || memchr(v + 1, '<', n - 1) != NULL ||
	    memchr(v, ' ', n) != NULL)
		return;
	set(&r->original_message_id, clean(v, n));
}

static bool
ct_is(GMimeObject *o, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

int
report_parse(const char *data, size_t len, struct report *r, const char **error_r)
{
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;
	GMimeObject *top;
	GMimeMultipart *mp;
	const char *rtype;
	bool status_seen = false;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	pthread_once(&gmime_once, gmime_start);
	if (len > REPORT_INPUT_MAX)
		len = REPORT_INPUT_MAX;
	st = g_mime_stream_mem_new_with_buffer(data, len);
	p = g_mime_parser_new_with_stream(st);
	m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(st);
	if (m == NULL) {
		*error_r = "not a MIME message";
		return -1;
	}
	top = g_mime_message_get_mime_part(m);
	if (top == NULL || !GMIME_IS_MULTIPART(top) ||
	    !(ct_is(top, "multipart", "report") || ct_is(top, "multipart", "mixed"))) {
		*error_r = "not a multipart/report";
		goto out;
	}
	rtype = g_mime_content_type_get_parameter(g_mime_object_get_content_type(top),
	                                          "report-type");
	/* Some MTAs send a DSN as multipart/mixed: it counts if it has a delivery-status part */
	if (ct_is(top, "multipart", "mixed")) {
		rtype = NULL;
		for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(top)); i++)
			if (ct_is(g_mime_multipart_get_part(GMIME_MULTIPART(top), i), "message",
			          "delivery-status"))
				rtype = "delivery-status";
		if (rtype == NULL) {
			*error_r = "not a multipart/report";
			goto out;
		}
	}
	if (rtype != NULL && (strcasecmp(rtype, "delivery-status") == 0 ||
	                      strcasecmp(rtype, "global-delivery-status") == 0))
		r->kind = REPORT_DSN;
	else if (rtype != NULL && strcasecmp(rtype, "disposition-notification") == 0)
		r->kind = REPORT_MDN;
	else {
		*error_r = "not a delivery-status or disposition-notification report";
		goto out;
	}
	mp = GMIME_MULTIPART(top);
	for (int i = 0; i < g_mime_multipart_get_count(mp); i++) {
		GMimeObject *part = g_mime_multipart_get_part(mp, i);
		GByteArray *a;

		if (!status_seen &&
		    (r->kind == REPORT_DSN
		             ? ct_is(part, "message", "delivery-status") ||
		                       ct_is(part, "message", "global-delivery-status")
		             : ct_is(part, "message", "disposition-notification"))) {
			if ((a = content_of(part)) != NULL) {
				take_status(r, (const char *)a->data, a->len - 1);
				g_byte_array_unref(a);
				status_seen = true;
			}
		} else if (ct_is(part, "text", "rfc822-headers") ||
		           ct_is(part, "message", "global-headers")) {
			if ((a = content_of(part)) != NULL) {
				GMimeObject *h = parse_block((const char *)a->data, a->len - 1);
				if (h != NULL) {
					take_returned_headers(r, g_mime_object_get_header_list(h));
					g_object_unref(h);
				}
				g_byte_array_unref(a);
			}
		} else if (GMIME_IS_MESSAGE_PART(part)) {
			GMimeMessage *orig =
			        g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));
			if (orig != NULL)
				take_returned_headers(
				        r, g_mime_object_get_header_list(GMIME_OBJECT(orig)));
		}
	}
	if (r->kind == REPORT_MDN && r->original_message_id == NULL && r->message_id == NULL)
		take_in_reply_to(r, g_mime_object_get_header_list(GMIME_OBJECT(m)));
	if (!status_seen)
		*error_r = "no status part";
	else if (r->nrcpts == 0 && r->rcpts_dropped == 0)
		*error_r = "no recipient in the report";
	else
		ret = 0;
out:
	g_object_unref(m);
	if (ret < 0)
		report_clear(r);
	return ret;
}

void
report_clear(struct report *r)
{
	for (size_t i = 0; i < r->nrcpts; i++) {
		free(r->rcpts[i].original_recipient);
		free(r->rcpts[i].final_recipient);
		free(r->rcpts[i].action);
		free(r->rcpts[i].status);
		free(r->rcpts[i].diagnostic_code);
		free(r->rcpts[i].remote_mta);
	}
	free(r->rcpts);
	free(r->envelope_id);
	free(r->reporting_mta);
	free(r->disposition);
	free(r->original_message_id);
	free(r->msgstatus_id);
	free(r->message_id);
	memset(r, 0, sizeof(*r));
}

enum msevent_type
report_event(enum report_kind kind, const char *v)
{
	static const struct {
		enum report_kind kind;
		const char *word;
		enum msevent_type type;
	} map[] = {
	        {REPORT_DSN, "delivered", MSEV_DELIVERED}, {REPORT_DSN, "relayed", MSEV_RELAYED},
	        {REPORT_DSN, "delayed", MSEV_DEFERRED},    {REPORT_DSN, "failed", MSEV_BOUNCED},
	        {REPORT_MDN, "displayed", MSEV_READ},      {REPORT_MDN, "deleted", MSEV_DELETED},
	};
	const char *semi;
	size_t n;

	if (v == NULL)
		return MSEV_NONE;
	/* "automatic-action/MDN-sent-automatically; displayed/error": the type after ';' */
	if (kind == REPORT_MDN && (semi = strchr(v, ';')) != NULL)
		v = semi + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strcspn(v, " \t/;(");
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].kind == kind && strlen(map[i].word) == n &&
		    strncasecmp(v, map[i].word, n) == 0)
			return map[i].type;
	return MSEV_NONE;
}
