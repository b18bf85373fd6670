// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the key caching state machine: a leader and a follower, each with its own
 * store, exchanging messages directly (no network).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "budget.h"
#include "caching.h"
#include "log.h"

#define BLK 256

struct fx {
	char dir[64];
	struct store *sa, *sb;
	struct cache_link a, b;	/* a = leader "kms-a" (link "kms-b"), b = follower */
	struct msg req, resp;
};

static const struct cache_params prm = {
	.round_blocks = 8, .min_block_age_ms = 0, .lock_timeout_ms = 1000,
	.fresh_max_age_ms = 60000,
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char p[128], err[256];

	strcpy(f->dir, "/tmp/caching_test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(p, sizeof(p), "%s/a.db", f->dir);
	f->sa = store_open(p, err, sizeof(err));
	snprintf(p, sizeof(p), "%s/b.db", f->dir);
	f->sb = store_open(p, err, sizeof(err));
	cache_link_init(&f->a, f->sa, "kms-a", "kms-b", &prm, 100);
	cache_link_init(&f->b, f->sb, "kms-b", "kms-a", &prm, 500);
	*state = f;
	return f->sa && f->sb ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	store_close(f->sa);
	store_close(f->sb);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void block(uint64_t id, uint8_t *raw)
{
	for (int i = 0; i < BLK; i++)
		raw[i] = (uint8_t)(id * 131 + i * 7);
}

/* Both ends receive block id; flip (bit index) corrupts the follower's copy if >= 0. */
static void qkd(struct fx *f, uint64_t id, int flip)
{
	uint8_t raw[BLK];

	block(id, raw);
	assert_int_equal(store_add_fresh(f->sa, "kms-b", id, raw, BLK, 0), 0);
	if (flip >= 0)
		raw[flip / 8] ^= 1 << (flip % 8);
	assert_int_equal(store_add_fresh(f->sb, "kms-a", id, raw, BLK, 0), 0);
}

static int state_of(struct store *st, const char *link, uint64_t id, uint8_t *key, size_t *len)
{
	int s = -1;

	assert_int_equal(store_get(st, link, id, &s, key, len, NULL, NULL), 0);
	return s;
}

static void round_trip(struct fx *f)
{
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 0);
}

static void test_roles(void **state)
{
	struct fx *f = *state;

	assert_true(f->a.leader);
	assert_false(f->b.leader);
	assert_string_equal(f->a.pair, "kms-a|kms-b");
	assert_string_equal(f->b.pair, "kms-a|kms-b");
	/* a follower never starts rounds, a leader never answers them */
	assert_int_equal(cache_round_start(&f->b, 10, &f->req), 0);
	f->req.type = MSG_VERIFY_REQ;
	assert_int_equal(cache_handle_req(&f->a, &f->req, &f->resp), -1);
	/* nothing fresh: no round */
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 0);
}

static void test_identical_blocks_verified(void **state)
{
	struct fx *f = *state;
	uint8_t ka[STORE_BLOCK_MAX], kb[STORE_BLOCK_MAX], raw[BLK];
	struct store_link_stats s;
	size_t la, lb;

	for (uint64_t id = 1; id <= 5; id++)
		qkd(f, id, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(f->req.vreq.count, 5);
	assert_true(f->req.vreq.txid == 100);
	/* the message holds no key bytes: tags differ from every 32-byte window of the block */
	block(1, raw);
	for (int i = 0; i + KMS_TAG_LEN <= BLK; i++)
		assert_memory_not_equal(f->req.vreq.blocks[0].tag, raw + i, KMS_TAG_LEN);
	assert_int_equal(state_of(f->sa, "kms-b", 1, ka, &la), BS_LOCKED);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_true(f->resp.vresp.txid == 100);
	for (int i = 0; i < 5; i++)
		assert_int_equal(f->resp.vresp.blocks[i].status, VERIFY_OK);
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 0);
	for (uint64_t id = 1; id <= 5; id++) {
		assert_int_equal(state_of(f->sa, "kms-b", id, ka, &la), BS_VERIFIED);
		assert_int_equal(state_of(f->sb, "kms-a", id, kb, &lb), BS_VERIFIED);
		assert_int_equal(la, BLK - CACHE_STRIP);
		assert_int_equal(lb, la);
		assert_memory_equal(ka, kb, la);
		block(id, raw);
		assert_memory_equal(ka, raw + CACHE_STRIP, la);	/* tag material dropped */
	}
	assert_int_equal(store_link_stats(f->sa, "kms-b", &s), 0);
	assert_true(s.verified_total == 5 && s.mismatched_total == 0);
	/* round is over: the same response again is stale */
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 1);
}

static void test_bit_error_discarded_both_ends(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	size_t len;
	/* errors in the kept part, in the HMAC key, in the pad, and in the very last bit */
	const int flips[] = { -1, 8 * 100 + 3, 5, 8 * 40, -1, BLK * 8 - 1 };

	for (uint64_t id = 1; id <= 6; id++)
		qkd(f, id, flips[id - 1]);
	round_trip(f);
	for (uint64_t id = 1; id <= 6; id++) {
		int want = flips[id - 1] < 0 ? BS_VERIFIED : BS_DISCARDED;

		assert_int_equal(state_of(f->sa, "kms-b", id, NULL, &len), want);
		assert_int_equal(state_of(f->sb, "kms-a", id, NULL, &len), want);
		if (want == BS_DISCARDED)
			assert_int_equal(len, 0);
	}
	assert_int_equal(store_link_stats(f->sa, "kms-b", &s), 0);
	assert_true(s.verified_total == 2 && s.mismatched_total == 4);
	assert_int_equal(store_link_stats(f->sb, "kms-a", &s), 0);
	assert_true(s.verified_total == 2 && s.mismatched_total == 4);
}

static void test_missing_block_retried(void **state)
{
	struct fx *f = *state;
	uint8_t raw[BLK];

	qkd(f, 1, -1);
	block(2, raw);	/* only the leader got block 2 so far */
	assert_int_equal(store_add_fresh(f->sa, "kms-b", 2, raw, BLK, 0), 0);
	round_trip(f);
	assert_int_equal(f->resp.vresp.blocks[1].status, VERIFY_MISSING);
	assert_int_equal(state_of(f->sa, "kms-b", 2, NULL, NULL), BS_FRESH);
	assert_int_equal(store_add_fresh(f->sb, "kms-a", 2, raw, BLK, 0), 0);
	/* deferred: not asked about again before CACHE_MISSING_RETRY_MS */
	assert_int_equal(cache_round_start(&f->a, 10 + CACHE_MISSING_RETRY_MS - 1, &f->req), 0);
	assert_int_equal(cache_round_start(&f->a, 10 + CACHE_MISSING_RETRY_MS, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 0);
	assert_int_equal(f->req.vreq.count, 1);
	assert_int_equal(state_of(f->sa, "kms-b", 2, NULL, NULL), BS_VERIFIED);
	assert_int_equal(state_of(f->sb, "kms-a", 2, NULL, NULL), BS_VERIFIED);
}

/* The leader lost the answer (crash, timeout): the follower answers the rerun identically. */
static void test_lost_answer_idempotent(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	struct msg *first = malloc(sizeof(*first));

	qkd(f, 1, -1);
	qkd(f, 2, 3);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	memcpy(first, &f->resp, sizeof(*first));
	/* answer lost; the lock times out */
	cache_tick(&f->a, 10 + 999);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_LOCKED);
	cache_tick(&f->a, 10 + 1000);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_FRESH);
	assert_int_equal(f->a.rounds_timed_out, 1);
	/* a late answer to the dead round changes nothing */
	assert_int_equal(cache_handle_resp(&f->a, first, 10), 1);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_FRESH);
	round_trip(f);
	assert_true(f->req.vreq.txid == 101);
	assert_int_equal(f->resp.vresp.blocks[0].status, VERIFY_OK);
	assert_int_equal(f->resp.vresp.blocks[1].status, VERIFY_MISMATCH);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_VERIFIED);
	assert_int_equal(state_of(f->sa, "kms-b", 2, NULL, NULL), BS_DISCARDED);
	/* counted once on the follower, though it judged twice */
	assert_int_equal(store_link_stats(f->sb, "kms-a", &s), 0);
	assert_true(s.verified_total == 1 && s.mismatched_total == 1);
	free(first);
}

static void test_peer_lost_releases(void **state)
{
	struct fx *f = *state;

	qkd(f, 1, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	/* no second round while one is in flight */
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 0);
	cache_peer_lost(&f->a);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_FRESH);
	assert_int_equal(f->a.txid, 0);
}

static void test_protocol_violations(void **state)
{
	struct fx *f = *state;

	qkd(f, 1, -1);
	qkd(f, 2, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	f->resp.vresp.blocks[1].id = 99;	/* answers about a block not asked for */
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), -1);
	f->resp.vresp.blocks[1].id = 2;
	f->resp.vresp.count = 1;		/* fewer answers than questions */
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), -1);
	f->resp.vresp.count = 2;
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 0);
	/* a forged tag for a fresh follower block is a mismatch, never a verify */
	qkd(f, 3, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	f->req.vreq.blocks[0].tag[0] ^= 1;
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(f->resp.vresp.blocks[0].status, VERIFY_MISMATCH);
	/* a wrong length is a mismatch too */
	qkd(f, 4, -1);
	cache_peer_lost(&f->a);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	f->req.vreq.blocks[0].len++;
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(f->resp.vresp.blocks[0].status, VERIFY_MISMATCH);
}

static void test_stale_fresh_purged(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;

	qkd(f, 1, -1);
	cache_tick(&f->b, 59999);
	assert_int_equal(state_of(f->sb, "kms-a", 1, NULL, NULL), BS_FRESH);
	cache_tick(&f->b, 60001);
	assert_int_equal(state_of(f->sb, "kms-a", 1, NULL, NULL), BS_DISCARDED);
	assert_int_equal(store_link_stats(f->sb, "kms-a", &s), 0);
	assert_true(s.orphaned_total == 1);
}

/* A leader never expires a block unasked: the follower may hold it verified. */
static void test_leader_expires_only_missing(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	uint8_t raw[BLK];
	int64_t late = 10 + prm.fresh_max_age_ms + 1;

	qkd(f, 1, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	/* answer lost, leader restarts much later: its copy is old but must survive */
	cache_peer_lost(&f->a);
	cache_tick(&f->a, late);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_FRESH);
	block(2, raw);		/* block 2 only ever reached the leader */
	assert_int_equal(store_add_fresh(f->sa, "kms-b", 2, raw, BLK, 0), 0);
	assert_int_equal(cache_round_start(&f->a, late, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, late), 0);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_VERIFIED);
	assert_int_equal(state_of(f->sa, "kms-b", 2, NULL, NULL), BS_DISCARDED);
	assert_int_equal(store_link_stats(f->sa, "kms-b", &s), 0);
	assert_true(s.orphaned_total == 1 && s.mismatched_total == 0);
}

/* A block too short to carry a tag is dropped at the leader and never sent. */
/* A leader whose copy changed after the follower verified it: both end up discarding. */
static void test_changed_tag_after_verify(void **state)
{
	struct fx *f = *state;

	qkd(f, 1, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(state_of(f->sb, "kms-a", 1, NULL, NULL), BS_VERIFIED);
	f->req.vreq.blocks[0].tag[5] ^= 4;
	assert_int_equal(cache_handle_req(&f->b, &f->req, &f->resp), 0);
	assert_int_equal(f->resp.vresp.blocks[0].status, VERIFY_MISMATCH);
	assert_int_equal(state_of(f->sb, "kms-a", 1, NULL, NULL), BS_DISCARDED);
	assert_int_equal(cache_handle_resp(&f->a, &f->resp, 10), 0);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_DISCARDED);
}

static void test_short_block(void **state)
{
	struct fx *f = *state;
	uint8_t raw[BLK];

	block(1, raw);
	assert_int_equal(store_add_fresh(f->sa, "kms-b", 1, raw, CACHE_STRIP, 0), 0);
	qkd(f, 2, -1);
	assert_int_equal(cache_round_start(&f->a, 10, &f->req), 1);
	assert_int_equal(f->req.vreq.count, 1);
	assert_true(f->req.vreq.blocks[0].id == 2);
	assert_int_equal(state_of(f->sa, "kms-b", 1, NULL, NULL), BS_DISCARDED);
}

static void test_budget_next(void **state)
{
	(void)state;
	assert_int_equal(budget_next(4, 4, 1000000, 0, 1, 64), 64);	/* no bound */
	assert_int_equal(budget_next(64, 64, 20000, 5000, 1, 64), 16);	/* 4x over: shrink */
	assert_int_equal(budget_next(64, 64, 1000000, 5000, 1, 64), 1);	/* never below lo */
	assert_int_equal(budget_next(4, 4, 100, 5000, 1, 64), 8);	/* grow: at most 2x */
	assert_int_equal(budget_next(4, 4, 3000, 5000, 1, 64), 6);	/* ... to what fits */
	assert_int_equal(budget_next(48, 48, 100, 5000, 1, 64), 64);	/* never above hi */
	assert_int_equal(budget_next(8, 0, 0, 5000, 1, 64), 8);	/* no work: no news */
	assert_int_equal(budget_next(8, 2, 0, 5000, 1, 64), 16);	/* too fast to time */
}

/* A round that overran the budget makes the next one smaller; with no budget it does not. */
static void test_round_budget(void **state)
{
	struct fx *f = *state;
	struct cache_params tight = prm;

	tight.round_budget_us = 1;	/* no round of 8 blocks takes under 1 us a block */
	cache_link_init(&f->a, f->sa, "kms-a", "kms-b", &tight, 100);
	for (uint64_t id = 1; id <= 20; id++)
		qkd(f, id, -1);
	assert_int_equal(f->a.cap, 8);
	round_trip(f);
	assert_int_equal(f->req.vreq.count, 8);
	assert_int_equal(f->a.cap, 1);
	assert_true(f->a.rounds_shrunk >= 1);
	round_trip(f);
	assert_int_equal(f->req.vreq.count, 1);	/* the bound holds, and work goes on */

	/* larger rounds shrink no further than an eighth: throughput per round trip stays */
	tight.round_blocks = 16;
	cache_link_init(&f->a, f->sa, "kms-a", "kms-b", &tight, 150);
	for (uint64_t id = 21; id <= 60; id++)
		qkd(f, id, -1);
	round_trip(f);
	assert_int_equal(f->req.vreq.count, 16);
	assert_int_equal(f->a.cap, 16 / CACHE_ROUND_FLOOR_DIV);
	round_trip(f);
	assert_int_equal(f->req.vreq.count, 2);
	assert_int_equal(f->a.cap, 2);

	tight.round_blocks = prm.round_blocks;
	tight.round_budget_us = 0;
	cache_link_init(&f->a, f->sa, "kms-a", "kms-b", &tight, 200);
	round_trip(f);
	assert_int_equal(f->req.vreq.count, 8);
	assert_int_equal(f->a.cap, 8);
	assert_int_equal(f->a.rounds_shrunk, 0);
}

static void test_tag_function(void **state)
{
	uint8_t raw[BLK], t1[KMS_TAG_LEN], t2[KMS_TAG_LEN];

	block(7, raw);
	assert_int_equal(cache_tag("a|b", 7, raw, BLK, t1), 0);
	assert_int_equal(cache_tag("a|b", 7, raw, BLK, t2), 0);
	assert_memory_equal(t1, t2, KMS_TAG_LEN);
	assert_int_equal(cache_tag("a|c", 7, raw, BLK, t2), 0);
	assert_memory_not_equal(t1, t2, KMS_TAG_LEN);
	assert_int_equal(cache_tag("a|b", 8, raw, BLK, t2), 0);
	assert_memory_not_equal(t1, t2, KMS_TAG_LEN);
	/* the pad enters the tag one to one */
	raw[CACHE_TAG_KEY_LEN] ^= 0x80;
	assert_int_equal(cache_tag("a|b", 7, raw, BLK, t2), 0);
	assert_int_equal(t1[0] ^ t2[0], 0x80);
	assert_memory_equal(t1 + 1, t2 + 1, KMS_TAG_LEN - 1);
	assert_int_equal(cache_tag("a|b", 7, raw, CACHE_STRIP, t2), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identical_blocks_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_error_discarded_both_ends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_block_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_answer_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_lost_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_violations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_fresh_purged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_expires_only_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_tag_after_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tag_function, setup, teardown),
		cmocka_unit_test(test_budget_next),
		cmocka_unit_test_setup_teardown(test_round_budget, setup, teardown),
	};

	log_init("caching_test", 0, LOG_LVL_WARN);
	return cmocka_run_group_tests_name("caching", tests, NULL, NULL);
}
