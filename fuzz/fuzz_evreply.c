/*
 * fuzz_evreply - libFuzzer target for the producer's parser of statusd replies: an accepted
 * reply has a record number from 1 and is an acknowledgement or a rejection with a reason.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "evclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seq = 0;
	bool ok = false;
	const char *error = NULL;

	if (evclient_parse_reply((const char *)data, size, &seq, &ok, &error) == 0 &&
	    (seq < 1 || ok != (error == NULL)))
		abort();
	return 0;
}
