/*
 * dropfile - the files producers hand events to statusd in, through a directory (Postfix's
 * maildrop/pickup pattern): which names statusd reads.
 *
 * Producers that live in short-lived processes (the Dovecot plugin) cannot wait for
 * statusd to come back. They write the records statusd did not acknowledge into a new file
 * in a pickup directory, and statusd reads, stores and deletes such files. A file appears
 * under its final name only when complete (written as ".tmp-*", then renamed), so statusd
 * never reads half a file. The Dovecot plugin writes them with code of its own (it does
 * not link lib/); statusd's pickup.c reads them.
 *
 * A producer may also append to a file while it holds a lock on it (flock(LOCK_EX)), under
 * the name ".open-" and the final name, and rename it when done: the Dovecot plugin keeps
 * one open for up to a second while statusd is away, so that a transaction costs one
 * write, not a file. A ".open-" file whose lock is free was left by a process that ended
 * (a crash): statusd renames it, under the lock, to its final name and reads it.
 *
 * File names: "<ms since epoch>-<pid>-<random>.events", so that sorting by name is
 * roughly oldest first. Mode 0640: give the directory the group statusd reads with and the
 * setgid bit (see docs/deployment.md).
 */
#ifndef DROPFILE_H
#define DROPFILE_H

#include <stdbool.h>
#include <stddef.h>

#define DROPFILE_SUFFIX      ".events"
#define DROPFILE_OPEN_PREFIX ".open-"

/* True if name is a complete drop file (not a temporary one, not hidden). */
bool dropfile_name_ok(const char *name);

/* True if name is DROPFILE_OPEN_PREFIX and a drop file's name: one being appended to. */
bool dropfile_open_name_ok(const char *name);

#endif
