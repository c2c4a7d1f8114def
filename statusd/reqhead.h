/*
 * reqhead - an HTTP/1.1 request head, checked by RFC 9112 and rewritten for libwebsockets.
 *
 * Pure functions over bytes, with no I/O and no lws in them, so that the unit test
 * (tests/unit/test_reqhead.c) and the fuzz target (fuzz/fuzz_reqhead.c) drive every case
 * directly; front.c reads the head from the socket and calls them.
 *
 * DESIGN
 *	reqhead_end() finds where a head ends while it arrives; reqhead_check() checks a
 *	whole head and writes the head lws gets: the request line as it came, and only the
 *	header fields statusd reads (kept[] in reqhead.c), one per line as "name: value"
 *	with the name in lower case and the value without its surrounding blanks, and
 *	"content-length: 0" last: the caller reads the body itself and passes it on apart
 *	(lws 4.1 takes a body that follows a head it was handed for that head again, and
 *	one that has no length for the rest of the connection). Every other field is left out, so
 *lws's parser never sees a name it might take for the prefix of one it knows, and the head lws gets
 *is never larger than the head checked here.
 *
 * SECURITY
 *	The input is a client's, untrusted. The checks, in this order (the first failing one
 *	answers):
 *	  1. size: more than REQHEAD_MAX bytes without the end of the head: 414 if the request
 *	     line is not complete yet, else 431; a field line over REQHEAD_LINE_MAX or more
 *	     than REQHEAD_FIELDS_MAX fields: 431;
 *	  2. bytes: every line ends with CRLF (a CR or LF alone: 400); no NUL or other control
 *	     byte but HTAB in a field value, none at all in the request line;
 *	  3. the request line: method SP origin-form-target SP HTTP-version, a token method
 *	     (unknown methods 501), a target of visible ASCII starting with "/" (longer than
 *	     REQHEAD_TARGET_MAX: 414, a path longer than REQHEAD_PATH_MAX: 414), HTTP/1.0 or
 *	     HTTP/1.1 (any other version: 505; none: 400);
 *	  4. each field: a token name directly followed by its colon (a blank before the
 *	     colon: 400), no obs-fold (a line starting with a blank: 400);
 *	  5. framing (RFC 9112 §6.1, §6.3): Content-Length and Transfer-Encoding together: 400;
 *	     Transfer-Encoding ending with chunked: 411 (statusd reads no chunked bodies),
 *	     any other: 400; Content-Length not 1*DIGIT (at most 18) or given twice: 400;
 *	  6. a second Host, Authorization, Origin, Content-Type, Upgrade, Last-Event-ID or
 *	     Sec-WebSocket-Key/-Version: 400;
 *	  7. an HTTP/1.1 request without Host: 400 (RFC 9112 §3.2); an Expect other than
 *	     100-continue: 417 (RFC 9110 §10.1.1; front.c sends the 100 for a body).
 *
 * DIAGNOSTICS
 *	reqhead_check() returns 0, or the HTTP status to answer with *error_r set to the
 *	sentence the client gets as the problem's "detail"; it never quotes the input.
 */
#ifndef REQHEAD_H
#define REQHEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "mbuf.h"

#define REQHEAD_MAX        8192 /* bytes of a whole head */
#define REQHEAD_LINE_MAX   6144 /* bytes of one field line, or of the request target */
#define REQHEAD_TARGET_MAX REQHEAD_LINE_MAX
#define REQHEAD_PATH_MAX   2048 /* bytes of the target's path, before any "?" */
#define REQHEAD_FIELDS_MAX 100

struct reqhead {
	size_t len;               /* bytes of the head as it came, its blank line included */
	long long content_length; /* -1: none */
	bool upgrade;             /* it has an Upgrade field (a WebSocket handshake) */
	bool http11;              /* HTTP/1.1 (else HTTP/1.0) */
	bool expect_continue;     /* Expect: 100-continue: the client waits for a 100 */
	struct mbuf out;          /* the head for lws; the caller frees it */
};

/* Where reqhead_end() stopped; zero it before the first call. */
struct reqhead_scan {
	size_t pos;        /* the next byte to look at */
	size_t line_start; /* where the line being read starts */
	bool request_line; /* the request line has ended */
};

/*
 * Where the head in buf[0..len) ends, as more of it arrives (buf grows, its start stays):
 * the length up to and including the blank line after the fields (blank lines before the
 * request line are skipped, RFC 9112 §2.2), 0 if it has not ended yet, or -1 with
 * *status_r and *error_r set if these bytes can start no head: a CR or LF alone (400), or
 * REQHEAD_MAX bytes without an end (414 or 431).
 */
long reqhead_end(const char *buf, size_t len, struct reqhead_scan *scan, unsigned *status_r,
                 const char **error_r);

/* Check the whole head buf[0..len) (as reqhead_end() delimited it) and fill *h (which
   the caller zeroes and later frees with mbuf_free(&h->out)). 0, or the status. */
unsigned reqhead_check(const char *buf, size_t len, struct reqhead *h, const char **error_r);

/* A Content-Length value v[0..n): 1*DIGIT, at most 18 digits, into *len_r. */
bool reqhead_content_length(const char *v, size_t n, long long *len_r);
/* Does the Transfer-Encoding value v[0..n) (without blanks around it) end with chunked? */
bool reqhead_chunked(const char *v, size_t n);

/* The reason phrase for a status reqhead_check() or reqhead_end() gives. */
const char *reqhead_reason(unsigned status);

#endif
