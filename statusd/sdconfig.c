/*
 * sdconfig - statusd's settings. See sdconfig.h and statusd.conf(5).
 */
#include "sdconfig.h"

#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "fedrec.h"
#include "msevent.h"
#include "msg.h"

#define S(name, type, def, min, max)                                                               \
	{                                                                                          \
#name, type, def, offsetof(struct sd_config, name), min, max                       \
	}

const struct conf_setting sdconfig_table[] = {
        S(events_socket, CONF_STR, "/run/msgstatus/events.sock", 0, 0),
        S(events_socket_mode, CONF_STR, "0660", 0, 0),
        S(events_socket_group, CONF_STR, "", 0, 0),
        S(http_listen, CONF_STR, "127.0.0.1:8025", 0, 0),
        S(http_tls_cert, CONF_STR, "", 0, 0),
        S(http_tls_key, CONF_STR, "", 0, 0),
        S(http_cors_origins, CONF_STR, "", 0, 0),
        S(http_body_max, CONF_SIZE, "64k", 1024, 16 * 1024 * 1024),
        S(http_dashboard, CONF_BOOL, "yes", 0, 0),
        S(http_head_timeout, CONF_TIME, "10s", 1000, 300000),
        S(http_head_pending_max, CONF_INT, "1024", 1, 1000000),
        S(auth_secret_file, CONF_STR, "", 0, 0),
        S(auth_token_max_lifetime, CONF_TIME, "1d", 60000, 30LL * 86400000),
        S(write_rate, CONF_INT, "10", 1, 100000),
        S(write_burst, CONF_INT, "20", 1, 100000),
        S(feed_buffer_max, CONF_SIZE, "1m", 16384, 1LL << 30),
        S(feed_ping_interval, CONF_TIME, "30s", 1000, 3600000),
        S(feed_max_per_user, CONF_INT, "64", 1, 1000000),
        S(feed_threads, CONF_INT, "2", 1, 64),
        S(presence_timeout, CONF_TIME, "5m", 10000, 86400000),
        S(webhook_urls, CONF_STR, "", 0, 0),
        S(webhook_secret_file, CONF_STR, "", 0, 0),
        S(webhook_timeout, CONF_TIME, "10s", 100, 300000),
        S(webhook_retry_max, CONF_TIME, "10m", 1000, 86400000),
        S(database, CONF_STR, "dbname=msgstatus", 0, 0),
        S(database_migrate, CONF_BOOL, "yes", 0, 0),
        S(database_retry_max, CONF_TIME, "5s", 100, 3600000),
        S(sql_dir, CONF_STR, MSGSTATUS_DATADIR "/sql", 0, 0),
        S(event_retention, CONF_TIME, "90d", 86400000LL, 36500LL * 86400000LL),
        S(maintenance_interval, CONF_TIME, "1h", 1000, 86400000),
        S(ingest_record_max, CONF_SIZE, "16k", 1024, MSEVENT_RECORD_MAX),
        S(ingest_batch_max, CONF_INT, "2000", 1, 100000),
        S(pickup_dir, CONF_STR, "/var/spool/msgstatus/pickup", 0, 0),
        S(pickup_interval, CONF_TIME, "5s", 100, 3600000),
        S(federation_key_dir, CONF_STR, "/var/lib/msgstatus/federation-keys", 0, 0),
        S(federation_endpoint, CONF_STR, "", 0, 0),
        S(federation_policy, CONF_STR, "default:delivered,read", 0, 0),
        S(federation_batch_delay, CONF_TIME, "0ms", 0, 1000),
        S(federation_send_rate, CONF_INT, "10", 1, 100000),
        S(federation_send_burst, CONF_INT, "20", 1, 100000),
        S(federation_timeout, CONF_TIME, "10s", 100, 300000),
        S(federation_retry_max, CONF_TIME, "10m", 1000, 86400000),
        S(federation_expiry, CONF_TIME, "3d", 60000, 30LL * 86400000),
        S(federation_ca_file, CONF_STR, "", 0, 0),
        S(federation_report_max, CONF_SIZE, "60k", 1024, 256 * 1024),
        S(dns_server, CONF_STR, "", 0, 0),
        S(dns_trust_anchor_file, CONF_STR, "", 0, 0),
        S(dns_timeout, CONF_TIME, "3s", 100, 60000),
        S(dns_cache_size, CONF_INT, "10000", 0, 10000000),
        S(dns_cache_max_ttl, CONF_TIME, "1h", 0, 86400000),
        S(federation_accept, CONF_STR, "auto", 0, 0),
        S(federation_rate, CONF_INT, "10", 1, 100000),
        S(federation_burst, CONF_INT, "50", 1, 100000),
        S(federation_unknown_window, CONF_TIME, "2m", 0, 86400000),
        S(federation_client_rate, CONF_INT, "20", 1, 100000),
        S(federation_client_burst, CONF_INT, "100", 1, 100000),
        S(mdn_sendmail, CONF_STR, "/usr/sbin/sendmail", 0, 0),
        S(log_target, CONF_STR, "stderr", 0, 0),
        S(syslog_facility, CONF_STR, "mail", 0, 0),
        S(verbose, CONF_BOOL, "no", 0, 0),
        CONF_END,
};

/* "host:port" with host an IPv4/IPv6 literal or a name; "[::1]:8025" for IPv6. */
static int
split_hostport(const char *s, char *host, size_t hostsize, int *port_r)
{
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	long port;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostsize)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return -1;
	*port_r = (int)port;
	return 0;
}

int
sdconfig_load(struct sd_config *cfg, const char *path, const char **error_r)
{
	const char *where = path ? path : "(defaults)";
	unsigned mode;

	if (conf_load(sdconfig_table, cfg, path, error_r) < 0)
		return -1;
	if (conf_check_mode(where, "events_socket_mode", cfg->events_socket_mode, &mode, error_r) <
	    0)
		return -1;
	cfg->socket_mode = (mode_t)mode;
	cfg->socket_gid = (gid_t)-1;
	if (*cfg->events_socket_group != '\0') {
		struct group *gr = getgrnam(cfg->events_socket_group);
		if (gr == NULL) {
			*error_r = errfmt("%s: events_socket_group: no group \"%s\"", where,
			                  cfg->events_socket_group);
			return -1;
		}
		cfg->socket_gid = gr->gr_gid;
	}
	if (cfg->pickup_dir[0] != '\0' && cfg->pickup_dir[0] != '/') {
		*error_r = errfmt("%s: pickup_dir: expected an absolute path or nothing", where);
		return -1;
	}
	if (cfg->federation_key_dir[0] != '/') {
		*error_r = errfmt("%s: federation_key_dir: expected an absolute path", where);
		return -1;
	}
	if (cfg->federation_endpoint[0] != '\0') {
		char txt[FEDREC_TXT_MAX + 1];
		const char *why;

		if (fedrec_format_msr(cfg->federation_endpoint, txt, &why) < 0) {
			*error_r = errfmt("%s: federation_endpoint: %s", where, why);
			return -1;
		}
	}
	if (strcmp(cfg->federation_accept, "yes") == 0)
		cfg->federation_accepting = true;
	else if (strcmp(cfg->federation_accept, "no") == 0)
		cfg->federation_accepting = false;
	else if (strcmp(cfg->federation_accept, "auto") == 0)
		cfg->federation_accepting = cfg->federation_endpoint[0] != '\0';
	else {
		*error_r = errfmt("%s: federation_accept: expected yes, no or auto", where);
		return -1;
	}
	if (fedpolicy_parse(cfg->federation_policy, &cfg->fed_policy, error_r) < 0) {
		*error_r = errfmt("%s: federation_policy: %s", where, *error_r);
		return -1;
	}
	cfg->fed_policy_any = cfg->fed_policy.dflt != FEDPOLICY_NONE;
	for (size_t i = 0; i < cfg->fed_policy.n; i++)
		cfg->fed_policy_any |= cfg->fed_policy.rules[i].level != FEDPOLICY_NONE;
	if (cfg->events_socket[0] != '/') {
		*error_r = errfmt("%s: events_socket: expected an absolute path", where);
		return -1;
	}
	if (split_hostport(cfg->http_listen, cfg->http_host, sizeof(cfg->http_host),
	                   &cfg->http_port) < 0) {
		*error_r =
		        errfmt("%s: http_listen: expected host:port such as 127.0.0.1:8025", where);
		return -1;
	}
	if ((cfg->http_tls_cert[0] == '\0') != (cfg->http_tls_key[0] == '\0')) {
		*error_r = errfmt("%s: http_tls_cert and http_tls_key go together", where);
		return -1;
	}
	if (cfg->webhook_urls[0] != '\0' && cfg->webhook_secret_file[0] == '\0') {
		*error_r =
		        errfmt("%s: webhook_urls needs webhook_secret_file (deliveries are signed)",
		               where);
		return -1;
	}
	return conf_check_logging(where, cfg->log_target, cfg->syslog_facility, error_r);
}

const char *
sdconfig_default_path(const char *path)
{
	return access(path, F_OK) == 0 ? path : NULL;
}

void
sdconfig_free(struct sd_config *cfg)
{
	conf_free(sdconfig_table, cfg);
	fedpolicy_free(&cfg->fed_policy);
}
