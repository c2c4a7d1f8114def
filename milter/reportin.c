/*
 * reportin - DSNs and MDNs that come back become report events. See reportin.h.
 */
#include "reportin.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "dkimverify.h"
#include "envmac.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "report.h"
#include "smtpreply.h"
#include "utf8.h"

/* room left in a record for the JSON escapes of what is cut to fit */
#define RAW_SLACK 64

/* Does the Content-Type value start with type (a full token)? */
static bool
type_is(const char *value, const char *type)
{
	size_t n = strlen(type);

	while (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
		value++;
	if (strncasecmp(value, type, n) != 0)
		return false;
	value += n;
	return *value == '\0' || *value == ';' || *value == ' ' || *value == '\t' ||
	       *value == '\r' || *value == '\n';
}

bool
reportin_candidate(const char *content_type, const char *sender)
{
	if (content_type == NULL)
		return false;
	if (type_is(content_type, "multipart/report"))
		return true;
	/* some MTAs send a DSN as multipart/mixed with a message/delivery-status part: read
	   those only from the null sender, or every mail with attachments would be kept */
	return sender != NULL && sender[0] == '\0' && type_is(content_type, "multipart/mixed");
}

/* An address with its domain in lower case, into out (MSEVENT_ADDR_MAX + 1); false if it
   is no address. */
static bool
recipient_of(const struct report_rcpt *rc, char *out, size_t outlen)
{
	const char *a = rc->original_recipient ? rc->original_recipient : rc->final_recipient;
	char *at;

	if (a == NULL || strlen(a) >= outlen || (at = strrchr(a, '@')) == NULL || at == a ||
	    at[1] == '\0')
		return false;
	memcpy(out, a, strlen(a) + 1);
	for (char *p = out + (at - a) + 1; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return true;
}

/* raw[0..len) as valid UTF-8 without NULs (other bytes become '?'), cut at a character. */
static char *
raw_clean(const char *raw, size_t len)
{
	char *s = mymalloc(len + 1);

	memcpy(s, raw, len);
	s[len] = '\0';
	for (size_t i = 0, k; i < len; i += k)
		if ((k = utf8_seq_len(s + i, len - i)) == 0 || s[i] == '\0') {
			s[i] = '?';
			k = 1;
		}
	return s;
}

/* Append ev to events, with raw (clean) in its details cut so that the record fits: the
   escaped raw text may take what the record without it leaves. cut: raw is already the
   start of a longer text (raw_truncated whatever fits). */
static void
append_with_raw(struct msevent *ev, char *raw, size_t rawlen, bool cut, struct mbuf *events)
{
	struct mbuf rec = MBUF_INIT;
	size_t keep = rawlen, base;

	msevent_detail_bool(ev, "raw_truncated", true);
	msevent_detail_str(ev, MSEVENT_RAW_KEY, "");
	msevent_format(ev, &rec);
	base = rec.len;
	for (;;) {
		char saved = raw[keep];

		if (keep == rawlen && !cut)
			json_object_object_del(ev->details, "raw_truncated");
		raw[keep] = '\0';
		msevent_detail_str(ev, MSEVENT_RAW_KEY, raw);
		raw[keep] = saved;
		mbuf_reset(&rec);
		msevent_format(ev, &rec);
		if (rec.len <= MSEVENT_RECORD_MAX || keep == 0)
			break;
		/* the escapes of what is kept take (rec.len - base) / keep bytes per byte: keep
		   what fits at that rate, a little less, at a character */
		if (keep == rawlen)
			msevent_detail_bool(ev, "raw_truncated", true);
		size_t budget = MSEVENT_RECORD_MAX - base - RAW_SLACK;
		size_t next = (size_t)((double)keep * (double)budget / (double)(rec.len - base));
		keep = next < keep ? next : keep - 1;
		while (keep > 0 && ((unsigned char)raw[keep] & 0xC0) == 0x80)
			keep--;
	}
	mbuf_append(events, rec.data, rec.len);
	mbuf_free(&rec);
}

/* The d= of every valid signature, space-separated, into out; "" if none. */
static void
dkim_domains(const struct dkimverify_result *dkim, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; dkim != NULL && i < dkim->nsigs; i++) {
		size_t len = strlen(dkim->sigs[i].domain);
		if (n + len + 2 > outlen)
			break;
		if (n > 0)
			out[n++] = ' ';
		memcpy(out + n, dkim->sigs[i].domain, len + 1);
		n += len;
	}
}

int
reportin_read(const struct reportin_input *in, struct reportin_result *res, struct mbuf *events,
              const char **why)
{
	struct report r;
	const char *message_id, *err;
	char dkim[DKIMVERIFY_SIGS_MAX * (DKIMVERIFY_DOMAIN_MAX + 1) + 1];
	char *raw = NULL;
	size_t rawlen = 0;
	bool all_good = true, keep = false;

	memset(res, 0, sizeof(*res));
	if (report_parse(in->data, in->len, &r, why) < 0)
		return -1;
	res->dsn = r.kind == REPORT_DSN;
	res->envid_ok =
	        res->dsn && in->secret != NULL &&
	        envmac_check(r.envelope_id, in->secret, in->secret_len, res->tracking_id, &keep);
	if (!res->envid_ok && r.msgstatus_id != NULL &&
	    randid_valid(r.msgstatus_id, strlen(r.msgstatus_id)))
		memcpy(res->tracking_id, r.msgstatus_id, RANDID_LEN + 1);
	message_id = r.original_message_id ? r.original_message_id : r.message_id;
	if (message_id != NULL && (strlen(message_id) > MSEVENT_MSGID_MAX || message_id[0] != '<'))
		message_id = NULL;
	if (res->tracking_id[0] == '\0' && message_id == NULL) {
		*why = "it names no message (no Original-Envelope-Id of ours, no returned "
		       "Msgstatus-Id or Message-ID)";
		report_clear(&r);
		return -1;
	}
	randid_new(res->report_id);
	dkim_domains(in->dkim, dkim, sizeof(dkim));
	res->skipped = (unsigned)r.rcpts_dropped;
	for (size_t i = 0; i < r.nrcpts; i++) {
		const struct report_rcpt *rc = &r.rcpts[i];
		const char *what = res->dsn ? rc->action : r.disposition;
		enum msevent_type type = report_event(r.kind, what);
		char evid[RANDID_LEN + 1], rcpt[MSEVENT_ADDR_MAX + 1], reply[REPORT_FIELD_MAX + 1];
		struct msevent ev;

		if (!res->dsn ||
		    (type != MSEV_DELIVERED && type != MSEV_RELAYED && type != MSEV_DEFERRED))
			all_good = false;
		if (!recipient_of(rc, rcpt, sizeof(rcpt))) {
			res->skipped++;
			continue;
		}
		msevent_init(&ev);
		ev.id = randid_new(evid);
		ev.type = MSEV_REPORT;
		ev.time_ms = in->now_ms;
		ev.source = "milter";
		ev.tracking_id = res->tracking_id[0] ? res->tracking_id : NULL;
		ev.message_id = message_id;
		ev.recipient = rcpt;
		msevent_detail_str(&ev, "kind", res->dsn ? "dsn" : "mdn");
		if (type != MSEV_NONE)
			msevent_detail_str(&ev, "status", msevent_type_name(type));
		if (what != NULL)
			msevent_detail_str(&ev, res->dsn ? "action" : "disposition", what);
		if (rc->status != NULL)
			msevent_detail_str(&ev, "dsn", rc->status);
		if (rc->diagnostic_code != NULL &&
		    smtpreply_form(rc->diagnostic_code, rc->status, reply, sizeof(reply)) == 0)
			msevent_detail_str(&ev, "smtp_reply", reply);
		if (r.reporting_mta != NULL)
			msevent_detail_str(&ev, "reporting_mta", r.reporting_mta);
		if (rc->remote_mta != NULL)
			msevent_detail_str(&ev, "remote_mta", rc->remote_mta);
		msevent_detail_bool(&ev, "envid_ok", res->envid_ok);
		if (dkim[0] != '\0')
			msevent_detail_str(&ev, "dkim", dkim);
		if (in->dkim != NULL && in->dkim->from_domain[0] != '\0')
			msevent_detail_str(&ev, "from_domain", in->dkim->from_domain);
		msevent_detail_str(&ev, "report_id", res->report_id);
		if (msevent_validate(&ev, &err) < 0) {
			msg_warn("report %s: entry %zu left out: %s", res->report_id, i + 1, err);
			msevent_clear(&ev);
			res->skipped++;
			continue;
		}
		if (res->events == 0) {
			/* a record holds at most MSEVENT_RECORD_MAX bytes of it: copy no more */
			rawlen = in->len < MSEVENT_RECORD_MAX ? in->len : MSEVENT_RECORD_MAX;
			raw = raw_clean(in->data, rawlen);
			append_with_raw(&ev, raw, rawlen, in->cut || rawlen < in->len, events);
		} else
			msevent_format(&ev, events);
		msevent_clear(&ev);
		res->events++;
	}
	free(raw);
	/* a report the submitter asked for too (the keep mac) is theirs to see: never consumed */
	res->consume = res->envid_ok && !keep && all_good && res->events > 0 && res->skipped == 0;
	report_clear(&r);
	if (res->events == 0) {
		*why = "no recipient entry with a usable address";
		return -1;
	}
	return 0;
}
