/*
 * fuzz_request - libFuzzer target for what an HTTP client sends statusd besides the path
 * (statusd/params.c): the message list's query arguments, a feed's resume point
 * (Last-Event-ID or ?offset=&epoch=) and the JSON bodies of PUT /api/v1/preferences,
 * POST /api/v1/presence and POST .../receipt.
 *
 * The input is split at newlines: the first ten lines are status, since, until, limit,
 * cursor, recipient, Last-Event-ID, offset, epoch, message reference ("\x01" alone means
 * "absent"; a missing line is absent too); the rest is the body.
 *
 * Invariants: an accepted list has limit 1..200, a non-negative cursor and a status that is
 * a recipient status; an accepted resume point is -1/0 (live) or a valid epoch and offset;
 * every error has a message; an accepted body is an object and its fields as documented.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msevent.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 10

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *p, *f[NFIELDS] = {0};
	const char *error = NULL, *state, *to, *mdn;
	struct store_list_filter flt;
	struct json_object *obj;
	int64_t epoch, from;
	int rr, pr;
	size_t i;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	p = copy;
	for (i = 0; i < NFIELDS && p != NULL; i++) {
		char *nl = memchr(p, '\n', (size_t)(copy + size - p));
		if (nl != NULL)
			*nl = '\0';
		f[i] = strcmp(p, "\x01") == 0 ? NULL : p;
		p = nl ? nl + 1 : NULL;
	}

	struct params_list_args args = {f[0], f[1], f[2], f[3], f[4], f[5]};
	if (params_list(&args, &flt, &error) == 0) {
		if (flt.limit < 1 || flt.limit > PARAMS_LIST_MAX || flt.cursor < 0 ||
		    (flt.status != 0 && !MSEV_IS_STATUS(flt.status)) ||
		    (flt.recipient != NULL && !params_user_ok(flt.recipient)))
			abort();
	} else if (error == NULL || error[0] == '\0')
		abort();

	error = NULL;
	if (params_resume(f[6], f[7], f[8], &epoch, &from, &error) == 0) {
		if (!(from == -1 && epoch == 0) && (from < 0 || epoch <= 0))
			abort();
	} else if (error == NULL || from != -1 || epoch != 0)
		abort();
	if (f[9] != NULL)
		(void)params_ref_ok(f[9]);

	/* the body: the rest of the input, NUL bytes included */
	size_t off = p ? (size_t)(p - copy) : size;
	error = NULL;
	obj = params_body(data + off, size - off, (size & 1) != 0, &error);
	if (obj == NULL) {
		if (error == NULL)
			abort();
	} else {
		if (!json_object_is_type(obj, json_type_object))
			abort();
		if (params_prefs(obj, &rr, &pr, &mdn, &error) == 0 &&
		    (rr < -1 || rr > 1 || pr < -1 || pr > 1 ||
		     (mdn != NULL && strcmp(mdn, "never") != 0 && strcmp(mdn, "always") != 0 &&
		      strcmp(mdn, "default") != 0)))
			abort();
		if (params_presence(obj, &state, &to, &error) == 0 &&
		    ((strcmp(state, "typing") == 0) != (to != NULL) ||
		     (to != NULL && !params_user_ok(to))))
			abort();
		(void)params_receipt(obj, &error);
		json_object_put(obj);
	}
	free(copy);
	return 0;
}
