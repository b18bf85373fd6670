// SPDX-License-Identifier: GPL-2.0
/*
 * Crash-test driver for the store's at-most-once guarantee (tests/integ/kms-takeonce.sh
 * kills it with SIGKILL at random points):
 *   store_torture DB populate N     N verified blocks on link "t"
 *   store_torture DB take LOGFILE   take blocks two at a time until none is left; after each
 *                                   take, append the ids to LOGFILE and fsync (the "use")
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

int main(int argc, char **argv)
{
	static struct store_block out[2];
	uint8_t raw[128], tag[32] = { 0 };
	char err[256];
	struct store *st;
	size_t n;

	if (argc != 4) {
		fprintf(stderr, "usage: store_torture DB populate N | DB take LOGFILE\n");
		return 2;
	}
	st = store_open(argv[1], err, sizeof(err));
	if (!st || store_recover(st)) {
		fprintf(stderr, "store_torture: %s\n", st ? store_errmsg(st) : err);
		return 1;
	}
	if (!strcmp(argv[2], "populate")) {
		long total = atol(argv[3]);

		if (store_begin(st))
			return 1;
		for (long i = 1; i <= total; i++) {
			memset(raw, (int)i, sizeof(raw));
			if (store_add_fresh(st, "t", (uint64_t)i, raw, sizeof(raw), 0) ||
			    store_verify(st, "t", (uint64_t)i, tag, sizeof(tag), 64))
				return 1;
		}
		return store_commit(st) ? 1 : 0;
	}
	if (!strcmp(argv[2], "take")) {
		int fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT, 0600);

		if (fd < 0)
			return 1;
		while (store_take(st, "t", 65, out, 2, &n) == 0 && n > 0) {
			char line[64];
			int len;

			for (size_t i = 0; i < n; i++) {
				len = snprintf(line, sizeof(line), "%llu\n",
					       (unsigned long long)out[i].id);
				if (write(fd, line, len) != len)
					return 1;
				explicit_bzero(out[i].key, out[i].len);
			}
			if (fsync(fd))
				return 1;
		}
		close(fd);
		store_close(st);
		return 0;
	}
	return 2;
}
