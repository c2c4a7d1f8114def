/*
 * test_shipper - unit tests for lib/shipper: records held in memory (shipper_hold), as the
 * milter holds a message's events when its spool cannot take them.
 *
 * A stand-in for statusd's event socket (a thread on a UNIX socket that acknowledges every
 * line, as statusd does, and records what it got) lets each test check what arrived:
 * records held from several threads at once and spooled ones all arrive, once; held
 * records wait while statusd is away and go when it is back; after a connection that
 * breaks with records unanswered, those are sent again and the answered ones are not;
 * holding stops at 1 MiB; a record that is not a whole line is refused; and what is still
 * held when the shipper stops goes to the spool. Runs under ASan and TSan (the holders
 * are other threads than the shipper's).
 *
 * Also the spool's notification as the shipper uses it: an append signals the reader only
 * when the reader has armed it (so a shipper that is behind, or waits for statusd, costs
 * an append no system call and itself no wake-up), and a shipper that waits for records
 * is still woken by the next one at once, not at its idle timeout (1 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "shipper.h"
#include "spool.h"

#include "check.h"

#define MAX_SEEN 20000

/* The stand-in for statusd. */
struct fake {
	char path[108];
	int lfd;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop;             /* under lock */
	int drop_after;       /* under lock: close the connection after reading this many lines */
	char *seen[MAX_SEEN]; /* under lock: every line received, in order */
	int nseen;
	int nacked;
};

static char dir[64]; /* short: a UNIX socket's path goes in it */

static void
fake_serve(struct fake *f, int fd)
{
	char buf[65536];
	struct mbuf in = MBUF_INIT;
	uint64_t seq = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;
		char *nl;
		int stop;

		pthread_mutex_lock(&f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		if (stop || poll(&pfd, 1, 50) < 0)
			break;
		if (pfd.revents == 0)
			continue;
		if ((n = read(fd, buf, sizeof(buf))) <= 0)
			break;
		mbuf_append(&in, buf, (size_t)n);
		while ((nl = memchr(in.data, '\n', in.len)) != NULL) {
			size_t len = (size_t)(nl - in.data);
			char reply[64];
			bool drop;

			pthread_mutex_lock(&f->lock);
			assert_true(f->nseen < MAX_SEEN);
			f->seen[f->nseen++] = strndup(in.data, len);
			drop = f->drop_after > 0 && --f->drop_after == 0;
			if (!drop)
				f->nacked++;
			pthread_mutex_unlock(&f->lock);
			mbuf_consume(&in, len + 1);
			if (drop)
				goto out; /* this one and any read after it go unanswered */
			snprintf(reply, sizeof(reply), "{\"seq\":%llu,\"ack\":\"x\"}\n",
			         (unsigned long long)++seq);
			assert_int_equal(write(fd, reply, strlen(reply)), (ssize_t)strlen(reply));
		}
	}
out:
	mbuf_free(&in);
	close(fd);
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
		int stop, fd;

		pthread_mutex_lock(&f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		if (stop)
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if ((fd = accept(f->lfd, NULL, NULL)) >= 0)
			fake_serve(f, fd);
	}
	return NULL;
}

static void
fake_start(struct fake *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	unlink(f->path);
	assert_true((f->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	pthread_mutex_lock(&f->lock);
	f->stop = 0;
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	f->stop = 1;
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
}

static struct fake *
fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "%s/events.sock", dir);
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

static void
fake_free(struct fake *f)
{
	for (int i = 0; i < f->nseen; i++)
		free(f->seen[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* How many times the fake got line. */
static int
seen_count(struct fake *f, const char *line)
{
	int n = 0;

	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->nseen; i++)
		n += strcmp(f->seen[i], line) == 0;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static int
seen_total(struct fake *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->nseen;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Wait (up to 20 s) until the fake has acknowledged want lines. */
static void
wait_acked(struct fake *f, int want)
{
	for (int i = 0; i < 2000; i++) {
		int n;
		pthread_mutex_lock(&f->lock);
		n = f->nacked;
		pthread_mutex_unlock(&f->lock);
		if (n >= want)
			return;
		usleep(10000);
	}
	fail_msg("statusd's stand-in acknowledged fewer than %d lines", want);
}

static struct spool *
open_spool(void)
{
	char path[300];
	const char *error;
	struct spool *sp;

	snprintf(path, sizeof(path), "%s/spool", dir);
	sp = spool_open(path, 1 << 20, 1 << 26, false, &error);
	assert_non_null(sp);
	return sp;
}

/* Hold "PREFIX 0" ... "PREFIX n-1", a line each; how many were refused (no cmocka
   assertion here: holders run on threads of their own). */
static int
hold_lines(struct shipper *sh, const char *prefix, int n)
{
	char line[64];
	size_t held;
	int refused = 0;

	for (int i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "%s %d\n", prefix, i);
		refused += shipper_hold(sh, line, (size_t)len, &held) != 0 || held > 1024 * 1024;
	}
	return refused;
}

/* Each of "PREFIX 0" ... "PREFIX n-1" arrived once. */
static void
check_once(struct fake *f, const char *prefix, int n)
{
	char line[64];

	for (int i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "%s %d", prefix, i);
		CHECK_INT(line, seen_count(f, line), 1);
	}
}

static void
finish(struct fake *f, struct spool **sp)
{
	fake_stop(f);
	fake_free(f);
	spool_close(sp);
	check_done();
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_shipper.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

struct holder {
	struct shipper *sh;
	char prefix[16];
	int count, refused;
};

static void *
holder_main(void *arg)
{
	struct holder *h = arg;

	h->refused = hold_lines(h->sh, h->prefix, h->count);
	return NULL;
}

static void
test_held_and_spooled_arrive_once(void **state)
{
	struct fake *f = fake_new();
	struct spool *sp = open_spool();
	struct shipper *sh;
	struct holder h[4];
	pthread_t t[4];
	const char *error;
	char line[64];

	(void)state;
	fake_start(f);
	sh = shipper_start(sp, f->path);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct holder){.sh = sh, .count = 500};
		snprintf(h[i].prefix, sizeof(h[i].prefix), "held %d", i);
		assert_int_equal(pthread_create(&t[i], NULL, holder_main, &h[i]), 0);
	}
	for (int i = 0; i < 300; i++) {
		int len = snprintf(line, sizeof(line), "spooled %d\n", i);
		assert_int_equal(spool_append(sp, line, (size_t)len, &error), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(h[i].prefix, h[i].refused, 0);
	}
	wait_acked(f, 4 * 500 + 300);
	shipper_stop(&sh, 1000);
	CHECK_INT("lines received", seen_total(f), 4 * 500 + 300);
	for (int i = 0; i < 4; i++)
		check_once(f, h[i].prefix, 500);
	check_once(f, "spooled", 300);
	finish(f, &sp);
}

/* The log (stderr) goes to a file while a test waits for a line of it. */
struct captured {
	FILE *file;
	int saved;
};

static void
capture_begin(struct captured *c)
{
	assert_non_null(c->file = tmpfile());
	assert_true((c->saved = dup(STDERR_FILENO)) >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Has the log said text since capture_begin? */
static bool
captured_has(struct captured *c, const char *text)
{
	char buf[4096];
	ssize_t n = pread(fileno(c->file), buf, sizeof(buf) - 1, 0);

	if (n < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

/* Log to stderr again, with what was captured. */
static void
capture_end(struct captured *c)
{
	char buf[4096];
	ssize_t n = pread(fileno(c->file), buf, sizeof(buf), 0);

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n);
	fclose(c->file);
}

static void
test_held_wait_for_statusd(void **state)
{
	struct fake *f = fake_new();
	struct spool *sp = open_spool();
	struct captured log;
	struct shipper *sh;
	bool noticed = false;

	(void)state;
	capture_begin(&log);
	sh = shipper_start(sp, f->path); /* nobody listens yet */
	CHECK_INT("refused", hold_lines(sh, "early", 50), 0);
	/* the shipper tried statusd, found nobody, and keeps the lines */
	for (int i = 0; i < 2000 && !(noticed = captured_has(&log, "statusd unavailable")); i++)
		usleep(10000);
	capture_end(&log);
	if (!noticed)
		fail_msg("the shipper did not find statusd unavailable");
	fake_start(f);
	wait_acked(f, 50);
	check_once(f, "early", 50);
	shipper_stop(&sh, 1000);
	finish(f, &sp);
}

static void
test_broken_connection_resends_the_unanswered(void **state)
{
	struct fake *f = fake_new();
	struct spool *sp = open_spool();
	struct shipper *sh;
	char line[64];
	int total, dups = 0;

	(void)state;
	f->drop_after = 120; /* the 120th line is not answered, nor anything after it */
	fake_start(f);
	sh = shipper_start(sp, f->path);
	CHECK_INT("refused", hold_lines(sh, "rec", 400), 0);
	wait_acked(f, 400);
	shipper_stop(&sh, 1000);
	total = seen_total(f);
	for (int i = 0; i < 400; i++) {
		int n;
		snprintf(line, sizeof(line), "rec %d", i);
		n = seen_count(f, line);
		CHECK_INT("received at least once", n >= 1, 1);
		if (i < 119)
			CHECK_INT("an answered record is not sent again", n, 1);
		dups += n - 1;
	}
	CHECK_INT("lines received", total, 400 + dups);
	finish(f, &sp);
}

static void
test_hold_limit_and_whole_lines(void **state)
{
	struct fake *f = fake_new();
	struct spool *sp = open_spool();
	struct shipper *sh = shipper_start(sp, f->path); /* statusd away */
	char rec[1024];
	size_t held = 0, last = 0;
	int taken = 0;

	(void)state;
	memset(rec, 'x', sizeof(rec) - 1);
	rec[sizeof(rec) - 1] = '\n';
	while (shipper_hold(sh, rec, sizeof(rec), &held) == 0) {
		taken++;
		last = held;
		assert_true(taken <= 2048);
	}
	CHECK_INT("records of 1 KiB held", taken, 1024);
	CHECK_INT("bytes held", last, 1024 * 1024);
	CHECK_INT("bytes held when refused", held, 1024 * 1024);
	CHECK_INT("no newline", shipper_hold(sh, "abc", 3, &held), -1);
	CHECK_INT("nothing", shipper_hold(sh, "", 0, &held), -1);
	/* stopped with statusd still away: everything held goes to the spool */
	shipper_stop(&sh, 100);
	spool_close(&sp);
	sp = open_spool();
	{
		struct mbuf out = MBUF_INIT;
		struct spool_pos pos;
		const char *error;
		int n = 0;
		while (spool_read(sp, &out, &pos, &error) == 1) {
			CHECK_INT("record length", out.len, sizeof(rec));
			n++;
		}
		CHECK_INT("records in the spool after the stop", n, 1024);
		mbuf_free(&out);
	}
	spool_close(&sp);
	fake_free(f);
	check_done();
}

/* Is the spool's notification descriptor readable now? Clears it if so. */
static bool
notified(struct spool *sp)
{
	struct pollfd pfd = {.fd = spool_notify_fd(sp), .events = POLLIN};
	bool yes = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);

	if (yes)
		spool_notify_clear(sp);
	return yes;
}

static void
test_spool_signals_only_when_armed(void **state)
{
	struct spool *sp = open_spool();
	struct mbuf out = MBUF_INIT;
	struct spool_pos pos;
	const char *error;

	(void)state;
	CHECK_INT("a new spool: nothing to signal yet", notified(sp), 0);
	CHECK_INT("arm, nothing unread", spool_notify_arm(sp), 1);
	assert_int_equal(spool_append(sp, "a\n", 2, &error), 0);
	CHECK_INT("the append after arming signals", notified(sp), 1);
	assert_int_equal(spool_append(sp, "b\n", 2, &error), 0);
	CHECK_INT("an append when not armed does not", notified(sp), 0);
	CHECK_INT("arm with two records unread", spool_notify_arm(sp), 0);
	assert_int_equal(spool_append(sp, "c\n", 2, &error), 0);
	CHECK_INT("an arming that failed arms nothing", notified(sp), 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT("read", spool_read(sp, &out, &pos, &error), 1);
	CHECK_INT("read all", spool_read(sp, &out, &pos, &error), 0);
	CHECK_INT("arm after reading everything", spool_notify_arm(sp), 1);
	spool_wakeup(sp);
	CHECK_INT("a wakeup signals whatever the arming", notified(sp), 1);
	assert_int_equal(spool_append(sp, "d\n", 2, &error), 0);
	CHECK_INT("still armed after the wakeup: the append signals", notified(sp), 1);
	mbuf_free(&out);
	spool_close(&sp);
	check_done();
}

/* Bytes past the spool's idea of its end (a failed append whose undo failed too) make the
   visible tail of the write segment no whole record: the reader takes it as read, and
   arms, instead of being told to read again and again (a spin); a later append still
   signals. */
static void
test_spool_arms_over_a_torn_tail(void **state)
{
	struct spool *sp = open_spool();
	struct mbuf out = MBUF_INIT;
	struct spool_pos pos;
	const char *error;
	char path[600], seg[1024] = "";
	struct dirent *de;
	DIR *d;
	int fd;

	(void)state;
	assert_int_equal(spool_append(sp, "a\n", 2, &error), 0);
	CHECK_INT("read", spool_read(sp, &out, &pos, &error), 1);
	snprintf(path, sizeof(path), "%s/spool", dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".spool") != NULL)
			snprintf(seg, sizeof(seg), "%s/%s", path, de->d_name);
	closedir(d);
	assert_true((fd = open(seg, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, "xx", 2), 2);
	close(fd);
	assert_int_equal(spool_append(sp, "b\n", 2, &error), 0);
	CHECK_INT("the tail is no whole record", spool_read(sp, &out, &pos, &error), 0);
	CHECK_INT("arm over the torn tail", spool_notify_arm(sp), 1);
	assert_int_equal(spool_append(sp, "c\n", 2, &error), 0);
	CHECK_INT("the next append signals", notified(sp), 1);
	mbuf_free(&out);
	spool_close(&sp);
	check_done();
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_waiting_shipper_takes_the_next_record_at_once(void **state)
{
	struct fake *f = fake_new();
	struct spool *sp = open_spool();
	struct shipper *sh;
	const char *error;
	char line[64];
	int64_t start;

	(void)state;
	fake_start(f);
	sh = shipper_start(sp, f->path);
	assert_int_equal(spool_append(sp, "first\n", 6, &error), 0);
	wait_acked(f, 1);
	/* ten records, each after the shipper has gone idle: if only its idle timeout (1 s)
	   woke it, they would take some 9 s */
	start = now_ms();
	for (int i = 0; i < 10; i++) {
		int len = snprintf(line, sizeof(line), "next %d\n", i);
		usleep(50000);
		assert_int_equal(spool_append(sp, line, (size_t)len, &error), 0);
		wait_acked(f, 2 + i);
	}
	CHECK_INT("ten records, each shipped within the same second", now_ms() - start < 4000, 1);
	shipper_stop(&sh, 1000);
	check_once(f, "next", 10);
	finish(f, &sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_held_and_spooled_arrive_once, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_held_wait_for_statusd, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_broken_connection_resends_the_unanswered,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hold_limit_and_whole_lines, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_spool_signals_only_when_armed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_spool_arms_over_a_torn_tail, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_waiting_shipper_takes_the_next_record_at_once,
	                                        setup, teardown),
	};

	msg_open("test_shipper", MSG_TARGET_STDERR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
