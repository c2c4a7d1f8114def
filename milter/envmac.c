/*
 * envmac - the milter's ENVID with a mac of the site's secret. See envmac.h.
 */
#include "envmac.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base32.h"
#include "msg.h"

int
envmac_load(const char *path, unsigned char *secret, size_t *len_r, const char **error_r)
{
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*error_r = errfmt("report_secret_file %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, secret + len, ENVMAC_SECRET_MAX - len)) > 0)
		if ((len += (size_t)n) == ENVMAC_SECRET_MAX)
			break;
	if (n < 0) {
		*error_r = errfmt("report_secret_file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (len == ENVMAC_SECRET_MAX && read(fd, &(unsigned char){0}, 1) > 0) {
		*error_r = errfmt("report_secret_file %s: more than %d bytes", path,
		                  ENVMAC_SECRET_MAX);
		close(fd);
		return -1;
	}
	close(fd);
	if (len < ENVMAC_SECRET_MIN) {
		*error_r = errfmt("report_secret_file %s: %zu bytes, at least %d needed (for "
		                  "example: head -c 32 /dev/urandom)",
		                  path, len, ENVMAC_SECRET_MIN);
		return -1;
	}
	*len_r = len;
	return 0;
}

/* The mac of tracking_id (RANDID_LEN characters) into mac (ENVMAC_LEN + 1 bytes); of
   "keep:" and the id for the variant never consumed (an id has no ':'). */
static void
mac_of(char *mac, const unsigned char *secret, size_t secret_len, const char *tracking_id,
       bool keep)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char in[RANDID_LEN + 8];
	unsigned mdlen = 0;

	snprintf(in, sizeof(in), "%s%s", keep ? "keep:" : "", tracking_id);
	if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)in, strlen(in), md,
	         &mdlen) == NULL)
		msg_panic("envmac: HMAC-SHA256 failed");
	base32_encode(mac, ENVMAC_LEN, md, 10);
}

void
envmac_make(char *out, const unsigned char *secret, size_t secret_len, const char *tracking_id,
            bool keep)
{
	char mac[ENVMAC_LEN + 1];

	if (strlen(tracking_id) != RANDID_LEN)
		msg_panic("envmac_make: a tracking id of %zu characters", strlen(tracking_id));
	mac_of(mac, secret, secret_len, tracking_id, keep);
	memcpy(out, tracking_id, RANDID_LEN);
	out[RANDID_LEN] = '.';
	memcpy(out + RANDID_LEN + 1, mac, ENVMAC_LEN + 1);
}

bool
envmac_check(const char *envid, const unsigned char *secret, size_t secret_len, char *tracking_id_r,
             bool *keep_r)
{
	char id[RANDID_LEN + 1], want[ENVMAC_LEN + 1], want_keep[ENVMAC_LEN + 1],
	        got[ENVMAC_LEN + 1];
	bool plain, keep;

	if (envid == NULL || secret_len == 0 || strlen(envid) != ENVMAC_ENVID_LEN ||
	    envid[RANDID_LEN] != '.')
		return false;
	for (size_t i = 0; i < RANDID_LEN; i++) {
		char c = (char)tolower((unsigned char)envid[i]);
		if (strchr(BASE32_ALPHABET, c) == NULL || c == '\0')
			return false;
		id[i] = c;
	}
	id[RANDID_LEN] = '\0';
	for (size_t i = 0; i < ENVMAC_LEN; i++)
		got[i] = (char)tolower((unsigned char)envid[RANDID_LEN + 1 + i]);
	got[ENVMAC_LEN] = '\0';
	mac_of(want, secret, secret_len, id, false);
	mac_of(want_keep, secret, secret_len, id, true);
	plain = CRYPTO_memcmp(want, got, ENVMAC_LEN) == 0;
	keep = CRYPTO_memcmp(want_keep, got, ENVMAC_LEN) == 0;
	if (!plain && !keep)
		return false;
	memcpy(tracking_id_r, id, RANDID_LEN + 1);
	if (keep_r != NULL)
		*keep_r = keep;
	return true;
}
