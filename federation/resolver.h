/*
 * resolver - DNS lookups for the federation and for DKIM: the TXT records that fedrec.c
 * parses (_msgstatus.<domain>, <selector>._msgstatus-key.<domain>) and DKIM keys
 * (<selector>._domainkey.<domain>), with the answers cached for their TTL (dnscache.h).
 *
 * Why libunbound (libunbound-dev) and not c-ares: libunbound hands over each answer's TTL
 * and the records' RDATA, and validates DNSSEC when given a trust anchor (docs/federation.md
 * asks for DNSSEC where the zone is signed; c-ares does not validate, and its TXT parser
 * drops the TTL, so we would have to parse DNS messages ourselves). It is what OpenDKIM
 * itself can be built with, and it is in Debian 12 and 13 under the same name. It also
 * gives a file descriptor (ub_fd) that an event loop (libuv's uv_poll) can watch.
 *
 * DESIGN
 *	One struct resolver per process, shared by all threads. Lookups are blocking calls for
 *	the caller's thread (the milter's connection threads), with a deadline: the query goes
 *	to libunbound's own worker thread (ub_ctx_async with threads, so no fork), and one
 *	dispatch thread of ours waits on ub_fd() and runs ub_process(), whose callbacks hand
 *	each answer to the waiting caller (a mutex and a condition variable). A caller whose
 *	deadline passes cancels the query (ub_cancel) and returns DNS_TEMPFAIL; exactly one of
 *	the caller (cancel succeeded) and the callback (it ran) frees the query.
 *	The cache is consulted first and filled with every answer, positive or negative, for
 *	min(TTL, cache_max_ttl); a temporary failure is not cached. A lookup of a name that
 *	another thread is looking up already (the same cache key) does not query again: it
 *	waits, at most its own timeout, for that lookup's answer and gets a copy of it,
 *	whatever it is (a temporary failure too, and an answer with a TTL of 0 that is not
 *	cached). So concurrent lookups of one key record or DKIM key cost one query.
 *	Settings: server ("ADDRESS" or "ADDRESS@PORT"): send every query to that server (a
 *	forwarder, or in tests a private authoritative server on loopback) instead of the
 *	servers of /etc/resolv.conf (without one, libunbound resolves from the root servers
 *	itself, with a warning); trust_anchor_file: DNSSEC validation with that anchor.
 *
 * SECURITY
 *	Names are checked (printable ASCII, at most 253 bytes without the final dot) before
 *	they are sent. Answers are untrusted: TXT RDATA is split by dns_txt_rdata(), which
 *	bounds every length byte, and at most RESOLVER_TXT_MAX records of one name are kept.
 *	With a trust anchor, a bogus answer is DNS_BOGUS, never data.
 *
 * DIAGNOSTICS
 *	resolver_new() returns NULL with *error_r for a bad setting (the caller names the
 *	setting and the file). Lookups return a status; DNS_TEMPFAIL and DNS_BOGUS come with a
 *	reason in *error_r (static text or libunbound's).
 */
#ifndef RESOLVER_H
#define RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "dnscache.h"

#define RESOLVER_TXT_MAX 32 /* records of one name kept; more are ignored */

struct resolver_settings {
	const char *server;            /* "ADDRESS[@PORT]", NULL or "": /etc/resolv.conf */
	const char *trust_anchor_file; /* NULL or "": no DNSSEC validation */
	int64_t timeout_ms;            /* per lookup */
	int64_t cache_max_ttl_ms;      /* an answer is kept at most this long (here, and in
	                                  libunbound's own cache, there in whole seconds) */
	int64_t negative_ttl_ms;       /* NODATA kept this long when the answer has no TTL */
	size_t cache_max_entries;
};

/* The settings of a configuration with the dns_* settings (msgstatus-milter.conf(5),
   statusd.conf(5)), which name them alike: an initializer for struct resolver_settings. */
#define RESOLVER_SETTINGS_OF(cfg)                                                                  \
	{                                                                                          \
		.server = (cfg)->dns_server, .trust_anchor_file = (cfg)->dns_trust_anchor_file,    \
		.timeout_ms = (cfg)->dns_timeout, .cache_max_ttl_ms = (cfg)->dns_cache_max_ttl,    \
		.negative_ttl_ms = 60000, .cache_max_entries = (size_t)(cfg)->dns_cache_size,      \
	}

struct resolver;

struct resolver *resolver_new(const struct resolver_settings *s, const char **error_r);
void resolver_free(struct resolver **r);

/*
 * The TXT records at name: a new answer the caller frees with dns_txt_free(); never NULL.
 * Its status says what was found; for DNS_TEMPFAIL and DNS_BOGUS *error_r says why.
 */
struct dns_txt *resolver_txt(struct resolver *r, const char *name, const char **error_r);

/* Lookups that reached the network, answers from the cache, and lookups that waited for
   the same name's lookup in flight (for tests and logging). */
void resolver_counters(struct resolver *r, uint64_t *queries_r, uint64_t *cache_hits_r,
                       uint64_t *joined_r);

#endif
