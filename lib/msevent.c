/*
 * msevent - the event model and its wire codec. See msevent.h and docs/protocol.md.
 */
#include "msevent.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "jsonparse.h"
#include "mbuf.h"
#include "msg.h"
#include "rfc3339.h"
#include "utf8.h"

#define DETAILS_MAX_KEYS  32
#define DETAILS_KEY_MAX   64
#define DETAILS_VALUE_MAX 2048
#define SOURCE_MAX        32
#define QUEUE_ID_MAX      32

static const char *const type_names[] = {
        [MSEV_NONE] = NULL,
        [MSEV_QUEUED] = "queued",
        [MSEV_DEFERRED] = "deferred",
        [MSEV_RELAYED] = "relayed",
        [MSEV_DELIVERED] = "delivered",
        [MSEV_BOUNCED] = "bounced",
        [MSEV_EXPIRED] = "expired",
        [MSEV_READ] = "read",
        [MSEV_UNREAD] = "unread",
        [MSEV_DELETED] = "deleted",
        [MSEV_ONLINE] = "online",
        [MSEV_OFFLINE] = "offline",
        [MSEV_COPIED] = "copied",
        [MSEV_EXPUNGED] = "expunged",
        [MSEV_INBOUND] = "inbound",
        [MSEV_REPORT] = "report",
        [MSEV_MDN] = "mdn",
};

const char *
msevent_type_name(enum msevent_type type)
{
	if ((int)type <= 0 || (int)type > MSEV_TYPE_MAX)
		return NULL;
	return type_names[type];
}

enum msevent_type
msevent_type_parse(const char *name)
{
	for (int i = 1; i <= MSEV_TYPE_MAX; i++)
		if (type_names[i] != NULL && strcmp(type_names[i], name) == 0)
			return (enum msevent_type)i;
	return MSEV_NONE;
}

void
msevent_init(struct msevent *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->size = -1;
}

void
msevent_clear(struct msevent *ev)
{
	if (ev->details != NULL)
		json_object_put(ev->details);
	if (ev->root != NULL)
		json_object_put(ev->root);
	msevent_init(ev);
}

struct json_tokener *
msevent_tokener_new(void)
{
	/* depth 3: the record, its details object, and nothing deeper. */
	return jsonparse_tokener_new(3, true);
}

/* Character classes for the token-like fields. */
static bool
token_ok(const char *s, size_t len, const char *extra)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || strchr(extra, c) == NULL)
			return false;
	}
	return true;
}

/*
 * Well-formed UTF-8 without ASCII control characters. A parsed record was checked for
 * UTF-8 as a whole already, but a producer validates the event it is about to write.
 */
static bool
text_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return utf8_valid(s, len);
}

enum field_kind { F_ID, F_SOURCE, F_TRACKING, F_QUEUE, F_MSGID, F_ADDR };

/* Check one string field; NULL means absent and is checked by the caller. */
static int
check_field(const char *name, const char *s, enum field_kind kind, const char **error_r)
{
	size_t len = strlen(s);

	switch (kind) {
	case F_ID:
		if (len == 0 || len > MSEVENT_ID_MAX || !token_ok(s, len, "._:@+=-")) {
			*error_r = errfmt("%s: expected 1-%d characters of [A-Za-z0-9._:@+=-]",
			                  name, MSEVENT_ID_MAX);
			return -1;
		}
		return 0;
	case F_TRACKING:
		if (len == 0 || len > MSEVENT_ID_MAX || !token_ok(s, len, "._-")) {
			*error_r = errfmt("%s: expected 1-%d characters of [A-Za-z0-9._-]", name,
			                  MSEVENT_ID_MAX);
			return -1;
		}
		return 0;
	case F_SOURCE:
		if (len == 0 || len > SOURCE_MAX || !token_ok(s, len, "._-")) {
			*error_r = errfmt("%s: expected 1-%d characters of [A-Za-z0-9._-]", name,
			                  SOURCE_MAX);
			return -1;
		}
		return 0;
	case F_QUEUE:
		if (len == 0 || len > QUEUE_ID_MAX || !token_ok(s, len, "")) {
			*error_r =
			        errfmt("%s: expected 1-%d letters and digits", name, QUEUE_ID_MAX);
			return -1;
		}
		return 0;
	case F_MSGID:
		if (len == 0 || len > MSEVENT_MSGID_MAX || !text_ok(s, len)) {
			*error_r = errfmt("%s: expected 1-%d characters without control characters",
			                  name, MSEVENT_MSGID_MAX);
			return -1;
		}
		return 0;
	case F_ADDR:
		if (len > MSEVENT_ADDR_MAX || !text_ok(s, len)) {
			*error_r = errfmt("%s: expected at most %d characters without control "
			                  "characters",
			                  name, MSEVENT_ADDR_MAX);
			return -1;
		}
		return 0;
	}
	msg_panic("check_field: bad kind");
}

static int
check_details(struct json_object *details, enum msevent_type type, const char **error_r)
{
	int nkeys = 0;

	if (!json_object_is_type(details, json_type_object)) {
		*error_r = "details: expected an object";
		return -1;
	}
	json_object_object_foreach(details, key, val)
	{
		size_t klen = strlen(key);

		if (++nkeys > DETAILS_MAX_KEYS) {
			*error_r = errfmt("details: more than %d keys", DETAILS_MAX_KEYS);
			return -1;
		}
		if (klen == 0 || klen > DETAILS_KEY_MAX || !token_ok(key, klen, "_")) {
			*error_r = errfmt("details: keys must be 1-%d characters of [A-Za-z0-9_]",
			                  DETAILS_KEY_MAX);
			return -1;
		}
		switch (json_object_get_type(val)) {
		case json_type_null:
		case json_type_boolean:
		case json_type_int:
			break;
		case json_type_double:
			/* json-c takes NaN and Infinity; JSON and PostgreSQL's jsonb do not. */
			if (!isfinite(json_object_get_double(val))) {
				*error_r = errfmt("details.%s: expected a finite number", key);
				return -1;
			}
			break;
		case json_type_string: {
			size_t vlen = (size_t)json_object_get_string_len(val);
			/* a report's raw text is bounded by the record alone */
			size_t vmax = type == MSEV_REPORT && strcmp(key, MSEVENT_RAW_KEY) == 0
			                      ? MSEVENT_RECORD_MAX
			                      : DETAILS_VALUE_MAX;
			if (vlen > vmax ||
			    memchr(json_object_get_string(val), '\0', vlen) != NULL) {
				*error_r = errfmt("details.%s: string too long or with a NUL", key);
				return -1;
			}
			if (!utf8_valid(json_object_get_string(val), vlen)) {
				*error_r = errfmt("details.%s: not valid UTF-8", key);
				return -1;
			}
			break;
		}
		default:
			*error_r = errfmt("details.%s: expected a string, number, boolean or null",
			                  key);
			return -1;
		}
	}
	return 0;
}

int
msevent_validate(const struct msevent *ev, const char **error_r)
{
	static const struct {
		const char *name;
		size_t off;
		enum field_kind kind;
	} fields[] = {
	        {"id", offsetof(struct msevent, id), F_ID},
	        {"source", offsetof(struct msevent, source), F_SOURCE},
	        {"tracking_id", offsetof(struct msevent, tracking_id), F_TRACKING},
	        {"message_id", offsetof(struct msevent, message_id), F_MSGID},
	        {"queue_id", offsetof(struct msevent, queue_id), F_QUEUE},
	        {"recipient", offsetof(struct msevent, recipient), F_ADDR},
	        {"orig_recipient", offsetof(struct msevent, orig_recipient), F_ADDR},
	        {"sender", offsetof(struct msevent, sender), F_ADDR},
	        {"sasl_user", offsetof(struct msevent, sasl_user), F_ADDR},
	};

	if (ev->id == NULL) {
		*error_r = "missing field: id";
		return -1;
	}
	if (msevent_type_name(ev->type) == NULL) {
		*error_r = "missing or unknown event type";
		return -1;
	}
	if (ev->source == NULL) {
		*error_r = "missing field: source";
		return -1;
	}
	if ((ev->recipient == NULL || ev->recipient[0] == '\0') &&
	    !(ev->type == MSEV_EXPIRED && ev->queue_id != NULL && ev->orig_recipient == NULL)) {
		/* only a message-level expiry (Postfix's qmgr line) names no recipient */
		*error_r = "missing field: recipient";
		return -1;
	}
	if (MSEV_IS_RECIPIENT(ev->type) && ev->tracking_id == NULL && ev->queue_id == NULL &&
	    ev->message_id == NULL) {
		*error_r = "missing field: one of tracking_id, queue_id, message_id";
		return -1;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *s = *(const char *const *)((const char *)ev + fields[i].off);
		if (s != NULL && check_field(fields[i].name, s, fields[i].kind, error_r) < 0)
			return -1;
	}
	if (ev->size < -1) {
		*error_r = "size: must not be negative";
		return -1;
	}
	if (ev->details != NULL && check_details(ev->details, ev->type, error_r) < 0)
		return -1;
	return 0;
}

/* Fetch an optional string member; -1 if present but not a string or holding a NUL. */
static int
get_str(struct json_object *obj, const char *key, const char **out, const char **error_r)
{
	struct json_object *val;

	if (!json_object_object_get_ex(obj, key, &val) || json_object_is_type(val, json_type_null))
		return 0;
	if (!json_object_is_type(val, json_type_string)) {
		*error_r = errfmt("%s: expected a string", key);
		return -1;
	}
	*out = json_object_get_string(val);
	if (strlen(*out) != (size_t)json_object_get_string_len(val)) {
		*error_r = errfmt("%s: NUL character in string", key);
		return -1;
	}
	return 0;
}

int
msevent_parse(struct msevent *ev, struct json_tokener *tok, const char *line, size_t len,
              const char **error_r)
{
	struct json_object *root, *val;
	enum json_tokener_error jerr;
	const char *s = NULL;
	size_t end;

	msevent_init(ev);
	/* MSEVENT_RECORD_MAX counts the newline, which len does not. */
	if (len + 1 > MSEVENT_RECORD_MAX) {
		*error_r = errfmt("record too long (%zu bytes with its newline, at most %d)",
		                  len + 1, MSEVENT_RECORD_MAX);
		return -1;
	}
	/* json-c's own check lets overlong forms, surrogates and > U+10FFFF through. */
	if (!utf8_valid(line, len)) {
		*error_r = "bad JSON: not valid UTF-8";
		return -1;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	json_tokener_reset(tok);
	root = jsonparse_strict(tok, line, len, &end);
	jerr = json_tokener_get_error(tok);
	if (root == NULL || jerr != json_tokener_success) {
		if (root != NULL)
			json_object_put(root);
		if (jerr == json_tokener_continue)
			*error_r = "bad JSON: unexpected end of record";
		else
			*error_r = errfmt("bad JSON: %s", json_tokener_error_desc(jerr));
		return -1;
	}
	if (end != len) {
		json_object_put(root);
		*error_r = "bad JSON: trailing characters after the object";
		return -1;
	}
	ev->root = root;
	if (!json_object_is_type(root, json_type_object)) {
		*error_r = "expected a JSON object";
		goto bad;
	}
	if (!json_object_object_get_ex(root, "v", &val) ||
	    !json_object_is_type(val, json_type_int)) {
		*error_r = "missing field: v (protocol version)";
		goto bad;
	}
	if (json_object_get_int64(val) != MSEVENT_VERSION) {
		*error_r = errfmt("unsupported protocol version %lld (this server speaks %d)",
		                  (long long)json_object_get_int64(val), MSEVENT_VERSION);
		goto bad;
	}
	if (get_str(root, "id", &ev->id, error_r) < 0 || get_str(root, "type", &s, error_r) < 0)
		goto bad;
	if (s == NULL) {
		*error_r = "missing field: type";
		goto bad;
	}
	if ((ev->type = msevent_type_parse(s)) == MSEV_NONE) {
		char clean[64];
		*error_r = errfmt("unknown event type \"%s\"",
		                  msg_clean(clean, sizeof(clean), s, strlen(s)));
		goto bad;
	}
	/* an older plugin's name for an expunge: deleted is a status now, not an event */
	if (ev->type == MSEV_DELETED)
		ev->type = MSEV_EXPUNGED;
	s = NULL;
	if (get_str(root, "time", &s, error_r) < 0)
		goto bad;
	if (s == NULL) {
		*error_r = "missing field: time";
		goto bad;
	}
	if (rfc3339_parse(s, strlen(s), &ev->time_ms, error_r) < 0) {
		*error_r = errfmt("time: %s", *error_r);
		goto bad;
	}
	if (get_str(root, "source", &ev->source, error_r) < 0 ||
	    get_str(root, "tracking_id", &ev->tracking_id, error_r) < 0 ||
	    get_str(root, "message_id", &ev->message_id, error_r) < 0 ||
	    get_str(root, "queue_id", &ev->queue_id, error_r) < 0 ||
	    get_str(root, "recipient", &ev->recipient, error_r) < 0 ||
	    get_str(root, "orig_recipient", &ev->orig_recipient, error_r) < 0 ||
	    get_str(root, "sender", &ev->sender, error_r) < 0 ||
	    get_str(root, "sasl_user", &ev->sasl_user, error_r) < 0)
		goto bad;
	if (json_object_object_get_ex(root, "size", &val) &&
	    !json_object_is_type(val, json_type_null)) {
		if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0) {
			*error_r = "size: expected a non-negative integer";
			goto bad;
		}
		ev->size = json_object_get_int64(val);
	}
	if (json_object_object_get_ex(root, "details", &val) &&
	    !json_object_is_type(val, json_type_null))
		ev->details = json_object_get(val);
	if (msevent_validate(ev, error_r) < 0)
		goto bad;
	return 0;
bad:
	msevent_clear(ev);
	return -1;
}

static void
put_str(struct json_object *obj, const char *key, const char *value)
{
	if (value != NULL)
		json_object_object_add(obj, key, json_object_new_string(value));
}

void
msevent_format(const struct msevent *ev, struct mbuf *out)
{
	struct json_object *obj = json_object_new_object();
	char when[RFC3339_BUFSIZE];
	const char *text;
	size_t len;

	json_object_object_add(obj, "v", json_object_new_int(MSEVENT_VERSION));
	put_str(obj, "id", ev->id);
	put_str(obj, "type", msevent_type_name(ev->type));
	put_str(obj, "time", rfc3339_format(ev->time_ms, when));
	put_str(obj, "source", ev->source);
	put_str(obj, "tracking_id", ev->tracking_id);
	put_str(obj, "message_id", ev->message_id);
	put_str(obj, "queue_id", ev->queue_id);
	put_str(obj, "recipient", ev->recipient);
	put_str(obj, "orig_recipient", ev->orig_recipient);
	put_str(obj, "sender", ev->sender);
	put_str(obj, "sasl_user", ev->sasl_user);
	if (ev->size >= 0)
		json_object_object_add(obj, "size", json_object_new_int64(ev->size));
	if (ev->details != NULL)
		json_object_object_add(obj, "details", json_object_get(ev->details));
	text = json_object_to_json_string_length(
	        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	mbuf_append(out, text, len);
	mbuf_putc(out, '\n');
	json_object_put(obj);
}

static struct json_object *
details_obj(struct msevent *ev)
{
	if (ev->details == NULL)
		ev->details = json_object_new_object();
	return ev->details;
}

void
msevent_detail_str(struct msevent *ev, const char *key, const char *value)
{
	json_object_object_add(details_obj(ev), key, json_object_new_string(value));
}

void
msevent_detail_int(struct msevent *ev, const char *key, int64_t value)
{
	json_object_object_add(details_obj(ev), key, json_object_new_int64(value));
}

void
msevent_detail_bool(struct msevent *ev, const char *key, bool value)
{
	json_object_object_add(details_obj(ev), key, json_object_new_boolean(value));
}

const char *
msevent_detail_get(const struct msevent *ev, const char *key)
{
	struct json_object *val;

	if (ev->details == NULL || !json_object_object_get_ex(ev->details, key, &val) ||
	    !json_object_is_type(val, json_type_string))
		return NULL;
	return json_object_get_string(val);
}
