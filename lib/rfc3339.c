/*
 * rfc3339 - timestamps. See rfc3339.h.
 *
 * Hand-written: strptime() does not parse fractions or numeric offsets portably, and the
 * parser must be strict about untrusted input.
 */
#include "rfc3339.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "msg.h"

int64_t
time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define DAY_MS       86400000LL
#define YEAR0_MS     (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define YEAR10000_MS 253402300800000LL   /* 10000-01-01T00:00:00Z */

static char *
put_digits(char *p, int v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

/*
 * Written out by hand rather than with gmtime_r() and snprintf(): the feeds format one
 * timestamp per event. The date is H. Hinnant's civil_from_days (days since 1970-01-01 to
 * the proleptic Gregorian calendar), on eras of 400 years.
 */
char *
rfc3339_format(int64_t ms, char *buf)
{
	int64_t days, rem, z, era;
	int doe, yoe, doy, mp, year, month, day;
	char *p = buf;

	if (ms < YEAR0_MS || ms >= YEAR10000_MS) {
		memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
		return buf;
	}
	days = ms / DAY_MS;
	rem = ms % DAY_MS;
	if (rem < 0) {
		rem += DAY_MS;
		days--;
	}
	z = days + 719468; /* days since 0000-03-01 */
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (int)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	day = doy - (153 * mp + 2) / 5 + 1;
	month = mp < 10 ? mp + 3 : mp - 9;
	year = (int)(era * 400) + yoe + (month <= 2);

	p = put_digits(p, year, 4);
	*p++ = '-';
	p = put_digits(p, month, 2);
	*p++ = '-';
	p = put_digits(p, day, 2);
	*p++ = 'T';
	p = put_digits(p, (int)(rem / 3600000), 2);
	*p++ = ':';
	p = put_digits(p, (int)(rem / 60000 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (int)(rem / 1000 % 60), 2);
	*p++ = '.';
	p = put_digits(p, (int)(rem % 1000), 3);
	*p++ = 'Z';
	*p = '\0';
	return buf;
}

/* Read exactly n digits at s[*pos]. */
static bool
digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
	int v = 0;

	if (*pos + (size_t)n > len)
		return false;
	for (int i = 0; i < n; i++) {
		char c = s[*pos + (size_t)i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*pos += (size_t)n;
	*out = v;
	return true;
}

static bool
expect(const char *s, size_t len, size_t *pos, const char *set)
{
	if (*pos >= len)
		return false;
	for (; *set; set++)
		if (s[*pos] == *set) {
			(*pos)++;
			return true;
		}
	return false;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int
rfc3339_parse(const char *s, size_t len, int64_t *ms_r, const char **error_r)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int Y, M, D, h, m, sec, oh = 0, om = 0, frac = 0, sign = 0;
	size_t pos = 0;

	if (!digits(s, len, &pos, 4, &Y) || !expect(s, len, &pos, "-") ||
	    !digits(s, len, &pos, 2, &M) || !expect(s, len, &pos, "-") ||
	    !digits(s, len, &pos, 2, &D) || !expect(s, len, &pos, "Tt") ||
	    !digits(s, len, &pos, 2, &h) || !expect(s, len, &pos, ":") ||
	    !digits(s, len, &pos, 2, &m) || !expect(s, len, &pos, ":") ||
	    !digits(s, len, &pos, 2, &sec)) {
		*error_r = "not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.fff]Z)";
		return -1;
	}
	if (pos < len && s[pos] == '.') {
		int scale = 100, ndig = 0;
		pos++;
		while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
			frac += (s[pos] - '0') * scale;
			scale /= 10;
			pos++;
			ndig++;
		}
		if (ndig == 0 || ndig > 9) {
			*error_r = "bad fraction of a second";
			return -1;
		}
	}
	if (expect(s, len, &pos, "Zz"))
		sign = 0;
	else if (pos < len && (s[pos] == '+' || s[pos] == '-')) {
		sign = s[pos] == '+' ? 1 : -1;
		pos++;
		if (!digits(s, len, &pos, 2, &oh) || !expect(s, len, &pos, ":") ||
		    !digits(s, len, &pos, 2, &om) || oh > 23 || om > 59) {
			*error_r = "bad UTC offset";
			return -1;
		}
	} else {
		*error_r = "missing time zone (Z or +hh:mm)";
		return -1;
	}
	if (pos != len) {
		*error_r = "trailing characters after date-time";
		return -1;
	}
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] ||
	    (M == 2 && D == 29 && !(Y % 4 == 0 && (Y % 100 != 0 || Y % 400 == 0))) || h > 23 ||
	    m > 59 || sec > 60) {
		*error_r = "date or time field out of range";
		return -1;
	}
	if (sec == 60)
		sec = 59; /* a leap second is stored as the second before it */
	int64_t t = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*ms_r = t * 1000 + frac;
	return 0;
}
