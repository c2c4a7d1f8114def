/*
 * test_fedrec - unit tests for federation/fedrec (the _msgstatus and _msgstatus-key TXT
 * records, docs/federation.md "Discovery").
 *
 * Tables of records that parse (with what they yield) and of records that are refused
 * (with the error), printing then parsing back, RRset selection, owner names and key ids.
 * The key is RFC 9421's test-key-ed25519 (Appendix B.1.4), raw bytes from its JWK "x".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fedrec.h"

#include "check.h"

#define KEY_B64 "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
static const unsigned char key_raw[32] = {0x26, 0xb4, 0x0b, 0x8f, 0x93, 0xff, 0xf3, 0xd8,
                                          0x97, 0x11, 0x2f, 0x7e, 0xbc, 0x58, 0x2b, 0x23,
                                          0x2d, 0xbd, 0x72, 0x51, 0x7d, 0x08, 0x2f, 0xe8,
                                          0x3c, 0xfb, 0x30, 0xdd, 0xce, 0x43, 0xd1, 0xbb};

static const struct {
	const char *txt, *url; /* url NULL: refused, with error */
	const char *error;
} msr[] = {
        {"v=MSR1; u=https://status.example.org/api/v1/federation/reports",
         "https://status.example.org/api/v1/federation/reports", NULL},
        {"v=MSR1;u=https://a.example:8443/r", "https://a.example:8443/r", NULL},
        {"v=MSR1 ;  u = https://a.example/r ; ", "https://a.example/r", NULL},
        {"v=MSR1; x=later-extension; u=https://a.example/r%2Fx", "https://a.example/r%2Fx", NULL},
        {"v=MSR1", NULL, "MSR1 record: no u= (report endpoint)"},
        {"v=MSR10; u=https://a.example/r", NULL, "record does not start with its version tag"},
        {"v=MSK1; u=https://a.example/r", NULL, "record does not start with its version tag"},
        {" v=MSR1; u=https://a.example/r", NULL, "record does not start with its version tag"},
        {"v=MSR1; u=http://a.example/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://A.example/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://user@a.example/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example:0/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example:65536/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example:080/r", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example/r?q=1", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example/%zz", NULL,
         "MSR1 record: u= is not an https URL of the form https://host[:port]/path"},
        {"v=MSR1; u=https://a.example/r; u=https://b.example/r", NULL,
         "record: a tag appears twice"},
        {"v=MSR1; v=MSR1; u=https://a.example/r", NULL, "record: a tag appears twice"},
        {"v=MSR1; u https://a.example/r", NULL, "record: '=' expected after a tag name"},
        {"v=MSR1; U=https://a.example/r", NULL, "record: tag name expected"},
        {"v=MSR1; u=https://a.example/r x", NULL, "record: ';' expected between tags"},
        {"v=MSR1;; u=https://a.example/r", NULL, "record: tag name expected"},
        {"v=MSR1; u=https://a.example/\x01", NULL, "record has a byte that is not printable ASCII"},
        {"v=MSR1; abcdefghijklmnopq=1; u=https://a.example/r", NULL,
         "record: tag name longer than 16"},
};

static void
test_msr(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(msr) / sizeof(msr[0]); i++) {
		struct fedrec_msr rec;
		const char *error = NULL;
		size_t len = strlen(msr[i].txt);
		char *copy = exact(msr[i].txt, len);
		int ret = fedrec_parse_msr(copy, len, &rec, &error);

		if (msr[i].url != NULL) {
			CHECK_INT(msr[i].txt, ret, 0);
			CHECK_STR(msr[i].txt, ret == 0 ? rec.url : NULL, msr[i].url);
		} else {
			CHECK_INT(msr[i].txt, ret, -1);
			CHECK_STR(msr[i].txt, error, msr[i].error);
		}
		free(copy);
	}
	check_done();
}

static const struct {
	const char *txt;
	int want; /* 0 key, 1 revoked, -1 refused */
	const char *error;
} msk[] = {
        {"v=MSK1; k=ed25519; p=" KEY_B64, 0, NULL},
        {"v=MSK1; p=" KEY_B64 "; k=ed25519; n=notes-are-ignored", 0, NULL},
        {"v=MSK1; k=ed25519; p=", 1, NULL},
        {"v=MSK1; k=rsa; p=" KEY_B64, -1, "MSK1 record: k= is not ed25519"},
        {"v=MSK1; p=" KEY_B64, -1, "MSK1 record: k= is not ed25519"},
        {"v=MSK1; k=ed25519", -1, "MSK1 record: no p= (public key)"},
        {"v=MSK1; k=ed25519; p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs", -1,
         "MSK1 record: p= is not the base64 of a 32-byte key"},
        {"v=MSK1; k=ed25519; p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bt=", -1,
         "MSK1 record: p= is not the base64 of a 32-byte key"}, /* non-zero pad bits */
        {"v=MSK1; k=ed25519; p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0b==", -1,
         "MSK1 record: p= is not the base64 of a 32-byte key"},
        {"v=MSK1; k=ed25519; p=JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs=", -1,
         "MSK1 record: p= is not the base64 of a 32-byte key"}, /* base64url */
        {"v=MSK1; k=ed25519; p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=AAAA", -1,
         "MSK1 record: p= is not the base64 of a 32-byte key"},
        {"v=MSK1; k=ed25519; p=" KEY_B64 "; p=", -1, "record: a tag appears twice"},
};

static void
test_msk(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(msk) / sizeof(msk[0]); i++) {
		struct fedrec_msk rec;
		const char *error = NULL;
		size_t len = strlen(msk[i].txt);
		char *copy = exact(msk[i].txt, len);
		int ret = fedrec_parse_msk(copy, len, &rec, &error);

		CHECK_INT(msk[i].txt, ret, msk[i].want < 0 ? -1 : 0);
		if (msk[i].want >= 0 && ret == 0) {
			CHECK_INT(msk[i].txt, rec.revoked, msk[i].want == 1);
			if (msk[i].want == 0)
				CHECK_INT(msk[i].txt, memcmp(rec.key, key_raw, 32), 0);
		} else {
			CHECK_STR(msk[i].txt, error, msk[i].error);
		}
		free(copy);
	}
	check_done();
}

static void
test_format(void **state)
{
	struct fedrec_msk key = {.revoked = false}, back;
	struct fedrec_msr msrback;
	char buf[FEDREC_TXT_MAX + 1];
	const char *error = NULL;

	(void)state;
	memcpy(key.key, key_raw, 32);
	fedrec_format_msk(&key, buf);
	CHECK_STR("format key", buf, "v=MSK1; k=ed25519; p=" KEY_B64);
	CHECK_INT("parse back", fedrec_parse_msk(buf, strlen(buf), &back, &error), 0);
	CHECK_INT("same key", memcmp(back.key, key_raw, 32), 0);
	key.revoked = true;
	fedrec_format_msk(&key, buf);
	CHECK_STR("format revoked", buf, "v=MSK1; k=ed25519; p=");
	CHECK_INT("format msr", fedrec_format_msr("https://status.example.org/fed", buf, &error),
	          0);
	CHECK_STR("format msr", buf, "v=MSR1; u=https://status.example.org/fed");
	CHECK_INT("parse back", fedrec_parse_msr(buf, strlen(buf), &msrback, &error), 0);
	CHECK_STR("same url", msrback.url, "https://status.example.org/fed");
	CHECK_INT("format bad msr", fedrec_format_msr("https://x.example/a;b", buf, &error), -1);
	check_done();
}

static void
test_select(void **state)
{
	const char *txts[] = {"v=spf1 -all", "v=MSR1; u=https://a.example/r", "v=MSR1x",
	                      "v=MSK1; k=ed25519; p="};
	size_t lens[4];
	const char *error = NULL;

	(void)state;
	for (int i = 0; i < 4; i++)
		lens[i] = strlen(txts[i]);
	CHECK_INT("one MSR1", fedrec_select(FEDREC_MSR, txts, lens, 4, &error), 1);
	CHECK_INT("one MSK1", fedrec_select(FEDREC_MSK, txts, lens, 4, &error), 3);
	CHECK_INT("none", fedrec_select(FEDREC_MSR, txts, lens, 1, &error), -1);
	CHECK_STR("none: error", error, "no record with the version tag");
	txts[0] = "v=MSR1;u=https://b.example/r";
	lens[0] = strlen(txts[0]);
	CHECK_INT("two", fedrec_select(FEDREC_MSR, txts, lens, 4, &error), -1);
	CHECK_STR("two: error", error, "more than one record with the version tag");
	check_done();
}

static void
test_names(void **state)
{
	char name[FEDREC_NAME_MAX], sel[FEDREC_SELECTOR_MAX + 1], dom[FEDREC_DOMAIN_MAX + 1];
	const char *error = NULL;
	static const char *const bad_keyids[] = {"s1._msgstatus-key.",
	                                         "._msgstatus-key.example.net",
	                                         "s1._msgstatus-key.Example.net",
	                                         "s1.x._msgstatus-key.example.net",
	                                         "s1._msgstatus.example.net",
	                                         "s1",
	                                         "s1._msgstatus-key.example.net.",
	                                         "-s._msgstatus-key.example.net"};

	(void)state;
	CHECK_INT("msr name", fedrec_msr_name("example.org", name, &error), 0);
	CHECK_STR("msr name", name, "_msgstatus.example.org");
	CHECK_INT("msk name", fedrec_msk_name("s2026", "example.net", name, &error), 0);
	CHECK_STR("msk name", name, "s2026._msgstatus-key.example.net");
	CHECK_INT("bad selector", fedrec_msk_name("a.b", "example.net", name, &error), -1);
	CHECK_INT("bad domain", fedrec_msr_name("example..org", name, &error), -1);
	CHECK_INT("keyid", fedrec_keyid_split(name, strlen(name), sel, dom, &error), 0);
	CHECK_STR("keyid selector", sel, "s2026");
	CHECK_STR("keyid domain", dom, "example.net");
	for (size_t i = 0; i < sizeof(bad_keyids) / sizeof(bad_keyids[0]); i++) {
		CHECK_INT(
		        bad_keyids[i],
		        fedrec_keyid_split(bad_keyids[i], strlen(bad_keyids[i]), sel, dom, &error),
		        -1);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_msr),    cmocka_unit_test(test_msk),
	        cmocka_unit_test(test_format), cmocka_unit_test(test_select),
	        cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
