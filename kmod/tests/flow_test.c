// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of per-flow key accounting (flow.c) against real key rings: the key of a
 * byte depends on its sequence number only (retransmission with other boundaries, across
 * the 2^32 wrap), descriptors name at most two runs, key is released exactly once when the
 * bytes are acknowledged (encrypt and decrypt side), starvation keeps what was reserved.
 * The decryptor refuses forged strides (a bad descriptor, never a wrong key).
 * The flow is used bare (no table); its peer is a stub holding the rings and counters.
 */
#include "dp_test.h"
#include <linux/slab.h>
#include <linux/percpu.h>
#include <linux/ip.h>
#include <net/tcp.h>

#include "../qotp.h"
#include "../keyring.h"
#include "../netlink.h"
#include "../flow.h"
#include "../hooks.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define BLK	4096

struct fctx {
	struct qotp_evq evq;
	struct qotp_peer peer;
	struct qotp_flow f;
	u64 next_id;
};

static u8 pattern(u64 id, u32 off)
{
	return (u8)(id * 131 + off * 7 + 1);
}

static void push_len(struct kunit *test, struct fctx *c, enum qotp_dir dir, unsigned int n,
		     u32 len)
{
	u8 *data = kunit_kmalloc(test, len, GFP_KERNEL);
	unsigned int i;
	u32 j;

	for (i = 0; i < n; i++) {
		struct qotp_push_blk b = { .id = c->next_id, .data = data, .len = len };

		for (j = 0; j < len; j++)
			data[j] = pattern(b.id, j);
		KUNIT_ASSERT_EQ(test, qotp_ring_push(c->peer.ring[dir], &b, 1, 1ULL << 30), 0);
		c->next_id++;
	}
}

static void push(struct kunit *test, struct fctx *c, enum qotp_dir dir, unsigned int n)
{
	push_len(test, c, dir, n, BLK);
}

static struct fctx *fctx_new(struct kunit *test)
{
	struct fctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	qotp_evq_init(&c->evq, NULL);
	c->peer.stats = alloc_percpu(struct qotp_peer_stats);
	KUNIT_ASSERT_NOT_NULL(test, c->peer.stats);
	c->peer.ring[QOTP_DIR_ENCRYPT] = qotp_ring_create(&c->evq, 2, QOTP_DIR_ENCRYPT);
	c->peer.ring[QOTP_DIR_DECRYPT] = qotp_ring_create(&c->evq, 2, QOTP_DIR_DECRYPT);
	KUNIT_ASSERT_TRUE(test, c->peer.ring[0] && c->peer.ring[1]);
	c->f.peer = &c->peer;
	spin_lock_init(&c->f.lock);
	INIT_LIST_HEAD(&c->f.enc.spans);
	INIT_LIST_HEAD(&c->f.dec.runs);
	c->next_id = 1;
	return c;
}

static void fctx_done(struct fctx *c)
{
	struct qotp_span *s, *ts;
	struct qotp_drun *r, *tr;

	list_for_each_entry_safe(s, ts, &c->f.enc.spans, node) {
		qotp_key_ref_put(&s->ref);
		kfree(s);
	}
	list_for_each_entry_safe(r, tr, &c->f.dec.runs, node)
		kfree(r);
	qotp_ring_destroy(c->peer.ring[0]);
	qotp_ring_destroy(c->peer.ring[1]);
	free_percpu(c->peer.stats);
	qotp_evq_exit(&c->evq);
}

static u64 consumed(struct fctx *c, enum qotp_dir dir)
{
	struct qotp_ring_info info;

	qotp_ring_info(c->peer.ring[dir], &info);
	return info.consumed;
}

/* The key bytes named by a descriptor for [seq, seq + len), as the decryptor finds them
 * (the pattern of the blocks pushed, whatever their lengths). */
static void desc_key(const struct qotp_desc *d, u32 seq, u32 len, u8 *out)
{
	u32 i, off;
	u64 blk;

	for (i = 0; i < len; i++) {
		qotp_run_pos(&d->run[qotp_desc_pick(d, seq + i)], d->stride, seq + i, &blk, &off);
		out[i] = pattern(blk, off);
	}
}

/* The key pieces laid end to end. */
static void pieces_key(const struct qotp_kpiece *pc, unsigned int np, u8 *out)
{
	unsigned int i;

	for (i = 0; i < np; i++) {
		memcpy(out, pc[i].key, pc[i].len);
		out += pc[i].len;
	}
}

static u32 pieces_len(const struct qotp_kpiece *pc, unsigned int np)
{
	u32 n = 0;

	while (np--)
		n += pc[np].len;
	return n;
}

/* Same bytes, same key: first pass in MSS segments across the 2^32 wrap, retransmitted
 * in other cuts; pieces and descriptors agree with each other and with the first pass. */
static void flow_same_bytes_same_key(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	const u32 isn = 0xffffd000, total = 30000;
	u8 *first = kunit_kmalloc(test, total, GFP_KERNEL), *k = kunit_kmalloc(test, 65536, GFP_KERNEL);
	static const u32 cuts[] = { 1448, 1000, 4096, 7, 3000, 30000, 12345 };
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	unsigned int ci, np;
	u32 off, n, i;

	push(test, c, QOTP_DIR_ENCRYPT, 10);
	spin_lock_bh(&c->f.lock);
	for (off = 0; off < total; off += n) {
		n = min(1448U, total - off);
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], isn + off, n, &d,
							pc, &np), 0);
		KUNIT_ASSERT_LE(test, d.n, 2U);
		KUNIT_EXPECT_EQ(test, d.run[0].seq, isn + off);
		KUNIT_ASSERT_EQ(test, pieces_len(pc, np), n);
		pieces_key(pc, np, first + off);
		desc_key(&d, isn + off, n, k);
		KUNIT_ASSERT_MEMEQ(test, k, first + off, n);
	}
	/* One flow alone: the key is the ring in order, no byte skipped. */
	for (i = 0; i < total; i++)
		KUNIT_ASSERT_EQ(test, first[i], pattern(1 + i / BLK, i % BLK));
	for (ci = 0; ci < ARRAY_SIZE(cuts); ci++)
		for (off = 0; off < total; off += n) {
			n = min(cuts[ci], total - off);
			KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], isn + off, n,
								&d, pc, &np), 0);
			/* One flow alone: every run goes on through the blocks. */
			KUNIT_EXPECT_EQ(test, d.n, 1U);
			desc_key(&d, isn + off, n, k);
			KUNIT_ASSERT_MEMEQ(test, k, first + off, n);
			pieces_key(pc, np, k);
			KUNIT_ASSERT_MEMEQ(test, k, first + off, n);
		}
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/* Key is released when the peer acknowledges whole spans, each byte once. */
static void flow_release_after_ack(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	const u32 isn = 0xfffffa00;
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	unsigned int np;
	u32 off;

	push(test, c, QOTP_DIR_ENCRYPT, 4);
	spin_lock_bh(&c->f.lock);
	for (off = 0; off < 10000; off += 1000)
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], isn + off, 1000, &d, pc,
							&np), 0);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_ENCRYPT), 0ULL);
	qotp_flow_enc_ack(&c->f, c->peer.ring[0], isn + 2500);	/* covers spans 1, 2 */
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_ENCRYPT), 2000ULL);
	qotp_flow_enc_ack(&c->f, c->peer.ring[0], isn + 2500);	/* duplicate ACK */
	qotp_flow_enc_ack(&c->f, c->peer.ring[0], isn + 2000);	/* old ACK */
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_ENCRYPT), 2000ULL);
	qotp_flow_enc_ack(&c->f, c->peer.ring[0], isn + 50000);	/* beyond what was sent */
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_ENCRYPT), 2000ULL);
	/* Bytes whose key is gone cannot be sent again. */
	KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], isn + 1000, 10, &d, pc,
						&np), -ESTALE);
	qotp_flow_enc_ack(&c->f, c->peer.ring[0], isn + 10001);	/* all, and the FIN */
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_ENCRYPT), 10000ULL);
	KUNIT_EXPECT_EQ(test, c->f.enc.nspans, 0U);
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/* Decrypt side: runs learnt from descriptors, key released for [rel, ack) exactly once. */
static void flow_dec_release(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	const u32 isn = 0xfffff000;
	struct qotp_desc d;
	u32 off;

	push(test, c, QOTP_DIR_DECRYPT, 3);
	spin_lock_bh(&c->f.lock);
	c->f.dec.rel = isn;
	c->f.dec.rel_valid = true;
	/* 3 blocks of 4096 in stream order, segments of 1000 (some crossing a block). */
	for (off = 0; off < 12000; off += 1000) {
		d.n = 1;
		d.run[0] = (struct qotp_run){ isn + off, 1 + off / BLK, off % BLK };
		if (off / BLK != (off + 999) / BLK) {
			u32 b = (off / BLK + 1) * BLK;

			d.n = 2;
			d.run[1] = (struct qotp_run){ isn + b, 1 + b / BLK, 0 };
		}
		KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, isn + off, isn + off + 1000), 0);
		if (off == 5000)	/* a duplicate, learnt again */
			KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, isn + off, isn + off + 1000), 0);
	}
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 4500);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 4500ULL);
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 4500);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 4500ULL);
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 12000);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 12000ULL);
	/* Block 3 is 288 bytes longer than the stream: not released, still held. */
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(c->peer.ring[1]), (u64)(3 * BLK - 12000));
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/*
 * Decrypt side, state lost (idle GC) while the sender goes on: the new state comes in
 * mid-stream, with no SYN. The key of what it decrypts before its first ACK is released
 * by that ACK and, at flow end, the rest it decrypted; never bytes it did not decrypt
 * (before lo: an earlier state's, released by that state already).
 */
static void flow_dec_midstream(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	const u32 base = 0x7ffffe00;
	struct qotp_desc d = { .n = 1 };

	push(test, c, QOTP_DIR_DECRYPT, 2);
	spin_lock_bh(&c->f.lock);
	/* A GSO packet segmented downstream: its run starts 500 bytes before the first
	 * byte this state sees. Bytes 500..1500 of block 1, then 1500..2500. */
	d.run[0] = (struct qotp_run){ base, 1, 0 };
	KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, base + 500, base + 1500), 0);
	KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, base + 1500, base + 2500), 0);
	/* The first ACK covers the first segment: its key is released, nothing before. */
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], base + 1500);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 1000ULL);
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(c->peer.ring[1]), (u64)(2 * BLK - 1000));
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], base + 2500);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 2000ULL);
	/* More, then the flow ends before the ACK: released at the end, once. */
	d.run[0] = (struct qotp_run){ base + 2500, 1, 2500 };
	KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, base + 2500, base + 3000), 0);
	qotp_flow_dec_release_all(&c->f);
	spin_unlock_bh(&c->f.lock);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 2500ULL);
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(c->peer.ring[1]), (u64)(2 * BLK - 2500));
	fctx_done(c);
}

/* A mid-stream state that ends before any ACK releases exactly what it decrypted. */
static void flow_dec_midstream_no_ack(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	struct qotp_desc d = { .n = 1, .run = { { 1000, 1, 100 } } };

	push(test, c, QOTP_DIR_DECRYPT, 1);
	spin_lock_bh(&c->f.lock);
	KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, 1300, 1800), 0);
	qotp_flow_dec_release_all(&c->f);
	spin_unlock_bh(&c->f.lock);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 500ULL);
	fctx_done(c);
}

static void flow_free_spans(struct qotp_flow *g)
{
	struct qotp_span *s, *ts;

	list_for_each_entry_safe(s, ts, &g->enc.spans, node) {
		qotp_key_ref_put(&s->ref);
		kfree(s);
	}
}

static struct qotp_flow *flow_second(struct kunit *test, struct fctx *c)
{
	struct qotp_flow *g = kunit_kzalloc(test, sizeof(*g), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, g);
	spin_lock_init(&g->lock);
	INIT_LIST_HEAD(&g->enc.spans);
	INIT_LIST_HEAD(&g->dec.runs);
	g->peer = &c->peer;
	return g;
}

/* Two flows interleaving on one ring: a retransmission over three of one flow's runs
 * cannot be described (-E2BIG, with the first two filled in); over two it can. */
static void flow_two_runs_at_most(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	struct qotp_flow *g = flow_second(test, c);
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	unsigned int np;
	u32 i;

	push(test, c, QOTP_DIR_ENCRYPT, 2);
	spin_lock_bh(&c->f.lock);
	for (i = 0; i < 3; i++) {
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 100 * i, 100, &d,
							pc, &np), 0);
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(g, c->peer.ring[0], 5000 + 100 * i, 100,
							&d, pc, &np), 0);
	}
	KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 0, 300, &d, pc, &np),
			-E2BIG);
	/* What the first two runs cover, for hooks.c to cut the segment to. */
	KUNIT_EXPECT_EQ(test, d.n, 2U);
	KUNIT_EXPECT_EQ(test, pieces_len(pc, np), 200U);
	KUNIT_EXPECT_EQ(test, d.run[1].seq, 100U);
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 50, 100, &d, pc, &np), 0);
	KUNIT_EXPECT_EQ(test, d.n, 2U);
	KUNIT_EXPECT_EQ(test, d.stride, 0U);
	KUNIT_EXPECT_EQ(test, d.run[1].seq, 100U);
	KUNIT_EXPECT_EQ(test, d.run[1].off, 200U);	/* f's 2nd span came after g's 1st */
	spin_unlock_bh(&c->f.lock);
	flow_free_spans(g);
	fctx_done(c);
}

/* Starved: what could be reserved stays with the flow; after a push the same bytes get
 * the same key plus the new block, as one run going on into it. */
static void flow_starve_keeps_reservation(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	unsigned int np;
	/* Off the stack: under x86_64 KASAN the frame grew to 3 KiB (-Wframe-larger-than). */
	u8 *k = kunit_kmalloc(test, 1000, GFP_KERNEL);
	u8 *want = kunit_kmalloc(test, 1000, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, k);
	KUNIT_ASSERT_NOT_NULL(test, want);
	push(test, c, QOTP_DIR_ENCRYPT, 1);
	spin_lock_bh(&c->f.lock);
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 0, 4000, &d, pc, &np), 0);
	KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 4000, 1000, &d, pc, &np),
			-ENOKEY);
	KUNIT_EXPECT_EQ(test, c->f.enc.nxt, (u32)BLK);
	spin_unlock_bh(&c->f.lock);
	push(test, c, QOTP_DIR_ENCRYPT, 1);
	spin_lock_bh(&c->f.lock);
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 4000, 1000, &d, pc, &np), 0);
	KUNIT_EXPECT_EQ(test, d.n, 1U);
	KUNIT_EXPECT_EQ(test, d.stride, (u32)BLK);
	KUNIT_EXPECT_EQ(test, d.run[0].blk, 1ULL);
	KUNIT_EXPECT_EQ(test, d.run[0].off, 4000U);
	KUNIT_EXPECT_EQ(test, np, 2U);
	KUNIT_EXPECT_EQ(test, pieces_len(pc, np), 1000U);
	pieces_key(pc, np, k);
	desc_key(&d, 4000, 1000, want);
	KUNIT_EXPECT_MEMEQ(test, k, want, 1000);
	KUNIT_EXPECT_EQ(test, k[96], pattern(2, 0));
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/*
 * Runs go on into the next block only where the reader of the stride gets every byte
 * right: blocks of one length, used to the end, ids one apart. Block lengths 2048, 4096,
 * 4096, 8192, 4096, 4096 (ids 1..6), one flow.
 */
static void flow_stride_mixed_blocks(struct kunit *test)
{
	static const u32 lens[] = { 2048, 4096, 4096, 8192, 4096, 4096 };
	struct fctx *c = fctx_new(test);
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	u8 *k = kunit_kmalloc(test, 32768, GFP_KERNEL), *want = kunit_kmalloc(test, 32768, GFP_KERNEL);
	struct qotp_desc d;
	unsigned int i, np;

	for (i = 0; i < ARRAY_SIZE(lens); i++)
		push_len(test, c, QOTP_DIR_ENCRYPT, 1, lens[i]);
	spin_lock_bh(&c->f.lock);
	/* 2048 in block 1 (shorter than the stride: read right), then 2 and 3 chained. */
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 0, 10240, &d, pc, &np), 0);
	KUNIT_EXPECT_EQ(test, d.n, 2U);
	KUNIT_EXPECT_EQ(test, d.stride, 4096U);
	KUNIT_EXPECT_EQ(test, d.run[1].seq, 2048U);
	KUNIT_EXPECT_EQ(test, d.run[1].blk, 2ULL);
	/* Block 4 (8192) cannot continue block 3: [6144, 22528) is block 3, block 4 and
	 * block 5, three runs. What fits is the first two. */
	KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 6144, 16384, &d, pc, &np),
			-E2BIG);
	KUNIT_EXPECT_EQ(test, d.stride, 0U);
	KUNIT_EXPECT_EQ(test, d.n, 2U);
	KUNIT_EXPECT_EQ(test, pieces_len(pc, np), 4096U + 8192U);
	/* From block 4's offset 4000 on, then 5 and 6: 5 and 6 could be one run with stride
	 * 4096, but block 4's run passes its offset 4096 and would be read as block 5: no
	 * stride then, and three runs. */
	KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 10240 + 4000, 12384, &d,
						pc, &np), -E2BIG);
	KUNIT_EXPECT_EQ(test, d.stride, 0U);
	/* Blocks 5 and 6 alone: one run, stride 4096. */
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 18432, 8192, &d, pc, &np),
			0);
	KUNIT_EXPECT_EQ(test, d.n, 1U);
	KUNIT_EXPECT_EQ(test, d.stride, 4096U);
	for (i = 0; i < 3; i++) {
		static const u32 from[] = { 0, 6144, 18432 }, len[] = { 10240, 16384, 8192 };

		if (qotp_flow_enc_map(&c->f, c->peer.ring[0], from[i], len[i], &d, pc, &np))
			continue;
		pieces_key(pc, np, k);
		desc_key(&d, from[i], len[i], want);
		KUNIT_EXPECT_MEMEQ(test, k, want, len[i]);
	}
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/*
 * A 64 KiB GSO packet over 4 KiB blocks: one flow alone has one run going on through 17
 * blocks, sent whole. Two flows taking turns in the ring break the runs: hooks.c then cuts
 * the packet into pieces of qotp_flow_enc_chunk() bytes, whole segments, and each piece
 * must need at most two runs (whatever the packet's start within a block).
 */
static void flow_gso_chunk_two_runs(struct kunit *test)
{
	const u32 mss = 1448, len = 45 * mss;
	u32 starts[] = { 0, 1000, 4095, 0xffffffff - 20000 };
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	unsigned int t, np;

	for (t = 0; t < ARRAY_SIZE(starts); t++) {
		struct fctx *c = fctx_new(test);
		struct qotp_flow *g = flow_second(test, c);
		u32 seq = starts[t], chunk, pos, n, i;

		push(test, c, QOTP_DIR_ENCRYPT, 40);
		spin_lock_bh(&c->f.lock);
		/* Alone: the whole packet, one run. */
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], seq, len, &d, pc,
							&np), 0);
		KUNIT_EXPECT_EQ(test, d.n, 1U);
		KUNIT_EXPECT_LE(test, np, 17U);
		KUNIT_EXPECT_EQ(test, qotp_flow_enc_chunk(&c->f, seq, len, mss), len / mss * mss);
		/* Then g takes 700 bytes after every 3000 of f's next packet. */
		for (pos = 0, i = 0; pos < len; pos += n, i++) {
			n = min(3000U, len - pos);
			KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], seq + len + pos,
								n, &d, pc, &np), 0);
			KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(g, c->peer.ring[0], 7 + 700 * i, 700,
								&d, pc, &np), 0);
		}
		seq += len;
		KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], seq, len, &d, pc,
							&np), -E2BIG);
		chunk = qotp_flow_enc_chunk(&c->f, seq, len, mss);
		KUNIT_EXPECT_EQ(test, chunk % mss, 0U);
		KUNIT_EXPECT_GE(test, chunk, 2 * mss);
		KUNIT_EXPECT_LT(test, chunk, len);
		for (pos = 0; pos < len; pos += chunk) {
			KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], seq + pos,
								min(chunk, len - pos), &d, pc, &np), 0);
		}
		/* Nothing reserved beyond what was asked for, and no larger piece works. */
		KUNIT_EXPECT_EQ(test, c->f.enc.nxt, seq + len);
		if (chunk + mss < len) {
			bool bad = false;

			for (pos = 0; pos < len; pos += chunk + mss)
				if (qotp_flow_enc_map(&c->f, c->peer.ring[0], seq + pos,
						      min(chunk + mss, len - pos), &d, pc, &np) == -E2BIG)
					bad = true;
			KUNIT_EXPECT_TRUE(test, bad);
		}
		/* One segment, or bytes not reserved: one segment per piece. */
		KUNIT_EXPECT_EQ(test, qotp_flow_enc_chunk(&c->f, seq, mss, mss), mss);
		KUNIT_EXPECT_EQ(test, qotp_flow_enc_chunk(&c->f, seq + len, 3 * mss, mss), mss);
		spin_unlock_bh(&c->f.lock);
		flow_free_spans(g);
		fctx_done(c);
	}
}

/*
 * Key pieces are bounded too: over blocks of 1024 bytes a run going on through them needs
 * one piece per block, so a 64 KiB packet is cut into pieces of at most QOTP_MAX_KPIECES.
 */
static void flow_gso_chunk_pieces(struct kunit *test)
{
	const u32 mss = 1448, len = 45 * mss;
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct fctx *c = fctx_new(test);
	struct qotp_desc d;
	unsigned int np;
	u32 chunk, pos;

	push_len(test, c, QOTP_DIR_ENCRYPT, 70, 1024);
	spin_lock_bh(&c->f.lock);
	KUNIT_ASSERT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], 0, len, &d, pc, &np),
			-E2BIG);
	KUNIT_EXPECT_EQ(test, np, (unsigned int)QOTP_MAX_KPIECES);
	chunk = qotp_flow_enc_chunk(&c->f, 0, len, mss);
	KUNIT_EXPECT_GE(test, chunk, 10 * mss);
	KUNIT_EXPECT_LE(test, chunk, (QOTP_MAX_KPIECES - 1) * 1024U);
	for (pos = 0; pos < len; pos += chunk) {
		KUNIT_EXPECT_EQ(test, qotp_flow_enc_map(&c->f, c->peer.ring[0], pos,
							min(chunk, len - pos), &d, pc, &np), 0);
		KUNIT_EXPECT_EQ(test, d.stride, 1024U);
	}
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

/*
 * Decrypt side with strides: a GSO packet's run through three blocks, decrypted in
 * segments, one of them also sent again as a retransmission whose descriptor stays in one
 * block (a run learnt from the same bytes, shorter). Every byte released once, and the
 * segments' runs are forgotten once acknowledged.
 */
static void flow_dec_release_stride(struct kunit *test)
{
	struct fctx *c = fctx_new(test);
	const u32 isn = 0xffffe000;
	struct qotp_desc d = { .n = 1, .stride = BLK, .run = { { isn, 1, 0 } } };
	struct qotp_desc r = { .n = 1, .run = { { isn + 5000, 2, 904 } } };
	u32 off;

	push(test, c, QOTP_DIR_DECRYPT, 3);
	spin_lock_bh(&c->f.lock);
	c->f.dec.rel = isn;
	c->f.dec.rel_valid = true;
	for (off = 0; off < 12000; off += 1448)
		KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &d, isn + off,
							  isn + min(off + 1448, 12000U)), 0);
	KUNIT_ASSERT_EQ(test, qotp_flow_dec_learn(&c->f, &r, isn + 5000, isn + 6000), 0);
	KUNIT_EXPECT_EQ(test, c->f.dec.nruns, 2U);
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 5500);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 5500ULL);
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 7000);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 7000ULL);
	KUNIT_EXPECT_EQ(test, c->f.dec.nruns, 1U);	/* the retransmission's run is done */
	qotp_flow_dec_ack(&c->f, c->peer.ring[1], isn + 12000);
	KUNIT_EXPECT_EQ(test, consumed(c, QOTP_DIR_DECRYPT), 12000ULL);
	KUNIT_EXPECT_EQ(test, c->f.dec.nruns, 0U);
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(c->peer.ring[1]), (u64)(3 * BLK - 12000));
	spin_unlock_bh(&c->f.lock);
	fctx_done(c);
}

static u64 stat(struct fctx *c, enum qotp_stat s)
{
	u64 n = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		n += per_cpu_ptr(c->peer.stats, cpu)->v[s];
	return n;
}

/* An IPv4 segment from the peer carrying descriptor @d and the @plen bytes @payload. */
static struct sk_buff *peer_seg(struct kunit *test, const struct qotp_desc *d, u32 seq,
				const u8 *payload, u32 plen)
{
	unsigned int hl = sizeof(struct iphdr) + sizeof(struct tcphdr);
	struct sk_buff *skb;
	struct iphdr *iph;
	struct tcphdr *th;
	u8 opt[32];
	int olen;

	olen = qotp_desc_encode(d, opt, sizeof(opt));
	KUNIT_ASSERT_GT(test, olen, 0);
	skb = alloc_skb(hl + olen + plen, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, skb);
	skb_reset_network_header(skb);
	iph = skb_put_zero(skb, sizeof(*iph));
	iph->version = 4;
	iph->ihl = 5;
	iph->ttl = 64;
	iph->protocol = IPPROTO_TCP;
	iph->tot_len = htons(hl + olen + plen);
	iph->saddr = htonl(0x0a000101);
	iph->daddr = htonl(0x0a000201);
	skb_set_transport_header(skb, sizeof(*iph));
	th = skb_put_zero(skb, sizeof(*th));
	th->source = htons(1935);
	th->dest = htons(40000);
	th->seq = htonl(seq);
	th->ack_seq = htonl(1);
	th->ack = 1;
	th->window = htons(1024);
	th->doff = (sizeof(*th) + olen) / 4;
	skb_put_data(skb, opt, olen);
	skb_put_data(skb, payload, plen);
	return skb;
}

/*
 * Forged strides, which no encryptor sends: a run that reaches a block of another length
 * than its stride S (shorter or longer), or more than QOTP_MAX_KPIECES blocks, is dropped
 * as a bad descriptor, never decrypted with whatever key lies there. The same descriptors
 * over blocks of length S, up to QOTP_MAX_KPIECES of them (several XOR batches), decrypt.
 */
static void flow_dec_forged_stride(struct kunit *test)
{
	static const struct {
		const char *what;
		u32 len0, len1, nblk;	/* block 1 of len0 bytes, then nblk - 1 of len1 */
		u32 stride, off, plen;
		bool pass;
	} cases[] = {
		{ "next block shorter", 4096, 2048, 2, 4096, 4000, 200, false },
		{ "next block longer", 2048, 4096, 2, 2048, 2000, 200, false },
		{ "blocks of length S", 4096, 4096, 2, 4096, 4000, 200, true },
		{ "one block too many", 64, 64, QOTP_MAX_KPIECES + 2, 64, 0,
		  (QOTP_MAX_KPIECES + 1) * 64, false },
		{ "as many blocks as allowed", 64, 64, QOTP_MAX_KPIECES + 2, 64, 0,
		  QOTP_MAX_KPIECES * 64, true },
	};
	const u32 seq = 0xfffffe00;	/* across the 2^32 wrap too */
	unsigned int i, j, hdrlen;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fctx *c = fctx_new(test);
		struct qotp_desc d = { .n = 1, .stride = cases[i].stride,
				       .run[0] = { .seq = seq, .blk = 1, .off = cases[i].off } };
		u32 plen = cases[i].plen;
		u8 *pt = kunit_kmalloc(test, plen, GFP_KERNEL);
		u8 *ct = kunit_kmalloc(test, plen, GFP_KERNEL);
		struct sk_buff *skb;
		bool passed;

		KUNIT_ASSERT_TRUE(test, pt && ct);
		push_len(test, c, QOTP_DIR_DECRYPT, 1, cases[i].len0);
		push_len(test, c, QOTP_DIR_DECRYPT, cases[i].nblk - 1, cases[i].len1);
		desc_key(&d, seq, plen, ct);
		for (j = 0; j < plen; j++) {
			pt[j] = (u8)(j * 13 + 5);
			ct[j] ^= pt[j];
		}
		skb = peer_seg(test, &d, seq, ct, plen);
		hdrlen = skb->len - plen;
		passed = qotp_decrypt_seg(&c->f, skb, sizeof(struct iphdr), NFPROTO_IPV4);
		KUNIT_EXPECT_EQ_MSG(test, passed, cases[i].pass, "%s", cases[i].what);
		KUNIT_EXPECT_EQ_MSG(test, stat(c, QOTP_STAT_DROP_BAD_DESC), cases[i].pass ? 0 : 1,
				    "%s", cases[i].what);
		if (cases[i].pass) {
			KUNIT_EXPECT_EQ_MSG(test, stat(c, QOTP_STAT_DEC_BYTES), (u64)plen, "%s",
					    cases[i].what);
			KUNIT_EXPECT_MEMEQ(test, skb->data + hdrlen, pt, plen);
		}
		kfree_skb(skb);
		fctx_done(c);
	}
}

static struct kunit_case flow_cases[] = {
	KUNIT_CASE(flow_same_bytes_same_key),
	KUNIT_CASE(flow_release_after_ack),
	KUNIT_CASE(flow_dec_release),
	KUNIT_CASE(flow_dec_midstream),
	KUNIT_CASE(flow_dec_midstream_no_ack),
	KUNIT_CASE(flow_two_runs_at_most),
	KUNIT_CASE(flow_starve_keeps_reservation),
	KUNIT_CASE(flow_stride_mixed_blocks),
	KUNIT_CASE(flow_gso_chunk_two_runs),
	KUNIT_CASE(flow_gso_chunk_pieces),
	KUNIT_CASE(flow_dec_release_stride),
	KUNIT_CASE(flow_dec_forged_stride),
	{}
};

static struct kunit_suite flow_suite = {
	.name = "qotp_flow",
	.test_cases = flow_cases,
};
kunit_test_suite(flow_suite);
