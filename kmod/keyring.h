/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key rings, control-plane side: creation, pushes, flushes and counters. The packet-path
 * API (reserve, lookup, release) is declared in qotp.h.
 */
#ifndef _QOTP_KEYRING_H
#define _QOTP_KEYRING_H

#include <linux/types.h>
#include "qotp.h"

struct qotp_evq;

/* One block of a push, as parsed from the request; @data is not owned. */
struct qotp_push_blk {
	u64 id;
	const u8 *data;
	u32 len;
};

/* Snapshot of a ring's counters (QOTP_A_RING_*). */
struct qotp_ring_info {
	u32 blocks;
	bool has_last;
	u64 last_id;
	u64 avail;
	u64 reserved;
	u64 pushed;
	u64 consumed;
	u64 wasted;
	u64 refused;
	u64 mem;	/* bytes of blocks not freed yet, what ring_max_bytes bounds */
};

struct qotp_ring *qotp_ring_create(struct qotp_evq *evq, u32 peer_id, enum qotp_dir dir);
/* Flushes the ring and drops the owner's reference; the ring itself goes when the last
 * block does. The caller must no longer reach the ring through RCU (or has waited). */
void qotp_ring_destroy(struct qotp_ring *ring);

/*
 * Appends @n blocks, all or nothing. The caller serialises pushes to one ring and has
 * checked that ids are strictly increasing and lengths in 1..QOTP_MAX_BLOCK_LEN.
 * -EINVAL: the first id is not above the highest ever accepted (*@bad = 0);
 * -ENOSPC: the ring would hold more than @max_bytes; -ENOMEM. Refusals are counted.
 */
int qotp_ring_push(struct qotp_ring *ring, const struct qotp_push_blk *b, unsigned int n,
		   u64 max_bytes);
void qotp_ring_count_refused(struct qotp_ring *ring);

/* Wipes every byte never handed out and unlinks every block; spans still held are wiped
 * when released. The highest accepted id is kept. */
void qotp_ring_flush(struct qotp_ring *ring);

void qotp_ring_set_low_watermark(struct qotp_ring *ring, u64 wm);
void qotp_ring_info(struct qotp_ring *ring, struct qotp_ring_info *info);

/* Counts a drop for want of key; queues a KEY_EMPTY event at most every 100 ms. */
void qotp_ring_key_empty(struct qotp_ring *ring);

#if IS_ENABLED(CONFIG_KUNIT)
/* Test hook: called with a block's key bytes right before the block is freed. */
extern void (*qotp_ring_free_hook)(u64 id, const u8 *key, u32 len);
#endif

#endif /* _QOTP_KEYRING_H */
