// SPDX-License-Identifier: GPL-2.0
/*
 * Store scaling (issue 13): the latency of the operations key caching, distribution and
 * relaying call on every round or transfer, with little and with much verified key held.
 *
 *   storebench DIR HELD_MIB [ROUNDS]
 *
 * Builds a store in DIR holding HELD_MIB MiB of verified key in 32 KiB blocks (plus as many
 * consumed tombstones again, as a link that has been running a while has), then for
 * ROUNDS (20) rounds: 64 fresh blocks arrive (one transaction), a caching round locks them
 * (store_lock_fresh) and gives them back (store_unlock), the lock expiry runs
 * (store_release_expired), and one verified block is taken (store_take). Each operation is
 * its own transaction, committed with fsync as in a kmsd without group commit. Prints
 *   storebench: held_mib H take_ms T lock_ms L unlock_ms U expire_ms E
 * (means over the rounds). bench/report.py puts 1 GiB against 1 MiB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define BLOCK 32768

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	static uint8_t key[BLOCK + 64];
	static struct store_block out[1];
	double t, tt = 0, tl = 0, tu = 0, te = 0;
	uint64_t id = 1, ids[64], n_held;
	int rounds = argc > 3 ? atoi(argv[3]) : 20;
	char path[512], err[256];
	struct store *st;
	size_t n;

	if (argc < 3 || rounds < 1) {
		fprintf(stderr, "usage: storebench DIR HELD_MIB [ROUNDS]\n");
		return 2;
	}
	n_held = (uint64_t)strtoull(argv[2], NULL, 10) * 1048576 / BLOCK;
	snprintf(path, sizeof(path), "%s/store.db", argv[1]);
	st = store_open(path, err, sizeof(err));
	if (!st) {
		fprintf(stderr, "storebench: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 131 + 7);
	/* history: for each block held, one used up before (a tombstone) */
	for (uint64_t i = 0; i < 2 * n_held; i += 256) {
		if (store_begin(st))
			goto fail;
		for (uint64_t j = i; j < i + 256 && j < 2 * n_held; j++, id++) {
			if (store_add_fresh(st, "l", id, key, sizeof(key), 0) ||
			    store_verify(st, "l", id, key, 32, 64) ||
			    ((id & 1) && store_discard(st, "l", id, DISCARD_ORPHAN, NULL, 0)))
				goto fail;
		}
		if (store_commit(st))
			goto fail;
	}
	for (int r = 0; r < rounds; r++) {
		if (store_begin(st))
			goto fail;
		for (int i = 0; i < 64; i++)
			if (store_add_fresh(st, "l", id + i, key, sizeof(key), 1000))
				goto fail;
		if (store_commit(st))
			goto fail;
		t = now_ms();
		if (store_lock_fresh(st, "l", 64, 100 + r, 100000, 0, 200000, ids, &n) || n != 64)
			goto fail;
		tl += now_ms() - t;
		t = now_ms();
		if (store_unlock(st, "l", 100 + r) != 64)
			goto fail;
		tu += now_ms() - t;
		t = now_ms();
		if (store_release_expired(st, 100000) < 0)
			goto fail;
		te += now_ms() - t;
		t = now_ms();
		if (store_take(st, "l", 1, out, 1, &n) || n != 1)
			goto fail;
		tt += now_ms() - t;
		explicit_bzero(out[0].key, out[0].len);
		id += 64;
	}
	printf("storebench: held_mib %s take_ms %.2f lock_ms %.2f unlock_ms %.2f expire_ms %.2f\n",
	       argv[2], tt / rounds, tl / rounds, tu / rounds, te / rounds);
	store_close(st);
	return 0;
fail:
	fprintf(stderr, "storebench: %s\n", store_errmsg(st));
	store_close(st);
	return 1;
}
