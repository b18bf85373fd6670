/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key distribution (paper §IV.2.E, the key_id / pairing_node exchange): keeps the kernel
 * rings of one pair of encryptors (local X, remote Y) fed, as pure logic. No I/O, no key
 * bytes: the caller owns the key material in its store and does the pushing.
 *
 * Which block ids serve which direction. The two directions are two independent rings:
 * X->Y (X's encrypt ring for Y, Y's decrypt ring for X) and Y->X. The encryptor of a ring
 * owns it: it alone assigns that ring's block ids, strictly increasing and never reused,
 * and offers each block to the decryptor, naming the key material by reference (a link
 * key position, or a PPETP transfer the encryptor itself started). So both ends compute
 * nothing and cannot disagree: an id means exactly what its encryptor offered.
 *
 *   encryptor X                                          decryptor Y
 *   dist_need() > 0: get material (link take / PPETP)
 *   dist_assign() -> id, per block; persist dist_persist()
 *                    --OFFER{n x (id, len, source, ref)}-->  per block: dist_check_offer();
 *                                                       take material; dist_in_accepted();
 *                                                       persist; push the accepted blocks
 *                                                       to the decrypt ring (Y's kernel)
 *                    <--ACCEPT{n x (id, verdict)}------
 *   per block: verdict 0 -> dist_offer_accepted(), push to the encrypt ring, dist_pushed();
 *              else dist_offer_rejected()
 *
 * The decryptor holds every block before the encryptor can use it. An id is persisted
 * before it leaves the process (next id at X, highest accepted at Y), and the kernel
 * refuses ids at or below the highest it ever accepted, so no block is pushed twice, even
 * across kmsd restarts. A block is pushed only from a live offer, and offers do not
 * survive a restart: a block offered before a crash is burnt, never re-pushed.
 *
 * A kernel that lost its rings (module reload, flush): every block pushed and not yet
 * released is dropped (the caller deletes it, never re-pushes it), offers in flight are
 * cancelled, and the peer is told with RESYNC (we are the encryptor: "flush your decrypt
 * ring, ids below first_valid are dead") or RESYNC_REQ (we are the decryptor: "restart
 * your encrypt ring for me"). New blocks get new ids above everything ever used.
 */
#ifndef KMS_DISTRIB_H
#define KMS_DISTRIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIST_ID_MAX 63
#define DIST_VERSION 2
#define DIST_MAX_BLOCK 32768		/* QOTP_MAX_BLOCK_LEN */
#define DIST_MAX_TRACKED 4096		/* blocks pushed and not released, per ring */
#define DIST_BATCH_MAX 64		/* blocks per OFFER / ACCEPT message */

enum dist_dir { DIST_OUT = 0, DIST_IN = 1 };	/* our encrypt ring / our decrypt ring */

enum dist_source {
	DIST_SRC_LINK = 1,		/* quantum link key: ref = link block id, ref_off offset */
	DIST_SRC_PPETP = 2,		/* PPETP key the encryptor transferred: ref = txid */
};

enum dist_msg_type {
	DIST_OFFER = 1,
	DIST_ACCEPT = 2,		/* the answer to an OFFER: one verdict per block */
	/* 3: version 1's REJECT of one block; version 2 answers with verdicts instead */
	DIST_RESYNC = 4,
	DIST_RESYNC_REQ = 5,
	__DIST_MSG_LAST,
};

/* ACCEPT verdicts: 0 the decryptor pushed the block into its decrypt ring; else refused. */
enum dist_verdict {
	DIST_V_ACCEPTED = 0,
	DIST_V_REFUSED = 1,		/* id not above the last accepted, bad length or source */
	DIST_V_NO_KEY = 2,		/* the decryptor does not hold the named key material */
	DIST_V_ERROR = 3,		/* local failure (store, persist, kernel push) */
};

/*
 * Wire, version 2 (big endian): u8 version | u8 type | u16 flags (0) | id enc | id dec |
 * body; the ring is named by its encryptor and decryptor. id = u8 length +
 * [A-Za-z0-9._-]{1,63}.
 *   OFFER   u16 n | n x { u64 block_id | u32 len | u8 source | u64 ref | u32 ref_off }
 *   ACCEPT  u16 n | n x { u64 block_id | u8 verdict }
 *   RESYNC  u64 first_valid           RESYNC_REQ  empty
 * n is 1..DIST_BATCH_MAX and the block ids of one message strictly increase; block ids are
 * non-zero, len 1..DIST_MAX_BLOCK, verdicts 0..3, trailing bytes refused. Version 1 (one
 * block per OFFER, ACCEPT / REJECT of one id) is refused: -EPROTONOSUPPORT.
 */
struct dist_entry {
	uint64_t id;
	uint32_t len;			/* OFFER */
	uint8_t source;			/* OFFER */
	uint64_t ref;			/* OFFER */
	uint32_t ref_off;		/* OFFER */
	uint8_t verdict;		/* ACCEPT */
};

struct dist_msg {
	uint8_t type;
	char enc[DIST_ID_MAX + 1], dec[DIST_ID_MAX + 1];
	uint64_t id;			/* RESYNC: first valid id */
	uint16_t n;			/* OFFER, ACCEPT: entries */
	struct dist_entry e[DIST_BATCH_MAX];
};
#define DIST_OFFER_ENTRY 25
#define DIST_ACCEPT_ENTRY 9
#define DIST_MSG_MAX (4 + 2 * (1 + DIST_ID_MAX) + 2 + DIST_BATCH_MAX * DIST_OFFER_ENTRY)

long dist_encode(const struct dist_msg *m, uint8_t *buf, size_t buflen);
int dist_decode(const uint8_t *buf, size_t len, struct dist_msg *m);

struct dist_config {
	uint64_t low_watermark;		/* refill when the encrypt ring is below this (bytes) */
	uint64_t target;		/* refill up to this */
	uint32_t block_len;		/* bytes per block offered */
	uint32_t max_inflight;		/* offers awaiting an answer */
	uint64_t offer_timeout_ms;	/* unanswered offers are cancelled (burnt) */
	uint64_t topup;			/* also refill once the ring is this far below the
					 * target (0: only below the low watermark) */
};

/* What the caller stores durably, and gives back to dist_pair_new() after a restart. */
struct dist_persist {
	uint64_t out_next_id;		/* next id of our encrypt ring; 0 = start at 1 */
	uint64_t in_last_id;		/* highest id accepted for our decrypt ring; 0 none */
};

struct dist_stats {
	uint64_t level;			/* estimated available bytes of our encrypt ring */
	uint64_t lead;			/* refill lead from the drain rate (dist_set_rates) */
	uint64_t inflight_bytes, reserved_bytes;
	uint32_t inflight, pushed_out, pushed_in;	/* blocks */
	uint64_t offered, accepted, rejected, expired;	/* as encryptor */
	uint64_t in_accepted, in_refused;		/* as decryptor */
	uint64_t released, lost;	/* blocks released by the kernel / dropped as lost */
};

typedef void (*dist_drop_fn)(void *arg, enum dist_dir dir, uint64_t id);

struct dist_pair;

/*
 * local/remote: node ids. kernel_out_last / kernel_in_last: QOTP_A_RING_LAST_ID of the
 * encrypt / decrypt ring read from the kernel at start (0 if absent): new ids start above
 * both the persisted and the kernel's value. NULL on bad arguments or no memory.
 */
struct dist_pair *dist_pair_new(const char *local, const char *remote,
				const struct dist_config *cfg, const struct dist_persist *ps,
				uint64_t kernel_out_last, uint64_t kernel_in_last);
void dist_pair_free(struct dist_pair *dp);
void dist_persist(const struct dist_pair *dp, struct dist_persist *ps);
void dist_get_stats(const struct dist_pair *dp, struct dist_stats *st);

/* Encryptor side. */

/*
 * Refill lead: while the ring drains at drain_bps bytes/s and an offer takes rtt_ms from
 * assignment to the push, refilling starts lead = drain_bps * rtt_ms / 1000 bytes above the
 * low watermark (lead at most the target); it still stops at the target, the ring's memory
 * budget. 0, 0: plain watermark / target hysteresis.
 */
void dist_set_rates(struct dist_pair *dp, uint64_t drain_bps, uint64_t rtt_ms);

/* Key bytes to obtain now (0 if the ring is above the low watermark or offers are full). */
uint64_t dist_need(const struct dist_pair *dp);
/* Material being fetched asynchronously (PPETP) counts as coming: +len, then -len. */
void dist_reserve(struct dist_pair *dp, int64_t delta);
/*
 * Assigns the next id to a block of len bytes the caller has in hand and records the offer.
 * The caller must persist dist_persist() before the OFFER leaves. 0 or -EINVAL / -EBUSY.
 */
int dist_assign(struct dist_pair *dp, uint32_t len, uint64_t now_ms, uint64_t *id);
/*
 * ACCEPT from the peer: returns 0 and the length if the caller must push the block into the
 * encrypt ring now (then call dist_pushed), -ENOENT if the offer is unknown or expired
 * (discard the block), -EALREADY if an id at or above it was already pushed (discard).
 */
int dist_offer_accepted(struct dist_pair *dp, uint64_t id, uint32_t *len);
/* REJECT from the peer: the offer is gone; the caller discards the material. */
int dist_offer_rejected(struct dist_pair *dp, uint64_t id);
/* The kernel took the block (after a successful PUSH_KEYS) in ring dir. */
int dist_pushed(struct dist_pair *dp, enum dist_dir dir, uint64_t id, uint32_t len);
/* Unanswered offers past their time: drop(arg, DIST_OUT, id) for each; they are burnt. */
void dist_tick(struct dist_pair *dp, uint64_t now_ms, dist_drop_fn drop, void *arg);

/* Decryptor side. */

/* OFFER from the peer: 0 if acceptable (id above everything accepted), else -EALREADY. */
int dist_check_offer(const struct dist_pair *dp, uint64_t id, uint32_t len);
/* The caller holds the material: records id as accepted (persist before pushing). */
int dist_in_accepted(struct dist_pair *dp, uint64_t id);

/* Kernel events. */

/* LOW_WATERMARK (avail) or KEY_EMPTY (avail 0) on our encrypt ring. */
void dist_kernel_level(struct dist_pair *dp, uint64_t avail);
/*
 * RELEASED: the blocks were wiped by the kernel. Returns how many were ours; the caller
 * deletes every listed id from its store either way.
 */
size_t dist_released(struct dist_pair *dp, enum dist_dir dir, const uint64_t *ids, size_t n);
/*
 * The kernel lost ring dir (FLUSHED, module reload). drop() is called for every block
 * pushed there and not released (delete, never re-push) and, for DIST_OUT, for every offer
 * in flight. Returns the message the peer must get: DIST_RESYNC (dir OUT) with
 * first_valid in *first_valid, or DIST_RESYNC_REQ (dir IN).
 */
int dist_kernel_lost(struct dist_pair *dp, enum dist_dir dir, dist_drop_fn drop, void *arg,
		     uint64_t *first_valid);
/*
 * RESYNC_REQ from the peer (it lost its decrypt ring): as dist_kernel_lost(DIST_OUT); the
 * caller must flush our encrypt ring for the peer and send RESYNC{first_valid}.
 * RESYNC from the peer: the caller flushes our decrypt ring for it; drop() for our pushed
 * decrypt blocks.
 */
int dist_peer_resync(struct dist_pair *dp, uint8_t type, dist_drop_fn drop, void *arg,
		     uint64_t *first_valid);

#endif
