/*
 * mdnsend - statusd's MDN sender. See mdnsend.h.
 */
#include "mdnsend.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mbuf.h"
#include "mdn.h"
#include "msg.h"
#include "mymalloc.h"
#include "randid.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"

extern char **environ;

#define ARGS_MAX           16    /* words of mdn_sendmail */
#define POLL_MS            30000 /* look at the queue even without a notification */
#define RETRY_MIN_MS       10000 /* first retry after sendmail failed */
#define RETRY_MAX_MS       3600000
#define DB_BACKOFF_MIN_MS  100
#define CONNECT_TIMEOUT_MS 15000
#define OUTPUT_MAX         512                          /* of sendmail's output, for the log */
#define RECOVER_AFTER_MS   (MDNSEND_TIMEOUT_MS + 60000) /* "sending" this long: unknown */

struct mdnsend {
	const struct sd_config *cfg;
	char *argv_buf;
	char *argv[ARGS_MAX + 6];
	int argc;
	char host[256];
	int wake[2];
	atomic_bool stopping;
	pthread_t thread;
	bool started;
	PGconn *conn;
	bool db_trouble;
	long long db_backoff;
	/* an outcome not recorded yet (the database went away meanwhile) */
	struct store_mdn_job unfinished;
	char *unfinished_why;
	long long unfinished_retry;
	bool have_unfinished;
};

static bool
stopping(struct mdnsend *m)
{
	return atomic_load(&m->stopping);
}

/* store_connect()'s question */
static bool
stop_asked(const void *arg)
{
	return atomic_load(&((const struct mdnsend *)arg)->stopping);
}

/* Wait up to ms for the stop pipe or the database (a notification). -1: connection gone. */
static int
wait_for(struct mdnsend *m, long long ms)
{
	int64_t deadline = time_mono_ms() + ms, left;

	for (;;) {
		struct pollfd pfd[2] = {{m->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
		bool news = false;
		PGnotify *n;

		if (m->conn != NULL) {
			if (!PQconsumeInput(m->conn))
				return -1;
			while ((n = PQnotifies(m->conn)) != NULL) {
				news = true;
				PQfreemem(n);
			}
			pfd[1].fd = PQsocket(m->conn);
		}
		if (news || stopping(m) || (left = deadline - time_mono_ms()) <= 0)
			return 0;
		if (poll(pfd, m->conn != NULL ? 2 : 1, (int)left) < 0 && errno != EINTR)
			msg_panic("mdn: poll: %s", strerror(errno));
	}
}

#define NOT_YET "the schema has no mdn table yet"

static void
db_trouble(struct mdnsend *m, const char *error)
{
	/* before statusd's ingest worker migrated a new database: wait quietly */
	if (!m->db_trouble && !stopping(m) && strcmp(error, NOT_YET) != 0)
		msg_warn("mdn: database unavailable: %s", error);
	m->db_trouble = true;
	if (m->conn != NULL)
		PQfinish(m->conn);
	m->conn = NULL;
	m->db_backoff = m->db_backoff <= 0 ? DB_BACKOFF_MIN_MS
	                : m->db_backoff > m->cfg->database_retry_max / 2
	                        ? m->cfg->database_retry_max
	                        : m->db_backoff * 2;
	(void)wait_for(m, m->db_backoff);
}

static int
db_open(struct mdnsend *m, const char **error_r)
{
	if (store_connect(m->cfg->database, m->wake[0], stop_asked, m, CONNECT_TIMEOUT_MS, &m->conn,
	                  error_r) < 0)
		return -1;
	if (store_schema_version(m->conn, error_r) < STORE_SCHEMA_VERSION) {
		*error_r = NOT_YET;
		return -1;
	}
	/* an outcome that could not be recorded before goes first, then the session */
	if (m->have_unfinished) {
		if (store_mdn_finish(m->conn, &m->unfinished, m->unfinished_why,
		                     m->unfinished_retry, error_r) < 0)
			return -1;
		store_mdn_job_clear(&m->unfinished);
		free(m->unfinished_why);
		m->unfinished_why = NULL;
		m->have_unfinished = false;
	}
	if (store_mdn_session(m->conn, error_r) < 0)
		return -1;
	if (m->db_trouble)
		msg_info("mdn: database available again");
	m->db_trouble = false;
	m->db_backoff = 0;
	return 0;
}

/* Run sendmail with msg on its standard input: 0, or -1 with why (a static text or in
   buf). */
static int
run_sendmail(struct mdnsend *m, const char *to, const struct mbuf *msg, char *buf, size_t size)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	int in[2], out[2], status = 0, rc;
	size_t got = 0, put = 0;
	int64_t deadline = time_mono_ms() + MDNSEND_TIMEOUT_MS;
	pid_t pid;
	bool exited = false, timed_out = false;

	buf[0] = '\0';
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		snprintf(buf, size, "pipe: %s", strerror(errno));
		return -1;
	}
	m->argv[m->argc + 4] = (char *)to;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	/* the thread blocks every signal and statusd ignores SIGPIPE: not so in sendmail */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, m->argv[0], &fa, &attr, m->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		close(in[1]);
		close(out[0]);
		snprintf(buf, size, "cannot run %s: %s", m->argv[0], strerror(rc));
		return -1;
	}
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	while (!exited) {
		int64_t left = deadline - time_mono_ms();
		struct pollfd pfd[2];
		pid_t w;

		if (left <= 0) {
			kill(pid, SIGKILL);
			timed_out = true;
			(void)waitpid(pid, &status, 0);
			break;
		}
		if (in[1] >= 0 && put == msg->len) {
			close(in[1]);
			in[1] = -1;
		}
		pfd[0] = (struct pollfd){out[0], POLLIN, 0};
		pfd[1] = (struct pollfd){in[1], POLLOUT, 0};
		(void)poll(pfd, in[1] >= 0 ? 2 : 1, left > 50 ? 50 : (int)left);
		if (in[1] >= 0 && put < msg->len) {
			ssize_t n = write(in[1], msg->data + put, msg->len - put);
			if (n > 0)
				put += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				close(in[1]);
				in[1] = -1;
			}
		}
		for (;;) {
			char chunk[256];
			ssize_t n = read(out[0], chunk, sizeof(chunk));
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n && got + 1 < size; i++)
				buf[got++] = chunk[i] == '\n' || chunk[i] == '\r' ? ' ' : chunk[i];
			buf[got] = '\0';
		}
		w = waitpid(pid, &status, WNOHANG);
		exited = w == pid;
	}
	if (in[1] >= 0)
		close(in[1]);
	close(out[0]);
	if (timed_out) {
		snprintf(buf, size, "%s did not finish within %d s: killed", m->argv[0],
		         MDNSEND_TIMEOUT_MS / 1000);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && put == msg->len)
		return 0;
	{
		char what[OUTPUT_MAX + 1];
		msg_clean(what, sizeof(what), buf, strlen(buf));
		if (WIFEXITED(status))
			snprintf(buf, size, "%s exited with %d: %s", m->argv[0],
			         WEXITSTATUS(status), what);
		else
			snprintf(buf, size, "%s was killed by signal %d", m->argv[0],
			         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	return -1;
}

/* Hand one claimed notification to sendmail and record the outcome. -1: database gone. */
static int
send_one(struct mdnsend *m, struct store_mdn_job *job, const char **error_r)
{
	struct mdn_request req = {
	        .user = job->recipient, .message_id = job->message_id, .subject = job->subject};
	char rnd[RANDID_LEN + 1], own_id[RANDID_LEN + sizeof(m->host) + 8];
	char boundary[RANDID_LEN + 8], why[OUTPUT_MAX + 128];
	struct mdn_env env = {.reporting_host = m->host,
	                      .notify_to = job->notify_to,
	                      .own_message_id = own_id,
	                      .boundary = boundary,
	                      .date = time_now_ms() / 1000};
	struct mbuf msg = MBUF_INIT;
	long long retry = -1;
	int rc;

	snprintf(own_id, sizeof(own_id), "<mdn.%s@%s>", randid_new(rnd), m->host);
	snprintf(boundary, sizeof(boundary), "=_mdn_%s", randid_new(rnd));
	mdn_compose(&req, &env, &msg);
	rc = run_sendmail(m, job->notify_to, &msg, why, sizeof(why));
	mbuf_free(&msg);
	if (rc == 0)
		msg_info("mdn: sent for %s, message %s, to %s", job->recipient, job->message_id,
		         job->notify_to);
	else {
		if (job->attempts < MDNSEND_ATTEMPTS_MAX) {
			retry = RETRY_MIN_MS;
			for (int i = 1; i < job->attempts && retry < RETRY_MAX_MS; i++)
				retry *= 2;
			if (retry > RETRY_MAX_MS)
				retry = RETRY_MAX_MS;
		}
		msg_warn("mdn: attempt %d for %s, message %s, to %s failed: %s%s", job->attempts,
		         job->recipient, job->message_id, job->notify_to, why,
		         retry < 0 ? "; giving up" : "; will retry");
	}
	if (store_mdn_finish(m->conn, job, rc == 0 ? NULL : why, retry, error_r) < 0) {
		m->unfinished = *job;
		memset(job, 0, sizeof(*job));
		m->unfinished_why = rc == 0 ? NULL : mystrdup(why);
		m->unfinished_retry = retry;
		m->have_unfinished = true;
		return -1;
	}
	return 0;
}

static void *
mdnsend_main(void *arg)
{
	struct mdnsend *m = arg;
	const char *error;

	while (!stopping(m)) {
		struct store_mdn_job job;
		long long due;
		int r;

		if (m->conn == NULL && db_open(m, &error) < 0) {
			db_trouble(m, error);
			continue;
		}
		if ((r = store_mdn_claim(m->conn, &job, &error)) < 0) {
			db_trouble(m, error);
			continue;
		}
		if (r == 1) {
			r = send_one(m, &job, &error);
			store_mdn_job_clear(&job);
			if (r < 0)
				db_trouble(m, error);
			continue;
		}
		if ((r = store_mdn_recover(m->conn, RECOVER_AFTER_MS, &error)) < 0) {
			db_trouble(m, error);
			continue;
		}
		if (r > 0)
			msg_warn("mdn: %d notification%s handed to sendmail without a recorded "
			         "outcome (statusd stopped meanwhile?): not handed over again",
			         r, r == 1 ? "" : "s");
		if ((due = store_mdn_next_due(m->conn, &error)) == -2) {
			db_trouble(m, error);
			continue;
		}
		if (wait_for(m, due < 0 || due > POLL_MS ? POLL_MS : due) < 0)
			db_trouble(m, store_error(m->conn, NULL));
	}
	if (m->conn != NULL)
		PQfinish(m->conn);
	m->conn = NULL;
	return NULL;
}

static void
mdnsend_free(struct mdnsend *m)
{
	if (m->wake[0] >= 0)
		close(m->wake[0]);
	if (m->wake[1] >= 0)
		close(m->wake[1]);
	store_mdn_job_clear(&m->unfinished);
	free(m->unfinished_why);
	free(m->argv_buf);
	free(m);
}

struct mdnsend *
mdnsend_start(const struct sd_config *cfg, const char **error_r)
{
	struct mdnsend *m;
	char *save = NULL, *word;
	sigset_t all, old;
	int rc;

	*error_r = NULL;
	if (cfg->mdn_sendmail[0] == '\0')
		return NULL;
	m = mycalloc(1, sizeof(*m));
	m->cfg = cfg;
	m->wake[0] = m->wake[1] = -1;
	m->argv_buf = mystrdup(cfg->mdn_sendmail);
	for (word = strtok_r(m->argv_buf, " \t", &save); word != NULL;
	     word = strtok_r(NULL, " \t", &save)) {
		if (m->argc == ARGS_MAX) {
			*error_r = errfmt("mdn_sendmail: more than %d words", ARGS_MAX);
			goto fail;
		}
		m->argv[m->argc++] = word;
	}
	if (m->argc == 0 || m->argv[0][0] != '/') {
		*error_r = "mdn_sendmail: the command must be an absolute path";
		goto fail;
	}
	if (access(m->argv[0], X_OK) < 0)
		msg_warn("mdn_sendmail: %s: %s (notifications wait until it can be run)",
		         m->argv[0], strerror(errno));
	m->argv[m->argc] = "-i";
	m->argv[m->argc + 1] = "-f";
	m->argv[m->argc + 2] = "<>";
	m->argv[m->argc + 3] = "--";
	m->argv[m->argc + 4] = NULL; /* the address, per notification */
	m->argv[m->argc + 5] = NULL;
	if (gethostname(m->host, sizeof(m->host) - 1) < 0 || m->host[0] == '\0')
		snprintf(m->host, sizeof(m->host), "localhost");
	if (pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = errfmt("mdn: pipe: %s", strerror(errno));
		goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((rc = pthread_create(&m->thread, NULL, mdnsend_main, m)) != 0)
		msg_fatal("mdn: cannot start a thread: %s", strerror(rc));
	m->started = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return m;
fail:
	mdnsend_free(m);
	return NULL;
}

void
mdnsend_stop(struct mdnsend **mp)
{
	struct mdnsend *m = *mp;
	ssize_t wr;

	if (m == NULL)
		return;
	*mp = NULL;
	atomic_store(&m->stopping, true);
	do
		wr = write(m->wake[1], "x", 1);
	while (wr < 0 && errno == EINTR);
	if (m->started)
		pthread_join(m->thread, NULL);
	mdnsend_free(m);
}
