/*
 * ctl_log - statusctl's commands about the schema and the event log: migrate, maintain,
 * status, tail and replay. See statusctl(8) and ctl.h.
 *
 * DESIGN
 *	migrate, maintain, status and tail go through the storage layer (store.h) on the
 *	command's connection; status --json prints the API's document (render.h). tail -f
 *	waits for the log's notifications (LISTEN) and also looks every TAIL_POLL_MS. replay
 *	sends event files to statusd's socket like any producer (evclient), at most
 *	REPLAY_WINDOW records unanswered.
 *
 * SECURITY
 *	Event text is printed through the feeds' JSON writer (escaped) or with its fields
 *	cleaned; statusd checks replayed records as it checks every producer's.
 *
 * DIAGNOSTICS
 *	Database and socket failures are fatal; replay reports each rejected record with its
 *	file and line and exits 1 if any was.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "evclient.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "render.h"
#include "rfc3339.h"
#include "store.h"

int
cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *error;
	bool transient;
	int version;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "+", lo);
	ctl_operands(argc, 0, 0);
	if ((version = store_migrate(ctl_db(ctl), ctl->cfg.sql_dir, &transient, &error)) < 0)
		msg_fatal("migrate: %s", error);
	if (ctl->json)
		printf("{\"schema_version\":%d}\n", version);
	else
		printf("database schema is at version %d\n", version);
	return 0;
}

int
cmd_maintain(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *error;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "+", lo);
	ctl_operands(argc, 0, 0);
	if (store_maintain(ctl_db(ctl), ctl->cfg.event_retention, &error) < 0)
		msg_fatal("maintain: %s", error);
	return 0;
}

static void
print_status(struct json_object *doc)
{
	struct json_object *rcpts = json_object_object_get(doc, "recipients");

	printf("message    %s\n",
	       json_object_get_string(json_object_object_get(doc, "message_id")));
	printf("tracking   %s\n",
	       json_object_get_string(json_object_object_get(doc, "tracking_id")));
	printf("sender     %s\n", json_object_get_string(json_object_object_get(doc, "sender")));
	printf("queued at  %s\n", json_object_get_string(json_object_object_get(doc, "queued_at")));
	for (size_t i = 0; i < json_object_array_length(rcpts); i++) {
		struct json_object *r = json_object_array_get_idx(rcpts, i);
		const char *reply = json_object_get_string(json_object_object_get(r, "smtp_reply"));
		if (reply == NULL) /* no SMTP reply: what Postfix said instead */
			reply = json_object_get_string(json_object_object_get(
			        json_object_object_get(r, "details"), "postfix_reply"));
		printf("  %-32s %-9s %s%s%s\n",
		       json_object_get_string(json_object_object_get(r, "recipient")),
		       json_object_get_string(json_object_object_get(r, "status")),
		       json_object_get_string(json_object_object_get(r, "timestamp")),
		       reply ? "  " : "", reply ? reply : "");
	}
}

int
cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct store_message *msg = NULL;
	struct json_object *doc;
	const char *error;
	bool transient;
	int found;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "+", lo);
	ctl_operands(argc, 1, 1);
	found = store_status(ctl_db(ctl), argv[optind], NULL, NULL, 0, 0, 0, &msg, &transient,
	                     &error);
	if (found < 0)
		msg_fatal("status: %s", error);
	if (found == 0) {
		fprintf(stderr, "statusctl: no message with id %s\n", argv[optind]);
		return EXIT_NOTFOUND;
	}
	doc = render_status(msg, false);
	if (ctl->json)
		ctl_print_json(doc);
	else
		print_status(doc);
	json_object_put(doc);
	store_messages_free(msg, 1);
	return 0;
}

/* --- tail ---------------------------------------------------------------------------- */

#define TAIL_LINES_DEFAULT 10
#define TAIL_BATCH         500
#define TAIL_POLL_MS       5000 /* look at the log even without a notification */

static void
print_logged(const struct ctl *ctl, const struct store_logged *l, int64_t epoch)
{
	struct mbuf line = MBUF_INIT;

	if (ctl->json) {
		render_logged(l, epoch, &line);
		printf("%s\n", mbuf_str(&line));
	} else {
		struct json_object *details = l->details ? json_tokener_parse(l->details) : NULL;
		struct json_object *reply = NULL;
		char when[RFC3339_BUFSIZE];
		const char *type = msevent_type_name((enum msevent_type)l->type);

		if (details != NULL && !json_object_object_get_ex(details, "smtp_reply", &reply))
			json_object_object_get_ex(details, "postfix_reply", &reply);
		printf("%-8lld %s %-9s %-32s %s%s%s\n", (long long)l->log_offset,
		       rfc3339_format(l->time_ms, when), type ? type : "?",
		       l->recipient ? l->recipient : "-", l->tracking_id ? l->tracking_id : "-",
		       reply ? "  " : "", reply ? json_object_get_string(reply) : "");
		json_object_put(details);
	}
	mbuf_free(&line);
	fflush(stdout);
}

/* Print the events after offset *after up to upto; moves *after. */
static void
tail_range(struct ctl *ctl, int64_t *after, int64_t upto, int64_t epoch)
{
	while (*after < upto) {
		struct store_logged *logged = NULL;
		const char *error;
		bool transient;
		size_t n = 0;

		if (store_log_range(ctl_db(ctl), *after, upto, TAIL_BATCH, NULL, NULL, 0, &logged,
		                    &n, &transient, &error) < 0)
			msg_fatal("tail: %s", error);
		for (size_t i = 0; i < n; i++)
			print_logged(ctl, &logged[i], epoch);
		/* offsets expired from the log (retention) leave nothing to print */
		*after = n > 0 ? logged[n - 1].log_offset : upto;
		store_logged_free(logged, n);
	}
}

int
cmd_tail(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"follow", no_argument, NULL, 'f'},
	                                   {"from", required_argument, NULL, 'o'},
	                                   {"lines", required_argument, NULL, 'n'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	long long from = -1, lines = TAIL_LINES_DEFAULT;
	int64_t head, epoch, after;
	const char *error;
	bool follow = false;
	char *end;
	int ch;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "+fn:", lo)) != -1) {
		switch (ch) {
		case 'f':
			follow = true;
			break;
		case 'o':
			errno = 0;
			from = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || from < 0)
				ctl_usage("--from wants an offset (0 or more), not \"%s\"", optarg);
			break;
		case 'n':
			errno = 0;
			lines = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || lines < 0 ||
			    lines > 1000000)
				ctl_usage("-n wants a number of events (0 to 1000000), "
				          "not \"%s\"",
				          optarg);
			break;
		default:
			ctl_usage("unknown option");
		}
	}
	ctl_operands(argc, 0, 0);
	if (follow) {
		if (store_log_listen(ctl_db(ctl), &error) < 0)
			msg_fatal("tail: %s", error);
	}
	if (store_log_head(ctl_db(ctl), &head, &epoch, &error) < 0)
		msg_fatal("tail: %s", error);
	after = from >= 0 ? (from < head ? from : head) : (head > lines ? head - lines : 0);
	tail_range(ctl, &after, head, epoch);
	while (follow) {
		struct pollfd pfd = {PQsocket(ctl_db(ctl)), POLLIN, 0};
		PGnotify *n;

		if (poll(&pfd, 1, TAIL_POLL_MS) < 0 && errno != EINTR)
			msg_fatal("tail: poll: %s", strerror(errno));
		if (!PQconsumeInput(ctl_db(ctl)))
			msg_fatal("tail: %s", store_error(ctl_db(ctl), NULL));
		while ((n = PQnotifies(ctl_db(ctl))) != NULL)
			PQfreemem(n);
		if (store_log_head(ctl_db(ctl), &head, &epoch, &error) < 0)
			msg_fatal("tail: %s", error);
		if (head < after) {
			msg_warn("the log was reset (head %lld, epoch %lld): following from its "
			         "start",
			         (long long)head, (long long)epoch);
			after = 0;
		}
		tail_range(ctl, &after, head, epoch);
	}
	return 0;
}

/* --- replay -------------------------------------------------------------------------- */

#define REPLAY_WINDOW 1000 /* records in flight at most */

struct replay {
	const char *file;
	unsigned long stored, rejected;
	bool json;
};

static void
on_replay_reply(void *ctx, uint64_t line, bool ok, const char *error)
{
	struct replay *r = ctx;
	char clean[256];

	if (ok) {
		r->stored++;
		return;
	}
	r->rejected++;
	msg_clean(clean, sizeof(clean), error, strlen(error));
	fprintf(stderr, "statusctl: %s:%llu: rejected: %s\n", r->file, (unsigned long long)line,
	        clean);
}

/* Wait for the socket; write and read what it allows. */
static void
replay_io(struct evclient *c, struct replay *r, const char *sock)
{
	struct pollfd pfd = {evclient_fd(c), POLLIN, 0};
	const char *error;

	if (evclient_want_write(c))
		pfd.events |= POLLOUT;
	if (poll(&pfd, 1, 30000) == 0)
		msg_fatal("replay: statusd at %s did not answer for 30 s", sock);
	if (((pfd.revents & POLLOUT) && evclient_flush(c, &error) < 0) ||
	    ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) &&
	     evclient_read(c, on_replay_reply, r, &error) < 0))
		msg_fatal("replay: statusd at %s: %s (%lu records of %s stored before)", sock,
		          error, r->stored, r->file);
}

int
cmd_replay(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *sock = ctl->cfg.events_socket, *error;
	unsigned long stored = 0, rejected = 0;
	struct evclient *c;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "+", lo);
	ctl_operands(argc, 1, -1);
	c = evclient_new(sock);
	if (evclient_connect(c, &error) < 0)
		msg_fatal("replay: cannot reach statusd at %s: %s", sock, error);
	for (int i = optind; i < argc; i++) {
		struct replay r = {argv[i], 0, 0, ctl->json};
		unsigned long long lineno = 0;
		FILE *f = strcmp(argv[i], "-") == 0 ? stdin : fopen(argv[i], "r");

		if (f == NULL)
			msg_fatal("replay: %s: %s", argv[i], strerror(errno));
		while ((len = getline(&line, &cap, f)) >= 0) {
			lineno++;
			if (len == 0 || line[len - 1] != '\n') {
				if (len == 0)
					continue;
				/* the last record may lack its newline */
				if ((size_t)len + 1 >= cap)
					line = myrealloc(line, cap = len + 2);
				line[len++] = '\n';
				line[len] = '\0';
			}
			if (len == 1)
				continue;
			if (len > ctl->cfg.ingest_record_max) {
				on_replay_reply(&r, lineno, false,
				                "record longer than ingest_record_max");
				continue;
			}
			evclient_queue(c, line, (size_t)len, lineno);
			while (evclient_unacked(c) >= REPLAY_WINDOW || evclient_want_write(c))
				replay_io(c, &r, sock);
		}
		if (ferror(f))
			msg_fatal("replay: %s: %s", argv[i], strerror(errno));
		while (evclient_unacked(c) > 0)
			replay_io(c, &r, sock);
		if (f != stdin)
			fclose(f);
		if (!ctl->json)
			printf("%s: %lu stored, %lu rejected\n", r.file, r.stored, r.rejected);
		stored += r.stored;
		rejected += r.rejected;
	}
	free(line);
	evclient_disconnect(c, NULL, NULL);
	evclient_free(&c);
	if (ctl->json)
		printf("{\"stored\":%lu,\"rejected\":%lu}\n", stored, rejected);
	return rejected > 0 ? 1 : 0;
}
