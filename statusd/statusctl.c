/*
 * statusctl - command-line control of msgstatus: schema migrations and message status.
 * See statusctl(8).
 *
 * DESIGN
 *	A short-lived tool that talks to PostgreSQL directly with the settings of
 *	statusd.conf (database, sql_dir, event_retention), through the same store functions
 *	statusd uses. Human-readable output by default, --json for scripts.
 *
 * DIAGNOSTICS
 *	Exit 0 on success, 1 on failure (with a message on stderr), 2 on bad usage; "status"
 *	exits 3 when there is no such message.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "sdconfig.h"
#include "store.h"

static void
usage(void)
{
	fprintf(stderr,
		"usage: statusctl [-c config_file] [--json] command [args]\n"
		"commands:\n"
		"  migrate        apply the database migrations in sql_dir\n"
		"  maintain       create and drop event partitions for event_retention\n"
		"  status ID      show the status of a message (tracking id or Message-ID)\n");
	exit(2);
}

static PGconn *
connect_db(const struct sd_config *cfg)
{
	PGconn *conn = PQconnectdb(cfg->database);

	if (PQstatus(conn) != CONNECTION_OK)
		msg_fatal("cannot connect to the database (%s): %s", cfg->database,
			  store_error(conn, NULL));
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	return conn;
}

static void
print_status(struct json_object *doc)
{
	struct json_object *rcpts = json_object_object_get(doc, "recipients");

	printf("message    %s\n", json_object_get_string(json_object_object_get(doc, "message_id")));
	printf("tracking   %s\n", json_object_get_string(json_object_object_get(doc, "tracking_id")));
	printf("sender     %s\n", json_object_get_string(json_object_object_get(doc, "sender")));
	printf("queued at  %s\n", json_object_get_string(json_object_object_get(doc, "queued_at")));
	for (size_t i = 0; i < json_object_array_length(rcpts); i++) {
		struct json_object *r = json_object_array_get_idx(rcpts, i);
		const char *reply = json_object_get_string(json_object_object_get(r, "smtp_reply"));
		printf("  %-32s %-9s %s%s%s\n",
		       json_object_get_string(json_object_object_get(r, "recipient")),
		       json_object_get_string(json_object_object_get(r, "status")),
		       json_object_get_string(json_object_object_get(r, "timestamp")),
		       reply ? "  " : "", reply ? reply : "");
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = MSGSTATUS_SYSCONFDIR "/statusd.conf", *error, *cmd;
	struct sd_config cfg;
	bool json = false, transient, config_given = false;
	PGconn *conn;
	int ch, rc = 0;

	memset(&cfg, 0, sizeof(cfg));
	msg_open("statusctl", MSG_TARGET_STDERR, 0);
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	cmd = argv[optind++];
	if (!((strcmp(cmd, "migrate") == 0 && optind == argc) ||
	      (strcmp(cmd, "maintain") == 0 && optind == argc) ||
	      (strcmp(cmd, "status") == 0 && optind + 1 == argc)))
		usage();
	if (sdconfig_load(&cfg, config_given ? config : sdconfig_default_path(config), &error) < 0)
		msg_fatal("%s", error);

	if (strcmp(cmd, "migrate") == 0 && optind == argc) {
		conn = connect_db(&cfg);
		int version = store_migrate(conn, cfg.sql_dir, &transient, &error);
		if (version < 0)
			msg_fatal("migrate: %s", error);
		if (json)
			printf("{\"schema_version\":%d}\n", version);
		else
			printf("database schema is at version %d\n", version);
	} else if (strcmp(cmd, "maintain") == 0 && optind == argc) {
		conn = connect_db(&cfg);
		if (store_maintain(conn, cfg.event_retention, &error) < 0)
			msg_fatal("maintain: %s", error);
	} else if (strcmp(cmd, "status") == 0 && optind + 1 == argc) {
		struct json_object *doc = NULL;
		conn = connect_db(&cfg);
		int found = store_status(conn, argv[optind], &doc, &transient, &error);
		if (found < 0)
			msg_fatal("status: %s", error);
		if (found == 0) {
			fprintf(stderr, "statusctl: no message with id %s\n", argv[optind]);
			rc = 3;
		} else if (json) {
			puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
									 JSON_C_TO_STRING_NOSLASHESCAPE));
		} else
			print_status(doc);
		json_object_put(doc);
	} else
		msg_panic("unhandled command %s", cmd);
	PQfinish(conn);
	sdconfig_free(&cfg);
	return rc;
}
