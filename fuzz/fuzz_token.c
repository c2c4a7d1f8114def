/*
 * fuzz_token - libFuzzer target for the other token parsers of statusd/token.c (fuzz_jwt
 * has signed tokens): the shape check of API tokens, base64url decoding and user names.
 *
 * Invariants: a valid API token has the documented length and prefix; base64url decoding
 * accepts only the canonical form (encoding what it decoded gives the input back); an
 * accepted user name is as long as the input and has no upper-case ASCII letter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *user, *back;
	unsigned char *bin;
	const char *error;
	long n;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (token_api_valid(s) &&
	    (strlen(s) != TOKEN_API_LEN || strncmp(s, TOKEN_API_PREFIX, 4) != 0))
		abort();

	if ((bin = malloc(size + 1)) != NULL && (back = malloc(size + 8)) != NULL) {
		n = token_b64url_decode(s, size, bin, size + 1);
		if (n >= 0) {
			long m = token_b64url_encode(bin, (size_t)n, back, size + 8);
			if (m != (long)size || memcmp(back, s, size) != 0)
				abort();
		}
		free(back);
	}
	free(bin);

	if ((user = token_user(s, size, &error)) != NULL) {
		if (strlen(user) != size)
			abort();
		for (size_t i = 0; i < size; i++)
			if (user[i] >= 'A' && user[i] <= 'Z')
				abort();
		free(user);
	}
	free(s);
	return 0;
}
