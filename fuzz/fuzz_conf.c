/*
 * fuzz_conf - libFuzzer target for configuration files (conf_load_stream) with a table that
 * has one setting of every type.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
	char *s;
	long long i, t, z;
	bool b;
};

static const struct conf_setting table[] = {
        {"s", CONF_STR, "x", offsetof(struct cfg, s), 0, 0},
        {"i", CONF_INT, "1", offsetof(struct cfg, i), -5, 1000},
        {"t", CONF_TIME, "1s", offsetof(struct cfg, t), 0, 0},
        {"z", CONF_SIZE, "1k", offsetof(struct cfg, z), 0, 0},
        {"b", CONF_BOOL, "no", offsetof(struct cfg, b), 0, 0},
        CONF_END,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char iobuf[BUFSIZ];
	struct cfg cfg = {0};
	const char *error;
	FILE *fp = fmemopen((void *)data, size, "r");

	if (size == 0 || fp == NULL) {
		if (fp)
			fclose(fp);
		return 0;
	}
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf)); /* not a fresh stdio buffer every run */
	(void)conf_load_stream(table, &cfg, fp, "fuzz", &error);
	fclose(fp);
	conf_free(table, &cfg);
	return 0;
}
