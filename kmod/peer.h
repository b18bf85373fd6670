/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Peers and the per-netns control-plane state behind qotp_net->cp.
 */
#ifndef _QOTP_PEER_H
#define _QOTP_PEER_H

#include <linux/mutex.h>
#include <linux/xarray.h>
#include <linux/in6.h>
#include <linux/netlink.h>
#include "qotp.h"
#include "netlink.h"

/* Bound on prefixes per peer: keeps one peer's dump message well under a page. */
#define QOTP_MAX_PEER_PREFIXES	64

struct qotp_prefix {
	u16 family;		/* AF_INET or AF_INET6 */
	u8 len;
	struct in6_addr addr;	/* AF_INET: first 4 bytes; host bits are zero */
};

struct qotp_prefix_set {
	u32 n;
	struct rcu_head rcu;
	struct qotp_prefix p[];
};

/* The control plane's view of a peer: the shared struct first. */
struct qotp_peer_cp {
	struct qotp_peer pub;
	struct qotp_prefix_set *prefixes;	/* under qotp_cp.lock */
	bool dead;				/* removed: qotp_peer_get() fails */
};

struct qotp_ptable;

struct qotp_cp {
	struct mutex lock;		/* serialises every change to peers, rings, config */
	struct xarray peers;		/* id -> struct qotp_peer_cp; RCU readers */
	struct qotp_ptable __rcu *ptable; /* prefix -> peer, longest match first */
	struct qotp_evq evq;
};

static inline struct qotp_cp *qotp_cp(const struct qotp_net *qn)
{
	return qn->cp;
}

int qotp_cp_init(struct qotp_net *qn);
void qotp_cp_exit(struct qotp_net *qn);

/* Under cp->lock. @pfx is copied; ADD of an existing id -EEXIST, SET of unknown -ENOENT. */
int qotp_peer_add(struct qotp_net *qn, u32 id, const struct qotp_prefix *pfx, u32 n,
		  struct netlink_ext_ack *extack);
int qotp_peer_set(struct qotp_net *qn, u32 id, const struct qotp_prefix *pfx, u32 n,
		  struct netlink_ext_ack *extack);
int qotp_peer_del(struct qotp_net *qn, u32 id);
/* @dir: a QOTP_DIR_* or -1 for both. */
void qotp_peer_flush(struct qotp_net *qn, struct qotp_peer *peer, int dir);
void qotp_peers_set_low_watermark(struct qotp_net *qn, u64 wm);

static inline struct qotp_peer_cp *qotp_peer_cp(struct qotp_peer *peer)
{
	return container_of(peer, struct qotp_peer_cp, pub);
}

/* Canonical check of one prefix: family, length range, no host bits. */
int qotp_prefix_check(const struct qotp_prefix *p);

#endif /* _QOTP_PEER_H */
