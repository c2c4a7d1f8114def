/*
 * jsonstr - JSON text written without a json-c tree. See jsonstr.h.
 */
#include "jsonstr.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mbuf.h"
#include "msg.h"

static const char hex[] = "0123456789abcdef";

/* How json-c writes byte c in a string: 0 as it is, 'u' as \u00xx, else \ and that. */
static char
escape_of(unsigned char c)
{
	if (c >= 0x20)
		return c == '"' || c == '\\' ? (char)c : 0;
	switch (c) {
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return 'u';
	}
}

char *
jsonstr_put(char *p, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s, *end = u + len;

	*p++ = '"';
	while (u < end) {
		unsigned char c = *u++;
		char e;

		/* most bytes are themselves: one test for them */
		if (c >= 0x20 && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		e = escape_of(c);
		if (e != 'u') {
			*p++ = '\\';
			*p++ = e;
		} else {
			memcpy(p, "\\u00", 4);
			p[4] = hex[c >> 4];
			p[5] = hex[c & 15];
			p += 6;
		}
	}
	*p++ = '"';
	return p;
}

void
jsonstr_append(struct mbuf *out, const char *s, size_t len)
{
	char *p;

	if (len >= SIZE_MAX / 8)
		msg_fatal("jsonstr_append: size overflow (%zu)", len);
	mbuf_reserve(out, JSONSTR_MAX(len));
	p = jsonstr_put(out->data + out->len, s, len);
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
}

/* --- compacting an object ------------------------------------------------------------ */

#define KEYS_MAX 64 /* more keys than this: let json-c do it */

struct scan {
	const char *s;
	size_t len, pos;
};

static void
skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
	                             sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
		sc->pos++;
}

/* Whether the next byte is c; if so, past it. */
static bool
take(struct scan *sc, char c)
{
	if (sc->pos >= sc->len || sc->s[sc->pos] != c)
		return false;
	sc->pos++;
	return true;
}

/* Take the punctuation c, copy it to out and skip the white space after it. */
static bool
take_copy(struct scan *sc, char c, struct mbuf *out)
{
	if (!take(sc, c))
		return false;
	mbuf_putc(out, c);
	skip_ws(sc);
	return true;
}

static bool
is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int
hex_value(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/*
 * The string at sc->pos (its opening quote), if it is written exactly as jsonstr_append()
 * writes what it stands for: its length with the quotes in *len_r, and true.
 */
static bool
scan_string(struct scan *sc, size_t *len_r)
{
	size_t i = sc->pos + 1;

	for (;;) {
		unsigned char c;

		if (i >= sc->len)
			return false;
		c = (unsigned char)sc->s[i];
		if (c == '"')
			break;
		if (c == '\\') {
			char e;
			if (i + 1 >= sc->len)
				return false;
			e = sc->s[i + 1];
			if (e == 'u') {
				int v;
				if (i + 5 >= sc->len || sc->s[i + 2] != '0' ||
				    sc->s[i + 3] != '0' || !is_hex_lower(sc->s[i + 4]) ||
				    !is_hex_lower(sc->s[i + 5]))
					return false;
				v = hex_value(sc->s[i + 4]) * 16 + hex_value(sc->s[i + 5]);
				if (escape_of((unsigned char)v) != 'u')
					return false; /* json-c writes it another way */
				i += 6;
				continue;
			}
			/* a short form, and the one json-c uses for that byte */
			if (e == 0 || strchr("\"\\bfnrt", e) == NULL)
				return false;
			i += 2;
			continue;
		}
		if (escape_of(c) != 0)
			return false; /* a raw control character: not JSON */
		i++;
	}
	*len_r = i + 1 - sc->pos;
	return true;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The number at sc->pos, if json-c prints it as it is: a fraction or exponent (json-c
 * keeps the text of a double) or a canonical integer it reads without clamping.
 */
static bool
scan_number(struct scan *sc, size_t *len_r)
{
	size_t i = sc->pos, digits0;
	bool is_double = false;

	if (i < sc->len && sc->s[i] == '-')
		i++;
	digits0 = i;
	while (i < sc->len && is_digit(sc->s[i]))
		i++;
	if (i == digits0 || (sc->s[digits0] == '0' && i - digits0 > 1))
		return false; /* no digits, or a leading zero */
	if (i < sc->len && sc->s[i] == '.') {
		size_t f = ++i;
		while (i < sc->len && is_digit(sc->s[i]))
			i++;
		if (i == f)
			return false;
		is_double = true;
	}
	if (i < sc->len && (sc->s[i] == 'e' || sc->s[i] == 'E')) {
		size_t e;
		i++;
		if (i < sc->len && (sc->s[i] == '+' || sc->s[i] == '-'))
			i++;
		e = i;
		while (i < sc->len && is_digit(sc->s[i]))
			i++;
		if (i == e)
			return false;
		is_double = true;
	}
	if (!is_double) {
		size_t ndigits = i - digits0;
		/* json-c prints an integer from its int64 value: "-0" would become "0", and
		   past 18 digits it may clamp */
		if (ndigits > 18 || (sc->s[sc->pos] == '-' && sc->s[digits0] == '0'))
			return false;
	}
	*len_r = i - sc->pos;
	return true;
}

static bool
scan_word(struct scan *sc, const char *word, size_t *len_r)
{
	size_t n = strlen(word);

	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
		return false;
	*len_r = n;
	return true;
}

static bool
scan_value(struct scan *sc, size_t *len_r)
{
	switch (sc->s[sc->pos]) {
	case '"':
		return scan_string(sc, len_r);
	case 't':
		return scan_word(sc, "true", len_r);
	case 'f':
		return scan_word(sc, "false", len_r);
	case 'n':
		return scan_word(sc, "null", len_r);
	default:
		return scan_number(sc, len_r); /* objects and arrays end up here and fail */
	}
}

int
jsonstr_compact(struct mbuf *out, const char *text, size_t len)
{
	struct scan sc = {text, len, 0};
	size_t start = out->len, keys[KEYS_MAX], keylens[KEYS_MAX], nkeys = 0, n;

	mbuf_reserve(out, len);
	skip_ws(&sc);
	if (!take_copy(&sc, '{', out))
		goto refuse;
	if (!take(&sc, '}'))
		for (;;) {
			if (sc.pos >= len || text[sc.pos] != '"' || !scan_string(&sc, &n) ||
			    nkeys == KEYS_MAX)
				goto refuse;
			/* a repeated key json-c would print once */
			for (size_t k = 0; k < nkeys; k++)
				if (keylens[k] == n &&
				    memcmp(text + keys[k], text + sc.pos, n) == 0)
					goto refuse;
			keys[nkeys] = sc.pos;
			keylens[nkeys++] = n;
			mbuf_append(out, text + sc.pos, n);
			sc.pos += n;
			skip_ws(&sc);
			if (!take_copy(&sc, ':', out) || sc.pos >= len || !scan_value(&sc, &n))
				goto refuse;
			mbuf_append(out, text + sc.pos, n);
			sc.pos += n;
			skip_ws(&sc);
			if (take_copy(&sc, ',', out))
				continue;
			if (take(&sc, '}'))
				break;
			goto refuse;
		}
	mbuf_putc(out, '}');
	skip_ws(&sc);
	if (sc.pos != len)
		goto refuse;
	return 0;
refuse:
	mbuf_truncate(out, start);
	return -1;
}
