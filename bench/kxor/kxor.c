// SPDX-License-Identifier: GPL-2.0
/*
 * kxor: in-kernel cost of qotp's XOR against memcpy over 64 KiB, the largest TCP payload a
 * GSO packet carries. Built from kmod/xor.c itself, so it measures the code qotp runs.
 * Prints one line on load and stays loaded until rmmod:
 *   kxor: 64KiB xor NS ns memcpy NS ns xor/memcpy throughput RATIO
 * Run it on a kernel without KASAN/lockdep (scripts/uml-kernel.sh fast) for numbers that
 * mean anything; bench/kxor/run.sh does.
 */
#include <linux/module.h>
#include <linux/vmalloc.h>
#include <linux/ktime.h>
#include <linux/random.h>

#include "xor.c"

#define LEN	65536
#define ROUNDS	2000

static int __init kxor_init(void)
{
	u8 *src = vmalloc(LEN), *key = vmalloc(LEN), *dst = vmalloc(LEN);
	u64 t0, t1, t2, best_x = U64_MAX, best_m = U64_MAX;
	int rep, i;

	if (!src || !key || !dst) {
		vfree(src);
		vfree(key);
		vfree(dst);
		return -ENOMEM;
	}
	get_random_bytes(src, LEN);
	get_random_bytes(key, LEN);
	/* Best of five batches each, alternating, so neither gets the warm cache alone. */
	for (rep = 0; rep < 5; rep++) {
		t0 = ktime_get_ns();
		for (i = 0; i < ROUNDS; i++) {
			qotp_xor(dst, src, key, LEN);
			OPTIMIZER_HIDE_VAR(dst);
		}
		t1 = ktime_get_ns();
		for (i = 0; i < ROUNDS; i++) {
			memcpy(dst, src, LEN);
			OPTIMIZER_HIDE_VAR(dst);
		}
		t2 = ktime_get_ns();
		best_x = min(best_x, (t1 - t0) / ROUNDS);
		best_m = min(best_m, (t2 - t1) / ROUNDS);
	}
	pr_info("kxor: 64KiB xor %llu ns memcpy %llu ns xor/memcpy throughput %llu.%03llu\n",
		best_x, best_m, best_m / max(best_x, 1ULL),
		(best_m * 1000 / max(best_x, 1ULL)) % 1000);
	vfree(src);
	vfree(key);
	vfree(dst);
	return 0;
}

static void __exit kxor_exit(void)
{
}

module_init(kxor_init);
module_exit(kxor_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("qotp XOR vs memcpy micro-benchmark");
