/*
 * fuzz_fedanswer - libFuzzer target for what the federation sender reads of another
 * site's answer (statusd/fedsched.c): the body of a 200 and a Retry-After value.
 * Invariants: an answer is acknowledged only as a 200 whose three counts add up to the
 * report's events; a Retry-After is -1 or a wait of at most a year.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	char *text = malloc(size + 1);
	int64_t ms;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t n = 0; n < 3; n++) {
		if (fedsched_answer(200, (const char *)data, size, n, &why) == FEDSCHED_DONE &&
		    (size == 0 || why == NULL))
			abort();
		if (fedsched_answer(503, (const char *)data, size, n, &why) != FEDSCHED_RETRY)
			abort();
	}
	ms = fedsched_retry_after(text, INT64_C(1765017000000));
	if (ms < -1 || ms > INT64_C(366) * 86400000)
		abort();
	free(text);
	return 0;
}
