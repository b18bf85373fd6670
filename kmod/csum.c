// SPDX-License-Identifier: GPL-2.0
/*
 * TCP checksums of rewritten segments. Verify first so a segment damaged upstream is
 * dropped (and counted) instead of being re-checksummed into looking valid; then hand
 * the final sum to whoever sends the segment, the way nf_nat_ipv4_csum_recalc() does when
 * the output path can offload it.
 */
#include <linux/skbuff.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/netfilter.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/ip6_checksum.h>
#include <kunit/visibility.h>

#include "csum.h"

bool qotp_csum_ok(struct sk_buff *skb, unsigned int hook, unsigned int thoff, u8 pf)
{
	if (skb->ip_summed == CHECKSUM_PARTIAL || skb_csum_unnecessary(skb))
		return true;
	/* nf_checksum() trusts CHECKSUM_COMPLETE blindly outside PRE_ROUTING and LOCAL_IN;
	 * there skb->csum may not match the bytes any more (hence skb_forward_csum()), so
	 * verify in full instead. */
	if (skb->ip_summed == CHECKSUM_COMPLETE && hook != NF_INET_PRE_ROUTING &&
	    hook != NF_INET_LOCAL_IN)
		skb->ip_summed = CHECKSUM_NONE;
	return nf_checksum(skb, hook, thoff, IPPROTO_TCP, pf) == 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_csum_ok);

void qotp_csum_partial(struct sk_buff *skb, unsigned int thoff, u8 pf)
{
	struct tcphdr *th = (struct tcphdr *)(skb->data + thoff);
	unsigned int len = skb->len - thoff;

	if (pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		th->check = ~tcp_v4_check(len, iph->saddr, iph->daddr, 0);
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);

		th->check = ~tcp_v6_check(len, &ip6h->saddr, &ip6h->daddr, 0);
	}
	skb->ip_summed = CHECKSUM_PARTIAL;
	skb->csum_start = (unsigned char *)th - skb->head;
	skb->csum_offset = offsetof(struct tcphdr, check);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_csum_partial);
