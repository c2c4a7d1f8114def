/*
 * render - the JSON documents of statusd's API (docs/api.md) from what storage returns:
 * a message's status and timeline, a list of messages, preferences and presence; and the
 * JSON of one logged event, as the feeds, webhooks and statusctl tail send it. api.c
 * answers with them and statusctl prints them with --json, so both show the same thing.
 *
 * DESIGN
 *	Pure functions: a json-c tree from the structs of store.h, no I/O and no clock. The
 *	status shown for a recipient is status_view() of its stored state; latency_ms is
 *	counted from the message's queued time. The caller puts the tree.
 *
 * SECURITY
 *	Details objects come from the database (validated events) and are parsed back with
 *	json-c; text that is not a JSON object is shown as {}. What a caller may see is
 *	decided before rendering (principal.h, api.c).
 *
 * DIAGNOSTICS
 *	None; out of memory is fatal as everywhere.
 */
#ifndef RENDER_H
#define RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct json_object;
struct mbuf;

/*
 * A message's status document: message_id, tracking_id, sender, queue_id, size,
 * queued_at and recipients; with timeline also its events and next_cursor.
 */
struct json_object *render_status(const struct store_message *m, bool timeline);
/* {"messages":[...],"next_cursor":"..."|null}: more says a page follows. */
struct json_object *render_list(const struct store_message *msgs, size_t n, bool more);
/* {"user","read_receipts","presence"}. */
/* A report as it came (GET /api/v1/reports/{id}). */
struct json_object *render_report(const char *report_id, const char *tracking_id, const char *raw,
                                  bool truncated);
struct json_object *render_prefs(const char *user, const struct store_prefs *prefs);
/* {"user","online","last_seen","client","typing_to"}. */
struct json_object *render_presence(const char *user, const struct store_presence *pr);

/*
 * Append the feed (and webhook) JSON form of a logged event, without a newline: written
 * directly (jsonstr.h), byte for byte what json-c printed of a tree of the same members.
 * Event text is escaped by jsonstr_append; a details object is copied only if
 * jsonstr_compact finds it in the form json-c would print, and goes through json-c
 * otherwise.
 */
void render_logged(const struct store_logged *l, int64_t epoch, struct mbuf *out);

#endif
