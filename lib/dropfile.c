/*
 * dropfile - the names of the files in statusd's pickup directory. See dropfile.h.
 */
#include "dropfile.h"

#include <string.h>

bool
dropfile_name_ok(const char *name)
{
	size_t len = strlen(name), slen = sizeof(DROPFILE_SUFFIX) - 1;

	return name[0] != '.' && len > slen && strcmp(name + len - slen, DROPFILE_SUFFIX) == 0;
}

bool
dropfile_open_name_ok(const char *name)
{
	size_t plen = sizeof(DROPFILE_OPEN_PREFIX) - 1;

	return strncmp(name, DROPFILE_OPEN_PREFIX, plen) == 0 && dropfile_name_ok(name + plen);
}
