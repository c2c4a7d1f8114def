/*
 * msgstatus - Dovecot 2.3 and 2.4 plugin: server-side delivery and read receipts for msgstatus.
 *
 * For messages that carry a Msgstatus-Id header (added by msgstatus-milter), in the
 * recipient's own mailboxes, it reports to statusd:
 *
 *	delivered	saved by LMTP or LDA (the proof that the mail reached the mailbox),
 *			with the original recipient (ORCPT) when LMTP knows it; one for each
 *			mailbox a delivery saves to (Sieve fileinto, keep)
 *	read		\Seen gained, by STORE +FLAGS or implicitly by FETCH BODY[]
 *	unread		\Seen lost
 *	copied		one more copy in a mailbox of the user: IMAP COPY or MOVE (a MOVE is
 *			a copy and an expunge)
 *	expunged	one copy expunged (IMAP EXPUNGE, doveadm expunge, a MOVE's source)
 *	online/offline	an IMAP session of the user began/ended (presence; statusd keeps it
 *			only for users who opted in)
 *
 * statusd counts the copies (delivered, copied) and the expunges: a message is deleted for
 * its sender only when no copy is left (docs/protocol.md). Nothing for APPENDs by IMAP
 * clients, for mailboxes with the \Sent special use (nor for copies out of one), or for
 * messages without the header. With msgstatus_read_receipts = no (a plugin setting,
 * or a userdb field for one user) no read or unread event leaves the server.
 *
 * What differs between Dovecot 2.3 and 2.4 (the settings API and two calls) is in
 * msgstatus-settings.c and its header; this file is the same for both.
 *
 * DESIGN
 *	Events are collected per mailbox transaction through the notify plugin (the model is
 *	Dovecot's mail_log plugin) and handed over at commit, none on rollback. The hand-over
 *	never waits for statusd: the records are written to statusd's event socket
 *	(docs/protocol.md), a non-blocking UNIX socket the process keeps open, and stay in
 *	memory until statusd acknowledges them. Acknowledgements are read, without waiting, at
 *	the next hand-over; at process exit the plugin waits for them at most
 *	MSGSTATUS_EXIT_WAIT_MSECS. Whatever statusd has not acknowledged when the connection
 *	breaks, when it stops answering (more than MSGSTATUS_QUEUE_MAX bytes waiting), or at
 *	exit, and every event while statusd cannot be reached, is written as one file into
 *	statusd's pickup directory (docs/protocol.md, "Pickup files"), which statusd stores
 *	when it runs. Every event has a random 130-bit id, so an event both sent and written
 *	to a file is stored once. What can be neither sent nor filed (statusd away and the
 *	pickup directory's disk full) is kept in memory, up to MSGSTATUS_HELD_MAX bytes, and
 *	goes with the next hand-over; only beyond that, or at exit, is it lost, and said to be.
 *
 *	The header is read only when a relevant change happens (a save by LMTP/LDA, a copy,
 *	a \Seen change, an expunge); with hdr.Msgstatus-Id in mail_always_cache_fields (the example
 *	configuration) it comes from Dovecot's cache, not the message file.
 *
 * SECURITY
 *	The header value is untrusted: only ids of 1-64 characters of [A-Za-z0-9._-] are
 *	used (the milter removes foreign Msgstatus-Id headers on the way in). User names,
 *	addresses and mailbox names are JSON-escaped; statusd's replies are parsed with
 *	Dovecot's JSON parser (msgstatus_reply_parse), checked for the seq of the oldest
 *	unanswered record, and sanitized before they are logged. A reply that is not one, or
 *	comes out of order, closes the connection: what was not acknowledged is filed as a
 *	pickup file (storing is idempotent).
 *
 * DIAGNOSTICS
 *	Logged through Dovecot's logging with a "msgstatus:" prefix: statusd unreachable
 *	(once per outage), an event statusd rejected (its record number, the start of the
 *	record and statusd's reason), a reply that is not statusd's or out of order (a
 *	warning: the connection is closed), a pickup file that cannot be written
 *	(an error naming the directory; the events wait in memory), events lost (an error
 *	with their number: more waiting than MSGSTATUS_HELD_MAX, or at exit).
 *
 * This file is written against Dovecot's own library (no other dependency), as Dovecot's
 * plugins are: nothing else can hook into its mail storage, and lib/evclient's json-c and
 * logging do not belong in Dovecot's processes, so the few lines of the socket protocol
 * a producer needs (match each reply to its record) are here.
 */
#include "lib.h"
#include "ioloop.h"
#include "mail-deliver.h"
#include "mail-storage-hooks.h"
#include "mail-storage-private.h"
#include "mail-user.h"
#include "module-context.h"
#include "notify-plugin.h"
#include "randgen.h"
#include "smtp-address.h"
#include "str.h"
#include "str-sanitize.h"
#include "write-full.h"
#include "msgstatus-settings.h"

#include <ctype.h> /* i_isalnum() on 2.4 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MSGSTATUS_HEADER            "Msgstatus-Id"
#define MSGSTATUS_TRACKING_ID_MAX   64
#define MSGSTATUS_QUEUE_MAX         (256 * 1024) /* unacknowledged bytes before giving up */
#define MSGSTATUS_REPLY_MAX         4096         /* statusd's replies are far shorter */
#define MSGSTATUS_RETRY_SECS        1            /* between connection attempts */
#define MSGSTATUS_EXIT_WAIT_MSECS   100
#define MSGSTATUS_HELD_MAX          (1024 * 1024) /* bytes kept while nothing takes them */
#define MSGSTATUS_USER_CONTEXT(obj) MODULE_CONTEXT(obj, msgstatus_user_module)

/* Only LMTP and LDA link Dovecot's lib-lda: elsewhere (imap) there is no hook to set. */
#pragma weak mail_deliver_hook_set

const char *msgstatus_plugin_version = DOVECOT_ABI_VERSION;
const char *msgstatus_plugin_dependencies[] = {"notify", NULL};

void msgstatus_plugin_init(struct module *module);
void msgstatus_plugin_deinit(void);

struct msgstatus_user {
	union mail_user_module_context module_ctx;
	const char *socket_path; /* "" : pickup files only */
	const char *pickup_dir;
	const char *orig_recipient; /* of the LMTP/LDA delivery in progress, or NULL */
	bool read_receipts;
	bool delivery; /* an LMTP or LDA session: saves are deliveries */
	bool presence; /* an IMAP session reported online: report offline at its end */
};

struct msgstatus_txn {
	pool_t pool;
	struct mail_user *user;
	string_t *records;
	unsigned int count;
};

/*
 * The process's connection to statusd. Replies come in the order of the records, one line
 * each, so the oldest record in the queue is the one a reply is about; its seq says so
 * (records are numbered from 1 on each connection).
 */
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
};

static MODULE_CONTEXT_DEFINE_INIT(msgstatus_user_module, &mail_user_module_register);
static struct notify_context *msgstatus_notify_ctx;
static deliver_mail_func_t *msgstatus_next_deliver_mail;
static struct msgstatus_conn msgstatus_conn = {.fd = -1};

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

/* Start one record: {"v":1,"id":...,"type":...,"time":...,"source":...,"recipient":"USER" */
static void
record_begin(string_t *out, const char *type, const char *source, const char *user)
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

/* Write records into a new file of the pickup directory (docs/protocol.md). 0, or -1
   (logged) if the file could not be written. */
static int
pickup_write(const char *dir, const unsigned char *data, size_t size, unsigned int count)
{
	unsigned char rnd[8];
	struct timeval tv;
	const char *name, *tmp, *path;
	int fd;

	random_fill(rnd, sizeof(rnd));
	if (gettimeofday(&tv, NULL) < 0)
		tv = ioloop_timeval;
	name = t_strdup_printf("%lld-%ld-%02x%02x%02x%02x%02x%02x%02x%02x.events",
	                       (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000, (long)getpid(),
	                       rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	tmp = t_strdup_printf("%s/.tmp-%s", dir, name);
	path = t_strdup_printf("%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		i_error("msgstatus: open(%s) failed: %m (%u events; is msgstatus_pickup_dir "
		        "writable by the mail user?)",
		        tmp, count);
		return -1;
	}
	/* statusd reads it through the directory's group, whatever Dovecot's umask (0077) */
	if (fchmod(fd, 0640) < 0)
		i_error("msgstatus: fchmod(%s) failed: %m", tmp);
	if (write_full(fd, data, size) < 0) {
		i_error("msgstatus: write(%s) failed: %m (%u events)", tmp, count);
		i_close_fd(&fd);
		i_unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		i_error("msgstatus: close/rename(%s) failed: %m (%u events)", tmp, count);
		i_unlink_if_exists(tmp);
		return -1;
	}
	return 0;
}

/* File records in the pickup directory; if that fails, keep them for the next hand-over. */
static void
file_or_hold(struct msgstatus_conn *conn, const char *dir, const unsigned char *data, size_t size,
             unsigned int count)
{
	if (pickup_write(dir, data, size, count) == 0)
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

/* Close the connection; what statusd has not acknowledged goes into a pickup file. */
static void
conn_close(struct msgstatus_conn *conn, const char *why)
{
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
			                          &rejected, &error) < 0) {
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

/* Hand records over to statusd: the socket if it can be had at once, else a pickup file. */
static void
msgstatus_hand_over(struct msgstatus_user *muser, const string_t *records, unsigned int count)
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
	if (muser->socket_path[0] == '\0') {
		file_or_hold(conn, muser->pickup_dir, str_data(records), str_len(records), count);
		return;
	}
	if (conn->socket_path == NULL || strcmp(conn->socket_path, muser->socket_path) != 0 ||
	    strcmp(conn->pickup_dir, muser->pickup_dir) != 0) {
		conn_close(conn, NULL);
		i_free(conn->socket_path);
		i_free(conn->pickup_dir);
		conn->socket_path = i_strdup(muser->socket_path);
		conn->pickup_dir = i_strdup(muser->pickup_dir);
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

/* At process exit: give statusd a moment to acknowledge, then file the rest. */
static void
msgstatus_conn_deinit(struct msgstatus_conn *conn)
{
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

static void
msgstatus_presence(struct mail_user *user, struct msgstatus_user *muser, const char *type)
{
	string_t *rec = t_str_new(256);

	record_begin(rec, type, "imap", user->username);
	str_append(rec, "}\n");
	msgstatus_hand_over(muser, rec, 1);
}

static void
msgstatus_mail_user_deinit(struct mail_user *user)
{
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(user);

	if (muser->presence) {
		/* clang-format off */
		T_BEGIN {
			msgstatus_presence(user, muser, "offline");
		} T_END;
		/* clang-format on */
	}
	muser->module_ctx.super.deinit(user);
}

static void
msgstatus_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct msgstatus_user *muser;
	const struct msgstatus_settings *set;
	const char *error;
	bool presence;

	/* a broken setting must not fail the user's login or delivery: no events for them */
	if (msgstatus_settings_get(user, &set, &error) < 0) {
		i_error("msgstatus: %s: no events for %s", error, user->username);
		return;
	}
	muser = p_new(user->pool, struct msgstatus_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = msgstatus_mail_user_deinit;
	muser->socket_path = p_strdup(user->pool, set->msgstatus_socket);
	muser->pickup_dir = p_strdup(user->pool, set->msgstatus_pickup_dir);
	muser->read_receipts = set->msgstatus_read_receipts;
	presence = set->msgstatus_presence;
	msgstatus_settings_free(&set);
	muser->delivery = user->service != NULL &&
	                  (strcmp(user->service, "lmtp") == 0 || strcmp(user->service, "lda") == 0);
	MODULE_CONTEXT_SET(user, msgstatus_user_module, muser);

	if (user->service != NULL && strcmp(user->service, "imap") == 0 && presence) {
		muser->presence = TRUE;
		/* clang-format off */
		T_BEGIN {
			msgstatus_presence(user, muser, "online");
		} T_END;
		/* clang-format on */
	}
}

/*
 * LMTP and LDA deliver through this hook: it remembers the delivery's original recipient
 * (the ORCPT, else the RCPT TO address when it is not the user's name) for the saves it
 * makes, and lets the next hook (Sieve) or Dovecot's default save do the delivery.
 */
static int
msgstatus_deliver_mail(struct mail_deliver_context *ctx, struct mail_storage **storage_r)
{
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(ctx->rcpt_user);
	const struct smtp_address *orcpt = ctx->rcpt_params.orcpt.addr;
	const char *addr = NULL;

	if (orcpt != NULL && orcpt->localpart != NULL)
		addr = smtp_address_encode(orcpt);
	else if (ctx->rcpt_to != NULL && ctx->rcpt_to->localpart != NULL)
		addr = smtp_address_encode(ctx->rcpt_to);
	if (muser != NULL)
		muser->orig_recipient =
		        addr == NULL || strcasecmp(addr, ctx->rcpt_user->username) == 0
		                ? NULL
		                : p_strdup(ctx->rcpt_user->pool, addr);
	if (msgstatus_next_deliver_mail != NULL)
		return msgstatus_next_deliver_mail(ctx, storage_r);
	return 0; /* not handled here: Dovecot saves to the default mailbox */
}

/* The message's tracking id, or NULL if it has none we can use. */
static const char *
tracking_id(struct mail *mail)
{
	const char *value;
	size_t len;

	if (mail_get_first_header(mail, MSGSTATUS_HEADER, &value) <= 0)
		return NULL;
	while (*value == ' ' || *value == '\t')
		value++;
	len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0 || len > MSGSTATUS_TRACKING_ID_MAX)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (!i_isalnum(value[i]) && value[i] != '.' && value[i] != '_' && value[i] != '-')
			return NULL;
	return t_strndup(value, len);
}

static bool
is_sent_mailbox(struct mailbox *box)
{
	return mailbox_has_special_use(box, "\\Sent");
}

/* Append one event record (one line of docs/protocol.md's wire format) to the transaction:
   about mail (its header), in mailbox box. */
static void
add_event(struct msgstatus_txn *txn, struct mailbox *box, struct mail *mail, const char *type,
          const char *orig_recipient)
{
	const char *tid;

	if (is_sent_mailbox(box))
		return;
	/* Dovecot's T_BEGIN { } T_END; data-stack frame, kept in its usual shape */
	/* clang-format off */
	T_BEGIN {
		tid = tracking_id(mail);
		if (tid != NULL) {
			record_begin(txn->records, type, "dovecot", txn->user->username);
			str_printfa(txn->records, ",\"tracking_id\":\"%s\"", tid);
			if (orig_recipient != NULL) {
				str_append(txn->records, ",\"orig_recipient\":\"");
				json_append_escaped(txn->records, orig_recipient);
				str_append_c(txn->records, '"');
			}
			str_append(txn->records, ",\"details\":{\"mailbox\":\"");
			json_append_escaped(txn->records, mailbox_get_vname(box));
			str_append(txn->records, "\"}}\n");
			txn->count++;
		}
	} T_END;
	/* clang-format on */
}

static void *
msgstatus_transaction_begin(struct mailbox_transaction_context *t)
{
	pool_t pool = pool_alloconly_create("msgstatus transaction", 1024);
	struct msgstatus_txn *txn = p_new(pool, struct msgstatus_txn, 1);

	txn->pool = pool;
	txn->user = mailbox_get_storage(mailbox_transaction_get_mailbox(t))->user;
	txn->records = str_new(pool, 512);
	return txn;
}

static void
msgstatus_mail_save(void *ctx, struct mail *mail)
{
	struct msgstatus_txn *txn = ctx;
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(txn->user);

	if (muser != NULL && muser->delivery)
		add_event(txn, mail->box, mail, "delivered", muser->orig_recipient);
}

static void
msgstatus_mail_copy(void *ctx, struct mail *src, struct mail *dst)
{
	struct msgstatus_txn *txn = ctx;
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(txn->user);

	if (muser == NULL)
		return;
	/* LMTP delivers to further mailboxes (Sieve fileinto) by copying the first save */
	if (muser->delivery)
		add_event(txn, dst->box, dst, "delivered", muser->orig_recipient);
	else if (!is_sent_mailbox(src->box))
		add_event(txn, dst->box, src, "copied", NULL);
}

static void
msgstatus_mail_expunge(void *ctx, struct mail *mail)
{
	add_event(ctx, mail->box, mail, "expunged", NULL);
}

static void
msgstatus_mail_update_flags(void *ctx, struct mail *mail, enum mail_flags old_flags)
{
	struct msgstatus_txn *txn = ctx;
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(txn->user);
	enum mail_flags new_flags = mail_get_flags(mail);

	if (muser == NULL || !muser->read_receipts)
		return;
	if ((old_flags & MAIL_SEEN) == 0 && (new_flags & MAIL_SEEN) != 0)
		add_event(txn, mail->box, mail, "read", NULL);
	else if ((old_flags & MAIL_SEEN) != 0 && (new_flags & MAIL_SEEN) == 0)
		add_event(txn, mail->box, mail, "unread", NULL);
}

static void
msgstatus_transaction_commit(void *ctx, struct mail_transaction_commit_changes *changes)
{
	struct msgstatus_txn *txn = ctx;
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(txn->user);

	(void)changes;
	if (muser != NULL && txn->count > 0) {
		/* clang-format off */
		T_BEGIN {
			msgstatus_hand_over(muser, txn->records, txn->count);
		} T_END;
		/* clang-format on */
	}
	pool_unref(&txn->pool);
}

static void
msgstatus_transaction_rollback(void *ctx)
{
	struct msgstatus_txn *txn = ctx;

	pool_unref(&txn->pool);
}

static const struct notify_vfuncs msgstatus_vfuncs = {
        .mail_transaction_begin = msgstatus_transaction_begin,
        .mail_save = msgstatus_mail_save,
        .mail_copy = msgstatus_mail_copy,
        .mail_expunge = msgstatus_mail_expunge,
        .mail_update_flags = msgstatus_mail_update_flags,
        .mail_transaction_commit = msgstatus_transaction_commit,
        .mail_transaction_rollback = msgstatus_transaction_rollback,
};

static struct mail_storage_hooks msgstatus_mail_storage_hooks = {
        .mail_user_created = msgstatus_mail_user_created,
};

void
msgstatus_plugin_init(struct module *module)
{
	msgstatus_notify_ctx = notify_register(&msgstatus_vfuncs);
	mail_storage_hooks_add(module, &msgstatus_mail_storage_hooks);
	if (mail_deliver_hook_set != NULL)
		msgstatus_next_deliver_mail = mail_deliver_hook_set(msgstatus_deliver_mail);
}

void
msgstatus_plugin_deinit(void)
{
	/* clang-format off */
	T_BEGIN {
		msgstatus_conn_deinit(&msgstatus_conn);
	} T_END;
	/* clang-format on */
	if (mail_deliver_hook_set != NULL)
		(void)mail_deliver_hook_set(msgstatus_next_deliver_mail);
	mail_storage_hooks_remove(&msgstatus_mail_storage_hooks);
	msgstatus_notify_unregister(&msgstatus_notify_ctx);
}
