/*
 * mimistatus - MIMI message-status and federation report codec (see mimistatus.h).
 * libcbor does the CBOR; this file checks the shape and the bounds.
 */
#include "mimistatus.h"

#include <cbor.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec.h"
#include "mymalloc.h"
#include "utf8.h"

#define MSGID_MAX 998 /* RFC 5322 line length: no id is longer */

const char *
mimistatus_code_name(unsigned int status)
{
	static const char *const names[] = {"unread",  "delivered", "read", "expired",
	                                    "deleted", "hidden",    "error"};

	return status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}

int
mimistatus_msgid(enum mimistatus_idkind kind, const char *s, size_t len,
                 uint8_t out[MIMISTATUS_MSGID_LEN], const char **error_r)
{
	/* The domain-separation label keeps a tracking id and a Message-ID that happen to be
	   the same string apart; the NUL ends the label. */
	static const char tracking_label[] = "msgstatus tracking-id";
	static const char message_label[] = "rfc5322 msg-id";
	const char *label = kind == MIMISTATUS_ID_TRACKING ? tracking_label : message_label;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (kind == MIMISTATUS_ID_MESSAGE && len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	if (len == 0 || len > MSGID_MAX) {
		*error_r = "message id: empty or longer than 998 bytes";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '<' || s[i] == '>') {
			*error_r = "message id: not printable ASCII without spaces and <>";
			return -1;
		}
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, label, strlen(label) + 1) == 1 &&
	     EVP_DigestUpdate(ctx, s, len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
	     mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*error_r = "message id: SHA-256 failed";
		return -1;
	}
	out[0] = 0x01; /* SHA-256, as MIMI content's message ids */
	memcpy(out + 1, md, MIMISTATUS_MSGID_LEN - 1);
	return 0;
}

/* ---- encoding ---- */

static cbor_item_t *
build_uint(uint64_t v)
{
	if (v <= UINT8_MAX)
		return cbor_build_uint8((uint8_t)v);
	if (v <= UINT16_MAX)
		return cbor_build_uint16((uint16_t)v);
	if (v <= UINT32_MAX)
		return cbor_build_uint32((uint32_t)v);
	return cbor_build_uint64(v);
}

/* Push item into array and drop our reference; false (and item released) on failure. */
static bool
push(cbor_item_t *array, cbor_item_t *item)
{
	bool ok = item != NULL && cbor_array_push(array, item);

	if (item != NULL)
		cbor_decref(&item);
	return ok;
}

static bool
map_put(cbor_item_t *map, uint64_t key, cbor_item_t *value)
{
	cbor_item_t *k = build_uint(key);
	bool ok = k != NULL && value != NULL &&
	          cbor_map_add(map, (struct cbor_pair){.key = k, .value = value});

	if (k != NULL)
		cbor_decref(&k);
	if (value != NULL)
		cbor_decref(&value);
	return ok;
}

static bool
valid_event_id(const char *s, size_t len)
{
	if (len == 0 || len > MIMISTATUS_EVENT_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

static bool
valid_text(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || !utf8_valid(s, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool
valid_domain(const char *s, size_t len)
{
	return fedrec_domain_valid(s, len);
}

static cbor_item_t *
build_mimi(const struct mimistatus_report *r, const char **error_r)
{
	cbor_item_t *array;

	if (r->count > MIMISTATUS_ENTRIES_MAX) {
		*error_r = "report: more than 1000 entries";
		return NULL;
	}
	array = cbor_new_definite_array(r->count);
	if (array == NULL) {
		*error_r = "report: out of memory";
		return NULL;
	}
	for (size_t i = 0; i < r->count; i++) {
		cbor_item_t *pair;

		if (r->entries[i].status > 255) {
			*error_r = "report: status code above 255";
			cbor_decref(&array);
			return NULL;
		}
		pair = cbor_new_definite_array(2);
		if (pair == NULL ||
		    !push(pair, cbor_build_bytestring(r->entries[i].msgid, MIMISTATUS_MSGID_LEN)) ||
		    !push(pair, build_uint(r->entries[i].status))) {
			if (pair != NULL)
				cbor_decref(&pair);
			pair = NULL;
		}
		if (!push(array, pair)) { /* releases pair */
			*error_r = "report: out of memory";
			cbor_decref(&array);
			return NULL;
		}
	}
	return array;
}

static int
serialize(cbor_item_t *item, unsigned char **buf_r, size_t *len_r, const char **error_r)
{
	unsigned char *buf = NULL;
	size_t size = 0, len;

	len = cbor_serialize_alloc(item, &buf, &size);
	cbor_decref(&item);
	if (len == 0) {
		free(buf);
		*error_r = "report: out of memory";
		return -1;
	}
	*buf_r = buf;
	*len_r = len;
	return 0;
}

int
mimistatus_encode_mimi(const struct mimistatus_report *report, unsigned char **buf_r, size_t *len_r,
                       const char **error_r)
{
	cbor_item_t *array = build_mimi(report, error_r);

	if (array == NULL)
		return -1;
	return serialize(array, buf_r, len_r, error_r);
}

static cbor_item_t *
build_event(const struct mimistatus_event *ev, const char **error_r)
{
	cbor_item_t *a;

	if (ev->event_id == NULL || !valid_event_id(ev->event_id, strlen(ev->event_id))) {
		*error_r = "report: bad event id";
		return NULL;
	}
	if (ev->recipient == NULL ||
	    !valid_text(ev->recipient, strlen(ev->recipient), MIMISTATUS_RECIPIENT_MAX)) {
		*error_r = "report: bad recipient";
		return NULL;
	}
	if (ev->timestamp_ms < 0) {
		*error_r = "report: negative timestamp";
		return NULL;
	}
	a = cbor_new_definite_array(3);
	if (a == NULL || !push(a, cbor_build_string(ev->event_id)) ||
	    !push(a, cbor_build_string(ev->recipient)) ||
	    !push(a, build_uint((uint64_t)ev->timestamp_ms))) {
		if (a != NULL)
			cbor_decref(&a);
		*error_r = "report: out of memory";
		return NULL;
	}
	return a;
}

int
mimistatus_encode(const struct mimistatus_report *report, unsigned char **buf_r, size_t *len_r,
                  const char **error_r)
{
	cbor_item_t *map, *mimi, *events;

	if (report->domain == NULL || !valid_domain(report->domain, strlen(report->domain))) {
		*error_r = "report: bad reporting domain";
		return -1;
	}
	if (report->events == NULL && report->count > 0) {
		*error_r = "report: no events";
		return -1;
	}
	mimi = build_mimi(report, error_r);
	if (mimi == NULL)
		return -1;
	events = cbor_new_definite_array(report->count);
	map = cbor_new_definite_map(4);
	if (events == NULL || map == NULL) {
		*error_r = "report: out of memory";
		goto fail;
	}
	for (size_t i = 0; i < report->count; i++) {
		cbor_item_t *ev = build_event(&report->events[i], error_r);

		if (ev == NULL)
			goto fail;
		if (!push(events, ev)) {
			*error_r = "report: out of memory";
			goto fail;
		}
	}
	if (!map_put(map, 1, build_uint(MIMISTATUS_VERSION)) ||
	    !map_put(map, 2, cbor_build_string(report->domain))) {
		*error_r = "report: out of memory";
		goto fail;
	}
	if (!map_put(map, 3, mimi)) {
		mimi = NULL;
		*error_r = "report: out of memory";
		goto fail;
	}
	mimi = NULL;
	if (!map_put(map, 4, events)) {
		events = NULL;
		*error_r = "report: out of memory";
		goto fail;
	}
	return serialize(map, buf_r, len_r, error_r);
fail:
	if (mimi != NULL)
		cbor_decref(&mimi);
	if (events != NULL)
		cbor_decref(&events);
	if (map != NULL)
		cbor_decref(&map);
	return -1;
}

/* ---- decoding ---- */

/* Check 2: a streaming pre-scan, before libcbor builds (recursively) a tree. */
struct scan {
	size_t remaining[MIMISTATUS_NEST_MAX]; /* items still to come in each open container */
	size_t depth;
	size_t items;
	const char *error;
};

static void
scan_item(struct scan *s)
{
	if (++s->items > MIMISTATUS_ITEMS_MAX && s->error == NULL)
		s->error = "cbor: more than 8016 items";
	while (s->depth > 0 && s->remaining[s->depth - 1] == 0)
		s->depth--;
	if (s->depth > 0)
		s->remaining[s->depth - 1]--;
}

static void
scan_close(struct scan *s)
{
	while (s->depth > 0 && s->remaining[s->depth - 1] == 0)
		s->depth--;
}

static void
scan_open(struct scan *s, size_t items)
{
	scan_item(s);
	if (s->error != NULL)
		return;
	if (s->depth == MIMISTATUS_NEST_MAX) {
		s->error = "cbor: nested too deep";
		return;
	}
	s->remaining[s->depth++] = items;
	scan_close(s);
}

static void
scan_bad(struct scan *s, const char *error)
{
	if (s->error == NULL)
		s->error = error;
}

#define SCAN(ctx) ((struct scan *)(ctx))
static void
cb_uint8(void *c, uint8_t v)
{
	(void)v;
	scan_item(SCAN(c));
	scan_close(SCAN(c));
}
static void
cb_uint16(void *c, uint16_t v)
{
	(void)v;
	scan_item(SCAN(c));
	scan_close(SCAN(c));
}
static void
cb_uint32(void *c, uint32_t v)
{
	(void)v;
	scan_item(SCAN(c));
	scan_close(SCAN(c));
}
static void
cb_uint64(void *c, uint64_t v)
{
	(void)v;
	scan_item(SCAN(c));
	scan_close(SCAN(c));
}
static void
cb_string(void *c, cbor_data d, uint64_t len)
{
	(void)d;
	(void)len;
	scan_item(SCAN(c));
	scan_close(SCAN(c));
}
static void
cb_array(void *c, uint64_t n)
{
	if (n > MIMISTATUS_ENTRIES_MAX)
		scan_bad(SCAN(c), "cbor: array longer than 1000");
	else
		scan_open(SCAN(c), (size_t)n);
}
static void
cb_map(void *c, uint64_t n)
{
	if (n > 8)
		scan_bad(SCAN(c), "cbor: map with more than 8 pairs");
	else
		scan_open(SCAN(c), (size_t)n * 2);
}
static void
cb_indef(void *c)
{
	scan_bad(SCAN(c), "cbor: indefinite length");
}
static void
cb_negint8(void *c, uint8_t v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: negative integer");
}
static void
cb_negint16(void *c, uint16_t v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: negative integer");
}
static void
cb_negint32(void *c, uint32_t v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: negative integer");
}
static void
cb_negint64(void *c, uint64_t v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: negative integer");
}
static void
cb_tag(void *c, uint64_t v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: tag");
}
static void
cb_float2(void *c, float v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: float");
}
static void
cb_float8(void *c, double v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: float");
}
static void
cb_simple(void *c)
{
	scan_bad(SCAN(c), "cbor: simple value");
}
static void
cb_bool(void *c, bool v)
{
	(void)v;
	scan_bad(SCAN(c), "cbor: simple value");
}

static int
prescan(const unsigned char *buf, size_t len, const char **error_r)
{
	struct cbor_callbacks cb = cbor_empty_callbacks;
	struct scan s = {.depth = 0};
	size_t off = 0;
	bool started = false;

	if (len > MIMISTATUS_BODY_MAX) {
		*error_r = "cbor: longer than 256 KiB";
		return -1;
	}
	if (len == 0) {
		*error_r = "cbor: empty";
		return -1;
	}
	cb.uint8 = cb_uint8;
	cb.uint16 = cb_uint16;
	cb.uint32 = cb_uint32;
	cb.uint64 = cb_uint64;
	cb.negint8 = cb_negint8;
	cb.negint16 = cb_negint16;
	cb.negint32 = cb_negint32;
	cb.negint64 = cb_negint64;
	cb.byte_string = cb_string;
	cb.string = cb_string;
	cb.byte_string_start = cb_indef;
	cb.string_start = cb_indef;
	cb.array_start = cb_array;
	cb.map_start = cb_map;
	cb.indef_array_start = cb_indef;
	cb.indef_map_start = cb_indef;
	cb.indef_break = cb_indef;
	cb.tag = cb_tag;
	cb.float2 = cb_float2;
	cb.float4 = cb_float2;
	cb.float8 = cb_float8;
	cb.null = cb_simple;
	cb.undefined = cb_simple;
	cb.boolean = cb_bool;
	while (off < len) {
		struct cbor_decoder_result res;

		if (started && s.depth == 0) {
			*error_r = "cbor: data after the report";
			return -1;
		}
		res = cbor_stream_decode(buf + off, len - off, &cb, &s);
		if (res.status != CBOR_DECODER_FINISHED || res.read == 0) {
			*error_r = res.status == CBOR_DECODER_NEDATA ? "cbor: truncated"
			                                             : "cbor: malformed";
			return -1;
		}
		if (s.error != NULL) {
			*error_r = s.error;
			return -1;
		}
		off += res.read;
		started = true;
	}
	if (s.depth != 0) {
		*error_r = "cbor: truncated";
		return -1;
	}
	return 0;
}

static bool
get_uint(const cbor_item_t *item, uint64_t *v_r)
{
	if (!cbor_isa_uint(item))
		return false;
	*v_r = cbor_get_int(item);
	return true;
}

static int
load_mimi(const cbor_item_t *array, struct mimistatus_report *r, const char **error_r)
{
	cbor_item_t **items;
	size_t n;

	if (!cbor_isa_array(array)) {
		*error_r = "mimi: not an array";
		return -1;
	}
	n = cbor_array_size(array);
	items = cbor_array_handle(array);
	r->entries = mycalloc(n ? n : 1, sizeof(*r->entries));
	r->count = n;
	for (size_t i = 0; i < n; i++) {
		cbor_item_t **pair;
		uint64_t status;

		if (!cbor_isa_array(items[i]) || cbor_array_size(items[i]) != 2) {
			*error_r = "mimi: entry is not a [message-id, status] pair";
			return -1;
		}
		pair = cbor_array_handle(items[i]);
		if (!cbor_isa_bytestring(pair[0]) ||
		    cbor_bytestring_length(pair[0]) != MIMISTATUS_MSGID_LEN) {
			*error_r = "mimi: message id is not a 32-byte string";
			return -1;
		}
		if (!get_uint(pair[1], &status) || status > 255) {
			*error_r = "mimi: status is not an integer 0..255";
			return -1;
		}
		memcpy(r->entries[i].msgid, cbor_bytestring_handle(pair[0]), MIMISTATUS_MSGID_LEN);
		r->entries[i].status = (unsigned int)status;
	}
	return 0;
}

/* A copy of a text string whose bytes pass valid (checked before copying); NULL if not. */
static char *
get_text(const cbor_item_t *item, bool (*valid)(const char *, size_t))
{
	const char *s;
	size_t len;
	char *copy;

	if (!cbor_isa_string(item))
		return NULL;
	s = (const char *)cbor_string_handle(item);
	len = cbor_string_length(item);
	if (s == NULL || !valid(s, len))
		return NULL;
	copy = mymalloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

static bool
valid_recipient(const char *s, size_t len)
{
	return valid_text(s, len, MIMISTATUS_RECIPIENT_MAX);
}

static int
load_event(const cbor_item_t *item, struct mimistatus_event *ev, const char **error_r)
{
	cbor_item_t **f;
	uint64_t ts;

	if (!cbor_isa_array(item) || cbor_array_size(item) != 3) {
		*error_r = "report: event is not [event-id, recipient, timestamp]";
		return -1;
	}
	f = cbor_array_handle(item);
	if ((ev->event_id = get_text(f[0], valid_event_id)) == NULL) {
		*error_r = "report: bad event id";
		return -1;
	}
	if ((ev->recipient = get_text(f[1], valid_recipient)) == NULL) {
		*error_r = "report: bad recipient";
		return -1;
	}
	if (!get_uint(f[2], &ts) || ts > INT64_MAX) {
		*error_r = "report: bad timestamp";
		return -1;
	}
	ev->timestamp_ms = (int64_t)ts;
	return 0;
}

static int
load_report(const cbor_item_t *map, struct mimistatus_report *r, const char **error_r)
{
	const cbor_item_t *field[5] = {NULL};
	struct cbor_pair *pairs;
	uint64_t version;
	cbor_item_t **evs;

	if (!cbor_isa_map(map)) {
		*error_r = "report: not a map";
		return -1;
	}
	pairs = cbor_map_handle(map);
	for (size_t i = 0; i < cbor_map_size(map); i++) {
		uint64_t key;

		if (!get_uint(pairs[i].key, &key) || key < 1 || key > 4) {
			*error_r = "report: unknown key";
			return -1;
		}
		if (field[key] != NULL) {
			*error_r = "report: repeated key";
			return -1;
		}
		field[key] = pairs[i].value;
	}
	for (int k = 1; k <= 4; k++) {
		if (field[k] == NULL) {
			*error_r = "report: a key of 1..4 is missing";
			return -1;
		}
	}
	if (!get_uint(field[1], &version) || version != MIMISTATUS_VERSION) {
		*error_r = "report: unsupported version";
		return -1;
	}
	if ((r->domain = get_text(field[2], valid_domain)) == NULL) {
		*error_r = "report: bad reporting domain";
		return -1;
	}
	if (load_mimi(field[3], r, error_r) < 0)
		return -1;
	if (!cbor_isa_array(field[4]) || cbor_array_size(field[4]) != r->count) {
		*error_r = "report: events do not match the MIMI entries one to one";
		return -1;
	}
	r->events = mycalloc(r->count ? r->count : 1, sizeof(*r->events));
	evs = cbor_array_handle(field[4]);
	for (size_t i = 0; i < r->count; i++) {
		if (load_event(evs[i], &r->events[i], error_r) < 0)
			return -1;
	}
	return 0;
}

typedef int load_fn(const cbor_item_t *, struct mimistatus_report *, const char **);
typedef int encode_fn(const struct mimistatus_report *, unsigned char **, size_t *, const char **);

static int
decode(const unsigned char *buf, size_t len, struct mimistatus_report *r, load_fn *load,
       encode_fn *encode, const char **error_r)
{
	struct cbor_load_result res;
	cbor_item_t *root;
	unsigned char *again;
	size_t again_len;
	int ret;

	memset(r, 0, sizeof(*r));
	if (prescan(buf, len, error_r) < 0)
		return -1;
	root = cbor_load(buf, len, &res);
	if (root == NULL || res.error.code != CBOR_ERR_NONE || res.read != len) {
		if (root != NULL)
			cbor_decref(&root);
		*error_r = "cbor: malformed";
		return -1;
	}
	ret = load(root, r, error_r);
	cbor_decref(&root);
	if (ret < 0)
		return -1;
	if (encode(r, &again, &again_len, error_r) < 0)
		return -1;
	ret = again_len == len && memcmp(again, buf, len) == 0 ? 0 : -1;
	free(again);
	if (ret < 0)
		*error_r = "cbor: not in deterministic encoding (RFC 8949 4.2.1)";
	return ret;
}

int
mimistatus_decode_mimi(const unsigned char *buf, size_t len, struct mimistatus_report *report_r,
                       const char **error_r)
{
	return decode(buf, len, report_r, load_mimi, mimistatus_encode_mimi, error_r);
}

int
mimistatus_decode(const unsigned char *buf, size_t len, struct mimistatus_report *report_r,
                  const char **error_r)
{
	return decode(buf, len, report_r, load_report, mimistatus_encode, error_r);
}

void
mimistatus_report_free(struct mimistatus_report *r)
{
	if (r->events != NULL) {
		for (size_t i = 0; i < r->count; i++) {
			free(r->events[i].event_id);
			free(r->events[i].recipient);
		}
	}
	free(r->events);
	free(r->entries);
	free(r->domain);
	memset(r, 0, sizeof(*r));
}
