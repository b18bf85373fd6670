// SPDX-License-Identifier: GPL-2.0
/*
 * kfig8: the paper's Fig. 8 (encrypt + decrypt time against message size) for qotp's
 * in-kernel XOR path. A message of SIZE bytes is cut into socket buffers of at most 64 KiB
 * (the most payload a GSO packet carries), each built of page frags like a TCP segment, and
 * every skb is encrypted and then decrypted with qotp_xor_skb() (kmod/xor.c, included
 * here, so this is the code the datapath runs). The skbs own their pages, so this is the
 * in-place case; flow and ring lookups are not part of it (the userspace figure of
 * bench/cryptobench.c includes a span lookup, and bench/dp-compare.sh times the whole
 * datapath). Each size is checked to decrypt back to the original bytes. Prints one line
 * per size on load:
 *   kfig8: size BYTES encdec_ns NS ok
 */
#include <linux/module.h>
#include <linux/vmalloc.h>
#include <linux/ktime.h>
#include <linux/random.h>
#include <linux/sched.h>

#include "xor.c"

#define MAXLEN	(1 << 20)
#define SEG	65536
#define NSEG	(MAXLEN / SEG)

static struct sk_buff *segs[NSEG];

static void free_segs(void)
{
	int i;

	for (i = 0; i < NSEG; i++) {
		kfree_skb(segs[i]);
		segs[i] = NULL;
	}
}

/* The skbs of a @size-byte message, filled from @src. */
static int build(unsigned int size, const u8 *src)
{
	unsigned int i, off = 0;
	int err;

	free_segs();
	for (i = 0; off < size; i++) {
		unsigned int len = min_t(unsigned int, SEG, size - off);
		struct sk_buff *skb = alloc_skb_with_frags(0, len, 0, &err, GFP_KERNEL);

		if (!skb)
			return err;
		skb->len = len;
		skb->data_len = len;
		segs[i] = skb;
		err = skb_store_bits(skb, 0, src + off, len);
		if (err)
			return err;
		off += len;
	}
	return 0;
}

/* Encrypt then decrypt every skb of the message; key offset as a stream would use it. */
static int encdec(unsigned int size, const u8 *key)
{
	unsigned int i, off = 0;
	int pass, err;

	for (pass = 0; pass < 2; pass++) {
		off = 0;
		for (i = 0; off < size; i++) {
			struct qotp_kpiece p = { key + off, segs[i]->len };

			err = qotp_xor_skb(segs[i], 0, segs[i]->len, &p, 1);
			if (err)
				return err;
			off += segs[i]->len;
		}
	}
	return 0;
}

static int __init kfig8_init(void)
{
	u8 *src = vmalloc(MAXLEN), *key = vmalloc(MAXLEN), *chk = vmalloc(MAXLEN);
	unsigned int size;
	int err = -ENOMEM;

	if (!src || !key || !chk)
		goto out;
	get_random_bytes(src, MAXLEN);
	get_random_bytes(key, MAXLEN);
	for (size = 1024; size <= MAXLEN; size <<= 1) {
		/* About 64 MiB per batch, at least 8 messages; best of five batches. */
		unsigned int rounds = max(8U, (64U << 20) / size), i, off;
		u64 best = U64_MAX, t0;
		int rep;

		err = build(size, src);
		if (err)
			goto out;
		for (rep = 0; rep < 5; rep++) {
			t0 = ktime_get_ns();
			for (i = 0; i < rounds; i++) {
				err = encdec(size, key);
				if (err)
					goto out;
			}
			best = min(best, (ktime_get_ns() - t0) / rounds);
			cond_resched();
		}
		/* An even number of XORs with the same key: the message must be intact. */
		for (i = 0, off = 0; off < size; i++) {
			err = skb_copy_bits(segs[i], 0, chk + off, segs[i]->len);
			if (err)
				goto out;
			off += segs[i]->len;
		}
		pr_info("kfig8: size %u encdec_ns %llu %s\n", size, best,
			memcmp(chk, src, size) ? "CORRUPT" : "ok");
	}
	err = 0;
out:
	free_segs();
	vfree(src);
	vfree(key);
	vfree(chk);
	return err;
}

static void __exit kfig8_exit(void)
{
}

module_init(kfig8_init);
module_exit(kfig8_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("qotp Fig. 8: in-kernel encrypt + decrypt time against message size");
