/*
 * fuzz_wsmsg - libFuzzer target for WebSocket client messages on the live feed
 * (params_ws_message, statusd/params.c). The input is one message; only {"type":"ping"}
 * (with any JSON whitespace) is accepted, and nothing larger than PARAMS_WS_MAX.
 */
#include <stdint.h>
#include <stdlib.h>

#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *error = NULL;

	if (params_ws_message(data, size, &error) == 0) {
		if (size > PARAMS_WS_MAX)
			abort();
	} else if (error == NULL || error[0] == '\0')
		abort();
	return 0;
}
