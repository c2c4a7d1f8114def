/*
 * fuzz_msevent - libFuzzer target for the event codec (msevent_parse, msevent_format).
 *
 * Invariant checked beyond "no crash, no leak, no UB": an accepted record, formatted and
 * parsed again, gives the same event.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "msevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok;
	struct msevent ev, ev2;
	struct mbuf out = MBUF_INIT;
	const char *error;

	if (tok == NULL)
		tok = msevent_tokener_new();
	if (msevent_parse(&ev, tok, (const char *)data, size, &error) < 0)
		return 0;
	msevent_format(&ev, &out);
	if (msevent_parse(&ev2, tok, out.data, out.len - 1, &error) < 0)
		abort(); /* we must read what we write */
	if (!same(ev.id, ev2.id) || ev.type != ev2.type || ev.time_ms != ev2.time_ms ||
	    !same(ev.recipient, ev2.recipient) || !same(ev.tracking_id, ev2.tracking_id) ||
	    !same(ev.message_id, ev2.message_id) || ev.size != ev2.size)
		abort();
	msevent_clear(&ev2);
	msevent_clear(&ev);
	mbuf_free(&out);
	return 0;
}
