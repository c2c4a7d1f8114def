/*
 * test_feedmsg - unit tests for statusd/feedmsg.c (an event as the feeds send it) and the
 * record it is made of, render_logged() (statusd/render.c).
 *
 * The reference for a record is json-c: the members of store_logged as a json_object tree
 * in the order of docs/api.md, printed with the feeds' flags, the details object parsed
 * and printed by json-c. A record must match it byte for byte for strings with quotes,
 * backslashes, control characters and UTF-8, absent strings, unknown types, details that
 * are absent, flat, nested or not an object, and strings long enough that every byte
 * escaped six-fold overruns a reservation that leaves one of them out (ASan). A catch-up page's
 * messages share a slab (feed_msg_new_in): each stays readable for as long as it is held,
 * in whatever order the page and its messages are let go, and the slab's memory goes with
 * the last of them (ASan's leak check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "feedmsg.h"
#include "mbuf.h"
#include "msevent.h"
#include "rfc3339.h"
#include "store.h"

#include "check.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void
add_str(struct json_object *o, const char *key, const char *s)
{
	json_object_object_add(o, key, s != NULL ? json_object_new_string(s) : NULL);
}

/* The event's feed message as a json-c tree prints it; the caller frees it. */
static char *
reference(const struct store_logged *l, int64_t epoch)
{
	struct json_object *o = json_object_new_object(), *details;
	char when[RFC3339_BUFSIZE];
	char *s;

	json_object_object_add(o, "type", json_object_new_string("event"));
	json_object_object_add(o, "offset", json_object_new_int64(l->log_offset));
	json_object_object_add(o, "epoch", json_object_new_int64(epoch));
	add_str(o, "message_id", l->message_id);
	add_str(o, "tracking_id", l->tracking_id);
	add_str(o, "recipient", l->recipient);
	add_str(o, "status", msevent_type_name((enum msevent_type)l->type));
	add_str(o, "timestamp", rfc3339_format(l->time_ms, when));
	details = l->details != NULL ? json_tokener_parse(l->details) : NULL;
	if (details == NULL || !json_object_is_type(details, json_type_object)) {
		json_object_put(details);
		details = json_object_new_object();
	}
	json_object_object_add(o, "details", details);
	add_str(o, "event_id", l->event_id);
	s = strdup(json_object_to_json_string_ext(o, FLAGS));
	json_object_put(o);
	return s;
}

/* n bytes of s repeated, NUL-terminated; the caller frees it. */
static char *
repeat(const char *s, size_t n)
{
	size_t len = strlen(s);
	char *p = malloc(n + 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = s[i % len];
	p[n] = '\0';
	return p;
}

static void
test_record_matches_json_c(void **state)
{
	/* each of these bytes is written as six: a record of three of them needs more than
	   1 MiB, and one of them left out of the reservation leaves less than that */
	char *quotes = repeat("\"\\", 70000), *controls = repeat("\x01\x1f", 80000);
	struct {
		const char *what;
		struct store_logged l;
	} cases[] = {
	        {"plain",
	         {1, 1765000000123, MSEV_DELIVERED, 7, "ev-1", "bob@example.org", NULL, "t1",
	          "<m1@example.com>", NULL, NULL}},
	        {"escapes and UTF-8",
	         {42, 1765000000999, MSEV_READ, 7, "e\"v\\2", "J\xc3\xb6rg\t<\x01>@example.org",
	          "{\"mta\": \"mx.example.org\", \"dsn\": \"2.0.0\", \"latency_ms\": 12}", "t\"2",
	          "<m\\2\n@example.com>", NULL, NULL}},
	        {"absent strings, unknown type, negative time",
	         {9223372036854775807LL, -1, 0, 0, NULL, NULL, "{}", NULL, NULL, NULL, NULL}},
	        {"details nested and not an object",
	         {3, 0, MSEV_BOUNCED, 1, "ev-3", "x@example.org",
	          "{\"a\": {\"b\": [1, 2]}, \"c\": \"d\"}", "t3", "<m3@example.com>", NULL, NULL}},
	        {"details an array",
	         {4, 5, MSEV_QUEUED, 1, "ev-4", "x", "[1, 2]", "t", "m", NULL, NULL}},
	        {"long strings escaped",
	         {5, 6, MSEV_RELAYED, 1, quotes, controls, NULL, controls, controls, NULL, NULL}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct store_logged *l = &cases[i].l;
		struct mbuf scratch =
		        MBUF_INIT; /* a new one: what an earlier case left is no room */
		struct feed_msg *m = feed_msg_new(l, 77, &scratch);
		char *want = reference(l, 77);

		CHECK_STR(cases[i].what, m->data, want);
		CHECK_INT(cases[i].what, m->len, strlen(want));
		CHECK_INT(cases[i].what, m->offset, l->log_offset);
		free(want);
		feed_msg_unref(&m);
		CHECK_INT(cases[i].what, m == NULL, 1);
		mbuf_free(&scratch);
	}
	free(quotes);
	free(controls);
	check_done();
}

/* A page of messages in a slab, some larger than a block, let go in every order. */
static void
test_slab_lifetimes(void **state)
{
	char *big = repeat("abc", 100000); /* a message larger than a slab's block */
	struct mbuf scratch = MBUF_INIT;

	(void)state;
	for (int order = 0; order < 3; order++) {
		struct feed_slab *slab = feed_slab_new();
		struct feed_msg *msgs[600], *kept;
		char *want[600];
		char what[64];

		for (int i = 0; i < 600; i++) {
			struct store_logged l = {i + 1,
			                         1765000000000 + i,
			                         MSEV_DELIVERED,
			                         1,
			                         "ev",
			                         i % 100 == 0 ? big : "r@example.org",
			                         NULL,
			                         "t",
			                         "m",
			                         NULL,
			                         NULL};
			msgs[i] = feed_msg_new_in(slab, &l, 1, &scratch);
			want[i] = reference(&l, 1);
		}
		kept = msgs[300];
		feed_msg_ref(kept); /* as a transport holds one it has queued */
		if (order == 0)
			feed_slab_release(&slab); /* the page goes first */
		for (int i = 0; i < 600; i++) {
			snprintf(what, sizeof(what), "order %d, message %d", order, i);
			CHECK_STR(what, msgs[i]->data, want[i]);
		}
		for (int i = 0; i < 600; i++)
			feed_msg_unref(&msgs[order == 2 ? 599 - i : i]);
		if (order != 0)
			feed_slab_release(&slab); /* the page after its messages */
		CHECK_INT("slab released", slab == NULL, 1);
		snprintf(what, sizeof(what), "order %d, the message kept", order);
		CHECK_STR(what, kept->data, want[300]);
		feed_msg_unref(&kept);
		for (int i = 0; i < 600; i++)
			free(want[i]);
	}
	free(big);
	mbuf_free(&scratch);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_record_matches_json_c),
	        cmocka_unit_test(test_slab_lifetimes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
