/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _QOTP_HOOKS_H
#define _QOTP_HOOKS_H

#include <linux/types.h>

struct sk_buff;

/* Header rewriting helpers of hooks.c, exported for KUnit. @thoff: TCP header offset
 * from skb->data (the network header); @pf: NFPROTO_IPV4 / NFPROTO_IPV6. */

/* Appends @olen bytes (a multiple of 4) of TCP options; grows the IP length. The IPv4
 * header checksum is updated, the TCP one is the caller's. When the header has no room,
 * the options are rebuilt without NOPs and with as few SACK blocks left out as make room
 * (*@sack_cut: how many). Returns how many bytes the header grew (at most @olen);
 * -E2BIG: no room even so (or broken options), -ENOMEM. */
int qotp_tcp_add_opt(struct sk_buff *skb, unsigned int thoff, const u8 *opt,
		     unsigned int olen, u8 pf, unsigned int *sack_cut);

#if IS_ENABLED(CONFIG_KUNIT)
/* TCP segments in a packet of @plen payload bytes (gso_segs, or counted if it is 0). */
unsigned int qotp_gso_segs(const struct sk_buff *skb, unsigned int plen);
/* Cuts a segment's payload to its first @keep bytes (@hdrlen: network + TCP header);
 * clears FIN, and PSH when nothing is left; fixes the IP length. 0 or -ENOMEM. */
int qotp_trim_payload(struct sk_buff *skb, unsigned int thoff, unsigned int hdrlen, u8 pf,
		      unsigned int keep);
/* Cuts a TCP GSO packet into GSO pieces of @chunk payload bytes (a multiple of its
 * gso_size, else one segment each), CHECKSUM_PARTIAL, IPv4 ids spaced so that cutting a
 * piece again numbers on; never writes memory a clone shares. Returns the list of pieces
 * (@skb itself if it is no GSO packet; NULL if none could be made); consumes @skb. */
struct sk_buff *qotp_gso_cut(struct sk_buff *skb, unsigned int thoff, u8 pf, u32 chunk);
struct qotp_flow;
/* What the hook does with a segment arriving from @f's peer (linear, its network header
 * at skb->data, TCP header at @thoff): true if it is decrypted and passed on, false if
 * it is dropped (and counted). */
bool qotp_decrypt_seg(struct qotp_flow *f, struct sk_buff *skb, unsigned int thoff, u8 pf);
#endif

/* Lowers a SYN's MSS option by QOTP_OPT_SPACE (not below 536 - QOTP_OPT_SPACE); true if
 * it changed. The header must be writable. */
bool qotp_tcp_clamp_mss(struct sk_buff *skb, unsigned int thoff);

#endif /* _QOTP_HOOKS_H */
