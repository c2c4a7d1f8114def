/*
 * fuzz_fedrec - libFuzzer target for the federation's DNS TXT records. Invariants: a
 * parsed MSR1 record prints and parses back to the same URL; a parsed MSK1 record prints
 * and parses back to the same key; a parsed key id names the same record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *txt = (const char *)data, *error;
	char buf[FEDREC_TXT_MAX + 1], name[FEDREC_NAME_MAX];
	char sel[FEDREC_SELECTOR_MAX + 1], dom[FEDREC_DOMAIN_MAX + 1];
	struct fedrec_msr msr, msr2;
	struct fedrec_msk msk, msk2;

	if (fedrec_parse_msr(txt, size, &msr, &error) == 0) {
		if (fedrec_format_msr(msr.url, buf, &error) < 0 ||
		    fedrec_parse_msr(buf, strlen(buf), &msr2, &error) < 0 ||
		    strcmp(msr.url, msr2.url) != 0)
			abort();
	}
	if (fedrec_parse_msk(txt, size, &msk, &error) == 0) {
		fedrec_format_msk(&msk, buf);
		if (fedrec_parse_msk(buf, strlen(buf), &msk2, &error) < 0 ||
		    msk.revoked != msk2.revoked || memcmp(msk.key, msk2.key, sizeof(msk.key)) != 0)
			abort();
	}
	if (fedrec_keyid_split(txt, size, sel, dom, &error) == 0) {
		if (fedrec_msk_name(sel, dom, name, &error) < 0 || strlen(name) != size ||
		    memcmp(name, txt, size) != 0)
			abort();
	}
	return 0;
}
