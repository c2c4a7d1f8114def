/*
 * statusd - the msgstatus daemon: stores delivery and read events in PostgreSQL and
 * serves message status. See statusd(8).
 *
 * DESIGN
 *	One libuv loop runs the event socket (ingest.c), the pickup directory (pickup.c),
 *	HTTP and the live feeds (http.c, api.c, stream.c, feed.c: libwebsockets on the same
 *	loop) and signal handling. PostgreSQL is reached only from three dbworker threads:
 *	"ingest" (stores batches in order, applies migrations and partition maintenance when
 *	it connects), "query" (reads for HTTP) and "feed" (every other page of a feed's
 *	catch-up, read while "query" reads the one before). statusd starts and serves even while
 *	PostgreSQL is down: events then wait unacknowledged and producers keep them.
 *
 *	SIGTERM/SIGINT: stop accepting, store and acknowledge what was read (at most
 *	shutdown_grace), close everything, exit 0.
 *
 * DIAGNOSTICS
 *	Configuration errors are fatal at start with the file and line. Runtime trouble is
 *	logged and survived.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "conf.h"
#include "dbworker.h"
#include "fedin.h"
#include "fedout.h"
#include "feed.h"
#include "feedloop.h"
#include "http.h"
#include "ingest.h"
#include "pickup.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "sdconfig.h"
#include "store.h"
#include "webhook.h"
#include "mdnsend.h"

#define SHUTDOWN_GRACE_MS 10000

struct statusd {
	uv_loop_t *loop;
	struct sd_config cfg;
	struct dbworker *ingest_db, *query_db, *feed_db;
	struct ingest *ingest;
	struct pickup *pickup;
	struct auth *auth;
	struct feed *feed;
	struct fedin *fedin;
	struct http *http;
	struct feedloops *feedloops; /* feed_threads > 1 */
	struct webhooks *webhooks;
	struct mdnsend *mdnsend;
	struct fedout *fedout;
	uv_signal_t sigterm, sigint;
	uv_timer_t maintain, grace;
	bool stopping;
	int exit_code;
};

/* Runs on the ingest worker after each (re)connect: migrate, set up the session, maintain. */
static int
ingest_on_connect(PGconn *conn, void *ctx, const char **error_r)
{
	struct statusd *sd = ctx;
	bool transient;
	int version;

	if (sd->cfg.database_migrate) {
		if (store_migrate(conn, sd->cfg.sql_dir, &transient, error_r) < 0) {
			if (!transient)
				msg_fatal("database migration: %s", *error_r);
			return -1;
		}
	} else {
		if ((version = store_schema_version(conn, error_r)) < 0)
			return -1;
		if (version != STORE_SCHEMA_VERSION) {
			*error_r =
			        errfmt("database schema version is %d, this statusd needs %d: run "
			               "\"statusctl migrate\" (database_migrate = no)",
			               version, STORE_SCHEMA_VERSION);
			return -1;
		}
	}
	/* The schema is in place: the query worker may read it now (see main()). */
	dbworker_release(sd->query_db);
	dbworker_release(sd->feed_db);
	fedin_release(sd->fedin);
	if (store_maintain(conn, sd->cfg.event_retention, error_r) < 0)
		return -1;
	return store_session_setup(conn, error_r);
}

/* Partition maintenance as a job on the ingest worker, so it never races a batch. */
struct maintain_job {
	struct dbjob job;
	struct statusd *sd;
};

static enum dbw_result
maintain_run(struct dbjob *job, PGconn *conn)
{
	struct maintain_job *m = (struct maintain_job *)job;
	const char *error;

	if (store_maintain(conn, m->sd->cfg.event_retention, &error) < 0) {
		msg_warn("partition maintenance failed: %s", error);
		return PQstatus(conn) == CONNECTION_OK ? DBW_DONE : DBW_RETRY;
	}
	return DBW_DONE;
}

static void
maintain_done(struct dbjob *job)
{
	free(job);
}

static void
on_maintain(uv_timer_t *timer)
{
	struct statusd *sd = timer->data;
	struct maintain_job *m = mycalloc(1, sizeof(*m));

	m->sd = sd;
	m->job.run = maintain_run;
	m->job.done = maintain_done;
	m->job.no_retry = true;
	dbworker_submit(sd->ingest_db, &m->job);
}

static void
on_logged(void *ctx, const struct store_logged *logged, size_t n)
{
	feed_publish(ctx, logged, n);
}

static void
finish_shutdown(struct statusd *sd)
{
	uv_timer_stop(&sd->grace);
	uv_close((uv_handle_t *)&sd->grace, NULL);
	uv_close((uv_handle_t *)&sd->maintain, NULL);
	uv_close((uv_handle_t *)&sd->sigterm, NULL);
	uv_close((uv_handle_t *)&sd->sigint, NULL);
	feedloops_stop(&sd->feedloops, sd->feed, sd->http);
	feed_free(&sd->feed); /* closes the streams while lws is still there */
	http_stop(sd->http);
	webhooks_stop(&sd->webhooks);
	mdnsend_stop(&sd->mdnsend);
	fedout_stop(&sd->fedout);
	dbworker_stop(&sd->ingest_db);
	dbworker_stop(&sd->query_db);
	dbworker_stop(&sd->feed_db);
	fedin_free(&sd->fedin);
	pickup_free(&sd->pickup);
	ingest_free(&sd->ingest);
	auth_free(&sd->auth);
}

static void
on_ingest_drained(void *ctx)
{
	struct statusd *sd = ctx;

	msg_info("stopped: all events read were stored and acknowledged");
	finish_shutdown(sd);
}

static void
on_grace(uv_timer_t *timer)
{
	struct statusd *sd = timer->data;

	msg_warn("stopping without storing the last events read (the database does not answer); "
	         "their producers will send them again");
	finish_shutdown(sd);
}

static void
on_signal(uv_signal_t *handle, int signum)
{
	struct statusd *sd = handle->data;

	if (sd->stopping)
		return;
	sd->stopping = true;
	msg_info("stopping on signal %d", signum);
	uv_timer_stop(&sd->maintain);
	pickup_stop(sd->pickup);
	uv_timer_start(&sd->grace, on_grace, SHUTDOWN_GRACE_MS, 0);
	ingest_shutdown(sd->ingest, on_ingest_drained, sd);
}

static void
usage(void)
{
	fprintf(stderr, "usage: statusd [-c config_file] [-n] [-v]\n"
	                "  -c FILE  read FILE instead of " MSGSTATUS_SYSCONFDIR "/statusd.conf\n"
	                "  -n       check the configuration, print it and exit\n"
	                "  -v       verbose logging\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *config = MSGSTATUS_SYSCONFDIR "/statusd.conf", *error;
	struct statusd sd;
	bool check_only = false, verbose = false, config_given = false;
	int ch;

	memset(&sd, 0, sizeof(sd));
	msg_open("statusd", MSG_TARGET_STDERR, 0);
	while ((ch = getopt(argc, argv, "c:nvh")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'n':
			check_only = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (sdconfig_load(&sd.cfg, config_given ? config : sdconfig_default_path(config), &error) <
	    0)
		msg_fatal("%s", error);
	if (check_only) {
		struct mbuf out = MBUF_INIT;
		conf_dump(sdconfig_table, &sd.cfg, &out);
		fputs(mbuf_str(&out), stdout);
		mbuf_free(&out);
		sdconfig_free(&sd.cfg);
		return 0;
	}
	msg_open_settings("statusd", sd.cfg.log_target, sd.cfg.syslog_facility,
	                  verbose || sd.cfg.verbose);
	signal(SIGPIPE, SIG_IGN);

	sd.loop = uv_default_loop();
	/* Migrations first: on a new database, nothing may read the tables before the ingest
	   worker has created them, so the query worker waits for it (ingest_on_connect). */
	sd.query_db = dbworker_start(sd.loop, "database (queries)", sd.cfg.database,
	                             sd.cfg.database_retry_max, NULL, NULL);
	/* the second connection for feed catch-up pages (feed.h) */
	sd.feed_db = dbworker_start(sd.loop, "database (feed)", sd.cfg.database,
	                            sd.cfg.database_retry_max, NULL, NULL);
	if (sd.cfg.database_migrate) {
		dbworker_hold(sd.query_db);
		dbworker_hold(sd.feed_db);
	}
	sd.ingest_db = dbworker_start(sd.loop, "database (ingest)", sd.cfg.database,
	                              sd.cfg.database_retry_max, ingest_on_connect, &sd);
	sd.webhooks = webhooks_start(&sd.cfg, &error);
	if (error != NULL)
		msg_fatal("%s", error);
	sd.mdnsend = mdnsend_start(&sd.cfg, &error);
	sd.fedout = fedout_start(&sd.cfg, &error);
	if (error != NULL)
		msg_fatal("%s", error);
	if ((sd.auth = auth_new(&sd.cfg, sd.query_db, &error)) == NULL)
		msg_fatal("%s", error);
	sd.feed = feed_new(sd.loop, &sd.cfg, sd.query_db, sd.feed_db);
	sd.ingest = ingest_start(sd.loop, &sd.cfg, sd.ingest_db);
	ingest_on_logged(sd.ingest, on_logged, sd.feed);
	sd.pickup = pickup_start(sd.loop, &sd.cfg, sd.ingest);
	/* until the schema is in place (ingest_on_connect): migrated, or checked when statusd
	   does not migrate (an older schema lacks the functions the endpoint calls); a held
	   worker answers a report 503 storage-unavailable at once */
	if ((sd.fedin = fedin_new(sd.loop, &sd.cfg, sd.ingest)) != NULL)
		fedin_hold(sd.fedin);
	struct http_env env = {
	        .cfg = &sd.cfg,
	        .db = sd.query_db,
	        .ingest = sd.ingest,
	        .feed = sd.feed,
	        .auth = sd.auth,
	        .webhooks = sd.webhooks,
	        .fedout = sd.fedout,
	        .ingest_db = sd.ingest_db,
	        .fedin = sd.fedin,
	};
	sd.http = http_start(sd.loop, &env);
	sd.feedloops = feedloops_start(&env, sd.feed, sd.http);

	uv_signal_init(sd.loop, &sd.sigterm);
	uv_signal_init(sd.loop, &sd.sigint);
	sd.sigterm.data = sd.sigint.data = &sd;
	uv_signal_start(&sd.sigterm, on_signal, SIGTERM);
	uv_signal_start(&sd.sigint, on_signal, SIGINT);
	uv_timer_init(sd.loop, &sd.maintain);
	uv_timer_init(sd.loop, &sd.grace);
	sd.maintain.data = sd.grace.data = &sd;
	uv_timer_start(&sd.maintain, on_maintain, (uint64_t)sd.cfg.maintenance_interval,
	               (uint64_t)sd.cfg.maintenance_interval);
	/* Connect, migrate and maintain now rather than at the first event. */
	on_maintain(&sd.maintain);

	msg_info("statusd %s started", MSGSTATUS_VERSION);
	uv_run(sd.loop, UV_RUN_DEFAULT);
	http_free(&sd.http, sd.loop);
	uv_run(sd.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(sd.loop) != 0)
		msg_warn("event loop closed with handles still open");
	sdconfig_free(&sd.cfg);
	return sd.exit_code;
}
