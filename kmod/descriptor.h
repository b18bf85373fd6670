/* SPDX-License-Identifier: GPL-2.0 */
/*
 * In-band key descriptors: the TCP option that tells the decryptor which key bytes
 * encrypted a segment. Byte layout and rules: Documentation/wire-format.md.
 */
#ifndef _QOTP_DESCRIPTOR_H
#define _QOTP_DESCRIPTOR_H

#include <linux/types.h>

#define QOTP_OPT_KIND		253	/* RFC 4727 experimental, shared via RFC 6994 ExID */
#define QOTP_OPT_EXID		0x514f	/* "QO" */
#define QOTP_OPT_VERSION	1
#define QOTP_OPT_F_TWO		0x01	/* a second descriptor follows the first */
#define QOTP_OPT_F_STRIDE	0x02	/* runs continue into the next block ids */
#define QOTP_OPT_F_MASK		0x0f	/* flag bits of version 1; others must be zero */

#define QOTP_OPT_LEN1		19	/* option length with one descriptor */
#define QOTP_OPT_LEN2		25	/* ... with two */
/* Header growth of an encrypted segment: the option plus NOP padding to 32 bits. This is
 * what SYN/SYN-ACK MSS options are clamped by. */
#define QOTP_OPT_SPACE		28
#define QOTP_RUN_MAX		32768	/* largest block, offset bound, Δseq without stride */
#define QOTP_DSEQ_MAX_STRIDE	65535	/* Δseq bound with F_STRIDE */
#define QOTP_BLK_STRIDE_LIMIT	(1ULL << 48)	/* with F_STRIDE blk₀ is 48 bits */

/*
 * One run: the byte at TCP sequence number x, for x from @seq on (until the next run),
 * was encrypted with key byte p = @off + (x - @seq) of block @blk; with a stride S (the
 * descriptor's F_STRIDE), with byte p % S of block @blk + p / S: the run goes on into
 * the following block ids, every one of them S bytes long.
 */
struct qotp_run {
	u32 seq;
	u64 blk;
	u32 off;
};

struct qotp_desc {
	unsigned int n;			/* 1 or 2 */
	u32 stride;			/* 0, or S: both runs continue into blocks of S bytes */
	struct qotp_run run[2];		/* run[1].seq after run[0].seq */
};

/* Block and offset of the key byte for sequence number @seq of run @r (@seq at or after
 * its start, before the next run; (@seq - @r->seq) + @r->off below 2^32). */
static inline void qotp_run_pos(const struct qotp_run *r, u32 stride, u32 seq, u64 *blk,
				u32 *off)
{
	u32 p = r->off + (seq - r->seq);

	if (stride) {
		*blk = r->blk + p / stride;
		*off = p % stride;
	} else {
		*blk = r->blk;
		*off = p;
	}
}

/* Encoded bytes, NOP padded to a multiple of 4; returns the padded length, or -ERANGE
 * when @d cannot be represented (see the wire format's limits). */
int qotp_desc_encode(const struct qotp_desc *d, u8 *buf, unsigned int size);

/*
 * Finds and parses the qotp option among the TCP options @opt[0..@len).
 * 0: found and valid; -ENOENT: absent; -EBADMSG: malformed, unknown version or flags,
 * or present twice.
 */
int qotp_desc_parse(const u8 *opt, unsigned int len, struct qotp_desc *d);

/* Which run of @d covers sequence number @seq: the last one starting at or before it. */
static inline unsigned int qotp_desc_pick(const struct qotp_desc *d, u32 seq)
{
	return d->n == 2 && (s32)(seq - d->run[1].seq) >= 0 ? 1 : 0;
}

#endif /* _QOTP_DESCRIPTOR_H */
