/*
 * test_report_corpus - the DSN parser over real bounces: a sample of Sisimai's public
 * set-of-emails (tests/data/bounces, BSD 2-clause, see its README.md), each with the
 * recipients and actions it reports (expected.tsv). Prints, per kind of bounce, how many
 * samples the parser maps to exactly the right recipients and actions, and every miss with
 * its reason; fails if fewer are right than docs/reports.md records.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "report.h"

#define DATA      MSGSTATUS_SOURCE_DIR "/tests/data/bounces"
#define MAX_LINES 200
#define MIN_RIGHT 41 /* docs/reports.md records 41 of 60: a regression fails */

struct line {
	char file[128], rcpt[256], action[32], kind[64];
};

static char *
slurp(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n = -1;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0)
		fail_msg("cannot read %s", path);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		fail_msg("cannot read %s", path);
	fclose(fp);
	buf[n] = '\0';
	*len_r = (size_t)n;
	return buf;
}

/* Is (rcpt, action) among the report's recipients (Final-Recipient, else Original)? */
static bool
has(const struct report *r, const char *rcpt, const char *action)
{
	for (size_t i = 0; i < r->nrcpts; i++) {
		const char *a = r->rcpts[i].final_recipient ? r->rcpts[i].final_recipient
		                                            : r->rcpts[i].original_recipient;
		if (a != NULL && strcasecmp(a, rcpt) == 0 && r->rcpts[i].action != NULL &&
		    strcmp(r->rcpts[i].action, action) == 0)
			return true;
	}
	return false;
}

static void
test_corpus(void **state)
{
	static struct line lines[MAX_LINES];
	char buf[1024];
	size_t nlines = 0, samples = 0, right = 0;
	struct {
		char kind[64];
		size_t samples, right;
	} kinds[16];
	size_t nkinds = 0;
	FILE *fp = fopen(DATA "/expected.tsv", "r");

	(void)state;
	assert_non_null(fp);
	while (fgets(buf, sizeof(buf), fp) != NULL && nlines < MAX_LINES) {
		struct line *l = &lines[nlines];
		if (buf[0] == '#' || buf[0] == '\n')
			continue;
		if (sscanf(buf, "%127[^\t]\t%255[^\t]\t%31[^\t]\t%63[^\t\n]", l->file, l->rcpt,
		           l->action, l->kind) != 4)
			fail_msg("expected.tsv: bad line: %s", buf);
		nlines++;
	}
	fclose(fp);
	printf("| sample | kind | result |\n|---|---|---|\n");
	for (size_t i = 0; i < nlines;) {
		size_t j = i, len, want = 0, k;
		char path[512], *msg;
		struct report r;
		const char *error = "";
		bool ok;
		int rc;

		while (j < nlines && strcmp(lines[j].file, lines[i].file) == 0)
			j++;
		snprintf(path, sizeof(path), DATA "/sisimai/%s", lines[i].file);
		msg = slurp(path, &len);
		rc = report_parse(msg, len, &r, &error);
		ok = rc == 0;
		for (size_t l = i; l < j && ok; l++) {
			want++;
			ok = strcmp(lines[l].rcpt, "-") != 0 &&
			     has(&r, lines[l].rcpt, lines[l].action);
		}
		ok = ok && r.nrcpts == want;
		samples++;
		right += ok;
		for (k = 0; k < nkinds && strcmp(kinds[k].kind, lines[i].kind) != 0; k++)
			;
		if (k == nkinds && nkinds < 16) {
			snprintf(kinds[k].kind, sizeof(kinds[k].kind), "%s", lines[i].kind);
			kinds[k].samples = kinds[k].right = 0;
			nkinds++;
		}
		if (k < nkinds) {
			kinds[k].samples++;
			kinds[k].right += ok;
		}
		if (!ok)
			printf("| %s | %s | miss: %s |\n", lines[i].file, lines[i].kind,
			       rc < 0 ? error : "other recipients or actions");
		if (rc == 0)
			report_clear(&r);
		free(msg);
		i = j;
	}
	printf("\n| kind | samples | right recipients and actions |\n|---|---|---|\n");
	for (size_t k = 0; k < nkinds; k++)
		printf("| %s | %zu | %zu |\n", kinds[k].kind, kinds[k].samples, kinds[k].right);
	printf("| all | %zu | %zu (%.0f%%) |\n", samples, right, 100.0 * right / samples);
	if (right < MIN_RIGHT)
		fail_msg("%zu of %zu samples right, fewer than the %d recorded", right, samples,
		         MIN_RIGHT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
