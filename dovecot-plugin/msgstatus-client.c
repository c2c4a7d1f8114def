/*
 * msgstatus - the plugin's connection to statusd's event socket, and the pickup files
 * (msgstatus-client.h is the API).
 *
 * Records are lines of docs/protocol.md's wire format; each has a random 130-bit event id,
 * so that one both sent and written to a file is stored once.
 *
 * DESIGN
 *	One connection per process, shared by the users it serves (an LMTP process delivers
 *	to several); a user whose settings name another socket path or pickup directory
 *	closes it and opens the next. A hand-over never waits for statusd: the
 *	records are written to statusd's event socket, a non-blocking UNIX socket the process
 *	keeps open, and stay in memory until statusd acknowledges them. Acknowledgements are
 *	read, without waiting, at the next hand-over; at process exit the plugin waits for
 *	them at most MSGSTATUS_EXIT_WAIT_MSECS. Whatever statusd has not acknowledged when
 *	the connection breaks, when it stops answering (more than MSGSTATUS_QUEUE_MAX bytes
 *	waiting), or at exit, and every event while statusd cannot be reached (one connection
 *	attempt per MSGSTATUS_RETRY_SECS), goes into statusd's pickup directory
 *	(docs/protocol.md, "Pickup files"), which statusd stores when it runs.
 *
 *	Pickup files: the process appends each hand-over's records, with one write, to a
 *	file of its own, ".open-NAME", that it holds locked (flock) from its creation on, and
 *	renames it to NAME (statusd reads it then) MSGSTATUS_PICKUP_OPEN_MSECS after it
 *	created it (a timeout on the root ioloop), as soon as statusd can be reached again,
 *	at the end of a user's session and at exit. A transaction costs one write(2), not a
 *	file (create, chmod, write, close, rename). The records are written before the IMAP
 *	command's reply: if the process then ends without renaming the file (a crash, a kill),
 *	its lock goes with it, and statusd renames and reads the file it left (statusd's
 *	pickup.c); the event ids make a record read twice count once. What can be neither
 *	sent nor filed (statusd away and the pickup directory's disk full: the file is cut
 *	back to its last whole record) is kept in memory, up to MSGSTATUS_HELD_MAX bytes, and
 *	goes with the next hand-over; only beyond that, or at exit, is it lost, and said to be.
 *
 *	Replies come in the order of the records, one line each, so the oldest record in the
 *	queue is the one a reply is about; its seq says so (records are numbered from 1 on
 *	each connection).
 *
 *	An mdn record (msgstatus_client_hand_over_mdn) waits for its answer: its seq and
 *	callback go on a list, and while the list is not empty an io watcher on the ioloop
 *	reads replies as they come, outside any IMAP command. A closed connection answers
 *	the list's records MSGSTATUS_MDN_LOST (they went to a pickup file: statusd still
 *	decides, and sends the notification, when it reads the file).
 *
 * SECURITY
 *	statusd's replies are untrusted until checked: a line is at most MSGSTATUS_REPLY_MAX
 *	bytes (the rest is dropped), parsed with Dovecot's JSON parser
 *	(msgstatus_reply_parse(), msgstatus-settings.c), checked for the seq of the oldest
 *	unanswered record, and sanitized before it is logged. A reply that is not one, comes
 *	out of order, or answers a record not yet sent closes the connection: what was not
 *	acknowledged is filed as a pickup file (storing is idempotent). Pickup files are
 *	created O_EXCL|O_NOFOLLOW under a dot name, mode 0640, locked before anything is
 *	written (and given up if statusd took the empty file first), and renamed when complete.
 *
 * DIAGNOSTICS
 *	Logged through Dovecot's logging with a "msgstatus:" prefix: statusd unreachable
 *	(once per outage) and reachable again, an event statusd rejected (its record number,
 *	the start of the record and statusd's reason), a reply that is not statusd's or out
 *	of order (a warning: the connection is closed), a pickup file that cannot be written
 *	(an error naming the file; the events wait in memory), events lost (an error
 *	with their number: more waiting than MSGSTATUS_HELD_MAX, or at exit).
 */
#include "lib.h"
#include "ioloop.h"
#include "randgen.h"
#include "str.h"
#include "str-sanitize.h"
#include "write-full.h"
#include "msgstatus-settings.h"
#include "msgstatus-client.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/file.h> /* flock() */
#include <sys/socket.h>
#include <sys/stat.h> /* fchmod() */
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MSGSTATUS_QUEUE_MAX         (256 * 1024) /* unacknowledged bytes before giving up */
#define MSGSTATUS_REPLY_MAX         4096         /* statusd's replies are far shorter */
#define MSGSTATUS_RETRY_SECS        1            /* between connection attempts */
#define MSGSTATUS_EXIT_WAIT_MSECS   100
#define MSGSTATUS_HELD_MAX          (1024 * 1024)     /* bytes kept while nothing takes them */
#define MSGSTATUS_PICKUP_OPEN       ".open-"          /* a pickup file still appended to */
#define MSGSTATUS_PICKUP_OPEN_MSECS 1000              /* how long one stays open at most */
#define MSGSTATUS_PICKUP_FILE_MAX   (4 * 1024 * 1024) /* bytes in one at most */

/* An mdn record that waits for its answer. */
struct msgstatus_mdn_wait {
	struct msgstatus_mdn_wait *next;
	uintmax_t seq; /* on the current connection */
	const void *owner;
	msgstatus_mdn_callback_t *callback;
	void *context;
};

/* The pickup file the process appends to while statusd is away (DESIGN above). */
struct msgstatus_pickup {
	int fd;           /* -1: none open */
	char *dir, *name; /* its directory, and its name without MSGSTATUS_PICKUP_OPEN */
	off_t size;
	time_t opened;
	struct timeout *to; /* hands it over MSGSTATUS_PICKUP_OPEN_MSECS after it opened */
};

/* The process's connection to statusd (DESIGN above). */
struct msgstatus_conn {
	char *socket_path;
	char *pickup_dir;
	int fd;              /* -1: not connected */
	string_t *queue;     /* records sent or being sent, not yet answered */
	size_t written;      /* bytes of queue written to the socket */
	unsigned int queued; /* records in queue */
	uintmax_t answered;  /* replies on this connection (the next one's seq is this + 1) */
	string_t *reply;     /* a reply line being received */
	time_t retry_at;     /* no connection attempt before this */
	string_t *held;      /* records neither sent nor filed: they go with the next */
	unsigned int nheld;  /* records in held */
	bool unreachable_logged;
	bool unusable; /* the socket path cannot be used: pickup files only */
	struct msgstatus_mdn_wait *waits, **waits_tail; /* oldest first */
	struct io *io;                                  /* reading replies while mdn records wait */
	struct msgstatus_pickup pickup;
};

static struct msgstatus_conn msgstatus_conn = {.fd = -1, .pickup = {.fd = -1}};

/* A random event id: "dc" and 26 base32 characters (130 bits). */
static void
event_id(char id[static 29])
{
	static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[17];

	random_fill(rnd, sizeof(rnd));
	id[0] = 'd';
	id[1] = 'c';
	for (size_t i = 0, o = 2, bits = 0, acc = 0; i < sizeof(rnd) && o < 28; i++) {
		acc = (acc << 8 | rnd[i]) & 0xffff;
		for (bits += 8; bits >= 5 && o < 28; bits -= 5)
			id[o++] = base32[(acc >> (bits - 5)) & 31];
	}
	id[28] = '\0';
}

void
msgstatus_client_record_begin(string_t *out, const char *type, const char *source, const char *user)
{
	char id[29];
	struct timeval tv;
	struct tm tm;

	event_id(id);
	if (gettimeofday(&tv, NULL) < 0)
		tv = ioloop_timeval;
	gmtime_r(&tv.tv_sec, &tm);
	str_printfa(out,
	            "{\"v\":1,\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%04d-%02d-%02dT"
	            "%02d:%02d:%02d.%03dZ\",\"source\":\"%s\",\"recipient\":\"",
	            id, type, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	            tm.tm_sec, (int)(tv.tv_usec / 1000), source);
	json_append_escaped(out, user);
	str_append_c(out, '"');
}

/* A ".open-" name of the pickup directory: "<ms>-<pid>-<random>.events" after the prefix. */
static const char *
pickup_new_name(void)
{
	unsigned char rnd[8];
	struct timeval tv;

	random_fill(rnd, sizeof(rnd));
	if (gettimeofday(&tv, NULL) < 0)
		tv = ioloop_timeval;
	return t_strdup_printf("%lld-%ld-%02x%02x%02x%02x%02x%02x%02x%02x.events",
	                       (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000, (long)getpid(),
	                       rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
}

/* Hand the open pickup file to statusd: rename it to its final name, then close it (which
   lets go of the lock). */
static void
pickup_finish(struct msgstatus_pickup *pf)
{
	const char *open_path, *path;

	if (pf->fd < 0)
		return;
	if (pf->to != NULL)
		timeout_remove(&pf->to);
	open_path = t_strdup_printf("%s/" MSGSTATUS_PICKUP_OPEN "%s", pf->dir, pf->name);
	path = t_strdup_printf("%s/%s", pf->dir, pf->name);
	/* nothing written (the disk full, say): nothing to hand over */
	if (pf->size == 0) {
		if (unlink(open_path) < 0 && errno != ENOENT)
			i_error("msgstatus: unlink(%s) failed: %m", open_path);
	} else if (rename(open_path, path) < 0)
		i_error("msgstatus: rename(%s) failed: %m (statusd reads it once this process has "
		        "closed it)",
		        open_path);
	if (close(pf->fd) < 0)
		i_error("msgstatus: close(%s) failed: %m", path);
	pf->fd = -1;
	i_free(pf->dir);
	i_free(pf->name);
}

static void
pickup_timeout(struct msgstatus_pickup *pf)
{
	/* clang-format off */
	T_BEGIN {
		pickup_finish(pf);
	} T_END;
	/* clang-format on */
}

/* Create and lock a new ".open-" file in dir. 0, or -1 (logged). */
static int
pickup_open(struct msgstatus_pickup *pf, const char *dir, unsigned int count)
{
	for (unsigned int tries = 0; tries < 3; tries++) {
		const char *name = pickup_new_name();
		const char *open_path =
		        t_strdup_printf("%s/" MSGSTATUS_PICKUP_OPEN "%s", dir, name);
		struct stat st, path_st;
		int fd;

		fd = open(open_path,
		          O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd < 0) {
			i_error("msgstatus: open(%s) failed: %m (%u events; is "
			        "msgstatus_pickup_dir "
			        "writable by the mail user?)",
			        open_path, count);
			return -1;
		}
		/* statusd reads it through the directory's group, whatever the umask (0077) */
		if (fchmod(fd, 0640) < 0)
			i_error("msgstatus: fchmod(%s) failed: %m", open_path);
		/* statusd takes a ".open-" file only when it gets its lock: the file is ours
		   unless statusd took it (empty) between the open and the lock */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
		    stat(open_path, &path_st) == 0 && st.st_ino == path_st.st_ino &&
		    st.st_dev == path_st.st_dev) {
			pf->fd = fd;
			pf->dir = i_strdup(dir);
			pf->name = i_strdup(name);
			pf->size = 0;
			pf->opened = ioloop_time;
			if (current_ioloop != NULL && io_loop_get_root() != NULL)
				pf->to = timeout_add_to(io_loop_get_root(),
				                        MSGSTATUS_PICKUP_OPEN_MSECS, pickup_timeout,
				                        pf);
			return 0;
		}
		i_close_fd(&fd);
	}
	i_error("msgstatus: %s: no pickup file of its own after 3 tries (%u events)", dir, count);
	return -1;
}

/* Append records to the process's open pickup file in dir (a new one if needed). 0, or -1
   (logged) if they could not be written. */
static int
pickup_write(struct msgstatus_pickup *pf, const char *dir, const unsigned char *data, size_t size,
             unsigned int count)
{
	if (pf->fd >= 0 &&
	    (strcmp(pf->dir, dir) != 0 || pf->size + size > MSGSTATUS_PICKUP_FILE_MAX ||
	     ioloop_time > pf->opened + MSGSTATUS_PICKUP_OPEN_MSECS / 1000))
		pickup_finish(pf);
	if (pf->fd < 0 && pickup_open(pf, dir, count) < 0)
		return -1;
	if (write_full(pf->fd, data, size) < 0) {
		i_error("msgstatus: write(%s/" MSGSTATUS_PICKUP_OPEN "%s) failed: %m (%u events)",
		        pf->dir, pf->name, count);
		/* no part of a record stays behind */
		if (ftruncate(pf->fd, pf->size) < 0)
			i_error("msgstatus: ftruncate(%s/" MSGSTATUS_PICKUP_OPEN "%s) failed: %m",
			        pf->dir, pf->name);
		pickup_finish(pf);
		return -1;
	}
	pf->size += size;
	return 0;
}

/* File records in the pickup directory; if that fails, keep them for the next hand-over. */
static void
file_or_hold(struct msgstatus_conn *conn, const char *dir, const unsigned char *data, size_t size,
             unsigned int count)
{
	if (pickup_write(&conn->pickup, dir, data, size, count) == 0)
		return;
	if (conn->held == NULL)
		conn->held = str_new(default_pool, size);
	if (str_len(conn->held) + size > MSGSTATUS_HELD_MAX) {
		i_error("msgstatus: %u events lost: statusd does not take them, the pickup "
		        "directory neither, and %zu bytes already wait in memory",
		        count, str_len(conn->held));
		return;
	}
	str_append_data(conn->held, data, size);
	conn->nheld += count;
	i_warning("msgstatus: %u events wait in memory for statusd or the pickup directory",
	          conn->nheld);
}

/* Answer the waiting mdn records (all of them, or owner's) with reply, and forget them. */
static void
waits_answer(struct msgstatus_conn *conn, const void *owner, enum msgstatus_mdn_reply reply)
{
	struct msgstatus_mdn_wait **w = &conn->waits, *done;

	while (*w != NULL) {
		if (owner != NULL && (*w)->owner != owner) {
			w = &(*w)->next;
			continue;
		}
		done = *w;
		*w = done->next;
		done->callback(done->context, reply);
		i_free(done);
	}
	conn->waits_tail = &conn->waits;
	for (done = conn->waits; done != NULL; done = done->next)
		conn->waits_tail = &done->next;
	if (conn->waits == NULL)
		if (conn->io != NULL)
			io_remove(&conn->io);
}

/* Close the connection; what statusd has not acknowledged goes into a pickup file. */
static void
conn_close(struct msgstatus_conn *conn, const char *why)
{
	waits_answer(conn, NULL, MSGSTATUS_MDN_LOST);
	if (conn->fd >= 0) {
		if (why != NULL)
			i_warning("msgstatus: connection to statusd (%s) closed: %s%s",
			          conn->socket_path, why,
			          conn->queued > 0 ? "; unacknowledged events go to pickup_dir"
			                           : "");
		i_close_fd(&conn->fd);
	}
	if (conn->queued > 0)
		file_or_hold(conn, conn->pickup_dir, str_data(conn->queue), str_len(conn->queue),
		             conn->queued);
	if (conn->queue != NULL)
		str_truncate(conn->queue, 0);
	if (conn->reply != NULL)
		str_truncate(conn->reply, 0);
	conn->written = 0;
	conn->queued = 0;
	conn->answered = 0;
	conn->retry_at = ioloop_time + MSGSTATUS_RETRY_SECS;
}

static int
conn_connect(struct msgstatus_conn *conn)
{
	struct sockaddr_un sun;
	int fd;

	i_zero(&sun);
	sun.sun_family = AF_UNIX;
	if (i_strocpy(sun.sun_path, conn->socket_path, sizeof(sun.sun_path)) < 0) {
		i_error("msgstatus: msgstatus_socket %s: path too long; using pickup_dir only",
		        conn->socket_path);
		conn->unusable = TRUE;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		i_error("msgstatus: socket() failed: %m");
		conn->retry_at = ioloop_time + MSGSTATUS_RETRY_SECS;
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		/* a UNIX socket connects at once or not at all; EAGAIN is a full backlog */
		if (!conn->unreachable_logged)
			i_warning("msgstatus: statusd not reachable at %s: %m (events go to %s "
			          "until it is)",
			          conn->socket_path, conn->pickup_dir);
		conn->unreachable_logged = TRUE;
		i_close_fd(&fd);
		conn->retry_at = ioloop_time + MSGSTATUS_RETRY_SECS;
		return -1;
	}
	if (conn->unreachable_logged)
		i_info("msgstatus: statusd reachable again at %s", conn->socket_path);
	/* what waits in the open pickup file goes to statusd now, not a second later */
	pickup_finish(&conn->pickup);
	conn->unreachable_logged = FALSE;
	conn->fd = fd;
	return 0;
}

/* Take the answered records off the queue. 0, or -1 if the connection is gone. */
static int
conn_read(struct msgstatus_conn *conn)
{
	unsigned char buf[4096];
	ssize_t n;

	while (conn->fd >= 0) {
		n = read(conn->fd, buf, sizeof(buf));
		if (n == 0) {
			conn_close(conn, "statusd closed it");
			return -1;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			conn_close(conn, t_strdup_printf("read: %m"));
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			const unsigned char *data, *nl;
			const char *rejected, *error;
			uintmax_t seq;
			size_t len;
			bool mdn_send = FALSE;

			if (buf[i] != '\n') {
				if (str_len(conn->reply) < MSGSTATUS_REPLY_MAX)
					str_append_c(conn->reply, buf[i]);
				continue;
			}
			if (conn->queued == 0 || conn->written == 0) {
				conn_close(conn, "a reply to no record (not statusd?)");
				return -1;
			}
			if (str_len(conn->reply) > 0 &&
			    str_data(conn->reply)[str_len(conn->reply) - 1] == '\r')
				str_truncate(conn->reply, str_len(conn->reply) - 1);
			if (msgstatus_reply_parse(str_c(conn->reply), str_len(conn->reply), &seq,
			                          &rejected, &mdn_send, &error) < 0) {
				conn_close(conn,
				           t_strdup_printf("a reply that is not statusd's (%s): %s",
				                           error,
				                           str_sanitize(str_c(conn->reply), 128)));
				return -1;
			}
			str_truncate(conn->reply, 0);
			if (seq != conn->answered + 1) {
				conn_close(conn,
				           t_strdup_printf(
				                   "the reply to record %ju came where the one "
				                   "to record %ju was due (not statusd?)",
				                   seq, conn->answered + 1));
				return -1;
			}
			data = str_data(conn->queue);
			nl = memchr(data, '\n', str_len(conn->queue));
			len = nl == NULL ? str_len(conn->queue) : (size_t)(nl - data) + 1;
			if (len > conn->written) {
				conn_close(conn, "a reply to a record not yet sent (not statusd?)");
				return -1;
			}
			conn->answered++;
			if (rejected != NULL)
				i_error("msgstatus: statusd rejected record %ju (%s): %s", seq,
				        str_sanitize(t_strndup(data, len - 1), 160),
				        str_sanitize(rejected, 512));
			str_delete(conn->queue, 0, len);
			conn->written -= len;
			conn->queued--;
			if (conn->waits != NULL && conn->waits->seq == seq) {
				struct msgstatus_mdn_wait *w = conn->waits;

				conn->waits = w->next;
				if (conn->waits == NULL) {
					conn->waits_tail = &conn->waits;
					if (conn->io != NULL)
						io_remove(&conn->io);
				}
				w->callback(w->context, mdn_send && rejected == NULL
				                                ? MSGSTATUS_MDN_SEND
				                                : MSGSTATUS_MDN_NONE);
				i_free(w);
			}
		}
	}
	return -1;
}

/* Write what the socket takes now. 0, or -1 if the connection is gone. */
static int
conn_flush(struct msgstatus_conn *conn)
{
	ssize_t n;

	while (conn->fd >= 0 && conn->written < str_len(conn->queue)) {
		n = send(conn->fd, str_data(conn->queue) + conn->written,
		         str_len(conn->queue) - conn->written, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			conn_close(conn, t_strdup_printf("write: %m"));
			return -1;
		}
		conn->written += (size_t)n;
	}
	return conn->fd >= 0 ? 0 : -1;
}

void
msgstatus_client_hand_over(const char *socket_path, const char *pickup_dir, const string_t *records,
                           unsigned int count)
{
	struct msgstatus_conn *conn = &msgstatus_conn;

	if (conn->nheld > 0) {
		/* what waits in memory goes first, the same way */
		string_t *all = t_str_new(str_len(conn->held) + str_len(records));

		str_append_str(all, conn->held);
		str_append_str(all, records);
		count += conn->nheld;
		records = all;
		str_truncate(conn->held, 0);
		conn->nheld = 0;
	}
	if (socket_path[0] == '\0') {
		file_or_hold(conn, pickup_dir, str_data(records), str_len(records), count);
		return;
	}
	if (conn->socket_path == NULL || strcmp(conn->socket_path, socket_path) != 0 ||
	    strcmp(conn->pickup_dir, pickup_dir) != 0) {
		conn_close(conn, NULL);
		i_free(conn->socket_path);
		i_free(conn->pickup_dir);
		conn->socket_path = i_strdup(socket_path);
		conn->pickup_dir = i_strdup(pickup_dir);
		conn->retry_at = 0;
		conn->unusable = FALSE;
		if (conn->queue == NULL) {
			conn->queue = str_new(default_pool, 1024);
			conn->reply = str_new(default_pool, 128);
		}
	}
	if (conn->fd >= 0)
		(void)conn_read(conn);
	if (conn->fd < 0 &&
	    (conn->unusable || ioloop_time < conn->retry_at || conn_connect(conn) < 0)) {
		file_or_hold(conn, conn->pickup_dir, str_data(records), str_len(records), count);
		return;
	}
	if (str_len(conn->queue) + str_len(records) > MSGSTATUS_QUEUE_MAX) {
		conn_close(conn, "statusd is not answering");
		file_or_hold(conn, conn->pickup_dir, str_data(records), str_len(records), count);
		return;
	}
	str_append_data(conn->queue, str_data(records), str_len(records));
	conn->queued += count;
	(void)conn_flush(conn);
}

static void
conn_io_read(struct msgstatus_conn *conn)
{
	/* clang-format off */
	T_BEGIN {
		(void)conn_read(conn);
	} T_END;
	/* clang-format on */
}

void
msgstatus_client_hand_over_mdn(const char *socket_path, const char *pickup_dir,
                               const string_t *record, const void *owner,
                               msgstatus_mdn_callback_t *callback, void *context)
{
	struct msgstatus_conn *conn = &msgstatus_conn;
	struct msgstatus_mdn_wait *w;
	uintmax_t seq;

	msgstatus_client_hand_over(socket_path, pickup_dir, record, 1);
	if (conn->fd < 0 || conn->queued == 0 || str_len(conn->queue) < str_len(record) ||
	    memcmp(str_data(conn->queue) + str_len(conn->queue) - str_len(record), str_data(record),
	           str_len(record)) != 0) {
		/* filed or held: statusd answers nobody when it reads it */
		callback(context, MSGSTATUS_MDN_LOST);
		return;
	}
	seq = conn->answered + conn->queued;
	w = i_new(struct msgstatus_mdn_wait, 1);
	w->seq = seq;
	w->owner = owner;
	w->callback = callback;
	w->context = context;
	if (conn->waits_tail == NULL)
		conn->waits_tail = &conn->waits;
	*conn->waits_tail = w;
	conn->waits_tail = &w->next;
	if (conn->io == NULL)
		conn->io = io_add(conn->fd, IO_READ, conn_io_read, conn);
}

void
msgstatus_client_forget(const void *owner)
{
	waits_answer(&msgstatus_conn, owner, MSGSTATUS_MDN_LOST);
}

void
msgstatus_client_pickup_flush(void)
{
	pickup_finish(&msgstatus_conn.pickup);
}

void
msgstatus_client_deinit(void)
{
	struct msgstatus_conn *conn = &msgstatus_conn;
	struct timeval start, now;

	/* what waits in memory: one more try to send it, with the rest */
	if (conn->nheld > 0 && conn->socket_path != NULL && !conn->unusable &&
	    (conn->fd >= 0 || conn_connect(conn) == 0)) {
		str_append_str(conn->queue, conn->held);
		conn->queued += conn->nheld;
		str_truncate(conn->held, 0);
		conn->nheld = 0;
	}
	if (conn->fd >= 0 && conn->queued > 0 && gettimeofday(&start, NULL) == 0) {
		for (;;) {
			struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};
			long waited;

			if (conn_flush(conn) < 0 || conn_read(conn) < 0 || conn->queued == 0)
				break;
			if (gettimeofday(&now, NULL) < 0)
				break;
			waited = (now.tv_sec - start.tv_sec) * 1000 +
			         (now.tv_usec - start.tv_usec) / 1000;
			if (waited >= MSGSTATUS_EXIT_WAIT_MSECS)
				break;
			if (conn->written < str_len(conn->queue))
				pfd.events |= POLLOUT;
			if (poll(&pfd, 1, (int)(MSGSTATUS_EXIT_WAIT_MSECS - waited)) < 0 &&
			    errno != EINTR)
				break;
		}
	}
	conn_close(conn, NULL);
	pickup_finish(&conn->pickup);
	if (conn->nheld > 0)
		i_error("msgstatus: %u events lost: the process ends, and neither statusd nor the "
		        "pickup directory took them",
		        conn->nheld);
	if (conn->held != NULL)
		str_free(&conn->held);
	conn->nheld = 0;
	if (conn->queue != NULL)
		str_free(&conn->queue);
	if (conn->reply != NULL)
		str_free(&conn->reply);
	i_free(conn->socket_path);
	i_free(conn->pickup_dir);
}
