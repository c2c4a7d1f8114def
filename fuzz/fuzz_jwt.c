/*
 * fuzz_jwt - libFuzzer target for signed-token verification (statusd/token.c): the input
 * is the token; a fixed key and clock. Any token that verifies must name a user.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[] = "0123456789abcdef0123456789abcdef-fuzz";
	struct token_claims claims;
	const char *error;
	char *jwt = malloc(size + 1);

	if (jwt == NULL)
		return 0;
	memcpy(jwt, data, size);
	jwt[size] = '\0';
	memset(&claims, 0, sizeof(claims));
	if (token_jwt_verify(jwt, key, sizeof(key) - 1, INT64_C(1795348067000), INT64_C(86400000),
	                     &claims, &error) == 0) {
		if (claims.user == NULL || claims.user[0] == '\0')
			abort();
		token_claims_free(&claims);
	}
	free(jwt);
	return 0;
}
