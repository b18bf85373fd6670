/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qotp internal contract between the control plane (main.c, netlink.c, peer.c, keyring.c)
 * and the datapath (hooks.c, flow.c, xor.c, descriptor.c, csum.c).
 */
#ifndef _QOTP_H
#define _QOTP_H

#include <linux/types.h>
#include <linux/netdevice.h>
#include <linux/in6.h>
#include <linux/percpu.h>
#include <linux/refcount.h>
#include <linux/rcupdate.h>
#include <net/net_namespace.h>
#include <uapi/linux/qotp.h>

struct qotp_ring;
struct qotp_flow_table;

/* A span of key bytes inside one block; holds a reference on that block. */
struct qotp_key_ref {
	void *blk;		/* opaque, owned by keyring.c */
	u64 block_id;
	u32 offset;		/* of the span inside the block */
	u32 len;
	u32 blk_len;		/* length of the whole block */
	const u8 *key;		/* first key byte of the span; valid while the ref is held */
};

struct qotp_peer_stats {
	u64 v[__QOTP_STAT_LAST];
};

struct qotp_peer {
	u32 id;
	struct qotp_ring *ring[__QOTP_DIR_LAST];	/* [QOTP_DIR_ENCRYPT], [QOTP_DIR_DECRYPT] */
	struct qotp_peer_stats __percpu *stats;
	struct qotp_net *qn;
	refcount_t ref;
	struct rcu_head rcu;
	/* control-plane private fields follow in peer.c's view */
};

/* Per network namespace instance (pernet_operations). */
struct qotp_net {
	struct net *net;
	u32 mode;			/* QOTP_MODE_* */
	u16 ports[QOTP_MAX_PORTS];	/* host order; 0-terminated */
	u32 nports;
	u64 ring_max_bytes;
	u64 low_watermark;
	u32 max_flows;
	struct qotp_flow_table *flows;	/* owned by the datapath */
	void *cp;			/* control-plane private state */
};

struct qotp_net *qotp_net(const struct net *net);

/* Peers: lookups run under rcu_read_lock(); take a ref with qotp_peer_get() to keep one. */
struct qotp_peer *qotp_peer_lookup_v4(struct qotp_net *qn, __be32 addr);
struct qotp_peer *qotp_peer_lookup_v6(struct qotp_net *qn, const struct in6_addr *addr);
struct qotp_peer *qotp_peer_find(struct qotp_net *qn, u32 id);
bool qotp_peer_get(struct qotp_peer *peer);	/* false if it is being deleted */
void qotp_peer_put(struct qotp_peer *peer);
bool qotp_port_protected(const struct qotp_net *qn, u16 port);	/* host order */

static inline void qotp_stat_add(struct qotp_peer *peer, enum qotp_stat s, u64 n)
{
	this_cpu_add(peer->stats->v[s], n);
}

/* Key rings (keyring.c). See keyring.c for the locking rules. */

/* Encrypt side: reserve up to @want contiguous, never-used bytes of the ring's oldest
 * block with space left (a span never crosses a block). -ENOKEY when the ring is empty. */
int qotp_ring_reserve(struct qotp_ring *ring, u32 want, struct qotp_key_ref *ref);

/* Decrypt side: take a ref on bytes [offset, offset + len) of block @block_id.
 * -ENOKEY: block not held (not pushed yet, or already released); -ERANGE: past its end. */
int qotp_ring_lookup(struct qotp_ring *ring, u64 block_id, u32 offset, u32 len,
		     struct qotp_key_ref *ref);

/* Take one more reference on the block behind @ref (e.g. to keep a copy of a ref). */
void qotp_key_ref_dup(const struct qotp_key_ref *ref, struct qotp_key_ref *copy);

/* Done with a span: @used of its @ref->len bytes protected payload (counted consumed),
 * the rest is counted as wasted. The span's bytes are wiped as soon as nothing else uses
 * them; a block whose every byte is done is wiped, freed and reported in a RELEASED event.
 * Each byte of a block must be marked done once, by exactly one release. Drops the ref. */
void qotp_ring_release(struct qotp_ring *ring, struct qotp_key_ref *ref, u32 used);

/* Drop a ref without marking anything done (a lookup that was only read). */
void qotp_key_ref_put(struct qotp_key_ref *ref);

u64 qotp_ring_avail(const struct qotp_ring *ring);

/* Events (netlink.c); safe from softirq, rate limited by the caller's needs. */
void qotp_event_key_empty(struct qotp_net *qn, struct qotp_peer *peer, enum qotp_dir dir);

/* Datapath entry points called by the control plane. */
int qotp_dp_net_init(struct qotp_net *qn);		/* flow table */
void qotp_dp_net_exit(struct qotp_net *qn);		/* ends flows, releases their key */
int qotp_dp_set_mode(struct qotp_net *qn, u32 mode);	/* (un)registers nf hooks */
void qotp_dp_peer_gone(struct qotp_net *qn, struct qotp_peer *peer); /* flows of peer end */
void qotp_dp_ring_flushed(struct qotp_net *qn, struct qotp_peer *peer, enum qotp_dir dir);

#endif /* _QOTP_H */
