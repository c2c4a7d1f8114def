/*
 * fedsched - the federation sender's decisions. See fedsched.h.
 */
#include "fedsched.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"

#define PROBLEM_MAX  4096 /* bytes of a problem document looked at */
#define LATER_ID_MAX 64   /* bytes of an event id in "later" (MIMISTATUS_EVENT_ID_MAX) */
#define YEAR_MS      (86400LL * 365 * 1000) /* the longest wait a Retry-After may ask */

/* {"accepted":n,"duplicate":n,"refused":n}: the sum, or -1 if it is not such an object. */
static int64_t
answer_counts(const char *body, size_t len)
{
	static const char *const keys[] = {"accepted", "duplicate", "refused"};
	struct json_tokener *tok;
	struct json_object *doc;
	int64_t sum = 0;

	if (body == NULL || len == 0 || len > FEDSCHED_ANSWER_MAX)
		return -1;
	tok = json_tokener_new_ex(4);
	doc = json_tokener_parse_ex(tok, body, (int)len);
	if (doc == NULL || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		json_tokener_free(tok);
		return -1;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct json_object *v;
		int64_t n;

		if (!json_object_object_get_ex(doc, keys[i], &v) ||
		    !json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) < 0 ||
		    n > 1000000) {
			sum = -1;
			break;
		}
		sum += n;
	}
	json_object_put(doc);
	json_tokener_free(tok);
	return sum;
}

int
fedsched_problem_code(const char *body, size_t len, char *code, size_t size)
{
	struct json_tokener *tok;
	struct json_object *doc, *v;
	const char *s;
	size_t n = 0;
	int rc = -1;

	if (size > 0)
		code[0] = '\0';
	if (body == NULL || len == 0 || len > PROBLEM_MAX || size == 0)
		return -1;
	tok = json_tokener_new_ex(4);
	doc = json_tokener_parse_ex(tok, body, (int)len);
	if (doc != NULL && json_tokener_get_parse_end(tok) == len &&
	    json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "code", &v) &&
	    json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
		rc = n > 0 && n <= FEDSCHED_CODE_MAX && n < size ? 0 : -1;
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			      s[i] == '-'))
				rc = -1;
		if (rc == 0) {
			memcpy(code, s, n);
			code[n] = '\0';
		}
	}
	json_object_put(doc);
	json_tokener_free(tok);
	return rc;
}

/* The refusals docs/federation.md ("Answers") says a sender sends again: by status and code. */
static bool
refusal_passes(long status, const char *code)
{
	static const struct {
		long status;
		const char *code;
	} again[] = {
	        {401, "stale"}, /* signed anew at every attempt */
	        {401, "digest-mismatch"},
	        {403, "key-unknown"}, /* the receiver may not see a new key record yet */
	        {409, "replay"},      /* a new nonce at every attempt */
	};

	for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++)
		if (again[i].status == status && strcmp(again[i].code, code) == 0)
			return true;
	return false;
}

enum fedsched_outcome
fedsched_answer(long status, const char *body, size_t len, size_t nevents, const char **why_r)
{
	if (status == 0) {
		*why_r = "no answer";
		return FEDSCHED_RETRY;
	}
	if (status == 200) {
		int64_t sum = answer_counts(body, len);
		if (sum < 0) {
			*why_r = "200 without the counts {\"accepted\",\"duplicate\",\"refused\"}";
			return FEDSCHED_RETRY;
		}
		if (sum != (int64_t)nevents) {
			*why_r = errfmt("200 counting %lld events of %zu", (long long)sum, nevents);
			return FEDSCHED_RETRY;
		}
		*why_r = "acknowledged";
		return FEDSCHED_DONE;
	}
	if (status == 429 || status == 503) {
		*why_r = errfmt("%ld: try later", status);
		return FEDSCHED_RETRY;
	}
	if (status >= 500 && status <= 599) {
		*why_r = errfmt("%ld: server error", status);
		return FEDSCHED_RETRY;
	}
	if (status == 413) {
		*why_r = "413: too large";
		return nevents > 1 ? FEDSCHED_SPLIT : FEDSCHED_REFUSED;
	}
	if (status >= 400 && status <= 499) {
		char code[FEDSCHED_CODE_MAX + 1];

		if (fedsched_problem_code(body, len, code, sizeof(code)) < 0)
			snprintf(code, sizeof(code), "no code");
		else if (refusal_passes(status, code)) {
			*why_r = errfmt("%ld %s: try later", status, code);
			return FEDSCHED_RETRY;
		}
		*why_r = errfmt("%ld %s: refused", status, code);
		return FEDSCHED_REFUSED;
	}
	/* 1xx, another 2xx, 3xx (redirects are not followed): not an acknowledgement */
	*why_r = errfmt("%ld: unexpected answer", status);
	return FEDSCHED_RETRY;
}

size_t
fedsched_later(const char *body, size_t len, size_t nevents, char ***ids_r)
{
	struct json_tokener *tok;
	struct json_object *doc, *list;
	char **ids = NULL;
	size_t n = 0;

	*ids_r = NULL;
	if (body == NULL || len == 0 || len > FEDSCHED_ANSWER_MAX)
		return 0;
	tok = json_tokener_new_ex(4);
	doc = json_tokener_parse_ex(tok, body, (int)len);
	if (doc != NULL && json_tokener_get_parse_end(tok) == len &&
	    json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "later", &list) &&
	    json_object_is_type(list, json_type_array) && json_object_array_length(list) > 0 &&
	    json_object_array_length(list) <= nevents) {
		size_t m = json_object_array_length(list);

		ids = calloc(m, sizeof(*ids));
		for (size_t i = 0; ids != NULL && i < m; i++) {
			struct json_object *v = json_object_array_get_idx(list, i);
			int vlen = json_object_is_type(v, json_type_string)
			                   ? json_object_get_string_len(v)
			                   : 0;

			if (vlen < 1 || vlen > LATER_ID_MAX ||
			    (ids[n] = strdup(json_object_get_string(v))) == NULL ||
			    strlen(ids[n]) != (size_t)vlen) { /* no NUL inside */
				fedsched_later_free(ids, n + (ids[n] != NULL));
				ids = NULL;
				n = 0;
				break;
			}
			n++;
		}
	}
	json_object_put(doc);
	json_tokener_free(tok);
	*ids_r = ids;
	return n;
}

void
fedsched_later_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int64_t
fedsched_retry_after(const char *value, int64_t now_ms)
{
	struct tm tm;
	const char *end;
	char *e;
	long long secs;
	time_t t;

	if (value == NULL)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		secs = strtoll(value, &e, 10);
		while (*e == ' ' || *e == '\t')
			e++;
		if (*e != '\0' || secs < 0 || secs > YEAR_MS / 1000)
			return -1;
		return secs * 1000;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL)
		return -1;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end != '\0' || (t = timegm(&tm)) == (time_t)-1)
		return -1;
	if ((int64_t)t * 1000 <= now_ms)
		return 0;
	if ((int64_t)t * 1000 - now_ms > YEAR_MS)
		return -1; /* as a wait of over a year in seconds */
	return (int64_t)t * 1000 - now_ms;
}

int64_t
fedsched_backoff(unsigned failures, int64_t base_ms, int64_t cap_ms, double r,
                 int64_t retry_after_ms)
{
	int64_t d = base_ms;

	for (unsigned i = 1; i < failures && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	if (r < 0 || r >= 1)
		r = 0;
	d = d / 2 + (int64_t)((double)(d - d / 2) * r);
	if (retry_after_ms > d)
		d = retry_after_ms < cap_ms ? retry_after_ms : cap_ms;
	return d;
}

size_t
fedsched_cut(const char *const *reporters, size_t n, size_t max)
{
	size_t k = 0;

	while (k < n && k < max && strcmp(reporters[k], reporters[0]) == 0)
		k++;
	return k;
}

/* The tokens at now_ms: at most burst; a clock that went back adds none. */
static double
pace_level(const struct fedsched_pace *p, int64_t now_ms, double rate, double burst)
{
	double level;

	if (p->at_ms == 0)
		return burst;
	level = p->tokens;
	if (now_ms > p->at_ms)
		level += (double)(now_ms - p->at_ms) * rate / 1000.0;
	return level < burst ? level : burst;
}

int64_t
fedsched_pace_wait(const struct fedsched_pace *p, int64_t now_ms, double rate, double burst)
{
	double level = pace_level(p, now_ms, rate, burst), ms;
	int64_t wait;

	if (level >= 1.0 || rate <= 0)
		return 0;
	ms = (1.0 - level) * 1000.0 / rate;
	wait = (int64_t)ms;
	return (double)wait < ms ? wait + 1 : wait; /* rounded up: a token is there then */
}

void
fedsched_pace_take(struct fedsched_pace *p, int64_t now_ms, double rate, double burst)
{
	p->tokens = pace_level(p, now_ms, rate, burst) - 1.0;
	p->at_ms = now_ms;
}

bool
fedsched_pace_full(const struct fedsched_pace *p, int64_t now_ms, double rate, double burst)
{
	return pace_level(p, now_ms, rate, burst) >= burst;
}
