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
 *	mdn		\Seen gained in IMAP by any message (tracked or not) that asks for a
 *disposition notification and has no $MDNSent: statusd decides whether to send one, and the plugin
 *sets $MDNSent when it does (msgstatus-mdn.c, docs/mdn.md)
 *
 * statusd counts the copies (delivered, copied) and the expunges: a message is deleted for
 * its sender only when no copy is left (docs/protocol.md). Nothing for APPENDs by IMAP
 * clients, for mailboxes with the \Sent special use (nor for copies out of one), or for
 * messages without the header. With msgstatus_read_receipts = no (a plugin setting,
 * or a userdb field for one user) no read, unread or mdn event leaves the server.
 *
 * This file holds the Dovecot hooks: which changes make which events. Where the events go
 * (statusd's event socket, its replies, the pickup files) is msgstatus-client.c's. What
 * differs between Dovecot 2.3 and 2.4 (the settings API, notify_unregister() and the JSON
 * parser of the replies) is in msgstatus-settings.c and its header; this file and
 * msgstatus-client.c are the same for both.
 *
 * DESIGN
 *	Events are collected per mailbox transaction through the notify plugin (the model is
 *	Dovecot's mail_log plugin), into a string in the transaction's own pool, and handed
 *	over to msgstatus_client_hand_over() at commit, none on rollback; the hand-over never
 *	waits on the network. Online is handed over when an imap user is created, offline at
 *	its deinit. The per-user state (settings, the delivery's original recipient) is a
 *	MODULE_CONTEXT in the user's pool.
 *
 *	The header is read only when a relevant change happens (a save by LMTP/LDA, a copy,
 *	a \Seen change, an expunge); with hdr.Msgstatus-Id in mail_always_cache_fields (the
 *	example configuration) it comes from Dovecot's cache, not the message file.
 *
 * SECURITY
 *	The header value is untrusted: only ids of 1-64 characters of [A-Za-z0-9._-] are
 *	used (the milter removes foreign Msgstatus-Id headers on the way in). User names,
 *	addresses and mailbox names are JSON-escaped. statusd's replies are the client's
 *	(msgstatus-client.c).
 *
 * DIAGNOSTICS
 *	A user's settings that cannot be read are logged as an error (no events for that
 *	user; the login or delivery goes on). Everything about handing events over is logged
 *	by msgstatus-client.c, with the same "msgstatus:" prefix.
 *
 * This file is written against Dovecot's own library (no other dependency), as Dovecot's
 * plugins are: nothing else can hook into its mail storage, and lib/evclient's json-c and
 * logging do not belong in Dovecot's processes.
 */
#include "lib.h"
#include "array.h"
#include "mail-deliver.h"
#include "mail-namespace.h"
#include "mail-storage-hooks.h"
#include "mail-storage-private.h"
#include "mail-user.h"
#include "module-context.h"
#include "notify-plugin.h"
#include "smtp-address.h"
#include "str.h"
#include "msgstatus-settings.h"
#include "msgstatus-client.h"
#include "msgstatus-mdn.h"
#include "msgstatus-plugin.h"

#include <ctype.h> /* i_isalnum() on 2.4 */

#define MSGSTATUS_HEADER            "Msgstatus-Id"
#define MSGSTATUS_TRACKING_ID_MAX   64
#define MSGSTATUS_USER_CONTEXT(obj) MODULE_CONTEXT(obj, msgstatus_user_module)

/* Only LMTP and LDA link Dovecot's lib-lda: elsewhere (imap) there is no hook to set. */
#pragma weak mail_deliver_hook_set

const char *msgstatus_plugin_version = DOVECOT_ABI_VERSION;
const char *msgstatus_plugin_dependencies[] = {"notify", NULL};

struct msgstatus_user {
	union mail_user_module_context module_ctx;
	const char *socket_path; /* "" : pickup files only */
	const char *pickup_dir;
	const char *orig_recipient;     /* of the LMTP/LDA delivery in progress, or NULL */
	struct msgstatus_mdn_user *mdn; /* in IMAP sessions */
	bool read_receipts;
	bool delivery; /* an LMTP or LDA session: saves are deliveries */
	bool presence; /* an IMAP session reported online: report offline at its end */
};

/* An mdn record, handed over on its own at commit. */
struct msgstatus_txn_mdn {
	string_t *record;
	const char *vname;
	uint32_t uid;
};

struct msgstatus_txn {
	pool_t pool;
	struct mail_user *user;
	string_t *records;
	unsigned int count;
	ARRAY(struct msgstatus_txn_mdn) mdns;
};

static MODULE_CONTEXT_DEFINE_INIT(msgstatus_user_module, &mail_user_module_register);
static struct notify_context *msgstatus_notify_ctx;
static deliver_mail_func_t *msgstatus_next_deliver_mail;
static void
msgstatus_presence(struct mail_user *user, struct msgstatus_user *muser, const char *type)
{
	string_t *rec = t_str_new(256);

	msgstatus_client_record_begin(rec, type, "imap", user->username);
	str_append(rec, "}\n");
	msgstatus_client_hand_over(muser->socket_path, muser->pickup_dir, rec, 1);
}

static void
msgstatus_mail_user_deinit(struct mail_user *user)
{
	struct msgstatus_user *muser = MSGSTATUS_USER_CONTEXT(user);

	if (muser->mdn != NULL)
		msgstatus_mdn_user_deinit(&muser->mdn);
	if (muser->presence) {
		/* clang-format off */
		T_BEGIN {
			msgstatus_presence(user, muser, "offline");
		} T_END;
		/* clang-format on */
	}
	muser->module_ctx.super.deinit(user);
	/* the session's events (and those of its end: autoexpunge) go to statusd now; no
	   timeout outlives the user */
	/* clang-format off */
	T_BEGIN {
		msgstatus_client_pickup_flush();
	} T_END;
	/* clang-format on */
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
	muser->delivery = user->service != NULL &&
	                  (strcmp(user->service, "lmtp") == 0 || strcmp(user->service, "lda") == 0);
	/* MDNs answer reads by a person: IMAP sessions only */
	if (user->service != NULL && strcmp(user->service, "imap") == 0)
		muser->mdn = msgstatus_mdn_user_init(user, set->msgstatus_mdn);
	msgstatus_settings_free(&set);
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
			msgstatus_client_record_begin(txn->records, type, "dovecot", txn->user->username);
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

/* An mdn record for mail, if it asks for a disposition notification (msgstatus-mdn.c). */
static void
add_mdn(struct msgstatus_txn *txn, struct msgstatus_user *muser, struct mail *mail)
{
	struct mail_namespace *ns = mailbox_get_namespace(mail->box);

	if (muser->mdn == NULL || is_sent_mailbox(mail->box) ||
	    mailbox_has_special_use(mail->box, "\\Drafts"))
		return;
	/* txn->user is the storage's user: in a shared or public namespace the mailbox's
	   owner (or nobody), not who reads. An MDN speaks for the reader as the mailbox's
	   owner: only in the reader's own private namespace. */
	if (ns == NULL || ns->type != MAIL_NAMESPACE_TYPE_PRIVATE || ns->owner == NULL ||
	    ns->owner != ns->user || ns->user != txn->user)
		return;
	/* clang-format off */
	T_BEGIN {
		string_t *rec = t_str_new(512);

		if (msgstatus_mdn_record(muser->mdn, mail, rec)) {
			struct msgstatus_txn_mdn *m;

			if (!array_is_created(&txn->mdns))
				p_array_init(&txn->mdns, txn->pool, 2);
			m = array_append_space(&txn->mdns);
			m->record = str_new(txn->pool, str_len(rec));
			str_append_str(m->record, rec);
			m->vname = p_strdup(txn->pool, mailbox_get_vname(mail->box));
			m->uid = mail->uid;
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
	if ((old_flags & MAIL_SEEN) == 0 && (new_flags & MAIL_SEEN) != 0) {
		add_event(txn, mail->box, mail, "read", NULL);
		add_mdn(txn, muser, mail);
	} else if ((old_flags & MAIL_SEEN) != 0 && (new_flags & MAIL_SEEN) == 0)
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
			msgstatus_client_hand_over(muser->socket_path, muser->pickup_dir, txn->records,
			                           txn->count);
		} T_END;
		/* clang-format on */
	}
	if (muser != NULL && muser->mdn != NULL && array_is_created(&txn->mdns)) {
		const struct msgstatus_txn_mdn *m;

		array_foreach(&txn->mdns, m)
		{
			/* clang-format off */
			T_BEGIN {
				msgstatus_mdn_hand_over(muser->mdn, muser->socket_path,
				                        muser->pickup_dir, m->record, m->vname,
				                        m->uid);
			} T_END;
			/* clang-format on */
		}
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
		msgstatus_client_deinit();
	} T_END;
	/* clang-format on */
	if (mail_deliver_hook_set != NULL)
		(void)mail_deliver_hook_set(msgstatus_next_deliver_mail);
	mail_storage_hooks_remove(&msgstatus_mail_storage_hooks);
	msgstatus_notify_unregister(&msgstatus_notify_ctx);
}
