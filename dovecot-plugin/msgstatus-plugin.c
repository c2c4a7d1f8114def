/*
 * msgstatus - Dovecot 2.3 plugin: server-side delivery and read receipts for msgstatus.
 *
 * For messages that carry a Msgstatus-Id header (added by msgstatus-milter), in the
 * recipient's own mailboxes, it reports to statusd:
 *
 *	delivered	saved by LMTP or LDA (the proof that the mail reached the mailbox)
 *	read		\Seen gained, by STORE +FLAGS or implicitly by FETCH BODY[]
 *	unread		\Seen lost
 *	deleted		expunged
 *
 * Nothing for APPENDs and copies by IMAP clients, for mailboxes with the \Sent special use,
 * or for messages without the header. With msgstatus_read_receipts = no (a plugin setting,
 * or a userdb field for one user) no read or unread event leaves the server.
 *
 * DESIGN
 *	Events are collected per mailbox transaction through the notify plugin (the model is
 *	Dovecot's mail_log plugin) and handed over at commit, none on rollback. The hand-over
 *	never waits for statusd: the transaction's records are written as one file into
 *	statusd's pickup directory (docs/protocol.md, "Pickup files": a hidden temporary
 *	file, renamed when complete), which statusd notices through inotify and stores at
 *	once. An IMAP command therefore costs one small local file write when (and only
 *	when) it changes a tracked message, and no event is lost while statusd or PostgreSQL
 *	is down: the files wait. Each event has a random 130-bit id written into the file, so
 *	a file read twice stores nothing twice.
 *
 *	The header is read only when a relevant change happens (a save by LMTP/LDA, a \Seen
 *	change, an expunge), from Dovecot's cache when it is there.
 *
 * SECURITY
 *	The header value is untrusted: only ids of 1-64 characters of [A-Za-z0-9._-] are
 *	used (the milter removes foreign Msgstatus-Id headers on the way in). User names and
 *	mailbox names are JSON-escaped.
 *
 * DIAGNOSTICS
 *	Logged through Dovecot's logging with a "msgstatus:" prefix; a pickup file that
 *	cannot be written is an error naming the directory (the events of that transaction are
 *	lost, and said to be).
 *
 * This file is written against Dovecot's own library (no other dependency), as Dovecot's
 * plugins are: nothing else can hook into its mail storage.
 */
#include "lib.h"
#include "ioloop.h"
#include "json-parser.h"
#include "mail-storage-hooks.h"
#include "mail-storage-private.h"
#include "mail-user.h"
#include "module-context.h"
#include "notify-plugin.h"
#include "randgen.h"
#include "str.h"
#include "write-full.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MSGSTATUS_HEADER            "Msgstatus-Id"
#define MSGSTATUS_PICKUP_DEFAULT    "/var/spool/msgstatus/pickup"
#define MSGSTATUS_TRACKING_ID_MAX   64
#define MSGSTATUS_USER_CONTEXT(obj) MODULE_CONTEXT(obj, msgstatus_user_module)

const char *msgstatus_plugin_version = DOVECOT_ABI_VERSION;
const char *msgstatus_plugin_dependencies[] = {"notify", NULL};

void msgstatus_plugin_init(struct module *module);
void msgstatus_plugin_deinit(void);

struct msgstatus_user {
	union mail_user_module_context module_ctx;
	const char *pickup_dir;
	bool read_receipts;
	bool delivery; /* an LMTP or LDA session: saves are deliveries */
};

struct msgstatus_txn {
	pool_t pool;
	struct mail_user *user;
	string_t *records;
	unsigned int count;
};

static MODULE_CONTEXT_DEFINE_INIT(msgstatus_user_module, &mail_user_module_register);
static struct notify_context *msgstatus_notify_ctx;

static bool
setting_is_no(const char *value)
{
	return value != NULL && (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
	                         strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0);
}

static void
msgstatus_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct msgstatus_user *muser;
	const char *dir;

	muser = p_new(user->pool, struct msgstatus_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	dir = mail_user_plugin_getenv(user, "msgstatus_pickup_dir");
	muser->pickup_dir = dir != NULL && *dir != '\0' ? dir : MSGSTATUS_PICKUP_DEFAULT;
	muser->read_receipts =
	        !setting_is_no(mail_user_plugin_getenv(user, "msgstatus_read_receipts"));
	muser->delivery = user->service != NULL &&
	                  (strcmp(user->service, "lmtp") == 0 || strcmp(user->service, "lda") == 0);
	MODULE_CONTEXT_SET(user, msgstatus_user_module, muser);
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
	const struct mailbox_settings *set = box->set; /* NULL: no mailbox {} section */

	return set != NULL && set->special_use != NULL &&
	       strstr(set->special_use, "\\Sent") != NULL;
}

/* Append one event record (one line of docs/protocol.md's wire format) to the transaction. */
static void
add_event(struct msgstatus_txn *txn, struct mail *mail, const char *type)
{
	static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[17];
	char id[2 + 26 + 1];
	struct timeval tv;
	struct tm tm;
	const char *tid;

	if (is_sent_mailbox(mail->box))
		return;
	/* Dovecot's T_BEGIN { } T_END; data-stack frame, kept in its usual shape */
	/* clang-format off */
	T_BEGIN {
		tid = tracking_id(mail);
		if (tid != NULL) {
			random_fill(rnd, sizeof(rnd));
			id[0] = 'd';
			id[1] = 'c';
			for (size_t i = 0, o = 2, bits = 0, acc = 0; i < sizeof(rnd) && o < 28;
			     i++) {
				acc = (acc << 8 | rnd[i]) & 0xffff;
				for (bits += 8; bits >= 5 && o < 28; bits -= 5)
					id[o++] = base32[(acc >> (bits - 5)) & 31];
			}
			id[28] = '\0';
			if (gettimeofday(&tv, NULL) < 0)
				tv = ioloop_timeval;
			gmtime_r(&tv.tv_sec, &tm);
			str_printfa(
			        txn->records,
			        "{\"v\":1,\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%04d-%02d-%02dT"
			        "%02d:%02d:%02d.%03dZ\",\"source\":\"dovecot\",\"tracking_id\":\"%"
			        "s\","
			        "\"recipient\":\"",
			        id, type, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			        tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), tid);
			json_append_escaped(txn->records, txn->user->username);
			str_append(txn->records, "\",\"details\":{\"mailbox\":\"");
			json_append_escaped(txn->records, mailbox_get_vname(mail->box));
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
		add_event(txn, mail, "delivered");
}

static void
msgstatus_mail_copy(void *ctx, struct mail *src, struct mail *dst)
{
	struct msgstatus_txn *txn = ctx;
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(txn->user);

	/* LMTP delivers to further mailboxes (Sieve fileinto) by copying the first save */
	(void)src;
	if (muser != NULL && muser->delivery)
		add_event(txn, dst, "delivered");
}

static void
msgstatus_mail_expunge(void *ctx, struct mail *mail)
{
	add_event(ctx, mail, "deleted");
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
		add_event(txn, mail, "read");
	else if ((old_flags & MAIL_SEEN) != 0 && (new_flags & MAIL_SEEN) == 0)
		add_event(txn, mail, "unread");
}

/* Hand the records to statusd: one new file in the pickup directory. */
static void
msgstatus_write(struct msgstatus_user *muser, const string_t *records, unsigned int count)
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
	tmp = t_strdup_printf("%s/.tmp-%s", muser->pickup_dir, name);
	path = t_strdup_printf("%s/%s", muser->pickup_dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		i_error("msgstatus: open(%s) failed: %m (%u events lost; is msgstatus_pickup_dir "
		        "writable by the mail user?)",
		        tmp, count);
		return;
	}
	if (write_full(fd, str_data(records), str_len(records)) < 0) {
		i_error("msgstatus: write(%s) failed: %m (%u events lost)", tmp, count);
		i_close_fd(&fd);
		i_unlink(tmp);
		return;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		i_error("msgstatus: close/rename(%s) failed: %m (%u events lost)", tmp, count);
		i_unlink_if_exists(tmp);
	}
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
			msgstatus_write(muser, txn->records, txn->count);
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
}

void
msgstatus_plugin_deinit(void)
{
	mail_storage_hooks_remove(&msgstatus_mail_storage_hooks);
	notify_unregister(msgstatus_notify_ctx);
}
