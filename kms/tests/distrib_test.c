// SPDX-License-Identifier: GPL-2.0
/*
 * Key distribution tests: two ends of a pair (X encrypts toward Y) with a mock kernel ring
 * each that behaves like qotp.ko's (refuses ids at or below the highest it ever accepted,
 * forgets that on module reload) and a log of every id ever pushed, so "never pushed twice"
 * and "never an old block after a reload" are checked on what the kernels actually got.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "distrib.h"

#define MAXB 256

struct kring {
	uint64_t last;			/* highest accepted since load (0 none) */
	uint64_t held[MAXB];
	uint32_t held_len[MAXB];
	int n_held;
	uint64_t ever[4 * MAXB];	/* every id ever accepted, across reloads */
	int n_ever;
};

static int kpush(struct kring *k, uint64_t id, uint32_t len)
{
	if (id <= k->last)
		return -EEXIST;
	for (int i = 0; i < k->n_ever; i++)
		assert_true(k->ever[i] != id);	/* never the same block twice */
	k->last = id;
	k->held[k->n_held] = id;
	k->held_len[k->n_held++] = len;
	k->ever[k->n_ever++] = id;
	return 0;
}

static void kreload(struct kring *k)
{
	k->last = 0;
	k->n_held = 0;
}

static uint64_t kavail(const struct kring *k)
{
	uint64_t a = 0;

	for (int i = 0; i < k->n_held; i++)
		a += k->held_len[i];
	return a;
}

static const struct dist_config cfg = {
	.low_watermark = 4000, .target = 10000, .block_len = 1000, .max_inflight = 8,
	.offer_timeout_ms = 5000,
};

struct end {
	struct dist_pair *dp;
	struct dist_persist ps;		/* what "disk" holds */
	struct kring enc, dec;
	uint64_t dropped[4 * MAXB];
	int n_dropped;
};

static struct end X, Y;
static uint64_t now = 1000;

static void on_drop(void *arg, enum dist_dir dir, uint64_t id)
{
	struct end *e = arg;

	e->dropped[e->n_dropped++] = id;
}

static void setup_pair(void)
{
	memset(&X, 0, sizeof(X));
	memset(&Y, 0, sizeof(Y));
	X.dp = dist_pair_new("X", "Y", &cfg, NULL, 0, 0);
	Y.dp = dist_pair_new("Y", "X", &cfg, NULL, 0, 0);
	assert_non_null(X.dp);
	assert_non_null(Y.dp);
}

static void teardown_pair(void)
{
	dist_pair_free(X.dp);
	dist_pair_free(Y.dp);
}

/* One wire message through the codec. */
static struct dist_msg wire(const struct dist_msg *m)
{
	uint8_t buf[DIST_MSG_MAX];
	struct dist_msg d;
	long n = dist_encode(m, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	return d;
}

/*
 * Y's side of an OFFER batch: check each block, "take material", persist, push to the
 * decrypt ring, answer with one verdict per block. Blocks whose ids are listed in
 * missing[] are answered DIST_V_NO_KEY (Y does not hold the named material).
 */
static const uint64_t *missing;
static int n_missing;

static struct dist_msg y_handle_offer(const struct dist_msg *o)
{
	struct dist_msg r = { 0 };

	assert_int_equal(o->type, DIST_OFFER);
	r.type = DIST_ACCEPT;
	strcpy(r.enc, o->enc);
	strcpy(r.dec, o->dec);
	r.n = o->n;
	for (int i = 0; i < o->n; i++) {
		const struct dist_entry *e = &o->e[i];
		int miss = 0;

		r.e[i].id = e->id;
		for (int j = 0; j < n_missing; j++)
			miss |= missing[j] == e->id;
		if (miss) {
			r.e[i].verdict = DIST_V_NO_KEY;
			continue;
		}
		if (dist_check_offer(Y.dp, e->id, e->len)) {
			r.e[i].verdict = DIST_V_REFUSED;
			continue;
		}
		assert_int_equal(dist_in_accepted(Y.dp, e->id), 0);
		dist_persist(Y.dp, &Y.ps);
		assert_int_equal(kpush(&Y.dec, e->id, e->len), 0);
		assert_int_equal(dist_pushed(Y.dp, DIST_IN, e->id, e->len), 0);
		r.e[i].verdict = DIST_V_ACCEPTED;
	}
	return wire(&r);
}

/* X offers what it needs, at most max blocks, in one OFFER; returns the block count. */
static int x_offer(struct dist_msg *out, int max)
{
	memset(out, 0, sizeof(*out));
	out->type = DIST_OFFER;
	strcpy(out->enc, "X");
	strcpy(out->dec, "Y");
	while (out->n < max && out->n < DIST_BATCH_MAX && dist_need(X.dp) > 0) {
		struct dist_entry *e = &out->e[out->n++];

		assert_int_equal(dist_assign(X.dp, cfg.block_len, now, &e->id), 0);
		e->len = cfg.block_len;
		e->source = DIST_SRC_LINK;
		e->ref = 1000 + e->id;
	}
	dist_persist(X.dp, &X.ps);	/* before the offer leaves */
	if (out->n)
		*out = wire(out);
	return out->n;
}

static void x_handle_answer(const struct dist_msg *a)
{
	uint32_t len;

	assert_int_equal(a->type, DIST_ACCEPT);
	for (int i = 0; i < a->n; i++) {
		if (a->e[i].verdict != DIST_V_ACCEPTED) {
			dist_offer_rejected(X.dp, a->e[i].id);
			continue;
		}
		if (dist_offer_accepted(X.dp, a->e[i].id, &len) == 0) {
			assert_int_equal(kpush(&X.enc, a->e[i].id, len), 0);
			assert_int_equal(dist_pushed(X.dp, DIST_OUT, a->e[i].id, len), 0);
		}
	}
}

/* Offers and answers until X needs nothing more. */
static void fill(void)
{
	struct dist_msg o, a;

	while (x_offer(&o, DIST_BATCH_MAX) > 0) {
		a = y_handle_offer(&o);
		x_handle_answer(&a);
	}
}

static void check_same_blocks(void)
{
	/* Every block X can encrypt with, Y can decrypt with. */
	for (int i = 0; i < X.enc.n_held; i++) {
		int found = 0;

		for (int j = 0; j < Y.dec.n_held; j++)
			found |= Y.dec.held[j] == X.enc.held[i];
		assert_true(found);
	}
}

static void test_initial_fill(void **state)
{
	struct dist_stats st;

	setup_pair();
	fill();
	assert_int_equal(X.enc.n_held, 10);
	assert_int_equal(kavail(&X.enc), cfg.target);
	for (int i = 0; i < X.enc.n_held; i++)
		assert_int_equal(X.enc.held[i], (uint64_t)i + 1);	/* 1, 2, 3 ... */
	check_same_blocks();
	assert_int_equal(dist_need(X.dp), 0);
	dist_get_stats(X.dp, &st);
	assert_int_equal(st.level, cfg.target);
	assert_int_equal(st.accepted, 10);
	assert_int_equal(st.pushed_out, 10);
	assert_int_equal(X.ps.out_next_id, 11);
	assert_int_equal(Y.ps.in_last_id, 10);
	teardown_pair();
}

/* The kernel consumes and releases: refill starts only below the low watermark. */
static void test_watermark_and_release(void **state)
{
	uint64_t rel[7];

	setup_pair();
	fill();
	/* Kernel releases 5 blocks (5000 bytes left, above the watermark): no refill. */
	for (int i = 0; i < 5; i++)
		rel[i] = X.enc.held[i];
	assert_int_equal(dist_released(X.dp, DIST_OUT, rel, 5), 5);
	assert_int_equal(dist_released(Y.dp, DIST_IN, rel, 5), 5);
	assert_int_equal(dist_need(X.dp), 0);
	/* LOW_WATERMARK with 3000 available: refill to target. */
	dist_kernel_level(X.dp, 3000);
	assert_int_equal(dist_need(X.dp), cfg.target - 3000);
	memmove(X.enc.held, X.enc.held + 5, 5 * sizeof(uint64_t));
	memmove(X.enc.held_len, X.enc.held_len + 5, 5 * sizeof(uint32_t));
	X.enc.n_held = 5;
	fill();
	assert_int_equal(X.enc.n_held, 12);
	assert_int_equal(X.enc.held[X.enc.n_held - 1], 17);	/* ids kept increasing */
	/* Unknown ids in RELEASED are not ours. */
	rel[0] = 999;
	assert_int_equal(dist_released(X.dp, DIST_OUT, rel, 1), 0);
	/* KEY_EMPTY: level 0, the full target is needed (bounded by the offer slots). */
	dist_kernel_level(X.dp, 0);
	assert_int_equal(dist_need(X.dp), cfg.max_inflight * cfg.block_len);
	teardown_pair();
}

/*
 * kmsd X dies with offers in flight and restarts from its persisted state: ids continue
 * above everything used, late ACCEPTs of the old offers are never pushed.
 */
static void test_restart_never_reuses(void **state)
{
	struct dist_msg offers, late;
	int n;

	setup_pair();
	fill();
	dist_kernel_level(X.dp, 0);
	n = x_offer(&offers, 3);
	assert_int_equal(n, 3);
	late = y_handle_offer(&offers);	/* Y pushed them; X never got the ACCEPT */
	dist_pair_free(X.dp);
	X.dp = dist_pair_new("X", "Y", &cfg, &X.ps, X.enc.last, 0);
	assert_non_null(X.dp);
	for (int i = 0; i < n; i++) {
		uint32_t len;

		assert_int_equal(late.e[i].verdict, DIST_V_ACCEPTED);
		assert_int_equal(dist_offer_accepted(X.dp, late.e[i].id, &len), -ENOENT);
	}
	x_handle_answer(&late);		/* the late answer pushes nothing */
	assert_int_equal(X.enc.last, offers.e[0].id - 1);
	dist_kernel_level(X.dp, 3000);	/* the next LOW_WATERMARK event */
	fill();
	assert_true(X.enc.held[X.enc.n_held - 1] > offers.e[n - 1].id);
	check_same_blocks();

	/* Disk lost the persisted id but the kernel still knows its last: still above. */
	dist_pair_free(X.dp);
	X.dp = dist_pair_new("X", "Y", &cfg, NULL, X.enc.last, 0);
	uint64_t id;
	assert_int_equal(dist_assign(X.dp, 100, now, &id), 0);
	assert_int_equal(id, X.enc.last + 1);
	teardown_pair();
}

/* Module reload at X: old blocks dropped (never re-pushed), Y told to flush, fresh ids. */
static void test_kernel_lost_out(void **state)
{
	struct dist_msg rs = { 0 };
	uint64_t first_valid = 0, before;
	int type;

	setup_pair();
	fill();
	before = X.enc.last;
	kreload(&X.enc);
	type = dist_kernel_lost(X.dp, DIST_OUT, on_drop, &X, &first_valid);
	assert_int_equal(type, DIST_RESYNC);
	assert_int_equal(X.n_dropped, 10);
	assert_int_equal(first_valid, before + 1);
	/* Y gets RESYNC: flushes its decrypt ring for X and drops those blocks. */
	rs.type = DIST_RESYNC;
	strcpy(rs.enc, "X");
	strcpy(rs.dec, "Y");
	rs.id = first_valid;
	rs = wire(&rs);
	assert_int_equal(dist_peer_resync(Y.dp, rs.type, on_drop, &Y, NULL), 0);
	assert_int_equal(Y.n_dropped, 10);
	kreload(&Y.dec);
	fill();
	assert_int_equal(X.enc.n_held, 10);
	for (int i = 0; i < X.enc.n_held; i++)
		assert_true(X.enc.held[i] >= first_valid);
	check_same_blocks();
	teardown_pair();
}

/* Module reload at Y: Y asks X to restart the ring; X flushes and restarts above. */
static void test_kernel_lost_in(void **state)
{
	uint64_t first_valid = 0, before;

	setup_pair();
	fill();
	before = X.enc.last;
	kreload(&Y.dec);
	assert_int_equal(dist_kernel_lost(Y.dp, DIST_IN, on_drop, &Y, NULL), DIST_RESYNC_REQ);
	assert_int_equal(Y.n_dropped, 10);
	/* X gets RESYNC_REQ: flushes its encrypt ring (the kernel keeps its last id). */
	assert_int_equal(dist_peer_resync(X.dp, DIST_RESYNC_REQ, on_drop, &X, &first_valid),
			 DIST_RESYNC);
	assert_int_equal(first_valid, before + 1);
	X.enc.n_held = 0;
	assert_true(dist_need(X.dp) > 0);
	fill();
	assert_int_equal(X.enc.n_held, 10);
	assert_true(X.enc.held[0] > before);
	check_same_blocks();
	teardown_pair();
}

static void test_decryptor_refuses_old_ids(void **state)
{
	setup_pair();
	assert_int_equal(dist_check_offer(Y.dp, 5, 100), 0);
	assert_int_equal(dist_in_accepted(Y.dp, 5), 0);
	assert_int_equal(dist_check_offer(Y.dp, 5, 100), -EALREADY);	/* replay */
	assert_int_equal(dist_check_offer(Y.dp, 4, 100), -EALREADY);	/* older */
	assert_int_equal(dist_in_accepted(Y.dp, 3), -EALREADY);
	assert_int_equal(dist_check_offer(Y.dp, 6, 0), -EINVAL);
	assert_int_equal(dist_check_offer(Y.dp, 6, DIST_MAX_BLOCK + 1), -EINVAL);
	assert_int_equal(dist_check_offer(Y.dp, 6, DIST_MAX_BLOCK), 0);
	/* After a restart from persisted state, still refused. */
	dist_persist(Y.dp, &Y.ps);
	dist_pair_free(Y.dp);
	Y.dp = dist_pair_new("Y", "X", &cfg, &Y.ps, 0, 0);
	assert_int_equal(dist_check_offer(Y.dp, 5, 100), -EALREADY);
	teardown_pair();
}

static void test_accept_order_and_timeout(void **state)
{
	uint64_t a, b, c;
	uint32_t len;

	setup_pair();
	assert_int_equal(dist_assign(X.dp, 100, now, &a), 0);
	assert_int_equal(dist_assign(X.dp, 100, now, &b), 0);
	assert_int_equal(dist_assign(X.dp, 100, now + 1000, &c), 0);
	assert_true(a < b && b < c);
	/* b answered before a: a can no longer be pushed in order. */
	assert_int_equal(dist_offer_accepted(X.dp, b, &len), 0);
	assert_int_equal(dist_offer_accepted(X.dp, a, &len), -EALREADY);
	assert_int_equal(dist_offer_accepted(X.dp, b, &len), -ENOENT);	/* duplicate */
	/* c times out: dropped and burnt; its late ACCEPT is not pushed. */
	dist_tick(X.dp, now + 1000 + cfg.offer_timeout_ms - 1, on_drop, &X);
	assert_int_equal(X.n_dropped, 0);
	dist_tick(X.dp, now + 1000 + cfg.offer_timeout_ms, on_drop, &X);
	assert_int_equal(X.n_dropped, 1);
	assert_int_equal(X.dropped[0], c);
	assert_int_equal(dist_offer_accepted(X.dp, c, &len), -ENOENT);
	assert_int_equal(dist_offer_rejected(X.dp, c), -ENOENT);
	/* Offer slots are bounded. */
	for (uint32_t i = 0; i < cfg.max_inflight; i++)
		assert_int_equal(dist_assign(X.dp, 100, now, &a), 0);
	assert_int_equal(dist_assign(X.dp, 100, now, &a), -EBUSY);
	assert_int_equal(dist_need(X.dp), 0);
	assert_int_equal(dist_assign(X.dp, 0, now, &a), -EINVAL);
	teardown_pair();
}

static void test_reserve_counts_as_coming(void **state)
{
	setup_pair();
	assert_int_equal(dist_need(X.dp), cfg.max_inflight * cfg.block_len);
	dist_reserve(X.dp, 6000);	/* PPETP transfers under way */
	assert_int_equal(dist_need(X.dp), cfg.target - 6000);
	dist_reserve(X.dp, -6000);
	assert_int_equal(dist_need(X.dp), cfg.max_inflight * cfg.block_len);
	teardown_pair();
}

static void test_bad_construction(void **state)
{
	struct dist_config c = cfg;

	assert_null(dist_pair_new("X", "X", &cfg, NULL, 0, 0));
	assert_null(dist_pair_new("X", "bad id", &cfg, NULL, 0, 0));
	c.block_len = DIST_MAX_BLOCK + 1;
	assert_null(dist_pair_new("X", "Y", &c, NULL, 0, 0));
	c = cfg;
	c.target = c.low_watermark - 1;
	assert_null(dist_pair_new("X", "Y", &c, NULL, 0, 0));
	assert_null(dist_pair_new("X", "Y", &cfg, NULL, UINT64_MAX, 0));
}

/* A batch answered in part: X pushes exactly what Y pushed, the rest is burnt. */
static void test_batch_partial(void **state)
{
	struct dist_msg o, a;
	struct dist_stats st;
	uint64_t miss[2];

	setup_pair();
	assert_int_equal(x_offer(&o, 5), 5);
	miss[0] = o.e[1].id;
	miss[1] = o.e[3].id;
	missing = miss;
	n_missing = 2;
	a = y_handle_offer(&o);
	missing = NULL;
	n_missing = 0;
	assert_int_equal(a.n, 5);
	assert_int_equal(a.e[1].verdict, DIST_V_NO_KEY);
	assert_int_equal(a.e[3].verdict, DIST_V_NO_KEY);
	x_handle_answer(&a);
	assert_int_equal(X.enc.n_held, 3);
	assert_int_equal(Y.dec.n_held, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(X.enc.held[i], Y.dec.held[i]);
	assert_int_equal(X.enc.held[0], o.e[0].id);
	assert_int_equal(X.enc.held[1], o.e[2].id);
	assert_int_equal(X.enc.held[2], o.e[4].id);
	dist_get_stats(X.dp, &st);
	assert_int_equal(st.accepted, 3);
	assert_int_equal(st.rejected, 2);
	assert_int_equal(st.inflight, 0);
	/* the rest of the fill goes on above the batch */
	fill();
	assert_true(X.enc.held[3] > o.e[4].id);
	check_same_blocks();
	teardown_pair();
}

/*
 * The peer dies after pushing a batch, before its answer arrives: X's offers time out and
 * are burnt (never pushed), Y's blocks are never used for encryption, and the next batch
 * (after Y's restart from its persisted ids) has ids above everything.
 */
static void test_batch_peer_dies(void **state)
{
	struct dist_msg o, lost;
	uint64_t last;
	int n;

	setup_pair();
	dist_kernel_level(X.dp, 0);
	n = x_offer(&o, DIST_BATCH_MAX);
	assert_int_equal(n, cfg.max_inflight);	/* bounded by the offer slots */
	lost = y_handle_offer(&o);		/* pushed at Y; the answer is lost */
	(void)lost;
	last = o.e[n - 1].id;
	dist_persist(Y.dp, &Y.ps);
	dist_pair_free(Y.dp);			/* Y restarts from disk */
	Y.dp = dist_pair_new("Y", "X", &cfg, &Y.ps, Y.dec.last, 0);
	assert_non_null(Y.dp);
	dist_tick(X.dp, now + cfg.offer_timeout_ms, on_drop, &X);
	assert_int_equal(X.n_dropped, n);	/* burnt at X */
	assert_int_equal(X.enc.n_held, 0);
	fill();
	assert_true(X.enc.n_held > 0);
	assert_true(X.enc.held[0] > last);
	check_same_blocks();
	/* a replay of the old batch is refused block by block */
	lost = y_handle_offer(&o);
	for (int i = 0; i < n; i++)
		assert_int_equal(lost.e[i].verdict, DIST_V_REFUSED);
	teardown_pair();
}

/* The refill lead: drain rate x round trip raises both watermark and target. */
static void test_lead(void **state)
{
	struct dist_stats st;

	setup_pair();
	fill();
	dist_kernel_level(X.dp, 5000);		/* above the low watermark: nothing */
	assert_int_equal(dist_need(X.dp), 0);
	dist_set_rates(X.dp, 2000, 1000);	/* 2000 B/s for 1 s: lead 2000 */
	dist_get_stats(X.dp, &st);
	assert_int_equal(st.lead, 2000);
	assert_int_equal(dist_need(X.dp), cfg.target - 5000);	/* started early, same goal */
	dist_set_rates(X.dp, UINT64_MAX, UINT64_MAX);	/* capped at the target */
	dist_get_stats(X.dp, &st);
	assert_int_equal(st.lead, cfg.target);
	dist_set_rates(X.dp, 0, 0);
	assert_int_equal(dist_need(X.dp), cfg.target - 5000);	/* still filling */
	dist_kernel_level(X.dp, cfg.target);
	assert_int_equal(dist_need(X.dp), 0);
	teardown_pair();
}

/* Top-up: refilling starts once the ring is topup bytes below the target. */
static void test_topup(void **state)
{
	struct dist_config c = cfg;

	c.topup = 2000;
	setup_pair();
	dist_pair_free(X.dp);
	X.dp = dist_pair_new("X", "Y", &c, NULL, 0, 0);
	assert_non_null(X.dp);
	fill();
	assert_int_equal(kavail(&X.enc), c.target);
	dist_kernel_level(X.dp, c.target - 1000);	/* above the watermark, 1000 short */
	assert_int_equal(dist_need(X.dp), 0);
	dist_kernel_level(X.dp, c.target - 2000);	/* topup short: refill to the target */
	assert_int_equal(dist_need(X.dp), 2000);
	dist_kernel_level(X.dp, c.target - 1000);	/* still filling (hysteresis) */
	assert_int_equal(dist_need(X.dp), 1000);
	dist_kernel_level(X.dp, c.target);
	assert_int_equal(dist_need(X.dp), 0);
	teardown_pair();
}

static void test_codec(void **state)
{
	struct dist_msg m = { 0 }, d;
	uint8_t buf[DIST_MSG_MAX + 1];
	long n;

	m.type = DIST_OFFER;
	strcpy(m.enc, "site-a");
	strcpy(m.dec, "site_b");
	m.n = 2;
	m.e[0].id = 0x1122334455667788ULL;
	m.e[0].len = 32768;
	m.e[0].source = DIST_SRC_PPETP;
	m.e[0].ref = 42;
	m.e[0].ref_off = 7;
	m.e[1].id = 0x1122334455667789ULL;
	m.e[1].len = 1;
	m.e[1].source = DIST_SRC_LINK;
	m.e[1].ref = 43;
	n = dist_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, 4 + 7 + 7 + 2 + 2 * 25);
	assert_memory_equal(buf, "\x02\x01\x00\x00\x06site-a\x06site_b\x00\x02"
			    "\x11\x22\x33\x44\x55\x66\x77\x88\x00\x00\x80\x00\x02", 33);
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.e[0].id, m.e[0].id);
	assert_int_equal(d.e[0].len, 32768);
	assert_int_equal(d.e[0].source, DIST_SRC_PPETP);
	assert_int_equal(d.e[0].ref, 42);
	assert_int_equal(d.e[0].ref_off, 7);
	assert_int_equal(d.e[1].id, m.e[1].id);
	assert_int_equal(d.e[1].source, DIST_SRC_LINK);
	assert_string_equal(d.dec, "site_b");
	for (long l = 0; l < n; l++)
		assert_int_not_equal(dist_decode(buf, (size_t)l, &d), 0);
	buf[n] = 0;
	assert_int_equal(dist_decode(buf, (size_t)n + 1, &d), -EBADMSG);
	buf[0] = 7;
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EPROTONOSUPPORT);
	buf[0] = 1;			/* version 1 (one block per message) is refused */
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EPROTONOSUPPORT);
	buf[0] = DIST_VERSION;
	buf[n - 13] = 9;	/* unknown source */
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EBADMSG);
	buf[n - 13] = DIST_SRC_LINK;
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	buf[19] = 3;		/* count 3 with 2 entries */
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EBADMSG);
	buf[19] = 2;
	buf[20 + 25 + 7] = 0x88;	/* second id equal to the first: not increasing */
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EBADMSG);
	/* encoder: the same rules */
	m.e[1].id = m.e[0].id;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.e[1].id = m.e[0].id + 1;
	m.e[1].len = DIST_MAX_BLOCK + 1;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.e[1].len = 1;
	m.e[0].id = 0;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.e[0].id = 1;
	m.n = 0;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.n = DIST_BATCH_MAX + 1;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	/* a full batch fits DIST_MSG_MAX with the longest ids */
	memset(&m, 0, sizeof(m));
	m.type = DIST_OFFER;
	memset(m.enc, 'a', DIST_ID_MAX);
	memset(m.dec, 'b', DIST_ID_MAX);
	m.n = DIST_BATCH_MAX;
	for (int i = 0; i < DIST_BATCH_MAX; i++) {
		m.e[i].id = (uint64_t)i + 1;
		m.e[i].len = 4032;
		m.e[i].source = DIST_SRC_LINK;
	}
	assert_int_equal(dist_encode(&m, buf, DIST_MSG_MAX), DIST_MSG_MAX);
	assert_int_equal(dist_encode(&m, buf, DIST_MSG_MAX - 1), -ENOSPC);
	assert_int_equal(dist_decode(buf, DIST_MSG_MAX, &d), 0);
	assert_int_equal(d.n, DIST_BATCH_MAX);
	/* ACCEPT: verdicts 0..3 */
	memset(&m, 0, sizeof(m));
	m.type = DIST_ACCEPT;
	strcpy(m.enc, "X");
	strcpy(m.dec, "Y");
	m.n = 2;
	m.e[0].id = 5;
	m.e[1].id = 6;
	m.e[1].verdict = DIST_V_NO_KEY;
	n = dist_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, 4 + 2 + 2 + 2 + 2 * 9);
	assert_memory_equal(buf + 8, "\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05\x00"
			    "\x00\x00\x00\x00\x00\x00\x00\x06\x02", 20);
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.e[1].verdict, DIST_V_NO_KEY);
	buf[n - 1] = 4;		/* unknown verdict */
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EBADMSG);
	m.e[1].verdict = 4;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	/* version 1's REJECT (type 3) does not exist in version 2 */
	buf[1] = 3;
	assert_int_equal(dist_decode(buf, (size_t)n, &d), -EBADMSG);
	m.type = 3;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	/* RESYNC (non-zero first id), RESYNC_REQ (empty) */
	m.type = DIST_RESYNC;
	m.id = 0;
	assert_int_equal(dist_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.id = 77;
	n = dist_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, 4 + 2 + 2 + 8);
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.id, 77);
	m.type = DIST_RESYNC_REQ;
	n = dist_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, 4 + 2 + 2);
	assert_int_equal(dist_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.type, DIST_RESYNC_REQ);
	m.type = DIST_ACCEPT;
	m.e[1].verdict = 0;
	assert_int_equal(dist_encode(&m, buf, 5), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_initial_fill),
		cmocka_unit_test(test_watermark_and_release),
		cmocka_unit_test(test_restart_never_reuses),
		cmocka_unit_test(test_kernel_lost_out),
		cmocka_unit_test(test_kernel_lost_in),
		cmocka_unit_test(test_decryptor_refuses_old_ids),
		cmocka_unit_test(test_accept_order_and_timeout),
		cmocka_unit_test(test_reserve_counts_as_coming),
		cmocka_unit_test(test_bad_construction),
		cmocka_unit_test(test_batch_partial),
		cmocka_unit_test(test_batch_peer_dies),
		cmocka_unit_test(test_lead),
		cmocka_unit_test(test_topup),
		cmocka_unit_test(test_codec),
	};

	return cmocka_run_group_tests_name("distrib", tests, NULL, NULL);
}
