/*
 * msg - diagnostics. See msg.h.
 */
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

static const char *msg_progname = "msgstatus";
static enum msg_target msg_target = MSG_TARGET_STDERR;
static bool msg_verbose_flag;

void
msg_open(const char *progname, enum msg_target target, int facility)
{
	msg_progname = progname;
	msg_target = target;
	if (target == MSG_TARGET_SYSLOG)
		openlog(progname, LOG_PID | LOG_NDELAY, facility);
}

void
msg_set_verbose(bool verbose)
{
	msg_verbose_flag = verbose;
}

bool
msg_verbose(void)
{
	return msg_verbose_flag;
}

void
msg_open_settings(const char *progname, const char *log_target, const char *syslog_facility,
                  bool verbose)
{
	if (strcmp(log_target, "syslog") == 0)
		msg_open(progname, MSG_TARGET_SYSLOG, msg_facility(syslog_facility));
	else
		msg_open(progname, MSG_TARGET_STDERR, 0);
	msg_set_verbose(verbose);
}

int
msg_facility(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} map[] = {
	        {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
	        {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
	        {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
	        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, name) == 0)
			return map[i].value;
	return -1;
}

static void msg_emit(int prio, const char *label, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static void
msg_emit(int prio, const char *label, const char *fmt, va_list ap)
{
	char line[MSG_LINE_MAX];
	size_t n = 0;
	int rc;

	if (msg_target == MSG_TARGET_STDERR) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		rc = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld]: ", ts.tv_nsec / 1000000,
		              msg_progname, (long)getpid());
		n += rc > 0 ? (size_t)rc : 0;
	}
	if (label != NULL) {
		rc = snprintf(line + n, sizeof(line) - n, "%s: ", label);
		n += rc > 0 ? (size_t)rc : 0;
	}
	if (n < sizeof(line)) {
		rc = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (rc > 0)
			n += (size_t)rc;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;

	if (msg_target == MSG_TARGET_SYSLOG) {
		line[n] = '\0';
		syslog(prio, "%s", line);
	} else {
		line[n++] = '\n';
		/* One write(2): lines from concurrent threads do not interleave. */
		if (write(STDERR_FILENO, line, n) < 0) {
			/* nowhere left to report it */
		}
	}
}

#define MSG_FN(name, prio, label)                                                                  \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		int saved = errno;                                                                 \
		va_start(ap, fmt);                                                                 \
		msg_emit(prio, label, fmt, ap);                                                    \
		va_end(ap);                                                                        \
		errno = saved;                                                                     \
	}

MSG_FN(msg_info, LOG_INFO, NULL)
MSG_FN(msg_warn, LOG_WARNING, "warning")
MSG_FN(msg_error, LOG_ERR, "error")

void
msg_debug(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (!msg_verbose_flag)
		return;
	va_start(ap, fmt);
	msg_emit(LOG_DEBUG, "debug", fmt, ap);
	va_end(ap);
	errno = saved;
}

void
msg_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_emit(LOG_CRIT, "fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

void
msg_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_emit(LOG_CRIT, "panic", fmt, ap);
	va_end(ap);
	abort();
}

char *
msg_clean(char *dst, size_t dstsize, const char *src, size_t srclen)
{
	size_t in = 0, out = 0, room;

	if (dstsize < 5)
		msg_panic("msg_clean: dstsize %zu too small", dstsize);
	/* Cleaning keeps the length (one '?' per bad byte): cut only what does not fit. */
	room = srclen < dstsize ? dstsize - 1 : dstsize - 4;
	while (in < srclen) {
		unsigned char c = (unsigned char)src[in];
		size_t seq = 1;

		if (c >= 0x80)
			seq = utf8_seq_len(src + in, srclen - in);
		if (out + (seq ? seq : 1) > room)
			break;
		if (c >= 0x80 && seq > 0) {
			memcpy(dst + out, src + in, seq);
			out += seq;
			in += seq;
			continue;
		}
		dst[out++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		in++;
	}
	if (in < srclen) {
		memcpy(dst + out, "...", 3);
		out += 3;
	}
	dst[out] = '\0';
	return dst;
}

#define ERRFMT_SLOTS 4
#define ERRFMT_SIZE  512

const char *
errfmt(const char *fmt, ...)
{
	static _Thread_local char ring[ERRFMT_SLOTS][ERRFMT_SIZE];
	static _Thread_local unsigned next;
	char *buf = ring[next++ % ERRFMT_SLOTS];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, ERRFMT_SIZE, fmt, ap);
	va_end(ap);
	return buf;
}
