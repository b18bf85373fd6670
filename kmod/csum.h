/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _QOTP_CSUM_H
#define _QOTP_CSUM_H

#include <linux/types.h>

struct sk_buff;

/*
 * Whether the TCP checksum of @skb (TCP header at @thoff from skb->data) is right before
 * we touch it: true for CHECKSUM_PARTIAL (not computed yet: locally sent) and
 * CHECKSUM_UNNECESSARY (already verified), else verified in full (NONE) or from skb->csum
 * (COMPLETE) against the pseudo header. @pf: NFPROTO_IPV4 or NFPROTO_IPV6.
 */
bool qotp_csum_ok(struct sk_buff *skb, unsigned int hook, unsigned int thoff, u8 pf);

/*
 * After the TCP header or payload changed: leave @skb CHECKSUM_PARTIAL with the pseudo
 * header sum in th->check, so the device, skb_checksum_help() or the GSO engine writes
 * the final checksum, as the TCP stack itself does for everything it sends. The receive
 * path accepts CHECKSUM_PARTIAL as verified, and we verified before changing anything.
 */
void qotp_csum_partial(struct sk_buff *skb, unsigned int thoff, u8 pf);

#endif /* _QOTP_CSUM_H */
