/*
 * rfc3339 - timestamps as the project writes and reads them.
 *
 * Times are int64 milliseconds since the Unix epoch, UTC. They are written as RFC 3339
 * UTC with millisecond precision ("2026-11-22T10:04:05.123Z") and read in any RFC 3339
 * form (fraction of any length, "Z" or a numeric offset).
 *
 * SECURITY
 *	rfc3339_parse() takes untrusted text: it checks every field's range and never reads
 *	past len bytes.
 */
#ifndef RFC3339_H
#define RFC3339_H

#include <stddef.h>
#include <stdint.h>

#define RFC3339_BUFSIZE 32

/* Current wall-clock time in ms. */
int64_t time_now_ms(void);
/* Monotonic clock in ms, for timeouts and latencies. */
int64_t time_mono_ms(void);
/* Write ms as RFC 3339 UTC into buf (RFC3339_BUFSIZE bytes); returns buf. */
char *rfc3339_format(int64_t ms, char *buf);
/* Parse len bytes at s; 0 and *ms_r on success, -1 and *error_r on bad input. */
int rfc3339_parse(const char *s, size_t len, int64_t *ms_r, const char **error_r);

#endif
