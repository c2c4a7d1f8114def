/*
 * msgstatus-logd - turn Postfix's log into delivery events for statusd. See
 * msgstatus-logd(8).
 *
 * Postfix has no per-delivery hook; its log is the record of every delivery attempt. This
 * small program follows it — Postfix's own maillog_file (postlogd, Postfix >= 3.4), and/or a
 * UNIX datagram socket that rsyslog or syslog-ng forward Postfix's syslog lines to — and
 * makes an event of each delivery agent's result (pfevent.c). It is a program of its own
 * so that only it needs to read the mail log, and so that statusd never waits for a disk.
 *
 * DESIGN
 *	One thread follows the inputs with poll(): the log file through follow.c (inotify,
 *	rotation, a durable position), the syslog socket, a signalfd. Events are appended to
 *	a local spool, and only then is the log position saved; the shipper thread
 *	(lib/shipper.c) sends the spool to statusd. So: statusd down means the spool grows; a
 *	crash means lines read again, whose events have the same ids (derived from the line)
 *	and are stored once. If the spool is full, reading pauses and the log file keeps the
 *	lines. Lines that arrive on the syslog socket while msgstatus-logd is down are lost
 *	(syslog over datagrams has no acknowledgement): the log file is the durable input.
 *
 *	SIGHUP reloads delivered_services, syslog_names, events_socket and logging, and keeps
 *	the Message-IDs remembered for queue ids; SIGTERM/SIGINT save the position, send what
 *	is in flight (at most 5 seconds) and exit 0.
 *
 * SECURITY
 *	Log lines are untrusted (anyone who can write to syslog can forge one): pflog.c bounds
 *	the parse and every event is validated before it is spooled. A forged line can at worst
 *	claim a delivery result for a queue id; see docs/security.md.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "follow.h"
#include "lconfig.h"
#include "mbuf.h"
#include "msg.h"
#include "pfevent.h"
#include "rfc3339.h"
#include "shipper.h"
#include "spool.h"

#define STOP_GRACE_MS    5000
#define SAVE_INTERVAL_MS 100
#define MSGID_CACHE      100000
#define DGRAM_MAX        65536

struct logd {
	struct lconfig cfg;
	const char *config_path;
	bool cmdline_verbose;
	struct spool *spool;
	struct shipper *shipper;
	struct follow *follow;
	struct pfevent *pfevent;
	int syslog_fd, sig_fd;
	struct mbuf batch; /* events of the lines read in this turn */
	bool spool_full;
};

static void
usage(void)
{
	fprintf(stderr, "usage: msgstatus-logd [-c config_file] [-n] [-v]\n"
	                "  -c FILE  read FILE instead of " MSGSTATUS_SYSCONFDIR "/logd.conf\n"
	                "  -n       check the configuration, print it and exit\n"
	                "  -v       verbose logging\n");
	exit(2);
}

static void
open_log(const struct lconfig *cfg, bool verbose)
{
	msg_open_settings("msgstatus-logd", cfg->log_target, cfg->syslog_facility,
	                  verbose || cfg->verbose);
}

static void
on_line(void *ctx, const char *line, size_t len)
{
	struct logd *ld = ctx;

	pfevent_line(ld->pfevent, line, len, time_now_ms(), &ld->batch);
}

/* Put the turn's events in the spool; false if the spool refused them. */
static bool
flush_batch(struct logd *ld)
{
	const char *error;

	if (ld->batch.len == 0)
		return true;
	if (spool_append(ld->spool, ld->batch.data, ld->batch.len, &error) < 0) {
		if (!ld->spool_full)
			msg_error(
			        "%s: pausing until statusd takes events (the log keeps the lines)",
			        error);
		ld->spool_full = true;
		return false;
	}
	if (ld->spool_full)
		msg_info("spool has room again: reading the log");
	ld->spool_full = false;
	mbuf_reset(&ld->batch);
	return true;
}

/* Read a slice of the log file; true if more is waiting. */
static bool
read_file(struct logd *ld, int64_t *last_save)
{
	const char *error;
	int more;

	if (ld->follow == NULL)
		return false;
	if (ld->spool_full && !flush_batch(ld))
		return false;
	if ((more = follow_read(ld->follow, on_line, ld, &error)) < 0)
		msg_warn("%s", error);
	if (!flush_batch(ld))
		return false; /* the position is saved only once the events are spooled */
	if (time_mono_ms() - *last_save >= SAVE_INTERVAL_MS) {
		if (follow_save(ld->follow, &error) < 0)
			msg_error("%s", error);
		*last_save = time_mono_ms();
	}
	return more > 0;
}

static void
read_syslog(struct logd *ld)
{
	char buf[DGRAM_MAX];

	for (;;) {
		ssize_t n = recv(ld->syslog_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
			n--;
		on_line(ld, buf, (size_t)n);
	}
	if (!flush_batch(ld))
		mbuf_reset(&ld->batch); /* nowhere to keep them: say so (flush_batch did) */
}

static int
open_syslog_socket(const struct lconfig *cfg)
{
	struct sockaddr_un sun;
	int fd, rcvbuf = 4 * 1024 * 1024;

	if (strlen(cfg->syslog_socket) >= sizeof(sun.sun_path))
		msg_fatal("syslog_socket: path too long");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, cfg->syslog_socket);
	unlink(cfg->syslog_socket);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		msg_fatal("syslog_socket %s: %s", cfg->syslog_socket, strerror(errno));
	if (chmod(cfg->syslog_socket, (mode_t)cfg->syslog_mode) < 0)
		msg_fatal("syslog_socket %s: chmod: %s", cfg->syslog_socket, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	msg_info("receiving syslog lines on %s", cfg->syslog_socket);
	return fd;
}

static void
reload(struct logd *ld)
{
	struct lconfig cfg;
	const char *error;

	memset(&cfg, 0, sizeof(cfg));
	if (lconfig_load(&cfg, ld->config_path, &error) < 0) {
		msg_error("SIGHUP: %s; keeping the old configuration", error);
		lconfig_free(&cfg);
		return;
	}
	if (strcmp(cfg.maillog_file, ld->cfg.maillog_file) != 0 ||
	    strcmp(cfg.syslog_socket, ld->cfg.syslog_socket) != 0 ||
	    strcmp(cfg.state_dir, ld->cfg.state_dir) != 0)
		msg_warn(
		        "SIGHUP: maillog_file, syslog_socket and state_dir change only at restart");
	if (strcmp(cfg.events_socket, ld->cfg.events_socket) != 0)
		shipper_set_socket(ld->shipper, cfg.events_socket);
	pfevent_configure(ld->pfevent, cfg.delivered_services, cfg.syslog_names);
	open_log(&cfg, ld->cmdline_verbose);
	/* keep the inputs that cannot change, take the rest */
	char *keep_file = ld->cfg.maillog_file, *keep_sock = ld->cfg.syslog_socket,
	     *keep_state = ld->cfg.state_dir;
	ld->cfg.maillog_file = ld->cfg.syslog_socket = ld->cfg.state_dir = NULL;
	lconfig_free(&ld->cfg);
	free(cfg.maillog_file);
	free(cfg.syslog_socket);
	free(cfg.state_dir);
	cfg.maillog_file = keep_file;
	cfg.syslog_socket = keep_sock;
	cfg.state_dir = keep_state;
	ld->cfg = cfg;
	msg_info("configuration reloaded");
}

int
main(int argc, char **argv)
{
	struct logd ld;
	const char *error;
	bool check = false, given = false;
	char path[4096];
	sigset_t set;
	int64_t last_save = 0;
	int ch;

	/* Log timestamps are local time: without TZ, glibc's mktime() checks the zone file
	 * on every call (a stat per line). Name the file once; the zone is still followed
	 * across restarts. */
	setenv("TZ", ":/etc/localtime", 0);
	memset(&ld, 0, sizeof(ld));
	ld.syslog_fd = ld.sig_fd = -1;
	ld.config_path = MSGSTATUS_SYSCONFDIR "/logd.conf";
	msg_open("msgstatus-logd", MSG_TARGET_STDERR, 0);
	while ((ch = getopt(argc, argv, "c:nvh")) != -1) {
		switch (ch) {
		case 'c':
			ld.config_path = optarg;
			given = true;
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			ld.cmdline_verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (!given && access(ld.config_path, F_OK) != 0)
		ld.config_path = NULL;
	if (lconfig_load(&ld.cfg, ld.config_path, &error) < 0)
		msg_fatal("%s", error);
	if (check) {
		struct mbuf out = MBUF_INIT;
		conf_dump(lconfig_table, &ld.cfg, &out);
		fputs(mbuf_str(&out), stdout);
		mbuf_free(&out);
		lconfig_free(&ld.cfg);
		return 0;
	}
	open_log(&ld.cfg, ld.cmdline_verbose);

	/* Signals through a signalfd: block them before the shipper thread exists. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((ld.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		msg_fatal("signalfd: %s", strerror(errno));

	if (mkdir(ld.cfg.state_dir, 0700) < 0 && errno != EEXIST)
		msg_fatal("state_dir %s: %s", ld.cfg.state_dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/spool", ld.cfg.state_dir);
	if ((ld.spool = spool_open(path, 16 * 1024 * 1024, (uint64_t)ld.cfg.spool_max_size, false,
	                           &error)) == NULL)
		msg_fatal("%s", error);
	ld.shipper = shipper_start(ld.spool, ld.cfg.events_socket);
	ld.pfevent = pfevent_new(ld.cfg.delivered_services, ld.cfg.syslog_names, MSGID_CACHE);
	if (ld.cfg.maillog_file[0] != '\0') {
		snprintf(path, sizeof(path), "%s/position", ld.cfg.state_dir);
		if ((ld.follow = follow_open(ld.cfg.maillog_file, path, &error)) == NULL)
			msg_fatal("%s", error);
		msg_info("following %s", ld.cfg.maillog_file);
	}
	if (ld.cfg.syslog_socket[0] != '\0')
		ld.syslog_fd = open_syslog_socket(&ld.cfg);
	msg_info("msgstatus-logd %s started", MSGSTATUS_VERSION);

	for (;;) {
		struct pollfd pfd[3];
		struct signalfd_siginfo si;
		int n = 0;
		bool more = read_file(&ld, &last_save);

		pfd[n++] = (struct pollfd){ld.sig_fd, POLLIN, 0};
		if (ld.follow)
			pfd[n++] = (struct pollfd){follow_fd(ld.follow), POLLIN, 0};
		if (ld.syslog_fd >= 0)
			pfd[n++] = (struct pollfd){ld.syslog_fd, POLLIN, 0};
		if (poll(pfd, (nfds_t)n,
		         more            ? 0
		         : ld.spool_full ? 200
		                         : 1000) < 0 &&
		    errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		if (ld.syslog_fd >= 0 && pfd[n - 1].revents & POLLIN)
			read_syslog(&ld);
		if (read(ld.sig_fd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				reload(&ld);
				continue;
			}
			msg_info("stopping on signal %u", si.ssi_signo);
			break;
		}
	}
	read_file(&ld, &last_save);
	if (ld.follow && !ld.spool_full && follow_save(ld.follow, &error) < 0)
		msg_error("%s", error);
	shipper_stop(&ld.shipper, STOP_GRACE_MS);
	spool_close(&ld.spool);
	follow_close(&ld.follow);
	pfevent_free(&ld.pfevent);
	if (ld.syslog_fd >= 0) {
		close(ld.syslog_fd);
		unlink(ld.cfg.syslog_socket);
	}
	close(ld.sig_fd);
	mbuf_free(&ld.batch);
	lconfig_free(&ld.cfg);
	msg_info("stopped");
	return 0;
}
