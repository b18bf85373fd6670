// SPDX-License-Identifier: GPL-2.0
/*
 * The one-time-pad XOR over socket buffers.
 *
 * Where an skb's bytes live decides how they may be written (invariant 4 of DESIGN.md):
 * a veth hands the next namespace the very skb TCP cloned from its retransmit queue, and a
 * GRO'd or frag_list'ed skb may hold pages that still belong to such a queue. Writing those
 * in place would make the sender's next retransmission carry whatever we wrote. So the
 * head is unshared when cloned (it is small), frag_list members that are shared are
 * replaced by private copies (each is one received segment), and every page frag we
 * cannot prove to be ours alone is replaced by a fresh page that receives src ^ key.
 */
#include <linux/skbuff.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <asm/unaligned.h>
#include <kunit/visibility.h>

#include "xor.h"

/*
 * 16 bytes as one value, loaded and stored at any alignment. GCC lowers the XOR of two to
 * whatever the kernel lets it use: one SSE2 instruction where the kernel is built with SSE
 * (UML, which runs as a host process), two 64-bit ones where it is not (x86-64, arm64 and
 * the rest build with -mno-sse or equivalent; no FPU state is touched there).
 */
typedef u64 qotp_v16 __attribute__((vector_size(16), aligned(1)));

static __always_inline void xor16(u8 *dst, const u8 *src, const u8 *key)
{
	*(qotp_v16 *)dst = *(const qotp_v16 *)src ^ *(const qotp_v16 *)key;
}

/*
 * Two loads and a store per 16 bytes, 64 bytes per iteration so the loop's own
 * instructions are few beside them; all four loads of a pair are issued before the stores,
 * so dst == src (in place) is safe at any alignment.
 */
void qotp_xor(u8 *dst, const u8 *src, const u8 *key, size_t len)
{
	while (len >= 64) {
		qotp_v16 a = *(const qotp_v16 *)src ^ *(const qotp_v16 *)key;
		qotp_v16 b = *(const qotp_v16 *)(src + 16) ^ *(const qotp_v16 *)(key + 16);
		qotp_v16 c = *(const qotp_v16 *)(src + 32) ^ *(const qotp_v16 *)(key + 32);
		qotp_v16 d = *(const qotp_v16 *)(src + 48) ^ *(const qotp_v16 *)(key + 48);

		*(qotp_v16 *)dst = a;
		*(qotp_v16 *)(dst + 16) = b;
		*(qotp_v16 *)(dst + 32) = c;
		*(qotp_v16 *)(dst + 48) = d;
		dst += 64;
		src += 64;
		key += 64;
		len -= 64;
	}
	while (len >= 16) {
		xor16(dst, src, key);
		dst += 16;
		src += 16;
		key += 16;
		len -= 16;
	}
	if (len >= 8) {
		put_unaligned(get_unaligned((const u64 *)src) ^ get_unaligned((const u64 *)key),
			      (u64 *)dst);
		dst += 8;
		src += 8;
		key += 8;
		len -= 8;
	}
	while (len--)
		*dst++ = *src++ ^ *key++;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_xor);

/* Position in the key stream. */
struct kcur {
	const struct qotp_kpiece *p;
	unsigned int i;
	u32 pos;
};

static void kcur_xor(struct kcur *c, u8 *dst, const u8 *src, u32 n)
{
	while (n) {
		const struct qotp_kpiece *pc = &c->p[c->i];
		u32 k = min(n, pc->len - c->pos);

		qotp_xor(dst, src, pc->key + c->pos, k);
		dst += k;
		src += k;
		n -= k;
		c->pos += k;
		if (c->pos == pc->len) {
			c->i++;
			c->pos = 0;
		}
	}
}

/* A frag page nobody else can reach: our skb is its only holder. */
static bool frag_exclusive(const skb_frag_t *frag)
{
	return page_ref_count(compound_head(skb_frag_page(frag))) == 1;
}

static void xor_frag_inplace(const skb_frag_t *frag, u32 foff, u32 n, struct kcur *c)
{
	struct page *p;
	u32 p_off, p_len, copied;

	skb_frag_foreach_page(frag, skb_frag_off(frag) + foff, n, p, p_off, p_len, copied) {
		u8 *v = kmap_local_page(p);

		kcur_xor(c, v + p_off, v + p_off, p_len);
		kunmap_local(v);
	}
}

/* Replaces @frag by a fresh page holding its bytes, [foff, foff + n) XORed with the key. */
static int xor_frag_fresh(struct sk_buff *skb, skb_frag_t *frag, u32 foff, u32 n,
			  struct kcur *c)
{
	u32 fsize = skb_frag_size(frag), p_off, p_len, copied;
	unsigned int order = get_order(fsize);
	struct page *page, *p;
	u8 *dst;

	page = alloc_pages(GFP_ATOMIC | __GFP_NOWARN | (order ? __GFP_COMP : 0), order);
	if (!page)
		return -ENOMEM;
	dst = page_address(page);
	skb_frag_foreach_page(frag, skb_frag_off(frag), fsize, p, p_off, p_len, copied) {
		u8 *map = kmap_local_page(p);
		const u8 *v = map + p_off;
		u32 a = copied, b = copied + p_len;
		u32 x0 = max(a, foff), x1 = min(b, foff + n);

		if (x0 < x1) {
			memcpy(dst + a, v, x0 - a);
			kcur_xor(c, dst + x0, v + (x0 - a), x1 - x0);
			memcpy(dst + x1, v + (x1 - a), b - x1);
		} else {
			memcpy(dst + a, v, p_len);
		}
		kunmap_local(map);
	}
	__skb_frag_unref(frag, skb->pp_recycle);
	__skb_frag_set_page(frag, page);
	skb_frag_off_set(frag, 0);
	/* skb->truesize stays: the old page went with the same bytes, and the skb may be
	 * charged to a socket (tcp_wfree() subtracts exactly what was added). */
	return 0;
}

static int xor_walk(struct sk_buff *skb, u32 off, u32 len, struct kcur *c)
{
	struct skb_shared_info *sh = skb_shinfo(skb);
	u32 start = skb_headlen(skb), end, n;
	bool own_frags = !skb_cloned(skb) && !skb_has_shared_frag(skb) && !skb_zcopy(skb);
	struct sk_buff **pp, *m;
	int i, err;

	if (off < start) {
		/* The caller unshared a cloned head; a frag_list member is private here. */
		n = min(len, start - off);
		kcur_xor(c, skb->data + off, skb->data + off, n);
		off += n;
		len -= n;
	}
	for (i = 0; len && i < sh->nr_frags; i++) {
		skb_frag_t *frag = &sh->frags[i];

		end = start + skb_frag_size(frag);
		if (off < end) {
			n = min(len, end - off);
			if (own_frags && frag_exclusive(frag)) {
				xor_frag_inplace(frag, off - start, n, c);
			} else {
				err = xor_frag_fresh(skb, frag, off - start, n, c);
				if (err)
					return err;
			}
			off += n;
			len -= n;
		}
		start = end;
	}
	for (pp = &sh->frag_list; len && (m = *pp); pp = &m->next) {
		end = start + m->len;
		if (off < end) {
			if (skb_shared(m) || skb_cloned(m)) {
				struct sk_buff *copy = skb_copy(m, GFP_ATOMIC);

				if (!copy)
					return -ENOMEM;
				copy->next = m->next;
				*pp = copy;
				consume_skb(m);	/* truesize kept, as for frags */
				m = copy;
			}
			n = min(len, end - off);
			err = xor_walk(m, off - start, n, c);
			if (err)
				return err;
			off += n;
			len -= n;
		}
		start = end;
	}
	return len ? -EINVAL : 0;
}

int qotp_xor_skb(struct sk_buff *skb, unsigned int off, unsigned int len,
		 const struct qotp_kpiece *p, unsigned int np)
{
	struct kcur c = { .p = p };
	u64 total = 0;
	unsigned int i;

	for (i = 0; i < np; i++)
		total += p[i].len;
	if (total != len || off > skb->len || len > skb->len - off)
		return -EINVAL;
	if (!len)
		return 0;
	/* Also gives the head its own skb_shared_info, so the frag and frag_list slots we
	 * rewrite below are ours even though the pages and members may not be. */
	if (skb_unclone(skb, GFP_ATOMIC))
		return -ENOMEM;
	return xor_walk(skb, off, len, &c);
}
EXPORT_SYMBOL_IF_KUNIT(qotp_xor_skb);
