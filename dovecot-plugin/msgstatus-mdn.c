/*
 * msgstatus - server-sent MDNs, the plugin's part. See msgstatus-mdn.h.
 *
 * DESIGN
 *	The record is built where the read event is (msgstatus_mail_update_flags, \Seen
 *	gained) and handed over at commit, one record at a time, with a callback
 *	(msgstatus_client_hand_over_mdn). statusd answers "send" or "none" a moment later;
 *	the answer is read by the client's io watcher on the ioloop. A "send" puts the
 *	message (mailbox name, UID) on the user's list and starts a zero timeout; the timeout
 *	opens the mailbox, begins its own transaction, adds $MDNSent and commits. That
 *	transaction changes a keyword only, which makes no event of the plugin (it watches
 *	\Seen, not keywords), so nothing loops back. The list is the user's (its pool is the
 *	user's); at the user's deinit what is on it is set at once, and answers still to come
 *	are forgotten (the keyword is then not set; statusd has decided anyway).
 *
 *	The headers come from Dovecot's cache when hdr.Disposition-Notification-To is in
 *	mail_always_cache_fields (the example configuration), else from the message: only
 *	that one is read for every message that gains \Seen; the others only for a message
 *	that has it.
 *
 * SECURITY
 *	Every header is the sender's text: broken UTF-8 is repaired, control characters are
 *	replaced, lengths are cut (MSGSTATUS_MDN_VALUE_MAX, the subject's
 *	MSGSTATUS_MDN_SUBJECT_MAX) on a character, a
 *	Message-ID longer than the protocol's 998 bytes is left out, and everything is
 *	JSON-escaped. statusd checks them again: it decides (docs/mdn.md).
 *
 * DIAGNOSTICS
 *	A keyword that cannot be set is logged as an error with the mailbox and UID.
 */
#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mail-user.h"
#include "str.h"
#include "unichar.h"
#include "msgstatus-settings.h"
#include "msgstatus-client.h"
#include "msgstatus-mdn.h"

#define MSGSTATUS_MDN_VALUE_MAX   1000 /* bytes of an address header passed on */
#define MSGSTATUS_MDN_SUBJECT_MAX 200  /* bytes of the subject */
#define MSGSTATUS_MDN_MSGID_MAX   998

struct msgstatus_mdn_mark {
	const char *vname;
	uint32_t uid;
};

struct msgstatus_mdn_user {
	struct mail_user *user;
	const char *mdn_default;
	ARRAY(struct msgstatus_mdn_mark) marks; /* $MDNSent to set */
	struct timeout *to;
};

/* A waiting answer: freed by the callback. */
struct msgstatus_mdn_ctx {
	struct msgstatus_mdn_user *mu;
	char *vname;
	uint32_t uid;
};

struct msgstatus_mdn_user *
msgstatus_mdn_user_init(struct mail_user *user, const char *mdn_default)
{
	struct msgstatus_mdn_user *mu = p_new(user->pool, struct msgstatus_mdn_user, 1);

	mu->user = user;
	mu->mdn_default = p_strdup(user->pool, mdn_default);
	p_array_init(&mu->marks, user->pool, 4);
	return mu;
}

/* Whether the message has the keyword already. */
static bool
has_keyword(struct mail *mail)
{
	const char *const *kw = mail_get_keywords(mail);

	for (; kw != NULL && *kw != NULL; kw++)
		if (strcasecmp(*kw, MSGSTATUS_MDN_KEYWORD) == 0)
			return TRUE;
	return FALSE;
}

/* value as one line of UTF-8 of at most max bytes: broken sequences become U+FFFD,
   control characters (a folded header's line breaks) spaces, and the end is cut on a
   character. */
static const char *
clean(const char *value, size_t max)
{
	size_t len = strlen(value);
	string_t *out = t_str_new(len + 16);
	unsigned char *p;

	/* a repaired copy goes to out; valid data does not */
	if (uni_utf8_get_valid_data((const unsigned char *)value, len, out))
		str_append(out, value);
	if (str_len(out) > max) {
		size_t cut = max;
		while (cut > 0 && (str_data(out)[cut] & 0xc0) == 0x80)
			cut--;
		str_truncate(out, cut);
	}
	p = buffer_get_modifiable_data(out, NULL);
	for (size_t i = 0; i < str_len(out); i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			p[i] = ' ';
	return str_c(out);
}

/* A header as clean() makes it; NULL if the message has none. */
static const char *
header(struct mail *mail, const char *name, size_t max)
{
	const char *value;

	if (mail_get_first_header(mail, name, &value) <= 0)
		return NULL;
	return clean(value, max);
}

static void
append_detail(string_t *out, bool *first, const char *key, const char *value)
{
	if (value == NULL)
		return;
	str_printfa(out, "%s\"%s\":\"", *first ? "" : ",", key);
	json_append_escaped(out, value);
	str_append_c(out, '"');
	*first = FALSE;
}

bool
msgstatus_mdn_record(struct msgstatus_mdn_user *mu, struct mail *mail, string_t *out)
{
	const char *dnt, *msgid, *subject = NULL;
	bool first = TRUE;

	dnt = header(mail, "Disposition-Notification-To", MSGSTATUS_MDN_VALUE_MAX);
	if (dnt == NULL || has_keyword(mail))
		return FALSE;
	if (mail_get_first_header(mail, "Message-ID", &msgid) <= 0 ||
	    strlen(msgid) > MSGSTATUS_MDN_MSGID_MAX)
		msgid = NULL;
	else
		msgid = clean(msgid, MSGSTATUS_MDN_MSGID_MAX);
	if (mail_get_first_header_utf8(mail, "Subject", &subject) > 0)
		subject = clean(subject, MSGSTATUS_MDN_SUBJECT_MAX);
	else
		subject = NULL;

	msgstatus_client_record_begin(out, "mdn", "dovecot", mu->user->username);
	if (msgid != NULL) {
		str_append(out, ",\"message_id\":\"");
		json_append_escaped(out, msgid);
		str_append_c(out, '"');
	}
	str_append(out, ",\"details\":{");
	append_detail(out, &first, "disposition_notification_to", dnt);
	append_detail(out, &first, "return_path",
	              header(mail, "Return-Path", MSGSTATUS_MDN_VALUE_MAX));
	append_detail(out, &first, "disposition_notification_options",
	              header(mail, "Disposition-Notification-Options", MSGSTATUS_MDN_VALUE_MAX));
	append_detail(out, &first, "content_type",
	              header(mail, "Content-Type", MSGSTATUS_MDN_VALUE_MAX));
	append_detail(out, &first, "subject", subject);
	append_detail(out, &first, "mailbox", mailbox_get_vname(mail->box));
	append_detail(out, &first, "mdn_default", mu->mdn_default);
	str_printfa(out, ",\"uid\":%u}}\n", mail->uid);
	return TRUE;
}

/* Set $MDNSent on one message; logged if it cannot be. */
static void
mark_one(struct mail_user *user, const struct msgstatus_mdn_mark *m)
{
	static const char *const keywords[] = {MSGSTATUS_MDN_KEYWORD, NULL};
	struct mail_namespace *ns = mail_namespace_find(user->namespaces, m->vname);
	struct mailbox_transaction_context *t;
	struct mail_keywords *kw;
	struct mailbox *box;
	struct mail *mail;

	if (ns == NULL) {
		i_error("msgstatus: cannot set %s on %s UID %u: no such namespace",
		        MSGSTATUS_MDN_KEYWORD, m->vname, m->uid);
		return;
	}
	box = mailbox_alloc(ns->list, m->vname, 0);
	if (mailbox_open(box) < 0 || mailbox_keywords_create(box, keywords, &kw) < 0) {
		i_error("msgstatus: cannot set %s on %s UID %u: %s", MSGSTATUS_MDN_KEYWORD,
		        m->vname, m->uid, mailbox_get_last_internal_error(box, NULL));
		mailbox_free(&box);
		return;
	}
	t = mailbox_transaction_begin(box, 0, "msgstatus " MSGSTATUS_MDN_KEYWORD);
	mail = mail_alloc(t, 0, NULL);
	if (mail_set_uid(mail, m->uid))
		mail_update_keywords(mail, MODIFY_ADD, kw);
	mail_free(&mail);
	mailbox_keywords_unref(&kw);
	if (mailbox_transaction_commit(&t) < 0)
		i_error("msgstatus: cannot set %s on %s UID %u: %s", MSGSTATUS_MDN_KEYWORD,
		        m->vname, m->uid, mailbox_get_last_internal_error(box, NULL));
	mailbox_free(&box);
}

static void
mark_all(struct msgstatus_mdn_user *mu)
{
	const struct msgstatus_mdn_mark *m;

	if (mu->to != NULL)
		timeout_remove(&mu->to);
	array_foreach(&mu->marks, m)
	{
		/* clang-format off */
		T_BEGIN {
			mark_one(mu->user, m);
		} T_END;
		/* clang-format on */
	}
	array_clear(&mu->marks);
}

static void
on_answer(void *context, enum msgstatus_mdn_reply reply)
{
	struct msgstatus_mdn_ctx *ctx = context;
	struct msgstatus_mdn_user *mu = ctx->mu;

	if (reply == MSGSTATUS_MDN_SEND) {
		struct msgstatus_mdn_mark *m = array_append_space(&mu->marks);

		m->vname = p_strdup(mu->user->pool, ctx->vname);
		m->uid = ctx->uid;
		/* not here: this may run inside a command's commit */
		if (mu->to == NULL)
			mu->to = timeout_add_short(0, mark_all, mu);
	}
	i_free(ctx->vname);
	i_free(ctx);
}

void
msgstatus_mdn_hand_over(struct msgstatus_mdn_user *mu, const char *socket_path,
                        const char *pickup_dir, const string_t *record, const char *vname,
                        uint32_t uid)
{
	struct msgstatus_mdn_ctx *ctx = i_new(struct msgstatus_mdn_ctx, 1);

	ctx->mu = mu;
	ctx->vname = i_strdup(vname);
	ctx->uid = uid;
	msgstatus_client_hand_over_mdn(socket_path, pickup_dir, record, mu, on_answer, ctx);
}

void
msgstatus_mdn_user_deinit(struct msgstatus_mdn_user **_mu)
{
	struct msgstatus_mdn_user *mu = *_mu;

	*_mu = NULL;
	msgstatus_client_forget(mu);
	if (array_count(&mu->marks) > 0)
		mark_all(mu);
	if (mu->to != NULL)
		timeout_remove(&mu->to);
}
