/*
 * params - what HTTP and feed clients send, checked. See params.h.
 *
 * SECURITY
 *	Every input here comes from an unauthenticated or untrusted HTTP client (query
 *	arguments are checked before the token is). Lengths are bounded by the callers' buffers
 *	and rechecked here; numbers must be whole decimal strings in range, and times within
 *	what RFC 3339 can write (PostgreSQL would refuse more); ids, users and bodies must be
 *	well-formed UTF-8 (utf8_valid: no overlong forms, surrogates or code points above
 *	U+10FFFF), checked here rather than left to PostgreSQL, which would fail the query;
 *	bodies are parsed by json-c in strict mode with a small depth limit, and the strings
 *	in them are checked again after json-c has decoded their \u escapes.
 */
#include "params.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "jsonparse.h"
#include "msevent.h"
#include "randid.h"
#include "rfc3339.h"
#include "utf8.h"

static bool
printable(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
			return false;
	return utf8_valid(s, len);
}

bool
params_ref_ok(const char *id)
{
	return printable(id, MSEVENT_MSGID_MAX);
}

bool
params_user_ok(const char *user)
{
	return printable(user, MSEVENT_ADDR_MAX);
}

bool
params_report_ok(const char *id)
{
	return randid_valid(id, strlen(id));
}

/* A whole decimal number in [min, max]. */
static int
number(const char *s, long long min, long long max, long long *v_r)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || v < min || v > max)
		return -1;
	*v_r = v;
	return 0;
}

int
params_time(const char *value, int64_t *ms_r)
{
	const char *error;
	long long v;

	*ms_r = 0;
	if (number(value, 1, PARAMS_TIME_MAX, &v) == 0) {
		*ms_r = v;
		return 0;
	}
	return rfc3339_parse(value, strlen(value), ms_r, &error) < 0 ? -1 : 0;
}

int
params_event_id(const char *s, int64_t *epoch_r, int64_t *offset_r)
{
	char *end;
	long long e, o;

	if (*s < '0' || *s > '9')
		return -1;
	e = strtoll(s, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9')
		return -1;
	o = strtoll(end + 1, &end, 10);
	if (*end != '\0' || e <= 0 || o < 0 || e == LLONG_MAX || o == LLONG_MAX)
		return -1;
	*epoch_r = e;
	*offset_r = o;
	return 0;
}

int
params_resume(const char *last_event_id, const char *offset, const char *epoch, int64_t *epoch_r,
              int64_t *from_r, const char **error_r)
{
	long long o, e;

	*from_r = -1;
	*epoch_r = 0;
	if (last_event_id != NULL) {
		if (params_event_id(last_event_id, epoch_r, from_r) < 0) {
			*from_r = -1;
			*epoch_r = 0;
			*error_r = "Last-Event-ID must be EPOCH-OFFSET";
			return -1;
		}
		return 0;
	}
	if (offset == NULL)
		return 0;
	if (number(offset, 0, INT64_MAX - 1, &o) < 0 || epoch == NULL ||
	    number(epoch, 1, INT64_MAX - 1, &e) < 0) {
		*error_r = "offset and epoch go together: offset 0 or more, epoch 1 or more";
		return -1;
	}
	*from_r = o;
	*epoch_r = e;
	return 0;
}

int
params_list(const struct params_list_args *args, struct store_list_filter *flt,
            const char **error_r)
{
	long long v;

	memset(flt, 0, sizeof(*flt));
	flt->limit = PARAMS_LIST_DEFAULT;
	if (args->status != NULL) {
		enum msevent_type t = msevent_type_parse(args->status);
		if (!MSEV_IS_STATUS(t)) {
			*error_r = "status must be queued, deferred, relayed, delivered, bounced, "
			           "expired, read, unread or deleted";
			return -1;
		}
		flt->status = t;
	}
	if ((args->since != NULL && params_time(args->since, &flt->since_ms) < 0) ||
	    (args->until != NULL && params_time(args->until, &flt->until_ms) < 0)) {
		*error_r = "since and until are RFC 3339 times";
		return -1;
	}
	if (args->limit != NULL) {
		if (number(args->limit, 1, PARAMS_LIST_MAX, &v) < 0) {
			*error_r = "limit must be 1 to 200";
			return -1;
		}
		flt->limit = (int)v;
	}
	if (args->cursor != NULL) {
		if (number(args->cursor, 1, INT64_MAX, &v) < 0) {
			*error_r = "cursor is the next_cursor of a page";
			return -1;
		}
		flt->cursor = v;
	}
	if (args->recipient != NULL) {
		if (!params_user_ok(args->recipient)) {
			*error_r = "recipient is a mail address";
			return -1;
		}
		flt->recipient = args->recipient;
	}
	return 0;
}

int
params_timeline(const char *cursor, int64_t *after_r, const char **error_r)
{
	long long v;

	*after_r = 0;
	if (cursor == NULL)
		return 0;
	if (number(cursor, 1, INT64_MAX, &v) < 0) {
		*error_r = "cursor is the next_cursor of a page";
		return -1;
	}
	*after_r = v;
	return 0;
}

struct json_object *
params_body(const void *data, size_t len, bool required, const char **error_r)
{
	struct json_object *obj;
	const char *error;

	if (len == 0) {
		if (required) {
			*error_r = "a JSON object body is required";
			return NULL;
		}
		return json_object_new_object();
	}
	if (len <= INT32_MAX / 6 && !utf8_valid(data, len)) {
		*error_r = "the body must be UTF-8";
		return NULL;
	}
	/* all of it: anything but whitespace after the object is an error too */
	if ((obj = jsonparse_object(data, len, 3, true, &error)) == NULL)
		*error_r = "the body must be a JSON object";
	return obj;
}

int
params_prefs(struct json_object *obj, int *rr_r, int *pr_r, const char **mdn_r,
             const char **error_r)
{
	*rr_r = *pr_r = -1;
	*mdn_r = NULL;
	json_object_object_foreach(obj, key, val)
	{
		if (strcmp(key, "mdn") == 0) {
			const char *v = json_object_is_type(val, json_type_string)
			                        ? json_object_get_string(val)
			                        : NULL;
			if (json_object_is_type(val, json_type_null))
				*mdn_r = "default";
			else if (v != NULL && strcmp(v, "never") == 0)
				*mdn_r = "never";
			else if (v != NULL && strcmp(v, "always") == 0)
				*mdn_r = "always";
			else {
				*error_r = "mdn is \"never\", \"always\" or null (the server's "
				           "default)";
				return -1;
			}
			continue;
		}
		int *slot = strcmp(key, "read_receipts") == 0 ? rr_r
		            : strcmp(key, "presence") == 0    ? pr_r
		                                              : NULL;
		if (slot == NULL || !json_object_is_type(val, json_type_boolean)) {
			*error_r =
			        "preferences are read_receipts and presence, each true or false, "
			        "and mdn";
			return -1;
		}
		*slot = json_object_get_boolean(val);
	}
	return 0;
}

int
params_presence(struct json_object *obj, const char **state_r, const char **to_r,
                const char **error_r)
{
	struct json_object *state = NULL, *to = NULL;
	const char *s;

	json_object_object_get_ex(obj, "state", &state);
	json_object_object_get_ex(obj, "to", &to);
	s = state && json_object_is_type(state, json_type_string) ? json_object_get_string(state)
	                                                          : "";
	if (json_object_object_length(obj) > (to ? 2 : 1) ||
	    (strcmp(s, "online") != 0 && strcmp(s, "offline") != 0 && strcmp(s, "typing") != 0) ||
	    (strcmp(s, "typing") == 0) != (to != NULL) ||
	    (to && (!json_object_is_type(to, json_type_string) ||
	            /* a \u0000 would cut the address short */
	            (size_t)json_object_get_string_len(to) != strlen(json_object_get_string(to)) ||
	            !params_user_ok(json_object_get_string(to))))) {
		*error_r = "expected {\"state\":\"online\"|\"offline\"} or "
		           "{\"state\":\"typing\",\"to\":ADDRESS}";
		return -1;
	}
	*state_r = s;
	*to_r = to ? json_object_get_string(to) : NULL;
	return 0;
}

int
params_receipt(struct json_object *obj, const char **error_r)
{
	if (json_object_object_length(obj) != 0) {
		*error_r = "a receipt takes no fields";
		return -1;
	}
	return 0;
}

int
params_ws_message(const void *data, size_t len, const char **error_r)
{
	struct json_object *doc, *type = NULL;
	const char *error;
	int ret = -1;

	*error_r = "expected {\"type\":\"ping\"}";
	if (len > PARAMS_WS_MAX) {
		*error_r = "message too large";
		return -1;
	}
	doc = jsonparse_object(data, len, 4, true, &error);
	if (doc != NULL && json_object_object_get_ex(doc, "type", &type) &&
	    json_object_is_type(type, json_type_string) &&
	    strcmp(json_object_get_string(type), "ping") == 0)
		ret = 0;
	json_object_put(doc);
	return ret;
}
