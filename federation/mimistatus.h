/*
 * mimistatus - the MIMI message-status report (draft-ietf-mimi-message-status, media type
 * application/mimi-message-status) and the msgstatus federation report that wraps it,
 * encoded and decoded with libcbor. docs/federation.md is the specification; this module
 * is its codec and nothing else (no I/O, no signatures, no policy).
 *
 * DESIGN
 *	A MIMI report is a CBOR array of [message-id (bstr .size 32), status (uint 0..255)]
 *	pairs. The federation report is a CBOR map {1: version, 2: reporting domain, 3: the
 *	MIMI report, 4: one [event-id, recipient, timestamp] per MIMI entry, same order}.
 *	Decoded reports are plain C structs owned by the caller (mimistatus_report_free()).
 *	Message ids: mimistatus_msgid() maps a tracking id or a Message-ID to MIMI's 32 bytes:
 *	0x01 followed by the first 31 bytes of SHA-256 over a domain-separated canonical form
 *	(docs/federation.md, "Message ids"). Thread-safe: no static state.
 *
 * SECURITY
 *	Decoders take untrusted bytes (the body of a report POST). Order of checks:
 *	1. size: at most MIMISTATUS_BODY_MAX bytes;
 *	2. a streaming pre-scan of the CBOR (libcbor's cbor_stream_decode), before any tree is
 *	   built: well-formed, definite lengths only, at most MIMISTATUS_NEST_MAX open
 *	   containers, at most MIMISTATUS_ENTRIES_MAX entries per array and
 *	   MIMISTATUS_ITEMS_MAX items in all (so the tree libcbor builds stays under a megabyte),
 *only unsigned integers, byte strings, text strings, arrays and maps (no tags, negative integers,
 *floats or simple values), and nothing after the one top-level item. This bounds the recursion in
 *libcbor's tree builder and destructor;
 *	3. cbor_load() builds the tree, and the shape is checked field by field: types, sizes
 *	   (message id exactly 32 bytes, status <= 255, text lengths), map keys 1..4 each
 *	   present exactly once (an unknown or repeated key is refused), counts of 3 and 4
 *	   equal, text UTF-8 without control characters;
 *	4. deterministic encoding: the decoded report is re-encoded and must equal the input
 *	   byte for byte (RFC 8949 section 4.2.1: shortest lengths, map keys in ascending
 *	   order), so one report has exactly one encoding and a signature covers one meaning.
 *	Status codes 7..255 are decoded (the draft's "unknown" range) and left to the caller.
 *
 * DIAGNOSTICS
 *	0 on success, -1 with *error_r set to static text naming the first check that failed.
 */
#ifndef MIMISTATUS_H
#define MIMISTATUS_H

#include <stddef.h>
#include <stdint.h>

#define MIMISTATUS_MSGID_LEN   32
#define MIMISTATUS_BODY_MAX    (256 * 1024)
#define MIMISTATUS_ENTRIES_MAX 1000
#define MIMISTATUS_NEST_MAX    3
/* CBOR items in one report: a full federation report of 1000 entries has 7011. */
#define MIMISTATUS_ITEMS_MAX     (8 * MIMISTATUS_ENTRIES_MAX + 16)
#define MIMISTATUS_DOMAIN_MAX    253
#define MIMISTATUS_EVENT_ID_MAX  64
#define MIMISTATUS_RECIPIENT_MAX 512
#define MIMISTATUS_VERSION       1

/* The draft's base status codes; 7..255 are "unknown". */
enum mimistatus_code {
	MIMI_UNREAD = 0,
	MIMI_DELIVERED = 1, /* msgstatus: delivered and relayed */
	MIMI_READ = 2,
	MIMI_EXPIRED = 3,
	MIMI_DELETED = 4,
	MIMI_HIDDEN = 5,
	MIMI_ERROR = 6, /* msgstatus: bounced */
};

struct mimistatus_entry {
	uint8_t msgid[MIMISTATUS_MSGID_LEN];
	unsigned int status; /* 0..255 */
};

/* What MIMI cannot carry, one per entry. */
struct mimistatus_event {
	char *event_id;       /* 1..64 bytes of [A-Za-z0-9._:-] */
	char *recipient;      /* 1..512 bytes of UTF-8, no control characters */
	int64_t timestamp_ms; /* ms since the Unix epoch, UTC; >= 0 */
};

struct mimistatus_report {
	char *domain; /* the reporting site's domain; NULL for a bare MIMI report */
	size_t count;
	struct mimistatus_entry *entries;
	struct mimistatus_event *events; /* count of them; NULL for a bare MIMI report */
};

enum mimistatus_idkind {
	MIMISTATUS_ID_TRACKING, /* a Msgstatus-Id value */
	MIMISTATUS_ID_MESSAGE,  /* an RFC 5322 Message-ID, with or without its <> */
};

/* MIMI's 32-byte message id for a tracking id or Message-ID of len bytes at s. Returns 0,
   or -1 and *error_r when s is empty, too long (> 998) or not printable ASCII. */
int mimistatus_msgid(enum mimistatus_idkind kind, const char *s, size_t len,
                     uint8_t out[MIMISTATUS_MSGID_LEN], const char **error_r);

/* Encode a bare MIMI report (report->domain and ->events ignored). On success *buf_r is a
   malloc'ed buffer of *len_r bytes that the caller frees. */
int mimistatus_encode_mimi(const struct mimistatus_report *report, unsigned char **buf_r,
                           size_t *len_r, const char **error_r);
/* Encode a federation report (domain and events required). Same ownership. */
int mimistatus_encode(const struct mimistatus_report *report, unsigned char **buf_r, size_t *len_r,
                      const char **error_r);

/* Decode a bare MIMI report / a federation report into *report_r, which the caller
   releases with mimistatus_report_free() (also after a failure). */
int mimistatus_decode_mimi(const unsigned char *buf, size_t len, struct mimistatus_report *report_r,
                           const char **error_r);
int mimistatus_decode(const unsigned char *buf, size_t len, struct mimistatus_report *report_r,
                      const char **error_r);
void mimistatus_report_free(struct mimistatus_report *report);

/* "unread", "delivered", ... or "unknown". */
const char *mimistatus_code_name(unsigned int status);

#endif
