/*
 * ctl - what statusctl's command files (ctl_log.c, ctl_user.c, ctl_key.c) share with
 * statusctl.c: the tool's state, a command's entry in the table, the checks of
 * command-line arguments and the helpers of output. See statusctl.c and statusctl(8).
 *
 * DESIGN
 *	A command is a function run(ctl, argc, argv) with argv[0] its last command word; it
 *	parses its options with ctl_next_opt, returns the exit status, and ends the program
 *	itself on bad usage (ctl_usage, exit 2) or failure (msg_fatal, exit 1). The database
 *	connection is made on first use (ctl_db).
 *
 * SECURITY
 *	The ctl_arg_* checks are the only way command-line text reaches the storage layer or
 *	a file name; ctl_clean makes database text safe for a terminal.
 *
 * DIAGNOSTICS
 *	Usage errors name the problem and print the command's synopsis (ctl_current).
 */
#ifndef CTL_H
#define CTL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sdconfig.h"

#define EXIT_USAGE    2
#define EXIT_NOTFOUND 3
#define LABEL_MAX     200
#define DOMAIN_MAX    253

struct json_object;
struct option;

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

/* The command being run. */
extern const struct command *ctl_current;

/* Bad arguments to the command: say what is wrong and how the command is used; exit 2. */
_Noreturn void ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The database connection (connected on first use; fatal if it cannot be). */
PGconn *ctl_db(struct ctl *ctl);

/* A time in ms since the epoch as RFC 3339 into buf (RFC3339_BUFSIZE); NULL for 0. */
const char *ctl_time_text(int64_t ms, char *buf);
/* Add key: the time as RFC 3339, or null for 0. */
void ctl_json_add_time(struct json_object *obj, const char *key, int64_t ms);
/* Print a document, pretty, with a newline. */
void ctl_print_json(struct json_object *doc);
/* Text from the database, made safe for a terminal, in buf. */
const char *ctl_clean(const char *s, char *buf, size_t size);

/* A user name, lower-cased (caller frees). */
char *ctl_arg_user(const char *s);
/* A duration (30d, 12h, 90m, 45s; a bare number is seconds) in ms, > 0. */
long long ctl_arg_duration(const char *opt, const char *s);
/* yes or no. */
bool ctl_arg_bool(const char *opt, const char *s);
/* Printable text: UTF-8 without control characters, at most max bytes. */
const char *ctl_arg_text(const char *opt, const char *s, size_t max);
/* A domain name, lower-cased into a new string (caller frees). */
char *ctl_arg_domain(const char *s);
/*
 * getopt_long over a command's arguments (argv[0] is the command word), allowing options
 * after operands; "--json" is accepted here too. Returns the option, -1 at the end.
 */
int ctl_next_opt(struct ctl *ctl, int argc, char **argv, const char *shortopts,
                 const struct option *longopts);
/* Between min and max operands (max -1: no limit) after the options. */
void ctl_operands(int argc, int min, int max);

/* ctl_log.c: the schema, a message's status, the log */
int cmd_migrate(struct ctl *ctl, int argc, char **argv);
int cmd_maintain(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_tail(struct ctl *ctl, int argc, char **argv);
int cmd_replay(struct ctl *ctl, int argc, char **argv);
/* ctl_user.c: API tokens, users, preferences */
int cmd_token_create(struct ctl *ctl, int argc, char **argv);
int cmd_token_list(struct ctl *ctl, int argc, char **argv);
int cmd_token_revoke(struct ctl *ctl, int argc, char **argv);
int cmd_token_sign(struct ctl *ctl, int argc, char **argv);
int cmd_user_show(struct ctl *ctl, int argc, char **argv);
int cmd_user_admin(struct ctl *ctl, int argc, char **argv);
int cmd_prefs(struct ctl *ctl, int argc, char **argv);
/* ctl_key.c: the federation's signing keys */
int cmd_key_make(struct ctl *ctl, int argc, char **argv);
int cmd_key_rotate(struct ctl *ctl, int argc, char **argv);
int cmd_key_retire(struct ctl *ctl, int argc, char **argv);
int cmd_key_list(struct ctl *ctl, int argc, char **argv);
int cmd_key_records(struct ctl *ctl, int argc, char **argv);
/* ctl_fed.c: the federation sender's outbox and peers */
int cmd_fed_outbox(struct ctl *ctl, int argc, char **argv);
int cmd_fed_peers(struct ctl *ctl, int argc, char **argv);

#endif
