// SPDX-License-Identifier: GPL-2.0
/*
 * Flow table and per-flow key accounting.
 *
 * Locking: the table is an rhashtable read under RCU (the hooks run inside
 * rcu_read_lock()); a flow's state is under its bh-safe spinlock, which nests outside the
 * key ring's lock (we call reserve/lookup/release with it held, the ring never calls us).
 * A flow ends exactly once: whoever sets ->dead under the lock releases its key, unhashes
 * it and frees it after a grace period; readers that find it dead treat it as gone.
 *
 * Key accounting follows the ring's contract (qotp.h): each key byte is released exactly
 * once. On the encrypt side that is natural, each span is a reservation. On the decrypt
 * side the bytes [rel, ack) are released when our side acknowledges them, looked up
 * again through the runs learnt from descriptors; rel only moves forward, so no byte is
 * released twice, and bytes before rel are never decrypted again (hooks.c passes such
 * duplicates through untouched: the receiver already has them and drops them).
 */
#include <linux/rhashtable.h>
#include <linux/slab.h>
#include <linux/jiffies.h>
#include <net/tcp.h>
#include <kunit/visibility.h>

#include "qotp.h"
#include "flow.h"
#include "keyring.h"

#define GC_INTERVAL	(2 * HZ)
#define IDLE_TIMEOUT	(300 * HZ)

static const struct rhashtable_params flow_params = {
	.head_offset = offsetof(struct qotp_flow, node),
	.key_offset = offsetof(struct qotp_flow, key),
	.key_len = sizeof(struct qotp_flow_key),
	.automatic_shrinking = true,
};

/* Bytes of span @s that protected payload, given the end of what was sent. */
static u32 span_used(const struct qotp_span *s, u32 sent)
{
	if (!after(s->seq + s->ref.len, sent))
		return s->ref.len;
	if (after(sent, s->seq))
		return sent - s->seq;
	return 0;
}

static void enc_release_all(struct qotp_flow *f)
{
	struct qotp_ring *ring = f->peer->ring[QOTP_DIR_ENCRYPT];
	struct qotp_span *s, *tmp;

	list_for_each_entry_safe(s, tmp, &f->enc.spans, node) {
		u32 used = f->enc.sent_valid ? span_used(s, f->enc.sent) : 0;

		qotp_stat_add(f->peer, QOTP_STAT_KEY_USED, used);
		qotp_ring_release(ring, &s->ref, used);
		list_del(&s->node);
		kfree(s);
	}
	f->enc.nspans = 0;
}

int qotp_flow_enc_map(struct qotp_flow *f, struct qotp_ring *ring, u32 seq, u32 len,
		      struct qotp_desc *d, struct qotp_kpiece pc[2])
{
	u32 end = seq + len, pos, lastoff = 0;
	struct qotp_span *s;
	unsigned int n = 0;
	u64 lastblk = 0;
	int err;

	if (!f->enc.init) {
		f->enc.init = true;
		f->enc.head = seq;
		f->enc.nxt = seq;
	}
	if (before(seq, f->enc.head))
		return -ESTALE;
	if (after(end, f->enc.nxt) && end - f->enc.nxt > QOTP_FLOW_MAX_GAP)
		return -ERANGE;
	while (after(end, f->enc.nxt)) {
		if (f->enc.nspans >= QOTP_FLOW_MAX_SPANS)
			return -ENOSPC;
		s = kmalloc(sizeof(*s), GFP_ATOMIC);
		if (!s)
			return -ENOMEM;
		err = ring ? qotp_ring_reserve(ring, end - f->enc.nxt, &s->ref) : -ENOKEY;
		if (err) {
			kfree(s);
			return err;
		}
		s->seq = f->enc.nxt;
		list_add_tail(&s->node, &f->enc.spans);
		f->enc.nspans++;
		f->enc.nxt += s->ref.len;
	}
	/* New data is at the tail, retransmissions near the head: search from the tail. */
	list_for_each_entry_reverse(s, &f->enc.spans, node)
		if (!after(s->seq, seq))
			break;
	for (pos = seq; pos != end; s = list_next_entry(s, node)) {
		u32 soff = pos - s->seq, k = min(end - pos, s->ref.len - soff);
		u32 koff = s->ref.offset + soff;

		/* Spans adjacent in the stream and in one block form one run. */
		if (n && s->ref.block_id == lastblk && koff == lastoff) {
			pc[n - 1].len += k;
		} else {
			if (n == 2) {
				d->n = 2;	/* what the first two runs cover */
				return -E2BIG;
			}
			pc[n].key = s->ref.key + soff;
			pc[n].len = k;
			d->run[n].seq = pos;
			d->run[n].blk = s->ref.block_id;
			d->run[n].off = koff;
			n++;
		}
		lastblk = s->ref.block_id;
		lastoff = koff + k;
		pos += k;
	}
	d->n = n;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_enc_map);

/* Run boundaries a GSO packet is cut at most at; more and it goes segment by segment. */
#define CHUNK_MAX_BOUNDS	64

u32 qotp_flow_enc_chunk(struct qotp_flow *f, u32 seq, u32 len, u32 mss)
{
	u32 end = seq + len, b[CHUNK_MAX_BOUNDS], lastoff = 0, k, l, i;
	unsigned int nb = 0;
	struct qotp_span *s;
	bool first = true;
	u64 lastblk = 0;

	if (!mss || len <= mss || !f->enc.init || before(seq, f->enc.head) ||
	    after(end, f->enc.nxt))
		return mss;
	list_for_each_entry_reverse(s, &f->enc.spans, node)
		if (!after(s->seq, seq))
			break;
	/* Offsets from @seq at which a new run starts (the first run's start excluded). */
	for (; &s->node != &f->enc.spans && before(s->seq, end); s = list_next_entry(s, node)) {
		u32 from = after(seq, s->seq) ? seq : s->seq;
		u32 koff = s->ref.offset + (from - s->seq);

		if (!first && !(s->ref.block_id == lastblk && koff == lastoff)) {
			if (nb == CHUNK_MAX_BOUNDS)
				return mss;
			b[nb++] = from - seq;
		}
		first = false;
		lastblk = s->ref.block_id;
		lastoff = s->ref.offset + s->ref.len;
	}
	/* The largest piece, a multiple of @mss, such that no piece from @seq on holds two
	 * run starts strictly inside it: then each needs at most two runs. */
	for (k = len / mss; k > 1; k--) {
		l = k * mss;
		for (i = 0; i + 1 < nb; i++)
			if (b[i] % l && b[i] / l == b[i + 1] / l)
				break;
		if (i + 1 >= nb)
			return l;
	}
	return mss;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_enc_chunk);

void qotp_flow_enc_ack(struct qotp_flow *f, struct qotp_ring *ring, u32 ack)
{
	struct qotp_span *s, *tmp;

	/* An ACK may cover one more than the data: the FIN. Anything further is bogus. */
	if (!f->enc.init || after(ack, f->enc.nxt + 1))
		return;
	list_for_each_entry_safe(s, tmp, &f->enc.spans, node) {
		if (after(s->seq + s->ref.len, ack))
			break;
		qotp_stat_add(f->peer, QOTP_STAT_KEY_USED, s->ref.len);
		qotp_ring_release(ring, &s->ref, s->ref.len);
		f->enc.head = s->seq + s->ref.len;
		list_del(&s->node);
		kfree(s);
		f->enc.nspans--;
	}
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_enc_ack);

static int dec_insert(struct qotp_flow *f, const struct qotp_run *r)
{
	struct qotp_drun *e, *n;

	list_for_each_entry_reverse(e, &f->dec.runs, node) {
		if (e->r.seq == r->seq)
			return 0;
		if (before(e->r.seq, r->seq))
			break;
	}
	if (f->dec.nruns >= QOTP_FLOW_MAX_SPANS)
		return -ENOSPC;
	n = kmalloc(sizeof(*n), GFP_ATOMIC);
	if (!n)
		return -ENOMEM;
	n->r = *r;
	list_add(&n->node, &e->node);	/* after e, or first when e is the list head */
	f->dec.nruns++;
	return 0;
}

int qotp_flow_dec_learn(struct qotp_flow *f, const struct qotp_desc *d, u32 start, u32 end)
{
	unsigned int i;
	int err;

	if (!f->dec.rel_valid && (!f->dec.lo_valid || before(start, f->dec.lo))) {
		f->dec.lo = start;
		f->dec.lo_valid = true;
	}

	for (i = 0; i < d->n; i++) {
		if (f->dec.rel_valid && !after(end, f->dec.rel))
			break;
		err = dec_insert(f, &d->run[i]);
		if (err)
			return err;
	}
	if (!f->dec.seen || after(end, f->dec.top)) {
		f->dec.top = end;
		f->dec.seen = true;
	}
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_dec_learn);

/* Releases the key of bytes [from, to) through the runs that cover them, then forgets
 * the runs wholly before @to. */
static void dec_release(struct qotp_flow *f, struct qotp_ring *ring, u32 from, u32 to)
{
	struct qotp_drun *e, *tmp;

	list_for_each_entry_safe(e, tmp, &f->dec.runs, node) {
		bool last = list_is_last(&e->node, &f->dec.runs);
		u32 rend = last ? to : list_next_entry(e, node)->r.seq;
		u32 x0 = after(from, e->r.seq) ? from : e->r.seq;
		u32 x1 = before(rend, to) ? rend : to;
		struct qotp_key_ref ref;

		if (!before(e->r.seq, to))
			break;
		if (before(x0, x1) && ring &&
		    !qotp_ring_lookup(ring, e->r.blk, e->r.off + (x0 - e->r.seq), x1 - x0, &ref)) {
			qotp_stat_add(f->peer, QOTP_STAT_KEY_USED, x1 - x0);
			qotp_ring_release(ring, &ref, x1 - x0);
		}
		if (!last && !after(rend, to)) {
			list_del(&e->node);
			kfree(e);
			f->dec.nruns--;
		}
	}
}

void qotp_flow_dec_ack(struct qotp_flow *f, struct qotp_ring *ring, u32 ack)
{
	if (!f->dec.rel_valid) {
		/* We came in mid-stream: an earlier state of this connection ended (idle
		 * GC, acknowledged FINs, flush) or none could be made (table full). What an
		 * earlier state decrypted, it released when it ended; the bytes this state
		 * decrypted,
		 * [lo, ...), are ours to release, from lo on like any others. Bytes before lo
		 * it never saw: their key is not ours to release (another state's, or of
		 * segments dropped here and sent again, which then start at or after lo). */
		f->dec.rel_valid = true;
		if (!f->dec.lo_valid || !before(f->dec.lo, ack)) {
			f->dec.rel = ack;
			dec_release(f, NULL, ack, ack);
			return;
		}
		f->dec.rel = f->dec.lo;
	}
	if (!after(ack, f->dec.rel))
		return;
	/* Never release past what we decrypted (the ACK may cover a FIN, or bytes that
	 * reached the host some other way); but do move rel, those bytes are done. */
	if (f->dec.seen && after(f->dec.top, f->dec.rel))
		dec_release(f, ring, f->dec.rel, after(ack, f->dec.top) ? f->dec.top : ack);
	f->dec.rel = ack;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_dec_ack);

VISIBLE_IF_KUNIT void qotp_flow_dec_release_all(struct qotp_flow *f)
{
	struct qotp_drun *e, *tmp;

	if (f->dec.seen && !list_empty(&f->dec.runs) && (f->dec.rel_valid || f->dec.lo_valid)) {
		u32 from = f->dec.rel_valid ? f->dec.rel : f->dec.lo;

		if (before(from, f->dec.top))
			dec_release(f, f->peer->ring[QOTP_DIR_DECRYPT], from, f->dec.top);
	}
	list_for_each_entry_safe(e, tmp, &f->dec.runs, node) {
		list_del(&e->node);
		kfree(e);
	}
	f->dec.nruns = 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_dec_release_all);

void qotp_flow_end(struct qotp_flow *f)
{
	struct qotp_flow_table *ft = f->ft;

	spin_lock_bh(&f->lock);
	if (f->dead) {
		spin_unlock_bh(&f->lock);
		return;
	}
	f->dead = true;
	enc_release_all(f);
	qotp_flow_dec_release_all(f);
	spin_unlock_bh(&f->lock);

	rhashtable_remove_fast(&ft->ht, &f->node, flow_params);
	atomic_dec(&ft->count);
	qotp_stat_add(f->peer, QOTP_STAT_FLOWS_ACTIVE, (u64)-1);
	qotp_peer_put(f->peer);
	kfree_rcu(f, rcu);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_end);

struct qotp_flow *qotp_flow_get(struct qotp_flow_table *ft, const struct qotp_flow_key *key,
				struct qotp_peer *peer, int *err)
{
	struct qotp_flow *f, *old;
	u32 max = READ_ONCE(ft->qn->max_flows);

	f = rhashtable_lookup(&ft->ht, key, flow_params);
	if (f)
		return f;
	if (!max)
		max = QOTP_FLOW_FALLBACK_MAX;
	if (atomic_inc_return(&ft->count) > max) {
		atomic_dec(&ft->count);
		*err = -ENOSPC;
		return NULL;
	}
	f = kzalloc(sizeof(*f), GFP_ATOMIC);
	if (!f || !qotp_peer_get(peer)) {
		atomic_dec(&ft->count);
		kfree(f);
		*err = f ? -ENOENT : -ENOMEM;
		return NULL;
	}
	f->key = *key;
	f->ft = ft;
	f->peer = peer;
	spin_lock_init(&f->lock);
	INIT_LIST_HEAD(&f->enc.spans);
	INIT_LIST_HEAD(&f->dec.runs);
	f->last = jiffies;
	old = rhashtable_lookup_get_insert_fast(&ft->ht, &f->node, flow_params);
	if (old) {
		/* Lost a race with another CPU, or the insert failed. */
		atomic_dec(&ft->count);
		qotp_peer_put(peer);
		kfree(f);
		if (IS_ERR(old)) {
			*err = PTR_ERR(old);
			return NULL;
		}
		return old;
	}
	qotp_stat_add(peer, QOTP_STAT_FLOWS_CREATED, 1);
	qotp_stat_add(peer, QOTP_STAT_FLOWS_ACTIVE, 1);
	return f;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_get);

static void flows_walk_end(struct qotp_flow_table *ft, struct qotp_peer *peer, bool gc)
{
	struct rhashtable_iter it;
	struct qotp_flow *f;

	rhashtable_walk_enter(&ft->ht, &it);
	rhashtable_walk_start(&it);
	while ((f = rhashtable_walk_next(&it))) {
		unsigned long now = jiffies, exp;

		if (IS_ERR(f)) {
			if (PTR_ERR(f) == -EAGAIN)
				continue;
			break;
		}
		if (gc) {
			exp = READ_ONCE(f->expires);
			if (!(exp && time_after_eq(now, exp)) &&
			    !time_after(now, READ_ONCE(f->last) + IDLE_TIMEOUT))
				continue;
		} else if (peer && f->peer != peer) {
			continue;
		}
		qotp_flow_end(f);
	}
	rhashtable_walk_stop(&it);
	rhashtable_walk_exit(&it);
}

void qotp_flows_end_peer(struct qotp_flow_table *ft, struct qotp_peer *peer)
{
	if (ft->ht_ready)
		flows_walk_end(ft, peer, false);
}

static void gc_work(struct work_struct *w)
{
	struct qotp_flow_table *ft = container_of(w, struct qotp_flow_table, gc.work);

	flows_walk_end(ft, NULL, true);
	queue_delayed_work(system_power_efficient_wq, &ft->gc, GC_INTERVAL);
}

int qotp_flows_init(struct qotp_flow_table *ft, struct qotp_net *qn)
{
	int err = rhashtable_init(&ft->ht, &flow_params);

	if (err)
		return err;
	ft->qn = qn;
	ft->ht_ready = true;
	atomic_set(&ft->count, 0);
	INIT_DELAYED_WORK(&ft->gc, gc_work);
	queue_delayed_work(system_power_efficient_wq, &ft->gc, GC_INTERVAL);
	return 0;
}

/* The hooks must be unregistered already: nothing can find or create a flow any more. */
void qotp_flows_destroy(struct qotp_flow_table *ft)
{
	if (!ft->ht_ready)
		return;
	cancel_delayed_work_sync(&ft->gc);
	flows_walk_end(ft, NULL, false);
	WARN_ON(atomic_read(&ft->count));
	rhashtable_destroy(&ft->ht);
	ft->ht_ready = false;
}
