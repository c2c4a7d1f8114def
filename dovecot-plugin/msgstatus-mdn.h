/*
 * msgstatus - the plugin's part in server-sent MDNs (docs/mdn.md): when a message that asks
 * for a disposition notification (Disposition-Notification-To) and has no $MDNSent keyword
 * gains \Seen, an `mdn` record goes to statusd, which decides and sends; when statusd answers
 * that a notification goes out, the plugin sets $MDNSent (RFC 3503) on the message, so that
 * the user's client does not ask the user again.
 *
 * Like the rest of the plugin, written against Dovecot's own library only.
 */
#ifndef MSGSTATUS_MDN_H
#define MSGSTATUS_MDN_H

#include "lib.h"

struct mail;
struct mail_user;
struct msgstatus_mdn_user;

#define MSGSTATUS_MDN_KEYWORD "$MDNSent"

/* The user's state; mdn_default is msgstatus_mdn ("never" or "always"). */
struct msgstatus_mdn_user *msgstatus_mdn_user_init(struct mail_user *user, const char *mdn_default);
/* Before the user goes: keywords still to set are set now, answers still to come are
   forgotten. *mu is NULL after. */
void msgstatus_mdn_user_deinit(struct msgstatus_mdn_user **mu);

/* mail gained \Seen: if it asks for an MDN and has no $MDNSent, append its mdn record to
   out (a whole line) and return TRUE. Reads the message's headers (the cache, else the
   message); uses the data stack for the rest. */
bool msgstatus_mdn_record(struct msgstatus_mdn_user *mu, struct mail *mail, string_t *out);

/* Hand a record of msgstatus_mdn_record() over (at the transaction's commit); when statusd
   answers "send", $MDNSent is set on the message (mailbox vname, uid) from the ioloop,
   outside any command. */
void msgstatus_mdn_hand_over(struct msgstatus_mdn_user *mu, const char *socket_path,
                             const char *pickup_dir, const string_t *record, const char *vname,
                             uint32_t uid);

#endif
