/*
 * statusctl - command-line control of msgstatus: schema migrations, message status, API
 * tokens, users and their preferences, and the federation's signing keys. See statusctl(8).
 *
 * DESIGN
 *	A short-lived tool that talks to PostgreSQL directly with the settings of
 *	statusd.conf (database, sql_dir, event_retention, auth_secret_file,
 *	auth_token_max_lifetime), through the storage layer statusd uses (store.h); --json
 *	prints the API's documents through the same renderer (render.h). The key commands
 *	need no database: they parse their arguments and call federation/fedkeys, which
 *	keeps the keys in files in federation_key_dir. Human-readable output by default,
 *	--json for scripts. Global options come before the command, the command's own
 *	options anywhere after it. This file has main(), the command table and what the
 *	commands share (ctl.h); the commands are in ctl_log.c (schema, status, the log),
 *	ctl_user.c (tokens, users, preferences) and ctl_key.c (federation keys).
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
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "store.h"
#include "token.h"
#include "utf8.h"

#define DURATION_MAX (36500LL * 86400000LL) /* a century */

const struct command *ctl_current;

void
ctl_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("statusctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: statusctl [-c config_file] [--json] %s\n", ctl_current->synopsis);
	exit(EXIT_USAGE);
}

/* --- the database -------------------------------------------------------------------- */

PGconn *
ctl_db(struct ctl *ctl)
{
	if (ctl->conn != NULL)
		return ctl->conn;
	ctl->conn = PQconnectdb(ctl->cfg.database);
	if (PQstatus(ctl->conn) != CONNECTION_OK)
		msg_fatal("cannot connect to the database (%s): %s", ctl->cfg.database,
		          store_error(ctl->conn, NULL));
	store_session_quiet(ctl->conn);
	return ctl->conn;
}

/* A time in ms since the epoch as RFC 3339 into buf; NULL for 0 (none). */
const char *
ctl_time_text(int64_t ms, char *buf)
{
	return ms != 0 ? rfc3339_format(ms, buf) : NULL;
}

void
ctl_json_add_time(struct json_object *obj, const char *key, int64_t ms)
{
	char buf[RFC3339_BUFSIZE];
	const char *t = ctl_time_text(ms, buf);

	json_object_object_add(obj, key, t ? json_object_new_string(t) : NULL);
}

void
ctl_print_json(struct json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Text from the database, made safe for a terminal. */
const char *
ctl_clean(const char *s, char *buf, size_t size)
{
	return msg_clean(buf, size, s, strlen(s));
}

/* --- arguments ----------------------------------------------------------------------- */

/* A user name from the command line, lower-cased (caller frees); usage error if bad. */
char *
ctl_arg_user(const char *s)
{
	const char *error;
	char *user = token_user(s, strlen(s), &error);

	if (user == NULL)
		ctl_usage("bad user name: %s", error);
	return user;
}

/* A duration (30d, 12h, 90m, 45s; a bare number is seconds) in ms, > 0. */
long long
ctl_arg_duration(const char *opt, const char *s)
{
	long long ms;

	if (conf_parse_time(s, &ms) < 0 || ms <= 0 || ms > DURATION_MAX)
		ctl_usage("%s: expected a duration such as 30d, 12h, 90m or 45s, not \"%s\"", opt,
		          s);
	return ms;
}

bool
ctl_arg_bool(const char *opt, const char *s)
{
	bool b;

	if (conf_parse_bool(s, &b) < 0)
		ctl_usage("%s: expected yes or no, not \"%s\"", opt, s);
	return b;
}

/* Printable text: UTF-8 without control characters, at most max bytes. */
const char *
ctl_arg_text(const char *opt, const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len > max)
		ctl_usage("%s: longer than %zu bytes", opt, max);
	if (!utf8_valid(s, len))
		ctl_usage("%s: not valid UTF-8", opt);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			ctl_usage("%s: contains a control character", opt);
	return s;
}

/* A domain name (letters, digits, hyphens, dots), lower-cased into a new string. */
char *
ctl_arg_domain(const char *s)
{
	size_t len = strlen(s);
	char *d;

	if (len > 0 && strchr(s, '@') != NULL)
		ctl_usage("\"%s\" is an address; give its domain (the part after @)", s);
	if (len == 0 || len > DOMAIN_MAX || s[0] == '.' || s[len - 1] == '.' ||
	    strstr(s, "..") != NULL ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyz"
	              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != len)
		ctl_usage("\"%s\" is not a domain name", s);
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
int
ctl_next_opt(struct ctl *ctl, int argc, char **argv, const char *shortopts,
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
			ctl_usage("unknown option -%c", optopt);
		if (ch == '?')
			ctl_usage("unknown option %s", argv[optind - 1]);
		if (ch == ':')
			ctl_usage("option %s needs a value", argv[optind - 1]);
		return ch;
	}
}

void
ctl_operands(int argc, int min, int max)
{
	int n = argc - optind;

	if (n < min)
		ctl_usage("missing argument");
	if (max >= 0 && n > max)
		ctl_usage("too many arguments");
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
        {"prefs", NULL,
         "prefs USER [--read-receipts yes|no] [--presence yes|no] [--mdn never|always|default]",
         cmd_prefs},
        {"key", "make", "key make DOMAIN SELECTOR", cmd_key_make},
        {"key", "rotate", "key rotate DOMAIN SELECTOR", cmd_key_rotate},
        {"key", "retire", "key retire DOMAIN SELECTOR", cmd_key_retire},
        {"key", "list", "key list [DOMAIN]", cmd_key_list},
        {"key", "records", "key records [DOMAIN] [--ttl DURATION]", cmd_key_records},
        {"federation", "outbox", "federation outbox", cmd_fed_outbox},
        {"federation", "peers", "federation peers", cmd_fed_peers},
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
	ctl_current = c;
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
