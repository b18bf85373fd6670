/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key caching protocol (paper §IV.2.A, Fig. 3): both ends of a quantum link check that they
 * hold identical blocks before any of them is used.
 *
 * The leader of a link (the end with the smaller node id) runs rounds: it locks up to
 * round_blocks fresh blocks under a new transaction id with a timeout, sends their ids and
 * tags (VERIFY_REQ), and the follower compares each tag with the one of its own copy, moves
 * matching blocks to verified and discards the others, all in one transaction, then answers
 * (VERIFY_RESP). The leader applies the same verdicts. A follower answer is idempotent (it
 * remembers tags), so a round the leader lost to a crash or timeout is simply run again.
 *
 * The tag of block k (length L, L > 64): with a = k[0..32) and p = k[32..64),
 *   tag = HMAC-SHA256_a("qotp-cache-v1" | pair | id | L | k[64..L)) XOR p
 * and both a and p are then discarded: only k[64..L) becomes key. p is a one-time pad used
 * once, so the tag on the wire is uniformly random and independent of the kept key bytes: it
 * reveals nothing about them, even to an unbounded adversary. If the two copies differ, the
 * tags differ except with probability about 2^-256 (HMAC collision or an error pattern in a
 * and p that cancels, which is negligible for random bit errors).
 */
#ifndef KMS_CACHING_H
#define KMS_CACHING_H

#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "store.h"

#define CACHE_TAG_KEY_LEN 32
#define CACHE_STRIP (CACHE_TAG_KEY_LEN + KMS_TAG_LEN)	/* key bytes spent per block */
#define CACHE_MISSING_RETRY_MS 1000	/* a block the peer lacks is asked about again after */
#define CACHE_ROUND_FLOOR_DIV 8	/* a round budget never shrinks rounds below blocks / 8 */

struct cache_params {
	unsigned round_blocks;
	unsigned round_budget_us;	/* a round's leader step should take no longer */
	int64_t min_block_age_ms;
	int64_t lock_timeout_ms;
	int64_t fresh_max_age_ms;
};

struct cache_link {
	struct store *st;
	char link[KMS_ID_MAX + 1];		/* store link name: the neighbour's id */
	char pair[2 * KMS_ID_MAX + 2];		/* "smaller|larger": same at both ends */
	int leader;
	struct cache_params prm;

	uint64_t txid;				/* round in flight, 0 if none */
	int64_t deadline_ms;
	uint16_t n;
	uint64_t ids[MSG_MAX_BLOCKS];
	uint8_t tags[MSG_MAX_BLOCKS][KMS_TAG_LEN];
	uint64_t next_txid;
	unsigned cap;				/* blocks the next round may take */

	uint64_t rounds, rounds_timed_out;
	uint64_t rounds_shrunk;			/* rounds over budget: the cap lowered */
};

void cache_link_init(struct cache_link *cl, struct store *st, const char *self,
		     const char *peer, const struct cache_params *prm, uint64_t first_txid);
/* Computes the tag of a raw block. Returns 0, or -1 if the block is too short. */
int cache_tag(const char *pair, uint64_t id, const uint8_t *raw, size_t len,
	      uint8_t tag[KMS_TAG_LEN]);
/* Leader: starts a round if none is in flight. 1: out holds a VERIFY_REQ, 0: nothing, -1. */
int cache_round_start(struct cache_link *cl, int64_t now_ms, struct msg *out);
/* Follower: handles a VERIFY_REQ, fills a VERIFY_RESP. 0 ok, -1 error (send nothing). */
int cache_handle_req(struct cache_link *cl, const struct msg *in, struct msg *out);
/* Leader: applies a VERIFY_RESP. 0 ok, 1 stale (ignored), -1 protocol violation. */
int cache_handle_resp(struct cache_link *cl, const struct msg *in, int64_t now_ms);
/* Periodic: expires a timed out round (locks released) and purges stale fresh blocks. */
void cache_tick(struct cache_link *cl, int64_t now_ms);
/* The peer channel went down: drop the round in flight and release its locks now. */
void cache_peer_lost(struct cache_link *cl);

#endif
