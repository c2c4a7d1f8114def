/*
 * mymalloc - allocation that ends the program on failure. See mymalloc.h.
 */
#include "mymalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

static _Noreturn void
out_of_memory(void)
{
	msg_fatal("out of memory");
}

void *
mymalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
mycalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
myrealloc(void *ptr, size_t len)
{
	void *p = realloc(ptr, len ? len : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
myreallocarray(void *ptr, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		out_of_memory();
	return myrealloc(ptr, n * size);
}

char *
mystrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		out_of_memory();
	return p;
}

char *
mystrndup(const char *s, size_t len)
{
	char *p = strndup(s, len);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
mynonnull(void *p)
{
	if (p == NULL)
		out_of_memory();
	return p;
}
