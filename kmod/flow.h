/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-flow key state. A flow is one TCP connection between a host on our side and a host
 * behind a peer; both directions share it:
 *   enc: bytes we send toward the peer, keyed by spans reserved from the peer's encrypt
 *        ring, exactly as the bytes first pass (no read-ahead, so nothing is wasted), and
 *        released when the peer side acknowledges them;
 *   dec: bytes from the peer, keyed by the runs their descriptors announce; the key is
 *        looked up per segment and released when our side acknowledges the bytes.
 */
#ifndef _QOTP_FLOW_H
#define _QOTP_FLOW_H

#include <linux/rhashtable-types.h>
#include <linux/spinlock.h>
#include <linux/list.h>
#include <linux/workqueue.h>
#include <linux/netfilter.h>
#include <linux/in6.h>

#include "qotp.h"
#include "descriptor.h"
#include "xor.h"

#define QOTP_FLOW_MAX_SPANS	4096	/* unacknowledged key spans of one direction */
#define QOTP_FLOW_FALLBACK_MAX	4096	/* when qn->max_flows is 0 */
#define QOTP_FLOW_MAX_GAP	(16U << 20)	/* bytes reserved ahead of a gap */
/* Key pieces one descriptor's runs may span (a run going on into the next blocks is one
 * piece per block): a 64 KiB packet over 4 KiB blocks needs 17 or 18. */
#define QOTP_MAX_KPIECES	24

struct qotp_flow_key {
	union {
		__be32 v4;
		struct in6_addr v6;
	} remote, local;	/* remote: the address behind the peer */
	__be16 rport, lport;
	u8 family;		/* NFPROTO_IPV4 / NFPROTO_IPV6 */
	u8 pad[3];
};

struct qotp_span {
	struct list_head node;
	u32 seq;		/* stream position of ref.key[0] */
	struct qotp_key_ref ref;
};

struct qotp_drun {
	struct list_head node;
	struct qotp_run r;
	u32 stride;		/* the descriptor's, 0 for none */
	u32 end;		/* bytes from r.seq to here were decrypted with it */
};

struct qotp_flow {
	struct rhash_head node;
	struct qotp_flow_key key;
	struct qotp_flow_table *ft;
	struct qotp_peer *peer;		/* holds a reference */
	spinlock_t lock;		/* everything below */
	bool dead;
	u8 fin;				/* bit QOTP_DIR_*: FIN seen in that direction */
	u8 fin_acked;			/* bit QOTP_DIR_*: and acknowledged */
	u32 fin_seq[2];			/* [QOTP_DIR_*]: sequence number of that FIN */
	unsigned long last;		/* jiffies of the last segment */
	unsigned long expires;		/* 0, or when GC ends the flow (FINs acked) */
	struct {
		struct list_head spans;	/* in stream order, contiguous from head to nxt */
		unsigned int nspans;
		bool init;
		u32 head;		/* first byte whose key is still held */
		u32 nxt;		/* first byte with no key reserved yet */
		bool sent_valid;
		u32 sent;		/* end of the bytes actually encrypted */
	} enc;
	struct {
		struct list_head runs;	/* sorted by r.seq */
		unsigned int nruns;
		bool rel_valid;		/* rel known (SYN or an ACK seen) */
		bool seen;		/* top valid */
		bool lo_valid;		/* lo valid */
		u32 lo;			/* came in mid-stream (no SYN): first byte this
					 * state decrypted before rel was known */
		u32 rel;		/* bytes before are acknowledged and their key released */
		u32 top;		/* end of the bytes decrypted so far */
	} dec;
	struct rcu_head rcu;
};

struct qotp_flow_table {
	struct rhashtable ht;
	struct qotp_net *qn;
	atomic_t count;
	struct delayed_work gc;
	struct mutex lock;	/* serialises mode changes and teardown */
	u32 mode;
	bool ht_ready;
	/* nf_unregister_net_hooks() matches registrations by address: keep ours here. */
	struct nf_hook_ops gw_ops[2];
	struct nf_hook_ops ep_ops[4];
};

int qotp_flows_init(struct qotp_flow_table *ft, struct qotp_net *qn);
void qotp_flows_destroy(struct qotp_flow_table *ft);

/*
 * Under rcu_read_lock(): the flow of @key, created (with a reference on @peer) when
 * @create and absent. NULL with *@err = -ENOENT (absent), -ENOSPC (table full) or -ENOMEM.
 */
struct qotp_flow *qotp_flow_get(struct qotp_flow_table *ft, const struct qotp_flow_key *key,
				struct qotp_peer *peer, int *err);

/* Ends @f: releases every key it holds, unhashes it, frees it after a grace period.
 * Idempotent; any context; the caller must not hold f->lock. */
void qotp_flow_end(struct qotp_flow *f);

/* Ends every flow of @peer, or every flow when @peer is NULL. Process context. */
void qotp_flows_end_peer(struct qotp_flow_table *ft, struct qotp_peer *peer);

/* The following run with f->lock held. */

/*
 * Key for bytes [@seq, @seq + @len) toward the peer: reserves what is new from @ring,
 * and fills @d with the runs (at most two; where blocks of equal length follow each other
 * in id order, a run goes on into the next ones: @d->stride) and @pc with the matching key
 * pieces, *@np of them (at most QOTP_MAX_KPIECES).
 * Bytes skipped between the last reservation and @seq (a segment we dropped, or lost
 * before us) get their key reserved too, in stream order, for when they come.
 * -ENOKEY: ring empty (what was reserved stays for the retransmission); -E2BIG: more
 * than two runs or QOTP_MAX_KPIECES pieces (segment it, or cut it: @d and @pc then hold
 * the first runs, which cover the bytes of the *@np pieces from @seq); -ESTALE: bytes
 * whose key was already released; -ERANGE: implausibly far ahead; -ENOSPC: too many
 * unacknowledged spans; -ENOMEM.
 */
int qotp_flow_enc_map(struct qotp_flow *f, struct qotp_ring *ring, u32 seq, u32 len,
		      struct qotp_desc *d, struct qotp_kpiece *pc, unsigned int *np);
/*
 * For a GSO packet of bytes [@seq, @seq + @len) whose key qotp_flow_enc_map() reserved but
 * could not describe in one option: the largest multiple of @mss (the packet's gso_size) such
 * that the packet cut into pieces of that size from @seq needs at most two runs and
 * QOTP_MAX_KPIECES key pieces per piece.
 * @mss when nothing larger works.
 */
u32 qotp_flow_enc_chunk(struct qotp_flow *f, u32 seq, u32 len, u32 mss);
/* The peer side acknowledged everything before @ack: release the spans it covers. */
void qotp_flow_enc_ack(struct qotp_flow *f, struct qotp_ring *ring, u32 ack);
/* Remember the runs of a segment whose bytes [@start, @end) were decrypted. -ENOSPC when
 * too many. */
int qotp_flow_dec_learn(struct qotp_flow *f, const struct qotp_desc *d, u32 start, u32 end);
/* Our side acknowledged everything before @ack: release the key of those bytes. */
void qotp_flow_dec_ack(struct qotp_flow *f, struct qotp_ring *ring, u32 ack);
#if IS_ENABLED(CONFIG_KUNIT)
/* Flow end, decrypt side: releases what was decrypted and not yet released. */
void qotp_flow_dec_release_all(struct qotp_flow *f);
#endif

#endif /* _QOTP_FLOW_H */
