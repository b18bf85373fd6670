/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The key store: one SQLite database (WAL, synchronous=FULL, secure_delete=ON) holding every
 * key block a node got from its QKD links, with its state:
 *
 *   fresh --lock--> locked --verify--> verified --take--> delivered --consume--> consumed
 *     ^               |                   |  ^                 ^
 *     +----unlock-----+                 reserve  release       |
 *   fresh/locked/verified --discard--> discarded                 |
 *                                         v  |                 |
 *                                      reserved ---commit------+
 *
 * Rows are never deleted, only their key bytes (tombstones): a block id that was once in the
 * store can never be inserted again, so no block is handed out twice, even if the QKD source
 * repeats an id. Every transition is one SQLite transaction committed with fsync before the
 * function returns, which is what makes kill -9 safe: take/commit mark the block delivered
 * *before* the caller gets or sends its bytes. With group commit (store_group_enable, kmsd)
 * single operations share one transaction per event-loop pass instead, and the rule becomes:
 * committed before anything that depends on them leaves the process.
 */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 6	/* 2: transfer keys (xfer); 3: pushed-block map (dist_map);
				 * 4: an index for every filter; 5: key bytes in their own table;
				 * 6: keys held for slave SAEs (sae_keys).
				 * Older files are upgraded on open. */
#define STORE_BLOCK_MAX 65536

enum block_state {
	BS_FRESH = 0,
	BS_LOCKED = 1,
	BS_VERIFIED = 2,
	BS_RESERVED = 3,
	BS_DELIVERED = 4,
	BS_CONSUMED = 5,
	BS_DISCARDED = 6,
	__BS_LAST
};

/* SURPLUS: verified key of a direction nobody draws on, dropped for room (not counted here) */
enum discard_reason { DISCARD_MISMATCH, DISCARD_ORPHAN, DISCARD_SURPLUS };

struct store;

struct store_link_stats {
	uint64_t blocks[__BS_LAST];	/* rows per state */
	uint64_t bytes[__BS_LAST];	/* key bytes held per state (0 for tombstones) */
	uint64_t verified_total;	/* blocks ever verified */
	uint64_t mismatched_total;	/* blocks ever discarded for a tag mismatch */
	uint64_t orphaned_total;	/* blocks discarded because the peer never had them */
};

struct store_block {
	uint64_t id;
	uint32_t len;
	uint8_t key[STORE_BLOCK_MAX];
};

const char *block_state_name(int state);

struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *st);
const char *store_errmsg(struct store *st);

/* Startup recovery: locks of a dead round go back to fresh, reservations to verified. */
int store_recover(struct store *st);

/*
 * Batch several operations in one transaction (one fsync). Not nestable. With an open
 * group (below) the batch joins it and store_commit commits both: either way the batch is
 * durable when store_commit returns 0.
 */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
/*
 * A batch that only has to be durable before what depends on it leaves the process: with
 * group commit it joins the group (opening one if none is open) and store_release ends
 * the batch without committing the group -- the owner holds what depends on it until
 * done(arg, 1, ops). Without group commit these are store_begin and store_commit.
 * store_rollback undoes such a batch alone.
 */
int store_begin_grouped(struct store *st);
int store_release(struct store *st);

/*
 * Group commit: from now on, every single operation called outside store_begin joins one
 * open transaction (a savepoint each: still all or nothing) instead of committing on its
 * own. opened(arg) is called when an operation opens a group; store_group_commit() (the
 * owner's end of an event-loop pass, a store_commit, store_close) commits it with one
 * fsync and calls done(arg, ok, ops) with the number of operations it held. The owner must
 * hold every message, answer or kernel push that depends on a grouped operation until
 * done(arg, 1, ops); after done(arg, 0, ops) the group's operations never happened while
 * the owner's memory says they did.
 */
void store_group_enable(struct store *st, void (*opened)(void *arg),
			void (*done)(void *arg, int ok, uint64_t ops), void *arg);
int store_group_pending(const struct store *st);
/* 0 committed (or nothing open), -1 failed and rolled back. */
int store_group_commit(struct store *st);

/* Adds a fresh block. Returns 0 added, 1 if the id was ever known (ignored), -1 error. */
int store_add_fresh(struct store *st, const char *link, uint64_t id, const uint8_t *raw,
		    size_t len, int64_t now_ms);
/*
 * Locks up to max fresh blocks created before now_ms - min_age_ms and not deferred past
 * now_ms, oldest first.
 */
int store_lock_fresh(struct store *st, const char *link, size_t max, uint64_t txid,
		     int64_t now_ms, int64_t min_age_ms, int64_t lock_until_ms, uint64_t *ids,
		     size_t *n);
/*
 * Reads a block's state, bytes (if any, into key, which must hold STORE_BLOCK_MAX) and tag.
 * Returns 0 found, 1 not found, -1 error. key may be NULL.
 */
int store_get(struct store *st, const char *link, uint64_t id, int *state, uint8_t *key,
	      size_t *len, uint8_t *tag, int *has_tag);
/* fresh/locked -> verified; the first strip bytes (used for the tag) are wiped. 0 or -1. */
int store_verify(struct store *st, const char *link, uint64_t id, const uint8_t *tag,
		 size_t taglen, size_t strip);
/*
 * fresh/locked/verified -> discarded (tombstone, bytes wiped), counted under reason.
 * (verified only when the peer turns out to disagree about a block.) 0 or -1.
 */
int store_discard(struct store *st, const char *link, uint64_t id, enum discard_reason why,
		  const uint8_t *tag, size_t taglen);
/* locked(txid) -> fresh. txid 0: all locks of link. Returns rows changed or -1. */
int store_unlock(struct store *st, const char *link, uint64_t txid);
/*
 * The peer does not have a locked block. If it was created before expire_before_ms it is
 * discarded as an orphan (returns 2); otherwise it goes back to fresh but is not lockable
 * again before not_before_ms (returns 1): retried later, not in every round. 0 if the
 * block is not locked, -1 on error.
 */
int store_defer(struct store *st, const char *link, uint64_t id, int64_t not_before_ms,
		int64_t expire_before_ms);
/* Locks whose lock_until passed go back to fresh. Returns rows changed or -1. */
int store_release_expired(struct store *st, int64_t now_ms);
/* Fresh blocks created before older_than_ms are discarded as orphans. Rows or -1. */
int store_purge_stale(struct store *st, const char *link, int64_t older_than_ms);

/* Key use (the API key distribution and relaying build on). */
/*
 * Atomically moves verified blocks of link, oldest first, to delivered until at least
 * min_bytes are taken or max blocks, and returns them. Committed before return: if the
 * process dies afterwards the blocks are lost, never reused.
 */
int store_take(struct store *st, const char *link, size_t min_bytes, struct store_block *out,
	       size_t max, size_t *n);
/*
 * As store_take, only blocks whose id has the given parity (0 even, 1 odd): the two ends
 * of a link each distribute their own half of the blocks, so they never pick the same one.
 */
int store_take_parity(struct store *st, const char *link, int parity, size_t min_bytes,
		      struct store_block *out, size_t max, size_t *n);
/* verified -> delivered for the one block id. 0 taken, 1 not verified (or unknown), -1. */
int store_take_id(struct store *st, const char *link, uint64_t id, struct store_block *out);
/*
 * store_take_parity, store_take_id and store_xfer_take inside the caller's transaction
 * (store_begin; refused outside one), so a batch of takes and the records that go with them
 * (the pushed-block map) commit together, with one fsync. The caller must store_commit
 * before the bytes leave the process; after a rollback it wipes them and nothing was taken.
 */
int store_take_parity_tx(struct store *st, const char *link, int parity, size_t min_bytes,
			 struct store_block *out, size_t max, size_t *n);
int store_take_id_tx(struct store *st, const char *link, uint64_t id, struct store_block *out);
/* verified -> reserved(resv) for up to max blocks; bytes returned. Not yet handed out. */
int store_reserve(struct store *st, const char *link, uint64_t resv, size_t max,
		  struct store_block *out, size_t *n);
/* reserved(resv) -> delivered (before the bytes leave the process). Rows or -1. */
int store_commit_reserved(struct store *st, uint64_t resv);
/* reserved(resv) -> verified (the bytes never left the process). Rows or -1. */
int store_release_reserved(struct store *st, uint64_t resv);
/* delivered -> consumed, key bytes wiped. Returns 0, 1 if not delivered, -1 error. */
int store_consume(struct store *st, const char *link, uint64_t id);

/*
 * Link key for one PPETP hop (ppetp.h take_send / take_recv). The sender takes the oldest
 * verified block of its own parity (the same even/odd rule as key distribution, so the two
 * ends never hand one block to two purposes) holding at least min_len bytes; the receiver
 * takes the block the sender named, by id. Either way the block goes straight from verified
 * to consumed with its bytes wiped in the same committed transaction, before the bytes are
 * returned: a hop's link key is used once, by one transfer, even across kill -9.
 * Returns 0 taken, 1 nothing suitable (none verified, id not verified or unknown), -1 error.
 */
int store_take_use(struct store *st, const char *link, int parity, size_t min_len,
		   struct store_block *out);
int store_take_use_id(struct store *st, const char *link, uint64_t id, struct store_block *out);

int store_link_stats(struct store *st, const char *link, struct store_link_stats *s);
/* The lifetime count of verified blocks only (one row: cheap enough for every second). */
int store_link_verified_total(struct store *st, const char *link, uint64_t *verified);
/*
 * The live bytes of a link split the way they are used: fresh and locked (not yet
 * verified) in *unverified, verified blocks by id parity in verified[0] (even) and [1]
 * (odd): the two directions of a pair, each end's own half (store_take_parity). 0 or -1.
 */
int store_link_live_split(struct store *st, const char *link, int64_t *unverified,
			  int64_t verified[2]);
/*
 * The oldest verified blocks of one parity discarded (tombstones, bytes wiped) until at
 * least bytes are freed, at most 64 blocks a call, in one transaction. Bytes freed or -1.
 * For a direction whose key nobody draws on, so that it cannot fill link-max-bytes alone.
 */
int64_t store_discard_surplus(struct store *st, const char *link, int parity, uint64_t bytes);
/* Bytes of fresh, locked and verified blocks of link (cheap: index only), -1 on error. */
int64_t store_link_live_bytes(struct store *st, const char *link);

/*
 * Transfer keys: r1 of a committed PPETP transfer, shared with remote node `peer`, named by
 * (peer, src, txid) where src is the transfer's source (ourselves or peer). States follow
 * the link blocks: verified (usable) -> delivered (handed out, take-once, committed before
 * the bytes are returned) -> consumed (bytes wiped). A (peer, src, txid) once stored is
 * never stored again. fp is an 8-byte fingerprint (xfer.c) shown to operators instead of
 * the key.
 */
#define STORE_FP_LEN 8

struct store_xfer_info {
	char peer[64];
	char src[64];
	uint64_t txid;
	int state;
	uint32_t len;			/* key bytes (0 once consumed) */
	int64_t created_ms;
	uint8_t fp[STORE_FP_LEN];
};

struct store_xfer_stats {
	uint64_t blocks[__BS_LAST][2];	/* [state][0: we were the source, 1: peer was] */
	uint64_t bytes[__BS_LAST][2];
};

/* Returns 0 added, 1 if (peer, src, txid) was ever stored (ignored), -1 error. */
int store_xfer_add(struct store *st, const char *peer, const char *src, uint64_t txid,
		   const uint8_t *key, size_t len, const uint8_t fp[STORE_FP_LEN], int64_t now_ms);
/*
 * verified -> delivered: the oldest key with peer whose source is src (src NULL: any), or
 * the one named by txid (nonzero). out->id is the txid. 0 taken, 1 none, -1 error.
 */
int store_xfer_take(struct store *st, const char *peer, const char *src, uint64_t txid,
		    struct store_block *out);
int store_xfer_take_tx(struct store *st, const char *peer, const char *src, uint64_t txid,
		       struct store_block *out);
/* delivered -> consumed, bytes wiped. 0, 1 if not delivered, -1. */
int store_xfer_consume(struct store *st, const char *peer, const char *src, uint64_t txid);
int store_xfer_stats(struct store *st, const char *peer, const char *self,
		     struct store_xfer_stats *s);
/* Calls fn for every transfer key row, ordered by peer and creation; -1 on error. */
int store_xfer_list(struct store *st, void (*fn)(void *arg, const struct store_xfer_info *x),
		    void *arg);

/*
 * Key distribution's pushed-block map: which store key (link block id, or transfer txid)
 * each ring block pushed into the kernel came from, per pair (the other node's id) and
 * ring (0 our encrypt ring, 1 our decrypt ring), so a RELEASED event consumes the right
 * store row even after a kmsd restart. Added after the push succeeded, taken once.
 */
int store_dist_map_add(struct store *st, const char *pair, int dir, uint64_t ring_id,
		       uint64_t ref);
/* Removes the entry and returns its ref: 0, 1 if unknown, -1 error. */
int store_dist_map_take(struct store *st, const char *pair, int dir, uint64_t ring_id,
			uint64_t *ref);
/*
 * Removes every entry of (pair, dir) with ring id above above_id (0: all) -- blocks the
 * kernel cannot hold (it lost the ring, or its last id is below them) -- calling fn for
 * each before the removal is committed. Returns how many, or -1.
 */
int store_dist_map_drain(struct store *st, const char *pair, int dir, uint64_t above_id,
			 void (*fn)(void *arg, uint64_t ring_id, uint64_t ref), void *arg);
/* Entries of (pair, dir), or -1. */
int64_t store_dist_map_count(struct store *st, const char *pair, int dir);

/*
 * Keys kmsd's northbound KME holds for a slave SAE (nbkme.c), named by their key_ID (a UUID,
 * unique: 1 if it is already held, nothing added). store_sae_take hands a key out once: it
 * must be held for exactly that slave and master (else 1, nothing changed) and fit in max
 * bytes; the row is deleted in the same transaction. store_sae_expire deletes keys created
 * before older_than_ms (returns how many); store_sae_pending counts them per SAE pair.
 */
int store_sae_add(struct store *st, const char *key_id, const char *master, const char *slave,
		  const uint8_t *key, size_t len, int64_t now_ms);
int store_sae_take(struct store *st, const char *key_id, const char *slave, const char *master,
		   uint8_t *out, size_t max, size_t *len);
int store_sae_expire(struct store *st, int64_t older_than_ms);
int store_sae_pending(struct store *st, void (*fn)(void *arg, const char *master,
						    const char *slave, uint64_t keys,
						    uint64_t bytes), void *arg);

/*
 * For the tests: calls fn with each statement's SQL, its query plan (EXPLAIN QUERY PLAN,
 * the detail lines joined by "; ") and whether it reads every row of a link or peer by
 * design (the operator's views). Returns the number of statements, or -1.
 */
int store_plans(struct store *st,
		void (*fn)(const char *sql, const char *plan, int whole, void *arg), void *arg);

#endif
