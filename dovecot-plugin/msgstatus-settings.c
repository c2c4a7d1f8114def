/*
 * msgstatus - the plugin's settings on Dovecot 2.3 and 2.4 (msgstatus-settings.h says
 * what differs and why this is the one file that knows).
 *
 * Built twice on 2.4: into the plugin, and alone (MSGSTATUS_SETTINGS_MODULE) as
 * lib90_msgstatus_settings.so, which Dovecot's config process loads from
 * modules/settings to learn the settings' names, types and defaults. That module holds
 * the setting_parser_info only: nothing that needs the notify plugin or lib-storage.
 */
#include "lib.h"
#include "msgstatus-settings.h"

#ifdef MSGSTATUS_DOVECOT_2_4
#include "settings.h"
#include "settings-parser.h"
#endif
#ifndef MSGSTATUS_SETTINGS_MODULE
#include "mail-user.h"
#include "notify-plugin.h"
#endif

#ifdef MSGSTATUS_DOVECOT_2_4

#undef DEF
#define DEF(type, name) SETTING_DEFINE_STRUCT_##type(#name, name, struct msgstatus_settings)
static const struct setting_define msgstatus_setting_defines[] = {
        DEF(STR, msgstatus_socket),
        DEF(STR, msgstatus_pickup_dir),
        DEF(BOOL, msgstatus_read_receipts),
        DEF(BOOL, msgstatus_presence),

        SETTING_DEFINE_LIST_END,
};

static const struct msgstatus_settings msgstatus_default_settings = {
        .msgstatus_socket = MSGSTATUS_SOCKET_DEFAULT,
        .msgstatus_pickup_dir = MSGSTATUS_PICKUP_DEFAULT,
        .msgstatus_read_receipts = TRUE,
        .msgstatus_presence = TRUE,
};

/* An empty pickup directory means the default, as on 2.3. */
static bool
msgstatus_settings_check(void *_set, pool_t pool, const char **error_r)
{
	struct msgstatus_settings *set = _set;

	(void)pool;
	(void)error_r;
	if (set->msgstatus_pickup_dir[0] == '\0')
		set->msgstatus_pickup_dir = MSGSTATUS_PICKUP_DEFAULT;
	return TRUE;
}

const struct setting_parser_info msgstatus_setting_parser_info = {
        .name = "msgstatus",

        .defines = msgstatus_setting_defines,
        .defaults = &msgstatus_default_settings,
        .check_func = msgstatus_settings_check,

        .struct_size = sizeof(struct msgstatus_settings),
        .pool_offset1 = 1 + offsetof(struct msgstatus_settings, pool),
};

#ifdef MSGSTATUS_SETTINGS_MODULE
/* What the config process looks up in lib90_msgstatus_settings.so. */
extern const char *msgstatus_settings_version;
extern const struct setting_parser_info *msgstatus_settings_set_infos[];

const char *msgstatus_settings_version = DOVECOT_ABI_VERSION;
const struct setting_parser_info *msgstatus_settings_set_infos[] = {
        &msgstatus_setting_parser_info,
        NULL,
};
#else

int
msgstatus_settings_get(struct mail_user *user, const struct msgstatus_settings **set_r,
                       const char **error_r)
{
	return settings_get(user->event, &msgstatus_setting_parser_info, 0, set_r, error_r);
}

void
msgstatus_settings_free(const struct msgstatus_settings **set)
{
	settings_free(*set);
}

void
msgstatus_notify_unregister(struct notify_context **ctx)
{
	notify_unregister(ctx);
}
#endif /* MSGSTATUS_SETTINGS_MODULE */

#else /* Dovecot 2.3 */

static bool
setting_is_no(const char *value)
{
	return value != NULL && (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
	                         strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0);
}

int
msgstatus_settings_get(struct mail_user *user, const struct msgstatus_settings **set_r,
                       const char **error_r)
{
	struct msgstatus_settings *set = p_new(user->pool, struct msgstatus_settings, 1);
	const char *value;

	(void)error_r;
	set->pool = user->pool;
	value = mail_user_plugin_getenv(user, "msgstatus_socket");
	set->msgstatus_socket = value != NULL ? value : MSGSTATUS_SOCKET_DEFAULT;
	value = mail_user_plugin_getenv(user, "msgstatus_pickup_dir");
	set->msgstatus_pickup_dir =
	        value != NULL && *value != '\0' ? value : MSGSTATUS_PICKUP_DEFAULT;
	set->msgstatus_read_receipts =
	        !setting_is_no(mail_user_plugin_getenv(user, "msgstatus_read_receipts"));
	set->msgstatus_presence =
	        !setting_is_no(mail_user_plugin_getenv(user, "msgstatus_presence"));
	*set_r = set;
	return 0;
}

void
msgstatus_settings_free(const struct msgstatus_settings **set)
{
	/* in the user's pool, freed with the user */
	*set = NULL;
}

void
msgstatus_notify_unregister(struct notify_context **ctx)
{
	notify_unregister(*ctx);
	*ctx = NULL;
}

#endif
