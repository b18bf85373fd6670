// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of checksum handling (csum.c) and header rewriting (hooks.c): for every
 * ip_summed state, IPv4 and IPv6, a segment is verified on arrival (and a corrupted one
 * refused), then gets the descriptor option and its payload XORed as the encryptor does;
 * the checksum the output path then writes must equal a full recomputation. Also the MSS
 * clamp and the option insertion on their own, and the cutting of GSO packets into pieces.
 */
#include "dp_test.h"
#include <linux/skbuff.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/random.h>
#include <linux/netfilter.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/ip6_checksum.h>

#include "../csum.h"
#include "../xor.h"
#include "../hooks.h"
#include "../descriptor.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define TCPHDR	32	/* with NOP NOP timestamps */
#define PAY_LIN	200
#define PAY_FRAG 1000

static unsigned int nhlen(u8 pf)
{
	return pf == NFPROTO_IPV4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
}

static __sum16 tcp_full_csum(struct sk_buff *skb, u8 pf)
{
	unsigned int thoff = nhlen(pf), len = skb->len - thoff;
	__wsum sum = skb_checksum(skb, thoff, len, 0);

	if (pf == NFPROTO_IPV4)
		return csum_tcpudp_magic(ip_hdr(skb)->saddr, ip_hdr(skb)->daddr, len,
					 IPPROTO_TCP, sum);
	return csum_ipv6_magic(&ipv6_hdr(skb)->saddr, &ipv6_hdr(skb)->daddr, len,
			       IPPROTO_TCP, sum);
}

/*
 * Fills in the IP and TCP headers (with timestamps) of a @len byte segment from port
 * 40000 to 1935 whose network header is at skb->data, headers linear; no TCP checksum.
 */
static void fill_hdrs(struct sk_buff *skb, u8 pf, unsigned int len)
{
	unsigned int nh = nhlen(pf);
	struct tcphdr *th;
	u8 *opt;

	skb_reset_network_header(skb);
	skb_set_transport_header(skb, nh);
	if (pf == NFPROTO_IPV4) {
		struct iphdr *iph = ip_hdr(skb);

		memset(iph, 0, sizeof(*iph));
		iph->version = 4;
		iph->ihl = 5;
		iph->ttl = 64;
		iph->protocol = IPPROTO_TCP;
		iph->tot_len = htons(len);
		iph->id = htons(0xfffe);	/* the next ones wrap */
		iph->saddr = htonl(0x0a000001);
		iph->daddr = htonl(0x0a000102);
		ip_send_check(iph);
		skb->protocol = htons(ETH_P_IP);
	} else {
		struct ipv6hdr *ip6h = ipv6_hdr(skb);

		memset(ip6h, 0, sizeof(*ip6h));
		ip6h->version = 6;
		ip6h->nexthdr = IPPROTO_TCP;
		ip6h->hop_limit = 64;
		ip6h->payload_len = htons(len - nh);
		ip6h->saddr.s6_addr[0] = 0xfd;
		ip6h->saddr.s6_addr[15] = 1;
		ip6h->daddr.s6_addr[0] = 0xfd;
		ip6h->daddr.s6_addr[15] = 2;
		skb->protocol = htons(ETH_P_IPV6);
	}
	th = tcp_hdr(skb);
	memset(th, 0, TCPHDR);
	th->source = htons(40000);
	th->dest = htons(1935);
	th->seq = htonl(0xfffffff0);
	th->ack_seq = htonl(12345);
	th->doff = TCPHDR / 4;
	th->ack = 1;
	th->psh = 1;
	th->window = htons(512);
	opt = (u8 *)(th + 1);
	opt[0] = TCPOPT_NOP;
	opt[1] = TCPOPT_NOP;
	opt[2] = TCPOPT_TIMESTAMP;
	opt[3] = TCPOLEN_TIMESTAMP;
	get_random_bytes(opt + 4, 8);
}

/*
 * A data segment with a correct checksum, payload partly linear, partly in a page; with
 * @corrupt, one bit of the payload flips after the sender summed it (on the wire, before
 * the receiving NIC computes CHECKSUM_COMPLETE).
 */
static struct sk_buff *build_seg_c(struct kunit *test, u8 pf, int summed, bool corrupt)
{
	unsigned int nh = nhlen(pf), len = nh + TCPHDR + PAY_LIN + PAY_FRAG;
	struct sk_buff *skb = alloc_skb(128 + nh + TCPHDR + PAY_LIN, GFP_KERNEL);
	struct page *page = alloc_page(GFP_KERNEL);
	struct tcphdr *th;

	KUNIT_ASSERT_TRUE(test, skb && page);
	skb_reserve(skb, 128);
	skb_put(skb, nh + TCPHDR + PAY_LIN);
	fill_hdrs(skb, pf, len);
	th = tcp_hdr(skb);
	get_random_bytes((u8 *)th + TCPHDR, PAY_LIN);
	get_random_bytes(page_address(page), PAGE_SIZE);
	skb_add_rx_frag(skb, 0, page, 50, PAY_FRAG, PAGE_SIZE);

	th->check = 0;
	th->check = tcp_full_csum(skb, pf);
	if (corrupt)
		*((u8 *)page_address(page) + 50 + 77) ^= 0x10;
	KUNIT_ASSERT_EQ(test, (int)skb->len, (int)len);
	switch (summed) {
	case CHECKSUM_COMPLETE:
		/* What a NIC gives: the sum of everything from the network header. */
		skb->csum = skb_checksum(skb, 0, skb->len, 0);
		break;
	case CHECKSUM_PARTIAL:
		/* What the TCP stack sends: pseudo header only, the rest to the device. */
		qotp_csum_partial(skb, nh, pf);
		break;
	}
	skb->ip_summed = summed;
	return skb;
}

static struct sk_buff *build_seg(struct kunit *test, u8 pf, int summed)
{
	return build_seg_c(test, pf, summed, false);
}

static const int summed_states[] = {
	CHECKSUM_NONE, CHECKSUM_UNNECESSARY, CHECKSUM_COMPLETE, CHECKSUM_PARTIAL,
};
static const char *const summed_name[] = { "NONE", "UNNECESSARY", "COMPLETE", "PARTIAL" };

static void csum_after_encrypt(struct kunit *test, u8 pf)
{
	unsigned int i, nh = nhlen(pf);

	for (i = 0; i < ARRAY_SIZE(summed_states); i++) {
		struct qotp_desc d = { .n = 1, .run = { { 0xfffffff0, 42, 17 } } };
		unsigned int plen = PAY_LIN + PAY_FRAG;
		u8 opt[QOTP_OPT_SPACE], *key;
		struct qotp_kpiece pc;
		struct sk_buff *skb;
		unsigned int cut;
		int olen;

		kunit_info(test, "%s, ip_summed %s", pf == NFPROTO_IPV4 ? "IPv4" : "IPv6",
			   summed_name[i]);
		skb = build_seg(test, pf, summed_states[i]);
		KUNIT_EXPECT_TRUE(test, qotp_csum_ok(skb, NF_INET_PRE_ROUTING, nh, pf));

		olen = qotp_desc_encode(&d, opt, sizeof(opt));
		KUNIT_ASSERT_EQ(test, olen, 20);
		KUNIT_ASSERT_EQ(test, qotp_tcp_add_opt(skb, nh, opt, olen, pf, &cut), olen);
		KUNIT_EXPECT_EQ(test, cut, 0U);
		key = kunit_kmalloc(test, plen, GFP_KERNEL);
		get_random_bytes(key, plen);
		pc = (struct qotp_kpiece){ key, plen };
		KUNIT_ASSERT_EQ(test, qotp_xor_skb(skb, nh + TCPHDR + olen, plen, &pc, 1), 0);
		qotp_csum_partial(skb, nh, pf);

		/* The output path (device or software) finishes the sum ... */
		KUNIT_ASSERT_EQ(test, (int)skb->ip_summed, CHECKSUM_PARTIAL);
		KUNIT_ASSERT_EQ(test, skb_checksum_help(skb), 0);
		/* ... and the result verifies in full, as the receiver will check it. */
		KUNIT_EXPECT_EQ(test, (u16)tcp_full_csum(skb, pf), 0);
		if (pf == NFPROTO_IPV4) {
			KUNIT_EXPECT_EQ(test, (u16)ip_fast_csum(ip_hdr(skb), 5), 0);
			KUNIT_EXPECT_EQ(test, ntohs(ip_hdr(skb)->tot_len), skb->len);
		} else {
			KUNIT_EXPECT_EQ(test, ntohs(ipv6_hdr(skb)->payload_len) + nh, skb->len);
		}
		/* And a receiver that trusts CHECKSUM_NONE/COMPLETE would accept it. */
		skb->ip_summed = CHECKSUM_NONE;
		KUNIT_EXPECT_TRUE(test, qotp_csum_ok(skb, NF_INET_FORWARD, nh, pf));
		kfree_skb(skb);
	}
}

static void csum_v4(struct kunit *test)
{
	csum_after_encrypt(test, NFPROTO_IPV4);
}

static void csum_v6(struct kunit *test)
{
	csum_after_encrypt(test, NFPROTO_IPV6);
}

/* Corruption on arrival is caught where it can be (NONE, COMPLETE), not laundered. */
static void csum_corrupt_refused(struct kunit *test)
{
	static const u8 pfs[] = { NFPROTO_IPV4, NFPROTO_IPV6 };
	static const int states[] = { CHECKSUM_NONE, CHECKSUM_COMPLETE };
	unsigned int i, j;

	for (i = 0; i < ARRAY_SIZE(pfs); i++)
		for (j = 0; j < ARRAY_SIZE(states); j++) {
			struct sk_buff *skb = build_seg_c(test, pfs[i], states[j], true);
			unsigned int nh = nhlen(pfs[i]);

			KUNIT_EXPECT_FALSE(test, qotp_csum_ok(skb, NF_INET_PRE_ROUTING, nh, pfs[i]));
			kfree_skb(skb);

			/* A header changed after the sum (for COMPLETE: after the NIC's too,
			 * which only a full verification notices, as in FORWARD). */
			skb = build_seg(test, pfs[i], states[j]);
			tcp_hdr(skb)->seq ^= htonl(1);
			KUNIT_EXPECT_FALSE(test, qotp_csum_ok(skb, NF_INET_FORWARD, nh, pfs[i]));
			kfree_skb(skb);
			skb = build_seg(test, pfs[i], states[j]);
			KUNIT_EXPECT_TRUE(test, qotp_csum_ok(skb, NF_INET_PRE_ROUTING, nh, pfs[i]));
			kfree_skb(skb);
		}
}

static void add_opt_layout(struct kunit *test)
{
	struct sk_buff *skb = build_seg(test, NFPROTO_IPV4, CHECKSUM_NONE);
	u8 before[20 + TCPHDR + PAY_LIN], opt[40];
	unsigned int nh = 20, cut;
	int i;

	memcpy(before, skb->data, sizeof(before));
	for (i = 0; i < 28; i++)
		opt[i] = i + 1;
	KUNIT_ASSERT_EQ(test, qotp_tcp_add_opt(skb, nh, opt, 28, NFPROTO_IPV4, &cut), 28);
	KUNIT_EXPECT_EQ(test, (int)tcp_hdr(skb)->doff, (TCPHDR + 28) / 4);
	KUNIT_EXPECT_PTR_EQ(test, (u8 *)ip_hdr(skb), skb->data);
	KUNIT_EXPECT_PTR_EQ(test, (u8 *)tcp_hdr(skb), skb->data + nh);
	/* Old TCP header and options first, then ours, then the untouched payload. */
	KUNIT_EXPECT_MEMEQ(test, skb->data + nh, before + nh, 12);
	KUNIT_EXPECT_MEMEQ(test, skb->data + nh + 13, before + nh + 13, TCPHDR - 13);
	KUNIT_EXPECT_MEMEQ(test, skb->data + nh + TCPHDR, opt, 28);
	KUNIT_EXPECT_MEMEQ(test, skb->data + nh + TCPHDR + 28, before + nh + TCPHDR, PAY_LIN);
	KUNIT_EXPECT_EQ(test, (u16)ip_fast_csum(ip_hdr(skb), 5), 0);
	/* 32 + 28 = 60 bytes of TCP header: the most there is. Nothing more fits (and
	 * these test bytes are no option list that could be rebuilt). */
	KUNIT_EXPECT_EQ(test, qotp_tcp_add_opt(skb, nh, opt, 4, NFPROTO_IPV4, &cut), -E2BIG);
	kfree_skb(skb);
}

/* An IPv4 segment whose TCP options are @o (a multiple of 4 bytes), 100 payload bytes. */
static struct sk_buff *seg_with_opts(struct kunit *test, const u8 *o, unsigned int olen)
{
	unsigned int len = 20 + sizeof(struct tcphdr) + olen + 100;
	struct sk_buff *skb = alloc_skb(128 + len, GFP_KERNEL);
	struct iphdr *iph;
	struct tcphdr *th;

	KUNIT_ASSERT_NOT_NULL(test, skb);
	skb_reserve(skb, 128);
	iph = skb_put_zero(skb, 20);
	skb_reset_network_header(skb);
	iph->version = 4;
	iph->ihl = 5;
	iph->ttl = 64;
	iph->protocol = IPPROTO_TCP;
	iph->tot_len = htons(len);
	ip_send_check(iph);
	th = skb_put_zero(skb, sizeof(*th) + olen);
	skb_set_transport_header(skb, 20);
	th->doff = (sizeof(*th) + olen) / 4;
	th->ack = 1;
	memcpy(th + 1, o, olen);
	get_random_bytes(skb_put(skb, 100), 100);
	return skb;
}

/* The option of @kind in @th's option list, or NULL. */
static const u8 *find_opt(const struct tcphdr *th, u8 kind)
{
	const u8 *o = (const u8 *)(th + 1);
	unsigned int len = th->doff * 4 - sizeof(*th), i = 0;

	while (i < len && o[i] != TCPOPT_EOL) {
		if (o[i] == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (len - i < 2 || o[i + 1] < 2 || o[i + 1] > len - i)
			return NULL;
		if (o[i] == kind)
			return o + i;
		i += o[i + 1];
	}
	return NULL;
}

#define TS_OPT		TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, 10, 1, 2, 3, 4, 5, 6, 7, 8
#define SACK_BLK(x)	0, 0, 0, (x), 0, 0, 1, (x)

/*
 * Timestamps and SACK blocks leave no room for the descriptor: the options are rebuilt
 * without NOPs, keeping timestamps and as many SACK blocks, the first ones, as fit.
 * Each case: the old options, the descriptor's runs, then what must come out.
 */
static void add_opt_sack_room(struct kunit *test)
{
	static const u8 ts_sack3[] = { TS_OPT, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 26,
				       SACK_BLK(1), SACK_BLK(2), SACK_BLK(3) };
	static const u8 sack4[] = { TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 34, SACK_BLK(1),
				    SACK_BLK(2), SACK_BLK(3), SACK_BLK(4) };
	static const u8 ts_sack1[] = { TS_OPT, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 10,
				       SACK_BLK(1) };
	static const u8 broken[] = { TS_OPT, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 11,
				     SACK_BLK(1), 0, 0, 0, 0 };
	static const u8 big[] = { TS_OPT, 30, 24, [14 ... 35] = 0 };
	static const struct {
		const char *name;
		const u8 *o;
		unsigned int olen, runs;
		int grow;		/* or -E2BIG */
		unsigned int cut, sack_left;
		bool ts;
	} cases[] = {
		{ "ts + 3 sack blocks, 1 run", ts_sack3, sizeof(ts_sack3), 1, 0, 2, 1, true },
		{ "4 sack blocks, 1 run", sack4, sizeof(sack4), 1, 4, 2, 2, false },
		{ "ts + 1 sack block, 2 runs", ts_sack1, sizeof(ts_sack1), 2, 12, 1, 0, true },
		{ "ts + 1 sack block, 1 run: NOPs go, the block stays", ts_sack1,
		  sizeof(ts_sack1), 1, 16, 0, 1, true },
		{ "broken option list", broken, sizeof(broken), 1, -E2BIG, 0, 0, true },
		{ "ts + a 24-byte option", big, sizeof(big), 1, -E2BIG, 0, 0, true },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct qotp_desc d = { .n = cases[i].runs,
				       .run = { { 1000, 7, 5 }, { 1100, 8, 0 } } }, got;
		struct sk_buff *skb = seg_with_opts(test, cases[i].o, cases[i].olen);
		u8 opt[QOTP_OPT_SPACE], pay[100];
		const struct tcphdr *th;
		const u8 *o;
		unsigned int cut;
		int olen, grow;

		kunit_info(test, "%s", cases[i].name);
		memcpy(pay, skb_tail_pointer(skb) - 100, 100);
		olen = qotp_desc_encode(&d, opt, sizeof(opt));
		KUNIT_ASSERT_GT(test, olen, 0);
		grow = qotp_tcp_add_opt(skb, 20, opt, olen, NFPROTO_IPV4, &cut);
		KUNIT_EXPECT_EQ(test, grow, cases[i].grow);
		if (grow < 0) {
			kfree_skb(skb);
			continue;
		}
		KUNIT_EXPECT_EQ(test, cut, cases[i].cut);
		th = tcp_hdr(skb);
		KUNIT_EXPECT_EQ(test, th->doff * 4u, sizeof(*th) + cases[i].olen + grow);
		KUNIT_EXPECT_LE(test, th->doff * 4u, 60u);
		KUNIT_EXPECT_EQ(test, ntohs(ip_hdr(skb)->tot_len), skb->len);
		KUNIT_EXPECT_EQ(test, (u16)ip_fast_csum(ip_hdr(skb), 5), 0);
		KUNIT_EXPECT_MEMEQ(test, (u8 *)th + th->doff * 4, pay, 100);
		KUNIT_ASSERT_EQ(test, qotp_desc_parse((const u8 *)(th + 1),
						      th->doff * 4 - sizeof(*th), &got), 0);
		KUNIT_EXPECT_EQ(test, got.n, d.n);
		KUNIT_EXPECT_EQ(test, got.run[0].blk, 7ULL);
		o = find_opt(th, TCPOPT_TIMESTAMP);
		KUNIT_EXPECT_EQ(test, !!o, cases[i].ts);
		if (o && cases[i].ts)
			KUNIT_EXPECT_MEMEQ(test, o, cases[i].o + 2, 10);
		o = find_opt(th, TCPOPT_SACK);
		if (!cases[i].sack_left) {
			KUNIT_EXPECT_NULL(test, o);
		} else {
			KUNIT_ASSERT_NOT_NULL(test, o);
			KUNIT_EXPECT_EQ(test, o[1], 2 + 8 * cases[i].sack_left);
			/* The first blocks, in order. */
			KUNIT_EXPECT_EQ(test, o[5], 1);
			if (cases[i].sack_left > 1)
				KUNIT_EXPECT_EQ(test, o[13], 2);
		}
		kfree_skb(skb);
	}
}

/*
 * Cutting a segment's payload (a 3-run retransmission cut to two runs; a stale one cut
 * to a pure ACK): every length into the head and into the page frag, v4 and v6, with a
 * clone holding the original, which must not change.
 */
static void trim_payload(struct kunit *test)
{
	static const u8 pfs[] = { NFPROTO_IPV4, NFPROTO_IPV6 };
	static const unsigned int keeps[] = { 0, 1, PAY_LIN, PAY_LIN + 1, PAY_LIN + PAY_FRAG - 1,
					      PAY_LIN + PAY_FRAG };
	unsigned int i, j;

	for (i = 0; i < ARRAY_SIZE(pfs); i++)
		for (j = 0; j < ARRAY_SIZE(keeps); j++) {
			u8 pf = pfs[i];
			unsigned int nh = nhlen(pf), keep = keeps[j], full;
			struct sk_buff *skb = build_seg(test, pf, CHECKSUM_NONE), *orig;
			u8 *before;

			tcp_hdr(skb)->fin = 1;
			tcp_hdr(skb)->psh = 1;
			full = skb->len;
			before = kunit_kmalloc(test, full, GFP_KERNEL);
			KUNIT_ASSERT_NOT_NULL(test, before);
			KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, 0, before, full), 0);
			orig = skb_clone(skb, GFP_KERNEL);
			KUNIT_ASSERT_NOT_NULL(test, orig);

			KUNIT_ASSERT_EQ(test, qotp_trim_payload(skb, nh, nh + TCPHDR, pf, keep), 0);
			KUNIT_EXPECT_EQ(test, skb->len, nh + TCPHDR + keep);
			KUNIT_EXPECT_EQ(test, (int)tcp_hdr(skb)->fin, 0);
			KUNIT_EXPECT_EQ(test, (int)tcp_hdr(skb)->psh, keep ? 1 : 0);
			if (pf == NFPROTO_IPV4) {
				KUNIT_EXPECT_EQ(test, ntohs(ip_hdr(skb)->tot_len), skb->len);
				KUNIT_EXPECT_EQ(test, (u16)ip_fast_csum(ip_hdr(skb), 5), 0);
			} else {
				KUNIT_EXPECT_EQ(test, ntohs(ipv6_hdr(skb)->payload_len) + nh,
						skb->len);
			}
			/* The payload kept is the original's first bytes ... */
			if (keep) {
				u8 *got = kunit_kmalloc(test, keep, GFP_KERNEL);

				KUNIT_ASSERT_NOT_NULL(test, got);
				KUNIT_ASSERT_EQ(test, skb_copy_bits(skb, nh + TCPHDR, got, keep), 0);
				KUNIT_EXPECT_MEMEQ(test, got, before + nh + TCPHDR, keep);
			}
			/* ... the sum over what is left verifies once recomputed ... */
			qotp_csum_partial(skb, nh, pf);
			KUNIT_ASSERT_EQ(test, skb_checksum_help(skb), 0);
			KUNIT_EXPECT_EQ(test, (u16)tcp_full_csum(skb, pf), 0);
			/* ... and the clone (a retransmit queue's copy) is untouched. */
			KUNIT_EXPECT_EQ(test, orig->len, full);
			{
				u8 *o = kunit_kmalloc(test, full, GFP_KERNEL);

				KUNIT_ASSERT_NOT_NULL(test, o);
				KUNIT_ASSERT_EQ(test, skb_copy_bits(orig, 0, o, full), 0);
				KUNIT_EXPECT_MEMEQ(test, o, before, full);
			}
			kfree_skb(orig);
			kfree_skb(skb);
		}
}

#define GSO_MSS		1000
#define GSO_FRAG	4000
#define GSO_PAGES	2
#define GSO_LEN		(GSO_FRAG * GSO_PAGES)

/*
 * A TCP GSO packet as the stack sends it (headers linear, CHECKSUM_PARTIAL, payload of
 * GSO_LEN bytes in page frags, copied to @pay), GSO_MSS bytes a segment.
 */
static struct sk_buff *build_gso(struct kunit *test, u8 pf, u8 *pay)
{
	unsigned int nh = nhlen(pf), i;
	struct sk_buff *skb = alloc_skb(128 + nh + TCPHDR, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, skb);
	skb_reserve(skb, 128);
	skb_put(skb, nh + TCPHDR);
	for (i = 0; i < GSO_PAGES; i++) {
		struct page *page = alloc_page(GFP_KERNEL);

		KUNIT_ASSERT_NOT_NULL(test, page);
		get_random_bytes(page_address(page), GSO_FRAG);
		memcpy(pay + i * GSO_FRAG, page_address(page), GSO_FRAG);
		skb_add_rx_frag(skb, i, page, 0, GSO_FRAG, PAGE_SIZE);
	}
	fill_hdrs(skb, pf, skb->len);
	skb_shinfo(skb)->gso_size = GSO_MSS;
	skb_shinfo(skb)->gso_type = pf == NFPROTO_IPV4 ? SKB_GSO_TCPV4 : SKB_GSO_TCPV6;
	skb_shinfo(skb)->gso_segs = GSO_LEN / GSO_MSS;
	qotp_csum_partial(skb, nh, pf);
	return skb;
}

/* What CHECKSUM_PARTIAL leaves in a TCP header: the sum of the pseudo header. */
static __sum16 pseudo_csum(struct sk_buff *skb, u8 pf)
{
	unsigned int len = skb->len - nhlen(pf);

	if (pf == NFPROTO_IPV4)
		return ~tcp_v4_check(len, ip_hdr(skb)->saddr, ip_hdr(skb)->daddr, 0);
	return ~tcp_v6_check(len, &ipv6_hdr(skb)->saddr, &ipv6_hdr(skb)->daddr, 0);
}

/*
 * Cutting a GSO packet into pieces (segment_and_send()), v4 and v6, pieces of three
 * segments and of one, on the packet itself and on a clone (veth hands the encryptor the
 * sender's retransmit-queue skb): the pieces carry the payload in order with consecutive
 * sequence numbers, each a GSO packet of whole segments (or a plain segment), IPv4 ids
 * spaced by the segments a piece holds, the pseudo-header checksum of their own length;
 * and a clone's original (head, shared info, payload) is left exactly as it was.
 */
static void gso_cut(struct kunit *test)
{
	static const u8 pfs[] = { NFPROTO_IPV4, NFPROTO_IPV6 };
	static const u32 chunks[] = { 3 * GSO_MSS, GSO_MSS };
	u8 *pay = kunit_kmalloc(test, GSO_LEN, GFP_KERNEL);
	u8 *got = kunit_kmalloc(test, GSO_LEN, GFP_KERNEL);
	unsigned int i, j, cloned;

	KUNIT_ASSERT_TRUE(test, pay && got);
	for (i = 0; i < ARRAY_SIZE(pfs); i++)
		for (j = 0; j < ARRAY_SIZE(chunks); j++)
			for (cloned = 0; cloned < 2; cloned++) {
				u8 pf = pfs[i], head[sizeof(struct ipv6hdr) + TCPHDR];
				unsigned int nh = nhlen(pf), hdr = nh + TCPHDR, off = 0, n = 0;
				u32 chunk = chunks[j], per = chunk / GSO_MSS, seq0;
				struct sk_buff *skb = build_gso(test, pf, pay), *orig = NULL;
				struct sk_buff *segs, *seg, *next;
				u16 id0 = 0;

				kunit_info(test, "%s, pieces of %u segments%s",
					   pf == NFPROTO_IPV4 ? "IPv4" : "IPv6", per,
					   cloned ? ", through a clone" : "");
				memcpy(head, skb->data, hdr);
				seq0 = ntohl(tcp_hdr(skb)->seq);
				if (pf == NFPROTO_IPV4)
					id0 = ntohs(ip_hdr(skb)->id);
				if (cloned) {
					orig = skb;
					skb = skb_clone(orig, GFP_KERNEL);
					KUNIT_ASSERT_NOT_NULL(test, skb);
				}
				segs = qotp_gso_cut(skb, nh, pf, chunk);
				KUNIT_ASSERT_NOT_NULL(test, segs);
				skb_list_walk_safe(segs, seg, next) {
					unsigned int plen = seg->len - hdr;
					const struct tcphdr *th = tcp_hdr(seg);

					skb_mark_not_on_list(seg);
					KUNIT_EXPECT_EQ(test, plen, min_t(u32, chunk, GSO_LEN - off));
					KUNIT_EXPECT_EQ(test, ntohl(th->seq), seq0 + off);
					KUNIT_EXPECT_EQ(test, (int)seg->ip_summed, CHECKSUM_PARTIAL);
					KUNIT_EXPECT_EQ(test, skb_checksum_start_offset(seg), (int)nh);
					if (pf == NFPROTO_IPV4) {
						const struct iphdr *iph = ip_hdr(seg);

						KUNIT_EXPECT_EQ(test, ntohs(iph->tot_len), seg->len);
						KUNIT_EXPECT_EQ(test, (u16)ip_fast_csum(iph, 5), 0);
						KUNIT_EXPECT_EQ(test, ntohs(iph->id), (u16)(id0 + n * per));
					} else {
						const struct ipv6hdr *ip6h = ipv6_hdr(seg);

						KUNIT_EXPECT_EQ(test, ntohs(ip6h->payload_len) + nh,
								seg->len);
					}
					KUNIT_EXPECT_EQ(test, (__force u16)th->check,
							(__force u16)pseudo_csum(seg, pf));
					if (plen > GSO_MSS) {
						KUNIT_EXPECT_EQ(test, skb_shinfo(seg)->gso_size, GSO_MSS);
						KUNIT_EXPECT_EQ(test, (unsigned int)skb_shinfo(seg)->gso_segs,
								plen / GSO_MSS);
						KUNIT_EXPECT_TRUE(test, skb_shinfo(seg)->gso_type &
							(SKB_GSO_TCPV4 | SKB_GSO_TCPV6));
					} else {
						KUNIT_EXPECT_FALSE(test, skb_is_gso(seg));
					}
					if (plen <= GSO_LEN - off)
						KUNIT_EXPECT_EQ(test, skb_copy_bits(seg, hdr, got + off,
										    plen), 0);
					off += plen;
					n++;
					kfree_skb(seg);
				}
				KUNIT_EXPECT_EQ(test, off, GSO_LEN);
				KUNIT_EXPECT_EQ(test, n, DIV_ROUND_UP(GSO_LEN, chunk));
				if (off == GSO_LEN)
					KUNIT_EXPECT_MEMEQ(test, got, pay, GSO_LEN);
				if (!orig)
					continue;
				KUNIT_EXPECT_MEMEQ(test, orig->data, head, hdr);
				KUNIT_EXPECT_EQ(test, orig->len, hdr + GSO_LEN);
				KUNIT_EXPECT_EQ(test, skb_shinfo(orig)->gso_size, GSO_MSS);
				KUNIT_EXPECT_EQ(test, (unsigned int)skb_shinfo(orig)->gso_segs,
						GSO_LEN / GSO_MSS);
				KUNIT_EXPECT_EQ(test, skb_copy_bits(orig, hdr, got, GSO_LEN), 0);
				KUNIT_EXPECT_MEMEQ(test, got, pay, GSO_LEN);
				kfree_skb(orig);
			}
}

static void clamp_mss(struct kunit *test)
{
	struct sk_buff *skb = alloc_skb(64, GFP_KERNEL);
	static const u8 syn_opts[] = { TCPOPT_MSS, 4, 0x05, 0xb4, TCPOPT_SACK_PERM, 2,
				       TCPOPT_TIMESTAMP, 10, 0, 0, 0, 1, 0, 0, 0, 0,
				       TCPOPT_NOP, TCPOPT_WINDOW, 3, 7 };
	struct tcphdr *th;
	u8 *o;

	KUNIT_ASSERT_NOT_NULL(test, skb);
	th = skb_put_zero(skb, sizeof(*th) + sizeof(syn_opts));
	th->doff = (sizeof(*th) + sizeof(syn_opts)) / 4;
	th->syn = 1;
	o = (u8 *)(th + 1);
	memcpy(o, syn_opts, sizeof(syn_opts));
	KUNIT_EXPECT_TRUE(test, qotp_tcp_clamp_mss(skb, 0));
	KUNIT_EXPECT_EQ(test, get_unaligned_be16(o + 2), 1460 - QOTP_OPT_SPACE);
	KUNIT_EXPECT_MEMEQ(test, o + 4, syn_opts + 4, sizeof(syn_opts) - 4);
	/* Never below what every TCP must accept, minus our option. */
	put_unaligned_be16(520, o + 2);
	KUNIT_EXPECT_TRUE(test, qotp_tcp_clamp_mss(skb, 0));
	KUNIT_EXPECT_EQ(test, get_unaligned_be16(o + 2), 536 - QOTP_OPT_SPACE);
	KUNIT_EXPECT_FALSE(test, qotp_tcp_clamp_mss(skb, 0));
	/* No MSS option: nothing to do. */
	o[0] = TCPOPT_NOP;
	o[1] = TCPOPT_NOP;
	o[2] = TCPOPT_NOP;
	o[3] = TCPOPT_NOP;
	KUNIT_EXPECT_FALSE(test, qotp_tcp_clamp_mss(skb, 0));
	kfree_skb(skb);
}

/*
 * Segments counted in a GSO packet whose gso_segs is 0 (virtio-net's receive path leaves
 * it so): from its payload and gso_size, as net core would; a set gso_segs as it is.
 */
static void gso_segs_counted(struct kunit *test)
{
	struct sk_buff *skb = build_seg(test, NFPROTO_IPV4, CHECKSUM_PARTIAL);
	unsigned int plen = PAY_LIN + PAY_FRAG;

	KUNIT_EXPECT_EQ(test, qotp_gso_segs(skb, plen), 1U);	/* no GSO packet */
	skb_shinfo(skb)->gso_type = SKB_GSO_TCPV4;
	skb_shinfo(skb)->gso_size = 300;
	skb_shinfo(skb)->gso_segs = 0;
	KUNIT_EXPECT_EQ(test, qotp_gso_segs(skb, plen), DIV_ROUND_UP(plen, 300));
	skb_shinfo(skb)->gso_size = plen;
	KUNIT_EXPECT_EQ(test, qotp_gso_segs(skb, plen), 1U);
	skb_shinfo(skb)->gso_size = 300;
	skb_shinfo(skb)->gso_segs = 3;
	KUNIT_EXPECT_EQ(test, qotp_gso_segs(skb, plen), 3U);
	kfree_skb(skb);
}

static struct kunit_case csum_cases[] = {
	KUNIT_CASE(gso_segs_counted),
	KUNIT_CASE(csum_v4),
	KUNIT_CASE(csum_v6),
	KUNIT_CASE(csum_corrupt_refused),
	KUNIT_CASE(add_opt_layout),
	KUNIT_CASE(add_opt_sack_room),
	KUNIT_CASE(trim_payload),
	KUNIT_CASE(clamp_mss),
	KUNIT_CASE(gso_cut),
	{}
};

static struct kunit_suite csum_suite = {
	.name = "qotp_csum",
	.test_cases = csum_cases,
};
kunit_test_suite(csum_suite);
