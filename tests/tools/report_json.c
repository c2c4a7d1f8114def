/*
 * report_json - the DSN/MDN parser (reports/report.c) as a command for the end-to-end
 * tests: reads one whole message on standard input and prints what report_parse() makes
 * of it as one JSON object, with the event each recipient's Action (or the MDN's
 * disposition) maps to (report_event()) and the RFC 8621 smtpReply form of its
 * Diagnostic-Code (smtpreply_form()):
 *
 *	{"kind": "dsn", "envelope_id": "...", "reporting_mta": "...",
 *	 "recipients": [{"original_recipient": "...", "final_recipient": "...",
 *	                 "action": "delivered", "event": "delivered", "status": "2.0.0",
 *	                 "diagnostic_code": "...", "smtp_reply": "250 2.0.0 ...",
 *	                 "remote_mta": "..."}],
 *	 "recipients_dropped": 0, "disposition": null, "original_message_id": null,
 *	 "msgstatus_id": "...", "message_id": "<...>"}
 *
 * Fields the report does not have are null.
 *
 * DESIGN
 *	A test tool, not installed: the parser's public API and nothing else, so what the
 *	tests see is what a caller of report_parse() gets.
 *
 * SECURITY
 *	The message is whatever the test hands it; report_parse() bounds what it reads
 *	(REPORT_INPUT_MAX), so at most one byte more than that is read here.
 *
 * DIAGNOSTICS
 *	Exit 0 and the JSON on standard output; exit 1 with report_parse()'s reason on
 *	standard error when the message is not a report it understands; exit 2 on a usage
 *	or read error.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "msevent.h"
#include "report.h"
#include "smtpreply.h"

static json_object *
str(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/* One recipient; disposition is the MDN's (its event is the recipient's), NULL for a DSN. */
static json_object *
rcpt_json(const struct report *r, const struct report_rcpt *rc)
{
	json_object *o = json_object_new_object();
	enum msevent_type ev;
	char reply[REPORT_FIELD_MAX + 1];
	bool have_reply;

	ev = report_event(r->kind, r->kind == REPORT_MDN ? r->disposition : rc->action);
	have_reply = rc->diagnostic_code != NULL &&
	             smtpreply_form(rc->diagnostic_code, rc->status, reply, sizeof(reply)) == 0;
	json_object_object_add(o, "original_recipient", str(rc->original_recipient));
	json_object_object_add(o, "final_recipient", str(rc->final_recipient));
	json_object_object_add(o, "action", str(rc->action));
	json_object_object_add(o, "event", ev != MSEV_NONE ? str(msevent_type_name(ev)) : NULL);
	json_object_object_add(o, "status", str(rc->status));
	json_object_object_add(o, "diagnostic_code", str(rc->diagnostic_code));
	json_object_object_add(o, "smtp_reply", have_reply ? str(reply) : NULL);
	json_object_object_add(o, "remote_mta", str(rc->remote_mta));
	return o;
}

static json_object *
report_json(const struct report *r)
{
	json_object *o = json_object_new_object();
	json_object *rcpts = json_object_new_array();

	json_object_object_add(o, "kind", str(r->kind == REPORT_DSN ? "dsn" : "mdn"));
	json_object_object_add(o, "envelope_id", str(r->envelope_id));
	json_object_object_add(o, "reporting_mta", str(r->reporting_mta));
	for (size_t i = 0; i < r->nrcpts; i++)
		json_object_array_add(rcpts, rcpt_json(r, &r->rcpts[i]));
	json_object_object_add(o, "recipients", rcpts);
	json_object_object_add(o, "recipients_dropped",
	                       json_object_new_int64((int64_t)r->rcpts_dropped));
	json_object_object_add(o, "disposition", str(r->disposition));
	json_object_object_add(o, "original_message_id", str(r->original_message_id));
	json_object_object_add(o, "msgstatus_id", str(r->msgstatus_id));
	json_object_object_add(o, "message_id", str(r->message_id));
	return o;
}

int
main(int argc, char **argv)
{
	size_t cap = REPORT_INPUT_MAX + 1, len;
	char *buf;
	struct report r;
	const char *error = NULL;
	json_object *o;

	if (argc != 1) {
		fprintf(stderr, "usage: %s < message\n", argv[0]);
		return 2;
	}
	if ((buf = malloc(cap)) == NULL) {
		perror("report_json");
		return 2;
	}
	len = fread(buf, 1, cap, stdin);
	if (ferror(stdin)) {
		perror("report_json: standard input");
		free(buf);
		return 2;
	}
	if (report_parse(buf, len, &r, &error) < 0) {
		fprintf(stderr, "report_json: not a report: %s\n", error);
		free(buf);
		return 1;
	}
	o = report_json(&r);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	report_clear(&r);
	free(buf);
	return 0;
}
