/*
 * test_fedaccept - unit tests for statusd/fedaccept, the decisions of the report endpoint
 * (docs/federation.md, "Receiving a report"): the error table (status and code of each
 * failure), the media type, which check a failed verification stopped at, the claims of a
 * report against its key's domain, each event's verdict, the stored event id, and the rate
 * limits per reporting domain and per client address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "fedaccept.h"
#include "httpsig.h"
#include "mimistatus.h"

#include "check.h"

/* The protocol's table (docs/federation.md, "Errors"): a sender acts on these. */
static const struct {
	enum fedin_err err;
	unsigned status;
	const char *code;
} errors[] = {
        {FEDIN_OK, 200, "ok"},
        {FEDIN_DISABLED, 404, "not-accepting"},
        {FEDIN_CONTENT_TYPE, 415, "content-type"},
        {FEDIN_TOO_LARGE, 413, "too-large"},
        {FEDIN_MALFORMED, 400, "malformed"},
        {FEDIN_SIGNATURE_MISSING, 401, "signature-missing"},
        {FEDIN_SIGNATURE_INVALID, 401, "signature-invalid"},
        {FEDIN_PROFILE, 401, "signature-profile"},
        {FEDIN_STALE, 401, "stale"},
        {FEDIN_DIGEST, 401, "digest-mismatch"},
        {FEDIN_KEY_UNKNOWN, 403, "key-unknown"},
        {FEDIN_KEY_REVOKED, 403, "key-revoked"},
        {FEDIN_DOMAIN_MISMATCH, 403, "domain-mismatch"},
        {FEDIN_RECIPIENT_DOMAIN, 403, "recipient-domain"},
        {FEDIN_REPLAY, 409, "replay"},
        {FEDIN_RATE_LIMITED, 429, "rate-limited"},
        {FEDIN_DNS_UNAVAILABLE, 503, "dns-unavailable"},
        {FEDIN_DB_UNAVAILABLE, 503, "storage-unavailable"},
        {FEDIN_BUSY, 503, "busy"},
        {FEDIN_CLIENT_LIMITED, 429, "client-rate-limited"},
};

static void
test_errors(void **state)
{
	(void)state;
	CHECK_INT("every failure in the table", sizeof(errors) / sizeof(errors[0]), FEDIN_ERR_MAX);
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		const struct fedin_errinfo *e = fedin_errinfo(errors[i].err);

		CHECK_INT(errors[i].code, e->status, errors[i].status);
		CHECK_STR(errors[i].code, e->code, errors[i].code);
		for (size_t k = 0; k < i; k++)
			CHECK_INT("codes are distinct", strcmp(e->code, errors[k].code) != 0, true);
	}
	check_done();
}

static void
test_content_type(void **state)
{
	(void)state;
	CHECK_INT("exact", fedaccept_content_type_ok("application/vnd.msgstatus.report+cbor"), 1);
	CHECK_INT("case", fedaccept_content_type_ok("Application/VND.msgstatus.Report+CBOR"), 1);
	CHECK_INT("blanks", fedaccept_content_type_ok(" application/vnd.msgstatus.report+cbor "),
	          1);
	CHECK_INT("bare MIMI", fedaccept_content_type_ok("application/mimi-message-status"), 0);
	CHECK_INT("a parameter",
	          fedaccept_content_type_ok("application/vnd.msgstatus.report+cbor; v=1"), 0);
	CHECK_INT("cbor", fedaccept_content_type_ok("application/cbor"), 0);
	CHECK_INT("absent", fedaccept_content_type_ok(NULL), 0);
	CHECK_INT("empty", fedaccept_content_type_ok(""), 0);
	check_done();
}

static void
test_verify_failure(void **state)
{
	struct httpsig_params p;
	const int64_t now = 1765017000;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.has_created = p.has_expires = true;
	p.created = now - 10;
	p.expires = now + 290;
	CHECK_INT("unparsable", fedaccept_verify_failure(NULL, false, false, now, 60, 300),
	          FEDIN_SIGNATURE_INVALID);
	CHECK_INT("parsed, no key lookup: the profile",
	          fedaccept_verify_failure(&p, false, false, now, 60, 300), FEDIN_PROFILE);
	CHECK_INT("fresh, after the key: the signature",
	          fedaccept_verify_failure(&p, true, false, now, 60, 300), FEDIN_SIGNATURE_INVALID);
	CHECK_INT("after the replay check: the digest",
	          fedaccept_verify_failure(&p, true, true, now, 60, 300), FEDIN_DIGEST);
	p.expires = now; /* expires must be later than now */
	CHECK_INT("expired", fedaccept_verify_failure(&p, true, false, now, 60, 300), FEDIN_STALE);
	p.created = now + 61;
	p.expires = now + 200;
	CHECK_INT("created in the future", fedaccept_verify_failure(&p, true, false, now, 60, 300),
	          FEDIN_STALE);
	p.created = now - 10;
	p.expires = now + 291;
	CHECK_INT("too long a life", fedaccept_verify_failure(&p, true, false, now, 60, 300),
	          FEDIN_STALE);
	check_done();
}

/* The checks made before a report waits for its key (table-driven). */
static void
test_precheck(void **state)
{
	const int64_t now = 1765017000;
	static const struct {
		const char *what, *alg, *keyid, *nonce, *extra;
		int64_t created, expires;
		enum fedin_err want;
	} cases[] = {
	        {"the profile", "ed25519", "s1._msgstatus-key.example.net", "n", NULL, -10, 290,
	         FEDIN_OK},
	        {"@authority too", "ed25519", "s1._msgstatus-key.example.net", "n", "@authority",
	         -10, 290, FEDIN_OK},
	        {"another alg", "rsa-pss-sha512", "s1._msgstatus-key.example.net", "n", NULL, -10,
	         290, FEDIN_PROFILE},
	        {"no alg", "", "s1._msgstatus-key.example.net", "n", NULL, -10, 290, FEDIN_PROFILE},
	        {"a field not rebuilt", "ed25519", "s1._msgstatus-key.example.net", "n", "date",
	         -10, 290, FEDIN_PROFILE},
	        {"content-length", "ed25519", "s1._msgstatus-key.example.net", "n",
	         "content-length", -10, 290, FEDIN_PROFILE},
	        {"no nonce", "ed25519", "s1._msgstatus-key.example.net", "", NULL, -10, 290,
	         FEDIN_PROFILE},
	        {"keyid of another form", "ed25519", "s1.example.net", "n", NULL, -10, 290,
	         FEDIN_PROFILE},
	        {"expired", "ed25519", "s1._msgstatus-key.example.net", "n", NULL, -300, 0,
	         FEDIN_STALE},
	        {"created in the future", "ed25519", "s1._msgstatus-key.example.net", "n", NULL, 61,
	         200, FEDIN_STALE},
	        {"too long a life", "ed25519", "s1._msgstatus-key.example.net", "n", NULL, -10, 291,
	         FEDIN_STALE},
	};
	struct httpsig_params p;
	const char *detail;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&p, 0, sizeof(p));
		for (size_t k = 0; k < FEDACCEPT_NREQUIRED; k++)
			snprintf(p.components[p.ncomponents++], sizeof(p.components[0]), "%s",
			         fedaccept_required[k]);
		if (cases[i].extra != NULL)
			snprintf(p.components[p.ncomponents++], sizeof(p.components[0]), "%s",
			         cases[i].extra);
		snprintf(p.alg, sizeof(p.alg), "%s", cases[i].alg);
		snprintf(p.keyid, sizeof(p.keyid), "%s", cases[i].keyid);
		snprintf(p.nonce, sizeof(p.nonce), "%s", cases[i].nonce);
		p.has_created = p.has_expires = true;
		p.created = now + cases[i].created;
		p.expires = now + cases[i].expires;
		detail = NULL;
		CHECK_INT(cases[i].what, fedaccept_precheck(&p, now, 60, 300, &detail),
		          cases[i].want);
		CHECK_INT("a detail", cases[i].want == FEDIN_OK || detail != NULL, true);
	}
	memset(&p, 0, sizeof(p));
	snprintf(p.components[p.ncomponents++], sizeof(p.components[0]), "@method");
	snprintf(p.alg, sizeof(p.alg), "ed25519");
	CHECK_INT("a required component missing", fedaccept_precheck(&p, now, 60, 300, &detail),
	          FEDIN_PROFILE);
	check_done();
}

static void
test_recipient_in(void **state)
{
	(void)state;
	CHECK_INT("plain", fedaccept_recipient_in("bob@example.net", "example.net"), 1);
	CHECK_INT("case", fedaccept_recipient_in("Bob@Example.NET", "example.net"), 1);
	CHECK_INT("subdomain", fedaccept_recipient_in("bob@sub.example.net", "example.net"), 0);
	CHECK_INT("parent", fedaccept_recipient_in("bob@net", "example.net"), 0);
	CHECK_INT("suffix", fedaccept_recipient_in("bob@badexample.net", "example.net"), 0);
	CHECK_INT("last @ counts",
	          fedaccept_recipient_in("bob@example.net@evil.example", "example.net"), 0);
	CHECK_INT("quoted @",
	          fedaccept_recipient_in("\"a@evil.example\"@example.net", "example.net"), 1);
	CHECK_INT("no local part", fedaccept_recipient_in("@example.net", "example.net"), 0);
	CHECK_INT("no @", fedaccept_recipient_in("example.net", "example.net"), 0);
	check_done();
}

static void
test_claims(void **state)
{
	struct mimistatus_entry entries[2];
	struct mimistatus_event events[2] = {{"ev-1", "bob@example.net", 1},
	                                     {"ev-2", "carol@example.net", 2}};
	struct mimistatus_report rep = {"example.net", 2, entries, events};
	const char *detail = NULL;

	(void)state;
	memset(entries, 0, sizeof(entries));
	CHECK_INT("all in the key's domain", fedaccept_claims(&rep, "example.net", &detail),
	          FEDIN_OK);
	CHECK_INT("the key's domain in another case",
	          fedaccept_claims(&rep, "EXAMPLE.net", &detail), FEDIN_OK);
	CHECK_INT("another domain's key", fedaccept_claims(&rep, "other.example", &detail),
	          FEDIN_DOMAIN_MISMATCH);
	CHECK_HAS("detail", detail, "domain");
	events[1].recipient = "carol@other.example";
	CHECK_INT("a recipient elsewhere", fedaccept_claims(&rep, "example.net", &detail),
	          FEDIN_RECIPIENT_DOMAIN);
	CHECK_HAS("detail", detail, "recipient");
	rep.domain = NULL; /* a bare MIMI report: no domain */
	CHECK_INT("no domain", fedaccept_claims(&rep, "example.net", &detail),
	          FEDIN_DOMAIN_MISMATCH);
	check_done();
}

static void
test_event(void **state)
{
	static const struct {
		unsigned code;
		int64_t time_ms;
		enum fedaccept_verdict want;
		const char *type;
	} rows[] = {
	        {1, 0, FEDACCEPT_STORE, "delivered"},
	        {2, 0, FEDACCEPT_STORE, "read"},
	        {0, 0, FEDACCEPT_STORE, "unread"},
	        {4, 0, FEDACCEPT_STORE, "deleted"},
	        {3, 0, FEDACCEPT_IGNORE, NULL}, /* expired: A's own */
	        {5, 0, FEDACCEPT_IGNORE, NULL}, /* hidden */
	        {6, 0, FEDACCEPT_IGNORE, NULL}, /* error: A's own (bounced) */
	        {7, 0, FEDACCEPT_IGNORE, NULL},
	        {255, 0, FEDACCEPT_IGNORE, NULL},
	        {2, -1000 * 1000 - 1, FEDACCEPT_REFUSE, "read"}, /* older than the retention */
	        {2, -1000 * 1000, FEDACCEPT_STORE, "read"},
	        {2, 24LL * 3600 * 1000, FEDACCEPT_STORE, "read"},
	        {2, 24LL * 3600 * 1000 + 1, FEDACCEPT_REFUSE, "read"}, /* over a day ahead */
	};
	const int64_t now = 1765017000000;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *type = NULL;
		char what[32];

		snprintf(what, sizeof(what), "row %zu", i);
		CHECK_INT(what,
		          fedaccept_event(rows[i].code, now + rows[i].time_ms, now, 1000 * 1000,
		                          &type),
		          rows[i].want);
		CHECK_STR(what, type, rows[i].type);
	}
	check_done();
}

static void
test_unknown(void **state)
{
	/* an event about a message this site does not know: sent again while the later of the
	   event's time (now if it is ahead, refused if more than the window ahead) and the
	   start is less than the window ago; window 0 refuses at once */
	static const struct {
		int64_t time_ms, started_ms, window_ms;
		enum fedaccept_verdict want;
	} rows[] = {
	        {0, -3600000, 120000, FEDACCEPT_LATER},         /* just now */
	        {-119999, -3600000, 120000, FEDACCEPT_LATER},   /* within the window */
	        {-120000, -3600000, 120000, FEDACCEPT_REFUSE},  /* the window is over */
	        {-3600000, -3600000, 120000, FEDACCEPT_REFUSE}, /* an old event */
	        {-3600000, -60000, 120000, FEDACCEPT_LATER},    /* ... just after a start */
	        {-3600000, -120000, 120000, FEDACCEPT_REFUSE},  /* ... not long after */
	        {60000, -3600000, 120000, FEDACCEPT_LATER},     /* a little ahead of this clock */
	        {120000, -3600000, 120000, FEDACCEPT_LATER},    /* ... up to the window */
	        {120001, -3600000, 120000, FEDACCEPT_REFUSE},   /* further: not waited for */
	        {3600000, -3600000, 120000, FEDACCEPT_REFUSE},  /* an hour ahead */
	        {0, 0, 0, FEDACCEPT_REFUSE},                    /* window 0: at once */
	        {3600000, -3600000, 0, FEDACCEPT_REFUSE},       /* ... also ahead of this clock */
	        {1000, 0, 0, FEDACCEPT_REFUSE},
	};
	const int64_t now = 1765017000000;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "row %zu", i);
		CHECK_INT(what,
		          fedaccept_unknown(now + rows[i].time_ms, now, now + rows[i].started_ms,
		                            rows[i].window_ms),
		          rows[i].want);
	}
	check_done();
}

static void
test_stored_id(void **state)
{
	char a[FEDACCEPT_STORED_ID_LEN + 1], b[FEDACCEPT_STORED_ID_LEN + 1];

	(void)state;
	fedaccept_stored_id("example.net", "ev-1", a);
	CHECK_INT("length", strlen(a), FEDACCEPT_STORED_ID_LEN);
	CHECK_INT("prefix", strncmp(a, "fed-", 4), 0);
	CHECK_INT("hex", strspn(a + 4, "0123456789abcdef"), 40);
	fedaccept_stored_id("example.net", "ev-1", b);
	CHECK_STR("the same event, the same id", b, a);
	fedaccept_stored_id("example.com", "ev-1", b);
	CHECK_INT("another domain, another id", strcmp(a, b) != 0, true);
	/* the NUL separates domain and event id: "a.b" + "c" is not "a.bc" + "" */
	fedaccept_stored_id("example.ne", "tev-1", b);
	CHECK_INT("separated", strcmp(a, b) != 0, true);
	check_done();
}

static void
test_client_key(void **state)
{
	static const struct {
		int family;
		const char *addr, *want;
	} rows[] = {
	        {AF_INET, "192.0.2.7", "192.0.2.7"},
	        {AF_INET6, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	        {AF_INET6, "2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"}, /* the same /64 */
	        {AF_INET6, "2001:db8:1:3::1", "2001:db8:1:3::/64"},
	        {AF_INET6, "::ffff:192.0.2.7", "192.0.2.7"}, /* IPv4 mapped */
	        {AF_INET6, "::1", "::/64"},
	};
	char key[FEDACCEPT_CLIENT_KEY_MAX];
	struct sockaddr_storage ss;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)rows[i].family;
		if (rows[i].family == AF_INET)
			inet_pton(AF_INET, rows[i].addr, &((struct sockaddr_in *)&ss)->sin_addr);
		else
			inet_pton(AF_INET6, rows[i].addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
		CHECK_INT(rows[i].addr, fedaccept_client_key((struct sockaddr *)&ss, key), 0);
		CHECK_STR(rows[i].addr, key, rows[i].want);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	CHECK_INT("another family", fedaccept_client_key((struct sockaddr *)&ss, key), -1);
	check_done();
}

static void
test_rate_clients(void **state)
{
	struct fedrate *r = fedrate_new_clients(1, 2);
	int retry = 0;

	(void)state;
	CHECK_INT("first", fedrate_take(r, "192.0.2.7", 1000, &retry), true);
	CHECK_INT("second", fedrate_take(r, "192.0.2.7", 1000, &retry), true);
	CHECK_INT("spent", fedrate_take(r, "192.0.2.7", 1000, &retry), false);
	CHECK_INT("retry after", retry, 2); /* a token in 1 s, and one more */
	/* the key as it is: no last two labels */
	CHECK_INT("another address", fedrate_take(r, "192.0.3.7", 1000, &retry), true);
	/* no bucket over all: many clients are not limited together */
	for (int i = 0; i < 100; i++) {
		char key[32];

		snprintf(key, sizeof(key), "198.51.100.%d", i);
		CHECK_INT(key, fedrate_take(r, key, 1000, &retry), true);
	}
	CHECK_INT("refilled", fedrate_take(r, "192.0.2.7", 2000, &retry), true);
	fedrate_free(&r);
	check_done();
}

static void
test_rate(void **state)
{
	struct fedrate *r = fedrate_new(2, 3); /* 2 per second, 3 at once */
	int retry = 0;

	(void)state;
	for (int i = 0; i < 3; i++)
		CHECK_INT("the burst", fedrate_take(r, "example.net", 1000, &retry), true);
	CHECK_INT("spent", fedrate_take(r, "example.net", 1000, &retry), false);
	CHECK_INT("retry after", retry, 1);
	CHECK_INT("another domain", fedrate_take(r, "other.example", 1000, &retry), true);
	CHECK_INT("half refilled", fedrate_take(r, "example.net", 1250, &retry), false);
	CHECK_INT("one refilled", fedrate_take(r, "example.net", 1500, &retry), true);
	CHECK_INT("and spent", fedrate_take(r, "example.net", 1500, &retry), false);
	for (int i = 0; i < 3; i++)
		CHECK_INT("refilled to the burst only",
		          fedrate_take(r, "example.net", 60000, &retry), true);
	CHECK_INT("not beyond", fedrate_take(r, "example.net", 60000, &retry), false);
	fedrate_free(&r);
	assert_null(r);
	check_done();
}

/* A sender chooses its subdomains: they share their parent's bucket (the last two labels). */
static void
test_rate_subdomains(void **state)
{
	struct fedrate *r = fedrate_new(0.001, 3);
	int retry = 0;

	(void)state;
	CHECK_INT("a.example.net", fedrate_take(r, "a.example.net", 1000, &retry), true);
	CHECK_INT("b.example.net", fedrate_take(r, "b.example.net", 1000, &retry), true);
	CHECK_INT("x.c.example.net", fedrate_take(r, "x.c.example.net", 1000, &retry), true);
	CHECK_INT("the parent's bucket is spent", fedrate_take(r, "d.example.net", 1000, &retry),
	          false);
	CHECK_INT("and the parent's own reports", fedrate_take(r, "example.net", 1000, &retry),
	          false);
	CHECK_INT("another parent", fedrate_take(r, "a.example.org", 1000, &retry), true);
	fedrate_free(&r);
	check_done();
}

/* Many new domains never give a spent bucket back its burst. */
static void
test_rate_table_full(void **state)
{
	struct fedrate *r = fedrate_new(0.001, 3);
	char domain[64];
	int retry = 0;

	(void)state;
	for (int i = 0; i < 3; i++)
		CHECK_INT("the burst", fedrate_take(r, "example.net", 1000, &retry), true);
	CHECK_INT("spent", fedrate_take(r, "example.net", 1000, &retry), false);
	for (int i = 0; i < 3 * 4096; i++) {
		snprintf(domain, sizeof(domain), "d%d.test", i);
		(void)fedrate_take(r, domain, 1000 + i, &retry);
	}
	CHECK_INT("still spent", fedrate_take(r, "example.net", 14000, &retry), false);
	fedrate_free(&r);
	check_done();
}

/* A client with many keys (/64s) once the table is full: no key of its own starts full while
   no bucket is idle; the new keys share one bucket. An idle bucket makes room. */
static void
test_rate_clients_table_full(void **state)
{
	struct fedrate *r = fedrate_new_clients(1, 2);
	char key[64];
	int retry = 0, taken = 0;

	(void)state;
	for (int i = 0; i < FEDRATE_DOMAINS_MAX; i++) {
		snprintf(key, sizeof(key), "2001:db8:%x::/64", i);
		CHECK_INT("a new client", fedrate_take(r, key, 1000, &retry), true);
		CHECK_INT("a new client", fedrate_take(r, key, 1000, &retry), true);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "2001:db8:1:%x::/64", i);
		taken += fedrate_take(r, key, 1000, &retry);
	}
	CHECK_INT("the new keys got one burst together", taken, 2);
	/* just before the oldest bucket is full again: the shared one, spent again (it holds
	   one token: it refilled for 2 s) */
	taken = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "2001:db8:3:%x::/64", i);
		taken += fedrate_take(r, key, 2999, &retry);
	}
	CHECK_INT("the shared bucket again", taken, 1);
	/* two seconds on, the oldest bucket is full again: forgotten for a new key */
	CHECK_INT("room again", fedrate_take(r, "2001:db8:2::/64", 3000, &retry), true);
	CHECK_INT("a bucket of its own", fedrate_take(r, "2001:db8:2::/64", 3000, &retry), true);
	CHECK_INT("spent", fedrate_take(r, "2001:db8:2::/64", 3000, &retry), false);
	fedrate_free(&r);
	check_done();
}

/* All domains together get ten times one domain's rate and burst. */
static void
test_rate_all_domains(void **state)
{
	struct fedrate *r = fedrate_new(1, 2);
	char domain[64];
	int retry = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(domain, sizeof(domain), "d%d.test", i);
		CHECK_INT("within the total burst", fedrate_take(r, domain, 1000, &retry), true);
	}
	CHECK_INT("a new domain beyond it", fedrate_take(r, "new.example", 1000, &retry), false);
	CHECK_INT("retry after", retry, 1);
	CHECK_INT("refilled at ten a second", fedrate_take(r, "new.example", 1200, &retry), true);
	fedrate_free(&r);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_errors),
	        cmocka_unit_test(test_content_type),
	        cmocka_unit_test(test_verify_failure),
	        cmocka_unit_test(test_recipient_in),
	        cmocka_unit_test(test_claims),
	        cmocka_unit_test(test_event),
	        cmocka_unit_test(test_stored_id),
	        cmocka_unit_test(test_rate),
	        cmocka_unit_test(test_rate_subdomains),
	        cmocka_unit_test(test_rate_table_full),
	        cmocka_unit_test(test_rate_all_domains),
	        cmocka_unit_test(test_precheck),
	        cmocka_unit_test(test_unknown),
	        cmocka_unit_test(test_client_key),
	        cmocka_unit_test(test_rate_clients),
	        cmocka_unit_test(test_rate_clients_table_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
