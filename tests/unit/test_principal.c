/*
 * test_principal - unit tests for statusd/principal (what a caller of the API may see).
 *
 * One table of principals against messages (owner, envelope sender): the owner, whatever
 * the case; a domain administrator, of the sender's domain only (not a parent, not a
 * subdomain, not a domain that only appears before the last '@': x@example.com@example.net
 * is example.net's); another user; a recipient of the message, who is just another user;
 * missing owners, senders and principals; senders without a domain. A second table checks
 * expiry at, before and after the credential's time, and a credential without one.
 * principal_dup's copy must answer the same as the original, row by row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "principal.h"

#include "check.h"

static char *org_admin[] = {"example.org"};
static char *two_admin[] = {"example.com", "example.net"};
static char *com_admin[] = {"com"};
static char *sub_admin[] = {"sub.example.org"};

static const struct principal ALICE = {"alice@example.org", NULL, 0, 0};
static const struct principal MALLORY = {"mallory@example.org", NULL, 0, 0};
static const struct principal CAROL = {"carol@example.com", NULL, 0, 0};
static const struct principal BOB = {"bob@example.net", NULL, 0, 0}; /* alice's recipient */
static const struct principal POSTMASTER = {"postmaster@example.org", org_admin, 1, 0};
static const struct principal TWO = {"hostmaster@example.net", two_admin, 2, 0};
static const struct principal TLD = {"root@example.com", com_admin, 1, 0};
static const struct principal SUB = {"postmaster@sub.example.org", sub_admin, 1, 0};

static const struct {
	const char *name;
	const struct principal *who;
	const char *owner, *sender;
	bool want;
} see[] = {
        {"owner", &ALICE, "alice@example.org", "alice@example.org", true},
        {"owner, other case", &ALICE, "Alice@Example.ORG", "alice@example.org", true},
        {"owner by SASL login, sender elsewhere", &ALICE, "alice@example.org",
         "list-bounces@lists.example.com", true},
        {"owner, no sender", &ALICE, "alice@example.org", NULL, true},
        {"other user", &CAROL, "alice@example.org", "alice@example.org", false},
        {"other user of the same domain", &MALLORY, "alice@example.org", "alice@example.org",
         false},
        {"recipient of the message", &BOB, "alice@example.org", "alice@example.org", false},
        {"user name is a prefix of the owner", &ALICE, "alice@example.org.evil",
         "alice@example.org.evil", false},
        {"no owner, no sender", &ALICE, NULL, NULL, false},
        {"no principal", NULL, "alice@example.org", "alice@example.org", false},
        {"domain admin, sender in the domain", &POSTMASTER, "alice@example.org",
         "alice@example.org", true},
        {"domain admin, other case", &POSTMASTER, "alice@example.org", "ALICE@EXAMPLE.ORG", true},
        {"domain admin, owner elsewhere, sender in the domain", &POSTMASTER, "someone",
         "bounce@example.org", true},
        {"domain admin, no owner", &POSTMASTER, NULL, "alice@example.org", true},
        {"domain admin, other domain", &POSTMASTER, "bob@example.net", "bob@example.net", false},
        {"domain admin, subdomain", &POSTMASTER, "dave@sub.example.org", "dave@sub.example.org",
         false},
        {"domain admin, parent domain", &SUB, "alice@example.org", "alice@example.org", false},
        {"domain admin of a TLD", &TLD, "carol@example.com", "carol@example.com", false},
        {"domain admin, owner in the domain but no sender", &POSTMASTER, "alice@example.org", NULL,
         false},
        {"domain admin, sender without '@'", &POSTMASTER, "x", "example.org", false},
        {"domain admin, sender ending in '@'", &POSTMASTER, "x", "alice@", false},
        {"domain admin, empty sender", &POSTMASTER, "x", "", false},
        {"domain admin, domain as a suffix", &POSTMASTER, "x", "eve@badexample.org", false},
        {"last '@': x@example.com@example.net is example.net's", &TWO, "x",
         "x@example.com@example.net", true},
        {"last '@': not example.org's", &POSTMASTER, "x", "x@example.org@example.net", false},
        {"last '@': admin of the part before it only", &TLD, "x", "x@com@example.net", false},
        {"second of two admin domains", &TWO, "x", "carol@example.com", true},
        {"neither of two admin domains", &TWO, "x", "alice@example.org", false},
};

static void
test_may_see(void **state)
{
	for (size_t i = 0; i < sizeof(see) / sizeof(see[0]); i++) {
		struct principal *copy = principal_dup(see[i].who);

		CHECK_INT(see[i].name, principal_may_see(see[i].who, see[i].owner, see[i].sender),
		          see[i].want);
		CHECK_INT(see[i].name, principal_may_see(copy, see[i].owner, see[i].sender),
		          see[i].want);
		principal_free(&copy);
		CHECK_INT("principal_free sets NULL", copy == NULL, 1);
	}
	check_done();
}

static const struct {
	const char *name;
	int64_t expires_ms, now_ms;
	bool want;
} expiry[] = {
        {"before its time", 1800000000000, 1799999999999, false},
        {"at its time", 1800000000000, 1800000000000, true},
        {"after its time", 1800000000000, 1800000000001, true},
        {"long expired", 1000, 1800000000000, true},
        {"no expiry", 0, 1800000000000, false},
        {"no expiry (API token)", INT64_MAX, 1800000000000, false},
};

static void
test_expired(void **state)
{
	for (size_t i = 0; i < sizeof(expiry) / sizeof(expiry[0]); i++) {
		struct principal p = {"alice@example.org", NULL, 0, expiry[i].expires_ms};
		struct principal *copy = principal_dup(&p);

		CHECK_INT(expiry[i].name, principal_expired(&p, expiry[i].now_ms), expiry[i].want);
		CHECK_INT(expiry[i].name, principal_expired(copy, expiry[i].now_ms),
		          expiry[i].want);
		principal_free(&copy);
	}
	CHECK_INT("no principal", principal_expired(NULL, 0), true);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_may_see),
	        cmocka_unit_test(test_expired),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
