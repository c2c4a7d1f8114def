/*
 * mconfig - msgstatus-milter's settings. See mconfig.h and msgstatus-milter.conf(5).
 */
#include "mconfig.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "envmac.h"
#include "msg.h"
#include "mymalloc.h"

#define S(name, type, def, min, max)                                                               \
	{                                                                                          \
#name, type, def, offsetof(struct mconfig, name), min, max                         \
	}

const struct conf_setting mconfig_table[] = {
        S(milter_socket, CONF_STR, "unix:/run/msgstatus/milter.sock", 0, 0),
        S(milter_socket_mode, CONF_STR, "0660", 0, 0),
        S(events_socket, CONF_STR, "/run/msgstatus/events.sock", 0, 0),
        S(spool_dir, CONF_STR, "/var/spool/msgstatus/milter", 0, 0),
        S(spool_max_size, CONF_SIZE, "1g", 1048576, 1LL << 40),
        S(spool_segment_size, CONF_SIZE, "16m", 65536, 1LL << 30),
        S(spool_sync, CONF_BOOL, "no", 0, 0),
        S(milter_timeout, CONF_TIME, "10s", 1000, 300000),
        S(max_recipients, CONF_INT, "10000", 1, 1000000),
        S(dsn_transports, CONF_STR, "smtp relay", 0, 0),
        S(dkim_verify, CONF_BOOL, "yes", 0, 0),
        S(report_secret_file, CONF_STR, "", 0, 0),
        S(read_reports, CONF_BOOL, "yes", 0, 0),
        S(dns_server, CONF_STR, "", 0, 0),
        S(dns_trust_anchor_file, CONF_STR, "", 0, 0),
        S(dns_timeout, CONF_TIME, "3s", 100, 60000),
        S(dns_cache_size, CONF_INT, "10000", 0, 10000000),
        S(dns_cache_max_ttl, CONF_TIME, "1h", 0, 86400000),
        S(log_target, CONF_STR, "stderr", 0, 0),
        S(syslog_facility, CONF_STR, "mail", 0, 0),
        S(verbose, CONF_BOOL, "no", 0, 0),
        CONF_END,
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mconfig *current;

struct mconfig *
mconfig_load(const char *path, const char **error_r)
{
	struct mconfig *cfg = mycalloc(1, sizeof(*cfg));
	const char *where = path ? path : "(defaults)";
	unsigned mode;

	cfg->refs = 1;
	if (conf_load(mconfig_table, cfg, path, error_r) < 0)
		goto bad;
	if (conf_check_mode(where, "milter_socket_mode", cfg->milter_socket_mode, &mode, error_r) <
	    0)
		goto bad;
	cfg->socket_mode = (mode_t)mode;
	if (strncmp(cfg->milter_socket, "unix:", 5) != 0 &&
	    strncmp(cfg->milter_socket, "local:", 6) != 0 &&
	    strncmp(cfg->milter_socket, "inet:", 5) != 0 &&
	    strncmp(cfg->milter_socket, "inet6:", 6) != 0) {
		*error_r = errfmt("%s: milter_socket: expected unix:/path or inet:port@address",
		                  where);
		goto bad;
	}
	if (cfg->events_socket[0] != '/' || cfg->spool_dir[0] != '/') {
		*error_r = errfmt("%s: events_socket and spool_dir must be absolute paths", where);
		goto bad;
	}
	if (cfg->spool_segment_size > cfg->spool_max_size) {
		*error_r = errfmt("%s: spool_segment_size must not exceed spool_max_size", where);
		goto bad;
	}
	if (cfg->dns_timeout >= cfg->milter_timeout) {
		*error_r = errfmt("%s: dns_timeout must be shorter than milter_timeout", where);
		goto bad;
	}
	if (conf_check_logging(where, cfg->log_target, cfg->syslog_facility, error_r) < 0)
		goto bad;
	if (cfg->report_secret_file[0] != '\0') {
		cfg->report_secret = mymalloc(ENVMAC_SECRET_MAX);
		if (envmac_load(cfg->report_secret_file, cfg->report_secret,
		                &cfg->report_secret_len, error_r) < 0) {
			*error_r = errfmt("%s: %s", where, *error_r);
			goto bad;
		}
	}
	return cfg;
bad:
	mconfig_unref(&cfg);
	return NULL;
}

struct mconfig *
mconfig_get(void)
{
	struct mconfig *cfg;

	pthread_mutex_lock(&current_lock);
	cfg = current;
	if (cfg == NULL)
		msg_panic("mconfig_get: no configuration");
	cfg->refs++;
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void
mconfig_set(struct mconfig *cfg)
{
	struct mconfig *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	mconfig_unref(&old);
}

void
mconfig_unref(struct mconfig **cfgp)
{
	struct mconfig *cfg = *cfgp;
	bool last;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	pthread_mutex_lock(&current_lock);
	last = --cfg->refs == 0;
	pthread_mutex_unlock(&current_lock);
	if (last) {
		conf_free(mconfig_table, cfg);
		if (cfg->report_secret != NULL)
			OPENSSL_cleanse(cfg->report_secret, ENVMAC_SECRET_MAX);
		free(cfg->report_secret);
		free(cfg);
	}
}
