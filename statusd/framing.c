/*
 * framing - the checks of an HTTP request's head. See framing.h.
 */
#include "framing.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reqhead.h"

/* front.c refuses all of this before lws sees a plain connection's head; these checks are
   for the heads lws reads itself, over statusd's own TLS. */

/* Whitespace lws may have kept between a header name and its colon ("Transfer-Encoding :"):
   lws 4.1 takes such a line for an unknown header named with the blanks and the colon. */
static bool
blank_before_colon(struct lws *wsi, const char *name)
{
	static const char *const blanks[] = {" ", "\t", "  ", " \t", "\t ", "\t\t"};
	char buf[64];

	for (size_t i = 0; i < sizeof(blanks) / sizeof(blanks[0]); i++) {
		int n = snprintf(buf, sizeof(buf), "%s%s:", name, blanks[i]);
		if (lws_hdr_custom_length(wsi, buf, n) >= 0)
			return true;
	}
	return false;
}

unsigned
framing_check(struct lws *wsi, long long *len_r, const char **error_r)
{
	char value[64];
	int te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
	int n;

	*len_r = -1;
	if (blank_before_colon(wsi, "content-length") ||
	    blank_before_colon(wsi, "transfer-encoding")) {
		*error_r = "no whitespace is allowed between a header name and its colon";
		return 400;
	}
	if (te > 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		*error_r = "Content-Length and Transfer-Encoding must not come together";
		return 400;
	}
	if (te > 0) {
		n = lws_hdr_copy(wsi, value, sizeof(value), WSI_TOKEN_HTTP_TRANSFER_ENCODING);
		while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
			value[--n] = '\0';
		if (n > 0 && reqhead_chunked(value, (size_t)n)) {
			*error_r = "a request body needs a Content-Length (chunked bodies are not "
			           "supported)";
			return 411;
		}
		*error_r = "a Transfer-Encoding that does not end with chunked has no length";
		return 400;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) == 0)
		return 0;
	/* lws keeps each Content-Length line as a fragment of the header */
	if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) > 0 ||
	    lws_hdr_copy_fragment(wsi, value, sizeof(value), WSI_TOKEN_HTTP_CONTENT_LENGTH, 0) <=
	            0 ||
	    !reqhead_content_length(value, strlen(value), len_r)) {
		*len_r = -1;
		*error_r = "Content-Length must be one number, given once";
		return 400;
	}
	return 0;
}

/* The request line's URI, or one of its query arguments. */
static bool
uri_token(int t)
{
	switch (t) {
	case WSI_TOKEN_GET_URI:
	case WSI_TOKEN_POST_URI:
	case WSI_TOKEN_PUT_URI:
	case WSI_TOKEN_PATCH_URI:
	case WSI_TOKEN_DELETE_URI:
	case WSI_TOKEN_OPTIONS_URI:
	case WSI_TOKEN_HEAD_URI:
	case WSI_TOKEN_HTTP_URI_ARGS:
		return true;
	default:
		return false;
	}
}

unsigned
framing_cut(struct lws *wsi, int max)
{
	for (int t = 0; t < WSI_TOKEN_COUNT; t++)
		for (int i = 0;; i++) {
			int n = lws_hdr_fragment_length(wsi, (enum lws_token_indexes)t, i);
			if (n <= 0)
				break;
			if (n >= max)
				return uri_token(t) ? 414 : 431;
		}
	return 0;
}
