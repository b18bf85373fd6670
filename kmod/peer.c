// SPDX-License-Identifier: GPL-2.0
/*
 * Peers: who protects which prefixes, their key rings and counters, per netns.
 *
 * Writers (netlink commands, netns exit) hold cp->lock. Readers on the packet path hold
 * rcu_read_lock() (netfilter hooks always do) and use:
 *   - cp->peers, an xarray id -> peer, for qotp_peer_find();
 *   - cp->ptable, an immutable table of every prefix of every peer sorted longest first,
 *     rebuilt and swapped with rcu_assign_pointer() on each change, for the address
 *     lookups. A linear scan: deployments have a handful of peers with a few prefixes each,
 *     and the scan touches one cache-friendly array; an LC-trie would pay off past a few
 *     hundred prefixes.
 * A peer holds one reference for being in the tables; the datapath takes more with
 * qotp_peer_get(). The last put frees the peer after an RCU grace period, so a reader that
 * found it in a table it can still see never touches freed memory.
 */
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/percpu.h>
#include <net/ipv6.h>
#include <kunit/visibility.h>

#include "qotp.h"
#include "peer.h"
#include "keyring.h"

struct qotp_pent4 {
	__be32 net;
	__be32 mask;
	u8 len;
	struct qotp_peer *peer;
};

struct qotp_pent6 {
	struct in6_addr net;
	u8 len;
	struct qotp_peer *peer;
};

struct qotp_ptable {
	u32 n4, n6;
	struct qotp_pent4 *v4;
	struct qotp_pent6 *v6;
	struct rcu_head rcu;
};

static void ptable_free(struct qotp_ptable *t)
{
	if (!t)
		return;
	kfree(t->v4);
	kfree(t->v6);
	kfree(t);
}

static void ptable_free_rcu(struct rcu_head *rcu)
{
	ptable_free(container_of(rcu, struct qotp_ptable, rcu));
}

static int cmp_pent4(const void *a, const void *b)
{
	const struct qotp_pent4 *x = a, *y = b;

	return (int)y->len - (int)x->len;
}

static int cmp_pent6(const void *a, const void *b)
{
	const struct qotp_pent6 *x = a, *y = b;

	return (int)y->len - (int)x->len;
}

/* Under cp->lock: rebuild the address table from every peer still in cp->peers. */
static int ptable_rebuild(struct qotp_cp *cp)
{
	struct qotp_ptable *t, *old;
	struct qotp_peer_cp *pc;
	unsigned long id;
	u32 n4 = 0, n6 = 0, i;

	xa_for_each(&cp->peers, id, pc) {
		for (i = 0; i < pc->prefixes->n; i++) {
			if (pc->prefixes->p[i].family == AF_INET)
				n4++;
			else
				n6++;
		}
	}
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	t->v4 = n4 ? kcalloc(n4, sizeof(*t->v4), GFP_KERNEL) : NULL;
	t->v6 = n6 ? kcalloc(n6, sizeof(*t->v6), GFP_KERNEL) : NULL;
	if ((n4 && !t->v4) || (n6 && !t->v6)) {
		ptable_free(t);
		return -ENOMEM;
	}
	xa_for_each(&cp->peers, id, pc) {
		for (i = 0; i < pc->prefixes->n; i++) {
			const struct qotp_prefix *p = &pc->prefixes->p[i];

			if (p->family == AF_INET) {
				struct qotp_pent4 *e = &t->v4[t->n4++];

				memcpy(&e->net, &p->addr, 4);
				e->mask = p->len ? htonl(~0U << (32 - p->len)) : 0;
				e->len = p->len;
				e->peer = &pc->pub;
			} else {
				struct qotp_pent6 *e = &t->v6[t->n6++];

				e->net = p->addr;
				e->len = p->len;
				e->peer = &pc->pub;
			}
		}
	}
	sort(t->v4, t->n4, sizeof(*t->v4), cmp_pent4, NULL);
	sort(t->v6, t->n6, sizeof(*t->v6), cmp_pent6, NULL);
	old = rcu_replace_pointer(cp->ptable, t, lockdep_is_held(&cp->lock));
	if (old)
		call_rcu(&old->rcu, ptable_free_rcu);
	return 0;
}

int qotp_prefix_check(const struct qotp_prefix *p)
{
	struct in6_addr masked;

	if (p->family == AF_INET) {
		__be32 a, m;

		if (p->len > 32)
			return -EINVAL;
		memcpy(&a, &p->addr, 4);
		m = p->len ? htonl(~0U << (32 - p->len)) : 0;
		return (a & ~m) ? -EINVAL : 0;
	}
	if (p->family != AF_INET6 || p->len > 128)
		return -EINVAL;
	ipv6_addr_prefix(&masked, &p->addr, p->len);
	return ipv6_addr_equal(&masked, &p->addr) ? 0 : -EINVAL;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_prefix_check);

static bool prefix_equal(const struct qotp_prefix *a, const struct qotp_prefix *b)
{
	return a->family == b->family && a->len == b->len &&
	       ipv6_addr_equal(&a->addr, &b->addr);
}

/* Under cp->lock: a prefix may belong to one peer only, once. */
static int prefixes_check(struct qotp_cp *cp, u32 self, const struct qotp_prefix *pfx, u32 n,
			  struct netlink_ext_ack *extack)
{
	struct qotp_peer_cp *pc;
	unsigned long id;
	u32 i, j;

	for (i = 0; i < n; i++) {
		if (qotp_prefix_check(&pfx[i])) {
			NL_SET_ERR_MSG(extack, "prefix has host bits set or a bad length");
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			if (prefix_equal(&pfx[i], &pfx[j])) {
				NL_SET_ERR_MSG(extack, "prefix listed twice");
				return -EINVAL;
			}
		}
		xa_for_each(&cp->peers, id, pc) {
			if (id == self)
				continue;
			for (j = 0; j < pc->prefixes->n; j++) {
				if (prefix_equal(&pfx[i], &pc->prefixes->p[j])) {
					NL_SET_ERR_MSG(extack,
						       "prefix already belongs to another peer");
					return -EEXIST;
				}
			}
		}
	}
	return 0;
}

static struct qotp_prefix_set *prefix_set_new(const struct qotp_prefix *pfx, u32 n)
{
	struct qotp_prefix_set *s = kzalloc(struct_size(s, p, n), GFP_KERNEL);

	if (!s)
		return NULL;
	s->n = n;
	if (n)
		memcpy(s->p, pfx, n * sizeof(*pfx));
	return s;
}

static void peer_free_rcu(struct rcu_head *rcu)
{
	struct qotp_peer *peer = container_of(rcu, struct qotp_peer, rcu);
	struct qotp_peer_cp *pc = qotp_peer_cp(peer);

	qotp_ring_destroy(peer->ring[QOTP_DIR_ENCRYPT]);
	qotp_ring_destroy(peer->ring[QOTP_DIR_DECRYPT]);
	free_percpu(peer->stats);
	kfree(pc->prefixes);
	kfree(pc);
}

bool qotp_peer_get(struct qotp_peer *peer)
{
	if (READ_ONCE(qotp_peer_cp(peer)->dead))
		return false;
	return refcount_inc_not_zero(&peer->ref);
}
EXPORT_SYMBOL_GPL(qotp_peer_get);

void qotp_peer_put(struct qotp_peer *peer)
{
	if (peer && refcount_dec_and_test(&peer->ref))
		call_rcu(&peer->rcu, peer_free_rcu);
}
EXPORT_SYMBOL_GPL(qotp_peer_put);

struct qotp_peer *qotp_peer_find(struct qotp_net *qn, u32 id)
{
	return xa_load(&qotp_cp(qn)->peers, id);
}
EXPORT_SYMBOL_GPL(qotp_peer_find);

struct qotp_peer *qotp_peer_lookup_v4(struct qotp_net *qn, __be32 addr)
{
	struct qotp_ptable *t = rcu_dereference(qotp_cp(qn)->ptable);
	u32 i;

	if (!t)
		return NULL;
	for (i = 0; i < t->n4; i++)
		if ((addr & t->v4[i].mask) == t->v4[i].net)
			return t->v4[i].peer;
	return NULL;
}
EXPORT_SYMBOL_GPL(qotp_peer_lookup_v4);

struct qotp_peer *qotp_peer_lookup_v6(struct qotp_net *qn, const struct in6_addr *addr)
{
	struct qotp_ptable *t = rcu_dereference(qotp_cp(qn)->ptable);
	u32 i;

	if (!t)
		return NULL;
	for (i = 0; i < t->n6; i++)
		if (ipv6_prefix_equal(addr, &t->v6[i].net, t->v6[i].len))
			return t->v6[i].peer;
	return NULL;
}
EXPORT_SYMBOL_GPL(qotp_peer_lookup_v6);

bool qotp_port_protected(const struct qotp_net *qn, u16 port)
{
	/* Writers store ports first, then the count (release); a reader racing a change
	 * sees either set or a mix of both for one packet. */
	u32 n = smp_load_acquire(&qn->nports), i;

	for (i = 0; i < n && i < QOTP_MAX_PORTS; i++)
		if (READ_ONCE(qn->ports[i]) == port)
			return true;
	return false;
}
EXPORT_SYMBOL_GPL(qotp_port_protected);

int qotp_peer_add(struct qotp_net *qn, u32 id, const struct qotp_prefix *pfx, u32 n,
		  struct netlink_ext_ack *extack)
{
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_peer_cp *pc;
	int dir, err;

	lockdep_assert_held(&cp->lock);
	if (xa_load(&cp->peers, id)) {
		NL_SET_ERR_MSG(extack, "peer id already exists");
		return -EEXIST;
	}
	err = prefixes_check(cp, id, pfx, n, extack);
	if (err)
		return err;

	pc = kzalloc(sizeof(*pc), GFP_KERNEL_ACCOUNT);
	if (!pc)
		return -ENOMEM;
	pc->pub.id = id;
	pc->pub.qn = qn;
	refcount_set(&pc->pub.ref, 1);
	pc->pub.stats = alloc_percpu(struct qotp_peer_stats);
	pc->prefixes = prefix_set_new(pfx, n);
	if (!pc->pub.stats || !pc->prefixes)
		goto nomem;
	for (dir = 0; dir < __QOTP_DIR_LAST; dir++) {
		pc->pub.ring[dir] = qotp_ring_create(&cp->evq, id, dir);
		if (!pc->pub.ring[dir])
			goto nomem;
		qotp_ring_set_low_watermark(pc->pub.ring[dir], qn->low_watermark);
	}
	err = xa_insert(&cp->peers, id, pc, GFP_KERNEL_ACCOUNT);
	if (err)
		goto free;
	err = ptable_rebuild(cp);
	if (err) {
		xa_erase(&cp->peers, id);
		/* Lookups by id may have seen it: free after a grace period. */
		qotp_peer_put(&pc->pub);
		return err;
	}
	return 0;

nomem:
	err = -ENOMEM;
free:
	qotp_ring_destroy(pc->pub.ring[QOTP_DIR_ENCRYPT]);
	qotp_ring_destroy(pc->pub.ring[QOTP_DIR_DECRYPT]);
	free_percpu(pc->pub.stats);
	kfree(pc->prefixes);
	kfree(pc);
	return err;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_peer_add);

int qotp_peer_set(struct qotp_net *qn, u32 id, const struct qotp_prefix *pfx, u32 n,
		  struct netlink_ext_ack *extack)
{
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_prefix_set *s, *old;
	struct qotp_peer_cp *pc;
	int err;

	lockdep_assert_held(&cp->lock);
	pc = xa_load(&cp->peers, id);
	if (!pc) {
		NL_SET_ERR_MSG(extack, "no peer with this id");
		return -ENOENT;
	}
	err = prefixes_check(cp, id, pfx, n, extack);
	if (err)
		return err;
	s = prefix_set_new(pfx, n);
	if (!s)
		return -ENOMEM;
	old = pc->prefixes;
	pc->prefixes = s;
	err = ptable_rebuild(cp);
	if (err) {
		pc->prefixes = old;
		kfree(s);
		return err;
	}
	/* Only cp->lock holders read pc->prefixes; the packet path uses the table. */
	kfree(old);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_peer_set);

static void peer_remove(struct qotp_net *qn, struct qotp_peer_cp *pc)
{
	struct qotp_cp *cp = qotp_cp(qn);

	xa_erase(&cp->peers, pc->pub.id);
	WRITE_ONCE(pc->dead, true);
	if (ptable_rebuild(cp)) {
		/* Out of memory: the old table must not keep pointing at this peer, so
		 * fall back to an empty one until the next successful rebuild. */
		struct qotp_ptable *old = rcu_replace_pointer(cp->ptable, NULL,
							      lockdep_is_held(&cp->lock));

		if (old)
			call_rcu(&old->rcu, ptable_free_rcu);
	}
	qotp_dp_peer_gone(qn, &pc->pub);
	qotp_ring_flush(pc->pub.ring[QOTP_DIR_ENCRYPT]);
	qotp_ring_flush(pc->pub.ring[QOTP_DIR_DECRYPT]);
	qotp_peer_put(&pc->pub);
}

int qotp_peer_del(struct qotp_net *qn, u32 id)
{
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_peer_cp *pc;

	lockdep_assert_held(&cp->lock);
	pc = xa_load(&cp->peers, id);
	if (!pc)
		return -ENOENT;
	peer_remove(qn, pc);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_peer_del);

void qotp_peer_flush(struct qotp_net *qn, struct qotp_peer *peer, int dir)
{
	int d;

	for (d = 0; d < __QOTP_DIR_LAST; d++) {
		if (dir >= 0 && d != dir)
			continue;
		qotp_dp_ring_flushed(qn, peer, d);
		qotp_ring_flush(peer->ring[d]);
	}
}

void qotp_peers_set_low_watermark(struct qotp_net *qn, u64 wm)
{
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_peer_cp *pc;
	unsigned long id;

	lockdep_assert_held(&cp->lock);
	xa_for_each(&cp->peers, id, pc) {
		qotp_ring_set_low_watermark(pc->pub.ring[QOTP_DIR_ENCRYPT], wm);
		qotp_ring_set_low_watermark(pc->pub.ring[QOTP_DIR_DECRYPT], wm);
	}
}

int qotp_cp_init(struct qotp_net *qn)
{
	struct qotp_cp *cp = kzalloc(sizeof(*cp), GFP_KERNEL);

	if (!cp)
		return -ENOMEM;
	mutex_init(&cp->lock);
	xa_init(&cp->peers);
	RCU_INIT_POINTER(cp->ptable, NULL);
	qotp_evq_init(&cp->evq, qn->net);
	qn->cp = cp;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_cp_init);

void qotp_cp_exit(struct qotp_net *qn)
{
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_ptable *old;
	struct qotp_peer_cp *pc;
	unsigned long id;

	if (!cp)
		return;
	mutex_lock(&cp->lock);
	xa_for_each(&cp->peers, id, pc)
		peer_remove(qn, pc);
	old = rcu_replace_pointer(cp->ptable, NULL, lockdep_is_held(&cp->lock));
	if (old)
		call_rcu(&old->rcu, ptable_free_rcu);
	mutex_unlock(&cp->lock);
	/* Peer frees (which flush and drop their rings, queueing RELEASED events, then
	 * detach the rings from the queue) and table frees run as RCU callbacks: let them
	 * finish, then let any block free that saw a ring still attached finish too,
	 * before the queue goes. */
	rcu_barrier();
	synchronize_rcu();
	qotp_evq_exit(&cp->evq);
	xa_destroy(&cp->peers);
	qn->cp = NULL;
	kfree(cp);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_cp_exit);
