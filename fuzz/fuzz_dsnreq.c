/*
 * fuzz_dsnreq - libFuzzer target for the DSNs the milter asks for (milter/dsnreq.c), from
 * the ESMTP parameters an SMTP client gives on MAIL FROM and RCPT TO.
 *
 * The input is a script, one step per line (the first byte says which; fields are split at
 * tabs, ESMTP parameters at spaces):
 *	M from TAB params TAB enabled		MAIL FROM (enabled: "1")
 *	R rcpt TAB mailer TAB params		RCPT TO (at most 20 kept)
 *	E envid					end of message: make the plan
 *
 * Invariants of every plan: it asks for something only if enabled; each changed recipient
 * is one the client gave, remote, without a NOTIFY of its own, and gets NOTIFY=SUCCESS,
 * FAILURE,DELAY; every argument string is printable ASCII (spaces between parameters) of
 * bounded length; MAIL FROM is changed only with some remote recipient, and keeps the
 * client's RET and ENVID.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsnreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NP 8

static void
split(char *s, const char *argv[NP + 1])
{
	size_t n = 0;

	for (char *t = s ? strtok(s, " ") : NULL; t != NULL && n < NP; t = strtok(NULL, " "))
		argv[n++] = t;
	argv[n] = NULL;
}

static void
printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *line, *next;
	struct dsnreq *d = dsnreq_new();
	bool enabled = false;
	char *rcpts[20];
	bool has_notify[20];
	size_t nr = 0;

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (line = copy; line != NULL; line = next) {
		char *f1, *f2, *f3;
		const char *params[NP + 1];
		struct dsnreq_plan plan;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		f1 = line[0] ? line + 1 : NULL;
		f2 = f1 ? strchr(f1, '\t') : NULL;
		if (f2)
			*f2++ = '\0';
		f3 = f2 ? strchr(f2, '\t') : NULL;
		if (f3)
			*f3++ = '\0';
		switch (line[0]) {
		case 'M':
			split(f2, params);
			enabled = f3 != NULL && f3[0] == '1';
			dsnreq_mail(d, f1, params, enabled);
			for (size_t i = 0; i < nr; i++)
				free(rcpts[i]);
			nr = 0;
			break;
		case 'R':
			if (f1 == NULL || nr >= 20)
				break;
			rcpts[nr] = strdup(f1);
			split(f3, params);
			has_notify[nr++] = dsnreq_param(params, "NOTIFY") != NULL;
			dsnreq_rcpt(d, f1, params, f2, "smtp relay", 20);
			break;
		case 'E':
			if (dsnreq_plan(d, "abcdefghijklmnopqrstuvwxyz", &plan) && !enabled)
				abort();
			if (plan.chgfrom) {
				if (plan.remote == 0)
					abort();
				printable(plan.from_args, 2 * DSNREQ_PARAM_MAX + 32);
			}
			if (plan.nrcpts > plan.remote || plan.kept > plan.remote)
				abort();
			for (size_t i = 0; i < plan.nrcpts; i++) {
				size_t k;
				printable(plan.rcpts[i].args, 4 * DSNREQ_PARAM_MAX);
				if (strncmp(plan.rcpts[i].args, "NOTIFY=" DSNREQ_NOTIFY, 28) != 0)
					abort();
				for (k = 0; k < nr && strcmp(rcpts[k], plan.rcpts[i].rcpt) != 0;
				     k++)
					;
				if (k == nr || has_notify[k])
					abort();
			}
			dsnreq_plan_clear(&plan);
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < nr; i++)
		free(rcpts[i]);
	dsnreq_free(&d);
	free(copy);
	return 0;
}
