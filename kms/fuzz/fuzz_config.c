// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target: the kmsd.conf parser. Errors must always name the file. */
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kms_config cf;
	char err[512] = "";

	if (config_parse(&cf, "fuzz.conf", (const char *)data, size, err, sizeof(err)) == 0) {
		if (!config_valid_id(cf.node_id) || !cf.store[0] || cf.store[0] != '/')
			abort();
		for (size_t i = 0; i < cf.n_nb; i++)
			if (!config_valid_id(cf.nb[i].id) || !strcmp(cf.nb[i].id, cf.node_id))
				abort();
	} else if (strncmp(err, "fuzz.conf", 9) != 0) {
		abort();
	}
	return 0;
}
