/*
 * pflog - parse one line of Postfix's log. See pflog.h for the line shapes.
 *
 * The parser reads the line once, left to right, with a cursor that never passes the end:
 * first the syslog header (optional "<PRI>", timestamp, host, program[pid]:), then the
 * queue id, then one of a few fixed message shapes chosen by the first byte after
 * "QUEUEID: ". Most lines in a real maillog (smtpd connect/disconnect/client=, TLS, anvil,
 * postscreen, NOQUEUE rejects, warnings) fail at the queue id or at that first byte, a few
 * dozen byte comparisons in; only delivery lines are read to the end.
 *
 * DESIGN
 *	No allocation, no regular expressions, no sscanf, no function-static state: safe to
 *	call from any number of threads. Every struct pflog_str points into the caller's
 *	line. A shape is recognized only when it is complete: every shape ends in something
 *	Postfix always writes last (the ")" closing a delivery's status text, "(queue
 *	active)", "returned to sender", "removed", the ">" of a Message-ID), so a line cut
 *	anywhere is PFLOG_OTHER rather than a record with a truncated field. Two exceptions:
 *	a BOUNCE line ends in the new queue id, and a cut inside that id cannot be seen; and
 *	Postfix cuts its own records at PFLOG_RECLEN bytes of text, so a delivery with a
 *	very long remote reply loses the end of its status text and the closing ")". A
 *	delivery line whose text (from the queue id on) is exactly that long is accepted,
 *	with status_text running to the end of the line.
 *
 *	Beyond pflog.h's list: status=SOFTBOUNCE (soft_bounce = yes: the mail stays queued)
 *	is PFLOG_DEFERRED; qmgr's "status=force-expired, returned to sender" (postsuper -e)
 *	is PFLOG_EXPIRED. Not recognized (PFLOG_OTHER): address-verification probes
 *	(status=deliverable/undeliverable), "sender delay notification", "resent-message-id",
 *	and a Message-ID logged without angle brackets (cleanup logs the header as is).
 *	A raw syslog(3) datagram ("<PRI>" and no host) is read too: the host is told from
 *	the program by the '/' every Postfix program name has and no host name has.
 *
 *	Timestamps as Postfix 3.7 writes them: maillog_file (postlogd) uses strftime "%b %d
 *	%H:%M:%S", a zero-padded day ("Nov 02"), and the host name's first label; rsyslog's
 *	traditional format pads the day with a space ("Nov  2"); rsyslog's default on Debian
 *	12 is RFC 3339 with microseconds. All three are accepted, and a fraction after the
 *	seconds of the syslog form.
 *
 *	Addresses: Postfix logs them in external form (info_log_address_format = external,
 *	the default), where a local part with specials is quoted ("john doe"@example.com,
 *	"a>b, c"@example.com) and a '"' or '\' inside the quotes is escaped with '\'. An
 *	address ends at the first '>' outside quotes that is followed by the field Postfix
 *	writes next (", orig_to=<" or ", relay=" after to=; ", relay=" after orig_to=;
 *	", size=" or ", status=" after from=). If no such '>' exists (an internal-form
 *	address with an unbalanced quote), the first '>' followed by that field, quotes
 *	ignored, ends it.
 *
 *	The status text of a delivery is everything between the '(' after "status=word " and
 *	the ')' that ends the line; it is rejected (PFLOG_OTHER) if it holds more '(' than
 *	')', which is what a line cut after an inner ')' looks like.
 *
 * SECURITY
 *	The line is untrusted: anyone who can write to syslog can forge one, and remote
 *	servers choose the reply text inside it. The cursor is checked against the end before
 *	every read, numbers are checked for overflow, and nothing is copied.
 *
 * DIAGNOSTICS
 *	None: a line that does not match a shape completely is PFLOG_OTHER. In a PFLOG_OTHER
 *	record only the header fields (timestamp, host, program, service, pid) are set, and
 *	only when the header was recognized; everything else is empty, size/nrcpt/pid -1.
 */
#include "pflog.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "rfc3339.h"

#define QID_MAX 32 /* longest accepted queue id (long ids are about 16 characters) */

/*
 * Postfix cuts the text of every log record to this many bytes (MSG_LOGGER_RECLEN in
 * msg_logger.c for maillog_file, MSG_SYSLOG_RECLEN in msg_syslog.c for syslog).
 */
#define PFLOG_RECLEN 2000

static inline bool
is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

static inline bool
is_upper(char c)
{
	return (unsigned char)(c - 'A') < 26;
}

static inline bool
is_lower(char c)
{
	return (unsigned char)(c - 'a') < 26;
}

/* If the n bytes of s are at *pp, move past them and return true. */
static inline bool
skip_lit(const char **pp, const char *end, const char *s, size_t n)
{
	if ((size_t)(end - *pp) < n || memcmp(*pp, s, n) != 0)
		return false;
	*pp += n;
	return true;
}

#define SKIP(pp, end, lit) skip_lit((pp), (end), (lit), sizeof(lit) - 1)

static inline void
set_str(struct pflog_str *s, const char *from, const char *to)
{
	s->ptr = from;
	s->len = (size_t)(to - from);
}

/* 1..12 for a month abbreviation at p (3 bytes), 0 otherwise. */
static int
month_of(const char *p)
{
	switch (((unsigned)(unsigned char)p[0] << 16) | ((unsigned)(unsigned char)p[1] << 8) |
	        (unsigned char)p[2]) {
	case 'J' << 16 | 'a' << 8 | 'n':
		return 1;
	case 'F' << 16 | 'e' << 8 | 'b':
		return 2;
	case 'M' << 16 | 'a' << 8 | 'r':
		return 3;
	case 'A' << 16 | 'p' << 8 | 'r':
		return 4;
	case 'M' << 16 | 'a' << 8 | 'y':
		return 5;
	case 'J' << 16 | 'u' << 8 | 'n':
		return 6;
	case 'J' << 16 | 'u' << 8 | 'l':
		return 7;
	case 'A' << 16 | 'u' << 8 | 'g':
		return 8;
	case 'S' << 16 | 'e' << 8 | 'p':
		return 9;
	case 'O' << 16 | 'c' << 8 | 't':
		return 10;
	case 'N' << 16 | 'o' << 8 | 'v':
		return 11;
	case 'D' << 16 | 'e' << 8 | 'c':
		return 12;
	default:
		return 0;
	}
}

/*
 * "Mmm dd HH:MM:SS" with the day zero- or space-padded, then an optional fraction
 * (".123456", as some loggers write). Returns the end of the timestamp or NULL.
 */
static const char *
syslog_time_end(const char *p, const char *end)
{
	if (end - p < 15 || month_of(p) == 0 || p[3] != ' ' || !(p[4] == ' ' || is_digit(p[4])) ||
	    !is_digit(p[5]) || p[6] != ' ' || !is_digit(p[7]) || !is_digit(p[8]) || p[9] != ':' ||
	    !is_digit(p[10]) || !is_digit(p[11]) || p[12] != ':' || !is_digit(p[13]) ||
	    !is_digit(p[14]))
		return NULL;
	p += 15;
	if (p < end && *p == '.') {
		const char *f = ++p;
		while (p < end && is_digit(*p) && p - f < 9)
			p++;
		if (p == f)
			return NULL;
	}
	return p;
}

/*
 * RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)": the shape only; pflog_time()
 * checks the ranges. Returns the end of the timestamp or NULL.
 */
static const char *
rfc3339_time_end(const char *p, const char *end)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	const char *z;

	if (end - p < 20)
		return NULL;
	for (int i = 0; i < 19; i++) {
		if (shape[i] == 'd' ? !is_digit(p[i])
		                    : (p[i] != shape[i] && !(i == 10 && p[i] == 't')))
			return NULL;
	}
	p += 19;
	if (*p == '.') {
		const char *f = ++p;
		while (p < end && is_digit(*p) && p - f < 12)
			p++;
		if (p == f)
			return NULL;
	}
	if (p < end && (*p == 'Z' || *p == 'z'))
		return p + 1;
	if (end - p < 6 || (*p != '+' && *p != '-'))
		return NULL;
	z = p;
	if (!is_digit(z[1]) || !is_digit(z[2]) || z[3] != ':' || !is_digit(z[4]) || !is_digit(z[5]))
		return NULL;
	return p + 6;
}

/*
 * The syslog header: [<PRI>]TIMESTAMP [HOST ]PROGRAM[[PID]]: . HOST is absent in a raw
 * syslog(3) datagram; it is told from the program by the '/' a Postfix program name has
 * and a host name never has. Returns the start of the message text, or NULL.
 */
static const char *
parse_header(const char *p, const char *end, struct pflog_rec *rec)
{
	const char *ts, *tok, *sp, *colon, *prog_end, *slash;

	if (p < end && *p == '<') {
		unsigned pri = 0;
		const char *d = ++p;
		while (p < end && is_digit(*p) && p - d < 3)
			pri = pri * 10 + (unsigned)(*p++ - '0');
		if (p == d || p >= end || *p != '>' || pri > 191)
			return NULL;
		p++;
	}
	ts = p;
	if (p < end && is_upper(*p))
		p = syslog_time_end(p, end);
	else if (p < end && is_digit(*p))
		p = rfc3339_time_end(p, end);
	else
		return NULL;
	if (p == NULL || p >= end || *p != ' ')
		return NULL;
	set_str(&rec->timestamp, ts, p);
	tok = ++p;
	if ((sp = memchr(tok, ' ', (size_t)(end - tok))) == NULL)
		return NULL;
	if (memchr(tok, '/', (size_t)(sp - tok)) == NULL) {
		if (sp == tok)
			return NULL;
		set_str(&rec->host, tok, sp);
		tok = sp + 1;
		if ((sp = memchr(tok, ' ', (size_t)(end - tok))) == NULL)
			return NULL;
	}
	/* PROGRAM[PID]: or PROGRAM: */
	if (sp - tok < 2 || sp[-1] != ':')
		return NULL;
	colon = sp - 1;
	prog_end = colon;
	if (colon[-1] == ']') {
		const char *d = colon - 1;
		long pid = 0;
		while (d > tok && is_digit(d[-1]))
			d--;
		if (d == colon - 1 || d == tok || d[-1] != '[' || colon - 1 - d > 9)
			return NULL;
		for (const char *q = d; q < colon - 1; q++)
			pid = pid * 10 + (*q - '0');
		rec->pid = pid;
		prog_end = d - 1;
	}
	if (prog_end == tok)
		return NULL;
	for (slash = prog_end - 1; slash >= tok && *slash != '/'; slash--)
		;
	if (slash < tok || slash + 1 == prog_end || slash == tok)
		return NULL;
	set_str(&rec->program, tok, prog_end);
	set_str(&rec->service, slash + 1, prog_end);
	return sp + 1;
}

/*
 * A queue id: 1..QID_MAX bytes of [0-9A-Za-z] with at least one digit or capital (this
 * keeps "warning", "fatal", "statistics" out), and not "NOQUEUE". Returns its end.
 */
static const char *
qid_end(const char *p, const char *end)
{
	const char *s = p;
	bool marked = false;

	while (p < end && p - s <= QID_MAX) {
		char c = *p;
		if (is_digit(c) || is_upper(c))
			marked = true;
		else if (!is_lower(c))
			break;
		p++;
	}
	if (p == s || p - s > QID_MAX || !marked || (p - s == 7 && memcmp(s, "NOQUEUE", 7) == 0))
		return NULL;
	return p;
}

enum addr_field { ADDR_TO, ADDR_ORIG_TO, ADDR_FROM };

/* Does the field Postfix logs after this address follow at p (just after its '>')? */
static bool
addr_followed(const char *p, const char *end, enum addr_field field)
{
	const char *q = p;

	if (!SKIP(&q, end, ", "))
		return false;
	switch (field) {
	case ADDR_TO:
		return SKIP(&q, end, "relay=") || SKIP(&q, end, "orig_to=<");
	case ADDR_ORIG_TO:
		return SKIP(&q, end, "relay=");
	case ADDR_FROM:
		return SKIP(&q, end, "size=") || SKIP(&q, end, "status=");
	}
	return false;
}

/* The address after "<" at p (see DESIGN); returns the position after its '>' or NULL. */
static const char *
parse_addr(const char *p, const char *end, enum addr_field field, struct pflog_str *out)
{
	bool quoted = false;

	for (const char *q = p; q < end; q++) {
		if (quoted) {
			if (*q == '\\')
				q++;
			else if (*q == '"')
				quoted = false;
		} else if (*q == '"') {
			quoted = true;
		} else if (*q == '>' && addr_followed(q + 1, end, field)) {
			set_str(out, p, q);
			return q + 1;
		}
	}
	for (const char *q = p; (q = memchr(q, '>', (size_t)(end - q))) != NULL; q++) {
		if (addr_followed(q + 1, end, field)) {
			set_str(out, p, q);
			return q + 1;
		}
	}
	return NULL;
}

/* A field value: up to the next ',' (or the end), not empty. */
static const char *
value_end(const char *p, const char *end)
{
	const char *c = memchr(p, ',', (size_t)(end - p));

	if (c == NULL)
		c = end;
	return c == p ? NULL : c;
}

static bool
all_of(const char *p, const char *end, const char *set)
{
	for (; p < end; p++)
		if (strchr(set, *p) == NULL || *p == '\0')
			return false;
	return true;
}

/* "X.Y.Z": digits and two dots, each part 1-3 digits. */
static bool
dsn_ok(const char *p, const char *end)
{
	int parts = 0, digits = 0;

	for (; p < end; p++) {
		if (is_digit(*p)) {
			if (++digits > 3)
				return false;
		} else if (*p == '.' && digits > 0 && parts < 2) {
			parts++;
			digits = 0;
		} else {
			return false;
		}
	}
	return parts == 2 && digits > 0;
}

static void
clear_fields(struct pflog_rec *rec)
{
	struct pflog_rec keep = *rec;

	*rec = (struct pflog_rec){.size = -1, .nrcpt = -1};
	rec->timestamp = keep.timestamp;
	rec->host = keep.host;
	rec->program = keep.program;
	rec->service = keep.service;
	rec->pid = keep.pid;
}

/*
 * QID: to=<...>, [orig_to=<...>, ]relay=..., [conn_use=N, ]delay=..., delays=...,
 * [other=..., ]dsn=X.Y.Z, status=word (text)
 */
static enum pflog_kind
parse_delivery(const char *p, const char *end, bool truncated, struct pflog_rec *rec)
{
	const char *v, *word;
	int fields = 0;

	if (!SKIP(&p, end, "to=<") || (p = parse_addr(p, end, ADDR_TO, &rec->to)) == NULL)
		return PFLOG_OTHER;
	if (SKIP(&p, end, ", orig_to=<") &&
	    (p = parse_addr(p, end, ADDR_ORIG_TO, &rec->orig_to)) == NULL)
		return PFLOG_OTHER;
	if (!SKIP(&p, end, ", relay=") || (v = value_end(p, end)) == NULL)
		return PFLOG_OTHER;
	set_str(&rec->relay, p, v);
	p = v;
	/* The statistics (and fields newer Postfix versions add) up to dsn=. */
	for (;;) {
		struct pflog_str *dst = NULL;
		const char *chars = NULL;
		if (!SKIP(&p, end, ", ") || ++fields > 16)
			return PFLOG_OTHER;
		if (SKIP(&p, end, "dsn="))
			break;
		if (SKIP(&p, end, "delay=")) {
			dst = &rec->delay;
			chars = "0123456789.";
		} else if (SKIP(&p, end, "delays=")) {
			dst = &rec->delays;
			chars = "0123456789./";
		} else if (SKIP(&p, end, "conn_use=")) {
			chars = "0123456789";
		} else {
			const char *k = p;
			while (p < end && (is_lower(*p) || *p == '_'))
				p++;
			if (p == k || p == end || *p != '=')
				return PFLOG_OTHER;
			p++;
		}
		if ((v = value_end(p, end)) == NULL || (chars && !all_of(p, v, chars)))
			return PFLOG_OTHER;
		if (dst)
			set_str(dst, p, v);
		p = v;
	}
	if (rec->delay.ptr == NULL || rec->delays.ptr == NULL)
		return PFLOG_OTHER;
	if ((v = value_end(p, end)) == NULL || !dsn_ok(p, v))
		return PFLOG_OTHER;
	set_str(&rec->dsn, p, v);
	p = v;
	if (!SKIP(&p, end, ", status="))
		return PFLOG_OTHER;
	for (word = p; p < end && *p != ' '; p++)
		;
	switch (p - word) {
	case 4:
		rec->status = memcmp(word, "sent", 4) == 0 ? PFLOG_SENT : PFLOG_STATUS_NONE;
		break;
	case 7:
		if (memcmp(word, "bounced", 7) == 0)
			rec->status = PFLOG_BOUNCED;
		else if (memcmp(word, "expired", 7) == 0)
			rec->status = PFLOG_EXPIRED_STATUS;
		break;
	case 8:
		rec->status = memcmp(word, "deferred", 8) == 0 ? PFLOG_DEFERRED : PFLOG_STATUS_NONE;
		break;
	case 10:
		/* soft_bounce = yes: a bounce that stays in the queue, i.e. a deferral. */
		if (memcmp(word, "SOFTBOUNCE", 10) == 0)
			rec->status = PFLOG_DEFERRED;
		break;
	default:
		break; /* deliverable, undeliverable (address probes): not deliveries */
	}
	if (rec->status == PFLOG_STATUS_NONE)
		return PFLOG_OTHER;
	/*
	 * " (text)" to the end of the line, with no more '(' than ')' inside; or, in a
	 * record Postfix itself cut at PFLOG_RECLEN, " (text" to the end.
	 */
	if (!SKIP(&p, end, " ("))
		return PFLOG_OTHER;
	if (p < end && end[-1] == ')') {
		long depth = 0;
		for (const char *q = p; q < end - 1; q++) {
			if (*q == '(')
				depth++;
			else if (*q == ')')
				depth--;
		}
		if (depth <= 0) {
			set_str(&rec->status_text, p, end - 1);
			return PFLOG_DELIVERY;
		}
	}
	if (!truncated)
		return PFLOG_OTHER;
	set_str(&rec->status_text, p, end);
	return PFLOG_DELIVERY;
}

/* Decimal digits at *pp into a non-negative int64 (no overflow); advances *pp. */
static bool
parse_num(const char **pp, const char *end, int64_t max, int64_t *out)
{
	const char *p = *pp;
	int64_t n = 0;

	if (p >= end || !is_digit(*p))
		return false;
	for (; p < end && is_digit(*p); p++) {
		int d = *p - '0';
		if (n > (max - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*pp = p;
	*out = n;
	return true;
}

/*
 * QID: from=<...>, size=N, nrcpt=N (queue active)
 * QID: from=<...>, status=expired, returned to sender
 * QID: from=<...>, status=force-expired, returned to sender	(postsuper -e, Postfix 3.5+)
 */
static enum pflog_kind
parse_from(const char *p, const char *end, struct pflog_rec *rec)
{
	int64_t size, nrcpt;

	if (!SKIP(&p, end, "from=<") || (p = parse_addr(p, end, ADDR_FROM, &rec->from)) == NULL)
		return PFLOG_OTHER;
	if (SKIP(&p, end, ", size=")) {
		if (!parse_num(&p, end, INT64_MAX, &size) || !SKIP(&p, end, ", nrcpt=") ||
		    !parse_num(&p, end, 0x7fffffffL, &nrcpt) || !SKIP(&p, end, " (queue active)") ||
		    p != end)
			return PFLOG_OTHER;
		rec->size = size;
		rec->nrcpt = (long)nrcpt;
		return PFLOG_QUEUED;
	}
	if ((SKIP(&p, end, ", status=expired, returned to sender") ||
	     SKIP(&p, end, ", status=force-expired, returned to sender")) &&
	    p == end) {
		rec->status = PFLOG_EXPIRED_STATUS;
		return PFLOG_EXPIRED;
	}
	return PFLOG_OTHER;
}

/* QID: message-id=<...> (trailing blanks allowed: cleanup logs the header value as is) */
static enum pflog_kind
parse_msgid(const char *p, const char *end, struct pflog_rec *rec)
{
	if (!SKIP(&p, end, "message-id="))
		return PFLOG_OTHER;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - p < 2 || *p != '<' || end[-1] != '>')
		return PFLOG_OTHER;
	set_str(&rec->message_id, p, end);
	return PFLOG_MSGID;
}

/* QID: sender non-delivery notification: NEWQID (and the two other kinds, see pflog.h) */
static enum pflog_kind
parse_bounce(const char *p, const char *end, struct pflog_rec *rec)
{
	const char *q;

	if (!(SKIP(&p, end, "sender non-delivery notification: ") ||
	      SKIP(&p, end, "sender delivery status notification: ") ||
	      SKIP(&p, end, "postmaster non-delivery notification: ")))
		return PFLOG_OTHER;
	if ((q = qid_end(p, end)) == NULL || q != end)
		return PFLOG_OTHER;
	set_str(&rec->bounce_queue_id, p, q);
	return PFLOG_BOUNCE;
}

enum pflog_kind
pflog_parse(const char *line, size_t len, struct pflog_rec *rec)
{
	const char *end, *p, *q;
	enum pflog_kind kind = PFLOG_OTHER;
	bool truncated;

	*rec = (struct pflog_rec){.kind = PFLOG_OTHER, .pid = -1, .size = -1, .nrcpt = -1};
	if (line == NULL)
		return PFLOG_OTHER;
	end = line + len;
	while (end > line && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if ((p = parse_header(line, end, rec)) == NULL) {
		*rec = (struct pflog_rec){.kind = PFLOG_OTHER, .pid = -1, .size = -1, .nrcpt = -1};
		return PFLOG_OTHER;
	}
	if ((q = qid_end(p, end)) == NULL || end - q < 3 || q[0] != ':' || q[1] != ' ')
		return PFLOG_OTHER;
	truncated = end - p == PFLOG_RECLEN;
	set_str(&rec->queue_id, p, q);
	p = q + 2;
	switch (*p) {
	case 't':
		kind = parse_delivery(p, end, truncated, rec);
		break;
	case 'f':
		kind = parse_from(p, end, rec);
		break;
	case 'r':
		kind = end - p == 7 && memcmp(p, "removed", 7) == 0 ? PFLOG_REMOVED : PFLOG_OTHER;
		break;
	case 'm':
		kind = parse_msgid(p, end, rec);
		break;
	case 's':
	case 'p':
		kind = parse_bounce(p, end, rec);
		break;
	default:
		break;
	}
	if (kind == PFLOG_OTHER)
		clear_fields(rec);
	rec->kind = kind;
	return kind;
}

/* ---- time ------------------------------------------------------------------------------ */

#define DAY_MS (24 * 3600 * 1000LL)

/* Local time of year y (tm fields otherwise set) in ms, or -1 if that date does not exist. */
static int64_t
local_ms(int year, const struct tm *fields, int ms)
{
	struct tm tm = *fields;
	time_t t;

	tm.tm_year = year - 1900;
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) == (time_t)-1 || tm.tm_mday != fields->tm_mday ||
	    tm.tm_mon != fields->tm_mon)
		return -1; /* Feb 29 in a common year (mktime moved it), or out of range */
	return (int64_t)t * 1000 + ms;
}

int64_t
pflog_time(const struct pflog_str *timestamp, int64_t now_ms)
{
	const char *p, *end;
	struct tm fields = {0}, now_tm;
	time_t now_s;
	int ms = 0, day, year;

	if (timestamp == NULL || timestamp->ptr == NULL)
		return -1;
	p = timestamp->ptr;
	end = p + timestamp->len;
	if (timestamp->len >= 20 && is_digit(*p)) {
		int64_t t;
		const char *why;
		return rfc3339_parse(p, timestamp->len, &t, &why) == 0 ? t : -1;
	}
	if (syslog_time_end(p, end) != end)
		return -1;
	day = (p[4] == ' ' ? 0 : p[4] - '0') * 10 + (p[5] - '0');
	fields.tm_mon = month_of(p) - 1;
	fields.tm_mday = day;
	fields.tm_hour = (p[7] - '0') * 10 + (p[8] - '0');
	fields.tm_min = (p[10] - '0') * 10 + (p[11] - '0');
	fields.tm_sec = (p[13] - '0') * 10 + (p[14] - '0');
	if (day < 1 || day > 31 || fields.tm_hour > 23 || fields.tm_min > 59 || fields.tm_sec > 60)
		return -1;
	if (end - p > 16) { /* ".frac": milliseconds from the first three digits */
		for (int i = 0; i < 3; i++)
			ms = ms * 10 + (16 + i < end - p ? p[16 + i] - '0' : 0);
	}
	now_s = (time_t)(now_ms / 1000);
	if (localtime_r(&now_s, &now_tm) == NULL)
		return -1;
	/*
	 * The latest year that puts the time at most a day after now: next year's date
	 * when now is late on Dec 31 and the line says Jan 1 (only then is next year worth a
	 * mktime()), last year's when now is early in January and the line says December.
	 * Feb 29 goes back to the last leap year.
	 */
	year = now_tm.tm_year + 1900;
	for (int y = fields.tm_mon == 0 && now_tm.tm_mon == 11 ? year + 1 : year; y >= year - 8;
	     y--) {
		int64_t t = local_ms(y, &fields, ms);
		if (t >= 0 && t <= now_ms + DAY_MS)
			return t;
	}
	return -1;
}
