/*
 * msgstatus-milter - tag outgoing mail of enabled sender domains and record it. See
 * msgstatus-milter(8).
 *
 * DESIGN
 *	Two processes. The supervisor (this main) owns the signals an administrator sends:
 *	SIGHUP checks the configuration file and, if it is good, tells the worker to reload
 *	(SIGUSR1); SIGTERM and SIGINT stop the worker and then exit; if the worker dies it is
 *	started again after 100 ms, doubling while it keeps dying within a minute of its start
 *	(up to 30 s), while Postfix, configured with default_action = accept, passes mail
 *	untagged meanwhile. The supervisor exists because libmilter's own signal
 *	thread stops the milter on SIGHUP; the worker therefore never sees SIGHUP.
 *
 *	The worker runs libmilter (a controller thread and a pool of workers that run the
 *	commands of Postfix's connections, callbacks.c), a thread that ships the spool to
 *	statusd (lib/shipper.c) and a thread waiting for SIGUSR1 to swap in a new
 *	configuration snapshot (mconfig.h). Mail never waits for statusd: the
 *	callbacks only append to the local spool.
 *
 *	-F runs the worker alone in the foreground (no supervisor), for debugging.
 *
 * DIAGNOSTICS
 *	Configuration errors are fatal at start (file and line); at reload they are logged
 *	and the old configuration stays.
 */
#include <errno.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "callbacks.h"
#include "conf.h"
#include "dkimverify.h"
#include "mbuf.h"
#include "mconfig.h"
#include "msg.h"
#include "resolver.h"
#include "rfc3339.h"
#include "shipper.h"
#include "spool.h"

#define STOP_GRACE_MS    5000
#define RESTART_MIN_MS   100   /* first restart: mail passes untagged meanwhile */
#define RESTART_MAX_MS   30000 /* a worker that keeps dying: at most this often */
#define RESTART_RESET_MS 60000 /* a worker that lived this long: back to the minimum */

static const char *config_path;

static void
usage(void)
{
	fprintf(stderr, "usage: msgstatus-milter [-c config_file] [-n] [-v] [-F]\n"
	                "  -c FILE  read FILE instead of " MSGSTATUS_SYSCONFDIR "/milter.conf\n"
	                "  -n       check the configuration, print it and exit\n"
	                "  -v       verbose logging\n"
	                "  -F       run the milter alone in the foreground (no supervisor)\n");
	exit(2);
}

static void
open_log(const struct mconfig *cfg, bool verbose)
{
	msg_open_settings("msgstatus-milter", cfg->log_target, cfg->syslog_facility,
	                  verbose || cfg->verbose);
}

/* --- worker -------------------------------------------------------------------------- */

static bool cmdline_verbose;
static struct shipper *the_shipper;

/* Waits for SIGUSR1 (from the supervisor) and swaps in a new configuration. */
static void *
reload_main(void *arg)
{
	sigset_t set;
	int sig;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		const char *error;
		struct mconfig *cfg, *old;

		if (sigwait(&set, &sig) != 0)
			continue;
		if ((cfg = mconfig_load(config_path, &error)) == NULL) {
			msg_error("reload: %s; keeping the old configuration", error);
			continue;
		}
		old = mconfig_get();
		if (strcmp(old->milter_socket, cfg->milter_socket) != 0 ||
		    strcmp(old->spool_dir, cfg->spool_dir) != 0)
			msg_warn("reload: milter_socket and spool_dir change only at restart");
		if (old->dkim_verify != cfg->dkim_verify ||
		    strcmp(old->dns_server, cfg->dns_server) != 0 ||
		    strcmp(old->dns_trust_anchor_file, cfg->dns_trust_anchor_file) != 0 ||
		    old->dns_timeout != cfg->dns_timeout ||
		    old->dns_cache_size != cfg->dns_cache_size ||
		    old->dns_cache_max_ttl != cfg->dns_cache_max_ttl)
			msg_warn("reload: dkim_verify and the dns_* settings change only at "
			         "restart");
		if (strcmp(old->log_target, cfg->log_target) != 0)
			open_log(cfg, cmdline_verbose);
		msg_set_verbose(cmdline_verbose || cfg->verbose);
		if (strcmp(old->events_socket, cfg->events_socket) != 0)
			shipper_set_socket(the_shipper, cfg->events_socket);
		mconfig_unref(&old);
		mconfig_set(cfg);
		msg_info("configuration reloaded");
	}
	return NULL;
}

static const char *
socket_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

static int
run_worker(void)
{
	struct mconfig *cfg = mconfig_get();
	struct spool *sp;
	struct resolver *resolver = NULL;
	struct dkimverify *dkim = NULL;
	pthread_t reloader;
	const char *error, *path;
	sigset_t set;
	int rc;

	/*
	 * Block the signals before any thread starts, so that each reaches only the thread
	 * that waits for it: SIGUSR1 the reload thread, SIGTERM and SIGINT libmilter's.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	sp = spool_open(cfg->spool_dir, (uint64_t)cfg->spool_segment_size,
	                (uint64_t)cfg->spool_max_size, cfg->spool_sync, &error);
	if (sp == NULL)
		msg_fatal("%s", error);
	the_shipper = shipper_start(sp, cfg->events_socket);
	if ((rc = pthread_create(&reloader, NULL, reload_main, NULL)) != 0)
		msg_fatal("cannot start the reload thread: %s", strerror(rc));
	pthread_detach(reloader);

	if (cfg->dkim_verify) {
		struct resolver_settings rs = RESOLVER_SETTINGS_OF(cfg);
		if ((resolver = resolver_new(&rs, &error)) == NULL)
			msg_fatal("%s (dns_server, dns_trust_anchor_file)", error);
		if ((dkim = dkimverify_new(resolver, cfg->dns_timeout, &error)) == NULL)
			msg_fatal("dkim_verify: %s", error);
	}
	callbacks_register(sp, the_shipper, dkim);
	if (smfi_setconn(cfg->milter_socket) == MI_FAILURE)
		msg_fatal("milter_socket %s: cannot use it", cfg->milter_socket);
	smfi_settimeout((int)((cfg->milter_timeout + 999) / 1000));
	if (smfi_opensocket(true) == MI_FAILURE)
		msg_fatal("milter_socket %s: cannot listen (directory missing, or in use?)",
		          cfg->milter_socket);
	if ((path = socket_path(cfg->milter_socket)) != NULL && chmod(path, cfg->socket_mode) < 0)
		msg_fatal("milter_socket %s: chmod: %s", path, strerror(errno));
	msg_info("msgstatus-milter %s listening on %s", MSGSTATUS_VERSION, cfg->milter_socket);
	mconfig_unref(&cfg);

	rc = smfi_main();
	msg_info("stopping: sending what is in flight");
	shipper_stop(&the_shipper, STOP_GRACE_MS);
	spool_close(&sp);
	/* dkim and resolver are left to the process's exit: smfi_main() returns without
	   joining libmilter's session threads, so one could still be using them. */
	msg_info("stopped");
	return rc == MI_SUCCESS ? 0 : 1;
}

/* --- supervisor ---------------------------------------------------------------------- */

static volatile sig_atomic_t got_hup, got_term, got_chld;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	else
		got_term = sig;
}

static pid_t
spawn_worker(void)
{
	pid_t pid = fork();

	if (pid < 0) {
		msg_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		signal(SIGHUP, SIG_IGN); /* libmilter would stop on it; the supervisor owns it */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor killed: stop too */
		if (getppid() == 1)
			_exit(0);
		_exit(run_worker());
	}
	return pid;
}

static int
supervise(void)
{
	struct sigaction sa;
	sigset_t block, old;
	pid_t worker;
	long long backoff = RESTART_MIN_MS;
	int64_t started;
	int status;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);

	if ((worker = spawn_worker()) < 0)
		return 1;
	started = time_mono_ms();
	for (;;) {
		while (!got_hup && !got_term && !got_chld)
			sigsuspend(&old);
		if (got_term) {
			kill(worker, SIGTERM);
			while (waitpid(worker, &status, 0) < 0 && errno == EINTR)
				;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		}
		if (got_hup) {
			const char *error;
			struct mconfig *cfg;

			got_hup = 0;
			if ((cfg = mconfig_load(config_path, &error)) == NULL)
				msg_error("SIGHUP: %s; keeping the old configuration", error);
			else {
				mconfig_unref(&cfg);
				kill(worker, SIGUSR1);
			}
		}
		if (got_chld) {
			got_chld = 0;
			if (waitpid(worker, &status, WNOHANG) == worker) {
				struct timespec ts;

				/* Only a worker that dies again soon is restarted ever later. */
				if (time_mono_ms() - started >= RESTART_RESET_MS)
					backoff = RESTART_MIN_MS;
				ts.tv_sec = backoff / 1000;
				ts.tv_nsec = (backoff % 1000) * 1000000;
				if (WIFSIGNALED(status))
					msg_error("the milter process died (signal %d); restarting "
					          "it in %lld ms",
					          WTERMSIG(status), backoff);
				else
					msg_error("the milter process exited with status %d; "
					          "restarting it in %lld ms",
					          WEXITSTATUS(status), backoff);
				sigprocmask(SIG_SETMASK, &old, NULL);
				while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !got_term)
					;
				sigprocmask(SIG_BLOCK, &block, NULL);
				if (got_term)
					return 0;
				backoff =
				        backoff * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : backoff * 2;
				if ((worker = spawn_worker()) < 0)
					return 1;
				started = time_mono_ms();
			}
		}
	}
}

int
main(int argc, char **argv)
{
	const char *error;
	struct mconfig *cfg;
	bool check = false, foreground = false, given = false;
	int ch;

	config_path = MSGSTATUS_SYSCONFDIR "/milter.conf";
	msg_open("msgstatus-milter", MSG_TARGET_STDERR, 0);
	while ((ch = getopt(argc, argv, "c:nvFh")) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			given = true;
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			cmdline_verbose = true;
			break;
		case 'F':
			foreground = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (!given && access(config_path, F_OK) != 0)
		config_path = NULL; /* no default file: all defaults */
	if ((cfg = mconfig_load(config_path, &error)) == NULL)
		msg_fatal("%s", error);
	if (check) {
		struct mbuf out = MBUF_INIT;
		conf_dump(mconfig_table, cfg, &out);
		fputs(mbuf_str(&out), stdout);
		mbuf_free(&out);
		mconfig_unref(&cfg);
		return 0;
	}
	open_log(cfg, cmdline_verbose);
	mconfig_set(cfg);
	return foreground ? run_worker() : supervise();
}
