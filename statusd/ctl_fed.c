/*
 * ctl_fed - statusctl's views of the federation sender: the outbox (events waiting per
 * destination) and each destination's state (endpoint, last success, last error,
 * backoff). See statusctl(8), ctl.h, store.h (store_fedout_*) and sql/011.
 *
 * DESIGN
 *	Read-only queries of fed_outbox and fed_peers; statusd's sender writes them. Times
 *	are RFC 3339 (UTC); "-" where there is none.
 *
 * SECURITY
 *	Endpoints and errors come from the database (the sender wrote them cleaned); they are
 *	cleaned again for the terminal (ctl_clean).
 *
 * DIAGNOSTICS
 *	Database errors are fatal (exit 1).
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"
#include "msg.h"
#include "rfc3339.h"
#include "store.h"

static void
dest_json(struct json_object *o, const struct store_fedout_dest *d, bool peers)
{
	json_object_object_add(o, "destination", json_object_new_string(d->destination));
	json_object_object_add(o, "waiting", json_object_new_int64(d->waiting));
	json_object_object_add(o, "failed", json_object_new_int64(d->failed));
	ctl_json_add_time(o, "oldest", d->oldest_ms);
	ctl_json_add_time(o, "next_try", d->next_try_ms);
	if (!peers)
		return;
	json_object_object_add(o, "endpoint",
	                       d->endpoint ? json_object_new_string(d->endpoint) : NULL);
	ctl_json_add_time(o, "last_success", d->last_success_ms);
	json_object_object_add(o, "last_error",
	                       d->last_error ? json_object_new_string(d->last_error) : NULL);
	ctl_json_add_time(o, "last_error_at", d->last_error_ms);
	json_object_object_add(o, "failures", json_object_new_int64(d->failures));
}

static const char *
time_or_dash(int64_t ms, char *buf)
{
	const char *t = ctl_time_text(ms, buf);
	return t ? t : "-";
}

static int
show(struct ctl *ctl, int argc, char **argv, bool peers)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct store_fedout_dest *d;
	const char *error;
	size_t n;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	ctl_operands(argc, 0, 0);
	if (store_fedout_dests(ctl_db(ctl), peers, &d, &n, &error) < 0)
		msg_fatal("federation %s: %s", peers ? "peers" : "outbox", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();
			dest_json(o, &d[i], peers);
			json_object_array_add(arr, o);
		}
		json_object_object_add(doc, peers ? "peers" : "outbox", arr);
		ctl_print_json(doc);
		json_object_put(doc);
	} else if (n == 0) {
		printf(peers ? "no federation peers yet\n" : "the federation outbox is empty\n");
	} else if (!peers) {
		printf("%-32s %8s %8s %-24s %s\n", "DESTINATION", "WAITING", "FAILED", "OLDEST",
		       "NEXT TRY");
		for (size_t i = 0; i < n; i++) {
			char b1[RFC3339_BUFSIZE], b2[RFC3339_BUFSIZE];
			printf("%-32s %8lld %8lld %-24s %s\n", d[i].destination,
			       (long long)d[i].waiting, (long long)d[i].failed,
			       time_or_dash(d[i].oldest_ms, b1),
			       d[i].due ? "now" : time_or_dash(d[i].next_try_ms, b2));
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			char b1[RFC3339_BUFSIZE], b2[RFC3339_BUFSIZE], b3[RFC3339_BUFSIZE];
			char clean[512];
			printf("%s\n", d[i].destination);
			printf("  endpoint      %s\n",
			       d[i].endpoint ? ctl_clean(d[i].endpoint, clean, sizeof(clean))
			                     : "-");
			printf("  last success  %s\n", time_or_dash(d[i].last_success_ms, b1));
			printf("  last error    %s%s%s\n", time_or_dash(d[i].last_error_ms, b2),
			       d[i].last_error ? " " : "",
			       d[i].last_error ? ctl_clean(d[i].last_error, clean, sizeof(clean))
			                       : "");
			printf("  backoff       %u failures in a row, next try %s\n", d[i].failures,
			       d[i].due ? "now" : time_or_dash(d[i].next_try_ms, b3));
			printf("  outbox        %lld waiting, %lld failed\n",
			       (long long)d[i].waiting, (long long)d[i].failed);
		}
	}
	store_fedout_dests_free(d, n);
	return 0;
}

int
cmd_fed_outbox(struct ctl *ctl, int argc, char **argv)
{
	return show(ctl, argc, argv, false);
}

int
cmd_fed_peers(struct ctl *ctl, int argc, char **argv)
{
	return show(ctl, argc, argv, true);
}
