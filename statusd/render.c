/*
 * render - the API's JSON documents from storage's structs. See render.h and docs/api.md.
 */
#include "render.h"

#include <inttypes.h>
#include <stdint.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "jsonstr.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "rfc3339.h"
#include "status.h"

static void
add_str(struct json_object *obj, const char *key, const char *s)
{
	json_object_object_add(obj, key, s != NULL ? json_object_new_string(s) : NULL);
}

static void
add_time(struct json_object *obj, const char *key, int64_t ms)
{
	char when[RFC3339_BUFSIZE];

	json_object_object_add(obj, key,
	                       ms > 0 ? json_object_new_string(rfc3339_format(ms, when)) : NULL);
}

static void
add_cursor(struct json_object *obj, bool more, int64_t cursor)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, cursor);
	json_object_object_add(obj, "next_cursor", more ? json_object_new_string(buf) : NULL);
}

/* A details column as a JSON object: {} when NULL or not an object. */
static struct json_object *
details_object(const char *text)
{
	struct json_object *details = text != NULL ? json_tokener_parse(text) : NULL;

	if (details == NULL || !json_object_is_type(details, json_type_object)) {
		json_object_put(details);
		details = json_object_new_object();
	}
	return details;
}

/* The ids of the reports of kind about recipient rc (JMAP's dsnBlobIds, mdnBlobIds), each
   once, in the order they came. */
static struct json_object *
report_ids(const struct store_message *m, const char *recipient, const char *kind)
{
	struct json_object *list = json_object_new_array();

	for (size_t i = 0; i < m->nreports; i++) {
		const struct store_report *r = &m->reports[i];
		const char *about = r->rcpt != NULL ? r->rcpt : r->recipient;
		bool seen = false;

		if (strcmp(r->kind, kind) != 0 || about == NULL || strcmp(about, recipient) != 0)
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(m->reports[j].report_id, r->report_id) == 0 &&
			       strcmp(m->reports[j].kind, kind) == 0;
		if (!seen)
			json_object_array_add(list, json_object_new_string(r->report_id));
	}
	return list;
}

/* The report entries kept about a message, verified or not. */
static struct json_object *
reports_doc(const struct store_message *m)
{
	struct json_object *list = json_object_new_array_ext((int)m->nreports);

	for (size_t i = 0; i < m->nreports; i++) {
		const struct store_report *r = &m->reports[i];
		struct json_object *o = json_object_new_object();

		add_str(o, "report_id", r->report_id);
		add_str(o, "kind", r->kind);
		add_str(o, "recipient", r->rcpt != NULL ? r->rcpt : r->recipient);
		add_str(o, "status",
		        r->status > 0 ? msevent_type_name((enum msevent_type)r->status) : NULL);
		json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
		add_str(o, "proof", r->proof);
		add_time(o, "timestamp", r->time_ms);
		json_object_array_add(list, o);
	}
	return list;
}

/* One recipient's entry in a status document. queued_ms is 0 if unknown. */
static struct json_object *
recipient_doc(const struct store_message *m, const struct store_recipient *rc, int64_t queued_ms)
{
	struct json_object *r = json_object_new_object(), *details, *reply = NULL;
	struct status_view view;

	status_view(&rc->state, &view);
	details = details_object(rc->details);
	if (json_object_object_get_ex(details, "smtp_reply", &reply))
		json_object_get(reply);
	json_object_object_del(details, "smtp_reply");
	json_object_object_del(details, "latency_ms");
	if (queued_ms > 0 && view.time_ms >= queued_ms)
		json_object_object_add(details, "latency_ms",
		                       json_object_new_int64(view.time_ms - queued_ms));

	add_str(r, "recipient", rc->recipient);
	if (rc->orig_recipient != NULL)
		add_str(r, "orig_recipient", rc->orig_recipient);
	add_str(r, "status", view.status != MSEV_NONE ? msevent_type_name(view.status) : NULL);
	json_object_object_add(r, "delivered", json_object_new_string(view.delivered));
	json_object_object_add(r, "displayed", json_object_new_string(view.displayed));
	json_object_object_add(r, "smtp_reply", reply);
	add_time(r, "timestamp", view.time_ms);
	json_object_object_add(r, "details", details);
	if (m->reports != NULL) {
		json_object_object_add(r, "dsn_report_ids", report_ids(m, rc->recipient, "dsn"));
		json_object_object_add(r, "mdn_report_ids", report_ids(m, rc->recipient, "mdn"));
	}
	return r;
}

static struct json_object *
recipients_doc(const struct store_message *m)
{
	struct json_object *list = json_object_new_array_ext((int)m->nrcpts);

	for (size_t i = 0; i < m->nrcpts; i++)
		json_object_array_add(list, recipient_doc(m, &m->rcpts[i], m->queued_ms));
	return list;
}

/* One event of a timeline. */
static struct json_object *
event_doc(const struct store_event *e, int64_t queued_ms)
{
	struct json_object *ev = json_object_new_object();

	json_object_object_add(ev, "offset", json_object_new_int64(e->log_offset));
	add_str(ev, "recipient", e->recipient);
	add_str(ev, "status", msevent_type_name((enum msevent_type)e->type));
	add_time(ev, "timestamp", e->time_ms);
	if (queued_ms > 0 && e->time_ms >= queued_ms)
		json_object_object_add(ev, "latency_ms",
		                       json_object_new_int64(e->time_ms - queued_ms));
	add_str(ev, "source", e->source);
	json_object_object_add(ev, "details", details_object(e->details));
	add_str(ev, "event_id", e->event_id);
	return ev;
}

struct json_object *
render_status(const struct store_message *m, bool timeline)
{
	struct json_object *doc = json_object_new_object(), *list;

	add_str(doc, "message_id", m->message_id);
	add_str(doc, "tracking_id", m->tracking_id);
	add_str(doc, "sender", m->sender);
	add_str(doc, "queue_id", m->queue_id);
	json_object_object_add(doc, "size", m->size >= 0 ? json_object_new_int64(m->size) : NULL);
	add_time(doc, "queued_at", m->queued_ms);
	json_object_object_add(doc, "recipients", recipients_doc(m));
	if (m->reports != NULL)
		json_object_object_add(doc, "reports", reports_doc(m));
	if (!timeline)
		return doc;
	list = json_object_new_array_ext((int)m->nevents);
	for (size_t i = 0; i < m->nevents; i++)
		json_object_array_add(list, event_doc(&m->events[i], m->queued_ms));
	json_object_object_add(doc, "events", list);
	add_cursor(doc, m->more_events && m->nevents > 0,
	           m->nevents > 0 ? m->events[m->nevents - 1].log_offset : 0);
	return doc;
}

struct json_object *
render_list(const struct store_message *msgs, size_t n, bool more)
{
	struct json_object *doc = json_object_new_object(),
	                   *list = json_object_new_array_ext((int)n);

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_new_object();

		add_str(m, "tracking_id", msgs[i].tracking_id);
		add_str(m, "message_id", msgs[i].message_id);
		add_str(m, "sender", msgs[i].sender);
		add_time(m, "queued_at", msgs[i].queued_ms);
		json_object_object_add(m, "recipients", recipients_doc(&msgs[i]));
		json_object_array_add(list, m);
	}
	json_object_object_add(doc, "messages", list);
	add_cursor(doc, more && n > 0, n > 0 ? msgs[n - 1].id : 0);
	return doc;
}

struct json_object *
render_report(const char *report_id, const char *tracking_id, const char *raw, bool truncated)
{
	struct json_object *doc = json_object_new_object();

	add_str(doc, "report_id", report_id);
	add_str(doc, "tracking_id", tracking_id);
	add_str(doc, "raw", raw);
	json_object_object_add(doc, "truncated", json_object_new_boolean(truncated));
	return doc;
}

struct json_object *
render_prefs(const char *user, const struct store_prefs *prefs)
{
	struct json_object *doc = json_object_new_object();

	json_object_object_add(doc, "user", json_object_new_string(user));
	json_object_object_add(doc, "read_receipts", json_object_new_boolean(prefs->read_receipts));
	json_object_object_add(doc, "presence", json_object_new_boolean(prefs->presence));
	json_object_object_add(doc, "mdn",
	                       prefs->mdn != NULL ? json_object_new_string(prefs->mdn) : NULL);
	return doc;
}

struct json_object *
render_presence(const char *user, const struct store_presence *pr)
{
	struct json_object *doc = json_object_new_object();

	json_object_object_add(doc, "user", json_object_new_string(user));
	json_object_object_add(doc, "online", json_object_new_boolean(pr->online));
	add_time(doc, "last_seen", pr->last_seen_ms);
	add_str(doc, "client", pr->client);
	add_str(doc, "typing_to", pr->typing_to);
	return doc;
}

/* --- the feeds' (and webhooks') JSON of a logged event ------------------------------ */

#define PUT_LIT(out, s) mbuf_append((out), (s), sizeof(s) - 1)

/* The details column as a JSON object: {} when NULL or not an object. */
static void
put_json_details(struct mbuf *out, const char *text)
{
	struct json_object *details;

	if (text == NULL) {
		PUT_LIT(out, "{}");
		return;
	}
	/* jsonb's text of a flat object needs only its spaces removed; anything else (which
	   the ingest does not store) is printed the way json-c prints it */
	if (jsonstr_compact(out, text, strlen(text)) == 0)
		return;
	details = details_object(text);
	mbuf_puts(out, json_object_to_json_string_ext(
	                       details, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(details);
}

/* A string member's value at p: the string or null (room: JSONSTR_MAX(len)). */
static char *
put_str(char *p, const char *s, size_t len)
{
	if (s == NULL) {
		memcpy(p, "null", 4);
		return p + 4;
	}
	return jsonstr_put(p, s, len);
}

#define PUT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* The length of a string member's value, checked for JSONSTR_MAX. */
static size_t
str_len(const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len >= SIZE_MAX / 64)
		msg_fatal("render: a string of %zu bytes", len);
	return len;
}

void
render_logged(const struct store_logged *l, int64_t epoch, struct mbuf *out)
{
	/* the members other than the strings and details: keys, two numbers, a time */
	enum { FIXED = 200 + RFC3339_BUFSIZE };
	const char *status = msevent_type_name((enum msevent_type)l->type);
	size_t mid = str_len(l->message_id), tid = str_len(l->tracking_id),
	       rcpt = str_len(l->recipient), st = str_len(status), eid = str_len(l->event_id);
	char *p;

	/* written directly, member for member as a json-c tree of them was printed; one
	   reservation for all but the details, since this runs once per event of a catch-up */
	mbuf_reserve(out, FIXED + JSONSTR_MAX(mid) + JSONSTR_MAX(tid) + JSONSTR_MAX(rcpt) +
	                          JSONSTR_MAX(st));
	p = out->data + out->len;
	p = PUT(p, "{\"offset\":");
	p = mbuf_format_ll(p, l->log_offset);
	p = PUT(p, ",\"epoch\":");
	p = mbuf_format_ll(p, epoch);
	p = PUT(p, ",\"message_id\":");
	p = put_str(p, l->message_id, mid);
	p = PUT(p, ",\"tracking_id\":");
	p = put_str(p, l->tracking_id, tid);
	p = PUT(p, ",\"recipient\":");
	p = put_str(p, l->recipient, rcpt);
	p = PUT(p, ",\"status\":");
	p = put_str(p, status, st);
	p = PUT(p, ",\"timestamp\":\"");
	rfc3339_format(l->time_ms, p); /* digits and "-:T.Z": nothing to escape */
	p += strlen(p);
	p = PUT(p, "\",\"details\":");
	out->len = (size_t)(p - out->data);
	put_json_details(out, l->details);
	mbuf_reserve(out, 16 + JSONSTR_MAX(eid));
	p = out->data + out->len;
	p = PUT(p, ",\"event_id\":");
	p = put_str(p, l->event_id, eid);
	*p++ = '}';
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
}
