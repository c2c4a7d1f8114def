/*
 * conf - "key = value" configuration files, checked against a table of settings.
 *
 * Each program declares its settings once, as a table: name, type, default and where the
 * value goes in its config struct. conf_load() applies every default, then the file, and
 * reports the first problem with the file name and line number. The same table serves
 * command-line overrides (conf_set) and printing the effective configuration (conf_dump).
 *
 * File syntax: one "name = value" per line; blank lines and lines starting with '#' are
 * ignored; whitespace around name and value is dropped; a value may be empty. A setting
 * given twice is an error (it is nearly always a mistake), as is an unknown name.
 *
 * Value types: CONF_STR (any text), CONF_INT (decimal integer within [min, max]),
 * CONF_BOOL (yes/no, true/false, on/off, 1/0), CONF_TIME (an integer with an optional unit
 * ms, s, m, h or d; stored as milliseconds; a bare number means seconds) and CONF_SIZE
 * (an integer with an optional unit k, m or g, powers of 1024; stored as bytes).
 *
 * DIAGNOSTICS
 *	Functions return 0 on success and -1 with a message in *error_r ("FILE:LINE: ...").
 */
#ifndef CONF_H
#define CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mbuf;

enum conf_type {
	CONF_STR,  /* char * (malloc'd, freed by conf_free) */
	CONF_INT,  /* long long */
	CONF_BOOL, /* bool */
	CONF_TIME, /* long long, milliseconds */
	CONF_SIZE, /* long long, bytes */
};

struct conf_setting {
	const char *name;
	enum conf_type type;
	const char *def;    /* default, written as in a config file */
	size_t offset;      /* offsetof() the field in the config struct */
	long long min, max; /* range for numbers; 0, 0 means no limit beyond >= 0 */
};

#define CONF_END                                                                                   \
	{                                                                                          \
		NULL, CONF_STR, NULL, 0, 0, 0                                                      \
	}

/* Apply defaults to obj, then read path (NULL: defaults only). */
int conf_load(const struct conf_setting *table, void *obj, const char *path, const char **error_r);
/* The same for an open stream; path names it in errors. The caller closes fp. */
int conf_load_stream(const struct conf_setting *table, void *obj, FILE *fp, const char *path,
                     const char **error_r);
/* Set one setting by name from its text form. */
int conf_set(const struct conf_setting *table, void *obj, const char *name, const char *value,
             const char **error_r);
/* Append "name = value\n" for every setting to out. */
void conf_dump(const struct conf_setting *table, const void *obj, struct mbuf *out);
/* Free the strings conf_load/conf_set stored in obj. */
void conf_free(const struct conf_setting *table, void *obj);

/* The parsers behind the types, for values that arrive some other way. */
int conf_parse_bool(const char *value, bool *out_r);
int conf_parse_time(const char *value, long long *ms_r);
int conf_parse_size(const char *value, long long *bytes_r);

/*
 * Checks the programs share, for settings after conf_load (where names the file in
 * errors): an octal file mode such as "0660" (0 to 0777) for the setting name, stored in
 * *mode_r; log_target (stderr or syslog) with its syslog_facility.
 */
int conf_check_mode(const char *where, const char *name, const char *value, unsigned *mode_r,
                    const char **error_r);
int conf_check_logging(const char *where, const char *log_target, const char *syslog_facility,
                       const char **error_r);

#endif
