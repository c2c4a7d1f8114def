/*
 * fuzz_tracker - libFuzzer target for what the milter decides from an SMTP client's
 * envelope and headers (milter/tracker.c), the input Postfix passes on unchanged.
 *
 * The input is a script, one step per line (the first byte says which, fields are split at
 * tabs, a missing field is NULL):
 *	M envfrom TAB sasl_user TAB domains TAB trust TAB local	MAIL FROM (new message)
 *	R rcpt						RCPT TO (at most 5 recorded)
 *	H name:value					a header
 *	B bytes						body bytes (their count)
 *	E queue_id					end of message
 *	D list TAB address				tracker_domain_listed
 *	L host TAB addr TAB port			tracker_is_local_submission
 *
 * At most MAX_MSGS messages are run per input: the tracker keeps nothing from one message to
 * the next, and inputs of dozens of small messages made the target slow for no coverage.
 *
 * Invariants at every end of message: each event record the milter would spool parses as
 * statusd parses it (msevent_parse), is a "queued" event from the milter with the tracking
 * id of the header that is added, and there are as many as the result says; a message is
 * tagged only with at least one event; every Msgstatus-Id header that came in is deleted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "tracker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NF       5
#define MAX_MSGS 4

/* Split s at tabs into f[0..NF-1]; fields past the last tab are NULL. */
static void
fields(char *s, char *f[NF])
{
	for (int i = 0; i < NF; i++) {
		f[i] = s;
		if (s != NULL && (s = strchr(s, '\t')) != NULL)
			*s++ = '\0';
	}
}

static void
check_eom(struct tracker_msg *m, const char *qid, unsigned headers_in)
{
	static struct json_tokener *tok;
	struct tracker_result res;
	struct mbuf events = MBUF_INIT;
	unsigned n = 0;

	if (tok == NULL && (tok = msevent_tokener_new()) == NULL)
		abort();
	tracker_eom(m, qid, INT64_C(1795348067000), &res, &events);
	if (res.delete_tags != headers_in || (res.tag && res.events == 0) ||
	    (!res.tag && events.len != 0))
		abort();
	for (size_t off = 0; off < events.len;) {
		char *nl = memchr(events.data + off, '\n', events.len - off);
		struct msevent ev;
		const char *error;

		if (nl == NULL)
			abort(); /* every record ends in a newline */
		if (msevent_parse(&ev, tok, events.data + off, (size_t)(nl - (events.data + off)),
		                  &error) < 0)
			abort();
		if (ev.type != MSEV_QUEUED || strcmp(ev.source, "milter") != 0 ||
		    ev.tracking_id == NULL || strcmp(ev.tracking_id, res.tracking_id) != 0)
			abort();
		msevent_clear(&ev);
		off = (size_t)(nl - events.data) + 1;
		n++;
	}
	if (n != res.events)
		abort();
	mbuf_free(&events);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *line, *next, *f[NF];
	struct tracker_msg *m = NULL;
	unsigned headers_in = 0, msgs = 0;

	if (copy == NULL)
		return 0;
	msg_open("fuzz_tracker", MSG_TARGET_SYSLOG, LOG_LOCAL7); /* warnings are expected */
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (line = copy; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		char op = line[0], *arg = op ? line + 1 : line;
		switch (op) {
		case 'M':
			if (++msgs > MAX_MSGS) {
				next = NULL;
				break;
			}
			tracker_msg_free(&m);
			m = tracker_msg_new();
			headers_in = 0;
			fields(arg, f);
			tracker_mail(m, f[0] ? f[0] : "", f[1], f[2], f[3], f[4] && f[4][0] == '1');
			break;
		case 'R':
			if (m)
				tracker_rcpt(m, arg, 5);
			break;
		case 'H': {
			char *colon = strchr(arg, ':');
			if (m == NULL || colon == NULL)
				break;
			*colon = '\0';
			if (strcasecmp(arg, TRACKER_HEADER) == 0)
				headers_in++;
			tracker_header(m, arg, colon + 1);
			break;
		}
		case 'B':
			if (m)
				tracker_body(m, strlen(arg));
			break;
		case 'E':
			if (m) {
				check_eom(m, arg[0] ? arg : NULL, headers_in);
				tracker_msg_free(&m);
			}
			break;
		case 'D':
			fields(arg, f);
			(void)tracker_domain_listed(f[0], f[1] ? f[1] : "");
			break;
		case 'L':
			fields(arg, f);
			(void)tracker_is_local_submission(f[0] ? f[0] : "", f[1] ? f[1] : "",
			                                  f[2] ? (unsigned)atoi(f[2]) : 0);
			break;
		default:
			break;
		}
	}
	tracker_msg_free(&m);
	free(copy);
	return 0;
}
