/*
 * fuzz_pflog - libFuzzer target for the Postfix log-line parser (pflog_parse, pflog_time).
 *
 * Invariants checked beyond "no crash, no over-read, no UB":
 *  - every returned pflog_str lies within the input (or is NULL with length 0);
 *  - rec.kind is the return value and a known kind; a PFLOG_OTHER record has nothing but
 *    header fields; a DELIVERY has a status, a QUEUED a size and a recipient count;
 *  - the same bytes with "\r\n" appended parse to the same kind and the same pieces.
 * The input is one line; it may hold any bytes, NUL included.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pflog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSTRS 15

static void
strs_of(const struct pflog_rec *r, const struct pflog_str *s[NSTRS])
{
	const struct pflog_str *all[NSTRS] = {
	        &r->timestamp, &r->host,        &r->program, &r->service,    &r->queue_id,
	        &r->to,        &r->orig_to,     &r->relay,   &r->delay,      &r->delays,
	        &r->dsn,       &r->status_text, &r->from,    &r->message_id, &r->bounce_queue_id,
	};
	memcpy(s, all, sizeof(all));
}

static void
check_within(const struct pflog_rec *r, const char *base, size_t size)
{
	const struct pflog_str *s[NSTRS];

	strs_of(r, s);
	for (int i = 0; i < NSTRS; i++) {
		if (s[i]->ptr == NULL) {
			if (s[i]->len != 0)
				abort();
			continue;
		}
		if (s[i]->ptr < base || s[i]->ptr > base + size ||
		    s[i]->len > (size_t)(base + size - s[i]->ptr))
			abort();
	}
}

static int
same_piece(const struct pflog_str *a, const struct pflog_str *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct pflog_rec rec, rec2;
	enum pflog_kind kind;
	char *crlf;

	kind = pflog_parse(line, size, &rec);
	if (kind != rec.kind || (unsigned)kind > PFLOG_BOUNCE)
		abort();
	check_within(&rec, line, size);
	switch (kind) {
	case PFLOG_OTHER:
		if (rec.queue_id.len || rec.to.len || rec.relay.len || rec.from.ptr ||
		    rec.status_text.ptr || rec.message_id.len || rec.bounce_queue_id.len ||
		    rec.status != PFLOG_STATUS_NONE || rec.size != -1 || rec.nrcpt != -1)
			abort();
		break;
	case PFLOG_DELIVERY:
		if (rec.status == PFLOG_STATUS_NONE || rec.queue_id.len == 0 || rec.dsn.len == 0 ||
		    rec.relay.len == 0 || rec.status_text.ptr == NULL)
			abort();
		break;
	case PFLOG_QUEUED:
		if (rec.size < 0 || rec.nrcpt < 0 || rec.from.ptr == NULL)
			abort();
		break;
	case PFLOG_EXPIRED:
		if (rec.from.ptr == NULL || rec.status != PFLOG_EXPIRED_STATUS)
			abort();
		break;
	case PFLOG_MSGID:
		if (rec.message_id.len < 2)
			abort();
		break;
	case PFLOG_BOUNCE:
		if (rec.bounce_queue_id.len == 0)
			abort();
		break;
	default:
		break;
	}
	if (rec.timestamp.ptr != NULL)
		(void)pflog_time(&rec.timestamp, 1795351200000);

	/* A CRLF log: the same record. Only for lines that do not end in CR/LF already. */
	if (size > 0 && (line[size - 1] == '\r' || line[size - 1] == '\n'))
		return 0;
	if ((crlf = malloc(size + 2)) == NULL)
		return 0;
	memcpy(crlf, data, size);
	memcpy(crlf + size, "\r\n", 2);
	if (pflog_parse(crlf, size + 2, &rec2) != kind)
		abort();
	check_within(&rec2, crlf, size + 2);
	{
		const struct pflog_str *a[NSTRS], *b[NSTRS];
		strs_of(&rec, a);
		strs_of(&rec2, b);
		for (int i = 0; i < NSTRS; i++)
			if (!same_piece(a[i], b[i]))
				abort();
	}
	if (rec.status != rec2.status || rec.size != rec2.size || rec.nrcpt != rec2.nrcpt ||
	    rec.pid != rec2.pid)
		abort();
	free(crlf);
	return 0;
}
