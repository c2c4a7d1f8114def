/*
 * framing - where an HTTP request's body ends, told the same way by every reader of it
 * (RFC 9112 §6), and whether lws cut a header or the URI: the checks http.c makes on a
 * request's head before anything else, over lws's parsed headers.
 *
 * DESIGN
 *	Pure functions over one connection's parsed head (lws_hdr_*); no state, loop thread.
 *
 * SECURITY
 *	The head is untrusted. A proxy in front that reads the request otherwise than lws
 *	would let a second request hide in the body (request smuggling): a request whose length
 *	is not told in exactly one way is refused, and http.c closes the connection after the
 *	answer. The order of the checks: a blank between a framing header's name and its colon,
 *	then Content-Length and Transfer-Encoding together, then Transfer-Encoding alone, then
 *	Content-Length's form and count.
 *
 * DIAGNOSTICS
 *	An HTTP status and a static error text for the answer, or 0.
 */
#ifndef FRAMING_H
#define FRAMING_H

struct lws;

/*
 * Where the request's body ends (RFC 9112 §6.1, §6.3 and §5.1):
 *   - a blank between Content-Length or Transfer-Encoding and its colon: 400;
 *   - Transfer-Encoding and Content-Length together: 400;
 *   - Content-Length not a number, or given twice: 400 (lws would use the first);
 *   - Transfer-Encoding alone: 411 if it ends with chunked (lws 4.1 cannot read a chunked
 *     request body; send a Content-Length), 400 otherwise (the length cannot be known).
 * 0 and *len_r (-1: no Content-Length), or the status and *error_r.
 */
unsigned framing_check(struct lws *wsi, long long *len_r, const char **error_r);

/*
 * A header or query argument that lws cut at max bytes (its token_limits): 431, or 414 for
 * the URI or a query argument; 0 if none was.
 */
unsigned framing_cut(struct lws *wsi, int max);

#endif
