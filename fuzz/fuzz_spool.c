/*
 * fuzz_spool - libFuzzer target for the milter's spool as read back from disk after a crash
 * or a hand edit (lib/spool.c): the cursor file and closed segments are untrusted.
 *
 * The input's first line is the cursor file; the rest is split at "\0\0" into up to three
 * segments (0000000001.spool ...). The spool is opened in a directory under TMPDIR (or
 * /dev/shm, in memory) that is emptied for each input, every record is read and committed,
 * one record is appended and must be read back exactly, and the spool is reopened (the
 * cursor written by the commit must be accepted).
 *
 * Invariants: every record read ends in a newline and holds no other; reading ends (no
 * endless loop over a cursor past the end); what was appended is read back after everything
 * the segments held.
 *
 * The directory is removed at exit (a crash leaves it, with the spool of the input that
 * crashed).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEGS    3
#define MAX_RECORDS 100000

static char dir[256];

static void
write_file(const char *name, const void *p, size_t len)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		abort();
	if (len > 0 && write(fd, p, len) != (ssize_t)len)
		abort();
	close(fd);
}

static void
empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[600];

	if (d == NULL)
		abort();
	while ((de = readdir(d)) != NULL) {
		/* the lock file holds nothing: keep it rather than make it anew */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

/* At exit, the directory goes: fork mode (fuzz/run -j) starts a process per job. */
static void
remove_dir(void)
{
	char path[600];

	empty_dir();
	snprintf(path, sizeof(path), "%s/lock", dir);
	unlink(path);
	rmdir(dir);
}

/* Read everything there is; the last record read into last (if any). Returns the count. */
static long
drain(struct spool *sp, struct mbuf *last)
{
	struct mbuf rec = MBUF_INIT;
	struct spool_pos pos;
	const char *error;
	long n = 0;
	int r;

	while ((r = spool_read(sp, &rec, &pos, &error)) == 1) {
		if (rec.len == 0 || rec.data[rec.len - 1] != '\n' ||
		    memchr(rec.data, '\n', rec.len - 1) != NULL)
			abort();
		if (++n > MAX_RECORDS)
			abort(); /* more records than bytes: reading loops */
		mbuf_reset(last);
		mbuf_append(last, rec.data, rec.len);
		if (spool_commit(sp, &pos, &error) < 0)
			break;
	}
	mbuf_free(&rec);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char probe[] = "{\"probe\":1}\n";
	const uint8_t *p = data, *end = data + size, *nl;
	struct mbuf last = MBUF_INIT;
	struct spool *sp;
	const char *error;

	if (dir[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		msg_open("fuzz_spool", MSG_TARGET_SYSLOG, LOG_LOCAL7); /* warnings are expected */
		setenv("TZ", "UTC", 0); /* syslog(3) need not read /etc/localtime per warning */
		snprintf(dir, sizeof(dir), "%s/fuzz_spool.XXXXXX",
		         tmp ? tmp : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"));
		if (mkdtemp(dir) == NULL)
			abort();
		atexit(remove_dir);
	}
	empty_dir();
	nl = memchr(p, '\n', size);
	write_file("cursor", p, nl ? (size_t)(nl - p + 1) : size);
	p = nl ? nl + 1 : end;
	for (int i = 1; i <= MAX_SEGS && p < end; i++) {
		const uint8_t *sep = p;
		char name[32];
		while (sep + 1 < end && !(sep[0] == 0 && sep[1] == 0))
			sep++;
		if (sep + 1 >= end)
			sep = end;
		snprintf(name, sizeof(name), "%010d.spool", i);
		write_file(name, p, (size_t)(sep - p));
		p = sep < end ? sep + 2 : end;
	}

	if ((sp = spool_open(dir, 1 << 20, 1 << 24, false, &error)) == NULL)
		abort(); /* whatever the files hold, the spool opens */
	drain(sp, &last);
	if (spool_append(sp, probe, sizeof(probe) - 1, &error) < 0)
		abort();
	mbuf_reset(&last);
	drain(sp, &last);
	if (last.len != sizeof(probe) - 1 || memcmp(last.data, probe, last.len) != 0)
		abort(); /* the appended record is read back, last */
	spool_close(&sp);

	/* reopened: everything was committed, nothing is read again */
	if ((sp = spool_open(dir, 1 << 20, 1 << 24, false, &error)) == NULL)
		abort();
	mbuf_reset(&last);
	if (drain(sp, &last) != 0)
		abort();
	spool_close(&sp);
	mbuf_free(&last);
	return 0;
}
