/*
 * fuzz_fedanswer - libFuzzer target for what the federation sender reads of another
 * site's answer (statusd/fedsched.c): the body of a 200, the problem document of a 4xx and
 * a Retry-After value.
 * Invariants: an answer is acknowledged only as a 200 whose three counts add up to the
 * report's events; a problem document's code is -1 and "" or 0 and 1 to FEDSCHED_CODE_MAX
 * of [a-z0-9-]; a 4xx is never acknowledged, and is sent again only with one of the codes
 * of docs/federation.md's table for its status; a Retry-After is -1 or a wait of at most a
 * year.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedsched.h"

#define CODE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789-"

/* docs/federation.md, "Answers": the refusals a sender sends again */
static const struct {
	long status;
	const char *code;
} again_codes[] = {{401, "stale"}, {401, "digest-mismatch"}, {403, "key-unknown"}, {409, "replay"}};
static const long refusals[] = {400, 401, 403, 404, 409, 415, 422};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	char *text = malloc(size + 1), code[FEDSCHED_CODE_MAX + 1];
	int64_t ms;
	size_t clen;
	int rc;

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
	rc = fedsched_problem_code((const char *)data, size, code, sizeof(code));
	clen = strlen(code);
	if (rc == 0 ? clen == 0 || clen > FEDSCHED_CODE_MAX || strspn(code, CODE_CHARS) != clen
	            : clen != 0)
		abort();
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		bool again = false;

		for (size_t j = 0; j < sizeof(again_codes) / sizeof(again_codes[0]); j++)
			again |= rc == 0 && again_codes[j].status == refusals[i] &&
			         strcmp(again_codes[j].code, code) == 0;
		switch (fedsched_answer(refusals[i], (const char *)data, size, 2, &why)) {
		case FEDSCHED_RETRY:
			if (!again)
				abort();
			break;
		case FEDSCHED_REFUSED:
			if (again)
				abort();
			break;
		default:
			abort();
		}
	}
	ms = fedsched_retry_after(text, INT64_C(1765017000000));
	if (ms < -1 || ms > INT64_C(366) * 86400000)
		abort();
	free(text);
	return 0;
}
