/*
 * follow - read a log file as it grows, across rotation and truncation, and remember how
 * far it was read so that a restart neither loses nor repeats lines.
 *
 * DESIGN
 *	The position (inode and byte offset just after the last line handed out) is kept in
 *	a state file, written atomically (tmp + rename) by follow_save(). The caller saves
 *	only after what it made of the lines is safe (msgstatus-logd: appended to its spool),
 *	so after a crash lines are read again at worst — never skipped.
 *
 *	Rotation: when the path names a new file, the old one is read to its end before
 *	switching, and the new one is read from its start; the switch waits until the new
 *	file has data or the old one is deleted, because a writer that has not reopened yet
 *	still appends to the old file. At start-up, if the path no longer
 *	names the file of the saved position, the rotated file is looked for by inode among
 *	the files in the same directory whose names start with the log's name (Postfix's
 *	"postfix logrotate" renames maillog to maillog.YYYYMMDD-HHMMSS), its rest is read
 *	first. A rotated file that was compressed meanwhile cannot be found: that is logged
 *	as a loss. Truncation (the file shrank below the position): read again from the start.
 *	Only complete lines (ending in a newline) are handed out; a line longer than
 *	FOLLOW_LINE_MAX is cut there.
 *
 *	The caller polls follow_fd() (inotify on the directory) and also calls follow_read()
 *	now and then, in case a notification was missed.
 */
#ifndef FOLLOW_H
#define FOLLOW_H

#include <stdbool.h>
#include <stddef.h>

#define FOLLOW_LINE_MAX 65536

struct follow;

typedef void follow_line_cb(void *ctx, const char *line, size_t len);

/* Open path and resume from the position in state_file (which may not exist yet). */
struct follow *follow_open(const char *path, const char *state_file, const char **error_r);
void follow_close(struct follow **f);
/* A descriptor that becomes readable when the directory changes (inotify). */
int follow_fd(const struct follow *f);
/*
 * Drain notifications, read complete lines (a few MiB at most) and hand them to cb.
 * Returns 1 if more is waiting (call again soon), 0 if at the end, -1 on error.
 */
int follow_read(struct follow *f, follow_line_cb *cb, void *ctx, const char **error_r);
/* Persist the position after the last line handed out. 0 or -1. */
int follow_save(struct follow *f, const char **error_r);

#endif
