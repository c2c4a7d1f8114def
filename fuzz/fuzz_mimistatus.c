/*
 * fuzz_mimistatus - libFuzzer target for the MIMI message-status and federation report
 * decoders. Invariant: whatever decodes re-encodes to exactly the input (the decoder
 * accepts only the deterministic encoding) and decodes again to the same report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mimistatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same(const struct mimistatus_report *a, const struct mimistatus_report *b)
{
	if (a->count != b->count || (a->domain == NULL) != (b->domain == NULL) ||
	    (a->domain != NULL && strcmp(a->domain, b->domain) != 0) ||
	    memcmp(a->entries, b->entries, a->count * sizeof(*a->entries)) != 0)
		abort();
	for (size_t i = 0; a->events != NULL && i < a->count; i++) {
		if (strcmp(a->events[i].event_id, b->events[i].event_id) != 0 ||
		    strcmp(a->events[i].recipient, b->events[i].recipient) != 0 ||
		    a->events[i].timestamp_ms != b->events[i].timestamp_ms)
			abort();
	}
}

static void
one(const uint8_t *data, size_t size, int fed)
{
	struct mimistatus_report r, again;
	const char *error;
	unsigned char *out = NULL;
	size_t len = 0;
	int ret = fed ? mimistatus_decode(data, size, &r, &error)
	              : mimistatus_decode_mimi(data, size, &r, &error);

	if (ret == 0) {
		if ((fed ? mimistatus_encode(&r, &out, &len, &error)
		         : mimistatus_encode_mimi(&r, &out, &len, &error)) < 0 ||
		    len != size || memcmp(out, data, size) != 0)
			abort();
		if ((fed ? mimistatus_decode(out, len, &again, &error)
		         : mimistatus_decode_mimi(out, len, &again, &error)) < 0)
			abort();
		same(&r, &again);
		mimistatus_report_free(&again);
		free(out);
	}
	mimistatus_report_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, 0);
	one(data, size, 1);
	return 0;
}
