/*
 * test_mimistatus - unit tests for federation/mimistatus (MIMI message-status and the
 * federation report, docs/federation.md).
 *
 * The draft's example report, 145 bytes, decodes to its four entries and re-encodes byte
 * for byte; a federation report has the exact bytes the specification gives; message ids
 * match values computed independently (Python hashlib); and a table of malformed or
 * non-deterministic inputs is refused, each with the check that should refuse it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mimistatus.h"

#include "check.h"

/* Hex (spaces ignored) into a malloc'ed buffer of *len_r bytes. */
static unsigned char *
unhex(const char *hex, size_t *len_r)
{
	unsigned char *buf = malloc(strlen(hex) / 2 + 1);
	size_t n = 0;
	int hi = -1;

	assert_non_null(buf);
	for (const char *p = hex; *p; p++) {
		int v;

		if (*p == ' ' || *p == '\n')
			continue;
		v = *p >= 'a' ? *p - 'a' + 10 : *p - '0';
		if (hi < 0) {
			hi = v;
		} else {
			buf[n++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	assert_int_equal(hi, -1);
	*len_r = n;
	return buf;
}

static void
hexify(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

#define ID1 "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4"
#define ID2 "015354973c2b65ca937bf1e035ae53a5ab80e947afa43d46920d4202e5cc0b27"
#define ID3 "018d825adf9f6be00dcafc5704c4102f5022e74219d0b603e4ba7622654042af"
#define ID4 "01e59db8173939facc2c8a4a0f0ae8d0c7a11a81239626630c9464a8d6717a03"

static const char draft_example[] = "84"
                                    "825820" ID1 "02"
                                    "825820" ID2 "02"
                                    "825820" ID3 "00"
                                    "825820" ID4 "03";

static void
test_draft_example(void **state)
{
	static const char *const ids[] = {ID1, ID2, ID3, ID4};
	static const unsigned int statuses[] = {MIMI_READ, MIMI_READ, MIMI_UNREAD, MIMI_EXPIRED};
	struct mimistatus_report r;
	const char *error = NULL;
	unsigned char *in, *out = NULL;
	size_t len, outlen = 0;
	char hex[65];

	(void)state;
	in = unhex(draft_example, &len);
	CHECK_INT("draft example length", len, 145);
	CHECK_INT("decode", mimistatus_decode_mimi(in, len, &r, &error), 0);
	CHECK_STR("decode error", error, NULL);
	CHECK_INT("entries", r.count, 4);
	for (size_t i = 0; i < r.count && i < 4; i++) {
		hexify(r.entries[i].msgid, 32, hex);
		CHECK_STR("message id", hex, ids[i]);
		CHECK_INT("status", r.entries[i].status, statuses[i]);
	}
	CHECK_INT("encode", mimistatus_encode_mimi(&r, &out, &outlen, &error), 0);
	CHECK_INT("re-encoded length", outlen, 145);
	CHECK_INT("re-encoded bytes", out != NULL && outlen == len && memcmp(out, in, len) == 0, 1);
	/* The draft's example is not a federation report. */
	mimistatus_report_free(&r);
	CHECK_INT("as federation report", mimistatus_decode(in, len, &r, &error), -1);
	CHECK_STR("as federation report: error", error, "report: not a map");
	mimistatus_report_free(&r);
	free(out);
	free(in);
	check_done();
}

/* The example of docs/federation.md, "Example". */
#define FED_MSGID "01efe3e65061bcb350ac554d9de52326629b774a02aab335e574b39821c7b080"
static const char fed_example[] =
        "a4"
        "01 01"
        "02 6b 6578616d706c652e6e6574"                      /* "example.net" */
        "03 82 825820" FED_MSGID "01 825820" FED_MSGID "02" /* delivered, read */
        "04 82"
        "83 6a 65762d303030303030 31"          /* "ev-0000001" */
        "   6f 626f62406578616d706c652e6e6574" /* "bob@example.net" */
        "   1b 0000019af33619c8"               /* 1765017000392 */
        "83 6a 65762d303030303030 32"
        "   6f 626f62406578616d706c652e6e6574"
        "   1b 0000019af3361db0"; /* 1765017001392 */

static void
test_federation_report(void **state)
{
	struct mimistatus_event events[2] = {
	        {"ev-0000001", "bob@example.net", INT64_C(1765017000392)},
	        {"ev-0000002", "bob@example.net", INT64_C(1765017001392)},
	};
	struct mimistatus_entry entries[2] = {{.status = MIMI_DELIVERED}, {.status = MIMI_READ}};
	struct mimistatus_report r = {"example.net", 2, entries, events}, back;
	const char *error = NULL;
	unsigned char *want, *out = NULL;
	size_t wantlen, outlen = 0;

	(void)state;
	CHECK_INT("msgid",
	          mimistatus_msgid(MIMISTATUS_ID_TRACKING, "abcdefghijklmnopqrstuvwxyz", 26,
	                           entries[0].msgid, &error),
	          0);
	memcpy(entries[1].msgid, entries[0].msgid, 32);
	want = unhex(fed_example, &wantlen);
	CHECK_INT("encode", mimistatus_encode(&r, &out, &outlen, &error), 0);
	CHECK_INT("encoded length", outlen, wantlen);
	CHECK_INT("encoded bytes", out != NULL && outlen == wantlen && !memcmp(out, want, wantlen),
	          1);
	CHECK_INT("decode", mimistatus_decode(want, wantlen, &back, &error), 0);
	CHECK_STR("domain", back.domain, "example.net");
	CHECK_INT("count", back.count, 2);
	if (back.count == 2 && back.events != NULL) {
		CHECK_STR("event id", back.events[1].event_id, "ev-0000002");
		CHECK_STR("recipient", back.events[1].recipient, "bob@example.net");
		CHECK_INT("timestamp", back.events[1].timestamp_ms, INT64_C(1765017001392));
		CHECK_INT("status", back.entries[1].status, MIMI_READ);
	}
	mimistatus_report_free(&back);
	/* A federation report is not a bare MIMI report. */
	CHECK_INT("as MIMI", mimistatus_decode_mimi(want, wantlen, &back, &error), -1);
	mimistatus_report_free(&back);
	free(out);
	free(want);
	check_done();
}

static void
test_msgid(void **state)
{
	uint8_t id[32], id2[32];
	const char *error = NULL;
	char hex[65];

	(void)state;
	/* Expected values from Python: '01' + sha256(label + b'\0' + id).hexdigest()[:62] */
	CHECK_INT("tracking",
	          mimistatus_msgid(MIMISTATUS_ID_TRACKING, "abcdefghijklmnopqrstuvwxyz", 26, id,
	                           &error),
	          0);
	hexify(id, 32, hex);
	CHECK_STR("tracking id", hex, FED_MSGID);
	CHECK_INT("message-id",
	          mimistatus_msgid(MIMISTATUS_ID_MESSAGE, "<20261206.1234@example.org>", 27, id,
	                           &error),
	          0);
	hexify(id, 32, hex);
	CHECK_STR("message-id", hex,
	          "014f9752e73b7201be4eeca8ab0c1e88130f45dac993efcc26004293292f4598");
	CHECK_INT("without <>",
	          mimistatus_msgid(MIMISTATUS_ID_MESSAGE, "20261206.1234@example.org", 25, id2,
	                           &error),
	          0);
	CHECK_INT("same with and without <>", memcmp(id, id2, 32), 0);
	CHECK_INT("same text as tracking id differs",
	          mimistatus_msgid(MIMISTATUS_ID_TRACKING, "20261206.1234@example.org", 25, id2,
	                           &error) == 0 &&
	                  memcmp(id, id2, 32) != 0,
	          1);
	CHECK_INT("empty", mimistatus_msgid(MIMISTATUS_ID_MESSAGE, "<>", 2, id, &error), -1);
	CHECK_INT("space", mimistatus_msgid(MIMISTATUS_ID_TRACKING, "a b", 3, id, &error), -1);
	CHECK_INT("control", mimistatus_msgid(MIMISTATUS_ID_TRACKING, "a\nb", 3, id, &error), -1);
	check_done();
}

#define M32 "5820" ID1
static const struct {
	int fed; /* 1: federation report, 0: bare MIMI */
	const char *hex;
	const char *error;
} bad[] = {
        {0, "", "cbor: empty"},
        {0, "9f 82" M32 "02 ff", "cbor: indefinite length"},
        {0, "98 01 82" M32 "02", "cbor: not in deterministic encoding (RFC 8949 4.2.1)"},
        {0, "81 82" M32 "18 02", "cbor: not in deterministic encoding (RFC 8949 4.2.1)"},
        {0,
         "81 82 7820"
         "6161616161616161616161616161616161616161616161616161616161616161 02",
         "mimi: message id is not a 32-byte string"},
        {0,
         "81 82 581f"
         "7ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4 02",
         "mimi: message id is not a 32-byte string"},
        {0, "81 82" M32 "19 0100", "mimi: status is not an integer 0..255"},
        {0, "81 82" M32 "20", "cbor: negative integer"},
        {0, "81 82" M32 "f5", "cbor: simple value"},
        {0, "81 82" M32 "f6", "cbor: simple value"},
        {0, "81 82" M32 "f90000", "cbor: float"},
        {0, "81 82" M32 "c0 02", "cbor: tag"},
        {0, "81 83" M32 "02 02", "mimi: entry is not a [message-id, status] pair"},
        {0, "81 00", "mimi: entry is not a [message-id, status] pair"},
        {0, "81 82" M32 "02 00", "cbor: data after the report"},
        {0, "82 82" M32 "02", "cbor: truncated"},
        {0, "81 82 5820 01", "cbor: truncated"},
        {0, "81 81 81 81 00", "cbor: nested too deep"},
        {0, "99 03e9", "cbor: array longer than 1000"},
        {0, "a0", "mimi: not an array"},
        {0, "1c", "cbor: malformed"},
        {1, "a3 01 01 02 6b 6578616d706c652e6e6574 03 80", "report: a key of 1..4 is missing"},
        {1, "a5 01 01 02 6b 6578616d706c652e6e6574 03 80 04 80 05 00", "report: unknown key"},
        {1, "a4 01 01 01 01 03 80 04 80", "report: repeated key"},
        {1, "a4 01 02 02 6b 6578616d706c652e6e6574 03 80 04 80", "report: unsupported version"},
        {1, "a4 02 6b 6578616d706c652e6e6574 01 01 03 80 04 80",
         "cbor: not in deterministic encoding (RFC 8949 4.2.1)"},
        {1, "a4 01 01 02 6b 4578616d706c652e6e6574 03 80 04 80", "report: bad reporting domain"},
        {1, "a4 01 01 02 6b 6578616d706c652e6e6574 03 81 82" M32 "02 04 80",
         "report: events do not match the MIMI entries one to one"},
        {1, "a4 01 01 02 6b 6578616d706c652e6e6574 03 81 82" M32 "02 04 81 83 61 20 61 62 00",
         "report: bad event id"},
        {1, "a4 01 01 02 6b 6578616d706c652e6e6574 03 81 82" M32 "02 04 81 83 61 61 62 610a 00",
         "report: bad recipient"},
        {1, "a4 01 01 02 6b 6578616d706c652e6e6574 03 81 82" M32 "02 04 81 83 61 61 62 6100 00",
         "report: bad recipient"},
        {1, "a4 01 01 02 6b 6578616d706c652e6e6574 03 81 82" M32 "02 04 81 83 61 61 61 62 61 63",
         "report: bad timestamp"},
};

static void
test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mimistatus_report r;
		const char *error = NULL;
		size_t len;
		unsigned char *in = unhex(bad[i].hex, &len);
		char *copy = exact((const char *)in, len);
		int ret = bad[i].fed
		                  ? mimistatus_decode((unsigned char *)copy, len, &r, &error)
		                  : mimistatus_decode_mimi((unsigned char *)copy, len, &r, &error);

		if (ret != -1 || error == NULL || strcmp(error, bad[i].error) != 0)
			print_error("row %zu: %s\n", i, bad[i].hex);
		CHECK_INT("refused", ret, -1);
		CHECK_STR("error", error, bad[i].error);
		mimistatus_report_free(&r);
		free(copy);
		free(in);
	}
	check_done();
}

static void
test_too_large(void **state)
{
	struct mimistatus_report r;
	const char *error = NULL;
	unsigned char *in = calloc(MIMISTATUS_BODY_MAX + 1, 1);

	(void)state;
	assert_non_null(in);
	CHECK_INT("too large", mimistatus_decode(in, MIMISTATUS_BODY_MAX + 1, &r, &error), -1);
	CHECK_STR("too large: error", error, "cbor: longer than 256 KiB");
	mimistatus_report_free(&r);
	/* 1000 arrays of 9 zeros: 10001 items in 10003 bytes, nested only 2 deep */
	in[0] = 0x99;
	in[1] = 0x03;
	in[2] = 0xe8;
	for (size_t i = 0; i < 1000; i++) {
		in[3 + i * 10] = 0x89;
		memset(in + 3 + i * 10 + 1, 0, 9);
	}
	CHECK_INT("too many items", mimistatus_decode_mimi(in, 10003, &r, &error), -1);
	CHECK_STR("too many items: error", error, "cbor: more than 8016 items");
	mimistatus_report_free(&r);
	free(in);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_draft_example), cmocka_unit_test(test_federation_report),
	        cmocka_unit_test(test_msgid),         cmocka_unit_test(test_bad),
	        cmocka_unit_test(test_too_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
