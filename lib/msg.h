/*
 * msg - diagnostics for the msgstatus daemons and tools (after Postfix msg(3)).
 *
 * Three severities of trouble:
 *	msg_warn/msg_error	bad input from a peer, a failed operation: log and go on;
 *	msg_fatal		configuration or start-up error: log and exit(1);
 *	msg_panic		a broken invariant: log and abort().
 * msg_info reports normal operation; msg_debug only when verbose logging is on.
 *
 * DESIGN
 *	Thread-safe: each call formats into a stack buffer and emits it with one write(2) or
 *	syslog(3) call, so libmilter's threads may log freely. Lines longer than MSG_LINE_MAX
 *	are truncated. Text that came from a peer must go through msg_clean() first.
 *
 *	errfmt() formats an error message into a small per-thread ring of buffers and returns
 *	it; this is what the project's functions hand back through their "const char
 *	**error_r" parameters. The text stays valid until the fourth errfmt() call after it
 *	on the same thread, which is plenty for "return -1; caller logs it".
 */
#ifndef MSG_H
#define MSG_H

#include <stdbool.h>
#include <stddef.h>

#define MSG_LINE_MAX 2048

enum msg_target {
	MSG_TARGET_STDERR,
	MSG_TARGET_SYSLOG,
};

/* Name the program and choose where the log goes. facility is a syslog LOG_* value. */
void msg_open(const char *progname, enum msg_target target, int facility);
void msg_set_verbose(bool verbose);
bool msg_verbose(void);
/*
 * Open the log as the log_target ("stderr" or "syslog") and syslog_facility settings say
 * (checked before with conf_check_logging); verbose if either argument says so.
 */
void msg_open_settings(const char *progname, const char *log_target, const char *syslog_facility,
                       bool verbose);
/* Map a syslog facility name ("mail", "daemon", "local0".."local7", ...) to LOG_*; -1 if unknown.
 */
int msg_facility(const char *name);

void msg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Copy untrusted text (srclen bytes at src, NUL bytes allowed) into dst, of dstsize > 4
 * bytes, for logging: printable ASCII and well-formed UTF-8 stay, control characters and
 * broken bytes become '?', and text cut to fit is marked with "...". Returns dst.
 */
char *msg_clean(char *dst, size_t dstsize, const char *src, size_t srclen);

/* Format an error message into the calling thread's ring of error buffers (see above). */
const char *errfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
