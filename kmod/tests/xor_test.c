// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the XOR (xor.c): the word loop against a byte loop on every alignment,
 * and qotp_xor_skb() over the skb shapes of net/core/net_test.c (linear, page frags,
 * frag_list, GSO) plus the shapes where writing in place would be wrong (cloned, shared
 * frags, pages someone else holds), each against a naive byte-by-byte reference. The
 * shapes that must not be written in place also check that the other holder's bytes did
 * not change, and the exclusive ones that the XOR did happen in place.
 */
#include "dp_test.h"
#include <linux/skbuff.h>
#include <linux/random.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>

#include "../xor.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define XB	600

/* qotp_xor() moves 64, 16, 8 then 1 byte at a time: every length up to past a few 64-byte
 * rounds, each of the three pointers at every offset modulo 16 (or a spread of them). */
static void xor_words_vs_bytes(struct kunit *test)
{
	u8 *src = kunit_kmalloc(test, XB, GFP_KERNEL), *key = kunit_kmalloc(test, XB, GFP_KERNEL);
	u8 *dst = kunit_kmalloc(test, XB, GFP_KERNEL), *ref = kunit_kmalloc(test, XB, GFP_KERNEL);
	unsigned int so, ko, doff, len, i;

	KUNIT_ASSERT_TRUE(test, src && key && dst && ref);
	get_random_bytes(src, XB);
	get_random_bytes(key, XB);
	for (so = 0; so < 16; so++)
		for (ko = 0; ko < 16; ko += 5)
			for (doff = 0; doff < 16; doff += 3)
				for (len = 0; len < 560; len += 1 + len / 16) {
					memset(dst, 0x5a, XB);
					memcpy(ref, dst, XB);
					for (i = 0; i < len; i++)
						ref[doff + i] = src[so + i] ^ key[ko + i];
					qotp_xor(dst + doff, src + so, key + ko, len);
					KUNIT_ASSERT_MEMEQ(test, dst, ref, XB);
				}
	/* In place (dst == src) at every alignment and length class. */
	for (so = 0; so < 16; so++)
		for (len = 0; len < 560; len += 1 + len / 16) {
			memcpy(dst, src, XB);
			memcpy(ref, src, XB);
			for (i = 0; i < len; i++)
				ref[so + i] ^= key[(so * 7) % 16 + i];
			qotp_xor(dst + so, dst + so, key + (so * 7) % 16, len);
			KUNIT_ASSERT_MEMEQ(test, dst, ref, XB);
		}
	/* Twice is the identity. */
	memcpy(dst, src, XB);
	qotp_xor(dst, dst, key, XB);
	qotp_xor(dst, dst, key, XB);
	KUNIT_EXPECT_MEMEQ(test, dst, src, XB);
}

enum shape {
	SH_LINEAR,
	SH_FRAGS,
	SH_FRAGS_COMPOUND,
	SH_FRAG_LIST,
	SH_GSO,
	SH_CLONED,
	SH_SHARED_FRAG,
	SH_PAGE_HELD,
	SH_FRAG_LIST_CLONED,
	__SH_MAX,
};

static const char *const shape_name[] = {
	"linear", "frags", "compound frags", "frag_list", "gso", "cloned",
	"shared frags", "page held elsewhere", "cloned with frag_list",
};

#define HDR	52	/* as an IPv4 + TCP header with timestamps */

static struct page *rand_page(unsigned int order)
{
	struct page *p = alloc_pages(GFP_KERNEL | (order ? __GFP_COMP : 0), order);

	if (p)
		get_random_bytes(page_address(p), PAGE_SIZE << order);
	return p;
}

static struct sk_buff *linear_skb(unsigned int len)
{
	struct sk_buff *skb = alloc_skb(len, GFP_KERNEL);

	if (skb)
		get_random_bytes(skb_put(skb, len), len);
	return skb;
}

static int add_frag(struct sk_buff *skb, unsigned int order, unsigned int off, unsigned int size)
{
	struct page *p = rand_page(order);

	if (!p)
		return -ENOMEM;
	skb_add_rx_frag(skb, skb_shinfo(skb)->nr_frags, p, off, size, PAGE_SIZE << order);
	return 0;
}

/*
 * Builds @sh. *@held gets a page the test itself still holds a reference on (whose
 * bytes must not change), *@orig the skb a clone was made from.
 */
static struct sk_buff *build(struct kunit *test, enum shape sh, struct page **held,
			     struct sk_buff **orig)
{
	struct sk_buff *skb, *m;
	unsigned int i;

	*held = NULL;
	*orig = NULL;
	switch (sh) {
	case SH_LINEAR:
		return linear_skb(HDR + 1448);
	case SH_FRAGS:
	case SH_GSO:
	case SH_CLONED:
	case SH_SHARED_FRAG:
	case SH_PAGE_HELD:
		skb = linear_skb(HDR + 100);	/* some payload in the head too */
		if (!skb)
			return NULL;
		for (i = 0; i < 5; i++)
			KUNIT_ASSERT_EQ(test, add_frag(skb, 0, 13 * i, PAGE_SIZE - 13 * i - 7), 0);
		if (sh == SH_GSO) {
			skb_shinfo(skb)->gso_size = 1448;
			skb_shinfo(skb)->gso_type = SKB_GSO_TCPV4;
		}
		if (sh == SH_SHARED_FRAG)
			skb_shinfo(skb)->flags |= SKBFL_SHARED_FRAG;
		if (sh == SH_PAGE_HELD) {
			*held = skb_frag_page(&skb_shinfo(skb)->frags[2]);
			get_page(*held);
		}
		if (sh == SH_CLONED) {
			*orig = skb;
			skb = skb_clone(skb, GFP_KERNEL);
		}
		return skb;
	case SH_FRAGS_COMPOUND:
		skb = linear_skb(HDR);
		if (!skb)
			return NULL;
		KUNIT_ASSERT_EQ(test, add_frag(skb, 3, 100, 30000), 0);
		KUNIT_ASSERT_EQ(test, add_frag(skb, 2, 0, 16384), 0);
		return skb;
	case SH_FRAG_LIST:
	case SH_FRAG_LIST_CLONED:
		skb = linear_skb(HDR + 10);
		if (!skb)
			return NULL;
		KUNIT_ASSERT_EQ(test, add_frag(skb, 0, 0, 1000), 0);
		for (i = 0; i < 3; i++) {
			m = linear_skb(700 + 300 * i);
			KUNIT_ASSERT_NOT_NULL(test, m);
			KUNIT_ASSERT_EQ(test, add_frag(m, 0, 5, 2000), 0);
			m->next = skb_shinfo(skb)->frag_list;
			skb_shinfo(skb)->frag_list = m;
			skb->len += m->len;
			skb->data_len += m->len;
			skb->truesize += m->truesize;
		}
		if (sh == SH_FRAG_LIST_CLONED) {
			*orig = skb;
			skb = skb_clone(skb, GFP_KERNEL);
		}
		return skb;
	default:
		return NULL;
	}
}

static void xor_skb_shape(struct kunit *test, enum shape sh)
{
	struct sk_buff *skb, *orig;
	struct page *held;
	u8 *before, *after, *ref, *key, *held_copy = NULL, *orig_copy = NULL;
	struct qotp_kpiece pc[3];
	unsigned int len, plen, i, cut1, cut2;
	struct page *page0 = NULL;

	skb = build(test, sh, &held, &orig);
	KUNIT_ASSERT_NOT_NULL(test, skb);
	if (skb_shinfo(skb)->nr_frags)
		page0 = skb_frag_page(&skb_shinfo(skb)->frags[0]);
	len = skb->len;
	plen = len - HDR;
	before = vmalloc(len);
	after = vmalloc(len);
	ref = vmalloc(len);
	key = vmalloc(plen);
	KUNIT_ASSERT_TRUE(test, before && after && ref && key);
	KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, before, len), 0);
	get_random_bytes(key, plen);
	if (held) {
		held_copy = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
		memcpy(held_copy, page_address(held), PAGE_SIZE);
	}
	if (orig) {
		orig_copy = vmalloc(len);
		KUNIT_ASSERT_EQ(test, skb_copy_bits(orig, 0, orig_copy, len), 0);
	}

	/* Naive reference: header unchanged, payload byte i ^ key byte i. */
	memcpy(ref, before, len);
	for (i = 0; i < plen; i++)
		ref[HDR + i] ^= key[i];

	/* The key in three pieces, cut at odd places. */
	cut1 = plen / 3 + 1;
	cut2 = plen - plen / 5;
	pc[0] = (struct qotp_kpiece){ key, cut1 };
	pc[1] = (struct qotp_kpiece){ key + cut1, cut2 - cut1 };
	pc[2] = (struct qotp_kpiece){ key + cut2, plen - cut2 };
	KUNIT_ASSERT_EQ(test, qotp_xor_skb(skb, HDR, plen, pc, 3), 0);
	KUNIT_EXPECT_EQ(test, skb->len, len);
	KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, after, len), 0);
	KUNIT_EXPECT_MEMEQ(test, after, ref, len);
	if (sh == SH_GSO)
		KUNIT_EXPECT_EQ(test, skb_shinfo(skb)->gso_size, 1448);

	/* Invariant 4: whoever else holds these bytes still sees them unchanged. */
	if (held) {
		KUNIT_EXPECT_MEMEQ(test, page_address(held), held_copy, PAGE_SIZE);
		put_page(held);
	}
	if (orig) {
		u8 *now = vmalloc(len);

		KUNIT_ASSERT_EQ(test, skb_copy_bits(orig, 0, now, len), 0);
		KUNIT_EXPECT_MEMEQ(test, now, orig_copy, len);
		vfree(now);
		vfree(orig_copy);
		kfree_skb(orig);
	}
	/* Pages we may not write were replaced by fresh ones; ours were written in place. */
	if (sh == SH_SHARED_FRAG || sh == SH_CLONED)
		KUNIT_EXPECT_PTR_NE(test, skb_frag_page(&skb_shinfo(skb)->frags[0]), page0);
	if (sh == SH_FRAGS || sh == SH_GSO || sh == SH_PAGE_HELD || sh == SH_FRAGS_COMPOUND)
		KUNIT_EXPECT_PTR_EQ(test, skb_frag_page(&skb_shinfo(skb)->frags[0]), page0);
	/* Decrypting is the same operation: back to the original. */
	KUNIT_ASSERT_EQ(test, qotp_xor_skb(skb, HDR, plen, pc, 3), 0);
	KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, after, len), 0);
	KUNIT_EXPECT_MEMEQ(test, after, before, len);
	kfree_skb(skb);
	vfree(before);
	vfree(after);
	vfree(ref);
	vfree(key);
}

static void xor_skb_shapes(struct kunit *test)
{
	enum shape sh;

	for (sh = 0; sh < __SH_MAX; sh++) {
		kunit_info(test, "shape: %s", shape_name[sh]);
		xor_skb_shape(test, sh);
	}
}

/* An skb that owns its pages is written in place: same pages before and after. */
static void xor_skb_exclusive_in_place(struct kunit *test)
{
	struct sk_buff *skb = linear_skb(HDR);
	struct qotp_kpiece pc;
	struct page *p;
	u8 *key, first;

	KUNIT_ASSERT_NOT_NULL(test, skb);
	KUNIT_ASSERT_EQ(test, add_frag(skb, 0, 0, PAGE_SIZE), 0);
	p = skb_frag_page(&skb_shinfo(skb)->frags[0]);
	first = *(u8 *)page_address(p);
	key = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	memset(key, 0xff, PAGE_SIZE);
	pc = (struct qotp_kpiece){ key, PAGE_SIZE };
	KUNIT_ASSERT_EQ(test, qotp_xor_skb(skb, HDR, PAGE_SIZE, &pc, 1), 0);
	KUNIT_EXPECT_PTR_EQ(test, skb_frag_page(&skb_shinfo(skb)->frags[0]), p);
	KUNIT_EXPECT_EQ(test, *(u8 *)page_address(p), (u8)~first);
	kfree_skb(skb);
}

/* A partial range: only [off, off + len) changes, in the middle of a frag. */
static void xor_skb_partial_range(struct kunit *test)
{
	struct sk_buff *skb = linear_skb(HDR);
	u8 *before = kunit_kmalloc(test, 300, GFP_KERNEL);
	u8 *after = kunit_kmalloc(test, 300, GFP_KERNEL);
	u8 *key = kunit_kmalloc(test, 100, GFP_KERNEL);
	struct qotp_kpiece pc = { key, 100 };
	struct page *held;
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, skb);
	KUNIT_ASSERT_EQ(test, add_frag(skb, 0, 10, 248), 0);
	held = skb_frag_page(&skb_shinfo(skb)->frags[0]);
	get_page(held);		/* forces the fresh-page path, which copies the rest */
	KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, before, 300), 0);
	get_random_bytes(key, 100);
	KUNIT_ASSERT_EQ(test, qotp_xor_skb(skb, 120, 100, &pc, 1), 0);
	KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, after, 300), 0);
	for (i = 0; i < 300; i++)
		KUNIT_ASSERT_EQ(test, after[i],
				(u8)(i >= 120 && i < 220 ? before[i] ^ key[i - 120] : before[i]));
	put_page(held);
	/* Key and range must agree; the range must lie in the skb. */
	KUNIT_EXPECT_EQ(test, qotp_xor_skb(skb, 120, 99, &pc, 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, qotp_xor_skb(skb, 201, 100, &pc, 1), -EINVAL);
	kfree_skb(skb);
}

static struct kunit_case xor_cases[] = {
	KUNIT_CASE(xor_words_vs_bytes),
	KUNIT_CASE(xor_skb_shapes),
	KUNIT_CASE(xor_skb_exclusive_in_place),
	KUNIT_CASE(xor_skb_partial_range),
	{}
};

static struct kunit_suite xor_suite = {
	.name = "qotp_xor",
	.test_cases = xor_cases,
};
kunit_test_suite(xor_suite);
