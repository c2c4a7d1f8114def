/*
 * follow - read a growing, rotating log file and remember the position. See follow.h.
 *
 * Hand-written: tail -F and friends lose or repeat lines across restarts; what is needed is
 * a small state machine over inotify, fstat and a durable position.
 *
 * SECURITY
 *	The log's lines are untrusted input for the caller; here they are only split and
 *	bounded. The state file belongs to msgstatus-logd's user.
 */
#include "follow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"

#define READ_CHUNK  (256 * 1024)
#define READ_BUDGET (4 * 1024 * 1024) /* bytes per follow_read(): bounds the caller's batch */

struct follow {
	char *path, *dir, *base, *state_file;
	int fd;          /* the file being read, -1 if none yet */
	ino_t ino;       /* its inode */
	off_t pos;       /* offset just after the last complete line handed out */
	off_t read_off;  /* offset up to which bytes are in buf */
	struct mbuf buf; /* bytes read past pos (an incomplete line) */
	bool skipping;   /* inside an overlong line whose first part was handed out */
	int ifd;         /* inotify */
};

static int
open_at(struct follow *f, const char *path, off_t pos)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	if (pos > st.st_size)
		pos = 0; /* truncated while we were away */
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
	f->ino = st.st_ino;
	f->pos = f->read_off = pos;
	f->skipping = false;
	mbuf_reset(&f->buf);
	return 0;
}

/* Find, in the log's directory, the rotated file with inode ino. */
static char *
find_rotated(struct follow *f, ino_t ino)
{
	size_t blen = strlen(f->base);
	struct dirent *de;
	char *found = NULL;
	DIR *d = opendir(f->dir);

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (strncmp(de->d_name, f->base, blen) != 0 || strcmp(de->d_name, f->base) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		if (stat(path, &st) == 0 && st.st_ino == ino) {
			found = strdup(path);
			break;
		}
	}
	closedir(d);
	return found;
}

struct follow *
follow_open(const char *path, const char *state_file, const char **error_r)
{
	struct follow *f = mycalloc(1, sizeof(*f));
	unsigned long long ino = 0, pos = 0;
	char *tmp;
	FILE *fp;

	f->path = mystrdup(path);
	f->state_file = mystrdup(state_file);
	tmp = mystrdup(path);
	f->dir = mystrdup(dirname(tmp));
	free(tmp);
	tmp = mystrdup(path);
	f->base = mystrdup(basename(tmp));
	free(tmp);
	f->fd = -1;
	if ((f->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(f->ifd, f->dir,
	                      IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
	                              IN_CLOSE_WRITE) < 0) {
		*error_r = errfmt("watch %s: %s", f->dir, strerror(errno));
		follow_close(&f);
		return NULL;
	}
	if ((fp = fopen(state_file, "r")) != NULL) {
		if (fscanf(fp, "%llu %llu", &ino, &pos) != 2)
			ino = pos = 0;
		fclose(fp);
	}
	if (ino != 0) {
		struct stat st;
		if (stat(path, &st) == 0 && st.st_ino == (ino_t)ino) {
			if (open_at(f, path, (off_t)pos) < 0)
				msg_warn("%s: %s", path, strerror(errno));
		} else {
			char *rotated = find_rotated(f, (ino_t)ino);
			if (rotated != NULL) {
				msg_info("%s was rotated while stopped: reading the rest of %s "
				         "first",
				         path, rotated);
				if (open_at(f, rotated, (off_t)pos) < 0)
					msg_warn("%s: %s", rotated, strerror(errno));
				free(rotated);
			} else
				msg_warn(
				        "%s was rotated while stopped and the old file is gone "
				        "(compressed?): lines logged after position %llu of it are "
				        "lost; reading %s from its start",
				        path, pos, path);
		}
	}
	if (f->fd < 0 && open_at(f, path, 0) < 0 && errno != ENOENT)
		msg_warn("%s: %s (will retry)", path, strerror(errno));
	return f;
}

void
follow_close(struct follow **fp)
{
	struct follow *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	if (f->fd >= 0)
		close(f->fd);
	if (f->ifd >= 0)
		close(f->ifd);
	mbuf_free(&f->buf);
	free(f->path);
	free(f->dir);
	free(f->base);
	free(f->state_file);
	free(f);
}

int
follow_fd(const struct follow *f)
{
	return f->ifd;
}

/* Hand out the complete lines in buf. */
static void
emit(struct follow *f, follow_line_cb *cb, void *ctx)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(f->buf.data + start, '\n', f->buf.len - start);
		size_t len;

		if (nl == NULL) {
			if (f->skipping) {
				f->pos += (off_t)(f->buf.len - start);
				start = f->buf.len;
			} else if (f->buf.len - start >= FOLLOW_LINE_MAX) {
				/* an overlong line: hand out its first part, skip the rest */
				cb(ctx, f->buf.data + start, FOLLOW_LINE_MAX);
				f->pos += (off_t)(f->buf.len - start);
				start = f->buf.len;
				f->skipping = true;
			}
			break;
		}
		len = (size_t)(nl - (f->buf.data + start));
		if (f->skipping)
			f->skipping = false; /* the end of the overlong line */
		else
			cb(ctx, f->buf.data + start, len > FOLLOW_LINE_MAX ? FOLLOW_LINE_MAX : len);
		f->pos += (off_t)(len + 1);
		start += len + 1;
	}
	mbuf_consume(&f->buf, start);
}

/* Read our file up to budget bytes. 1: more is there, 0: at its end, -1: error. */
static int
drain(struct follow *f, follow_line_cb *cb, void *ctx, size_t *budget, const char **error_r)
{
	struct stat st;

	if (f->fd < 0)
		return 0;
	if (fstat(f->fd, &st) == 0 && st.st_size < f->read_off) {
		msg_warn("%s was truncated: reading it again from the start", f->path);
		f->pos = f->read_off = 0;
		f->skipping = false;
		mbuf_reset(&f->buf);
	}
	for (;;) {
		ssize_t n;

		if (*budget == 0)
			return 1;
		mbuf_reserve(&f->buf, READ_CHUNK);
		n = pread(f->fd, f->buf.data + f->buf.len, READ_CHUNK, f->read_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = errfmt("read %s: %s", f->path, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		f->buf.len += (size_t)n;
		f->buf.data[f->buf.len] = '\0';
		f->read_off += n;
		*budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
		emit(f, cb, ctx);
	}
}

int
follow_read(struct follow *f, follow_line_cb *cb, void *ctx, const char **error_r)
{
	char events[4096];
	size_t budget = READ_BUDGET;
	struct stat st, cur;
	int r;

	while (read(f->ifd, events, sizeof(events)) > 0)
		; /* the notifications only say "look again" */
	if ((r = drain(f, cb, ctx, &budget, error_r)) != 0)
		return r;
	/*
	 * Has the path moved on to a new file (rotation), or does it exist at last? Switch
	 * only once the writer has: the new file has data, or the old one is deleted. Until
	 * then a writer that has not reopened yet still appends to the old file.
	 */
	if (stat(f->path, &st) != 0 || (f->fd >= 0 && st.st_ino == f->ino))
		return 0;
	if (f->fd >= 0) {
		if (st.st_size == 0 && fstat(f->fd, &cur) == 0 && cur.st_nlink > 0)
			return 0;
		if (f->buf.len > 0)
			msg_warn("%s: the rotated file ends in an incomplete line (dropped)",
			         f->path);
		msg_info("%s was rotated: following the new file", f->path);
	}
	if (open_at(f, f->path, 0) < 0) {
		*error_r = errfmt("open %s: %s", f->path, strerror(errno));
		return -1;
	}
	return drain(f, cb, ctx, &budget, error_r);
}

int
follow_save(struct follow *f, const char **error_r)
{
	char tmp[4096], line[64];
	int fd, len;

	if (f->fd < 0)
		return 0;
	len = snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)f->ino,
	               (unsigned long long)f->pos);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->state_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)len) != len || fdatasync(fd) < 0 || close(fd) < 0 ||
	    rename(tmp, f->state_file) < 0) {
		*error_r = errfmt("save position in %s: %s", f->state_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}
