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
	char *end;
	long mode;

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
	mode = strtol(cfg->syslog_socket_mode, &end, 8);
	if (*cfg->syslog_socket_mode == '\0' || *end != '\0' || mode < 0 || mode > 0777) {
		*error_r = errfmt("%s: syslog_socket_mode: expected an octal mode such as 0660",
		                  where);
		return -1;
	}
	if (strcmp(cfg->log_target, "stderr") != 0 && strcmp(cfg->log_target, "syslog") != 0) {
		*error_r = errfmt("%s: log_target: expected stderr or syslog", where);
		return -1;
	}
	if (msg_facility(cfg->syslog_facility) < 0) {
		*error_r = errfmt("%s: syslog_facility: unknown facility \"%s\"", where,
		                  cfg->syslog_facility);
		return -1;
	}
	return 0;
}

void
lconfig_free(struct lconfig *cfg)
{
	conf_free(lconfig_table, cfg);
}
