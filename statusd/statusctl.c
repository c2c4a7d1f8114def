/*
 * statusctl - command-line control of msgstatus: schema migrations, message status, API
 * tokens, users and their preferences, and the federation's signing keys. See statusctl(8).
 *
 * DESIGN
 *	A short-lived tool that talks to PostgreSQL directly with the settings of
 *	statusd.conf (database, sql_dir, event_retention, auth_secret_file,
 *	auth_token_max_lifetime), through the same store functions statusd uses where there
 *	are some; the token and user commands have their few statements here. The key
 *	commands need no database: they parse their arguments and call federation/fedkeys,
 *	which keeps the keys in files in federation_key_dir. Human-readable
 *	output by default, --json for scripts. Global options come before the command, the
 *	command's own options anywhere after it.
 *
 * SECURITY
 *	An API token is printed once, when it is made; only its SHA-256 is stored, and no
 *	command can show it again. Names and labels are checked before they are stored;
 *	text read back from the database is cleaned before it reaches a terminal. A domain and
 *	selector must be DNS labels before fedkeys builds a path from them; private keys are
 *	never printed.
 *
 * DIAGNOSTICS
 *	Exit 0 on success, 1 on failure (with a message on stderr), 2 on bad usage (with the
 *	command's usage), 3 when the message, token, key or user named does not exist.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "evclient.h"
#include "fedkeys.h"
#include "fedrec.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "render.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"
#include "token.h"
#include "utf8.h"

#define EXIT_USAGE    2
#define EXIT_NOTFOUND 3
#define LABEL_MAX     200
#define DOMAIN_MAX    253
#define DURATION_MAX  (36500LL * 86400000LL) /* a century */
#define SIGN_TTL_DEF  3600000LL              /* token sign: an hour (or less, if the limit is) */
#define BYTEAOID      17

struct ctl {
	const char *config;
	struct sd_config cfg;
	bool json;
	PGconn *conn; /* connected on first use */
};

struct command {
	const char *name, *sub; /* sub: NULL for one-word commands */
	const char *synopsis;
	int (*run)(struct ctl *ctl, int argc, char **argv); /* argv[0]: the last command word */
};

/* Bad arguments to one command: say what is wrong and how the command is used. */
static _Noreturn void __attribute__((format(printf, 2, 3)))
usage_error(const struct command *c, const char *fmt, ...)
{
	va_list ap;

	fputs("statusctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: statusctl [-c config_file] [--json] %s\n", c->synopsis);
	exit(EXIT_USAGE);
}

static const struct command *current;

/* --- the database -------------------------------------------------------------------- */

static PGconn *
db(struct ctl *ctl)
{
	if (ctl->conn != NULL)
		return ctl->conn;
	ctl->conn = PQconnectdb(ctl->cfg.database);
	if (PQstatus(ctl->conn) != CONNECTION_OK)
		msg_fatal("cannot connect to the database (%s): %s", ctl->cfg.database,
		          store_error(ctl->conn, NULL));
	PQclear(PQexec(ctl->conn, "SET client_min_messages = warning"));
	return ctl->conn;
}

/* A failed statement: fatal, with a hint when the schema is missing. */
static _Noreturn void
db_fail(PGconn *conn, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *error = store_error(conn, res);

	if (state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0))
		msg_fatal("%s: %s (is the schema in place? run statusctl migrate)", what, error);
	msg_fatal("%s: %s", what, error);
}

/* Run a statement with text parameters (NULL: SQL NULL); fatal unless it succeeds. */
static PGresult *
db_exec(struct ctl *ctl, const char *what, const char *sql, int n, const char *const *params)
{
	PGconn *conn = db(ctl);
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		db_fail(conn, res, what);
	return res;
}

/* A column holding ms since the epoch (or NULL) as RFC 3339, or "-"/NULL for NULL. */
static const char *
time_text(PGresult *res, int row, int col, char *buf)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return rfc3339_format(strtoll(PQgetvalue(res, row, col), NULL, 10), buf);
}

static void
json_add_time(struct json_object *obj, const char *key, PGresult *res, int row, int col)
{
	char buf[RFC3339_BUFSIZE];
	const char *t = time_text(res, row, col, buf);

	json_object_object_add(obj, key, t ? json_object_new_string(t) : NULL);
}

static void
print_json(struct json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Text from the database, made safe for a terminal. */
static const char *
clean(const char *s, char *buf, size_t size)
{
	return msg_clean(buf, size, s, strlen(s));
}

/* --- arguments ----------------------------------------------------------------------- */

/* A user name from the command line, lower-cased (caller frees); usage error if bad. */
static char *
arg_user(const char *s)
{
	const char *error;
	char *user = token_user(s, strlen(s), &error);

	if (user == NULL)
		usage_error(current, "bad user name: %s", error);
	return user;
}

/* A duration (30d, 12h, 90m, 45s; a bare number is seconds) in ms, > 0. */
static long long
arg_duration(const char *opt, const char *s)
{
	long long ms;

	if (conf_parse_time(s, &ms) < 0 || ms <= 0 || ms > DURATION_MAX)
		usage_error(current,
		            "%s: expected a duration such as 30d, 12h, 90m or 45s, not \"%s\"", opt,
		            s);
	return ms;
}

static bool
arg_bool(const char *opt, const char *s)
{
	bool b;

	if (conf_parse_bool(s, &b) < 0)
		usage_error(current, "%s: expected yes or no, not \"%s\"", opt, s);
	return b;
}

/* Printable text: UTF-8 without control characters, at most max bytes. */
static const char *
arg_text(const char *opt, const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len > max)
		usage_error(current, "%s: longer than %zu bytes", opt, max);
	if (!utf8_valid(s, len))
		usage_error(current, "%s: not valid UTF-8", opt);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			usage_error(current, "%s: contains a control character", opt);
	return s;
}

/* A domain name (letters, digits, hyphens, dots), lower-cased into a new string. */
static char *
arg_domain(const char *s)
{
	size_t len = strlen(s);
	char *d;

	if (len > 0 && strchr(s, '@') != NULL)
		usage_error(current, "\"%s\" is an address; give its domain (the part after @)", s);
	if (len == 0 || len > DOMAIN_MAX || s[0] == '.' || s[len - 1] == '.' ||
	    strstr(s, "..") != NULL ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyz"
	              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != len)
		usage_error(current, "\"%s\" is not a domain name", s);
	d = mystrdup(s);
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/*
 * getopt_long over a command's arguments (argv[0] is the command word), allowing options
 * after operands; "--json" is accepted here too. Returns the option, -1 at the end.
 */
static int
next_opt(struct ctl *ctl, int argc, char **argv, const char *shortopts,
         const struct option *longopts)
{
	char opts[16];
	int ch;

	/* ":" so that a missing value is told from an unknown option; we say which */
	snprintf(opts, sizeof(opts), "%s:%s", shortopts[0] == '+' ? "+" : "",
	         shortopts[0] == '+' ? shortopts + 1 : shortopts);
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, opts, longopts, NULL);
		if (ch == 'j') {
			ctl->json = true;
			continue;
		}
		if (ch == '?' && optopt != 0)
			usage_error(current, "unknown option -%c", optopt);
		if (ch == '?')
			usage_error(current, "unknown option %s", argv[optind - 1]);
		if (ch == ':')
			usage_error(current, "option %s needs a value", argv[optind - 1]);
		return ch;
	}
}

static void
want_operands(int argc, int min, int max)
{
	int n = argc - optind;

	if (n < min)
		usage_error(current, "missing argument");
	if (max >= 0 && n > max)
		usage_error(current, "too many arguments");
}

/* --- migrate, maintain, status -------------------------------------------------------- */

static int
cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *error;
	bool transient;
	int version;

	optind = 0;
	next_opt(ctl, argc, argv, "+", lo);
	want_operands(argc, 0, 0);
	if ((version = store_migrate(db(ctl), ctl->cfg.sql_dir, &transient, &error)) < 0)
		msg_fatal("migrate: %s", error);
	if (ctl->json)
		printf("{\"schema_version\":%d}\n", version);
	else
		printf("database schema is at version %d\n", version);
	return 0;
}

static int
cmd_maintain(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *error;

	optind = 0;
	next_opt(ctl, argc, argv, "+", lo);
	want_operands(argc, 0, 0);
	if (store_maintain(db(ctl), ctl->cfg.event_retention, &error) < 0)
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

static int
cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct store_message *msg = NULL;
	struct json_object *doc;
	const char *error;
	bool transient;
	int found;

	optind = 0;
	next_opt(ctl, argc, argv, "+", lo);
	want_operands(argc, 1, 1);
	found = store_status(db(ctl), argv[optind], NULL, NULL, 0, 0, 0, &msg, &transient, &error);
	if (found < 0)
		msg_fatal("status: %s", error);
	if (found == 0) {
		fprintf(stderr, "statusctl: no message with id %s\n", argv[optind]);
		return EXIT_NOTFOUND;
	}
	doc = render_status(msg, false);
	if (ctl->json)
		print_json(doc);
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
		store_logged_json(l, epoch, &line);
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

		if (store_log_range(db(ctl), *after, upto, TAIL_BATCH, NULL, NULL, 0, &logged, &n,
		                    &transient, &error) < 0)
			msg_fatal("tail: %s", error);
		for (size_t i = 0; i < n; i++)
			print_logged(ctl, &logged[i], epoch);
		/* offsets expired from the log (retention) leave nothing to print */
		*after = n > 0 ? logged[n - 1].log_offset : upto;
		store_logged_free(logged, n);
	}
}

static int
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
	while ((ch = next_opt(ctl, argc, argv, "+fn:", lo)) != -1) {
		switch (ch) {
		case 'f':
			follow = true;
			break;
		case 'o':
			errno = 0;
			from = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || from < 0)
				usage_error(current,
				            "--from wants an offset (0 or more), not \"%s\"",
				            optarg);
			break;
		case 'n':
			errno = 0;
			lines = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || lines < 0 ||
			    lines > 1000000)
				usage_error(current,
				            "-n wants a number of events (0 to 1000000), "
				            "not \"%s\"",
				            optarg);
			break;
		default:
			usage_error(current, "unknown option");
		}
	}
	want_operands(argc, 0, 0);
	if (follow) {
		PGresult *res = PQexec(db(ctl), "LISTEN msgstatus_log");

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			msg_fatal("tail: %s", store_error(db(ctl), res));
		PQclear(res);
	}
	if (store_log_head(db(ctl), &head, &epoch, &error) < 0)
		msg_fatal("tail: %s", error);
	after = from >= 0 ? (from < head ? from : head) : (head > lines ? head - lines : 0);
	tail_range(ctl, &after, head, epoch);
	while (follow) {
		struct pollfd pfd = {PQsocket(db(ctl)), POLLIN, 0};
		PGnotify *n;

		if (poll(&pfd, 1, TAIL_POLL_MS) < 0 && errno != EINTR)
			msg_fatal("tail: poll: %s", strerror(errno));
		if (!PQconsumeInput(db(ctl)))
			msg_fatal("tail: %s", store_error(db(ctl), NULL));
		while ((n = PQnotifies(db(ctl))) != NULL)
			PQfreemem(n);
		if (store_log_head(db(ctl), &head, &epoch, &error) < 0)
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

static int
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
	next_opt(ctl, argc, argv, "+", lo);
	want_operands(argc, 1, -1);
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

/* --- tokens -------------------------------------------------------------------------- */

static int
cmd_token_create(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"label", required_argument, NULL, 'l'},
	                                   {"expires", required_argument, NULL, 'e'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	char token[TOKEN_API_LEN + 1], lifetime[32], created[RFC3339_BUFSIZE],
	        expires[RFC3339_BUFSIZE];
	unsigned char hash[TOKEN_HASH_LEN];
	const char *label = NULL, *exp;
	long long expires_ms = 0;
	PGresult *res;
	char *user;
	int ch;

	optind = 0;
	while ((ch = next_opt(ctl, argc, argv, "", lo)) != -1) {
		if (ch == 'l')
			label = arg_text("--label", optarg, LABEL_MAX);
		else if (ch == 'e')
			expires_ms = arg_duration("--expires", optarg);
	}
	want_operands(argc, 1, 1);
	user = arg_user(argv[optind]);
	snprintf(lifetime, sizeof(lifetime), "%lld", expires_ms);

	token_api_new(token);
	token_sha256(token, TOKEN_API_LEN, hash);
	{
		const char *p1[1] = {user};
		const char *p2[4] = {user, (const char *)hash, label, expires_ms ? lifetime : NULL};
		const int lens[4] = {0, TOKEN_HASH_LEN, 0, 0}, fmts[4] = {0, 1, 0, 0};
		const Oid types[4] = {0, BYTEAOID, 0, 0};

		PQclear(db_exec(ctl, "token create", "BEGIN", 0, NULL));
		PQclear(db_exec(
		        ctl, "token create",
		        "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", 1,
		        p1));
		res = PQexecParams(
		        db(ctl),
		        "INSERT INTO api_tokens (username, token_hash, label, expires_at)"
		        " VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')"
		        " RETURNING id, (extract(epoch FROM created_at) * 1000)::bigint,"
		        " (extract(epoch FROM expires_at) * 1000)::bigint",
		        4, types, p2, lens, fmts, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			db_fail(ctl->conn, res, "token create");
		PQclear(db_exec(ctl, "token create", "COMMIT", 0, NULL));
	}
	time_text(res, 0, 1, created);
	exp = time_text(res, 0, 2, expires);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(
		        doc, "id", json_object_new_int64(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "label", label ? json_object_new_string(label) : NULL);
		json_object_object_add(doc, "token", json_object_new_string(token));
		json_object_object_add(doc, "created", json_object_new_string(created));
		json_object_object_add(doc, "expires", exp ? json_object_new_string(exp) : NULL);
		print_json(doc);
		json_object_put(doc);
	} else {
		/* the token alone on stdout, so that TOKEN=$(statusctl token create ...) works */
		printf("%s\n", token);
		fprintf(stderr,
		        "statusctl: made API token %s for %s, %s%s; it is shown only now "
		        "(msgstatus keeps only its SHA-256)\n",
		        PQgetvalue(res, 0, 0), user, exp ? "expires " : "does not expire",
		        exp ? exp : "");
	}
	PQclear(res);
	explicit_bzero(token, sizeof(token));
	free(user);
	return 0;
}

static int
cmd_token_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *params[1] = {NULL};
	char *user = NULL;
	PGresult *res;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	want_operands(argc, 0, 1);
	if (optind < argc)
		params[0] = user = arg_user(argv[optind]);
	res = db_exec(ctl, "token list",
	              "SELECT id, username, label, (extract(epoch FROM created_at) * 1000)::bigint,"
	              " (extract(epoch FROM expires_at) * 1000)::bigint,"
	              " (extract(epoch FROM revoked_at) * 1000)::bigint,"
	              " CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
	              " WHEN expires_at <= now() THEN 'expired' ELSE 'valid' END"
	              " FROM api_tokens WHERE $1::text IS NULL OR username = $1 ORDER BY id",
	              1, params);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr = json_object_new_array();
		for (int i = 0; i < PQntuples(res); i++) {
			struct json_object *t = json_object_new_object();
			json_object_object_add(
			        t, "id",
			        json_object_new_int64(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
			json_object_object_add(t, "user",
			                       json_object_new_string(PQgetvalue(res, i, 1)));
			json_object_object_add(
			        t, "label",
			        PQgetisnull(res, i, 2)
			                ? NULL
			                : json_object_new_string(PQgetvalue(res, i, 2)));
			json_add_time(t, "created", res, i, 3);
			json_add_time(t, "expires", res, i, 4);
			json_add_time(t, "revoked", res, i, 5);
			json_object_object_add(t, "state",
			                       json_object_new_string(PQgetvalue(res, i, 6)));
			json_object_array_add(arr, t);
		}
		json_object_object_add(doc, "tokens", arr);
		print_json(doc);
		json_object_put(doc);
	} else if (PQntuples(res) == 0) {
		printf("no API tokens%s%s\n", user ? " for " : "", user ? user : "");
	} else {
		printf("%-6s %-32s %-20s %-24s %-24s %s\n", "ID", "USER", "LABEL", "CREATED",
		       "EXPIRES", "REVOKED");
		for (int i = 0; i < PQntuples(res); i++) {
			char b1[RFC3339_BUFSIZE], b2[RFC3339_BUFSIZE], b3[RFC3339_BUFSIZE];
			char u[TOKEN_USER_MAX + 8], l[LABEL_MAX + 8];
			const char *expires = time_text(res, i, 4, b2);
			const char *revoked = time_text(res, i, 5, b3);
			printf("%-6s %-32s %-20s %-24s %-24s %s\n", PQgetvalue(res, i, 0),
			       clean(PQgetvalue(res, i, 1), u, sizeof(u)),
			       PQgetisnull(res, i, 2) ? "-"
			                              : clean(PQgetvalue(res, i, 2), l, sizeof(l)),
			       time_text(res, i, 3, b1), expires ? expires : "never",
			       revoked ? revoked : "-");
		}
	}
	PQclear(res);
	free(user);
	return 0;
}

static int
cmd_token_revoke(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *params[1];
	PGresult *res;
	char *end, u[TOKEN_USER_MAX + 8];
	long long id;
	bool already = false;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	want_operands(argc, 1, 1);
	errno = 0;
	id = strtoll(argv[optind], &end, 10);
	if (argv[optind][0] < '0' || argv[optind][0] > '9' || *end != '\0' || errno != 0 || id <= 0)
		usage_error(current, "\"%s\" is not a token id (see statusctl token list)",
		            argv[optind]);
	params[0] = argv[optind];
	res = db_exec(ctl, "token revoke",
	              "WITH r AS (UPDATE api_tokens SET revoked_at = now()"
	              " WHERE id = $1 AND revoked_at IS NULL RETURNING username)"
	              " SELECT username, false FROM r"
	              " UNION ALL SELECT username, true FROM api_tokens"
	              " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM r)",
	              1, params);
	if (PQntuples(res) == 0) {
		fprintf(stderr, "statusctl: no API token with id %lld\n", id);
		PQclear(res);
		return EXIT_NOTFOUND;
	}
	already = PQgetvalue(res, 0, 1)[0] == 't';
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "id", json_object_new_int64(id));
		json_object_object_add(doc, "user", json_object_new_string(PQgetvalue(res, 0, 0)));
		json_object_object_add(doc, "revoked", json_object_new_boolean(1));
		json_object_object_add(doc, "already_revoked", json_object_new_boolean(already));
		print_json(doc);
		json_object_put(doc);
	} else if (already)
		printf("API token %lld of %s was already revoked\n", id,
		       clean(PQgetvalue(res, 0, 0), u, sizeof(u)));
	else
		printf("revoked API token %lld of %s (a running statusd may accept it for up to "
		       "a minute more)\n",
		       id, clean(PQgetvalue(res, 0, 0), u, sizeof(u)));
	PQclear(res);
	return 0;
}

static int
cmd_token_sign(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"ttl", required_argument, NULL, 't'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	long long ttl_ms = 0, max = ctl->cfg.auth_token_max_lifetime;
	unsigned char *secret = NULL;
	size_t secret_len = 0;
	const char *error;
	char *user, *jwt, exp_text[RFC3339_BUFSIZE];
	int64_t now_s;
	int ch;

	optind = 0;
	while ((ch = next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 't')
			ttl_ms = arg_duration("--ttl", optarg);
	want_operands(argc, 1, 1);
	user = arg_user(argv[optind]);
	if (ttl_ms == 0)
		ttl_ms = SIGN_TTL_DEF < max ? SIGN_TTL_DEF : max;
	if (ttl_ms < 1000)
		usage_error(current, "--ttl: at least one second");
	if (ttl_ms > max)
		usage_error(current,
		            "--ttl: longer than auth_token_max_lifetime (%llds), which "
		            "statusd would refuse",
		            max / 1000);
	if (ctl->cfg.auth_secret_file[0] == '\0')
		msg_fatal("token sign: auth_secret_file is not set in %s",
		          ctl->config ? ctl->config : "the configuration");
	if (token_secret_load("auth_secret_file", ctl->cfg.auth_secret_file, &secret, &secret_len,
	                      &error) < 0)
		msg_fatal("token sign: %s", error);
	now_s = time_now_ms() / 1000;
	jwt = token_jwt_sign(user, now_s, now_s + ttl_ms / 1000, secret, secret_len);
	token_secret_free(&secret, secret_len);
	rfc3339_format((now_s + ttl_ms / 1000) * 1000, exp_text);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "token", json_object_new_string(jwt));
		json_object_object_add(doc, "expires", json_object_new_string(exp_text));
		print_json(doc);
		json_object_put(doc);
	} else
		printf("%s\n", jwt);
	free(jwt);
	free(user);
	return 0;
}

/* --- users and preferences ----------------------------------------------------------- */

static int
cmd_user_show(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *params[1];
	struct json_object *admins;
	char created[RFC3339_BUFSIZE], *user;
	PGresult *res;
	int rc = 0;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	want_operands(argc, 1, 1);
	params[0] = user = arg_user(argv[optind]);
	res = db_exec(ctl, "user show",
	              "SELECT u.read_receipts, u.presence, array_to_json(u.domain_admin),"
	              " (extract(epoch FROM u.created_at) * 1000)::bigint,"
	              " (SELECT count(*) FROM api_tokens t WHERE t.username = u.name"
	              "  AND t.revoked_at IS NULL"
	              "  AND (t.expires_at IS NULL OR t.expires_at > now()))"
	              " FROM users u WHERE u.name = $1",
	              1, params);
	if (PQntuples(res) == 0) {
		fprintf(stderr,
		        "statusctl: no user %s (token create, prefs and user admin create one)\n",
		        user);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	admins = json_tokener_parse(PQgetvalue(res, 0, 2));
	time_text(res, 0, 3, created);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "read_receipts",
		                       json_object_new_boolean(PQgetvalue(res, 0, 0)[0] == 't'));
		json_object_object_add(doc, "presence",
		                       json_object_new_boolean(PQgetvalue(res, 0, 1)[0] == 't'));
		json_object_object_add(doc, "domain_admin",
		                       admins ? json_object_get(admins) : json_object_new_array());
		json_object_object_add(
		        doc, "api_tokens",
		        json_object_new_int64(strtoll(PQgetvalue(res, 0, 4), NULL, 10)));
		json_object_object_add(doc, "created", json_object_new_string(created));
		print_json(doc);
		json_object_put(doc);
	} else {
		struct mbuf list = MBUF_INIT;
		char d[DOMAIN_MAX + 8];
		for (size_t i = 0; i < json_object_array_length(admins); i++) {
			const char *s =
			        json_object_get_string(json_object_array_get_idx(admins, i));
			mbuf_printf(&list, "%s%s", i ? ", " : "", clean(s ? s : "", d, sizeof(d)));
		}
		printf("user           %s\n", user);
		printf("read receipts  %s\n", PQgetvalue(res, 0, 0)[0] == 't' ? "yes" : "no");
		printf("presence       %s\n", PQgetvalue(res, 0, 1)[0] == 't' ? "yes" : "no");
		printf("admin of       %s\n", list.len ? mbuf_str(&list) : "-");
		printf("api tokens     %s valid\n", PQgetvalue(res, 0, 4));
		printf("created        %s\n", created);
		mbuf_free(&list);
	}
	json_object_put(admins);
out:
	PQclear(res);
	free(user);
	return rc;
}

static int
cmd_user_admin(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"clear", no_argument, NULL, 'x'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	struct mbuf array = MBUF_INIT;
	const char *params[2];
	struct json_object *doc;
	bool clear = false;
	char *user;
	size_t n = 0;
	int ch;

	optind = 0;
	while ((ch = next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 'x')
			clear = true;
	want_operands(argc, 1, -1);
	if (clear && argc - optind > 1)
		usage_error(current, "--clear takes no domains");
	if (!clear && argc - optind < 2)
		usage_error(current, "name the domains (or --clear)");
	user = arg_user(argv[optind]);
	doc = json_object_new_array();
	mbuf_putc(&array, '{');
	for (int i = optind + 1; i < argc; i++) {
		char *d = arg_domain(argv[i]);
		bool seen = false;
		for (size_t k = 0; k < json_object_array_length(doc); k++)
			seen |= strcmp(json_object_get_string(json_object_array_get_idx(doc, k)),
			               d) == 0;
		if (!seen) {
			mbuf_printf(&array, "%s%s", n++ ? "," : "", d); /* LDH: no quoting needed */
			json_object_array_add(doc, json_object_new_string(d));
		}
		free(d);
	}
	mbuf_putc(&array, '}');
	params[0] = user;
	params[1] = mbuf_str(&array);
	if (clear)
		PQclear(db_exec(ctl, "user admin",
		                "UPDATE users SET domain_admin = '{}' WHERE name = $1", 1, params));
	else
		PQclear(db_exec(
		        ctl, "user admin",
		        "INSERT INTO users (name, domain_admin) VALUES ($1, $2::text[])"
		        " ON CONFLICT (name) DO UPDATE SET domain_admin = EXCLUDED.domain_admin",
		        2, params));
	if (ctl->json) {
		struct json_object *out = json_object_new_object();
		json_object_object_add(out, "user", json_object_new_string(user));
		json_object_object_add(out, "domain_admin", json_object_get(doc));
		print_json(out);
		json_object_put(out);
	} else if (clear)
		printf("%s administers no domains\n", user);
	else
		printf("%s administers %s\n", user, mbuf_str(&array));
	json_object_put(doc);
	mbuf_free(&array);
	free(user);
	return 0;
}

static int
cmd_prefs(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"read-receipts", required_argument, NULL, 'r'},
	                                   {"presence", required_argument, NULL, 'p'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	int receipts = -1, presence = -1, ch;
	struct store_prefs prefs;
	const char *error;
	bool transient;
	char *user;

	optind = 0;
	while ((ch = next_opt(ctl, argc, argv, "", lo)) != -1) {
		if (ch == 'r')
			receipts = arg_bool("--read-receipts", optarg);
		else if (ch == 'p')
			presence = arg_bool("--presence", optarg);
	}
	want_operands(argc, 1, 1);
	user = arg_user(argv[optind]);
	if ((receipts >= 0 || presence >= 0) &&
	    store_prefs_set(db(ctl), user, receipts, presence, &transient, &error) < 0)
		msg_fatal("prefs: %s", error);
	if (store_prefs_get(db(ctl), user, &prefs, &transient, &error) < 0)
		msg_fatal("prefs: %s", error);
	if (ctl->json) {
		struct json_object *doc = render_prefs(user, &prefs);
		print_json(doc);
		json_object_put(doc);
	} else {
		printf("user           %s\n", user);
		printf("read receipts  %s\n", prefs.read_receipts ? "yes" : "no");
		printf("presence       %s\n", prefs.presence ? "yes" : "no");
	}
	free(user);
	return 0;
}

/* --- federation keys ----------------------------------------------------------------- */

#define KEY_TTL_DEF 3600 /* seconds, for key records */

/* A selector from the command line, lower-cased into buf; usage error if not one label. */
static const char *
arg_selector(const char *domain, const char *s, char *buf)
{
	char owner[FEDREC_NAME_MAX];
	const char *error;
	size_t len = strlen(s);

	if (len > FEDREC_SELECTOR_MAX)
		usage_error(current, "selector longer than %d bytes", FEDREC_SELECTOR_MAX);
	for (size_t i = 0; i <= len; i++)
		buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	if (fedrec_msk_name(buf, domain, owner, &error) < 0)
		usage_error(current,
		            "\"%s\" %s: a selector is one DNS label (letters, digits and "
		            "hyphens, not at either end), a domain LDH labels without a final dot",
		            strcmp(error, "not a valid selector") == 0 ? s : domain, error);
	return buf;
}

/* A domain as the federation writes it (see arg_domain), lower-cased; usage error if not. */
static char *
arg_fed_domain(const char *s)
{
	char *d = arg_domain(s);

	if (!fedrec_domain_valid(d, strlen(d)))
		usage_error(current,
		            "\"%s\" is not a domain name: LDH labels of 1 to 63 bytes, not "
		            "starting or ending with a hyphen",
		            s);
	return d;
}

/* DOMAIN SELECTOR operands, checked. */
static char *
key_operands(int argc, char **argv, char *selector)
{
	char *domain;

	want_operands(argc, 2, 2);
	domain = arg_fed_domain(argv[optind]);
	arg_selector(domain, argv[optind + 1], selector);
	return domain;
}

static void
key_file(struct ctl *ctl, const char *domain, const char *selector, char *buf, size_t size)
{
	const char *error;

	if (fedkeys_path(ctl->cfg.federation_key_dir, domain, selector, buf, size, &error) < 0)
		msg_fatal("%s", error);
}

/* The key's MSK1 record as a zone-file line into out, its text into txt. */
static void
key_record(const struct fedkeys_key *k, long ttl, struct mbuf *out, char *txt)
{
	struct fedrec_msk rec = {.revoked = k->state == FEDKEYS_RETIRED};
	char owner[FEDREC_NAME_MAX];
	const char *error;

	memcpy(rec.key, k->pub, sizeof(rec.key));
	if (fedrec_msk_name(k->selector, k->domain, owner, &error) < 0)
		msg_panic("key record: %s", error); /* the index was checked */
	fedrec_format_msk(&rec, txt);
	fedkeys_zone_txt(owner, ttl, txt, out);
}

static void
key_json(struct ctl *ctl, const struct fedkeys_key *k, struct json_object *obj)
{
	char b64[48], when[RFC3339_BUFSIZE], path[PATH_MAX];

	EVP_EncodeBlock((unsigned char *)b64, k->pub, FEDREC_KEY_LEN);
	json_object_object_add(obj, "domain", json_object_new_string(k->domain));
	json_object_object_add(obj, "selector", json_object_new_string(k->selector));
	json_object_object_add(obj, "state", json_object_new_string(fedkeys_state_name(k->state)));
	json_object_object_add(obj, "created",
	                       json_object_new_string(rfc3339_format(k->created_ms, when)));
	json_object_object_add(obj, "changed",
	                       json_object_new_string(rfc3339_format(k->changed_ms, when)));
	json_object_object_add(obj, "public_key", json_object_new_string(b64));
	key_file(ctl, k->domain, k->selector, path, sizeof(path));
	json_object_object_add(obj, "file",
	                       k->state == FEDKEYS_RETIRED ? NULL : json_object_new_string(path));
}

static int
cmd_key_make(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], path[PATH_MAX], txt[FEDREC_TXT_MAX + 1], *domain;
	struct mbuf rec = MBUF_INIT;
	struct fedkeys_key key;
	const char *error;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	if (fedkeys_make(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &key,
	                 &error) < 0)
		msg_fatal("key make: %s", error);
	key_file(ctl, domain, selector, path, sizeof(path));
	key_record(&key, KEY_TTL_DEF, &rec, txt);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		key_json(ctl, &key, doc);
		print_json(doc);
		json_object_put(doc);
	} else {
		printf("made key %s of %s (%s); private key in %s\n", selector, domain,
		       fedkeys_state_name(key.state), path);
		printf("publish this record in DNS before reports are signed with it:\n%s",
		       mbuf_str(&rec));
		if (key.state == FEDKEYS_PUBLISHED)
			printf("then, once its TTL has passed: statusctl key rotate %s %s\n",
			       domain, selector);
	}
	mbuf_free(&rec);
	free(domain);
	return 0;
}

static int
cmd_key_rotate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], prev[FEDREC_SELECTOR_MAX + 1], *domain;
	const char *error;
	bool made;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	if (fedkeys_rotate(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &made,
	                   prev, &error) < 0)
		msg_fatal("key rotate: %s", error);
	if (made)
		fprintf(stderr,
		        "statusctl: made key %s just now: reports signed with it are refused "
		        "until its record is in DNS (statusctl key records %s); making it ahead "
		        "with key make avoids that\n",
		        selector, domain);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "domain", json_object_new_string(domain));
		json_object_object_add(doc, "signing", json_object_new_string(selector));
		json_object_object_add(doc, "previous",
		                       prev[0] ? json_object_new_string(prev) : NULL);
		json_object_object_add(doc, "made", json_object_new_boolean(made));
		print_json(doc);
		json_object_put(doc);
	} else if (prev[0] != '\0')
		printf("%s signs with %s now; %s stays valid (published) until "
		       "statusctl key retire %s %s\n",
		       domain, selector, prev, domain, prev);
	else
		printf("%s signs with %s now\n", domain, selector);
	free(domain);
	return 0;
}

static int
cmd_key_retire(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], *domain;
	const char *error;
	bool already;
	int rc;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	rc = fedkeys_retire(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &already,
	                    &error);
	if (rc == FEDKEYS_NOKEY) {
		fprintf(stderr, "statusctl: %s\n", error);
		free(domain);
		return EXIT_NOTFOUND;
	}
	if (rc < 0)
		msg_fatal("key retire: %s", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "domain", json_object_new_string(domain));
		json_object_object_add(doc, "selector", json_object_new_string(selector));
		json_object_object_add(doc, "state", json_object_new_string("retired"));
		json_object_object_add(doc, "already_retired", json_object_new_boolean(already));
		print_json(doc);
		json_object_put(doc);
	} else
		printf("%s of %s %s retired; its private key is deleted; publish its record with "
		       "an empty p= (statusctl key records %s)\n",
		       selector, domain, already ? "was already" : "is", domain);
	free(domain);
	return 0;
}

static int
cmd_key_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct fedkeys_key *keys;
	const char *error;
	char *domain = NULL;
	size_t n;

	optind = 0;
	next_opt(ctl, argc, argv, "", lo);
	want_operands(argc, 0, 1);
	if (optind < argc)
		domain = arg_fed_domain(argv[optind]);
	if (fedkeys_list(ctl->cfg.federation_key_dir, domain, &keys, &n, &error) < 0)
		msg_fatal("key list: %s", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *k = json_object_new_object();
			key_json(ctl, &keys[i], k);
			json_object_array_add(arr, k);
		}
		json_object_object_add(doc, "keys", arr);
		print_json(doc);
		json_object_put(doc);
	} else if (n == 0) {
		printf("no federation keys%s%s in %s\n", domain ? " of " : "", domain ? domain : "",
		       ctl->cfg.federation_key_dir);
	} else {
		printf("%-24s %-16s %-9s %-24s %-24s %s\n", "DOMAIN", "SELECTOR", "STATE",
		       "CREATED", "CHANGED", "PUBLIC KEY");
		for (size_t i = 0; i < n; i++) {
			char b64[48], c1[RFC3339_BUFSIZE], c2[RFC3339_BUFSIZE];
			EVP_EncodeBlock((unsigned char *)b64, keys[i].pub, FEDREC_KEY_LEN);
			printf("%-24s %-16s %-9s %-24s %-24s %s\n", keys[i].domain,
			       keys[i].selector, fedkeys_state_name(keys[i].state),
			       rfc3339_format(keys[i].created_ms, c1),
			       rfc3339_format(keys[i].changed_ms, c2), b64);
		}
	}
	fedkeys_list_free(&keys);
	free(domain);
	return 0;
}

static void
record_json(struct json_object *arr, const char *owner, long long ttl, const char *txt,
            const struct fedkeys_key *k)
{
	struct json_object *rec = json_object_new_object();

	json_object_object_add(rec, "name", json_object_new_string(owner));
	json_object_object_add(rec, "ttl", json_object_new_int64(ttl));
	json_object_object_add(rec, "type", json_object_new_string("TXT"));
	json_object_object_add(rec, "text", json_object_new_string(txt));
	if (k != NULL) {
		json_object_object_add(rec, "selector", json_object_new_string(k->selector));
		json_object_object_add(rec, "state",
		                       json_object_new_string(fedkeys_state_name(k->state)));
	}
	json_object_array_add(arr, rec);
}

static int
cmd_key_records(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"ttl", required_argument, NULL, 't'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	const char *endpoint = ctl->cfg.federation_endpoint, *error;
	struct json_object *arr = json_object_new_array();
	struct mbuf out = MBUF_INIT;
	struct fedkeys_key *keys;
	long long ttl = KEY_TTL_DEF;
	char *domain = NULL;
	size_t n;
	int ch;

	optind = 0;
	while ((ch = next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 't')
			ttl = arg_duration("--ttl", optarg) / 1000;
	if (ttl < 1 || ttl > 2147483647)
		usage_error(current, "--ttl: from one second to 68 years");
	want_operands(argc, 0, 1);
	if (optind < argc)
		domain = arg_fed_domain(argv[optind]);
	if (fedkeys_list(ctl->cfg.federation_key_dir, domain, &keys, &n, &error) < 0)
		msg_fatal("key records: %s", error);
	if (endpoint[0] != '\0' &&
	    fedrec_format_msr(endpoint, (char[FEDREC_TXT_MAX + 1]){0}, &error) < 0)
		msg_fatal("%s: federation_endpoint: %s", ctl->config ? ctl->config : "(defaults)",
		          error);
	if (endpoint[0] == '\0')
		mbuf_printf(&out, "; federation_endpoint is not set: no _msgstatus record\n");
	for (size_t i = 0; i <= n; i++) {
		const char *d = i < n ? keys[i].domain : domain;
		char owner[FEDREC_NAME_MAX], txt[FEDREC_TXT_MAX + 1], when[RFC3339_BUFSIZE];
		bool first = i == 0 ? d != NULL : i < n && strcmp(d, keys[i - 1].domain) != 0;

		/* a domain's endpoint record first (for DOMAIN even when it has no keys) */
		if (first && endpoint[0] != '\0') {
			if (fedrec_msr_name(d, owner, &error) < 0 ||
			    fedrec_format_msr(endpoint, txt, &error) < 0)
				msg_panic("key records: %s", error);
			mbuf_printf(&out, "; %s: where it takes reports (federation_endpoint)\n",
			            d);
			fedkeys_zone_txt(owner, (long)ttl, txt, &out);
			record_json(arr, owner, ttl, txt, NULL);
		}
		if (i == n)
			break;
		fedrec_msk_name(keys[i].selector, keys[i].domain, owner, &error);
		mbuf_printf(&out, "; %s key %s: %s since %s%s\n", keys[i].domain, keys[i].selector,
		            fedkeys_state_name(keys[i].state),
		            rfc3339_format(keys[i].changed_ms, when),
		            keys[i].state == FEDKEYS_RETIRED ? " (revoked: empty p=)" : "");
		key_record(&keys[i], (long)ttl, &out, txt);
		record_json(arr, owner, ttl, txt, &keys[i]);
	}
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "records", arr);
		print_json(doc);
		json_object_put(doc);
	} else {
		fputs(mbuf_str(&out), stdout);
		json_object_put(arr);
	}
	mbuf_free(&out);
	fedkeys_list_free(&keys);
	free(domain);
	return 0;
}

static const struct command commands[] = {
        {"migrate", NULL, "migrate", cmd_migrate},
        {"maintain", NULL, "maintain", cmd_maintain},
        {"status", NULL, "status ID", cmd_status},
        {"tail", NULL, "tail [-f] [-n N] [--from OFFSET]", cmd_tail},
        {"replay", NULL, "replay FILE...", cmd_replay},
        {"token", "create", "token create USER [--label TEXT] [--expires DURATION]",
         cmd_token_create},
        {"token", "list", "token list [USER]", cmd_token_list},
        {"token", "revoke", "token revoke ID", cmd_token_revoke},
        {"token", "sign", "token sign USER [--ttl DURATION]", cmd_token_sign},
        {"user", "show", "user show USER", cmd_user_show},
        {"user", "admin", "user admin USER DOMAIN... | user admin USER --clear", cmd_user_admin},
        {"prefs", NULL, "prefs USER [--read-receipts yes|no] [--presence yes|no]", cmd_prefs},
        {"key", "make", "key make DOMAIN SELECTOR", cmd_key_make},
        {"key", "rotate", "key rotate DOMAIN SELECTOR", cmd_key_rotate},
        {"key", "retire", "key retire DOMAIN SELECTOR", cmd_key_retire},
        {"key", "list", "key list [DOMAIN]", cmd_key_list},
        {"key", "records", "key records [DOMAIN] [--ttl DURATION]", cmd_key_records},
        {NULL, NULL, NULL, NULL},
};

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: statusctl [-c config_file] [--json] command [args]\n"
	                "  -c FILE  read FILE instead of " MSGSTATUS_SYSCONFDIR "/statusd.conf\n"
	                "           (the built-in defaults when that does not exist)\n"
	                "commands:\n");
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(stderr, "  %s\n", c->synopsis);
	exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *config = MSGSTATUS_SYSCONFDIR "/statusd.conf", *error;
	const struct command *c;
	struct ctl ctl;
	bool config_given = false;
	int ch, rc, words;

	memset(&ctl, 0, sizeof(ctl));
	msg_open("statusctl", MSG_TARGET_STDERR, 0);
	/* global options end at the command ("+"): the command has its own */
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'j':
			ctl.json = true;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	for (c = commands; c->name != NULL; c++)
		if (strcmp(c->name, argv[optind]) == 0 &&
		    (c->sub == NULL ||
		     (optind + 1 < argc && strcmp(c->sub, argv[optind + 1]) == 0)))
			break;
	if (c->name == NULL)
		usage();
	current = c;
	words = c->sub ? 2 : 1;
	ctl.config = config_given ? config : sdconfig_default_path(config);
	if (sdconfig_load(&ctl.cfg, ctl.config, &error) < 0)
		msg_fatal("%s", error);
	/* the command sees its last word as argv[0] */
	rc = c->run(&ctl, argc - optind - words + 1, argv + optind + words - 1);
	if (ctl.conn != NULL)
		PQfinish(ctl.conn);
	sdconfig_free(&ctl.cfg);
	return rc;
}
