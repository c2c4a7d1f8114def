/*
 * pickup - statusd reads the event files producers left in the pickup directory (see
 * lib/dropfile.h): the Dovecot plugin writes there what statusd could not acknowledge.
 *
 * DESIGN
 *	Loop thread. One file at a time, oldest name first: read it whole, feed it to the
 *	ingest pipeline as a source, and delete it once every record has its answer (stored,
 *	or rejected for good — rejections are logged). A crash before the delete means the
 *	file is read again; its events are then acknowledged as duplicates. The directory is
 *	scanned at start, every pickup_interval, and whenever inotify reports a new file.
 *	A ".open-" file that no process holds locked any more (its writer ended before it
 *	could rename it) is renamed to its final name at a scan, and read like the others;
 *	an empty one is removed.
 *
 * SECURITY
 *	The files are written by mail processes, so they are untrusted input: only regular
 *	files (no symlinks) up to PICKUP_FILE_MAX are read, and every record goes through the
 *	same validation as socket input. A file that cannot be read is renamed aside
 *	(".bad-NAME") so that it is not retried forever.
 */
#include "pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat2() */
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dropfile.h"
#include "ingest.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "sdconfig.h"

#define PICKUP_FILE_MAX (64 * 1024 * 1024)
#define NAME_MAX_LEN    255

struct pickup {
	uv_loop_t *loop;
	struct ingest *ing;
	char *dir;
	uv_timer_t timer;
	uv_fs_event_t watch;
	bool watching, busy, stopping, warned_missing;
	char current[NAME_MAX_LEN + 1];
	char adopt_failed[NAME_MAX_LEN + 1]; /* the last ".open-" file it could not open */
	unsigned handles;
};

static void pickup_scan(struct pickup *p);

static void
set_aside(struct pickup *p, const char *name, const char *why)
{
	char from[4096], to[4096];

	snprintf(from, sizeof(from), "%s/%s", p->dir, name);
	snprintf(to, sizeof(to), "%s/.bad-%s", p->dir, name);
	msg_error("pickup: %s: %s; renamed to .bad-%s", from, why, name);
	if (rename(from, to) < 0)
		msg_error("pickup: rename %s: %s", from, strerror(errno));
}

static void
on_file_done(void *ctx, unsigned acked, unsigned rejected)
{
	struct pickup *p = ctx;
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", p->dir, p->current);
	if (unlink(path) < 0 && errno != ENOENT)
		msg_error("pickup: remove %s: %s", path, strerror(errno));
	if (rejected > 0)
		msg_warn("pickup: %s: %u events stored, %u rejected", p->current, acked, rejected);
	else
		msg_info("pickup: %s: %u events stored", p->current, acked);
	p->busy = false;
	p->current[0] = '\0';
	if (!p->stopping)
		pickup_scan(p);
}

/* Read name whole; 0, or -1 after setting it aside. */
static int
read_file(struct pickup *p, const char *name, struct mbuf *out)
{
	char path[4096], chunk[65536];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return -1; /* gone meanwhile */
		set_aside(p, name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PICKUP_FILE_MAX) {
		close(fd);
		set_aside(p, name,
		          S_ISREG(st.st_mode) ? "larger than 64 MiB" : "not a regular file");
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		mbuf_append(out, chunk, (size_t)n);
		if (out->len > PICKUP_FILE_MAX)
			break;
	}
	close(fd);
	if (n < 0) {
		set_aside(p, name, strerror(errno));
		return -1;
	}
	return 0;
}

/* rename(2) that replaces nothing: -1 with EEXIST if to exists. */
static int
rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* a file system without RENAME_NOREPLACE: link() replaces nothing either */
	if (link(from, to) < 0)
		return -1;
	return unlink(from);
}

/*
 * A ".open-NAME" file is one a producer appends to while it holds a lock on it (flock), and
 * renames to NAME when done. One whose lock is free was left by a process that ended
 * before it could rename it (a crash): rename it to NAME, under the lock, so that it is
 * read like the others. Its records are whole lines, each transaction's written at once;
 * the producer checks after taking the lock that the file is still its own. The final
 * name, or NULL if the file is someone's still.
 */
static const char *
adopt(struct pickup *p, const char *name)
{
	const char *final = name + sizeof(DROPFILE_OPEN_PREFIX) - 1;
	char from[4096], to[4096];
	struct stat st, path_st;
	const char *ret = NULL;
	int fd;

	snprintf(from, sizeof(from), "%s/%s", p->dir, name);
	snprintf(to, sizeof(to), "%s/%s", p->dir, final);
	if ((fd = open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		/* gone meanwhile (renamed by its writer): nothing to say; else once per name */
		if (errno != ENOENT && strcmp(p->adopt_failed, name) != 0) {
			msg_error("pickup: open %s: %s; it is read once statusd may open it", from,
			          strerror(errno));
			snprintf(p->adopt_failed, sizeof(p->adopt_failed), "%s", name);
		}
		return NULL;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    stat(from, &path_st) == 0 && st.st_ino == path_st.st_ino &&
	    st.st_dev == path_st.st_dev) {
		/* an empty one holds nothing to read: its writer was refused its lock (this
		   scan held it) or could not write; a writer that gets the lock after this
		   finds the name gone and makes another */
		if (st.st_size == 0) {
			if (unlink(from) < 0 && errno != ENOENT)
				msg_error("pickup: unlink %s: %s", from, strerror(errno));
		}
		/* never over a NAME that is there (another producer's, not read yet: this
		   one is adopted at a later scan, once that one is read and gone) */
		else if (rename_noreplace(from, to) < 0)
			msg_error("pickup: rename %s to %s: %s", from, final, strerror(errno));
		else {
			msg_warn("pickup: %s was left open by a process that ended; reading it as "
			         "%s",
			         name, final);
			ret = final;
		}
	}
	close(fd);
	return ret;
}

/* Start on the oldest complete file, if any and if idle. */
static void
pickup_scan(struct pickup *p)
{
	char best[NAME_MAX_LEN + 1] = "";
	struct mbuf data = MBUF_INIT;
	struct dirent *de;
	DIR *d;

	if (p->busy || p->stopping)
		return;
	if ((d = opendir(p->dir)) == NULL) {
		if (!p->warned_missing)
			msg_warn("pickup: %s: %s; events the Dovecot plugin could not send will "
			         "wait "
			         "there until it exists",
			         p->dir, strerror(errno));
		p->warned_missing = true;
		return;
	}
	p->warned_missing = false;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;

		if (dropfile_open_name_ok(name) && strlen(name) <= NAME_MAX_LEN)
			name = adopt(p, name);
		if (name != NULL && dropfile_name_ok(name) && strlen(name) <= NAME_MAX_LEN &&
		    (best[0] == '\0' || strcmp(name, best) < 0))
			snprintf(best, sizeof(best), "%s", name);
	}
	closedir(d);
	if (best[0] == '\0')
		return;
	if (read_file(p, best, &data) < 0) {
		mbuf_free(&data);
		pickup_scan(p);
		return;
	}
	p->busy = true;
	snprintf(p->current, sizeof(p->current), "%s", best);
	ingest_source_start(p->ing, best, mbuf_str(&data), data.len, on_file_done, p);
	mbuf_free(&data);
}

static void
on_timer(uv_timer_t *t)
{
	struct pickup *p = t->data;

	if (!p->watching && !p->stopping)
		pickup_watch_start(p);
	pickup_scan(p);
}

static void
on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
	struct pickup *p = handle->data;

	if (status == 0 && filename != NULL && dropfile_name_ok(filename))
		pickup_scan(p);
}

void
pickup_watch_start(struct pickup *p)
{
	if (p->watching || uv_fs_event_start(&p->watch, on_fs_event, p->dir, 0) != 0)
		return;
	p->watching = true;
}

struct pickup *
pickup_start(uv_loop_t *loop, const struct sd_config *cfg, struct ingest *ing)
{
	struct pickup *p;

	if (cfg->pickup_dir[0] == '\0')
		return NULL;
	p = mycalloc(1, sizeof(*p));
	p->dir = mystrdup(cfg->pickup_dir);
	p->loop = loop;
	p->ing = ing;
	uv_timer_init(loop, &p->timer);
	uv_fs_event_init(loop, &p->watch);
	p->timer.data = p->watch.data = p;
	p->handles = 2;
	pickup_watch_start(p);
	uv_timer_start(&p->timer, on_timer, 0, (uint64_t)cfg->pickup_interval);
	return p;
}

static void
on_closed(uv_handle_t *handle)
{
	struct pickup *p = handle->data;

	if (--p->handles == 0) {
		free(p->dir);
		free(p);
	}
}

void
pickup_stop(struct pickup *p)
{
	if (p == NULL)
		return;
	p->stopping = true;
	uv_timer_stop(&p->timer);
	if (p->watching)
		uv_fs_event_stop(&p->watch);
	p->watching = false;
}

void
pickup_free(struct pickup **pp)
{
	struct pickup *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	pickup_stop(p);
	uv_close((uv_handle_t *)&p->timer, on_closed);
	uv_close((uv_handle_t *)&p->watch, on_closed);
}
