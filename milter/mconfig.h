/*
 * mconfig - msgstatus-milter's settings (msgstatus-milter.conf(5) documents each one).
 *
 * DESIGN
 *	A loaded configuration is an immutable, reference-counted snapshot. SIGHUP (through the
 *	supervisor, see main.c) loads a new one and swaps it in; a milter connection keeps the
 *	snapshot it started with until it closes, the sender thread picks up the new one at its
 *	next turn. Settings that cannot change while running (the milter socket, the spool
 *	directory) are reported and keep their old values until a restart.
 */
#ifndef MCONFIG_H
#define MCONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"

struct mconfig {
	char *milter_socket;
	char *milter_socket_mode;
	char *events_socket;
	char *spool_dir;
	long long spool_max_size;     /* bytes */
	long long spool_segment_size; /* bytes */
	bool spool_sync;
	long long milter_timeout; /* ms */
	long long max_recipients;
	char *dsn_transports;     /* {rcpt_mailer} values that mean "not delivered here" */
	bool dkim_verify;         /* check mail with a foreign Msgstatus-Id (dkimverify.h) */
	char *report_secret_file; /* the ENVID's mac key (envmac.h); "" for none */
	bool read_reports;        /* read DSNs and MDNs that come back (reportin.h) */
	char *dns_server;         /* "" : /etc/resolv.conf; else ADDRESS[@PORT] */
	char *dns_trust_anchor_file;
	long long dns_timeout;       /* ms: the DNS budget of one message */
	long long dns_cache_size;    /* answers */
	long long dns_cache_max_ttl; /* ms */
	char *log_target;
	char *syslog_facility;
	bool verbose;

	/* derived */
	unsigned char *report_secret; /* report_secret_file's bytes, NULL if none */
	size_t report_secret_len;
	mode_t socket_mode;
	int refs;
};

extern const struct conf_setting mconfig_table[];

/* Load a snapshot (refs = 1); NULL and *error_r on a bad file. */
struct mconfig *mconfig_load(const char *path, const char **error_r);
/* The current snapshot, with a reference the caller must drop. */
struct mconfig *mconfig_get(void);
/* Make cfg current (the registry takes over the caller's reference). */
void mconfig_set(struct mconfig *cfg);
void mconfig_unref(struct mconfig **cfg);

#endif
