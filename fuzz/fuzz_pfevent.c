/*
 * fuzz_pfevent - libFuzzer target for what msgstatus-logd makes of Postfix's log
 * (logd/pfevent.c): parsed lines turned into events, with the queue id -> Message-ID cache
 * in between. fuzz_pflog has the parser alone; here the fields it finds are copied, bounded
 * and validated into events.
 *
 * The input is a log excerpt, lines split at '\n' (a line may hold any other byte, NUL
 * included). It is fed through a fresh pfevent whose cache holds only two entries, so that
 * overwriting the oldest is reached; syslog_names "postfix" (other programs are foreign).
 * Only the first MAX_LINES lines are read: more add nothing that a few lines do not reach,
 * and cost time.
 *
 * Invariants: pfevent_line returns 1 exactly when it appended something, and then one
 * record ending in a newline; that record parses as statusd parses it (msevent_parse), comes
 * from "postfix", is one of the delivery-result types and has a "pf" id; a line fed again
 * makes the same record (the id is derived from the line, so a re-read is stored once); a
 * details.smtp_reply starts with a reply code and comes with details.postfix_reply.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "pfevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS    INT64_C(1795354800000) /* 2026-11-22T13:40:00Z */
#define MAX_LINES 16

static void
check_record(struct json_tokener *tok, const struct mbuf *out, size_t from)
{
	const char *rec = out->data + from, *error, *reply;
	size_t len = out->len - from;
	struct msevent ev;

	if (len < 2 || rec[len - 1] != '\n' || memchr(rec, '\n', len - 1) != NULL)
		abort(); /* one record, ending in a newline */
	if (msevent_parse(&ev, tok, rec, len - 1, &error) < 0)
		abort(); /* statusd reads what logd writes */
	if (strcmp(ev.source, "postfix") != 0 || strncmp(ev.id, "pf", 2) != 0 ||
	    !(ev.type == MSEV_DELIVERED || ev.type == MSEV_RELAYED || ev.type == MSEV_DEFERRED ||
	      ev.type == MSEV_BOUNCED || ev.type == MSEV_EXPIRED))
		abort();
	/* smtp_reply in RFC 8621's form ("code ..."), only with Postfix's text beside it */
	if ((reply = msevent_detail_get(&ev, "smtp_reply")) != NULL &&
	    (reply[0] < '2' || reply[0] > '5' || strlen(reply) < 3 ||
	     msevent_detail_get(&ev, "postfix_reply") == NULL || strstr(reply, " said: ") == reply))
		abort();
	msevent_clear(&ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok;
	const char *line = (const char *)data, *end = line + size, *nl;
	struct mbuf out = MBUF_INIT, again = MBUF_INIT;
	struct pfevent *pe;
	int lines = 0;

	if (tok == NULL) {
		msg_open("fuzz_pfevent", MSG_TARGET_SYSLOG, LOG_LOCAL7);
		if ((tok = msevent_tokener_new()) == NULL)
			abort();
	}
	pe = pfevent_new("lmtp, local,virtual", "postfix", 2);
	for (; line < end && lines++ < MAX_LINES; line = nl + 1) {
		size_t before = out.len, len;
		int made;

		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL)
			nl = end;
		len = (size_t)(nl - line);
		made = pfevent_line(pe, line, len, NOW_MS, &out);
		if (made != (out.len != before) || (made != 0 && made != 1))
			abort();
		if (!made)
			continue;
		check_record(tok, &out, before);
		mbuf_reset(&again);
		if (pfevent_line(pe, line, len, NOW_MS, &again) != 1 ||
		    again.len != out.len - before ||
		    memcmp(again.data, out.data + before, again.len) != 0)
			abort(); /* the same line makes the same event */
	}
	pfevent_free(&pe);
	mbuf_free(&out);
	mbuf_free(&again);
	return 0;
}
