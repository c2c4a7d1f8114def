/*
 * params - what HTTP and feed clients send, checked: query arguments of the message list
 * and of the feeds, JSON request bodies, WebSocket client messages.
 *
 * Pure functions over strings (json-c for bodies), kept apart from libwebsockets so that
 * the fuzz targets (fuzz/fuzz_request.c, fuzz/fuzz_wsmsg.c) and unit tests drive them
 * directly. An argument that is absent is passed as NULL.
 *
 * DIAGNOSTICS
 *	-1 (or false/NULL) with *error_r set to the sentence the client gets in its
 *	application/problem+json "detail"; it never quotes the input.
 */
#ifndef PARAMS_H
#define PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct json_object;

#define PARAMS_WS_MAX 1024 /* bytes in a WebSocket client message */

/* A message reference ({id}: tracking id or Message-ID, percent-decoded): 1..MSEVENT_MSGID_MAX
   bytes of well-formed UTF-8 (utf8_valid), no controls or spaces. */
bool params_ref_ok(const char *id);
/* A user or address: 1..MSEVENT_ADDR_MAX bytes, the same characters. */
bool params_user_ok(const char *user);
/* A report id (sql/009): an id as randid_new() makes them. */
bool params_report_ok(const char *id);

/* The latest time a client may give: 9999-12-31T23:59:59.999Z, the last RFC 3339 can write
   (PostgreSQL's timestamps end later, in 294276). */
#define PARAMS_TIME_MAX 253402300799999LL
/* A time: RFC 3339, or milliseconds since the epoch (1 to PARAMS_TIME_MAX). */
int params_time(const char *value, int64_t *ms_r);

/* Where a feed resumes: Last-Event-ID "EPOCH-OFFSET" wins over ?offset=&epoch= (both or
   neither). *from_r is -1 when the client gave no position (live only). */
int params_event_id(const char *s, int64_t *epoch_r, int64_t *offset_r);
int params_resume(const char *last_event_id, const char *offset, const char *epoch,
                  int64_t *epoch_r, int64_t *from_r, const char **error_r);

/* The message list's arguments (GET /api/v1/messages); flt->recipient points into
   args->recipient. */
struct params_list_args {
	const char *status, *since, *until, *limit, *cursor, *recipient;
};
#define PARAMS_LIST_DEFAULT 50
#define PARAMS_LIST_MAX     200
int params_list(const struct params_list_args *args, struct store_list_filter *flt,
                const char **error_r);

/* The timeline's cursor (GET .../timeline?cursor=): the next_cursor of a page, a log
   offset; absent is 0, the start. */
int params_timeline(const char *cursor, int64_t *after_r, const char **error_r);

/* A request body: a JSON object (strict, well-formed UTF-8 by utf8_valid, nesting depth 3);
   no body is an empty object unless required. The caller puts the object. */
struct json_object *params_body(const void *data, size_t len, bool required, const char **error_r);
/* PUT /api/v1/preferences: {"read_receipts":BOOL,"presence":BOOL,"mdn":"never"|"always"|null},
   each optional; -1 in *rr_r / *pr_r, NULL in *mdn_r for "leave as it is"; mdn null is
   "default" in *mdn_r (back to the administrator's default). */
int params_prefs(struct json_object *obj, int *rr_r, int *pr_r, const char **mdn_r,
                 const char **error_r);
/* POST /api/v1/presence: {"state":"online"|"offline"} or {"state":"typing","to":ADDRESS}.
 *state_r and *to_r (NULL unless typing) point into obj. */
int params_presence(struct json_object *obj, const char **state_r, const char **to_r,
                    const char **error_r);
/* POST .../receipt: an empty object. */
int params_receipt(struct json_object *obj, const char **error_r);

/* A WebSocket client message: the only one is {"type":"ping"}. */
int params_ws_message(const void *data, size_t len, const char **error_r);

#endif
