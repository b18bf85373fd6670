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

/*
 * Does span @s continue the run that span @prev (before it in the stream) ends? Either
 * the next bytes of the same block, or, with @chain, the first bytes of the block with the
 * next id when @prev used its block to the end and both blocks have the same length (the
 * stride of wire-format.md).
 */
static bool span_follows(const struct qotp_key_ref *prev, u32 prev_end,
			 const struct qotp_key_ref *s, u32 soff, bool chain)
{
	if (s->block_id == prev->block_id)
		return s->offset + soff == prev_end;
	return chain && s->block_id == prev->block_id + 1 && s->offset + soff == 0 &&
	       prev_end == prev->blk_len && s->blk_len == prev->blk_len;
}

/* The span holding stream byte @seq (reserved: head <= seq < nxt). New data is at the
 * tail, retransmissions near the head: search from the tail. */
static struct qotp_span *span_at(struct qotp_flow *f, u32 seq)
{
	struct qotp_span *s;

	list_for_each_entry_reverse(s, &f->enc.spans, node)
		if (!after(s->seq, seq))
			break;
	return s;
}

/*
 * With a stride S every run of the descriptor is read as going on into blocks of S bytes
 * (wire-format.md), also one that stays in its block: that one is read right only if its
 * block is no longer than S or its bytes stay below offset S. @first_len: the length of
 * each run's first block; @end: where the last run ends.
 */
static bool stride_fits(const struct qotp_desc *d, const u32 *first_len, u32 end)
{
	unsigned int i;

	for (i = 0; i < d->n; i++) {
		u32 rend = i + 1 < d->n ? d->run[i + 1].seq : end;

		if (first_len[i] > d->stride && d->run[i].off + (rend - d->run[i].seq) > d->stride)
			return false;
	}
	return true;
}

/*
 * Runs and key pieces of reserved bytes [@seq, @end), at most two runs and
 * QOTP_MAX_KPIECES pieces; with @chain, runs go on into the next block ids where they can.
 * -E2BIG when more are needed (@d and @pc then hold what fits), -EAGAIN when a chain made
 * a run read wrong (try without), else 0.
 */
static int map_runs(struct qotp_flow *f, u32 seq, u32 end, struct qotp_desc *d,
		    struct qotp_kpiece *pc, unsigned int *np, bool chain)
{
	struct qotp_span *s = span_at(f, seq), *prev = NULL;
	u32 pos, prev_end = 0, first_len[2] = {};
	unsigned int n = 0, p = 0;
	int err = 0;

	d->stride = 0;
	for (pos = seq; pos != end; s = list_next_entry(s, node)) {
		u32 soff = pos - s->seq, k = min(end - pos, s->ref.len - soff);
		u32 koff = s->ref.offset + soff;

		if (prev && span_follows(&prev->ref, prev_end, &s->ref, soff, false)) {
			pc[p - 1].len += k;
		} else if (prev && p < QOTP_MAX_KPIECES && d->run[0].blk < QOTP_BLK_STRIDE_LIMIT &&
			   (!d->stride || d->stride == s->ref.blk_len) &&
			   span_follows(&prev->ref, prev_end, &s->ref, soff, chain)) {
			d->stride = s->ref.blk_len;
			pc[p].key = s->ref.key + soff;
			pc[p].len = k;
			p++;
		} else {
			if (n == 2 || p == QOTP_MAX_KPIECES) {
				err = -E2BIG;
				break;
			}
			pc[p].key = s->ref.key + soff;
			pc[p].len = k;
			p++;
			d->run[n].seq = pos;
			d->run[n].blk = s->ref.block_id;
			d->run[n].off = koff;
			first_len[n] = s->ref.blk_len;
			n++;
		}
		prev = s;
		prev_end = koff + k;
		pos += k;
	}
	d->n = n;
	*np = p;
	if (d->stride && !stride_fits(d, first_len, pos))
		return -EAGAIN;
	return err;
}

int qotp_flow_enc_map(struct qotp_flow *f, struct qotp_ring *ring, u32 seq, u32 len,
		      struct qotp_desc *d, struct qotp_kpiece *pc, unsigned int *np)
{
	u32 end = seq + len;
	struct qotp_span *s;
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
	err = map_runs(f, seq, end, d, pc, np, true);
	if (err == -EAGAIN)	/* blocks of mixed lengths: no chains then */
		err = map_runs(f, seq, end, d, pc, np, false);
	return err;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_flow_enc_map);

/* Key boundaries a GSO packet is cut at most at; more and it goes segment by segment. */
#define CHUNK_MAX_BOUNDS	64

/* Does a piece length of @l bytes keep every piece within two runs and QOTP_MAX_KPIECES
 * key pieces? @b: offsets of key boundaries inside the packet, @run: whether each starts
 * a new run (else a run goes on into the next block). */
static bool chunk_fits(const u32 *b, const bool *run, unsigned int nb, u32 l)
{
	unsigned int i, runs = 0, pieces = 0;
	u32 piece = U32_MAX;

	for (i = 0; i < nb; i++) {
		if (b[i] / l != piece) {
			piece = b[i] / l;
			runs = 0;
			pieces = 0;
		}
		if (!(b[i] % l))
			continue;	/* starts the piece: its first run and key piece */
		runs += run[i];
		pieces++;
		if (runs > 1 || pieces >= QOTP_MAX_KPIECES)
			return false;
	}
	return true;
}

u32 qotp_flow_enc_chunk(struct qotp_flow *f, u32 seq, u32 len, u32 mss)
{
	u32 end = seq + len, b[CHUNK_MAX_BOUNDS], prev_end = 0, k;
	bool run[CHUNK_MAX_BOUNDS];
	struct qotp_span *s, *prev = NULL;
	unsigned int nb = 0;

	if (!mss || len <= mss || !f->enc.init || before(seq, f->enc.head) ||
	    after(end, f->enc.nxt))
		return mss;
	/* Offsets from @seq at which the key moves to another block or run (the start
	 * excluded), as map_runs() sees them. */
	for (s = span_at(f, seq); &s->node != &f->enc.spans && before(s->seq, end);
	     s = list_next_entry(s, node)) {
		u32 soff = after(seq, s->seq) ? seq - s->seq : 0;

		if (prev && !span_follows(&prev->ref, prev_end, &s->ref, soff, false)) {
			if (nb == CHUNK_MAX_BOUNDS)
				return mss;
			run[nb] = !span_follows(&prev->ref, prev_end, &s->ref, soff, true);
			b[nb++] = s->seq + soff - seq;
		}
		prev = s;
		prev_end = s->ref.offset + s->ref.len;
	}
	/* The largest piece, a multiple of @mss, that fits everywhere from @seq on. */
	for (k = len / mss; k > 1; k--)
		if (chunk_fits(b, run, nb, k * mss))
			return k * mss;
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

/* Remember run @r (stride @stride) as the key of bytes up to @end; a run learnt before
 * from the same start names the same key, so it only grows. */
static int dec_insert(struct qotp_flow *f, const struct qotp_run *r, u32 stride, u32 end)
{
	struct qotp_drun *e, *n;

	list_for_each_entry_reverse(e, &f->dec.runs, node) {
		if (e->r.seq == r->seq) {
			if (after(end, e->end))
				e->end = end;
			if (!e->stride)
				e->stride = stride;
			return 0;
		}
		if (before(e->r.seq, r->seq))
			break;
	}
	if (f->dec.nruns >= QOTP_FLOW_MAX_SPANS)
		return -ENOSPC;
	n = kmalloc(sizeof(*n), GFP_ATOMIC);
	if (!n)
		return -ENOMEM;
	n->r = *r;
	n->stride = stride;
	n->end = end;
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

	/* Each run is remembered for the bytes of [start, end) it decrypted, and only for
	 * those: the same start may go on differently elsewhere (another segment's run
	 * may stay in its block where this one went on into the next). */
	for (i = 0; i < d->n; i++) {
		u32 rend = i + 1 < d->n && before(d->run[i + 1].seq, end) ? d->run[i + 1].seq : end;
		u32 rstart = after(start, d->run[i].seq) ? start : d->run[i].seq;

		if (!before(rstart, rend) || (f->dec.rel_valid && !after(rend, f->dec.rel)))
			continue;
		err = dec_insert(f, &d->run[i], d->stride, rend);
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

/* Releases the key of bytes [@x0, @x1) of run @e, block by block. */
static void dec_release_run(struct qotp_flow *f, struct qotp_ring *ring,
			    const struct qotp_drun *e, u32 x0, u32 x1)
{
	struct qotp_key_ref ref;
	u32 off, n;
	u64 blk;

	while (x0 != x1) {
		qotp_run_pos(&e->r, e->stride, x0, &blk, &off);
		n = e->stride ? min(x1 - x0, e->stride - off) : x1 - x0;
		if (!qotp_ring_lookup(ring, blk, off, n, &ref)) {
			qotp_stat_add(f->peer, QOTP_STAT_KEY_USED, n);
			qotp_ring_release(ring, &ref, n);
		}
		x0 += n;
	}
}

/*
 * Releases the key of bytes [from, to) through the runs that decrypted them, each byte
 * once (runs learnt from different segments may overlap: the first covering a byte
 * releases it), then forgets the runs whose bytes are all before @to. A NULL @ring only
 * forgets.
 */
static void dec_release(struct qotp_flow *f, struct qotp_ring *ring, u32 from, u32 to)
{
	struct qotp_drun *e, *tmp;
	u32 pos = from;

	list_for_each_entry_safe(e, tmp, &f->dec.runs, node) {
		u32 x0 = after(pos, e->r.seq) ? pos : e->r.seq;
		u32 x1 = before(e->end, to) ? e->end : to;

		if (!before(e->r.seq, to))
			break;
		if (before(x0, x1)) {
			if (ring)
				dec_release_run(f, ring, e, x0, x1);
			pos = x1;
		}
		if (!after(e->end, to)) {
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
