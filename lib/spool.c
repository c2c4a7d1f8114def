/*
 * spool - durable journal of event records with a delivery cursor. See spool.h.
 *
 * Hand-written: what is needed is a few hundred lines of append/read/cursor over plain
 * files with the crash behaviour spelled out above; an embedded database (LMDB, SQLite)
 * would add a dependency and fsync costs to the milter's hot path for no gain.
 *
 * SECURITY
 *	The spool directory is private to the milter's user (0700, files 0600). Records read
 *	back are re-validated by statusd like any other input.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"

#define READ_CHUNK        65536
#define LINE_MAX_BYTES    (1024 * 1024) /* longer is corruption */
#define CURSOR_PERSIST_MS 100
#define SEGMENT_NAME_FMT  "%010" PRIu64 ".spool"

struct segment {
	uint64_t seg;
	uint64_t size;
};

struct spool {
	char *dir;
	int dirfd, lockfd;
	uint64_t segment_max, total_max;
	bool sync_each;
	pthread_mutex_t lock;
	int notify_fd; /* eventfd, readable after an append while armed, or a wakeup */

	/* writer state, under lock */
	int wfd;
	struct segment *segs; /* existing segments, ascending; the last is the write segment */
	size_t nsegs;
	uint64_t total;
	uint64_t appended, rejected;
	bool armed; /* the reader waits for the next append (spool_notify_arm) */

	/* reader state: reader thread only */
	uint64_t rseg, roff;
	uint64_t rstuck_seg, rstuck_end; /* where it found a tail that is no whole record */
	int rfd;
	struct mbuf rbuf; /* file bytes [rbuf_off, rbuf_off + rbuf.len) of rseg */
	uint64_t rbuf_off;

	/* cursor: set by the reader thread under lock (spool_stats reads it) */
	struct spool_pos cursor;
	int64_t cursor_persisted_ms;
};

static int
segment_name(char *buf, size_t size, uint64_t seg)
{
	return snprintf(buf, size, SEGMENT_NAME_FMT, seg);
}

static int
parse_segment_name(const char *name, uint64_t *seg_r)
{
	size_t len = strlen(name);

	if (len != 16 || strcmp(name + 10, ".spool") != 0)
		return -1;
	for (int i = 0; i < 10; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	*seg_r = strtoull(name, NULL, 10);
	return 0;
}

static int
seg_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct segment *)a)->seg, y = ((const struct segment *)b)->seg;
	return x < y ? -1 : x > y;
}

static int
write_cursor(struct spool *sp, const char **error_r)
{
	char buf[64];
	int fd, len;

	len = snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64 "\n", sp->cursor.segment,
	               sp->cursor.offset);
	fd = openat(sp->dirfd, "cursor.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, (size_t)len) != len || fdatasync(fd) < 0 || close(fd) < 0 ||
	    renameat(sp->dirfd, "cursor.tmp", sp->dirfd, "cursor") < 0) {
		*error_r = errfmt("spool %s: write cursor: %s", sp->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sp->cursor_persisted_ms = time_mono_ms();
	return 0;
}

/* Read the cursor file; false if there is none to read (a new spool). */
static bool
read_cursor(struct spool *sp)
{
	char buf[64];
	uint64_t seg, off;
	int fd = openat(sp->dirfd, "cursor", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	sp->cursor.segment = sp->nsegs > 0 ? sp->segs[0].seg : 1;
	sp->cursor.offset = 0;
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	if (sscanf(buf, "%" SCNu64 " %" SCNu64, &seg, &off) == 2 && seg >= sp->cursor.segment) {
		sp->cursor.segment = seg;
		sp->cursor.offset = off;
	}
	return true;
}

/* Create the next write segment. Lock held (or single-threaded at open). */
static int
new_segment(struct spool *sp, const char **error_r)
{
	uint64_t seg = sp->nsegs > 0 ? sp->segs[sp->nsegs - 1].seg + 1 : 1;
	char name[32];
	int fd;

	segment_name(name, sizeof(name), seg);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = errfmt("spool %s: create %s: %s", sp->dir, name, strerror(errno));
		return -1;
	}
	if (sp->wfd >= 0) {
		fdatasync(sp->wfd);
		close(sp->wfd);
	}
	sp->wfd = fd;
	sp->segs = myreallocarray(sp->segs, sp->nsegs + 1, sizeof(*sp->segs));
	sp->segs[sp->nsegs].seg = seg;
	sp->segs[sp->nsegs].size = 0;
	sp->nsegs++;
	fsync(sp->dirfd);
	return 0;
}

struct spool *
spool_open(const char *dir, uint64_t segment_max, uint64_t total_max, bool sync_each,
           const char **error_r)
{
	struct spool *sp = mycalloc(1, sizeof(*sp));
	struct dirent *de;
	bool had_cursor;
	DIR *d;

	sp->dir = mystrdup(dir);
	sp->segment_max = segment_max;
	sp->total_max = total_max;
	sp->sync_each = sync_each;
	sp->wfd = sp->rfd = sp->lockfd = sp->dirfd = -1;
	if ((sp->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		*error_r = errfmt("eventfd: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&sp->lock, NULL);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = errfmt("spool %s: mkdir: %s", dir, strerror(errno));
		goto fail;
	}
	if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		*error_r = errfmt("spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lockfd < 0 || flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
		*error_r = errfmt("spool %s: %s", dir,
		                  errno == EWOULDBLOCK ? "in use by another process"
		                                       : strerror(errno));
		goto fail;
	}
	if ((d = fdopendir(dup(sp->dirfd))) == NULL) {
		*error_r = errfmt("spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		uint64_t seg;

		if (parse_segment_name(de->d_name, &seg) < 0 ||
		    fstatat(sp->dirfd, de->d_name, &st, 0) < 0)
			continue;
		sp->segs = myreallocarray(sp->segs, sp->nsegs + 1, sizeof(*sp->segs));
		sp->segs[sp->nsegs].seg = seg;
		sp->segs[sp->nsegs].size = (uint64_t)st.st_size;
		sp->total += (uint64_t)st.st_size;
		sp->nsegs++;
	}
	closedir(d);
	if (sp->nsegs > 1)
		qsort(sp->segs, sp->nsegs, sizeof(*sp->segs), seg_cmp);
	had_cursor = read_cursor(sp);
	if (new_segment(sp, error_r) < 0)
		goto fail;
	/* (without a cursor file it is the first segment's start already: a new spool) */
	if (had_cursor && sp->cursor.segment >= sp->segs[sp->nsegs - 1].seg) {
		/* past every segment there is (segments removed by hand, a cursor from elsewhere):
		   resend all rather than skip what is written next; ids make resending harmless */
		msg_warn("spool %s: the cursor (segment %" PRIu64 ") is past the last segment; "
		         "resending the whole spool",
		         dir, sp->cursor.segment);
		sp->cursor.segment = sp->segs[0].seg;
		sp->cursor.offset = 0;
	}
	sp->rseg = sp->cursor.segment;
	sp->roff = sp->cursor.offset;
	return sp;
fail:
	spool_close(&sp);
	return NULL;
}

void
spool_close(struct spool **spp)
{
	struct spool *sp = *spp;
	const char *error;

	if (sp == NULL)
		return;
	*spp = NULL;
	if (sp->wfd >= 0) {
		if (sp->lockfd >= 0 && write_cursor(sp, &error) < 0)
			msg_warn("%s", error);
		fdatasync(sp->wfd);
		close(sp->wfd);
	}
	if (sp->rfd >= 0)
		close(sp->rfd);
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	if (sp->notify_fd >= 0)
		close(sp->notify_fd);
	pthread_mutex_destroy(&sp->lock);
	mbuf_free(&sp->rbuf);
	free(sp->segs);
	free(sp->dir);
	free(sp);
}

int
spool_append(struct spool *sp, const char *rec, size_t len, const char **error_r)
{
	struct segment *w;
	size_t done = 0;
	int rc = 0;

	pthread_mutex_lock(&sp->lock);
	if (sp->total + len > sp->total_max) {
		sp->rejected++;
		*error_r = errfmt("spool %s is full (%" PRIu64 " bytes, spool_max_size)", sp->dir,
		                  sp->total);
		rc = -1;
		goto out;
	}
	w = &sp->segs[sp->nsegs - 1];
	if (w->size > 0 && w->size + len > sp->segment_max) {
		if (new_segment(sp, error_r) < 0) {
			rc = -1;
			goto out;
		}
		w = &sp->segs[sp->nsegs - 1];
	}
	while (done < len) {
		ssize_t n = write(sp->wfd, rec + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = errfmt("spool %s: write: %s", sp->dir,
			                  n < 0 ? strerror(errno) : "no progress");
			/* Never leave half a record for the next one to follow. */
			if (ftruncate(sp->wfd, (off_t)w->size) < 0)
				msg_warn("spool %s: cannot undo a partial write: %s", sp->dir,
				         strerror(errno));
			rc = -1;
			goto out;
		}
		done += (size_t)n;
	}
	if (sp->sync_each && fdatasync(sp->wfd) < 0) {
		*error_r = errfmt("spool %s: fdatasync: %s", sp->dir, strerror(errno));
		rc = -1; /* the record is written; report that it may not be durable */
	}
	w->size += len;
	sp->total += len;
	sp->appended++;
	if (sp->armed) {
		sp->armed = false;
		if (write(sp->notify_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
			/* EAGAIN: the counter is already non-zero, the reader will wake */
		}
	}
out:
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

/* Size of segment seg as far as complete records go, or -1 if it is gone. Lock held. */
static int64_t
segment_end(struct spool *sp, uint64_t seg, bool *is_write_r)
{
	for (size_t i = 0; i < sp->nsegs; i++)
		if (sp->segs[i].seg == seg) {
			*is_write_r = i == sp->nsegs - 1;
			return (int64_t)sp->segs[i].size;
		}
	return -1;
}

/* Move the reader to the next existing segment after rseg. Lock held. */
static bool
next_segment(struct spool *sp)
{
	for (size_t i = 0; i < sp->nsegs; i++)
		if (sp->segs[i].seg > sp->rseg) {
			if (sp->rfd >= 0)
				close(sp->rfd);
			sp->rfd = -1;
			sp->rseg = sp->segs[i].seg;
			sp->roff = 0;
			mbuf_reset(&sp->rbuf);
			sp->rbuf_off = 0;
			return true;
		}
	return false;
}

int
spool_read(struct spool *sp, struct mbuf *out, struct spool_pos *pos_r, const char **error_r)
{
	for (;;) {
		bool is_write;
		int64_t end;
		char *nl;

		pthread_mutex_lock(&sp->lock);
		end = segment_end(sp, sp->rseg, &is_write);
		if (end < 0 || (!is_write && sp->roff >= (uint64_t)end)) {
			bool moved = next_segment(sp);
			pthread_mutex_unlock(&sp->lock);
			if (!moved)
				return 0;
			continue;
		}
		pthread_mutex_unlock(&sp->lock);
		if (sp->roff >= (uint64_t)end)
			return 0; /* caught up with the writer */

		/* Is a whole line in the buffer? */
		if (sp->roff >= sp->rbuf_off && sp->roff < sp->rbuf_off + sp->rbuf.len) {
			size_t start = (size_t)(sp->roff - sp->rbuf_off);
			nl = memchr(sp->rbuf.data + start, '\n', sp->rbuf.len - start);
			if (nl != NULL) {
				size_t len = (size_t)(nl - (sp->rbuf.data + start)) + 1;
				mbuf_reset(out);
				mbuf_append(out, sp->rbuf.data + start, len);
				sp->roff += len;
				pos_r->segment = sp->rseg;
				pos_r->offset = sp->roff;
				return 1;
			}
			if (sp->rbuf.len - start > LINE_MAX_BYTES ||
			    (!is_write && sp->rbuf_off + sp->rbuf.len >= (uint64_t)end)) {
				/* A torn or corrupt tail in a closed segment: skip the rest. */
				msg_warn("spool %s: segment %" PRIu64
				         " ends in an incomplete record "
				         "at offset %" PRIu64 "; skipping it",
				         sp->dir, sp->rseg, sp->roff);
				sp->roff = (uint64_t)end;
				continue;
			}
		}
		/* Refill from roff. */
		if (sp->rfd < 0) {
			char name[32];
			segment_name(name, sizeof(name), sp->rseg);
			sp->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
			if (sp->rfd < 0) {
				*error_r = errfmt("spool %s: open %s: %s", sp->dir, name,
				                  strerror(errno));
				return -1;
			}
		}
		if (!(sp->roff >= sp->rbuf_off && sp->roff <= sp->rbuf_off + sp->rbuf.len)) {
			mbuf_reset(&sp->rbuf);
			sp->rbuf_off = sp->roff;
		} else if (sp->roff > sp->rbuf_off) {
			mbuf_consume(&sp->rbuf, (size_t)(sp->roff - sp->rbuf_off));
			sp->rbuf_off = sp->roff;
		}
		uint64_t want_to = (uint64_t)end;
		uint64_t have_to = sp->rbuf_off + sp->rbuf.len;
		if (have_to >= want_to) {
			/* all of the write segment is read but a tail that is not a whole
			   record (what a failed append left): spool_notify_arm() takes it as
			   read until the segment grows */
			sp->rstuck_seg = sp->rseg;
			sp->rstuck_end = want_to;
			return 0;
		}
		size_t want = (size_t)(want_to - have_to);
		if (want > READ_CHUNK)
			want = READ_CHUNK;
		mbuf_reserve(&sp->rbuf, want);
		ssize_t n = pread(sp->rfd, sp->rbuf.data + sp->rbuf.len, want, (off_t)have_to);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = errfmt("spool %s: read: %s", sp->dir, strerror(errno));
			return -1;
		}
		if (n == 0) {
			/* the segment is shorter than recorded (truncated by hand?) */
			msg_warn("spool %s: segment %" PRIu64 " is shorter than expected", sp->dir,
			         sp->rseg);
			sp->roff = (uint64_t)end;
			continue;
		}
		sp->rbuf.len += (size_t)n;
		sp->rbuf.data[sp->rbuf.len] = '\0';
	}
}

int
spool_notify_fd(struct spool *sp)
{
	return sp->notify_fd;
}

void
spool_notify_clear(struct spool *sp)
{
	uint64_t v;

	if (read(sp->notify_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing pending */
	}
}

bool
spool_notify_arm(struct spool *sp)
{
	const struct segment *w;
	bool unread;

	pthread_mutex_lock(&sp->lock);
	w = &sp->segs[sp->nsegs - 1];
	unread = sp->rseg < w->seg || (sp->rseg == w->seg && sp->roff < w->size &&
	                               !(sp->rstuck_seg == w->seg && sp->rstuck_end == w->size));
	sp->armed = !unread;
	pthread_mutex_unlock(&sp->lock);
	return !unread;
}

void
spool_wakeup(struct spool *sp)
{
	if (write(sp->notify_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
		/* EAGAIN: already readable */
	}
}

int
spool_commit(struct spool *sp, const struct spool_pos *pos, const char **error_r)
{
	size_t drop = 0;

	pthread_mutex_lock(&sp->lock);
	sp->cursor = *pos;
	/* Segments wholly before the cursor are done. The write segment never is. */
	while (drop < sp->nsegs - 1 && sp->segs[drop].seg < pos->segment)
		drop++;
	pthread_mutex_unlock(&sp->lock);
	if (drop == 0 && time_mono_ms() - sp->cursor_persisted_ms < CURSOR_PERSIST_MS)
		return 0;
	/* Persist the cursor (and the records up to it) before deleting what it passed. */
	if (sp->wfd >= 0 && !sp->sync_each)
		fdatasync(sp->wfd);
	if (write_cursor(sp, error_r) < 0)
		return -1;
	if (drop == 0)
		return 0;
	pthread_mutex_lock(&sp->lock);
	for (size_t i = 0; i < drop; i++) {
		char name[32];
		segment_name(name, sizeof(name), sp->segs[i].seg);
		if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
			msg_warn("spool %s: remove %s: %s", sp->dir, name, strerror(errno));
		sp->total -= sp->segs[i].size;
	}
	memmove(sp->segs, sp->segs + drop, (sp->nsegs - drop) * sizeof(*sp->segs));
	sp->nsegs -= drop;
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

void
spool_rewind(struct spool *sp)
{
	if (sp->rseg != sp->cursor.segment && sp->rfd >= 0) {
		close(sp->rfd);
		sp->rfd = -1;
		mbuf_reset(&sp->rbuf);
		sp->rbuf_off = 0;
	}
	sp->rseg = sp->cursor.segment;
	sp->roff = sp->cursor.offset;
}

void
spool_stats(struct spool *sp, struct spool_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&sp->lock);
	out->bytes = sp->total;
	out->segments = (unsigned)sp->nsegs;
	out->appended = sp->appended;
	out->rejected = sp->rejected;
	for (size_t i = 0; i < sp->nsegs; i++) {
		if (sp->segs[i].seg < sp->cursor.segment)
			continue;
		out->backlog += sp->segs[i].size;
		if (sp->segs[i].seg == sp->cursor.segment)
			out->backlog -= sp->cursor.offset < sp->segs[i].size ? sp->cursor.offset
			                                                     : sp->segs[i].size;
	}
	pthread_mutex_unlock(&sp->lock);
}
