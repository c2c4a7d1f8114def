/*
 * fuzz_report - libFuzzer target for the DSN/MDN parser (reports/report.c): a whole message
 * as anyone may send it, parsed with GMime, and the two mappings on what comes out.
 *
 * Invariants: a parsed report is a DSN or an MDN with at least one recipient (kept or
 * dropped), at most REPORT_RCPTS_MAX kept; every string it holds is valid UTF-8 without
 * control characters and at most REPORT_FIELD_MAX bytes; smtpreply_form() of every
 * Diagnostic-Code either fails or gives a reply that starts with a 2xx-5xx code and holds no
 * control character; a failed parse leaves nothing behind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "smtpreply.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *s)
{
	size_t n;

	if (s == NULL)
		return;
	n = strlen(s);
	if (n > REPORT_FIELD_MAX || !utf8_valid(s, n))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct report r;
	const char *error = NULL;
	char reply[REPORT_FIELD_MAX + 1];

	if (report_parse((const char *)data, size, &r, &error) < 0) {
		if (error == NULL || r.nrcpts != 0 || r.rcpts != NULL)
			abort();
		return 0;
	}
	if ((r.kind != REPORT_DSN && r.kind != REPORT_MDN) ||
	    (r.nrcpts == 0 && r.rcpts_dropped == 0) || r.nrcpts > REPORT_RCPTS_MAX)
		abort();
	check(r.envelope_id);
	check(r.reporting_mta);
	check(r.disposition);
	check(r.original_message_id);
	check(r.msgstatus_id);
	check(r.message_id);
	(void)report_event(r.kind, r.disposition);
	for (size_t i = 0; i < r.nrcpts; i++) {
		const struct report_rcpt *rc = &r.rcpts[i];
		check(rc->original_recipient);
		check(rc->final_recipient);
		check(rc->action);
		check(rc->status);
		check(rc->diagnostic_code);
		check(rc->remote_mta);
		(void)report_event(r.kind, rc->action);
		if (smtpreply_form(rc->diagnostic_code, rc->status, reply, sizeof(reply)) == 0) {
			if (reply[0] < '2' || reply[0] > '5')
				abort();
			for (const char *c = reply; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					abort();
		}
	}
	report_clear(&r);
	return 0;
}
