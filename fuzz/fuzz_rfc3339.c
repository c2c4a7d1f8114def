/*
 * fuzz_rfc3339 - libFuzzer target for RFC 3339 parsing. Invariant: a parsed time formats
 * and parses back to the same millisecond (within the 4-digit-year range).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc3339.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[RFC3339_BUFSIZE];
	const char *error;
	int64_t ms, ms2;

	if (rfc3339_parse((const char *)data, size, &ms, &error) < 0)
		return 0;
	if (ms < 0 || ms > INT64_C(253402300799999))
		return 0; /* outside years 1970..9999: format does not promise a round trip */
	rfc3339_format(ms, buf);
	if (rfc3339_parse(buf, strlen(buf), &ms2, &error) < 0 || ms2 != ms)
		abort();
	return 0;
}
