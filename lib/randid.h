/*
 * randid - unguessable identifiers: tracking ids (the Msgstatus-Id header) and event ids.
 *
 * 130 bits from the kernel's CSPRNG (getrandom(2)), written as 26 characters of lower-case
 * RFC 4648 base32 ("a-z2-7"), safe in headers, URLs, file names and SQL without escaping.
 *
 * DIAGNOSTICS
 *	getrandom() does not fail once the kernel pool is initialized; if it does anyway this
 *	is a panic, since handing out a guessable id would be a security bug.
 */
#ifndef RANDID_H
#define RANDID_H

#include <stdbool.h>
#include <stddef.h>

#define RANDID_LEN 26

/* Write a new id and its NUL into buf (RANDID_LEN + 1 bytes); returns buf. */
char *randid_new(char *buf);
/* True if s (len bytes) looks like an id randid_new() made. */
bool randid_valid(const char *s, size_t len);
/* Fill buf with n random bytes. */
void randid_bytes(void *buf, size_t n);

#endif
