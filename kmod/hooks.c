// SPDX-License-Identifier: GPL-2.0
/*
 * Datapath entry points called by the control plane, and the netfilter hooks.
 *
 * First version: registers the hooks for the configured mode and fails closed: every TCP
 * segment on a protected port toward or from a configured peer is dropped and counted as
 * QOTP_STAT_DROP_NO_KEY, everything else passes untouched. Encryption follows.
 */
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/slab.h>
#include <net/ipv6.h>

#include "qotp.h"
#include "hooks.h"

struct qotp_flow_table {
	struct mutex lock;	/* serialises mode changes */
	u32 mode;
	/* nf_unregister_net_hooks() matches registrations by address: keep ours here. */
	struct nf_hook_ops gw_ops[2];
	struct nf_hook_ops ep_ops[4];
};

static unsigned int qotp_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	struct qotp_net *qn = priv;
	struct qotp_peer *peer = NULL;
	struct tcphdr _th;
	const struct tcphdr *th;
	unsigned int thoff;
	bool out = state->hook == NF_INET_LOCAL_OUT || state->hook == NF_INET_FORWARD;

	if (state->pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		if (iph->protocol != IPPROTO_TCP)
			return NF_ACCEPT;
		thoff = skb_network_offset(skb) + iph->ihl * 4;
		th = skb_header_pointer(skb, thoff, sizeof(_th), &_th);
		if (!th)
			return NF_ACCEPT;
		if (!qotp_port_protected(qn, ntohs(th->dest)) &&
		    !qotp_port_protected(qn, ntohs(th->source)))
			return NF_ACCEPT;
		peer = qotp_peer_lookup_v4(qn, iph->daddr);
		if (!peer)
			peer = qotp_peer_lookup_v4(qn, iph->saddr);
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		__be16 frag_off;
		u8 nexthdr = ip6h->nexthdr;
		int off;

		off = ipv6_skip_exthdr(skb, skb_network_offset(skb) + sizeof(*ip6h), &nexthdr,
				       &frag_off);
		if (off < 0 || nexthdr != IPPROTO_TCP)
			return NF_ACCEPT;
		th = skb_header_pointer(skb, off, sizeof(_th), &_th);
		if (!th)
			return NF_ACCEPT;
		if (!qotp_port_protected(qn, ntohs(th->dest)) &&
		    !qotp_port_protected(qn, ntohs(th->source)))
			return NF_ACCEPT;
		peer = qotp_peer_lookup_v6(qn, &ip6h->daddr);
		if (!peer)
			peer = qotp_peer_lookup_v6(qn, &ip6h->saddr);
	}
	if (!peer)
		return NF_ACCEPT;
	(void)out;
	qotp_stat_add(peer, QOTP_STAT_DROP_NO_KEY, 1);
	return NF_DROP;
}

static const struct nf_hook_ops qotp_gw_ops[] = {
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_FORWARD,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_FORWARD,
	  .priority = NF_IP6_PRI_LAST - 1 },
};

static const struct nf_hook_ops qotp_ep_ops[] = {
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP_PRI_FIRST + 1 },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP6_PRI_LAST - 1 },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP6_PRI_FIRST + 1 },
};

static int ops_register(struct qotp_net *qn, struct nf_hook_ops *ops, unsigned int n, bool reg)
{
	if (!reg) {
		nf_unregister_net_hooks(qn->net, ops, n);
		return 0;
	}
	return nf_register_net_hooks(qn->net, ops, n);
}

int qotp_dp_net_init(struct qotp_net *qn)
{
	struct qotp_flow_table *ft = kzalloc(sizeof(*ft), GFP_KERNEL);
	unsigned int i;

	if (!ft)
		return -ENOMEM;
	mutex_init(&ft->lock);
	memcpy(ft->gw_ops, qotp_gw_ops, sizeof(ft->gw_ops));
	memcpy(ft->ep_ops, qotp_ep_ops, sizeof(ft->ep_ops));
	for (i = 0; i < ARRAY_SIZE(ft->gw_ops); i++)
		ft->gw_ops[i].priv = qn;
	for (i = 0; i < ARRAY_SIZE(ft->ep_ops); i++)
		ft->ep_ops[i].priv = qn;
	qn->flows = ft;
	return 0;
}

int qotp_dp_set_mode(struct qotp_net *qn, u32 mode)
{
	struct qotp_flow_table *ft = qn->flows;
	int err = 0;

	if (mode & ~QOTP_MODE_ALL)
		return -EINVAL;
	mutex_lock(&ft->lock);
	if ((mode & QOTP_MODE_GATEWAY) && !(ft->mode & QOTP_MODE_GATEWAY)) {
		err = ops_register(qn, ft->gw_ops, ARRAY_SIZE(ft->gw_ops), true);
		if (err)
			goto out;
		ft->mode |= QOTP_MODE_GATEWAY;
	}
	if ((mode & QOTP_MODE_ENDPOINT) && !(ft->mode & QOTP_MODE_ENDPOINT)) {
		err = ops_register(qn, ft->ep_ops, ARRAY_SIZE(ft->ep_ops), true);
		if (err)
			goto out;
		ft->mode |= QOTP_MODE_ENDPOINT;
	}
	if (!(mode & QOTP_MODE_GATEWAY) && (ft->mode & QOTP_MODE_GATEWAY)) {
		ops_register(qn, ft->gw_ops, ARRAY_SIZE(ft->gw_ops), false);
		ft->mode &= ~QOTP_MODE_GATEWAY;
	}
	if (!(mode & QOTP_MODE_ENDPOINT) && (ft->mode & QOTP_MODE_ENDPOINT)) {
		ops_register(qn, ft->ep_ops, ARRAY_SIZE(ft->ep_ops), false);
		ft->mode &= ~QOTP_MODE_ENDPOINT;
	}
out:
	mutex_unlock(&ft->lock);
	return err;
}

void qotp_dp_net_exit(struct qotp_net *qn)
{
	struct qotp_flow_table *ft = qn->flows;

	if (!ft)
		return;
	qotp_dp_set_mode(qn, 0);
	qn->flows = NULL;
	kfree(ft);
}

void qotp_dp_peer_gone(struct qotp_net *qn, struct qotp_peer *peer)
{
}

void qotp_dp_ring_flushed(struct qotp_net *qn, struct qotp_peer *peer, enum qotp_dir dir)
{
}
