// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the key rings (keyring.c): push, reserve, lookup, release, refusal of
 * reused ids, wiping, limits, concurrent reserve/release, and a differential test against
 * a deliberately naive model on random operation sequences.
 *
 * Rings are created standalone with an event queue that only collects (no netns), so the
 * RELEASED and LOW_WATERMARK events can be read back.
 */
#include <kunit/test.h>
#include <linux/kthread.h>
#include <linux/completion.h>
#include <linux/bitmap.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/delay.h>

#include "../qotp.h"
#include "../keyring.h"
#include "../netlink.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define BIG	(1ULL << 30)

struct ktx {
	struct qotp_evq evq;
	struct qotp_ring *ring;
};

static u8 pattern(u64 id, u32 off)
{
	return (u8)(id * 131 + off * 7 + 1);
}

static int push_one(struct qotp_ring *ring, u64 id, u32 len, u64 max)
{
	struct qotp_push_blk b = { .id = id, .len = len };
	u8 *data = kmalloc(len, GFP_KERNEL);
	u32 i;
	int err;

	if (!data)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		data[i] = pattern(id, i);
	b.data = data;
	err = qotp_ring_push(ring, &b, 1, max);
	kfree(data);
	return err;
}

static struct ktx *ktx_new(struct kunit *test, enum qotp_dir dir)
{
	struct ktx *k = kunit_kzalloc(test, sizeof(*k), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, k);
	qotp_evq_init(&k->evq, NULL);
	k->ring = qotp_ring_create(&k->evq, 7, dir);
	KUNIT_ASSERT_NOT_NULL(test, k->ring);
	return k;
}

static void ktx_done(struct ktx *k)
{
	qotp_ring_destroy(k->ring);
	qotp_evq_exit(&k->evq);
}

/* Pops queued events of @cmd, counting them; RELEASED ids are stored in @ids. */
static int take_events(struct ktx *k, u8 cmd, u64 *ids, int max)
{
	struct qotp_ev *ev, *tmp;
	LIST_HEAD(list);
	int n = 0;

	qotp_evq_take(&k->evq, &list);
	list_for_each_entry_safe(ev, tmp, &list, node) {
		if (ev->cmd == cmd) {
			if (ids && n < max)
				ids[n] = ev->cmd == QOTP_CMD_EVENT_RELEASED ? ev->block_id : ev->val;
			n++;
		}
		list_del(&ev->node);
		kfree(ev);
	}
	return n;
}

static void test_push_lookup_release(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_DECRYPT);
	struct qotp_ring_info ri;
	struct qotp_key_ref a, b;
	u64 ids[4];
	u32 i;

	KUNIT_ASSERT_EQ(test, push_one(k->ring, 10, 100, BIG), 0);
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 11, 50, BIG), 0);

	KUNIT_ASSERT_EQ(test, qotp_ring_lookup(k->ring, 10, 5, 20, &a), 0);
	KUNIT_EXPECT_EQ(test, a.block_id, 10ULL);
	KUNIT_EXPECT_EQ(test, a.offset, 5U);
	KUNIT_EXPECT_EQ(test, a.len, 20U);
	for (i = 0; i < 20; i++)
		KUNIT_EXPECT_EQ(test, a.key[i], pattern(10, 5 + i));

	KUNIT_EXPECT_EQ(test, qotp_ring_lookup(k->ring, 12, 0, 1, &b), -ENOKEY);
	KUNIT_EXPECT_EQ(test, qotp_ring_lookup(k->ring, 11, 40, 11, &b), -ERANGE);
	KUNIT_EXPECT_EQ(test, qotp_ring_lookup(k->ring, 11, 50, 1, &b), -ERANGE);
	KUNIT_EXPECT_EQ(test, qotp_ring_lookup(k->ring, 11, 0, 0, &b), -ERANGE);

	/* Release all of block 10 in two spans: it is freed and reported. */
	qotp_ring_release(k->ring, &a, 20);
	KUNIT_EXPECT_NULL(test, a.blk);
	KUNIT_ASSERT_EQ(test, qotp_ring_lookup(k->ring, 10, 0, 5, &a), 0);
	qotp_ring_release(k->ring, &a, 5);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_RELEASED, ids, 4), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_lookup(k->ring, 10, 25, 75, &a), 0);
	qotp_ring_release(k->ring, &a, 0);
	KUNIT_ASSERT_EQ(test, take_events(k, QOTP_CMD_EVENT_RELEASED, ids, 4), 1);
	KUNIT_EXPECT_EQ(test, ids[0], 10ULL);
	KUNIT_EXPECT_EQ(test, qotp_ring_lookup(k->ring, 10, 0, 1, &a), -ENOKEY);

	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.blocks, 1U);
	KUNIT_EXPECT_EQ(test, ri.pushed, 150ULL);
	KUNIT_EXPECT_EQ(test, ri.consumed, 25ULL);
	KUNIT_EXPECT_EQ(test, ri.wasted, 75ULL);
	KUNIT_EXPECT_EQ(test, ri.avail, 50ULL);
	KUNIT_EXPECT_EQ(test, ri.mem, 50ULL);
	KUNIT_EXPECT_TRUE(test, ri.has_last);
	KUNIT_EXPECT_EQ(test, ri.last_id, 11ULL);
	ktx_done(k);
}

static void test_reserve_spans(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_key_ref r[4];
	struct qotp_ring_info ri;

	KUNIT_ASSERT_EQ(test, push_one(k->ring, 1, 100, BIG), 0);
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 2, 50, BIG), 0);

	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 60, &r[0]), 0);
	KUNIT_EXPECT_EQ(test, r[0].block_id, 1ULL);
	KUNIT_EXPECT_EQ(test, r[0].offset, 0U);
	KUNIT_EXPECT_EQ(test, r[0].len, 60U);
	/* A span never crosses into the next block. */
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 60, &r[1]), 0);
	KUNIT_EXPECT_EQ(test, r[1].block_id, 1ULL);
	KUNIT_EXPECT_EQ(test, r[1].offset, 60U);
	KUNIT_EXPECT_EQ(test, r[1].len, 40U);
	KUNIT_EXPECT_EQ(test, r[1].key[0], pattern(1, 60));
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 60, &r[2]), 0);
	KUNIT_EXPECT_EQ(test, r[2].block_id, 2ULL);
	KUNIT_EXPECT_EQ(test, r[2].len, 50U);
	KUNIT_EXPECT_EQ(test, qotp_ring_reserve(k->ring, 1, &r[3]), -ENOKEY);
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(k->ring), 0ULL);

	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.reserved, 150ULL);

	/* Out-of-order releases: the block goes only when its last byte is done. */
	qotp_ring_release(k->ring, &r[1], 40);
	qotp_ring_release(k->ring, &r[2], 10);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_RELEASED, NULL, 0), 1);
	qotp_ring_release(k->ring, &r[0], 60);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_RELEASED, NULL, 0), 1);

	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.blocks, 0U);
	KUNIT_EXPECT_EQ(test, ri.reserved, 0ULL);
	KUNIT_EXPECT_EQ(test, ri.consumed, 110ULL);
	KUNIT_EXPECT_EQ(test, ri.wasted, 40ULL);
	KUNIT_EXPECT_EQ(test, ri.mem, 0ULL);
	ktx_done(k);
}

static void test_refuse_ids(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_ring_info ri;

	KUNIT_ASSERT_EQ(test, push_one(k->ring, 5, 10, BIG), 0);
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 5, 10, BIG), -EINVAL);
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 3, 10, BIG), -EINVAL);
	qotp_ring_flush(k->ring);
	/* The highest id ever accepted survives a flush. */
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 5, 10, BIG), -EINVAL);
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 1, 10, BIG), -EINVAL);
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 6, 10, BIG), 0);

	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.refused, 4ULL);
	KUNIT_EXPECT_EQ(test, ri.last_id, 6ULL);
	KUNIT_EXPECT_EQ(test, ri.blocks, 1U);
	KUNIT_EXPECT_EQ(test, ri.pushed, 20ULL);
	KUNIT_EXPECT_EQ(test, ri.wasted, 10ULL);
	ktx_done(k);
}

static void test_limits(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_push_blk b[2];
	struct qotp_ring_info ri;
	static u8 data[400];

	KUNIT_ASSERT_EQ(test, push_one(k->ring, 1, 600, 1000), 0);
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 2, 401, 1000), -ENOSPC);
	/* All or nothing: the first block would fit, the second does not. */
	b[0] = (struct qotp_push_blk){ .id = 2, .data = data, .len = 300 };
	b[1] = (struct qotp_push_blk){ .id = 3, .data = data, .len = 200 };
	KUNIT_EXPECT_EQ(test, qotp_ring_push(k->ring, b, 2, 1000), -ENOSPC);
	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.blocks, 1U);
	KUNIT_EXPECT_EQ(test, ri.mem, 600ULL);
	KUNIT_EXPECT_EQ(test, ri.last_id, 1ULL);
	KUNIT_EXPECT_EQ(test, ri.pushed, 600ULL);
	KUNIT_EXPECT_EQ(test, ri.refused, 2ULL);
	/* Exactly at the limit is fine; ids skipped by refused pushes stay usable. */
	KUNIT_EXPECT_EQ(test, push_one(k->ring, 2, 400, 1000), 0);
	ktx_done(k);
}

static int wipe_calls;
static int wipe_dirty;
static void wipe_hook(u64 id, const u8 *key, u32 len)
{
	wipe_calls++;
	if (memchr_inv(key, 0, len))
		wipe_dirty++;
}

static void test_wipe(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_key_ref r, copy, held;
	u32 i;

	wipe_calls = 0;
	wipe_dirty = 0;
	WRITE_ONCE(qotp_ring_free_hook, wipe_hook);

	KUNIT_ASSERT_EQ(test, push_one(k->ring, 1, 50, BIG), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 50, &r), 0);
	qotp_key_ref_dup(&r, &copy);
	KUNIT_EXPECT_EQ(test, copy.key[0], pattern(1, 0));
	qotp_ring_release(k->ring, &r, 50);
	/* The span reads back zero at once, through the ref still held. */
	for (i = 0; i < 50; i++)
		KUNIT_EXPECT_EQ(test, copy.key[i], 0);
	KUNIT_EXPECT_EQ(test, wipe_calls, 0);
	qotp_key_ref_put(&copy);
	KUNIT_EXPECT_EQ(test, wipe_calls, 1);

	/* Flush with a span in use: the rest is wiped, the block waits for the span. */
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 2, 64, BIG), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 16, &held), 0);
	qotp_ring_flush(k->ring);
	KUNIT_EXPECT_EQ(test, wipe_calls, 1);
	KUNIT_EXPECT_EQ(test, held.key[0], pattern(2, 0));	/* still usable */
	KUNIT_EXPECT_EQ(test, qotp_ring_reserve(k->ring, 1, &r), -ENOKEY);
	qotp_ring_release(k->ring, &held, 16);
	KUNIT_EXPECT_EQ(test, wipe_calls, 2);
	KUNIT_EXPECT_EQ(test, wipe_dirty, 0);

	/* A block released in spans, out of order, is freed clean without a second pass. */
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 3, 60, BIG), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 20, &r), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 40, &held), 0);
	qotp_ring_release(k->ring, &held, 40);
	KUNIT_EXPECT_EQ(test, wipe_calls, 2);
	qotp_ring_release(k->ring, &r, 5);
	KUNIT_EXPECT_EQ(test, wipe_calls, 3);
	KUNIT_EXPECT_EQ(test, wipe_dirty, 0);

	/* Destroying a ring with unreleased blocks wipes them too. */
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 4, 64, BIG), 0);
	WRITE_ONCE(qotp_ring_free_hook, wipe_hook);
	ktx_done(k);
	KUNIT_EXPECT_EQ(test, wipe_calls, 4);
	KUNIT_EXPECT_EQ(test, wipe_dirty, 0);
	WRITE_ONCE(qotp_ring_free_hook, NULL);
}

static void test_low_watermark(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_key_ref r;
	u64 v[4];

	qotp_ring_set_low_watermark(k->ring, 100);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 1);
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 1, 150, BIG), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 40, &r), 0);
	qotp_ring_release(k->ring, &r, 40);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 20, &r), 0);	/* avail 90 */
	qotp_ring_release(k->ring, &r, 20);
	KUNIT_ASSERT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 1);
	KUNIT_EXPECT_EQ(test, v[0], 90ULL);
	/* Edge-triggered: no second event until a push lifts it above again. */
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 20, &r), 0);
	qotp_ring_release(k->ring, &r, 20);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 0);
	KUNIT_ASSERT_EQ(test, push_one(k->ring, 2, 100, BIG), 0);	/* avail 170 */
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 80, &r), 0);
	KUNIT_EXPECT_EQ(test, r.len, 70U);	/* the rest of block 1 only */
	qotp_ring_release(k->ring, &r, 70);	/* avail 100: not below */
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 0);
	KUNIT_ASSERT_EQ(test, qotp_ring_reserve(k->ring, 11, &r), 0);	/* 89 */
	qotp_ring_release(k->ring, &r, 11);
	KUNIT_ASSERT_EQ(test, take_events(k, QOTP_CMD_EVENT_LOW_WATERMARK, v, 4), 1);
	KUNIT_EXPECT_EQ(test, v[0], 89ULL);
	ktx_done(k);
}

static void test_key_empty_rate_limit(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	u64 drops[4];
	int i;

	qotp_ring_key_empty(k->ring);
	KUNIT_ASSERT_EQ(test, take_events(k, QOTP_CMD_EVENT_KEY_EMPTY, drops, 4), 1);
	KUNIT_EXPECT_EQ(test, drops[0], 1ULL);
	/* Within 100 ms: counted, not reported. */
	for (i = 0; i < 5; i++)
		qotp_ring_key_empty(k->ring);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_KEY_EMPTY, drops, 4), 0);
	msleep(150);
	qotp_ring_key_empty(k->ring);
	KUNIT_ASSERT_EQ(test, take_events(k, QOTP_CMD_EVENT_KEY_EMPTY, drops, 4), 1);
	KUNIT_EXPECT_EQ(test, drops[0], 6ULL);	/* every drop since the last event */
	ktx_done(k);
}

/* ---- concurrency: two threads reserve and release until the ring is empty ---- */

#define CC_BLOCKS	64
#define CC_BLEN		1024

struct cc {
	struct qotp_ring *ring;
	unsigned long *seen;	/* one bit per key byte handed out */
	atomic_t dup;
	atomic64_t got, used;
	struct completion done[2];
	u32 seed[2];
};

struct cc_arg {
	struct cc *c;
	int me;
};

static int cc_thread(void *arg)
{
	struct cc *c = ((struct cc_arg *)arg)->c;
	int me = ((struct cc_arg *)arg)->me;
	u32 s = c->seed[me];
	struct qotp_key_ref r;
	u32 i;

	while (!qotp_ring_reserve(c->ring, 1 + (s % 300), &r)) {
		u64 base = (r.block_id - 1) * CC_BLEN + r.offset;
		u32 used;

		for (i = 0; i < r.len; i++) {
			if (test_and_set_bit(base + i, c->seen))
				atomic_inc(&c->dup);
			if (r.key[i] != pattern(r.block_id, r.offset + i))
				atomic_inc(&c->dup);
		}
		s = s * 1103515245 + 12345;
		used = (s >> 8) % (r.len + 1);
		atomic64_add(r.len, &c->got);
		atomic64_add(used, &c->used);
		qotp_ring_release(c->ring, &r, used);
		if ((s & 7) == 0)
			cond_resched();
	}
	complete(&c->done[me]);
	return 0;
}

static void test_concurrent_reserve_release(struct kunit *test)
{
	struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
	struct qotp_ring_info ri;
	struct task_struct *t[2];
	struct cc_arg a0, a1;
	struct cc *c;
	u64 id;

	c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, c);
	c->seen = kunit_kzalloc(test, BITS_TO_LONGS(CC_BLOCKS * CC_BLEN) * sizeof(long),
				GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, c->seen);
	c->ring = k->ring;
	c->seed[0] = 1;
	c->seed[1] = 777;
	init_completion(&c->done[0]);
	init_completion(&c->done[1]);
	for (id = 1; id <= CC_BLOCKS; id++)
		KUNIT_ASSERT_EQ(test, push_one(k->ring, id, CC_BLEN, BIG), 0);

	a0 = (struct cc_arg){ .c = c, .me = 0 };
	a1 = (struct cc_arg){ .c = c, .me = 1 };
	t[0] = kthread_run(cc_thread, &a0, "qotp-cc0");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t[0]));
	t[1] = kthread_run(cc_thread, &a1, "qotp-cc1");
	if (IS_ERR(t[1]))
		cc_thread(&a1);
	wait_for_completion(&c->done[0]);
	wait_for_completion(&c->done[1]);

	KUNIT_EXPECT_EQ(test, atomic_read(&c->dup), 0);
	KUNIT_EXPECT_TRUE(test, bitmap_full(c->seen, CC_BLOCKS * CC_BLEN));
	KUNIT_EXPECT_EQ(test, (u64)atomic64_read(&c->got), (u64)CC_BLOCKS * CC_BLEN);
	qotp_ring_info(k->ring, &ri);
	KUNIT_EXPECT_EQ(test, ri.blocks, 0U);
	KUNIT_EXPECT_EQ(test, ri.mem, 0ULL);
	KUNIT_EXPECT_EQ(test, ri.reserved, 0ULL);
	KUNIT_EXPECT_EQ(test, ri.consumed, (u64)atomic64_read(&c->used));
	KUNIT_EXPECT_EQ(test, ri.consumed + ri.wasted, (u64)CC_BLOCKS * CC_BLEN);
	KUNIT_EXPECT_EQ(test, take_events(k, QOTP_CMD_EVENT_RELEASED, NULL, 0), CC_BLOCKS);
	ktx_done(k);
}

/* ---- differential test against a naive model ---- */

#define M_BLOCKS	256
#define M_REFS		64
#define M_MAX		4000

struct mblk {
	u64 id;
	u32 len, reserved, done;
	int refs;
	bool linked, freed;
};

struct mref {
	int blk;
	u32 off, len;
	struct qotp_key_ref ref;
};

struct model {
	struct mblk b[M_BLOCKS];
	int nb;
	struct mref r[M_REFS];
	int nr;
	bool has_last;
	u64 last, mem, avail, reserved, pushed, consumed, wasted, refused;
	u32 rng;
};

static u32 mrand(struct model *m)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 17;
	m->rng ^= m->rng << 5;
	return m->rng;
}

static void m_maybe_free(struct model *m, struct mblk *b)
{
	if (!b->linked && !b->refs && !b->freed) {
		b->freed = true;
		m->mem -= b->len;
	}
}

static void m_check(struct kunit *test, struct model *m, struct ktx *k, int step)
{
	struct qotp_ring_info ri;
	u32 blocks = 0;
	int i;

	for (i = 0; i < m->nb; i++)
		blocks += m->b[i].linked;
	qotp_ring_info(k->ring, &ri);
	KUNIT_ASSERT_EQ_MSG(test, ri.blocks, blocks, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.mem, m->mem, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.avail, m->avail, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.reserved, m->reserved, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.pushed, m->pushed, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.consumed, m->consumed, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.wasted, m->wasted, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.refused, m->refused, "step %d", step);
	KUNIT_ASSERT_EQ_MSG(test, ri.has_last, m->has_last, "step %d", step);
	if (m->has_last)
		KUNIT_ASSERT_EQ_MSG(test, ri.last_id, m->last, "step %d", step);
}

static void m_push(struct kunit *test, struct model *m, struct ktx *k)
{
	struct qotp_push_blk pb[3];
	static u8 data[3][300];
	int n = 1 + mrand(m) % 3, i, err, want;
	u64 id, total = 0;
	u32 j;

	if (m->nb + n > M_BLOCKS)
		return;
	/* Mostly fresh ids, sometimes a reused or lower one. */
	id = m->has_last ? m->last : 0;
	if (mrand(m) % 8 == 0 && id > 0)
		id -= mrand(m) % 3;
	else
		id += 1 + mrand(m) % 4;
	for (i = 0; i < n; i++) {
		pb[i].id = id;
		id += 1 + mrand(m) % 2;
		pb[i].len = 1 + mrand(m) % 300;
		for (j = 0; j < pb[i].len; j++)
			data[i][j] = pattern(pb[i].id, j);
		pb[i].data = data[i];
		total += pb[i].len;
	}
	if (m->has_last && pb[0].id <= m->last)
		want = -EINVAL;
	else if (m->mem + total > M_MAX)
		want = -ENOSPC;
	else
		want = 0;
	err = qotp_ring_push(k->ring, pb, n, M_MAX);
	KUNIT_ASSERT_EQ(test, err, want);
	if (err) {
		m->refused++;
		return;
	}
	for (i = 0; i < n; i++) {
		m->b[m->nb++] = (struct mblk){ .id = pb[i].id, .len = pb[i].len, .linked = true };
	}
	m->has_last = true;
	m->last = pb[n - 1].id;
	m->mem += total;
	m->avail += total;
	m->pushed += total;
}

static void m_reserve(struct kunit *test, struct model *m, struct ktx *k)
{
	u32 want = 1 + mrand(m) % 150;
	struct qotp_key_ref ref;
	struct mblk *b = NULL;
	int i, err;

	if (m->nr == M_REFS)
		return;
	for (i = 0; i < m->nb; i++) {
		if (m->b[i].linked && m->b[i].reserved < m->b[i].len) {
			b = &m->b[i];
			break;
		}
	}
	err = qotp_ring_reserve(k->ring, want, &ref);
	if (!b) {
		KUNIT_ASSERT_EQ(test, err, -ENOKEY);
		return;
	}
	KUNIT_ASSERT_EQ(test, err, 0);
	KUNIT_ASSERT_EQ(test, ref.block_id, b->id);
	KUNIT_ASSERT_EQ(test, ref.offset, b->reserved);
	KUNIT_ASSERT_EQ(test, ref.len, min(want, b->len - b->reserved));
	KUNIT_ASSERT_EQ(test, ref.key[0], pattern(b->id, b->reserved));
	m->r[m->nr++] = (struct mref){ .blk = i, .off = ref.offset, .len = ref.len, .ref = ref };
	b->reserved += ref.len;
	b->refs++;
	m->avail -= ref.len;
	m->reserved += ref.len;
}

static void m_release(struct kunit *test, struct model *m, struct ktx *k)
{
	struct mref r;
	struct mblk *b;
	u32 used;
	int i;

	if (!m->nr)
		return;
	i = mrand(m) % m->nr;
	r = m->r[i];
	m->r[i] = m->r[--m->nr];
	b = &m->b[r.blk];
	used = mrand(m) % (r.len + 1);
	qotp_ring_release(k->ring, &r.ref, used);
	m->consumed += used;
	m->wasted += r.len - used;
	m->reserved -= r.len;
	b->refs--;
	if (b->linked) {
		b->done += r.len;
		if (b->done == b->len)
			b->linked = false;
	}
	m_maybe_free(m, b);
}

static void m_lookup(struct kunit *test, struct model *m, struct ktx *k)
{
	struct qotp_key_ref ref;
	struct mblk *b = NULL;
	u64 id;
	u32 off, len;
	int i, err, want;

	if (!m->nb)
		return;
	i = mrand(m) % m->nb;
	id = m->b[i].id + (mrand(m) % 4 == 0);
	off = mrand(m) % 320;
	len = mrand(m) % 64;
	for (i = 0; i < m->nb; i++)
		if (m->b[i].id == id && m->b[i].linked)
			b = &m->b[i];
	if (!b)
		want = -ENOKEY;
	else if (!len || off >= b->len || len > b->len - off)
		want = -ERANGE;
	else
		want = 0;
	err = qotp_ring_lookup(k->ring, id, off, len, &ref);
	KUNIT_ASSERT_EQ(test, err, want);
	if (!err) {
		if (off >= b->reserved)	/* bytes not handed out are intact */
			KUNIT_ASSERT_EQ(test, ref.key[0], pattern(id, off));
		qotp_key_ref_put(&ref);
	}
}

static void m_flush(struct model *m, struct ktx *k)
{
	int i;

	qotp_ring_flush(k->ring);
	for (i = 0; i < m->nb; i++) {
		struct mblk *b = &m->b[i];
		u32 unused;

		if (!b->linked)
			continue;
		unused = b->len - max(b->reserved, b->done);
		m->wasted += unused;
		m->avail -= unused;
		b->linked = false;
		m_maybe_free(m, b);
	}
}

static void test_differential(struct kunit *test)
{
	int round, step;

	for (round = 0; round < 8; round++) {
		struct ktx *k = ktx_new(test, QOTP_DIR_ENCRYPT);
		struct model *m = kunit_kzalloc(test, sizeof(*m), GFP_KERNEL);

		KUNIT_ASSERT_NOT_NULL(test, m);
		m->rng = 0x9e3779b9u + round * 7919;
		for (step = 0; step < 600; step++) {
			u32 op = mrand(m) % 100;

			if (op < 20)
				m_push(test, m, k);
			else if (op < 55)
				m_reserve(test, m, k);
			else if (op < 85)
				m_release(test, m, k);
			else if (op < 98)
				m_lookup(test, m, k);
			else
				m_flush(m, k);
			m_check(test, m, k, step);
		}
		while (m->nr)
			m_release(test, m, k);
		m_check(test, m, k, step);
		m_flush(m, k);
		m_check(test, m, k, step + 1);
		KUNIT_EXPECT_EQ(test, m->mem, 0ULL);
		ktx_done(k);
	}
}

static struct kunit_case keyring_cases[] = {
	KUNIT_CASE(test_push_lookup_release),
	KUNIT_CASE(test_reserve_spans),
	KUNIT_CASE(test_refuse_ids),
	KUNIT_CASE(test_limits),
	KUNIT_CASE(test_wipe),
	KUNIT_CASE(test_low_watermark),
	KUNIT_CASE(test_key_empty_rate_limit),
	KUNIT_CASE(test_concurrent_reserve_release),
	KUNIT_CASE(test_differential),
	{}
};

static struct kunit_suite keyring_suite = {
	.name = "qotp_keyring",
	.test_cases = keyring_cases,
};
kunit_test_suite(keyring_suite);

MODULE_LICENSE("GPL");
