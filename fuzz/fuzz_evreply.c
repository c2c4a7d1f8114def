/*
 * fuzz_evreply - libFuzzer target for the producer's parser of statusd replies.
 */
#include <stdbool.h>
#include <stdint.h>

#include "evclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seq;
	bool ok;
	const char *error;

	(void)evclient_parse_reply((const char *)data, size, &seq, &ok, &error);
	return 0;
}
