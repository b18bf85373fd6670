// SPDX-License-Identifier: GPL-2.0
/*
 * Key rings: the key blocks one peer and one direction hold, in block id order.
 *
 * Data structures and locking
 * ---------------------------
 * A ring keeps its live blocks twice:
 *   - ring->blocks, a list in id order (pushes only ever append, since an id must be above
 *     every id the ring ever accepted), and ring->cur, the oldest block with bytes never
 *     handed out. Both, the per-block cursors (reserved, done, consumed, dead) and every
 *     ring counter are under ring->lock, a bh-safe spinlock: reserve and release run in
 *     softirq, and hold it for a few dozen instructions. No key byte is copied or wiped
 *     under it.
 *   - ring->xa, an xarray id -> block for the decrypt side's lookup, which runs under
 *     rcu_read_lock() only: xa_load(), then refcount_inc_not_zero() on the block.
 *     Blocks (header and key bytes) are freed after a grace period (call_rcu()), so such
 *     a reader never touches freed memory.
 *     ring->xa's own lock nests inside ring->lock (erase on unlink); the push path inserts
 *     without ring->lock.
 *
 * Lifetime. A block holds one reference for being linked in the ring and one per
 * qotp_key_ref. It is unlinked (and marked dead, so lookups stop handing it out) when every
 * byte of it is done, or on flush; when the last reference goes it is wiped (below),
 * reported in a RELEASED event and freed. Each live block pins the
 * ring (ring->ref), so a ring outlives every block and every key ref; the peer holds the
 * owner's reference and drops it from its RCU callback.
 *
 * Wiping. A span is wiped when it is released: a release is the last use of those bytes by
 * contract (qotp.h), so a ref copied with qotp_key_ref_dup() must be finished with first.
 * Bytes never handed out are wiped on flush. A block freed with every byte released has
 * been wiped byte for byte already (done counts exactly the bytes releases wiped); any
 * other is wiped whole when freed. (A second pass over every block cost the datapath one
 * more write of every key byte, about a tenth of its CPU in the bench's profile.) A ring
 * never hands out a byte twice (reserve moves a cursor forward only, and ids never
 * repeat), which is what keeps the pad one-time.
 *
 * Pushes to one ring are serialised by the caller (the per-netns control-plane mutex).
 */
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/xarray.h>
#include <linux/jiffies.h>
#include <kunit/visibility.h>

#include "qotp.h"
#include "keyring.h"
#include "netlink.h"

#if BITS_PER_LONG < 64
#error "qotp key rings index 64-bit block ids with an xarray: 64-bit kernels only"
#endif

struct qotp_blk {
	struct list_head node;	/* ring->blocks, or a private list while being flushed */
	struct qotp_ring *ring;
	u64 id;
	u32 len;
	u32 reserved;		/* [0, reserved) handed out by reserve (encrypt side) */
	u32 done;		/* bytes released */
	u32 consumed;		/* of those, bytes that protected payload */
	bool dead;		/* unlinked: lookup and reserve no longer see it */
	refcount_t ref;
	struct rcu_head rcu;
	/* Apart from the header: 4 KiB of key is one page, not an 8 KiB slab object, and
	 * 32 KiB an order-3 allocation, not order 4, which fell back to vmalloc more often
	 * (UML's kernel, where the tests run, can hang purging freed vmalloc areas). */
	u8 *key;
};

static void blk_free_rcu(struct rcu_head *head)
{
	struct qotp_blk *blk = container_of(head, struct qotp_blk, rcu);

	kvfree(blk->key);
	kfree(blk);
}

/* After a grace period, so any context may drop the last reference. */
static void blk_free_mem(struct qotp_blk *blk)
{
	call_rcu(&blk->rcu, blk_free_rcu);
}

struct qotp_ring {
	spinlock_t lock;
	struct list_head blocks;
	struct qotp_blk *cur;
	struct xarray xa;
	refcount_t ref;		/* owner + one per block not yet freed */
	/* Cleared when the owner destroys the ring: a block freed later (a key ref kept past
	 * its peer, which the datapath should never do) must not reach a netns's queue that
	 * may be gone. RCU: qotp_cp_exit() waits for a grace period before freeing it. */
	struct qotp_evq __rcu *evq;
	u32 peer_id;
	u8 dir;
	bool has_last;
	bool below_wm;
	u64 last_id;
	u64 low_wm;
	atomic64_t mem;
	u32 nblocks;
	u64 avail, reserved, pushed, consumed, wasted, refused;
	unsigned long empty_next;
	u64 empty_drops;
};

#if IS_ENABLED(CONFIG_KUNIT)
void (*qotp_ring_free_hook)(u64 id, const u8 *key, u32 len);
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_free_hook);
#endif

static void ring_event(struct qotp_ring *ring, u8 cmd, u64 val, u64 block_id)
{
	struct qotp_evq *q;

	rcu_read_lock();
	q = rcu_dereference(ring->evq);
	if (q)
		qotp_evq_add(q, cmd, ring->peer_id, ring->dir, val, block_id);
	rcu_read_unlock();
}

static void ring_put(struct qotp_ring *ring)
{
	if (!refcount_dec_and_test(&ring->ref))
		return;
	WARN_ON_ONCE(!list_empty(&ring->blocks));
	xa_destroy(&ring->xa);
	kfree(ring);
}

static void blk_free(struct qotp_blk *blk)
{
	struct qotp_ring *ring = blk->ring;

	if (blk->done != blk->len)
		memzero_explicit(blk->key, blk->len);
#if IS_ENABLED(CONFIG_KUNIT)
	{
		void (*hook)(u64 id, const u8 *key, u32 len) = READ_ONCE(qotp_ring_free_hook);

		if (hook)
			hook(blk->id, blk->key, blk->len);
	}
#endif
	ring_event(ring, QOTP_CMD_EVENT_RELEASED, blk->consumed, blk->id);
	atomic64_sub(blk->len, &ring->mem);
	blk_free_mem(blk);
	ring_put(ring);
}

static void blk_put(struct qotp_blk *blk)
{
	if (refcount_dec_and_test(&blk->ref))
		blk_free(blk);
}

/* Under ring->lock. The caller drops the ring's reference on @blk afterwards. */
static void blk_unlink(struct qotp_ring *ring, struct qotp_blk *blk)
{
	if (ring->cur == blk)
		ring->cur = list_is_last(&blk->node, &ring->blocks) ? NULL :
			    list_next_entry(blk, node);
	list_del_init(&blk->node);
	xa_erase(&ring->xa, blk->id);
	WRITE_ONCE(blk->dead, true);
	ring->nblocks--;
}

/* Under ring->lock, after avail went down. Edge-triggered: re-armed by pushes. */
static void check_watermark(struct qotp_ring *ring)
{
	if (ring->below_wm || !ring->low_wm || ring->avail >= ring->low_wm)
		return;
	ring->below_wm = true;
	ring_event(ring, QOTP_CMD_EVENT_LOW_WATERMARK, ring->avail, 0);
}

struct qotp_ring *qotp_ring_create(struct qotp_evq *evq, u32 peer_id, enum qotp_dir dir)
{
	struct qotp_ring *ring = kzalloc(sizeof(*ring), GFP_KERNEL_ACCOUNT);

	if (!ring)
		return NULL;
	spin_lock_init(&ring->lock);
	INIT_LIST_HEAD(&ring->blocks);
	xa_init_flags(&ring->xa, XA_FLAGS_LOCK_BH);
	refcount_set(&ring->ref, 1);
	atomic64_set(&ring->mem, 0);
	RCU_INIT_POINTER(ring->evq, evq);
	ring->peer_id = peer_id;
	ring->dir = dir;
	ring->empty_next = jiffies;
	return ring;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_create);

void qotp_ring_destroy(struct qotp_ring *ring)
{
	if (!ring)
		return;
	qotp_ring_flush(ring);
	rcu_assign_pointer(ring->evq, NULL);
	ring_put(ring);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_destroy);

void qotp_ring_count_refused(struct qotp_ring *ring)
{
	spin_lock_bh(&ring->lock);
	ring->refused++;
	spin_unlock_bh(&ring->lock);
}

int qotp_ring_push(struct qotp_ring *ring, const struct qotp_push_blk *b, unsigned int n,
		   u64 max_bytes)
{
	struct qotp_blk **blks;
	LIST_HEAD(fresh);
	u64 total = 0;
	unsigned int i;
	int err;

	if (!n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (WARN_ON_ONCE(!b[i].len || b[i].len > QOTP_MAX_BLOCK_LEN ||
				 (i && b[i].id <= b[i - 1].id)))
			return -EINVAL;
		total += b[i].len;
	}

	spin_lock_bh(&ring->lock);
	err = ring->has_last && b[0].id <= ring->last_id ? -EINVAL : 0;
	spin_unlock_bh(&ring->lock);
	if (err)
		goto refused;
	/* Frees only lower mem concurrently, so this check is conservative. */
	if (atomic64_read(&ring->mem) + total > max_bytes) {
		err = -ENOSPC;
		goto refused;
	}

	blks = kcalloc(n, sizeof(*blks), GFP_KERNEL);
	if (!blks) {
		err = -ENOMEM;
		goto refused;
	}
	for (i = 0; i < n; i++) {
		struct qotp_blk *blk = kmalloc(sizeof(*blk), GFP_KERNEL_ACCOUNT);

		if (blk)
			blk->key = kvmalloc(b[i].len, GFP_KERNEL_ACCOUNT);
		if (!blk || !blk->key) {
			kfree(blk);
			err = -ENOMEM;
			goto undo;
		}
		INIT_LIST_HEAD(&blk->node);
		blk->ring = ring;
		blk->id = b[i].id;
		blk->len = b[i].len;
		blk->reserved = 0;
		blk->done = 0;
		blk->consumed = 0;
		/* Invisible to lookup until linked below. */
		blk->dead = true;
		refcount_set(&blk->ref, 1);
		memcpy(blk->key, b[i].data, b[i].len);
		blks[i] = blk;
		err = xa_insert_bh(&ring->xa, blk->id, blk, GFP_KERNEL_ACCOUNT);
		if (err) {
			/* -EBUSY cannot happen (ids above last_id are never present). */
			memzero_explicit(blk->key, blk->len);
			kvfree(blk->key);
			kfree(blk);
			blks[i] = NULL;
			err = -ENOMEM;
			goto undo;
		}
	}

	atomic64_add(total, &ring->mem);
	refcount_add(n, &ring->ref);
	spin_lock_bh(&ring->lock);
	for (i = 0; i < n; i++) {
		WRITE_ONCE(blks[i]->dead, false);
		list_add_tail(&blks[i]->node, &ring->blocks);
		if (!ring->cur)
			ring->cur = blks[i];
	}
	ring->nblocks += n;
	ring->avail += total;
	ring->pushed += total;
	ring->has_last = true;
	ring->last_id = b[n - 1].id;
	if (ring->avail >= ring->low_wm)
		ring->below_wm = false;
	spin_unlock_bh(&ring->lock);
	kfree(blks);
	return 0;

undo:
	while (i--) {
		xa_erase_bh(&ring->xa, blks[i]->id);
		memzero_explicit(blks[i]->key, blks[i]->len);
		/* A lookup may have loaded the pointer (and seen it dead). */
		blk_free_mem(blks[i]);
	}
	kfree(blks);
refused:
	qotp_ring_count_refused(ring);
	return err;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_push);

void qotp_ring_flush(struct qotp_ring *ring)
{
	struct qotp_blk *blk, *tmp;
	LIST_HEAD(gone);

	spin_lock_bh(&ring->lock);
	list_for_each_entry_safe(blk, tmp, &ring->blocks, node) {
		/* Encrypt side: bytes never handed out. Decrypt side (reserved stays 0):
		 * bytes not released yet, which only lookups read. */
		u32 unused = blk->len - max(blk->reserved, blk->done);

		ring->wasted += unused;
		ring->avail -= unused;
		blk_unlink(ring, blk);
		list_add_tail(&blk->node, &gone);
	}
	WARN_ON_ONCE(ring->nblocks || ring->avail);
	ring->avail = 0;
	ring->cur = NULL;
	ring->below_wm = ring->low_wm != 0;
	spin_unlock_bh(&ring->lock);

	list_for_each_entry_safe(blk, tmp, &gone, node) {
		list_del_init(&blk->node);
		/* Nobody can be handed these bytes any more; spans held are wiped by
		 * their release, the rest when the block is freed. */
		memzero_explicit(blk->key + blk->reserved, blk->len - blk->reserved);
		blk_put(blk);
	}
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_flush);

int qotp_ring_reserve(struct qotp_ring *ring, u32 want, struct qotp_key_ref *ref)
{
	struct qotp_blk *blk;
	u32 n;

	if (unlikely(!want))
		return -EINVAL;
	spin_lock_bh(&ring->lock);
	blk = ring->cur;
	if (unlikely(!blk)) {
		spin_unlock_bh(&ring->lock);
		return -ENOKEY;
	}
	n = min(want, blk->len - blk->reserved);
	ref->blk = blk;
	ref->block_id = blk->id;
	ref->offset = blk->reserved;
	ref->len = n;
	ref->blk_len = blk->len;
	ref->key = blk->key + blk->reserved;
	refcount_inc(&blk->ref);
	blk->reserved += n;
	ring->avail -= n;
	ring->reserved += n;
	if (blk->reserved == blk->len)
		ring->cur = list_is_last(&blk->node, &ring->blocks) ? NULL :
			    list_next_entry(blk, node);
	check_watermark(ring);
	spin_unlock_bh(&ring->lock);
	return 0;
}
EXPORT_SYMBOL_GPL(qotp_ring_reserve);

int qotp_ring_lookup(struct qotp_ring *ring, u64 block_id, u32 offset, u32 len,
		     struct qotp_key_ref *ref)
{
	struct qotp_blk *blk;

	rcu_read_lock();
	blk = xa_load(&ring->xa, block_id);
	if (!blk || READ_ONCE(blk->dead) || !refcount_inc_not_zero(&blk->ref)) {
		rcu_read_unlock();
		return -ENOKEY;
	}
	rcu_read_unlock();
	if (!len || offset >= blk->len || len > blk->len - offset) {
		blk_put(blk);
		return -ERANGE;
	}
	ref->blk = blk;
	ref->block_id = blk->id;
	ref->offset = offset;
	ref->len = len;
	ref->blk_len = blk->len;
	ref->key = blk->key + offset;
	return 0;
}
EXPORT_SYMBOL_GPL(qotp_ring_lookup);

void qotp_key_ref_dup(const struct qotp_key_ref *ref, struct qotp_key_ref *copy)
{
	struct qotp_blk *blk = ref->blk;

	refcount_inc(&blk->ref);
	*copy = *ref;
}
EXPORT_SYMBOL_GPL(qotp_key_ref_dup);

void qotp_key_ref_put(struct qotp_key_ref *ref)
{
	struct qotp_blk *blk = ref->blk;

	if (!blk)
		return;
	ref->blk = NULL;
	ref->key = NULL;
	blk_put(blk);
}
EXPORT_SYMBOL_GPL(qotp_key_ref_put);

void qotp_ring_release(struct qotp_ring *ring, struct qotp_key_ref *ref, u32 used)
{
	struct qotp_blk *blk = ref->blk;
	bool unlink = false;

	if (!blk)
		return;
	if (WARN_ON_ONCE(blk->ring != ring))
		ring = blk->ring;
	used = min(used, ref->len);
	memzero_explicit(blk->key + ref->offset, ref->len);

	spin_lock_bh(&ring->lock);
	ring->consumed += used;
	ring->wasted += ref->len - used;
	blk->consumed += used;
	if (ring->dir == QOTP_DIR_ENCRYPT)
		ring->reserved -= ref->len;
	if (!blk->dead) {
		/* A byte released twice is a datapath bug; never let it free a block
		 * whose other bytes are still in use. */
		if (WARN_ON_ONCE(ref->len > blk->len - blk->done)) {
			spin_unlock_bh(&ring->lock);
			goto out;
		}
		blk->done += ref->len;
		if (ring->dir == QOTP_DIR_DECRYPT) {
			ring->avail -= ref->len;
			check_watermark(ring);
		}
		if (blk->done == blk->len) {
			blk_unlink(ring, blk);
			unlink = true;
		}
	}
	spin_unlock_bh(&ring->lock);
	if (unlink)
		blk_put(blk);
out:
	ref->blk = NULL;
	ref->key = NULL;
	blk_put(blk);
}
EXPORT_SYMBOL_GPL(qotp_ring_release);

u64 qotp_ring_avail(const struct qotp_ring *ring)
{
	return READ_ONCE(ring->avail);
}
EXPORT_SYMBOL_GPL(qotp_ring_avail);

void qotp_ring_set_low_watermark(struct qotp_ring *ring, u64 wm)
{
	spin_lock_bh(&ring->lock);
	ring->low_wm = wm;
	/* A new threshold starts a new edge: report at once if already below. */
	ring->below_wm = false;
	check_watermark(ring);
	spin_unlock_bh(&ring->lock);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_set_low_watermark);

void qotp_ring_info(struct qotp_ring *ring, struct qotp_ring_info *info)
{
	spin_lock_bh(&ring->lock);
	info->blocks = ring->nblocks;
	info->has_last = ring->has_last;
	info->last_id = ring->last_id;
	info->avail = ring->avail;
	info->reserved = ring->reserved;
	info->pushed = ring->pushed;
	info->consumed = ring->consumed;
	info->wasted = ring->wasted;
	info->refused = ring->refused;
	spin_unlock_bh(&ring->lock);
	info->mem = atomic64_read(&ring->mem);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_info);

void qotp_ring_key_empty(struct qotp_ring *ring)
{
	spin_lock_bh(&ring->lock);
	ring->empty_drops++;
	if (time_after_eq(jiffies, ring->empty_next)) {
		ring_event(ring, QOTP_CMD_EVENT_KEY_EMPTY, ring->empty_drops, 0);
		ring->empty_drops = 0;
		ring->empty_next = jiffies + HZ / 10;
	}
	spin_unlock_bh(&ring->lock);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_ring_key_empty);
