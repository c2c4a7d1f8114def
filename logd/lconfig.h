/*
 * lconfig - msgstatus-logd's settings (msgstatus-logd.conf(5) documents each one).
 */
#ifndef LCONFIG_H
#define LCONFIG_H

#include <stdbool.h>

#include "conf.h"

struct lconfig {
	char *maillog_file;
	char *syslog_socket;
	char *syslog_socket_mode;
	char *events_socket;
	char *state_dir;
	long long spool_max_size;
	char *delivered_services;
	char *syslog_names;
	char *log_target;
	char *syslog_facility;
	bool verbose;

	unsigned syslog_mode; /* syslog_socket_mode, parsed */
};

extern const struct conf_setting lconfig_table[];

int lconfig_load(struct lconfig *cfg, const char *path, const char **error_r);
void lconfig_free(struct lconfig *cfg);

#endif
