// SPDX-License-Identifier: GPL-2.0
/*
 * kxor: in-kernel cost of qotp's XOR against memcpy over 64 KiB, the largest TCP payload a
 * GSO packet carries. Built from kmod/xor.c itself, so it measures the code qotp runs.
 * Prints three lines on load and stays loaded until rmmod:
 *   kxor: 64KiB xor NS ns memcpy NS ns xor/memcpy throughput RATIO
 *   kxor: 64KiB xor in place NS ns memcpy NS ns xor/memcpy throughput RATIO
 *   kxor: 64KiB xor without SIMD NS ns memcpy NS ns xor/memcpy throughput RATIO
 * The first is dst = src ^ key into a third buffer (what qotp does into a fresh page when
 * the skb's bytes are shared); the second is src ^= key (an skb that owns its bytes); the
 * third is the first built as an x86-64 kernel builds it, with no SSE (kxor_nosimd.c):
 * UML's kernel is built with SSE2 available to the compiler, x86-64's is not.
 *
 * Fairness: both sides move the same 64 KiB between the same vmalloc'd buffers, warmed by
 * the batches before, and nothing else happens in either timed loop. The host shares its
 * cores with other work, so the two are timed in short batches taken alternately
 * (BATCHES pairs of PER calls each, the first of a pair alternating), and each figure is
 * the median over the batches; the ratio is the median of the per-pair ratios, so a pair
 * slowed by the host counts once, not in one side only.
 * Run it on a kernel without KASAN/lockdep (scripts/uml-kernel.sh fast) for numbers that
 * mean anything; bench/kxor/run.sh does.
 */
#include <linux/module.h>
#include <linux/vmalloc.h>
#include <linux/ktime.h>
#include <linux/random.h>
#include <linux/sort.h>

#include "xor.c"

#define LEN	65536
#define BATCHES	401
#define PER	8

void kxor_nosimd(u8 *dst, const u8 *src, const u8 *key, size_t len);

static u64 tx[BATCHES], tm[BATCHES], tr[BATCHES];

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static u64 batch(void (*xor)(u8 *, const u8 *, const u8 *, size_t), bool xor_side,
		 u8 *dst, u8 *src, const u8 *key)
{
	u64 t0 = ktime_get_ns();
	int i;

	for (i = 0; i < PER; i++) {
		if (xor_side)
			xor(dst, src, key, LEN);
		else
			memcpy(dst, src, LEN);
		OPTIMIZER_HIDE_VAR(dst);
	}
	return ktime_get_ns() - t0;
}

static void measure(const char *what, void (*xor)(u8 *, const u8 *, const u8 *, size_t),
		    u8 *xdst, u8 *dst, u8 *src, const u8 *key)
{
	int r;

	for (r = 0; r < BATCHES; r++) {
		bool xor_first = r & 1;
		u64 a = batch(xor, xor_first, xor_first ? xdst : dst, src, key);
		u64 b = batch(xor, !xor_first, xor_first ? dst : xdst, src, key);

		tx[r] = xor_first ? a : b;
		tm[r] = xor_first ? b : a;
		tr[r] = tm[r] * 1000 / max(tx[r], 1ULL);
	}
	sort(tx, BATCHES, sizeof(u64), cmp_u64, NULL);
	sort(tm, BATCHES, sizeof(u64), cmp_u64, NULL);
	sort(tr, BATCHES, sizeof(u64), cmp_u64, NULL);
	pr_info("kxor: 64KiB xor %s%llu ns memcpy %llu ns xor/memcpy throughput %llu.%03llu\n",
		what, tx[BATCHES / 2] / PER, tm[BATCHES / 2] / PER,
		tr[BATCHES / 2] / 1000, tr[BATCHES / 2] % 1000);
}

static int __init kxor_init(void)
{
	u8 *src = vmalloc(LEN), *key = vmalloc(LEN), *dst = vmalloc(LEN);

	if (!src || !key || !dst) {
		vfree(src);
		vfree(key);
		vfree(dst);
		return -ENOMEM;
	}
	get_random_bytes(src, LEN);
	get_random_bytes(key, LEN);
	memcpy(dst, src, LEN);
	measure("", qotp_xor, dst, dst, src, key);
	/* In place: src ^= key. XORing the same key twice per pair of batches keeps src's
	 * bytes cycling, which costs nothing extra. */
	measure("in place ", qotp_xor, src, dst, src, key);
	measure("without SIMD ", kxor_nosimd, dst, dst, src, key);
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
