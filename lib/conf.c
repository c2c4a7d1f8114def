/*
 * conf - configuration files. See conf.h.
 *
 * Hand-written: the format is the one Postfix administrators know from main.cf, minus
 * $variable expansion, and the validation is driven by each program's own table; libconfig
 * and friends use another syntax.
 *
 * SECURITY
 *	Configuration files are trusted (root writes them), but errors still quote offending
 *	text through msg_clean() so that a stray control character cannot garble the log.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"

#define CONF_LINE_MAX 4096

static const struct conf_setting *
conf_find(const struct conf_setting *table, const char *name)
{
	for (; table->name != NULL; table++)
		if (strcmp(table->name, name) == 0)
			return table;
	return NULL;
}

int
conf_parse_bool(const char *v, bool *out_r)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1")) {
		*out_r = true;
		return 0;
	}
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0")) {
		*out_r = false;
		return 0;
	}
	return -1;
}

/* A non-negative integer followed by an optional unit from units[] (multipliers in mult[]). */
static int
parse_scaled(const char *v, const char *const units[], const long long mult[], long long def_mult,
             long long *out_r)
{
	char *end;
	long long n, m = def_mult;

	if (!isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end != '\0') {
		size_t i;
		for (i = 0; units[i] != NULL; i++)
			if (strcasecmp(end, units[i]) == 0)
				break;
		if (units[i] == NULL)
			return -1;
		m = mult[i];
	}
	if (n > LLONG_MAX / m)
		return -1;
	*out_r = n * m;
	return 0;
}

int
conf_parse_time(const char *v, long long *ms_r)
{
	static const char *const units[] = {"ms", "s", "m", "h", "d", NULL};
	static const long long mult[] = {1, 1000, 60000, 3600000, 86400000};
	return parse_scaled(v, units, mult, 1000, ms_r);
}

int
conf_parse_size(const char *v, long long *bytes_r)
{
	static const char *const units[] = {"b", "k", "kb", "m", "mb", "g", "gb", NULL};
	static const long long mult[] = {1, 1024, 1024, 1048576, 1048576, 1073741824, 1073741824};
	return parse_scaled(v, units, mult, 1, bytes_r);
}

static int
conf_apply(const struct conf_setting *s, void *obj, const char *value, const char **error_r)
{
	char *field = (char *)obj + s->offset;
	char clean[128];
	long long n;
	char *end;

	switch (s->type) {
	case CONF_STR: {
		char **p = (char **)field;
		char *copy = mystrdup(value);
		free(*p);
		*p = copy;
		return 0;
	}
	case CONF_BOOL:
		if (conf_parse_bool(value, (bool *)field) < 0) {
			*error_r = errfmt("%s: expected yes or no, not \"%s\"", s->name,
			                  msg_clean(clean, sizeof(clean), value, strlen(value)));
			return -1;
		}
		return 0;
	case CONF_INT:
		errno = 0;
		n = strtoll(value, &end, 10);
		if (*value == '\0' || *end != '\0' || errno != 0) {
			*error_r = errfmt("%s: expected an integer, not \"%s\"", s->name,
			                  msg_clean(clean, sizeof(clean), value, strlen(value)));
			return -1;
		}
		break;
	case CONF_TIME:
		if (conf_parse_time(value, &n) < 0) {
			*error_r = errfmt("%s: expected a time such as 30s, 500ms, 5m, 2h or 90d, "
			                  "not \"%s\"",
			                  s->name,
			                  msg_clean(clean, sizeof(clean), value, strlen(value)));
			return -1;
		}
		break;
	case CONF_SIZE:
		if (conf_parse_size(value, &n) < 0) {
			*error_r = errfmt(
			        "%s: expected a size such as 4096, 16k or 10m, not \"%s\"", s->name,
			        msg_clean(clean, sizeof(clean), value, strlen(value)));
			return -1;
		}
		break;
	default:
		msg_panic("conf_apply: bad type %d for %s", (int)s->type, s->name);
	}
	if (s->min != 0 || s->max != 0) {
		if (n < s->min || n > s->max) {
			*error_r = errfmt("%s: \"%s\" is out of range (%lld..%lld%s)", s->name,
			                  msg_clean(clean, sizeof(clean), value, strlen(value)),
			                  s->min, s->max,
			                  s->type == CONF_TIME   ? " ms"
			                  : s->type == CONF_SIZE ? " bytes"
			                                         : "");
			return -1;
		}
	} else if (n < 0) {
		*error_r = errfmt("%s: must not be negative", s->name);
		return -1;
	}
	*(long long *)field = n;
	return 0;
}

int
conf_set(const struct conf_setting *table, void *obj, const char *name, const char *value,
         const char **error_r)
{
	const struct conf_setting *s = conf_find(table, name);
	char clean[128];

	if (s == NULL) {
		*error_r = errfmt("unknown setting \"%s\"",
		                  msg_clean(clean, sizeof(clean), name, strlen(name)));
		return -1;
	}
	return conf_apply(s, obj, value, error_r);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

int
conf_load(const struct conf_setting *table, void *obj, const char *path, const char **error_r)
{
	FILE *fp;
	int rc;

	if (path == NULL)
		return conf_load_stream(table, obj, NULL, NULL, error_r);
	if ((fp = fopen(path, "r")) == NULL) {
		int saved = errno; /* conf_apply() below sets errno */
		for (const struct conf_setting *s = table; s->name != NULL; s++)
			if (conf_apply(s, obj, s->def, error_r) < 0)
				msg_panic("conf_load: bad default for %s: %s", s->name, *error_r);
		*error_r = errfmt("open %s: %s", path, strerror(saved));
		return -1;
	}
	rc = conf_load_stream(table, obj, fp, path, error_r);
	fclose(fp);
	return rc;
}

int
conf_load_stream(const struct conf_setting *table, void *obj, FILE *fp, const char *path,
                 const char **error_r)
{
	char line[CONF_LINE_MAX + 2];
	unsigned char *seen;
	size_t count = 0;
	int lineno = 0, rc = 0;

	for (const struct conf_setting *s = table; s->name != NULL; s++, count++)
		if (conf_apply(s, obj, s->def, error_r) < 0)
			msg_panic("conf_load: bad default for %s: %s", s->name, *error_r);
	if (fp == NULL)
		return 0;
	seen = mycalloc(count ? count : 1, 1);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *name, *value, *eq;
		const struct conf_setting *s;
		const char *why;

		lineno++;
		if (strlen(line) > CONF_LINE_MAX) {
			*error_r = errfmt("%s:%d: line too long (over %d bytes)", path, lineno,
			                  CONF_LINE_MAX);
			rc = -1;
			break;
		}
		name = trim(line);
		if (*name == '\0' || *name == '#')
			continue;
		if ((eq = strchr(name, '=')) == NULL) {
			*error_r = errfmt("%s:%d: expected \"name = value\"", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		value = trim(eq + 1);
		name = trim(name);
		if ((s = conf_find(table, name)) == NULL) {
			char clean[128];
			*error_r = errfmt("%s:%d: unknown setting \"%s\"", path, lineno,
			                  msg_clean(clean, sizeof(clean), name, strlen(name)));
			rc = -1;
			break;
		}
		if (seen[s - table]) {
			*error_r = errfmt("%s:%d: %s is set twice", path, lineno, name);
			rc = -1;
			break;
		}
		seen[s - table] = 1;
		if (conf_apply(s, obj, value, &why) < 0) {
			*error_r = errfmt("%s:%d: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		*error_r = errfmt("read %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(seen);
	return rc;
}

void
conf_dump(const struct conf_setting *table, const void *obj, struct mbuf *out)
{
	for (; table->name != NULL; table++) {
		const char *field = (const char *)obj + table->offset;
		switch (table->type) {
		case CONF_STR:
			mbuf_printf(out, "%s = %s\n", table->name, *(char *const *)field);
			break;
		case CONF_BOOL:
			mbuf_printf(out, "%s = %s\n", table->name,
			            *(const bool *)field ? "yes" : "no");
			break;
		case CONF_TIME:
			mbuf_printf(out, "%s = %lldms\n", table->name, *(const long long *)field);
			break;
		default:
			mbuf_printf(out, "%s = %lld\n", table->name, *(const long long *)field);
			break;
		}
	}
}

void
conf_free(const struct conf_setting *table, void *obj)
{
	for (; table->name != NULL; table++)
		if (table->type == CONF_STR) {
			char **p = (char **)((char *)obj + table->offset);
			free(*p);
			*p = NULL;
		}
}

int
conf_check_mode(const char *where, const char *name, const char *value, unsigned *mode_r,
                const char **error_r)
{
	char *end;
	long mode = strtol(value, &end, 8);

	if (*value == '\0' || *end != '\0' || mode < 0 || mode > 0777) {
		*error_r = errfmt("%s: %s: expected an octal mode such as 0660", where, name);
		return -1;
	}
	*mode_r = (unsigned)mode;
	return 0;
}

int
conf_check_logging(const char *where, const char *log_target, const char *syslog_facility,
                   const char **error_r)
{
	if (strcmp(log_target, "stderr") != 0 && strcmp(log_target, "syslog") != 0) {
		*error_r = errfmt("%s: log_target: expected stderr or syslog", where);
		return -1;
	}
	if (msg_facility(syslog_facility) < 0) {
		*error_r = errfmt("%s: syslog_facility: unknown facility \"%s\"", where,
		                  syslog_facility);
		return -1;
	}
	return 0;
}
