// SPDX-License-Identifier: GPL-2.0
/*
 * The netfilter hooks: which segments are ours, and what happens to them.
 *
 * A segment is ours when it is TCP, one of its ports is protected, and its destination
 * (toward a peer: encrypt) or else its source (from a peer: decrypt) lies in a peer's
 * prefixes. Everything else is returned untouched before any write.
 *
 * Hook points and priorities (the same for IPv4 and IPv6):
 *   gateway:  FORWARD                 at INT_MAX - 1
 *   endpoint: LOCAL_OUT and LOCAL_IN  at INT_MAX - 1
 * Last but one, so that conntrack, NAT and the filter tables have all seen the segment as
 * the hosts see it (plaintext on our side, addresses after DNAT on output) and a rule can
 * drop a segment before it costs key; and before conntrack's confirm at INT_MAX in
 * LOCAL_IN, so a segment we drop leaves no confirmed entry. Nothing we change matters to
 * conntrack: sequence space, lengths of payload and ports stay the same, only the TCP
 * header grows by our option. Being last also makes it sound to hand GSO segments
 * straight to the hook's okfn (segment_and_send()): no later hook is skipped.
 *
 * Encrypt (toward the peer): key for new bytes is reserved from the peer's encrypt ring
 * in stream order (flow.c), the descriptor option announcing it is appended to the TCP
 * header, the payload is XORed (xor.c, never in shared memory), and the checksum is left
 * to the output path (csum.c). No key: drop, count, event; never plaintext.
 * Decrypt (from the peer): the descriptor names the key; the payload is XORed back; the
 * option stays (TCP ignores an unknown experimental option). No or bad descriptor, or
 * unknown key: drop and count.
 * Both directions: ACKs release the key of acknowledged bytes (flow.c); a SYN or SYN-ACK
 * arriving from the peer side has its MSS lowered by the option space, so that segments
 * our side sends still fit the path once they carry the option.
 */
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/slab.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/icmp.h>
#include <linux/icmpv6.h>
#include <kunit/visibility.h>

#include "qotp.h"
#include "keyring.h"
#include "hooks.h"
#include "flow.h"
#include "descriptor.h"
#include "xor.h"
#include "csum.h"

#define QOTP_HOOK_PRI	(INT_MAX - 1)

/* What the hook learnt of a segment. Offsets are from skb->data (the network header). */
struct seg {
	u8 pf;
	enum qotp_dir dir;
	unsigned int thoff;
	unsigned int hdrlen;	/* network + TCP header */
	struct qotp_flow_key key;
	u32 chunk;		/* V_SEGMENT: payload bytes per piece */
};

enum verdict { V_ACCEPT, V_DROP, V_SEGMENT };

/*
 * The options of a header with no room left for @opt, rebuilt into @out with room: the
 * NOPs go (they only align), every other option stays, in order, except that SACK keeps
 * only as many blocks, the first ones (RFC 2018: the first reports the most recent
 * data), as fit beside @opt; then @opt without its leading NOPs, then NOPs to a multiple
 * of 4. Leaving SACK blocks out is always correct TCP: they are advice to the sender,
 * which then recovers from duplicate ACKs and timeouts alone. Returns the new length of
 * the option area, or -E2BIG if even that does not fit (or the old options are broken).
 */
static int rebuild_opts(const u8 *old, unsigned int oldlen, const u8 *opt, unsigned int olen,
			u8 out[MAX_TCP_OPTION_SPACE], unsigned int *sack_cut)
{
	unsigned int n = 0, i = 0, sacklen = 0, sack_at = 0, blocks, keep, room;

	while (olen && *opt == TCPOPT_NOP) {
		opt++;
		olen--;
	}
	while (i < oldlen && old[i] != TCPOPT_EOL) {
		u8 l;

		if (old[i] == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (oldlen - i < 2)
			return -E2BIG;
		l = old[i + 1];
		if (l < 2 || l > oldlen - i)
			return -E2BIG;
		if (old[i] == TCPOPT_SACK) {
			if (sacklen || (l - 2) % TCPOLEN_SACK_PERBLOCK)
				return -E2BIG;
			sacklen = l;
			sack_at = i;
		} else {
			if (n + l > MAX_TCP_OPTION_SPACE)
				return -E2BIG;
			memcpy(out + n, old + i, l);
			n += l;
		}
		i += l;
	}
	if (n + olen > MAX_TCP_OPTION_SPACE)
		return -E2BIG;
	room = MAX_TCP_OPTION_SPACE - n - olen;
	blocks = sacklen ? (sacklen - 2) / TCPOLEN_SACK_PERBLOCK : 0;
	keep = room >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK ?
	       min(blocks, (room - TCPOLEN_SACK_BASE) / TCPOLEN_SACK_PERBLOCK) : 0;
	if (keep) {
		memcpy(out + n, old + sack_at, TCPOLEN_SACK_BASE + keep * TCPOLEN_SACK_PERBLOCK);
		out[n + 1] = TCPOLEN_SACK_BASE + keep * TCPOLEN_SACK_PERBLOCK;
		n += out[n + 1];
	}
	*sack_cut = blocks - keep;
	memcpy(out + n, opt, olen);
	n += olen;
	while (n % 4)
		out[n++] = TCPOPT_NOP;
	return n;
}

int qotp_tcp_add_opt(struct sk_buff *skb, unsigned int thoff, const u8 *opt,
		     unsigned int olen, u8 pf, unsigned int *sack_cut)
{
	struct tcphdr *th = (struct tcphdr *)(skb->data + thoff);
	unsigned int oldlen = th->doff * 4 - sizeof(*th), newlen, grow;
	bool rebuild = oldlen + olen > MAX_TCP_OPTION_SPACE;
	u8 rebuilt[MAX_TCP_OPTION_SPACE];
	int n;

	*sack_cut = 0;
	if (olen % 4 || olen > MAX_TCP_OPTION_SPACE)
		return -E2BIG;
	if (!rebuild) {
		newlen = oldlen + olen;
	} else {
		/* Timestamps and SACK blocks (or other options) fill the header. */
		n = rebuild_opts((u8 *)(th + 1), oldlen, opt, olen, rebuilt, sack_cut);
		if (n < 0)
			return n;
		newlen = max_t(unsigned int, n, oldlen);
		memset(rebuilt + n, TCPOPT_NOP, newlen - n);
	}
	grow = newlen - oldlen;
	if (skb_cow_head(skb, grow))
		return -ENOMEM;
	/* Move the IP and TCP headers down by grow and put the options where they ended:
	 * the payload stays where it is, shared or not. */
	skb_push(skb, grow);
	memmove(skb->data, skb->data + grow, thoff + sizeof(*th) + oldlen);
	skb->network_header -= grow;
	skb->transport_header -= grow;
	th = (struct tcphdr *)(skb->data + thoff);
	if (rebuild)
		memcpy(th + 1, rebuilt, newlen);
	else
		memcpy((u8 *)(th + 1) + oldlen, opt, olen);
	th->doff = (sizeof(*th) + newlen) / 4;
	if (pf == NFPROTO_IPV4) {
		struct iphdr *iph = ip_hdr(skb);

		iph->tot_len = htons(ntohs(iph->tot_len) + grow);
		ip_send_check(iph);
	} else {
		struct ipv6hdr *ip6h = ipv6_hdr(skb);

		ip6h->payload_len = htons(ntohs(ip6h->payload_len) + grow);
	}
	return grow;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_tcp_add_opt);

bool qotp_tcp_clamp_mss(struct sk_buff *skb, unsigned int thoff)
{
	struct tcphdr *th = (struct tcphdr *)(skb->data + thoff);
	u8 *opt = (u8 *)(th + 1);
	unsigned int len = th->doff * 4 - sizeof(*th), i = 0;

	while (i < len) {
		u8 olen;

		if (opt[i] == TCPOPT_EOL)
			break;
		if (opt[i] == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (len - i < 2 || opt[i + 1] < 2 || opt[i + 1] > len - i)
			break;
		olen = opt[i + 1];
		if (opt[i] == TCPOPT_MSS && olen == TCPOLEN_MSS) {
			u16 mss = get_unaligned_be16(opt + i + 2);
			u16 floor = TCP_MSS_DEFAULT - QOTP_OPT_SPACE;

			if (mss <= floor)
				return false;
			put_unaligned_be16(max_t(u16, mss - QOTP_OPT_SPACE, floor), opt + i + 2);
			return true;
		}
		i += olen;
	}
	return false;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_tcp_clamp_mss);

static void count(struct qotp_peer *peer, enum qotp_stat s)
{
	qotp_stat_add(peer, s, 1);
}

/*
 * Cuts the payload of a segment toward the peer to its first @keep bytes; 0 leaves a pure
 * ACK. TCP stays right: the receiver acknowledges what it got (for 0, an old segment, it
 * answers with a duplicate ACK saying how far it is) and the sender sends the rest again.
 * A FIN sits after the last byte, so it goes with the bytes cut off.
 */
VISIBLE_IF_KUNIT int qotp_trim_payload(struct sk_buff *skb, unsigned int thoff,
				       unsigned int hdrlen, u8 pf, unsigned int keep)
{
	struct tcphdr *th;

	if (skb_ensure_writable(skb, hdrlen) || pskb_trim(skb, hdrlen + keep))
		return -ENOMEM;
	if (skb_is_gso(skb) && keep <= skb_shinfo(skb)->gso_size)
		skb_gso_reset(skb);
	th = (struct tcphdr *)(skb->data + thoff);
	th->fin = 0;
	if (!keep)
		th->psh = 0;
	if (pf == NFPROTO_IPV4) {
		struct iphdr *iph = ip_hdr(skb);

		iph->tot_len = htons(skb->len);
		ip_send_check(iph);
	} else {
		ipv6_hdr(skb)->payload_len = htons(skb->len - sizeof(struct ipv6hdr));
	}
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_trim_payload);

/*
 * TCP segments in a packet of @plen payload bytes. A GSO packet's gso_segs may be 0, "not
 * counted yet": virtio-net hands packets up so, and net core counts them only when it
 * needs to (qdisc_pkt_len_init, skb_gso_segment).
 */
VISIBLE_IF_KUNIT unsigned int qotp_gso_segs(const struct sk_buff *skb, unsigned int plen)
{
	const struct skb_shared_info *si = skb_shinfo(skb);

	if (!skb_is_gso(skb))
		return 1;
	if (si->gso_segs)
		return si->gso_segs;
	return si->gso_size ? max(DIV_ROUND_UP(plen, si->gso_size), 1U) : 1;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_gso_segs);

static enum verdict encrypt(struct qotp_flow *f, struct sk_buff *skb, struct seg *sg,
			    u32 seq, u32 plen)
{
	struct qotp_peer *peer = f->peer;
	struct qotp_ring *ring = peer->ring[QOTP_DIR_ENCRYPT];
	struct qotp_kpiece pc[QOTP_MAX_KPIECES];
	struct qotp_desc d;
	u8 opt[QOTP_OPT_SPACE];
	unsigned int sack_cut, np, i;
	int olen, grow, err;

	err = qotp_flow_enc_map(f, ring, seq, plen, &d, pc, &np);
	switch (err) {
	case 0:
		break;
	case -ENOKEY:
		count(peer, QOTP_STAT_DROP_NO_KEY);
		if (ring)
			qotp_ring_key_empty(ring);
		return V_DROP;
	case -E2BIG:
		if (skb_is_gso(skb)) {
			/* Cut it into GSO packets of whole segments that two runs each
			 * describe (QOTP_MAX_KPIECES pieces), not into single segments:
			 * fewer, larger packets. */
			sg->chunk = qotp_flow_enc_chunk(f, seq, plen, skb_shinfo(skb)->gso_size);
			/* ... and that stay within 64 KiB with the option (BIG TCP). */
			while (sg->chunk > skb_shinfo(skb)->gso_size &&
			       sg->hdrlen - skb_network_offset(skb) + sg->chunk + QOTP_OPT_SPACE >
			       IP_MAX_MTU)
				sg->chunk -= skb_shinfo(skb)->gso_size;
			return V_SEGMENT;
		}
		/* A retransmission TCP built from several segments whose key lies in more
		 * than two runs (or blocks than one option may name): send what fits. */
		for (plen = 0, i = 0; i < np; i++)
			plen += pc[i].len;
		if (qotp_trim_payload(skb, sg->thoff, sg->hdrlen, sg->pf, plen)) {
			count(peer, QOTP_STAT_DROP_NOMEM);
			return V_DROP;
		}
		count(peer, QOTP_STAT_TRIMMED);
		break;
	case -ESTALE:
		/* Bytes whose key is gone: the peer side acknowledged them, so this is a
		 * retransmission after that ACK got lost on its way to the sender. Dropping
		 * it could leave the sender waiting for that ACK forever; without payload it
		 * draws a duplicate ACK from the receiver, which tells the sender. A GSO
		 * packet may carry new bytes too: those are sent, each segment on its own. */
		if (skb_is_gso(skb))
			return V_SEGMENT;
		if (qotp_trim_payload(skb, sg->thoff, sg->hdrlen, sg->pf, 0)) {
			count(peer, QOTP_STAT_DROP_NOMEM);
			return V_DROP;
		}
		count(peer, QOTP_STAT_STALE);
		qotp_csum_partial(skb, sg->thoff, sg->pf);
		return V_ACCEPT;
	case -ERANGE:
	case -ENOSPC:
		count(peer, QOTP_STAT_DROP_OTHER);
		return V_DROP;
	default:
		count(peer, QOTP_STAT_DROP_NOMEM);
		return V_DROP;
	}
	/* IPv4 total length and IPv6 payload length are 16 bits, also for GSO (and a run's
	 * Δseq is at most 65535): cut a packet that the option could take past 64 KiB (BIG
	 * TCP's larger ones too) in two halves of whole segments, each needing at most the
	 * runs and blocks of the whole. */
	if (skb_is_gso(skb) && skb->len - skb_network_offset(skb) + QOTP_OPT_SPACE > IP_MAX_MTU) {
		sg->chunk = DIV_ROUND_UP(qotp_gso_segs(skb, plen), 2) * skb_shinfo(skb)->gso_size;
		return V_SEGMENT;
	}
	olen = qotp_desc_encode(&d, opt, sizeof(opt));
	if (olen < 0) {
		count(peer, QOTP_STAT_DROP_OTHER);
		return V_DROP;
	}
	grow = qotp_tcp_add_opt(skb, sg->thoff, opt, olen, sg->pf, &sack_cut);
	if (grow < 0) {
		count(peer, grow == -E2BIG ? QOTP_STAT_DROP_OTHER : QOTP_STAT_DROP_NOMEM);
		return V_DROP;
	}
	if (sack_cut)
		count(peer, QOTP_STAT_SACK_CUT);
	err = qotp_xor_skb(skb, sg->hdrlen + grow, plen, pc, np);
	if (err) {
		count(peer, QOTP_STAT_DROP_NOMEM);
		return V_DROP;
	}
	qotp_csum_partial(skb, sg->thoff, sg->pf);
	if (!f->enc.sent_valid || after(seq + plen, f->enc.sent)) {
		f->enc.sent = seq + plen;
		f->enc.sent_valid = true;
	}
	qotp_stat_add(peer, QOTP_STAT_ENC_SEGS, qotp_gso_segs(skb, plen));
	qotp_stat_add(peer, QOTP_STAT_ENC_BYTES, plen);
	return V_ACCEPT;
}

/* Key refs a decrypt holds at once; a segment whose runs span more blocks (a GRO packet
 * over small blocks) is XORed in several passes. */
#define DEC_BATCH	8

static void put_refs(struct qotp_key_ref *ref, unsigned int n)
{
	while (n--)
		qotp_key_ref_put(&ref[n]);
}

static enum verdict decrypt(struct qotp_flow *f, struct sk_buff *skb, const struct seg *sg,
			    u32 seq, u32 plen)
{
	struct qotp_peer *peer = f->peer;
	struct qotp_ring *ring = peer->ring[QOTP_DIR_DECRYPT];
	const struct tcphdr *th = (const struct tcphdr *)(skb->data + sg->thoff);
	struct qotp_key_ref ref[DEC_BATCH] = {};
	struct qotp_kpiece pc[DEC_BATCH];
	struct qotp_desc d;
	u32 x0 = seq, end = seq + plen, b, done, n, koff;
	unsigned int np = 0, pieces = 0, i;
	u64 blk;
	u32 skip;
	int err;

	err = qotp_desc_parse((const u8 *)(th + 1), th->doff * 4 - sizeof(*th), &d);
	if (err) {
		count(peer, err == -ENOENT ? QOTP_STAT_DROP_NO_DESC : QOTP_STAT_DROP_BAD_DESC);
		return V_DROP;
	}
	if (f->dec.rel_valid && before(x0, f->dec.rel)) {
		/* Our side has these bytes already and their key is gone: let the duplicate
		 * through as it is, the receiver drops it (and re-ACKs, which the sender may
		 * need). Decrypt only what is new. */
		if (!after(end, f->dec.rel))
			return V_ACCEPT;
		x0 = f->dec.rel;
	}
	skip = x0 - seq;
	i = qotp_desc_pick(&d, x0);
	if (before(x0, d.run[i].seq)) {
		count(peer, QOTP_STAT_DROP_BAD_DESC);
		return V_DROP;
	}
	if (skb_ensure_writable(skb, sg->hdrlen)) {
		count(peer, QOTP_STAT_DROP_NOMEM);
		return V_DROP;
	}
	done = x0;
	while (x0 != end) {
		const struct qotp_run *r = &d.run[i];

		b = (i == 0 && d.n == 2 && before(d.run[1].seq, end)) ? d.run[1].seq : end;
		/* [x0, b) in run i: one key piece per block it reaches. */
		while (x0 != b) {
			qotp_run_pos(r, d.stride, x0, &blk, &koff);
			n = d.stride ? min(b - x0, d.stride - koff) : b - x0;
			err = ring ? qotp_ring_lookup(ring, blk, koff, n, &ref[np]) : -ENOKEY;
			/* A run going on into the next block: every block S bytes long,
			 * and no more of them than an encryptor names for one packet. */
			if (!err && d.stride && (ref[np].blk_len != d.stride ||
						 ++pieces > QOTP_MAX_KPIECES)) {
				qotp_key_ref_put(&ref[np]);
				err = -ERANGE;
			}
			if (err)
				goto fail;
			pc[np].key = ref[np].key;
			pc[np].len = n;
			np++;
			x0 += n;
			if (np == DEC_BATCH || x0 == end) {
				err = qotp_xor_skb(skb, sg->hdrlen + (done - seq), x0 - done, pc, np);
				put_refs(ref, np);
				np = 0;
				done = x0;
				if (err) {
					count(peer, QOTP_STAT_DROP_NOMEM);
					return V_DROP;
				}
			}
		}
		i++;
	}
	err = qotp_flow_dec_learn(f, &d, seq + skip, end);
	if (err) {
		/* Too many runs unacknowledged (or no memory) to find this key again for its
		 * release: drop it, TCP sends it again once ACKs have made room. Passing it
		 * would pin its key until a flush. */
		count(peer, err == -ENOMEM ? QOTP_STAT_DROP_NOMEM : QOTP_STAT_DROP_OTHER);
		return V_DROP;
	}
	qotp_csum_partial(skb, sg->thoff, sg->pf);
	qotp_stat_add(peer, QOTP_STAT_DEC_SEGS, qotp_gso_segs(skb, plen));
	qotp_stat_add(peer, QOTP_STAT_DEC_BYTES, plen);
	return V_ACCEPT;
fail:
	put_refs(ref, np);
	if (err == -ENOKEY) {
		count(peer, QOTP_STAT_DROP_NO_KEY);
		if (ring)
			qotp_ring_key_empty(ring);
	} else {
		count(peer, err == -ERANGE ? QOTP_STAT_DROP_BAD_DESC : QOTP_STAT_DROP_NOMEM);
	}
	return V_DROP;
}

#if IS_ENABLED(CONFIG_KUNIT)
VISIBLE_IF_KUNIT bool qotp_decrypt_seg(struct qotp_flow *f, struct sk_buff *skb,
				       unsigned int thoff, u8 pf)
{
	const struct tcphdr *th = (const struct tcphdr *)(skb->data + thoff);
	const struct seg sg = {
		.pf = pf, .dir = QOTP_DIR_DECRYPT, .thoff = thoff, .hdrlen = thoff + th->doff * 4,
	};

	return decrypt(f, skb, &sg, ntohl(th->seq), skb->len - sg.hdrlen) == V_ACCEPT;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_decrypt_seg);
#endif

/*
 * An ICMP "fragmentation needed" / ICMPv6 "packet too big" about a segment our side sent
 * toward a peer on a protected port: the MTU it reports was measured on the encrypted
 * segment, QOTP_OPT_SPACE bytes longer than what our side sends. Lower it by that much
 * (not below the family's minimum), so our side's next segments fit once encrypted.
 * Incremental update of the ICMP checksum: the sum over the message stays the same, so
 * CHECKSUM_COMPLETE stays right too.
 */
static void icmp_too_big(struct qotp_net *qn, struct sk_buff *skb, u8 pf, unsigned int off)
{
	struct {
		u8 type, code;
		__sum16 csum;
		__be32 info;
	} _ih, *ih;
	const struct tcphdr *th;
	struct tcphdr _th;
	struct qotp_peer *peer;
	unsigned int ioff = off + sizeof(_ih), toff;
	u32 mtu, nmtu;
	__be32 old;

	ih = skb_header_pointer(skb, off, sizeof(_ih), &_ih);
	if (!ih)
		return;
	if (pf == NFPROTO_IPV4) {
		struct iphdr _iph;
		const struct iphdr *inner;

		if (ih->type != ICMP_DEST_UNREACH || ih->code != ICMP_FRAG_NEEDED)
			return;
		inner = skb_header_pointer(skb, ioff, sizeof(_iph), &_iph);
		if (!inner || inner->protocol != IPPROTO_TCP || inner->ihl < 5)
			return;
		peer = qotp_peer_lookup_v4(qn, inner->daddr);
		toff = ioff + inner->ihl * 4;
		mtu = ntohl(ih->info) & 0xffff;
		nmtu = max_t(u32, mtu - min_t(u32, mtu, QOTP_OPT_SPACE), 576);
	} else {
		struct ipv6hdr _ip6h;
		const struct ipv6hdr *inner;

		if (ih->type != ICMPV6_PKT_TOOBIG)
			return;
		inner = skb_header_pointer(skb, ioff, sizeof(_ip6h), &_ip6h);
		if (!inner || inner->nexthdr != IPPROTO_TCP)
			return;
		peer = qotp_peer_lookup_v6(qn, &inner->daddr);
		toff = ioff + sizeof(*inner);
		mtu = ntohl(ih->info);
		nmtu = max_t(u32, mtu - min_t(u32, mtu, QOTP_OPT_SPACE), IPV6_MIN_MTU);
	}
	th = skb_header_pointer(skb, toff, 4, &_th);	/* ports: the 8 bytes ICMP quotes */
	if (!peer || !th || nmtu >= mtu ||
	    (!qotp_port_protected(qn, ntohs(th->dest)) &&
	     !qotp_port_protected(qn, ntohs(th->source))))
		return;
	if (skb_ensure_writable(skb, off + sizeof(_ih)))
		return;
	ih = (void *)(skb->data + off);
	old = ih->info;
	/* IPv4: the MTU is the low 16 bits of the 32-bit field; IPv6: all of it. */
	ih->info = htonl(pf == NFPROTO_IPV4 ? (ntohl(old) & 0xffff0000) | nmtu : nmtu);
	csum_replace4(&ih->csum, old, ih->info);
}

/* Finds whether @skb is ours; fills @sg and returns the peer (RCU), else NULL. Sets
 * *@drop for segments toward or from a peer that we cannot vet (fragments, broken TCP
 * headers): those must not pass, they may carry protected plaintext. */
static struct qotp_peer *classify(struct qotp_net *qn, struct sk_buff *skb, u8 pf,
				  struct seg *sg, bool *drop)
{
	const struct tcphdr *th;
	struct tcphdr _th;
	struct qotp_peer *peer;
	bool frag;

	*drop = false;
	memset(sg, 0, sizeof(*sg));
	sg->pf = pf;
	if (pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		if (iph->protocol == IPPROTO_ICMP && !ip_is_fragment(iph))
			icmp_too_big(qn, skb, pf, skb_network_offset(skb) + iph->ihl * 4);
		if (iph->protocol != IPPROTO_TCP)
			return NULL;
		sg->thoff = skb_network_offset(skb) + iph->ihl * 4;
		frag = ip_is_fragment(iph);
		sg->dir = QOTP_DIR_ENCRYPT;
		peer = qotp_peer_lookup_v4(qn, iph->daddr);
		if (!peer) {
			sg->dir = QOTP_DIR_DECRYPT;
			peer = qotp_peer_lookup_v4(qn, iph->saddr);
		}
		if (!peer)
			return NULL;
		sg->key.family = NFPROTO_IPV4;
		sg->key.remote.v4 = sg->dir == QOTP_DIR_ENCRYPT ? iph->daddr : iph->saddr;
		sg->key.local.v4 = sg->dir == QOTP_DIR_ENCRYPT ? iph->saddr : iph->daddr;
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		u8 nexthdr = ip6h->nexthdr;
		__be16 frag_off = 0;
		int off;

		off = ipv6_skip_exthdr(skb, skb_network_offset(skb) + sizeof(*ip6h), &nexthdr,
				       &frag_off);
		if (off >= 0 && nexthdr == IPPROTO_ICMPV6 && !frag_off)
			icmp_too_big(qn, skb, pf, off);
		if (off < 0 || nexthdr != IPPROTO_TCP)
			return NULL;
		sg->thoff = off;
		frag = frag_off != 0;
		sg->dir = QOTP_DIR_ENCRYPT;
		peer = qotp_peer_lookup_v6(qn, &ip6h->daddr);
		if (!peer) {
			sg->dir = QOTP_DIR_DECRYPT;
			peer = qotp_peer_lookup_v6(qn, &ip6h->saddr);
		}
		if (!peer)
			return NULL;
		sg->key.family = NFPROTO_IPV6;
		sg->key.remote.v6 = sg->dir == QOTP_DIR_ENCRYPT ? ip6h->daddr : ip6h->saddr;
		sg->key.local.v6 = sg->dir == QOTP_DIR_ENCRYPT ? ip6h->saddr : ip6h->daddr;
	}
	th = skb_header_pointer(skb, sg->thoff, sizeof(_th), &_th);
	if (frag || !th) {
		/* Without ports we cannot tell a protected fragment from another; with
		 * DF set by every TCP stack, dropping TCP fragments toward peers costs little. */
		*drop = true;
		return peer;
	}
	if (!qotp_port_protected(qn, ntohs(th->dest)) &&
	    !qotp_port_protected(qn, ntohs(th->source)))
		return NULL;
	if (th->doff < 5 || !pskb_may_pull(skb, sg->thoff + th->doff * 4)) {
		*drop = true;
		return peer;
	}
	sg->hdrlen = sg->thoff + th->doff * 4;
	sg->key.rport = sg->dir == QOTP_DIR_ENCRYPT ? th->dest : th->source;
	sg->key.lport = sg->dir == QOTP_DIR_ENCRYPT ? th->source : th->dest;
	return peer;
}

static enum verdict process(struct qotp_net *qn, struct sk_buff *skb,
			    const struct nf_hook_state *state, struct seg *out)
{
	struct qotp_flow_table *ft = qn->flows;
	struct qotp_ring *ring;
	struct qotp_peer *peer;
	struct qotp_flow *f;
	struct tcphdr *th;
	enum verdict v = V_ACCEPT;
	bool drop, rst, changed = false;
	u32 seq, plen;
	struct seg sg;
	int err = 0;

	peer = classify(qn, skb, state->pf, &sg, &drop);
	if (!peer)
		return V_ACCEPT;
	if (drop) {
		count(peer, QOTP_STAT_DROP_OTHER);
		return V_DROP;
	}
	if (!qotp_csum_ok(skb, state->hook, sg.thoff, sg.pf)) {
		count(peer, QOTP_STAT_DROP_CSUM);
		return V_DROP;
	}
	f = qotp_flow_get(ft, &sg.key, peer, &err);
	if (!f) {
		count(peer, err == -ENOMEM ? QOTP_STAT_DROP_NOMEM : QOTP_STAT_DROP_OTHER);
		return V_DROP;
	}
	th = (struct tcphdr *)(skb->data + sg.thoff);
	seq = ntohl(th->seq);
	plen = skb->len - sg.hdrlen;
	rst = th->rst;

	spin_lock_bh(&f->lock);
	if (unlikely(f->dead || f->peer != peer)) {
		/* Ended under us (RST, flush, peer deleted): the next segment starts over. */
		spin_unlock_bh(&f->lock);
		count(peer, QOTP_STAT_DROP_OTHER);
		return V_DROP;
	}
	WRITE_ONCE(f->last, jiffies);
	if (th->ack) {
		/* A segment toward the peer acknowledges the peer's bytes, and vice versa. */
		enum qotp_dir other = sg.dir == QOTP_DIR_ENCRYPT ? QOTP_DIR_DECRYPT :
								   QOTP_DIR_ENCRYPT;
		u32 ack = ntohl(th->ack_seq);

		if (sg.dir == QOTP_DIR_ENCRYPT) {
			ring = peer->ring[QOTP_DIR_DECRYPT];
			qotp_flow_dec_ack(f, ring, ack);
		} else {
			ring = peer->ring[QOTP_DIR_ENCRYPT];
			qotp_flow_enc_ack(f, ring, ack);
		}
		if ((f->fin & BIT(other)) && after(ack, f->fin_seq[other]))
			f->fin_acked |= BIT(other);
	}
	if (th->syn) {
		if (sg.dir == QOTP_DIR_ENCRYPT && !f->enc.init) {
			f->enc.init = true;
			f->enc.head = seq + 1;
			f->enc.nxt = seq + 1;
		} else if (sg.dir == QOTP_DIR_DECRYPT && !f->dec.rel_valid) {
			f->dec.rel = seq + 1;
			f->dec.rel_valid = true;
		}
		if (plen) {
			/* SYN data (TCP Fast Open) would need key before the handshake
			 * proves the peer. The SYN goes on without it: the other side
			 * acknowledges the SYN alone, and the client sends the data again
			 * at once, as ordinary segments (a dropped SYN would cost it a
			 * retransmission timeout). */
			if (qotp_trim_payload(skb, sg.thoff, sg.hdrlen, sg.pf, 0)) {
				count(peer, QOTP_STAT_DROP_NOMEM);
				v = V_DROP;
				goto out;
			}
			count(peer, QOTP_STAT_TRIMMED);
			plen = 0;
			changed = true;
		}
		if (sg.dir == QOTP_DIR_DECRYPT) {
			if (skb_ensure_writable(skb, sg.hdrlen)) {
				count(peer, QOTP_STAT_DROP_NOMEM);
				v = V_DROP;
				goto out;
			}
			changed |= qotp_tcp_clamp_mss(skb, sg.thoff);
		}
	}
	if (th->fin && !(f->fin & BIT(sg.dir))) {
		f->fin |= BIT(sg.dir);
		f->fin_seq[sg.dir] = seq + plen;
	}
	/* Only once both FINs are acknowledged has every byte arrived: a flow ended
	 * earlier releases (and wipes) the key of bytes still to be retransmitted, which
	 * the other encryptor, its flow still alive, would send with that same key. */
	if (f->fin_acked == (BIT(QOTP_DIR_ENCRYPT) | BIT(QOTP_DIR_DECRYPT)) && !f->expires)
		f->expires = (jiffies + 10 * HZ) | 1;
	if (plen)
		v = sg.dir == QOTP_DIR_ENCRYPT ? encrypt(f, skb, &sg, seq, plen) :
						 decrypt(f, skb, &sg, seq, plen);
	else if (changed)
		qotp_csum_partial(skb, sg.thoff, sg.pf);
out:
	spin_unlock_bh(&f->lock);
	if (rst && v == V_ACCEPT)
		qotp_flow_end(f);
	if (v == V_SEGMENT)
		*out = sg;
	return v;
}

/*
 * A GSO packet whose bytes need more than the two descriptors an option can hold (it
 * spans several key blocks), or that would outgrow 64 KiB with the option: cut it here
 * and treat each piece on its own, like nfnetlink_queue does. Ours is the last hook but
 * one, so sending each piece on with the hook's okfn skips nothing.
 *
 * qotp_gso_cut() cuts @skb (a TCP GSO packet whose TCP header is at @thoff, checksum
 * verified) into GSO packets of @chunk payload bytes (whole segments of the original
 * gso_size, as many as two runs describe; qotp_flow_enc_chunk(); any other @chunk means
 * one segment each), so the path after us still carries few large packets. They keep
 * sharing the original's pages (NETIF_F_SG: the XOR then writes fresh ones, xor.c) and
 * stay CHECKSUM_PARTIAL (NETIF_F_HW_CSUM): no copy and no checksum in software here.
 * Returns the list of pieces (NULL if none could be made); consumes @skb.
 */
VISIBLE_IF_KUNIT struct sk_buff *qotp_gso_cut(struct sk_buff *skb, unsigned int thoff, u8 pf,
					      u32 chunk)
{
	struct sk_buff *segs, *seg, *next, *head = NULL, **tail = &head;
	unsigned int mss, gso_type, segs_per, id_step = 0;
	struct skb_shared_info *sh;
	u16 id = 0;

	/* Below we rewrite the TCP checksum and gso_size: a clone (veth hands us the
	 * sender's retransmit-queue skb) shares its head and skb_shared_info with the
	 * sender, so take private ones first (the pages stay shared; xor.c copies). */
	if (skb_unclone(skb, GFP_ATOMIC))
		goto drop;
	sh = skb_shinfo(skb);
	mss = sh->gso_size;
	gso_type = sh->gso_type;
	if (!mss)
		return skb;	/* nothing to cut */
	if (chunk < mss || chunk % mss)
		chunk = mss;
	segs_per = chunk / mss;
	qotp_csum_partial(skb, thoff, pf);
	if (pf == NFPROTO_IPV4 && !(gso_type & SKB_GSO_TCP_FIXEDID)) {
		/* inet_gso_segment() numbers the pieces id, id + 1, ...; each piece is cut
		 * again later and numbers its segments on from its own: space them out. */
		id = ntohs(ip_hdr(skb)->id);
		id_step = segs_per;
	}
	sh->gso_size = chunk;
	segs = skb_gso_segment(skb, NETIF_F_SG | NETIF_F_HW_CSUM);
	if (IS_ERR_OR_NULL(segs))
		goto drop;
	consume_skb(skb);
	skb_list_walk_safe(segs, seg, next) {
		unsigned int plen;

		skb_mark_not_on_list(seg);
		if (id_step) {
			struct iphdr *iph = ip_hdr(seg);

			csum_replace2(&iph->check, iph->id, htons(id));
			iph->id = htons(id);
			id += id_step;
		}
		plen = seg->len - (skb_transport_offset(seg) + tcp_hdrlen(seg));
		if (segs_per > 1 && plen > mss) {
			/* A clone (frag_list member) shares its skb_shared_info. */
			if (skb_unclone(seg, GFP_ATOMIC)) {
				kfree_skb(seg);
				continue;
			}
			skb_shinfo(seg)->gso_size = mss;
			skb_shinfo(seg)->gso_type = gso_type;
			skb_shinfo(seg)->gso_segs = DIV_ROUND_UP(plen, mss);
		}
		*tail = seg;
		tail = &seg->next;
	}
	return head;
drop:
	kfree_skb(skb);
	return NULL;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_gso_cut);

/* process() verified the checksum before returning V_SEGMENT. Consumes @skb. */
static void segment_and_send(struct qotp_net *qn, struct sk_buff *skb,
			     const struct nf_hook_state *state, const struct seg *sg)
{
	unsigned int mss = skb_shinfo(skb)->gso_size;
	struct sk_buff *seg, *next;
	struct seg sub;

	skb_list_walk_safe(qotp_gso_cut(skb, sg->thoff, sg->pf, sg->chunk), seg, next) {
		skb_mark_not_on_list(seg);
		switch (process(qn, seg, state, &sub)) {
		case V_ACCEPT:
			state->okfn(state->net, state->sk, seg);
			break;
		case V_SEGMENT:
			if (skb_is_gso(seg)) {
				sub.chunk = mss;	/* once more, one segment each */
				segment_and_send(qn, seg, state, &sub);
				break;
			}
			fallthrough;
		default:
			kfree_skb(seg);
		}
	}
}

static unsigned int qotp_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	struct qotp_net *qn = priv;
	struct seg sg;

	switch (process(qn, skb, state, &sg)) {
	case V_ACCEPT:
		return NF_ACCEPT;
	case V_SEGMENT:
		segment_and_send(qn, skb, state, &sg);
		return NF_STOLEN;
	default:
		return NF_DROP;
	}
}

static const struct nf_hook_ops qotp_gw_ops[] = {
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_FORWARD,
	  .priority = QOTP_HOOK_PRI },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_FORWARD,
	  .priority = QOTP_HOOK_PRI },
};

static const struct nf_hook_ops qotp_ep_ops[] = {
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = QOTP_HOOK_PRI },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = QOTP_HOOK_PRI },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = QOTP_HOOK_PRI },
	{ .hook = qotp_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = QOTP_HOOK_PRI },
};

int qotp_dp_net_init(struct qotp_net *qn)
{
	struct qotp_flow_table *ft = kzalloc(sizeof(*ft), GFP_KERNEL);
	unsigned int i;
	int err;

	if (!ft)
		return -ENOMEM;
	mutex_init(&ft->lock);
	memcpy(ft->gw_ops, qotp_gw_ops, sizeof(ft->gw_ops));
	memcpy(ft->ep_ops, qotp_ep_ops, sizeof(ft->ep_ops));
	for (i = 0; i < ARRAY_SIZE(ft->gw_ops); i++)
		ft->gw_ops[i].priv = qn;
	for (i = 0; i < ARRAY_SIZE(ft->ep_ops); i++)
		ft->ep_ops[i].priv = qn;
	err = qotp_flows_init(ft, qn);
	if (err) {
		kfree(ft);
		return err;
	}
	qn->flows = ft;
	return 0;
}

static int set_mode_locked(struct qotp_net *qn, struct qotp_flow_table *ft, u32 mode)
{
	int err;

	if ((mode & QOTP_MODE_GATEWAY) && !(ft->mode & QOTP_MODE_GATEWAY)) {
		err = nf_register_net_hooks(qn->net, ft->gw_ops, ARRAY_SIZE(ft->gw_ops));
		if (err)
			return err;
		ft->mode |= QOTP_MODE_GATEWAY;
	}
	if ((mode & QOTP_MODE_ENDPOINT) && !(ft->mode & QOTP_MODE_ENDPOINT)) {
		err = nf_register_net_hooks(qn->net, ft->ep_ops, ARRAY_SIZE(ft->ep_ops));
		if (err)
			return err;
		ft->mode |= QOTP_MODE_ENDPOINT;
	}
	if (!(mode & QOTP_MODE_GATEWAY) && (ft->mode & QOTP_MODE_GATEWAY)) {
		nf_unregister_net_hooks(qn->net, ft->gw_ops, ARRAY_SIZE(ft->gw_ops));
		ft->mode &= ~QOTP_MODE_GATEWAY;
	}
	if (!(mode & QOTP_MODE_ENDPOINT) && (ft->mode & QOTP_MODE_ENDPOINT)) {
		nf_unregister_net_hooks(qn->net, ft->ep_ops, ARRAY_SIZE(ft->ep_ops));
		ft->mode &= ~QOTP_MODE_ENDPOINT;
	}
	return 0;
}

int qotp_dp_set_mode(struct qotp_net *qn, u32 mode)
{
	struct qotp_flow_table *ft = qn->flows;
	u32 old;
	int err;

	if (mode & ~QOTP_MODE_ALL)
		return -EINVAL;
	mutex_lock(&ft->lock);
	old = ft->mode;
	err = set_mode_locked(qn, ft, mode);
	if (err)
		set_mode_locked(qn, ft, old);	/* only unregisters what we just added */
	mutex_unlock(&ft->lock);
	return err;
}

void qotp_dp_net_exit(struct qotp_net *qn)
{
	struct qotp_flow_table *ft = qn->flows;

	if (!ft)
		return;
	mutex_lock(&ft->lock);
	set_mode_locked(qn, ft, 0);	/* waits for hooks in flight (synchronize_net) */
	mutex_unlock(&ft->lock);
	qotp_flows_destroy(ft);
	qn->flows = NULL;
	kfree(ft);
}

void qotp_dp_peer_gone(struct qotp_net *qn, struct qotp_peer *peer)
{
	if (qn->flows)
		qotp_flows_end_peer(qn->flows, peer);
}

/* A flush wipes the ring; the flows keyed by it cannot go on (uapi: "ends affected
 * flows"), their next segments start new flows with new key. */
void qotp_dp_ring_flushed(struct qotp_net *qn, struct qotp_peer *peer, enum qotp_dir dir)
{
	if (qn->flows)
		qotp_flows_end_peer(qn->flows, peer);
}
