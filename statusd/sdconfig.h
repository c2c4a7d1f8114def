/*
 * sdconfig - statusd's settings (statusd.conf(5) documents each one).
 *
 * The table in sdconfig.c is the single list of settings: defaults, types and ranges live
 * there, and tests check that statusd.conf(5) and etc/statusd.conf mention every one.
 */
#ifndef SDCONFIG_H
#define SDCONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"
#include "fedpolicy.h"

struct sd_config {
	char *events_socket;
	char *events_socket_mode;
	char *events_socket_group;
	char *http_listen;
	char *http_tls_cert;
	char *http_tls_key;
	char *http_cors_origins;
	long long http_body_max; /* bytes */
	bool http_dashboard;
	long long http_head_timeout;     /* ms for a request head to arrive */
	long long http_head_pending_max; /* connections waiting for their request heads */
	char *auth_secret_file;
	long long auth_token_max_lifetime; /* ms */
	long long write_rate;              /* writes per second per user */
	long long write_burst;             /* writes */
	long long feed_buffer_max;         /* bytes queued per feed connection */
	long long feed_ping_interval;      /* ms */
	long long feed_max_per_user;       /* feed connections (WebSocket and SSE) per user */
	long long feed_threads;            /* event loops serving the feeds (feedloop.h) */
	long long presence_timeout;        /* ms */
	char *webhook_urls;
	char *webhook_secret_file;
	long long webhook_timeout;   /* ms */
	long long webhook_retry_max; /* ms */
	char *database;
	bool database_migrate;
	long long database_retry_max; /* ms */
	char *sql_dir;
	long long event_retention;      /* ms */
	long long maintenance_interval; /* ms */
	long long ingest_record_max;    /* bytes */
	long long ingest_batch_max;     /* events */
	char *pickup_dir;
	long long pickup_interval; /* ms */
	char *federation_key_dir;
	char *federation_endpoint;
	char *federation_policy;
	long long federation_batch_delay; /* ms */
	long long federation_send_rate;   /* reports per second per destination */
	long long federation_send_burst;  /* reports */
	long long federation_timeout;     /* ms */
	long long federation_retry_max;   /* ms */
	long long federation_expiry;      /* ms */
	char *federation_ca_file;
	long long federation_report_max; /* bytes of a report's body */
	char *dns_server;                /* resolver.h: "" = /etc/resolv.conf */
	char *dns_trust_anchor_file;     /* "" = no DNSSEC validation */
	long long dns_timeout;           /* ms: the longest one lookup may take */
	long long dns_cache_size;        /* answers kept */
	long long dns_cache_max_ttl;     /* ms */
	char *federation_accept;         /* yes, no, auto: yes when federation_endpoint is set */
	long long federation_rate;       /* reports per second per reporting domain */
	long long federation_burst;      /* reports */
	long long federation_unknown_window; /* ms: an event about an unknown message is sent
	                                        again (answered "later") this long */
	long long federation_client_rate;    /* reports per second per client address */
	long long federation_client_burst;   /* reports */
	char *mdn_sendmail;                  /* the command MDNs go to (mdnsend.h); "": none sent */
	char *log_target;
	char *syslog_facility;
	bool verbose;

	/* derived by sdconfig_check() */
	mode_t socket_mode;
	gid_t socket_gid; /* (gid_t)-1: leave as is */
	char http_host[64];
	int http_port;
	bool federation_accepting;   /* federation_accept, decided */
	struct fedpolicy fed_policy; /* federation_policy */
	bool fed_policy_any;         /* it sends something somewhere */
};

extern const struct conf_setting sdconfig_table[];

/* Load path (NULL: defaults) and check the values that need more than a range. */
int sdconfig_load(struct sd_config *cfg, const char *path, const char **error_r);
void sdconfig_free(struct sd_config *cfg);
/* The default configuration file if it exists, else NULL (all defaults). */
const char *sdconfig_default_path(const char *path);

#endif
