/*
 * webassets - the dashboard's files (webmail/), built into statusd by cmake/embed.cmake so
 * that a deployment has nothing to install or keep in step; served at "/" (http.c).
 */
#ifndef WEBASSETS_H
#define WEBASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path;  /* URL path, "/" for the page */
	const char *ctype; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* The table, ended by an entry with path NULL. */
extern const struct web_asset web_assets[];

#endif
