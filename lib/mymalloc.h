/*
 * mymalloc - memory allocation that does not return on failure (after Postfix's
 * mymalloc(3)).
 *
 * msgstatus's programs cannot do anything sensible without memory, so the allocation
 * functions end the program instead of returning NULL, and callers need no check of their
 * own. free() as usual.
 *
 * DESIGN
 *	Thread-safe as malloc(3) is. Sizes of zero are made one byte, so that a NULL return
 *	always means failure.
 *
 * SECURITY
 *	Element counts that come from outside go through mycalloc or myreallocarray, which
 *	check n * size for overflow.
 *
 * DIAGNOSTICS
 *	Allocation failure and size overflow are fatal: msg_fatal("out of memory").
 */
#ifndef MYMALLOC_H
#define MYMALLOC_H

#include <stddef.h>

/* malloc(len) (at least one byte). */
void *mymalloc(size_t len);
/* calloc(n, size): zeroed; n * size checked for overflow. */
void *mycalloc(size_t n, size_t size);
/* realloc(ptr, len) (at least one byte); ptr may be NULL. */
void *myrealloc(void *ptr, size_t len);
/* realloc of ptr to n elements of size bytes, checked for overflow. */
void *myreallocarray(void *ptr, size_t n, size_t size);
/* A copy of s. */
char *mystrdup(const char *s);
/* A copy of at most len bytes of s, NUL-terminated. */
char *mystrndup(const char *s, size_t len);
/*
 * p, what a library's own allocator returned (libcurl's curl_url(), libpq's
 * PQconnectStart(), ...): NULL there means out of memory, and ends the program here too.
 */
void *mynonnull(void *p);

#endif
