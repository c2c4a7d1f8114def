/*
 * lconfig - msgstatus-logd's settings. See lconfig.h and msgstatus-logd.conf(5).
 */
#include "lconfig.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define S(name, type, def, min, max)                                                               \
	{                                                                                          \
#name, type, def, offsetof(struct lconfig, name), min, max                         \
	}

const struct conf_setting lconfig_table[] = {
        S(maillog_file, CONF_STR, "/var/log/postfix.log", 0, 0),
        S(syslog_socket, CONF_STR, "", 0, 0),
        S(syslog_socket_mode, CONF_STR, "0660", 0, 0),
        S(events_socket, CONF_STR, "/run/msgstatus/events.sock", 0, 0),
        S(state_dir, CONF_STR, "/var/lib/msgstatus/logd", 0, 0),
        S(spool_max_size, CONF_SIZE, "1g", 1048576, 1LL << 40),
        S(delivered_services, CONF_STR, "lmtp, local, virtual", 0, 0),
        S(syslog_names, CONF_STR, "postfix", 0, 0),
        S(log_target, CONF_STR, "stderr", 0, 0),
        S(syslog_facility, CONF_STR, "mail", 0, 0),
        S(verbose, CONF_BOOL, "no", 0, 0),
        CONF_END,
};

int
lconfig_load(struct lconfig *cfg, const char *path, const char **error_r)
{
	const char *where = path ? path : "(defaults)";

	if (conf_load(lconfig_table, cfg, path, error_r) < 0)
		return -1;
	if (cfg->maillog_file[0] == '\0' && cfg->syslog_socket[0] == '\0') {
		*error_r = errfmt("%s: set maillog_file or syslog_socket (or both)", where);
		return -1;
	}
	if ((cfg->maillog_file[0] != '\0' && cfg->maillog_file[0] != '/') ||
	    (cfg->syslog_socket[0] != '\0' && cfg->syslog_socket[0] != '/') ||
	    cfg->events_socket[0] != '/' || cfg->state_dir[0] != '/') {
		*error_r =
		        errfmt("%s: maillog_file, syslog_socket, events_socket and state_dir must "
		               "be absolute paths",
		               where);
		return -1;
	}
	if (conf_check_mode(where, "syslog_socket_mode", cfg->syslog_socket_mode, &cfg->syslog_mode,
	                    error_r) < 0)
		return -1;
	return conf_check_logging(where, cfg->log_target, cfg->syslog_facility, error_r);
}

void
lconfig_free(struct lconfig *cfg)
{
	conf_free(lconfig_table, cfg);
}
