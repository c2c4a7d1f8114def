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
#include "istream.h"
#include "mail-user.h"
#include "notify-plugin.h"
#include "strnum.h"
#ifdef MSGSTATUS_DOVECOT_2_4
#include "json-istream.h"
#endif

/* --- statusd's replies: what both versions' parsers hand over ---------------------- */

enum reply_kind { REPLY_STRING, REPLY_NUMBER, REPLY_OTHER };

struct reply {
	bool have_seq, ack, mdn_send;
	uintmax_t seq;
	const char *error; /* statusd's reason, or NULL */
	const char *bad;   /* why this is no reply, or NULL */
};

/* One member of the reply object; value is its text (string or number), or NULL. */
static void
reply_member(struct reply *r, const char *name, enum reply_kind kind, const char *value)
{
	if (name == NULL || r->bad != NULL)
		return;
	if (strcmp(name, "seq") == 0) {
		if (kind != REPLY_NUMBER || str_to_uintmax(value, &r->seq) < 0 || r->seq == 0)
			r->bad = "seq is not a record number";
		r->have_seq = TRUE;
	} else if (strcmp(name, "ack") == 0) {
		if (kind != REPLY_STRING)
			r->bad = "ack is not an event id";
		r->ack = TRUE;
	} else if (strcmp(name, "mdn") == 0) {
		r->mdn_send = kind == REPLY_STRING && strcmp(value, "send") == 0;
	} else if (strcmp(name, "error") == 0) {
		if (kind != REPLY_STRING)
			r->bad = "error is not a text";
		else
			r->error = t_strdup(value);
	}
}

static int
reply_result(const struct reply *r, uintmax_t *seq_r, const char **rejected_r, bool *mdn_send_r,
             const char **error_r)
{
	if (r->bad != NULL)
		*error_r = r->bad;
	else if (!r->have_seq)
		*error_r = "no seq";
	else if (r->ack == (r->error != NULL))
		*error_r = "neither ack nor error, or both";
	else {
		*seq_r = r->seq;
		*rejected_r = r->error;
		*mdn_send_r = r->ack && r->mdn_send;
		return 0;
	}
	return -1;
}
#endif

#ifdef MSGSTATUS_DOVECOT_2_4

#undef DEF
#define DEF(type, name) SETTING_DEFINE_STRUCT_##type(#name, name, struct msgstatus_settings)
static const struct setting_define msgstatus_setting_defines[] = {
        DEF(STR, msgstatus_socket),
        DEF(STR, msgstatus_pickup_dir),
        DEF(BOOL, msgstatus_read_receipts),
        DEF(BOOL, msgstatus_presence),
        DEF(STR, msgstatus_mdn),

        SETTING_DEFINE_LIST_END,
};

static const struct msgstatus_settings msgstatus_default_settings = {
        .msgstatus_socket = MSGSTATUS_SOCKET_DEFAULT,
        .msgstatus_pickup_dir = MSGSTATUS_PICKUP_DEFAULT,
        .msgstatus_read_receipts = TRUE,
        .msgstatus_presence = TRUE,
        .msgstatus_mdn = "never",
};

/* An empty pickup directory means the default, as on 2.3; msgstatus_mdn is never or
   always. */
static bool
msgstatus_settings_check(void *_set, pool_t pool, const char **error_r)
{
	struct msgstatus_settings *set = _set;

	(void)pool;
	if (set->msgstatus_pickup_dir[0] == '\0')
		set->msgstatus_pickup_dir = MSGSTATUS_PICKUP_DEFAULT;
	if (strcmp(set->msgstatus_mdn, "never") != 0 && strcmp(set->msgstatus_mdn, "always") != 0) {
		*error_r = "msgstatus_mdn: must be never or always";
		return FALSE;
	}
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
int
msgstatus_reply_parse(const char *line, size_t len, uintmax_t *seq_r, const char **rejected_r,
                      bool *mdn_send_r, const char **error_r)
{
	struct istream *input = i_stream_create_from_data(line, len);
	struct json_istream *jinput = json_istream_create_object(input, NULL, 0);
	struct reply r = {0};
	struct json_node node;
	const char *error;
	int ret;

	while ((ret = json_istream_read_next(jinput, &node)) > 0 && !json_node_is_end(&node)) {
		intmax_t num;

		if (json_node_is_string(&node))
			reply_member(&r, node.name, REPLY_STRING, json_node_get_str(&node));
		else if (json_node_is_number(&node) && json_node_get_intmax(&node, &num) == 0 &&
		         num >= 0)
			reply_member(&r, node.name, REPLY_NUMBER, dec2str((uintmax_t)num));
		else
			reply_member(&r, node.name, REPLY_OTHER, NULL);
	}
	ret = json_istream_finish(&jinput, &error);
	if (ret == 0) {
		json_istream_unref(&jinput);
		error = "the line ends within the object";
	}
	i_stream_unref(&input);
	if (ret <= 0) {
		*error_r = t_strdup_printf("not JSON: %s", error);
		return -1;
	}
	return reply_result(&r, seq_r, rejected_r, mdn_send_r, error_r);
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
	value = mail_user_plugin_getenv(user, "msgstatus_mdn");
	set->msgstatus_mdn = value != NULL && *value != '\0' ? value : "never";
	if (strcmp(set->msgstatus_mdn, "never") != 0 && strcmp(set->msgstatus_mdn, "always") != 0) {
		*error_r = "msgstatus_mdn: must be never or always";
		return -1;
	}
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

int
msgstatus_reply_parse(const char *line, size_t len, uintmax_t *seq_r, const char **rejected_r,
                      bool *mdn_send_r, const char **error_r)
{
	struct istream *input = i_stream_create_from_data(line, len);
	struct json_parser *parser = json_parser_init(input);
	struct reply r = {0};
	enum json_type type;
	const char *value, *name = NULL, *error;
	int ret;

	while (json_parse_next(parser, &type, &value) > 0) {
		if (type == JSON_TYPE_OBJECT_KEY) {
			name = t_strdup(value);
			continue;
		}
		if (type == JSON_TYPE_OBJECT || type == JSON_TYPE_ARRAY) {
			/* statusd's replies are flat */
			r.bad = "a nested value";
			break;
		}
		reply_member(&r, name,
		             type == JSON_TYPE_STRING   ? REPLY_STRING
		             : type == JSON_TYPE_NUMBER ? REPLY_NUMBER
		                                        : REPLY_OTHER,
		             value);
		name = NULL;
	}
	ret = json_parser_deinit(&parser, &error);
	i_stream_unref(&input);
	if (ret < 0 && r.bad == NULL) {
		*error_r = t_strdup_printf("not JSON: %s", error);
		return -1;
	}
	return reply_result(&r, seq_r, rejected_r, mdn_send_r, error_r);
}

#endif
