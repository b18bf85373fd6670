// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target: the peer message decoder. Anything it accepts must re-encode identically. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct msg m;
	static uint8_t out[MSG_HDR_LEN + MSG_MAX_PAYLOAD];
	size_t used = 0;
	long n;

	while (size > 0 && codec_decode(data, size, &m, &used) == CODEC_OK) {
		n = codec_encode(&m, out, sizeof(out));
		if (n != (long)used || memcmp(out, data, used) != 0)
			abort();
		data += used;
		size -= used;
	}
	return 0;
}
