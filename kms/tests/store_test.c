// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the key store state machine, including reopen after a simulated crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"

struct fx {
	char dir[64];
	char path[96];
	struct store *st;
	struct store_block *out;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	strcpy(f->dir, "/tmp/store_test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/k.db", f->dir);
	f->st = store_open(f->path, err, sizeof(err));
	f->out = calloc(16, sizeof(*f->out));
	*state = f;
	if (!f->st || !f->out) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	store_close(f->st);
	free(f->out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void add(struct store *st, const char *link, uint64_t id, uint8_t fill, size_t len,
		int64_t now)
{
	uint8_t raw[256];

	memset(raw, fill, sizeof(raw));
	raw[0] = (uint8_t)id;
	assert_int_equal(store_add_fresh(st, link, id, raw, len, now), 0);
}

static void test_add_lock_verify(void **state)
{
	struct fx *f = *state;
	uint8_t key[STORE_BLOCK_MAX], tag[32] = { 7 }, t2[32];
	struct store_link_stats ls;
	uint64_t ids[8];
	size_t n, len;
	int st, has_tag;

	for (uint64_t i = 1; i <= 5; i++)
		add(f->st, "b", i, 0x40 + i, 128, 1000 + i);
	/* the same id again, even with other bytes, is ignored */
	assert_int_equal(store_add_fresh(f->st, "b", 3, key, 100, 2000), 1);
	/* min age: only blocks created at or before now - min_age */
	assert_int_equal(store_lock_fresh(f->st, "b", 8, 42, 1103, 100, 9999, ids, &n), 0);
	assert_int_equal(n, 3);
	assert_true(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
	assert_int_equal(store_get(f->st, "b", 2, &st, key, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_LOCKED);
	assert_int_equal(len, 128);
	/* locked blocks are not locked again */
	assert_int_equal(store_lock_fresh(f->st, "b", 8, 43, 1103, 100, 9999, ids, &n), 0);
	assert_int_equal(n, 0);
	/* verify strips the tag material: 128 - 64 bytes remain, the tail of the raw block */
	assert_int_equal(store_verify(f->st, "b", 2, tag, 32, 64), 0);
	assert_int_equal(store_get(f->st, "b", 2, &st, key, &len, t2, &has_tag), 0);
	assert_int_equal(st, BS_VERIFIED);
	assert_int_equal(len, 64);
	assert_int_equal(key[0], 0x42);
	assert_true(has_tag);
	/* the spent tag material is zeroed where it lies in the file's key row */
	{
		sqlite3 *db;
		sqlite3_stmt *q;

		assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT substr(key,1,64)=zeroblob(64),"
			"length(key) FROM block_keys WHERE link='b' AND id=2", -1, &q, NULL),
			SQLITE_OK);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(q, 0), 1);
		assert_int_equal(sqlite3_column_int(q, 1), 128);
		sqlite3_finalize(q);
		sqlite3_close(db);
	}
	/* what the operator sees held is key, not the spent tag material */
	assert_int_equal(store_link_stats(f->st, "b", &ls), 0);
	assert_true(ls.blocks[BS_VERIFIED] == 1 && ls.bytes[BS_VERIFIED] == 64);
	assert_memory_equal(t2, tag, 32);
	/* verifying twice is refused */
	assert_int_equal(store_verify(f->st, "b", 2, tag, 32, 64), -1);
	/* unlock of round 42 frees the two others */
	assert_int_equal(store_unlock(f->st, "b", 42), 2);
	assert_int_equal(store_get(f->st, "b", 1, &st, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(st, BS_FRESH);
	assert_int_equal(store_get(f->st, "b", 99, &st, NULL, NULL, NULL, NULL), 1);
	/* another link is a separate namespace */
	add(f->st, "c", 2, 1, 128, 0);
}

static void test_discard_counts(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	uint8_t tag[32] = { 0 };
	size_t len;
	int st;

	for (uint64_t i = 1; i <= 4; i++)
		add(f->st, "b", i, 1, 200, 10);
	assert_int_equal(store_verify(f->st, "b", 1, tag, 32, 64), 0);
	assert_int_equal(store_discard(f->st, "b", 2, DISCARD_MISMATCH, tag, 32), 0);
	assert_int_equal(store_discard(f->st, "b", 2, DISCARD_MISMATCH, tag, 32), -1);
	assert_int_equal(store_purge_stale(f->st, "b", 11), 2);
	assert_int_equal(store_get(f->st, "b", 2, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_DISCARDED);
	assert_int_equal(len, 0);
	/* a discarded id can never come back */
	assert_int_equal(store_add_fresh(f->st, "b", 2, tag, 32, 20), 1);
	assert_int_equal(store_link_stats(f->st, "b", &s), 0);
	assert_true(s.blocks[BS_VERIFIED] == 1 && s.bytes[BS_VERIFIED] == 136);
	assert_true(s.blocks[BS_DISCARDED] == 3 && s.bytes[BS_DISCARDED] == 0);
	assert_true(s.verified_total == 1 && s.mismatched_total == 1 && s.orphaned_total == 2);
	assert_int_equal(store_link_live_bytes(f->st, "b"), 136);
	assert_int_equal(store_link_live_bytes(f->st, "c"), 0);
}

/* Live bytes split by direction, and an idle direction's oldest blocks dropped for room. */
static void test_live_split_surplus(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	uint8_t tag[32] = { 0 };
	int64_t unv, par[2];
	size_t len;
	int st;

	for (uint64_t i = 1; i <= 6; i++)
		add(f->st, "b", i, 1, 200, 10);
	for (uint64_t i = 1; i <= 5; i++)
		assert_int_equal(store_verify(f->st, "b", i, tag, 32, 64), 0);
	assert_int_equal(store_link_live_split(f->st, "b", &unv, par), 0);
	assert_true(unv == 200 && par[0] == 2 * 136 && par[1] == 3 * 136);
	/* oldest first, whole blocks, until at least the bytes asked for */
	assert_int_equal(store_discard_surplus(f->st, "b", 1, 150), 2 * 136);
	assert_int_equal(store_get(f->st, "b", 1, &st, NULL, &len, NULL, NULL), 0);
	assert_true(st == BS_DISCARDED && len == 0);
	assert_int_equal(store_get(f->st, "b", 3, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_DISCARDED);
	assert_int_equal(store_get(f->st, "b", 5, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_VERIFIED);
	assert_int_equal(store_link_live_split(f->st, "b", &unv, par), 0);
	assert_true(unv == 200 && par[0] == 2 * 136 && par[1] == 136);
	assert_int_equal(store_link_live_bytes(f->st, "b"), 200 + 3 * 136);
	/* the even blocks untouched; nothing of this counted as a mismatch or an orphan */
	assert_int_equal(store_discard_surplus(f->st, "c", 0, 1000), 0);
	assert_int_equal(store_link_stats(f->st, "b", &s), 0);
	assert_true(s.mismatched_total == 0 && s.orphaned_total == 0);
}

static void verify_all(struct store *st, const char *link, uint64_t lo, uint64_t hi)
{
	uint8_t tag[32] = { 0 };

	for (uint64_t i = lo; i <= hi; i++)
		assert_int_equal(store_verify(st, link, i, tag, 32, 64), 0);
}

static void test_discard_only_unused(void **state)
{
	struct fx *f = *state;
	uint8_t tag[32] = { 0 };
	size_t n;

	for (uint64_t i = 1; i <= 2; i++)
		add(f->st, "b", i, 1, 200, 10);
	verify_all(f->st, "b", 1, 2);
	assert_int_equal(store_take(f->st, "b", 1, f->out, 1, &n), 0);	/* 1 delivered */
	assert_int_equal(store_discard(f->st, "b", 1, DISCARD_MISMATCH, tag, 32), -1);
	assert_int_equal(store_discard(f->st, "b", 2, DISCARD_MISMATCH, tag, 32), 0);
	assert_int_equal(store_discard(f->st, "b", 2, DISCARD_MISMATCH, tag, 32), -1);
}

static void test_take_once(void **state)
{
	struct fx *f = *state;
	uint64_t seen[16] = { 0 };
	size_t n, total = 0;
	int st;

	for (uint64_t i = 1; i <= 10; i++)
		add(f->st, "b", i, 0x10 + i, 164, 0);	/* 100 key bytes once verified */
	verify_all(f->st, "b", 1, 10);
	/* at least 250 bytes: three blocks */
	assert_int_equal(store_take(f->st, "b", 250, f->out, 16, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(f->out[i].len, 100);
		assert_int_equal(f->out[i].key[1], 0x10 + f->out[i].id);
		seen[f->out[i].id]++;
	}
	while (store_take(f->st, "b", 1, f->out, 16, &n) == 0 && n > 0) {
		for (size_t i = 0; i < n; i++)
			seen[f->out[i].id]++;
		total += n;
	}
	assert_int_equal(total, 7);
	for (int i = 1; i <= 10; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(store_consume(f->st, "b", 4), 0);
	assert_int_equal(store_consume(f->st, "b", 4), 1);
	assert_int_equal(store_get(f->st, "b", 4, &st, NULL, &n, NULL, NULL), 0);
	assert_int_equal(st, BS_CONSUMED);
	assert_int_equal(n, 0);
	/* take refuses to run inside an open transaction: it must commit before returning */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_take(f->st, "b", 1, f->out, 16, &n), -1);
	store_rollback(f->st);
}

static void test_take_parity_and_id(void **state)
{
	struct fx *f = *state;
	size_t n;
	int st;

	for (uint64_t i = 1; i <= 6; i++)
		add(f->st, "b", i, 0x20 + i, 164, 0);
	verify_all(f->st, "b", 1, 5);		/* 6 stays fresh */
	assert_int_equal(store_take_parity(f->st, "b", 0, 1, f->out, 16, &n), 0);
	assert_int_equal(n, 1);
	assert_true(f->out[0].id == 2);
	assert_int_equal(store_take_parity(f->st, "b", 1, 150, f->out, 16, &n), 0);
	assert_int_equal(n, 2);
	assert_true(f->out[0].id == 1 && f->out[1].id == 3);
	assert_int_equal(store_take_parity(f->st, "b", 0, 1000, f->out, 16, &n), 0);
	assert_int_equal(n, 1);
	assert_true(f->out[0].id == 4);		/* 6 is not verified */
	/* by id: exactly once, verified only */
	assert_int_equal(store_take_id(f->st, "b", 5, f->out), 0);
	assert_true(f->out[0].id == 5 && f->out[0].len == 100);
	assert_int_equal(f->out[0].key[1], 0x25);
	assert_int_equal(store_take_id(f->st, "b", 5, f->out), 1);
	assert_int_equal(store_take_id(f->st, "b", 6, f->out), 1);
	assert_int_equal(store_take_id(f->st, "b", 99, f->out), 1);
	assert_int_equal(store_get(f->st, "b", 5, &st, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(st, BS_DELIVERED);
	assert_int_equal(store_get(f->st, "b", 6, &st, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(st, BS_FRESH);
}

static void test_reserve(void **state)
{
	struct fx *f = *state;
	size_t n;
	int st;

	for (uint64_t i = 1; i <= 4; i++)
		add(f->st, "b", i, 2, 100, 0);
	verify_all(f->st, "b", 1, 4);
	assert_int_equal(store_reserve(f->st, "b", 7, 2, f->out, &n), 0);
	assert_int_equal(n, 2);
	assert_true(f->out[0].id == 1 && f->out[1].id == 2);
	assert_int_equal(store_release_reserved(f->st, 7), 2);
	assert_int_equal(store_reserve(f->st, "b", 8, 3, f->out, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_commit_reserved(f->st, 8), 3);
	assert_int_equal(store_release_reserved(f->st, 8), 0);
	assert_int_equal(store_get(f->st, "b", 3, &st, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(st, BS_DELIVERED);
	assert_int_equal(store_take(f->st, "b", 1000, f->out, 16, &n), 0);
	assert_int_equal(n, 1);
	assert_true(f->out[0].id == 4);
}

/* Reopen the file as a restarted daemon would: nothing verified lost, nothing handed twice. */
static void test_reopen_recover(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	uint64_t ids[4];
	char err[256];
	size_t n;
	int st;

	for (uint64_t i = 1; i <= 6; i++)
		add(f->st, "b", i, 3, 100, 0);
	verify_all(f->st, "b", 1, 4);
	assert_int_equal(store_take(f->st, "b", 1, f->out, 1, &n), 0);		/* 1 delivered */
	assert_int_equal(store_reserve(f->st, "b", 5, 1, f->out, &n), 0);	/* 2 reserved */
	assert_int_equal(store_lock_fresh(f->st, "b", 4, 9, 0, 0, 10, ids, &n), 0);	/* 5, 6 */
	assert_int_equal(n, 2);
	/* an uncommitted transaction is lost with the process */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_verify(f->st, "b", 5, (uint8_t *)"x", 1, 64), 0);
	store_close(f->st);

	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(store_recover(f->st), 0);
	assert_int_equal(store_link_stats(f->st, "b", &s), 0);
	assert_true(s.blocks[BS_FRESH] == 2 && s.blocks[BS_VERIFIED] == 3);
	assert_true(s.blocks[BS_DELIVERED] == 1 && s.blocks[BS_LOCKED] == 0);
	assert_true(s.verified_total == 4);
	assert_int_equal(store_get(f->st, "b", 1, &st, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(st, BS_DELIVERED);
	assert_int_equal(store_take(f->st, "b", 10000, f->out, 16, &n), 0);
	assert_int_equal(n, 3);
	assert_true(f->out[0].id == 2 && f->out[1].id == 3 && f->out[2].id == 4);
}

static void test_release_expired(void **state)
{
	struct fx *f = *state;
	uint64_t ids[4];
	size_t n;

	add(f->st, "b", 1, 1, 100, 0);
	add(f->st, "c", 1, 1, 100, 0);
	assert_int_equal(store_lock_fresh(f->st, "b", 4, 1, 0, 0, 500, ids, &n), 0);
	assert_int_equal(store_lock_fresh(f->st, "c", 4, 1, 0, 0, 900, ids, &n), 0);
	assert_int_equal(store_release_expired(f->st, 499), 0);
	assert_int_equal(store_release_expired(f->st, 501), 1);
	assert_int_equal(store_release_expired(f->st, 1000), 1);
}

static void test_defer(void **state)
{
	struct fx *f = *state;
	struct store_link_stats s;
	uint64_t ids[4];
	size_t n;
	int st;

	add(f->st, "b", 1, 1, 100, 100);
	add(f->st, "b", 2, 1, 100, 500);
	assert_int_equal(store_lock_fresh(f->st, "b", 4, 1, 1000, 0, 9999, ids, &n), 0);
	assert_int_equal(n, 2);
	/* block 1 is older than the expiry line: orphan; block 2 is deferred to t=2000 */
	assert_int_equal(store_defer(f->st, "b", 1, 2000, 300), 2);
	assert_int_equal(store_defer(f->st, "b", 2, 2000, 300), 1);
	assert_int_equal(store_defer(f->st, "b", 2, 2000, 300), 0);	/* no longer locked */
	assert_int_equal(store_get(f->st, "b", 1, &st, NULL, &n, NULL, NULL), 0);
	assert_int_equal(st, BS_DISCARDED);
	assert_int_equal(n, 0);
	assert_int_equal(store_lock_fresh(f->st, "b", 4, 2, 1999, 0, 9999, ids, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_lock_fresh(f->st, "b", 4, 2, 2000, 0, 9999, ids, &n), 0);
	assert_int_equal(n, 1);
	assert_true(ids[0] == 2);
	assert_int_equal(store_link_stats(f->st, "b", &s), 0);
	assert_true(s.orphaned_total == 1);
}

/* PPETP hop key: own parity, long enough, straight to consumed; the other end by id. */
static void test_take_use(void **state)
{
	struct fx *f = *state;
	struct store_link_stats ls;
	char err[256];
	size_t len;
	int st;

	for (uint64_t i = 1; i <= 6; i++)
		add(f->st, "b", i, 0x20 + i, i == 2 ? 84 : 164, 0);
	verify_all(f->st, "b", 1, 5);		/* 6 stays fresh; 2 holds 20 bytes, the rest 100 */
	assert_int_equal(store_take_use(f->st, "b", 0, 50, f->out), 0);
	assert_true(f->out[0].id == 4 && f->out[0].len == 100);	/* 2 is too short */
	assert_int_equal(f->out[0].key[1], 0x24);
	assert_int_equal(store_get(f->st, "b", 4, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_CONSUMED);
	assert_int_equal(len, 0);		/* bytes wiped with the same commit */
	assert_int_equal(store_take_use(f->st, "b", 0, 50, f->out), 1);
	assert_int_equal(store_take_use(f->st, "b", 0, 10, f->out), 0);
	assert_true(f->out[0].id == 2 && f->out[0].len == 20);
	assert_int_equal(store_take_use(f->st, "b", 1, 100, f->out), 0);
	assert_true(f->out[0].id == 1);
	/* the receiving end: by id, once, verified only */
	assert_int_equal(store_take_use_id(f->st, "b", 3, f->out), 0);
	assert_true(f->out[0].id == 3 && f->out[0].key[1] == 0x23);
	assert_int_equal(store_take_use_id(f->st, "b", 3, f->out), 1);
	assert_int_equal(store_take_use_id(f->st, "b", 6, f->out), 1);	/* fresh */
	assert_int_equal(store_take_use_id(f->st, "b", 99, f->out), 1);
	assert_int_equal(store_take_use_id(f->st, "c", 5, f->out), 1);	/* other link */
	/* a block taken for distribution is not a hop key, and the other way round */
	assert_int_equal(store_take_id(f->st, "b", 5, f->out), 0);
	assert_int_equal(store_take_use_id(f->st, "b", 5, f->out), 1);
	assert_int_equal(store_take_id(f->st, "b", 1, f->out), 1);
	assert_int_equal(store_link_stats(f->st, "b", &ls), 0);
	assert_true(ls.blocks[BS_CONSUMED] == 4 && ls.bytes[BS_CONSUMED] == 0);
	/* consumed survives a reopen */
	store_close(f->st);
	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(store_take_use_id(f->st, "b", 3, f->out), 1);
	assert_int_equal(store_take_use(f->st, "b", 0, 1, f->out), 1);
}

static void test_xfer(void **state)
{
	struct fx *f = *state;
	struct store_xfer_stats xs;
	uint8_t key[64], fp[STORE_FP_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	char err[256];
	sqlite3 *db;
	uint8_t got[8];
	size_t len;
	int st;

	memset(key, 0x61, sizeof(key));
	assert_int_equal(store_xfer_add(f->st, "c", "a", 7, key, 50, fp, 100), 0);
	key[0] = 0x62;
	assert_int_equal(store_xfer_add(f->st, "c", "a", 7, key, 60, fp, 300), 1);	/* once */
	assert_int_equal(store_xfer_add(f->st, "c", "c", 9, key, 40, fp, 50), 0);
	assert_int_equal(store_xfer_add(f->st, "c", "a", 8, key, 30, fp, 200), 0);
	assert_int_equal(store_xfer_add(f->st, "d", "a", 1, key, 0, fp, 200), -1);
	assert_int_equal(store_xfer_stats(f->st, "c", "a", &xs), 0);
	assert_true(xs.blocks[BS_VERIFIED][0] == 2 && xs.bytes[BS_VERIFIED][0] == 80);
	assert_true(xs.blocks[BS_VERIFIED][1] == 1 && xs.bytes[BS_VERIFIED][1] == 40);
	/* own keys oldest first; the peer's by txid */
	assert_int_equal(store_xfer_take(f->st, "c", "a", 0, f->out), 0);
	assert_true(f->out[0].id == 7 && f->out[0].len == 50 && f->out[0].key[0] == 0x61);
	assert_int_equal(store_xfer_take(f->st, "c", "c", 9, f->out), 0);
	assert_true(f->out[0].len == 40 && f->out[0].key[0] == 0x62);
	assert_int_equal(store_xfer_take(f->st, "c", "c", 9, f->out), 1);
	assert_int_equal(store_xfer_take(f->st, "c", "a", 9, f->out), 1);
	assert_int_equal(store_xfer_take(f->st, "c", NULL, 0, f->out), 0);
	assert_true(f->out[0].id == 8);
	assert_int_equal(store_xfer_take(f->st, "c", NULL, 0, f->out), 1);
	assert_int_equal(store_xfer_take(f->st, "d", NULL, 0, f->out), 1);
	assert_int_equal(store_xfer_consume(f->st, "c", "a", 7), 0);
	assert_int_equal(store_xfer_consume(f->st, "c", "a", 7), 1);
	assert_int_equal(store_xfer_stats(f->st, "c", "a", &xs), 0);
	assert_true(xs.blocks[BS_CONSUMED][0] == 1 && xs.bytes[BS_CONSUMED][0] == 0);
	assert_true(xs.blocks[BS_DELIVERED][0] == 1 && xs.blocks[BS_DELIVERED][1] == 1);
	/*
	 * A store of schema 1 (keys in the blocks rows; no xfer, no dist_map) is upgraded on
	 * open: its blocks keep their states and their keys move to block_keys; a consumed
	 * block stays keyless, and its id is still refused.
	 */
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE blocks(link TEXT NOT NULL, id INTEGER NOT NULL, state INTEGER NOT NULL,"
		" created INTEGER NOT NULL, len INTEGER NOT NULL, key BLOB, tag BLOB, txid INTEGER,"
		" lock_until INTEGER, PRIMARY KEY(link, id)) WITHOUT ROWID;"
		"CREATE INDEX blocks_state ON blocks(link, state, created, len);"
		"CREATE TABLE counters(link TEXT PRIMARY KEY, verified INTEGER NOT NULL,"
		" mismatched INTEGER NOT NULL, orphaned INTEGER NOT NULL);"
		"INSERT INTO blocks VALUES('b',1,2,0,4,x'01020304',NULL,NULL,NULL);"
		"INSERT INTO blocks VALUES('b',2,5,0,4,NULL,NULL,NULL,NULL);"
		"PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(store_get(f->st, "b", 1, &st, got, &len, NULL, NULL), 0);
	assert_true(st == BS_VERIFIED && len == 4 && !memcmp(got, "\1\2\3\4", 4));
	assert_int_equal(store_get(f->st, "b", 2, &st, got, &len, NULL, NULL), 0);
	assert_true(st == BS_CONSUMED && len == 0);
	assert_int_equal(store_add_fresh(f->st, "b", 1, key, 10, 0), 1);
	assert_int_equal(store_add_fresh(f->st, "b", 2, key, 10, 0), 1);
	assert_int_equal(store_take(f->st, "b", 1, f->out, 4, &len), 0);
	assert_true(len == 1 && f->out[0].id == 1 && f->out[0].len == 4 && f->out[0].key[3] == 4);
	assert_int_equal(store_xfer_add(f->st, "c", "a", 7, key, 50, fp, 100), 0);
	assert_int_equal(store_dist_map_add(f->st, "c", 0, 1, 7), 0);
	assert_int_equal(store_sae_add(f->st, "bc490419-7d60-487f-adc1-4ddcc177c139", "m", "s",
				       key, 8, 100), 0);
}

struct sae_rows {
	int n;
	char line[8][300];
};

static void sae_pending(void *arg, const char *master, const char *slave, uint64_t keys,
			uint64_t bytes)
{
	struct sae_rows *r = arg;

	if (r->n < 8)
		snprintf(r->line[r->n], sizeof(r->line[0]), "%s>%s %llu %llu", master, slave,
			 (unsigned long long)keys, (unsigned long long)bytes);
	r->n++;
}

static int sae_pending_rows(struct store *st, struct sae_rows *r)
{
	memset(r, 0, sizeof(*r));
	return store_sae_pending(st, sae_pending, r);
}

#define SAE_K1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define SAE_K2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define SAE_K3 "00000003-3434-48fe-aa4d-14f41d46cf92"
#define SAE_K4 "00000004-3434-48fe-aa4d-14f41d46cf92"

/*
 * Keys held for slave SAEs (northbound KME): unique by key_ID, handed out once and only to
 * the slave and master they were made for, counted per pair, expired by age; and a store
 * of schema 5 gains the table on open.
 */
static void test_sae_keys(void **state)
{
	struct fx *f = *state;
	uint8_t k1[32], k2[16], small[8], out[64];
	struct sae_rows r;
	char err[256];
	sqlite3 *db;
	size_t len;
	int st;

	memset(k1, 0x11, sizeof(k1));
	memset(k2, 0x22, sizeof(k2));
	memset(small, 0x33, sizeof(small));
	k1[31] = 0x1f;
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(store_sae_add(f->st, SAE_K1, "m", "s", k1, sizeof(k1), 100), 0);
	assert_int_equal(store_sae_add(f->st, SAE_K2, "m", "s", k2, sizeof(k2), 200), 0);
	assert_int_equal(store_sae_add(f->st, SAE_K3, "m", "s2", small, sizeof(small), 300), 0);
	assert_int_equal(store_sae_add(f->st, SAE_K4, "m2", "s", small, sizeof(small), 400), 0);
	/* a key_ID already held: nothing added, nothing replaced */
	assert_int_equal(store_sae_add(f->st, SAE_K1, "m", "s", small, sizeof(small), 500), 1);
	assert_int_equal(store_sae_add(f->st, SAE_K1, "x", "y", small, sizeof(small), 500), 1);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.line[0], "m>s 2 48");
	assert_string_equal(r.line[1], "m>s2 1 8");
	assert_string_equal(r.line[2], "m2>s 1 8");
	/* the wrong slave, the wrong master, the two swapped, too small a buffer: left alone */
	memset(out, 0xee, sizeof(out));
	len = 777;
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s2", "m", out, sizeof(out), &len), 1);
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s", "m2", out, sizeof(out), &len), 1);
	assert_int_equal(store_sae_take(f->st, SAE_K1, "m", "s", out, sizeof(out), &len), 1);
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s", "m", out, sizeof(k1) - 1, &len), 1);
	assert_int_equal(store_sae_take(f->st, "no-such-key", "s", "m", out, sizeof(out), &len),
			 1);
	assert_int_equal(len, 777);
	assert_int_equal(out[0], 0xee);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_string_equal(r.line[0], "m>s 2 48");
	/* the right pair, a buffer of exactly its size: once */
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s", "m", out, sizeof(k1), &len), 0);
	assert_int_equal(len, sizeof(k1));
	assert_memory_equal(out, k1, sizeof(k1));
	assert_int_equal(out[sizeof(k1)], 0xee);
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s", "m", out, sizeof(out), &len), 1);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_string_equal(r.line[0], "m>s 1 16");
	/* a take inside the caller's transaction is undone by its rollback */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_sae_take(f->st, SAE_K2, "s", "m", out, sizeof(out), &len), 0);
	store_rollback(f->st);
	/* held across a reopen */
	store_close(f->st);
	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.line[0], "m>s 1 16");
	/* expiry: created strictly before the bound, and how many */
	assert_int_equal(store_sae_expire(f->st, 200), 0);
	assert_int_equal(store_sae_expire(f->st, 301), 2);
	assert_int_equal(store_sae_expire(f->st, 301), 0);
	assert_int_equal(store_sae_take(f->st, SAE_K2, "s", "m", out, sizeof(out), &len), 1);
	assert_int_equal(store_sae_take(f->st, SAE_K3, "s2", "m", out, sizeof(out), &len), 1);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.line[0], "m2>s 1 8");
	/* an expired key_ID can be added again (the table holds no tombstones) */
	assert_int_equal(store_sae_add(f->st, SAE_K2, "m", "s", k2, sizeof(k2), 600), 0);
	/*
	 * A store of schema 5 (no sae_keys) is upgraded on open: its blocks stay, the new
	 * table starts empty and works.
	 */
	add(f->st, "b", 1, 0x44, 100, 0);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE sae_keys; PRAGMA user_version=5", NULL, NULL,
				      NULL), SQLITE_OK);
	sqlite3_close(db);
	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(store_get(f->st, "b", 1, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_FRESH);
	assert_int_equal(sae_pending_rows(f->st, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(store_sae_add(f->st, SAE_K1, "m", "s", k1, sizeof(k1), 700), 0);
	assert_int_equal(store_sae_take(f->st, SAE_K1, "s", "m", out, sizeof(out), &len), 0);
	assert_memory_equal(out, k1, sizeof(k1));
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	{
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), STORE_SCHEMA_VERSION);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
}

static void drained(void *arg, uint64_t ring_id, uint64_t ref)
{
	uint64_t *sum = arg;

	*sum += ring_id * 1000 + ref;
}

/* kdist's pushed-block map: persistent, take-once, drained above an id. */
static void test_dist_map(void **state)
{
	struct fx *f = *state;
	uint64_t ref = 0, sum = 0;
	char err[256];

	for (uint64_t i = 1; i <= 5; i++) {
		assert_int_equal(store_dist_map_add(f->st, "kms-b", 0, i, 100 + i), 0);
		assert_int_equal(store_dist_map_add(f->st, "kms-b", 1, i, 200 + i), 0);
	}
	assert_int_equal(store_dist_map_add(f->st, "kms-c", 0, 1, 301), 0);
	store_close(f->st);
	f->st = store_open(f->path, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(store_dist_map_take(f->st, "kms-b", 0, 2, &ref), 0);
	assert_true(ref == 102);
	assert_int_equal(store_dist_map_take(f->st, "kms-b", 0, 2, &ref), 1);
	assert_int_equal(store_dist_map_take(f->st, "kms-b", 1, 9, &ref), 1);
	assert_int_equal(store_dist_map_take(f->st, "kms-c", 1, 1, &ref), 1);
	assert_true(store_dist_map_count(f->st, "kms-b", 0) == 4);
	/* ids above 3 of the encrypt ring: 4 and 5 */
	assert_int_equal(store_dist_map_drain(f->st, "kms-b", 0, 3, drained, &sum), 2);
	assert_true(sum == 4104 + 5105);
	assert_true(store_dist_map_count(f->st, "kms-b", 0) == 2);
	sum = 0;
	assert_int_equal(store_dist_map_drain(f->st, "kms-b", 1, 0, drained, &sum), 5);
	assert_true(store_dist_map_count(f->st, "kms-b", 1) == 0);
	assert_true(store_dist_map_count(f->st, "kms-c", 0) == 1);
	assert_int_equal(store_dist_map_drain(f->st, "kms-b", 1, 0, drained, &sum), 0);
}

/*
 * Batched takes inside the caller's transaction (kdist's OFFER / ACCEPT batches): refused
 * outside one; a rollback leaves every block verified and no map entry; a commit makes
 * the takes and the map entries durable together.
 */
static void test_take_in_tx(void **state)
{
	struct fx *f = *state;
	uint8_t key[64], fp[STORE_FP_LEN] = { 0 };
	uint64_t ref;
	size_t n;
	int st;

	for (uint64_t i = 1; i <= 8; i++)
		add(f->st, "b", i, 0x30 + i, 164, 0);
	verify_all(f->st, "b", 1, 8);
	memset(key, 0x44, sizeof(key));
	assert_int_equal(store_xfer_add(f->st, "c", "c", 5, key, 40, fp, 10), 0);
	/* outside a transaction: refused, nothing taken */
	assert_int_equal(store_take_parity_tx(f->st, "b", 0, 1, f->out, 16, &n), -1);
	assert_int_equal(store_take_id_tx(f->st, "b", 1, f->out), -1);
	assert_int_equal(store_xfer_take_tx(f->st, "c", "c", 5, f->out), -1);
	/* and the plain takes are refused inside one */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_take_parity(f->st, "b", 0, 1, f->out, 16, &n), -1);
	assert_int_equal(store_xfer_take(f->st, "c", "c", 5, f->out), -1);
	/* a batch rolled back: nothing happened */
	assert_int_equal(store_take_parity_tx(f->st, "b", 0, 1000, f->out, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_true(f->out[0].id == 2 && f->out[1].id == 4 && f->out[2].id == 6);
	assert_int_equal(store_take_id_tx(f->st, "b", 1, f->out), 0);
	assert_int_equal(store_take_id_tx(f->st, "b", 1, f->out), 1);	/* once */
	assert_int_equal(store_xfer_take_tx(f->st, "c", "c", 5, f->out), 0);
	assert_true(f->out[0].len == 40 && f->out[0].key[0] == 0x44);
	assert_int_equal(store_dist_map_add(f->st, "kms-b", 0, 1, 2), 0);
	store_rollback(f->st);
	for (uint64_t i = 1; i <= 8; i++) {
		assert_int_equal(store_get(f->st, "b", i, &st, NULL, NULL, NULL, NULL), 0);
		assert_int_equal(st, BS_VERIFIED);
	}
	assert_int_equal(store_dist_map_take(f->st, "kms-b", 0, 1, &ref), 1);
	assert_int_equal(store_xfer_take(f->st, "c", "c", 5, f->out), 0);	/* still there */
	/* a batch committed: taken and mapped together */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_take_parity_tx(f->st, "b", 1, 1000, f->out, 16, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(store_dist_map_add(f->st, "kms-b", 0, 10 + i, f->out[i].id), 0);
	assert_int_equal(store_commit(f->st), 0);
	for (uint64_t i = 1; i <= 8; i += 2) {
		assert_int_equal(store_get(f->st, "b", i, &st, NULL, NULL, NULL, NULL), 0);
		assert_int_equal(st, BS_DELIVERED);
	}
	assert_int_equal(store_dist_map_take(f->st, "kms-b", 0, 13, &ref), 0);
	assert_true(ref == 7);
	assert_int_equal(store_take_id(f->st, "b", 3, f->out), 1);	/* taken once */
}

struct grp {
	int opened, done, ok;
	uint64_t ops;
};

static void grp_opened(void *arg)
{
	((struct grp *)arg)->opened++;
}

static void grp_done(void *arg, int ok, uint64_t ops)
{
	struct grp *g = arg;

	g->done++;
	g->ok = ok;
	g->ops += ops;
}

/* Rows of link b another connection (another process's view) sees committed. */
static int committed_rows(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int n = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM blocks WHERE link='b'", -1, &s,
			       NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/*
 * Group commit: single operations share one transaction until store_group_commit (each a
 * savepoint), a caller's transaction joins the group and commits it, and a process that
 * dies before the commit leaves nothing of the group on disk.
 */
static void test_group(void **state)
{
	struct fx *f = *state;
	struct grp g = { 0 };
	char err[256];
	size_t len;
	pid_t pid;
	int st, status;

	store_group_enable(f->st, grp_opened, grp_done, &g);
	assert_false(store_group_pending(f->st));
	add(f->st, "b", 1, 0x11, 164, 0);
	add(f->st, "b", 2, 0x12, 164, 0);
	assert_true(g.opened == 1 && g.done == 0 && store_group_pending(f->st));
	verify_all(f->st, "b", 1, 2);
	assert_int_equal(store_take_use(f->st, "b", 1, 50, f->out), 0);
	assert_true(f->out[0].id == 1);
	assert_int_equal(committed_rows(f->path), 0);	/* nothing on disk yet */
	assert_int_equal(store_group_commit(f->st), 0);
	assert_true(g.done == 1 && g.ok == 1 && g.ops == 5 && !store_group_pending(f->st));
	assert_int_equal(committed_rows(f->path), 2);
	assert_int_equal(store_group_commit(f->st), 0);	/* nothing open: no call */
	assert_int_equal(g.done, 1);

	/* a caller's transaction joins the open group; its rollback keeps the group's ops */
	add(f->st, "b", 3, 0x13, 164, 0);
	assert_int_equal(store_begin(f->st), 0);
	add(f->st, "b", 4, 0x14, 164, 0);
	store_rollback(f->st);
	assert_true(store_group_pending(f->st) && g.done == 1);
	assert_int_equal(store_begin(f->st), 0);
	add(f->st, "b", 5, 0x15, 164, 0);
	assert_int_equal(store_commit(f->st), 0);	/* durable on return: the group with it */
	assert_true(g.opened == 2 && g.done == 2 && !store_group_pending(f->st));
	assert_int_equal(committed_rows(f->path), 4);
	assert_int_equal(store_get(f->st, "b", 4, &st, NULL, &len, NULL, NULL), 1);
	/* a caller's transaction without an open group is one of its own, as without groups */
	assert_int_equal(store_begin(f->st), 0);
	add(f->st, "b", 6, 0x16, 164, 0);
	assert_false(store_group_pending(f->st));
	assert_int_equal(store_commit(f->st), 0);
	assert_true(g.opened == 2 && g.done == 2);

	/* dies with a group open: none of it was committed */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *c = store_open(f->path, err, sizeof(err));
		struct grp cg = { 0 };

		if (!c)
			_exit(2);
		store_group_enable(c, grp_opened, grp_done, &cg);
		if (store_take_use_id(c, "b", 2, f->out) || store_add_fresh(c, "b", 7,
		    f->out[0].key, 10, 0) || !store_group_pending(c))
			_exit(3);
		_exit(0);			/* no commit, no close: as kill -9 */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(committed_rows(f->path), 5);
	assert_int_equal(store_get(f->st, "b", 2, &st, NULL, &len, NULL, NULL), 0);
	assert_int_equal(st, BS_VERIFIED);		/* the dead group's take never happened */
	assert_int_equal(store_get(f->st, "b", 7, &st, NULL, &len, NULL, NULL), 1);
}

static void test_schema_version(void **state)
{
	struct fx *f = *state;
	char err[256], cmd[256];

	store_close(f->st);
	f->st = NULL;
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA user_version=9' >/dev/null", f->path);
	if (system(cmd) != 0)
		skip();
	assert_null(store_open(f->path, err, sizeof(err)));
	assert_non_null(strstr(err, "unsupported store schema version: `9'"));
	f->st = store_open("/nonexistent/dir/x.db", err, sizeof(err));
	assert_null(f->st);
	assert_non_null(strstr(err, "/nonexistent/dir/x.db"));
}

struct plan_check {
	int n, bad;
};

/* Does the plan step's table name at p (the table or its alias in sql_text) equal name? */
static int table(const char *p, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(p, name, n) && (p[n] == ' ' || p[n] == ';' || !p[n]);
}

/*
 * A statement on blocks, block_keys, xfer or sae_keys must reach its rows through an index that
 * holds its filter (blocks and block_keys are aliased b and k in the statements that join them):
 * no SCAN of the table, no search bounded by the link (or peer) alone, which walks every
 * row of that link, key bytes and consumed rows included. Only the operator's views, which
 * report on every row, may.
 */
static void plan_ok(const char *sql, const char *plan, int whole, void *arg)
{
	struct plan_check *c = arg;
	const char *p = plan, *end;
	size_t len;
	int bad = 0;

	c->n++;
	for (; *p; p = *end ? end + 2 : end) {	/* each "; "-separated step */
		end = strstr(p, "; ");
		if (!end)
			end = p + strlen(p);
		len = (size_t)(end - p);
		if (!strncmp(p, "SCAN ", 5) && (table(p + 5, "blocks") || table(p + 5, "b") ||
		    table(p + 5, "block_keys") || table(p + 5, "k") || table(p + 5, "xfer") ||
		    table(p + 5, "sae_keys")))
			bad = 1;
		if (!strncmp(p, "SEARCH ", 7) && (table(p + 7, "blocks") || table(p + 7, "b")) &&
		    len >= 8 && !strncmp(end - 8, "(link=?)", 8))
			bad = 1;
		if (!strncmp(p, "SEARCH xfer", 11) && len >= 8 && !strncmp(end - 8, "(peer=?)", 8))
			bad = 1;
	}
	if (bad && !whole) {
		print_error("walks a link's rows: %s\n    plan: %s\n", sql, plan);
		c->bad++;
	}
}

static void test_query_plans(void **state)
{
	struct fx *f = *state;
	struct plan_check c = { 0 };

	assert_true(store_plans(f->st, plan_ok, &c) > 0);
	assert_true(c.n > 40);
	assert_int_equal(c.bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_lock_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_split_surplus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_only_unused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_parity_and_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dist_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sae_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_in_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
