/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _QOTP_XOR_H
#define _QOTP_XOR_H

#include <linux/types.h>

struct sk_buff;

/* A stretch of key bytes; a segment's key stream is one to a few of these end to end. */
struct qotp_kpiece {
	const u8 *key;
	u32 len;
};

/* dst[i] = src[i] ^ key[i]; dst may equal src (no other overlap). 16 bytes at a time,
 * any alignment. */
void qotp_xor(u8 *dst, const u8 *src, const u8 *key, size_t len);

/*
 * XORs bytes [@off, @off + @len) of @skb with the concatenation of @np key pieces
 * (whose lengths must add up to @len). Writes in place only memory the skb exclusively
 * owns; a cloned head is unshared first, and a frag page someone else may hold (cloned
 * skb, shared or zerocopy frags, page referenced elsewhere) is replaced by a fresh page
 * holding the result, so the other holder (a TCP retransmit queue across a veth) never
 * sees a byte change. No linearisation. 0, -EINVAL or -ENOMEM (skb then unusable).
 */
int qotp_xor_skb(struct sk_buff *skb, unsigned int off, unsigned int len,
		 const struct qotp_kpiece *p, unsigned int np);

#endif /* _QOTP_XOR_H */
