// SPDX-License-Identifier: GPL-2.0
/*
 * The "qotp" generic netlink family (uapi/linux/qotp.h draws every attribute tree).
 *
 * Each command has its own policy over the flat top-level attribute space, so an attribute
 * of another command is refused as unknown rather than silently ignored; the family is
 * strict from command 1 (resv_start_op = 0): reserved header bits, unknown attributes,
 * wrong lengths and missing NLA_F_NESTED are all rejected by the core before we run.
 * Everything the policies cannot say (prefix address length against family, id order,
 * cross-attribute limits) is checked here, each rejection naming its attribute in the
 * extack. Commands of one netns are serialised by its cp->lock; genl itself also
 * serialises all of them (no parallel_ops), which the event worker relies on.
 *
 * Key bytes arrive in QOTP_A_BLOCK_DATA and are wiped from the request as soon as the
 * command is done with them, accepted or not: netlink echoes a failed request back in its
 * error message, and the skb would otherwise be freed with the key in it.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/sock.h>
#include <net/netlink.h>
#include <kunit/visibility.h>

#include "qotp.h"
#include "netlink.h"
#include "peer.h"
#include "keyring.h"

/* Limits of the configuration, beyond which a value is a typo rather than a choice. */
#define QOTP_RING_MAX_MIN	4096ULL
#define QOTP_RING_MAX_MAX	(1ULL << 30)
#define QOTP_MAX_FLOWS_MAX	(1U << 20)
/* RELEASED ids per event message: ~3 KiB, under NLMSG_GOODSIZE. */
#define QOTP_EVT_MAX_IDS	256

static struct genl_family qotp_family;
static void evq_work(struct work_struct *work);
/* Cleared (under genl_lock) before the family goes, so late events are dropped. */
static bool qotp_genl_live;

enum { QOTP_MCGRP_EVENTS_IDX };

static const struct genl_multicast_group qotp_mcgrps[] = {
	[QOTP_MCGRP_EVENTS_IDX] = {
		.name = QOTP_MCGRP_EVENTS,
		/* Events name block ids and drop counts: operators only. */
		.flags = GENL_MCAST_CAP_NET_ADMIN,
	},
};

static struct netlink_range_validation block_len_range = {
	.min = 1, .max = QOTP_MAX_BLOCK_LEN,
};
static struct netlink_range_validation ring_max_range = {
	.min = QOTP_RING_MAX_MIN, .max = QOTP_RING_MAX_MAX,
};
static struct netlink_range_validation low_wm_range = {
	.min = 0, .max = QOTP_RING_MAX_MAX,
};
static struct netlink_range_validation max_flows_range = {
	.min = 1, .max = QOTP_MAX_FLOWS_MAX,
};

static const struct nla_policy prefix_policy[QOTP_A_PREFIX_MAX + 1] = {
	[QOTP_A_PREFIX_FAMILY]	= NLA_POLICY_RANGE(NLA_U16, AF_INET, AF_INET6),
	[QOTP_A_PREFIX_ADDR]	= NLA_POLICY_RANGE(NLA_BINARY, 4, 16),
	[QOTP_A_PREFIX_LEN]	= NLA_POLICY_MAX(NLA_U8, 128),
};

static const struct nla_policy block_policy[QOTP_A_BLOCK_MAX + 1] = {
	[QOTP_A_BLOCK_ID]	= { .type = NLA_U64 },
	[QOTP_A_BLOCK_DATA]	= NLA_POLICY_FULL_RANGE(NLA_BINARY, &block_len_range),
};

static const struct nla_policy set_config_policy[QOTP_A_MAX + 1] = {
	/* Array of NLA_U16, checked in parse_ports(). */
	[QOTP_A_CFG_PORTS]		= { .type = NLA_NESTED },
	[QOTP_A_CFG_MODE]		= NLA_POLICY_MASK(NLA_U32, QOTP_MODE_ALL),
	[QOTP_A_CFG_RING_MAX_BYTES]	= NLA_POLICY_FULL_RANGE(NLA_U64, &ring_max_range),
	[QOTP_A_CFG_LOW_WATERMARK]	= NLA_POLICY_FULL_RANGE(NLA_U64, &low_wm_range),
	[QOTP_A_CFG_MAX_FLOWS]		= NLA_POLICY_FULL_RANGE(NLA_U32, &max_flows_range),
};

/* Commands without attributes: every attribute is unknown. */
static const struct nla_policy empty_policy[QOTP_A_MAX + 1] = {};

static const struct nla_policy peer_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_PEER_ID]	= NLA_POLICY_MIN(NLA_U32, 1),
	[QOTP_A_PEER_PREFIXES]	= NLA_POLICY_NESTED_ARRAY(prefix_policy),
};

static const struct nla_policy peer_id_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_PEER_ID]	= NLA_POLICY_MIN(NLA_U32, 1),
};

static const struct nla_policy push_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_PUSH_PEER]	= NLA_POLICY_MIN(NLA_U32, 1),
	[QOTP_A_PUSH_DIR]	= NLA_POLICY_MAX(NLA_U8, QOTP_DIR_MAX),
	[QOTP_A_PUSH_BLOCKS]	= NLA_POLICY_NESTED_ARRAY(block_policy),
};

static const struct nla_policy flush_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_FLUSH_PEER]	= NLA_POLICY_MIN(NLA_U32, 1),
	[QOTP_A_FLUSH_DIR]	= NLA_POLICY_MAX(NLA_U8, QOTP_DIR_MAX),
};

static struct qotp_net *info_qn(struct genl_info *info)
{
	return qotp_net(genl_info_net(info));
}

/* A required attribute: the extack names the missing type (NLMSGERR_ATTR_MISS_TYPE, and
 * MISS_NEST for nested ones) and says so in words for tools that only print the text. */
#define REQUIRE(info, type) ({						\
	bool __miss = GENL_REQ_ATTR_CHECK(info, type);				\
	if (__miss)								\
		NL_SET_ERR_MSG((info)->extack, "missing required attribute " #type); \
	__miss;									\
})
#define REQUIRE_NESTED(extack, nest, tb, type) ({				\
	bool __miss = NL_REQ_ATTR_CHECK(extack, nest, tb, type);		\
	if (__miss)								\
		NL_SET_ERR_MSG(extack, "missing required attribute " #type);	\
	__miss;									\
})

/* ---- events ---------------------------------------------------------------------- */

void qotp_evq_init(struct qotp_evq *q, struct net *net)
{
	spin_lock_init(&q->lock);
	INIT_LIST_HEAD(&q->list);
	q->len = 0;
	q->lost = 0;
	q->net = net;
	q->live = net != NULL;
	INIT_WORK(&q->work, evq_work);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_evq_init);

static void evq_free_list(struct list_head *list)
{
	struct qotp_ev *ev, *tmp;

	list_for_each_entry_safe(ev, tmp, list, node) {
		list_del(&ev->node);
		kfree(ev);
	}
}

void qotp_evq_add(struct qotp_evq *q, u8 cmd, u32 peer, u8 dir, u64 val, u64 block_id)
{
	struct qotp_ev *ev = kmalloc(sizeof(*ev), GFP_ATOMIC);
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	if (!ev || q->len >= QOTP_EVQ_MAX) {
		q->lost++;
		spin_unlock_irqrestore(&q->lock, flags);
		kfree(ev);
		return;
	}
	ev->cmd = cmd;
	ev->peer = peer;
	ev->dir = dir;
	ev->val = val;
	ev->block_id = block_id;
	list_add_tail(&ev->node, &q->list);
	q->len++;
	if (q->live)
		schedule_work(&q->work);
	spin_unlock_irqrestore(&q->lock, flags);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_evq_add);

void qotp_evq_take(struct qotp_evq *q, struct list_head *out)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	list_splice_tail_init(&q->list, out);
	q->len = 0;
	spin_unlock_irqrestore(&q->lock, flags);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_evq_take);

/* Builds one message from the head of @list, consuming the events it carries. */
static struct sk_buff *event_build(struct list_head *list)
{
	struct qotp_ev *ev = list_first_entry(list, struct qotp_ev, node), *next;
	u8 cmd = ev->cmd, dir = ev->dir;
	u32 peer = ev->peer;
	struct nlattr *ids;
	struct sk_buff *skb;
	u64 consumed = 0;
	unsigned int n = 0;
	void *hdr;

	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!skb)
		return NULL;
	hdr = genlmsg_put(skb, 0, 0, &qotp_family, 0, cmd);
	if (!hdr)
		goto fail;
	/* FLUSHED uses peer 0 for "all peers" and dir 0xff for "both". */
	if (peer && nla_put_u32(skb, QOTP_A_EVT_PEER, peer))
		goto fail;
	if (dir <= QOTP_DIR_MAX && nla_put_u8(skb, QOTP_A_EVT_DIR, dir))
		goto fail;

	switch (cmd) {
	case QOTP_CMD_EVENT_LOW_WATERMARK:
	case QOTP_CMD_EVENT_KEY_EMPTY:
		if (nla_put_u64_64bit(skb, cmd == QOTP_CMD_EVENT_KEY_EMPTY ?
				      QOTP_A_EVT_DROPS : QOTP_A_EVT_AVAIL, ev->val, QOTP_A_PAD))
			goto fail;
		list_del(&ev->node);
		kfree(ev);
		break;
	case QOTP_CMD_EVENT_RELEASED:
		ids = nla_nest_start(skb, QOTP_A_EVT_BLOCK_IDS);
		if (!ids)
			goto fail;
		list_for_each_entry_safe_from(ev, next, list, node) {
			if (ev->cmd != cmd || ev->peer != peer || ev->dir != dir ||
			    n == QOTP_EVT_MAX_IDS)
				break;
			if (nla_put_u64_64bit(skb, 0, ev->block_id, QOTP_A_PAD))
				goto fail;
			consumed += ev->val;
			n++;
			list_del(&ev->node);
			kfree(ev);
		}
		nla_nest_end(skb, ids);
		if (nla_put_u64_64bit(skb, QOTP_A_EVT_CONSUMED, consumed, QOTP_A_PAD))
			goto fail;
		break;
	default:
		list_del(&ev->node);
		kfree(ev);
		break;
	}
	genlmsg_end(skb, hdr);
	return skb;

fail:
	nlmsg_free(skb);
	return NULL;
}

static void evq_work(struct work_struct *work)
{
	struct qotp_evq *q = container_of(work, struct qotp_evq, work);
	struct sk_buff *skb;
	LIST_HEAD(list);

	qotp_evq_take(q, &list);
	genl_lock();
	while (!list_empty(&list)) {
		if (!READ_ONCE(qotp_genl_live) ||
		    !genl_has_listeners(&qotp_family, q->net, QOTP_MCGRP_EVENTS_IDX))
			break;
		skb = event_build(&list);
		if (!skb)
			break;
		genlmsg_multicast_netns(&qotp_family, q->net, skb, 0, QOTP_MCGRP_EVENTS_IDX,
					GFP_KERNEL);
	}
	genl_unlock();
	evq_free_list(&list);
}

void qotp_evq_exit(struct qotp_evq *q)
{
	LIST_HEAD(list);
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->live = false;
	spin_unlock_irqrestore(&q->lock, flags);
	if (q->net)
		cancel_work_sync(&q->work);
	qotp_evq_take(q, &list);
	evq_free_list(&list);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_evq_exit);

void qotp_event_key_empty(struct qotp_net *qn, struct qotp_peer *peer, enum qotp_dir dir)
{
	if (peer && dir <= QOTP_DIR_MAX)
		qotp_ring_key_empty(peer->ring[dir]);
}
EXPORT_SYMBOL_GPL(qotp_event_key_empty);

/* ---- configuration ----------------------------------------------------------------- */

static int parse_ports(const struct nlattr *nest, u16 *ports, u32 *nports,
		       struct netlink_ext_ack *extack)
{
	const struct nlattr *a;
	u32 n = 0, i;
	int rem;

	nla_for_each_nested(a, nest, rem) {
		u16 port;

		if (nla_len(a) != sizeof(u16)) {
			NL_SET_ERR_MSG_ATTR(extack, a, "port must be a u16");
			return -EINVAL;
		}
		port = nla_get_u16(a);
		if (!port) {
			NL_SET_ERR_MSG_ATTR(extack, a, "port 0 cannot be protected");
			return -EINVAL;
		}
		if (n == QOTP_MAX_PORTS) {
			NL_SET_ERR_MSG_ATTR(extack, a, "more than QOTP_MAX_PORTS ports");
			return -E2BIG;
		}
		for (i = 0; i < n; i++) {
			if (ports[i] == port) {
				NL_SET_ERR_MSG_ATTR(extack, a, "port listed twice");
				return -EINVAL;
			}
		}
		ports[n++] = port;
	}
	if (rem) {
		NL_SET_ERR_MSG_ATTR(extack, nest, "trailing bytes in port list");
		return -EINVAL;
	}
	*nports = n;
	return 0;
}

static int set_config_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct qotp_net *qn = info_qn(info);
	struct nlattr **attrs = info->attrs;
	struct qotp_cp *cp = qotp_cp(qn);
	u16 ports[QOTP_MAX_PORTS];
	u32 nports = 0, mode, max_flows, i;
	u64 ring_max, low_wm;
	int err;

	if (attrs[QOTP_A_CFG_PORTS]) {
		err = parse_ports(attrs[QOTP_A_CFG_PORTS], ports, &nports, extack);
		if (err)
			return err;
	}

	mutex_lock(&cp->lock);
	mode = attrs[QOTP_A_CFG_MODE] ? nla_get_u32(attrs[QOTP_A_CFG_MODE]) : qn->mode;
	ring_max = attrs[QOTP_A_CFG_RING_MAX_BYTES] ?
		   nla_get_u64(attrs[QOTP_A_CFG_RING_MAX_BYTES]) : qn->ring_max_bytes;
	low_wm = attrs[QOTP_A_CFG_LOW_WATERMARK] ?
		 nla_get_u64(attrs[QOTP_A_CFG_LOW_WATERMARK]) : qn->low_watermark;
	max_flows = attrs[QOTP_A_CFG_MAX_FLOWS] ?
		    nla_get_u32(attrs[QOTP_A_CFG_MAX_FLOWS]) : qn->max_flows;

	if (low_wm > ring_max) {
		NL_SET_ERR_MSG_ATTR(extack, attrs[QOTP_A_CFG_LOW_WATERMARK] ?:
				    attrs[QOTP_A_CFG_RING_MAX_BYTES],
				    "low watermark above the ring's maximum size");
		err = -EINVAL;
		goto out;
	}
	if (mode != qn->mode) {
		err = qotp_dp_set_mode(qn, mode);
		if (err) {
			/* Undo a half-applied change (one of two hook sets registered). */
			qotp_dp_set_mode(qn, qn->mode);
			NL_SET_ERR_MSG_ATTR(extack, attrs[QOTP_A_CFG_MODE],
					    "cannot register the netfilter hooks of this mode");
			goto out;
		}
		WRITE_ONCE(qn->mode, mode);
	}
	if (attrs[QOTP_A_CFG_PORTS]) {
		/* Shrinking: publish the count first; growing: the ports first. */
		if (nports < qn->nports)
			smp_store_release(&qn->nports, nports);
		for (i = 0; i < QOTP_MAX_PORTS; i++)
			WRITE_ONCE(qn->ports[i], i < nports ? ports[i] : 0);
		smp_store_release(&qn->nports, nports);
	}
	WRITE_ONCE(qn->ring_max_bytes, ring_max);
	WRITE_ONCE(qn->max_flows, max_flows);
	if (low_wm != qn->low_watermark) {
		WRITE_ONCE(qn->low_watermark, low_wm);
		qotp_peers_set_low_watermark(qn, low_wm);
	}
	err = 0;
out:
	mutex_unlock(&cp->lock);
	return err;
}

static int fill_config(struct sk_buff *skb, struct qotp_net *qn)
{
	struct nlattr *nest;
	u32 i;

	nest = nla_nest_start(skb, QOTP_A_CFG_PORTS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < qn->nports; i++)
		if (nla_put_u16(skb, 0, qn->ports[i]))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	if (nla_put_u32(skb, QOTP_A_CFG_MODE, qn->mode) ||
	    nla_put_u64_64bit(skb, QOTP_A_CFG_RING_MAX_BYTES, qn->ring_max_bytes, QOTP_A_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_CFG_LOW_WATERMARK, qn->low_watermark, QOTP_A_PAD) ||
	    nla_put_u32(skb, QOTP_A_CFG_MAX_FLOWS, qn->max_flows))
		return -EMSGSIZE;
	return 0;
}

static int get_config_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct qotp_net *qn = info_qn(info);
	struct sk_buff *msg;
	void *hdr;
	int err;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &qotp_family, 0, QOTP_CMD_GET_CONFIG);
	if (!hdr) {
		err = -EMSGSIZE;
		goto fail;
	}
	mutex_lock(&qotp_cp(qn)->lock);
	err = fill_config(msg, qn);
	mutex_unlock(&qotp_cp(qn)->lock);
	if (err)
		goto fail;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
fail:
	nlmsg_free(msg);
	return err;
}

/* ---- peers --------------------------------------------------------------------- */

static int parse_prefixes(const struct nlattr *nest, struct qotp_prefix **out, u32 *nout,
			  struct netlink_ext_ack *extack)
{
	struct nlattr *tb[QOTP_A_PREFIX_MAX + 1];
	struct qotp_prefix *pfx;
	const struct nlattr *a;
	u32 n = 0;
	int rem, err;

	*out = NULL;
	*nout = 0;
	if (!nest)
		return 0;
	nla_for_each_nested(a, nest, rem)
		n++;
	if (n > QOTP_MAX_PEER_PREFIXES) {
		NL_SET_ERR_MSG_ATTR(extack, nest, "more than 64 prefixes for one peer");
		return -E2BIG;
	}
	if (!n)
		return 0;
	pfx = kcalloc(n, sizeof(*pfx), GFP_KERNEL);
	if (!pfx)
		return -ENOMEM;
	n = 0;
	nla_for_each_nested(a, nest, rem) {
		struct qotp_prefix *p = &pfx[n];
		u32 alen;

		err = nla_parse_nested(tb, QOTP_A_PREFIX_MAX, a, prefix_policy, extack);
		if (err)
			goto fail;
		err = -EINVAL;
		if (REQUIRE_NESTED(extack, a, tb, QOTP_A_PREFIX_FAMILY) ||
		    REQUIRE_NESTED(extack, a, tb, QOTP_A_PREFIX_ADDR) ||
		    REQUIRE_NESTED(extack, a, tb, QOTP_A_PREFIX_LEN))
			goto fail;
		p->family = nla_get_u16(tb[QOTP_A_PREFIX_FAMILY]);
		if (p->family != AF_INET && p->family != AF_INET6) {
			NL_SET_ERR_MSG_ATTR(extack, tb[QOTP_A_PREFIX_FAMILY],
					    "family must be AF_INET or AF_INET6");
			goto fail;
		}
		alen = p->family == AF_INET ? 4 : 16;
		if (nla_len(tb[QOTP_A_PREFIX_ADDR]) != alen) {
			NL_SET_ERR_MSG_ATTR(extack, tb[QOTP_A_PREFIX_ADDR],
					    "address length does not match the family");
			goto fail;
		}
		memcpy(&p->addr, nla_data(tb[QOTP_A_PREFIX_ADDR]), alen);
		p->len = nla_get_u8(tb[QOTP_A_PREFIX_LEN]);
		if (p->len > alen * 8) {
			NL_SET_ERR_MSG_ATTR(extack, tb[QOTP_A_PREFIX_LEN],
					    "prefix length too long for the family");
			goto fail;
		}
		if (qotp_prefix_check(p)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[QOTP_A_PREFIX_ADDR],
					    "address has bits set beyond the prefix length");
			goto fail;
		}
		n++;
	}
	*out = pfx;
	*nout = n;
	return 0;
fail:
	kfree(pfx);
	return err;
}

static int peer_change_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct qotp_net *qn = info_qn(info);
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_prefix *pfx;
	u32 id, n;
	int err;

	if (REQUIRE(info, QOTP_A_PEER_ID))
		return -EINVAL;
	id = nla_get_u32(info->attrs[QOTP_A_PEER_ID]);
	err = parse_prefixes(info->attrs[QOTP_A_PEER_PREFIXES], &pfx, &n, extack);
	if (err)
		return err;

	mutex_lock(&cp->lock);
	if (info->genlhdr->cmd == QOTP_CMD_ADD_PEER) {
		err = qotp_peer_add(qn, id, pfx, n, extack);
	} else if (info->attrs[QOTP_A_PEER_PREFIXES]) {
		err = qotp_peer_set(qn, id, pfx, n, extack);
	} else {
		err = xa_load(&cp->peers, id) ? 0 : -ENOENT;
		if (err)
			NL_SET_ERR_MSG(extack, "no peer with this id");
	}
	mutex_unlock(&cp->lock);
	if (err && extack && !extack->bad_attr)
		NL_SET_BAD_ATTR(extack, err == -EEXIST || err == -ENOENT ?
				info->attrs[QOTP_A_PEER_ID] : info->attrs[QOTP_A_PEER_PREFIXES]);
	kfree(pfx);
	return err;
}

static int del_peer_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct qotp_net *qn = info_qn(info);
	struct qotp_cp *cp = qotp_cp(qn);
	int err;

	if (REQUIRE(info, QOTP_A_PEER_ID))
		return -EINVAL;
	mutex_lock(&cp->lock);
	err = qotp_peer_del(qn, nla_get_u32(info->attrs[QOTP_A_PEER_ID]));
	mutex_unlock(&cp->lock);
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[QOTP_A_PEER_ID],
				    "no peer with this id");
	return err;
}

static int put_ring(struct sk_buff *skb, struct qotp_ring *ring, u8 dir)
{
	struct qotp_ring_info ri;
	struct nlattr *nest;

	qotp_ring_info(ring, &ri);
	nest = nla_nest_start(skb, 0);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u8(skb, QOTP_A_RING_DIR, dir) ||
	    nla_put_u32(skb, QOTP_A_RING_BLOCKS, ri.blocks) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_AVAIL, ri.avail, QOTP_A_RING_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_RESERVED, ri.reserved, QOTP_A_RING_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_PUSHED, ri.pushed, QOTP_A_RING_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_CONSUMED, ri.consumed, QOTP_A_RING_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_WASTED, ri.wasted, QOTP_A_RING_PAD) ||
	    nla_put_u64_64bit(skb, QOTP_A_RING_REFUSED, ri.refused, QOTP_A_RING_PAD) ||
	    (ri.has_last &&
	     nla_put_u64_64bit(skb, QOTP_A_RING_LAST_ID, ri.last_id, QOTP_A_RING_PAD)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int put_peer_body(struct sk_buff *skb, struct qotp_peer_cp *pc)
{
	struct qotp_peer *peer = &pc->pub;
	struct nlattr *nest, *entry;
	u64 v[__QOTP_STAT_LAST] = {};
	int cpu, s;
	u32 i;

	if (nla_put_u32(skb, QOTP_A_PEER_ID, peer->id))
		return -EMSGSIZE;

	nest = nla_nest_start(skb, QOTP_A_PEER_PREFIXES);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < pc->prefixes->n; i++) {
		const struct qotp_prefix *p = &pc->prefixes->p[i];

		entry = nla_nest_start(skb, 0);
		if (!entry ||
		    nla_put_u16(skb, QOTP_A_PREFIX_FAMILY, p->family) ||
		    nla_put(skb, QOTP_A_PREFIX_ADDR, p->family == AF_INET ? 4 : 16, &p->addr) ||
		    nla_put_u8(skb, QOTP_A_PREFIX_LEN, p->len))
			return -EMSGSIZE;
		nla_nest_end(skb, entry);
	}
	nla_nest_end(skb, nest);

	nest = nla_nest_start(skb, QOTP_A_PEER_RINGS);
	if (!nest ||
	    put_ring(skb, peer->ring[QOTP_DIR_ENCRYPT], QOTP_DIR_ENCRYPT) ||
	    put_ring(skb, peer->ring[QOTP_DIR_DECRYPT], QOTP_DIR_DECRYPT))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);

	for_each_possible_cpu(cpu) {
		const struct qotp_peer_stats *st = per_cpu_ptr(peer->stats, cpu);

		for (s = 0; s < __QOTP_STAT_LAST; s++)
			v[s] += READ_ONCE(st->v[s]);
	}
	nest = nla_nest_start(skb, QOTP_A_PEER_STATS);
	if (!nest)
		return -EMSGSIZE;
	/* Types are stat + 1, so padding (where needed) is type 0: it never collides with a
	 * counter appended later. */
	for (s = 0; s < __QOTP_STAT_LAST; s++)
		if (nla_put_u64_64bit(skb, s + 1, v[s], 0))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int get_peer_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct qotp_net *qn = info_qn(info);
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_peer_cp *pc;
	struct sk_buff *msg;
	void *hdr;
	int err;

	if (REQUIRE(info, QOTP_A_PEER_ID))
		return -EINVAL;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &qotp_family, 0, QOTP_CMD_GET_PEER);
	if (!hdr) {
		err = -EMSGSIZE;
		goto fail;
	}
	mutex_lock(&cp->lock);
	pc = xa_load(&cp->peers, nla_get_u32(info->attrs[QOTP_A_PEER_ID]));
	if (!pc) {
		mutex_unlock(&cp->lock);
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[QOTP_A_PEER_ID],
				    "no peer with this id");
		err = -ENOENT;
		goto fail;
	}
	err = put_peer_body(msg, pc);
	mutex_unlock(&cp->lock);
	if (err)
		goto fail;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
fail:
	nlmsg_free(msg);
	return err;
}

/* One message per peer; cb->args[0] is the next peer id to dump, so the dump resumes
 * where the previous skb filled up even if peers come and go in between. */
static int get_peer_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct qotp_net *qn = qotp_net(sock_net(cb->skb->sk));
	struct qotp_cp *cp = qotp_cp(qn);
	struct qotp_peer_cp *pc;
	unsigned long id;
	int err = 0;
	void *hdr;

	if (cb->args[1])
		return 0;
	mutex_lock(&cp->lock);
	xa_for_each_start(&cp->peers, id, pc, cb->args[0]) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				  &qotp_family, NLM_F_MULTI, QOTP_CMD_GET_PEER);
		if (!hdr) {
			err = -EMSGSIZE;
			break;
		}
		err = put_peer_body(skb, pc);
		if (err) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = id + 1;
	}
	if (!err)
		cb->args[1] = 1;	/* every peer sent */
	mutex_unlock(&cp->lock);
	/* A peer that does not fit in an empty skb would loop forever: report it. */
	if (err && !skb->len)
		return err;
	return skb->len;
}

/* ---- keys ---------------------------------------------------------------------- */

static void wipe_block_data(const struct nlattr *blocks)
{
	const struct nlattr *b, *a;
	int rem, rem2;

	if (!blocks)
		return;
	nla_for_each_nested(b, blocks, rem)
		nla_for_each_nested(a, b, rem2)
			if (nla_type(a) == QOTP_A_BLOCK_DATA)
				memzero_explicit(nla_data(a), nla_len(a));
}

static int parse_blocks(const struct nlattr *nest, struct qotp_push_blk **out, u32 *nout,
			const struct nlattr ***id_attrs, struct netlink_ext_ack *extack)
{
	struct nlattr *tb[QOTP_A_BLOCK_MAX + 1];
	const struct nlattr **ida;
	struct qotp_push_blk *b;
	const struct nlattr *a;
	u32 n = 0;
	int rem, err;

	nla_for_each_nested(a, nest, rem)
		n++;
	if (!n || n > QOTP_MAX_PUSH_BLOCKS) {
		NL_SET_ERR_MSG_ATTR(extack, nest, "1 to QOTP_MAX_PUSH_BLOCKS blocks per push");
		return -EINVAL;
	}
	b = kcalloc(n, sizeof(*b), GFP_KERNEL);
	ida = kcalloc(n, sizeof(*ida), GFP_KERNEL);
	if (!b || !ida) {
		err = -ENOMEM;
		goto fail;
	}
	n = 0;
	nla_for_each_nested(a, nest, rem) {
		err = nla_parse_nested(tb, QOTP_A_BLOCK_MAX, a, block_policy, extack);
		if (err)
			goto fail;
		err = -EINVAL;
		if (REQUIRE_NESTED(extack, a, tb, QOTP_A_BLOCK_ID) ||
		    REQUIRE_NESTED(extack, a, tb, QOTP_A_BLOCK_DATA))
			goto fail;
		b[n].id = nla_get_u64(tb[QOTP_A_BLOCK_ID]);
		b[n].data = nla_data(tb[QOTP_A_BLOCK_DATA]);
		b[n].len = nla_len(tb[QOTP_A_BLOCK_DATA]);
		ida[n] = tb[QOTP_A_BLOCK_ID];
		if (n && b[n].id <= b[n - 1].id) {
			NL_SET_ERR_MSG_ATTR(extack, tb[QOTP_A_BLOCK_ID],
					    "block ids must increase within a push");
			goto fail;
		}
		n++;
	}
	*out = b;
	*nout = n;
	*id_attrs = ida;
	return 0;
fail:
	kfree(b);
	kfree(ida);
	return err;
}

static int push_keys_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct nlattr *blocks = info->attrs[QOTP_A_PUSH_BLOCKS];
	struct qotp_net *qn = info_qn(info);
	struct qotp_cp *cp = qotp_cp(qn);
	const struct nlattr **ida = NULL;
	struct qotp_push_blk *b = NULL;
	struct qotp_peer *peer;
	u32 n = 0;
	u8 dir;
	int err;

	if (REQUIRE(info, QOTP_A_PUSH_PEER) ||
	    REQUIRE(info, QOTP_A_PUSH_DIR) ||
	    REQUIRE(info, QOTP_A_PUSH_BLOCKS)) {
		err = -EINVAL;
		goto wipe;
	}
	dir = nla_get_u8(info->attrs[QOTP_A_PUSH_DIR]);

	mutex_lock(&cp->lock);
	peer = qotp_peer_find(qn, nla_get_u32(info->attrs[QOTP_A_PUSH_PEER]));
	if (!peer) {
		NL_SET_ERR_MSG_ATTR(extack, info->attrs[QOTP_A_PUSH_PEER], "no peer with this id");
		err = -ENOENT;
		goto unlock;
	}
	err = parse_blocks(blocks, &b, &n, &ida, extack);
	if (err) {
		qotp_ring_count_refused(peer->ring[dir]);
		goto unlock;
	}
	err = qotp_ring_push(peer->ring[dir], b, n, READ_ONCE(qn->ring_max_bytes));
	if (err == -EINVAL)
		NL_SET_ERR_MSG_ATTR(extack, ida[0],
				    "block id not above the highest id this ring ever accepted");
	else if (err == -ENOSPC)
		NL_SET_ERR_MSG_ATTR(extack, blocks, "push would exceed the ring's maximum size");
	else if (err)
		NL_SET_ERR_MSG(extack, "out of memory storing key blocks");
unlock:
	mutex_unlock(&cp->lock);
	kfree(b);
	kfree(ida);
wipe:
	wipe_block_data(blocks);
	return err;
}

static int flush_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct qotp_net *qn = info_qn(info);
	struct qotp_cp *cp = qotp_cp(qn);
	struct nlattr *pa = info->attrs[QOTP_A_FLUSH_PEER];
	struct nlattr *da = info->attrs[QOTP_A_FLUSH_DIR];
	int dir = da ? nla_get_u8(da) : -1;
	struct qotp_peer_cp *pc;
	unsigned long id;
	int err = 0;

	mutex_lock(&cp->lock);
	if (pa) {
		pc = xa_load(&cp->peers, nla_get_u32(pa));
		if (!pc) {
			NL_SET_ERR_MSG_ATTR(info->extack, pa, "no peer with this id");
			err = -ENOENT;
			goto out;
		}
		qotp_peer_flush(qn, &pc->pub, dir);
	} else {
		xa_for_each(&cp->peers, id, pc)
			qotp_peer_flush(qn, &pc->pub, dir);
	}
	qotp_evq_add(&cp->evq, QOTP_CMD_EVENT_FLUSHED, pa ? nla_get_u32(pa) : 0,
		     dir < 0 ? 0xff : dir, 0, 0);
out:
	mutex_unlock(&cp->lock);
	return err;
}

/* ---- family -------------------------------------------------------------------- */

static const struct genl_ops qotp_ops[] = {
	{
		.cmd = QOTP_CMD_SET_CONFIG,
		.doit = set_config_doit,
		.policy = set_config_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	}, {
		.cmd = QOTP_CMD_GET_CONFIG,
		.doit = get_config_doit,
		.policy = empty_policy,
		.maxattr = QOTP_A_MAX,
	}, {
		.cmd = QOTP_CMD_ADD_PEER,
		.doit = peer_change_doit,
		.policy = peer_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	}, {
		.cmd = QOTP_CMD_SET_PEER,
		.doit = peer_change_doit,
		.policy = peer_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	}, {
		.cmd = QOTP_CMD_DEL_PEER,
		.doit = del_peer_doit,
		.policy = peer_id_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	}, {
		.cmd = QOTP_CMD_GET_PEER,
		.doit = get_peer_doit,
		.dumpit = get_peer_dumpit,
		.policy = peer_id_policy,
		.maxattr = QOTP_A_MAX,
	}, {
		.cmd = QOTP_CMD_PUSH_KEYS,
		.doit = push_keys_doit,
		.policy = push_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	}, {
		.cmd = QOTP_CMD_FLUSH,
		.doit = flush_doit,
		.policy = flush_policy,
		.maxattr = QOTP_A_MAX,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

static struct genl_family qotp_family __ro_after_init = {
	.name = QOTP_GENL_NAME,
	.version = QOTP_GENL_VERSION,
	.netnsok = true,
	.module = THIS_MODULE,
	.ops = qotp_ops,
	.n_ops = ARRAY_SIZE(qotp_ops),
	.mcgrps = qotp_mcgrps,
	.n_mcgrps = ARRAY_SIZE(qotp_mcgrps),
	.resv_start_op = 0,	/* strict header and attribute checks for every command */
};

int __init qotp_genl_init(void)
{
	int err = genl_register_family(&qotp_family);

	if (!err)
		WRITE_ONCE(qotp_genl_live, true);
	return err;
}

void qotp_genl_exit(void)
{
	genl_lock();
	WRITE_ONCE(qotp_genl_live, false);
	genl_unlock();
	genl_unregister_family(&qotp_family);
}
