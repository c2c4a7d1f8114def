/*
 * msgstatus - the plugin's settings, and everything else that differs between Dovecot 2.3
 * and Dovecot 2.4.
 *
 * The plugin is built against the dovecot-dev of the system (Debian 12: 2.3.19, Debian 13:
 * 2.4.1). The version comes from Dovecot's config.h (DOVECOT_PREREQ); this header and
 * msgstatus-settings.c are the only places that test it.
 *
 *	2.3	settings are strings in the plugin { } block, or userdb fields, read with
 *		mail_user_plugin_getenv(); a boolean is off for "no", "false", "off" or "0".
 *	2.4	settings are typed and top level (msgstatus_socket = ...), declared to Dovecot
 *		by a setting_parser_info. The config process learns them from a small settings
 *		module, lib90_msgstatus_settings.so in Dovecot's modules/settings directory,
 *		built from msgstatus-settings.c alone; the plugin reads them with
 *		settings_get(). userdb fields override them as any setting.
 *
 * And the JSON parser that reads statusd's replies: 2.3's json_parser (json-parser.h),
 * 2.4's json_istream (json-istream.h), behind msgstatus_reply_parse().
 *
 * DESIGN
 *	msgstatus_settings_get() returns the same struct on both: the plugin copies what it
 *	keeps into the user's pool and frees the struct at once.
 *
 * SECURITY
 *	The values come from the administrator's configuration and the userdb; the socket
 *	path's length is checked where it is used.
 *
 * DIAGNOSTICS
 *	msgstatus_settings_get() passes Dovecot's error out (on 2.4: a value of the wrong type,
 *	or the settings module missing: "Configuration has no settings struct named
 *	'msgstatus'").
 */
#ifndef MSGSTATUS_SETTINGS_H
#define MSGSTATUS_SETTINGS_H

#include "lib.h"

#if DOVECOT_PREREQ(2, 4, 0)
#define MSGSTATUS_DOVECOT_2_4
#include "json-generator.h" /* json_append_escaped() */
#else
#include "json-parser.h" /* json_append_escaped() */
#endif

#define MSGSTATUS_SOCKET_DEFAULT "/run/msgstatus/events.sock"
#define MSGSTATUS_PICKUP_DEFAULT "/var/spool/msgstatus/pickup"

struct mail_user;
struct notify_context;

struct msgstatus_settings {
	pool_t pool;                      /* 2.4: the settings' own pool */
	const char *msgstatus_socket;     /* statusd's events_socket; "": pickup files only */
	const char *msgstatus_pickup_dir; /* statusd's pickup_dir (never "") */
	bool msgstatus_read_receipts;     /* report read and unread */
	bool msgstatus_presence;          /* report IMAP logins and logouts */
	const char *msgstatus_mdn;        /* "never" or "always": the user's MDN default,
	                                     for statusd (docs/mdn.md) */
};

/* The user's settings, with the defaults applied: 0, or -1 with *error_r set. Free them
   with msgstatus_settings_free(). */
int msgstatus_settings_get(struct mail_user *user, const struct msgstatus_settings **set_r,
                           const char **error_r);
/* Free what msgstatus_settings_get() returned and set *set to NULL. */
void msgstatus_settings_free(const struct msgstatus_settings **set);

/* notify_unregister() (2.4 takes the context's address and clears it); *ctx is NULL after. */
void msgstatus_notify_unregister(struct notify_context **ctx);

/*
 * One reply line of statusd (docs/protocol.md, "Replies"), without its newline:
 * {"seq":N,"ack":"ID"} or {"seq":N,"error":"TEXT"}, an ack to an mdn record with
 * "mdn":"send" or "mdn":"none"; other members are ignored. Returns 0 with the record's
 * number in *seq_r, *rejected_r NULL (an ack) or statusd's reason (an error; on the data
 * stack) and *mdn_send_r whether the ack said "mdn":"send", or -1 with *error_r saying why
 * the line is no such reply.
 */
int msgstatus_reply_parse(const char *line, size_t len, uintmax_t *seq_r, const char **rejected_r,
                          bool *mdn_send_r, const char **error_r);

#endif
