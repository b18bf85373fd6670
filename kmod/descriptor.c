// SPDX-License-Identifier: GPL-2.0
/*
 * The qotp TCP option (kind 253, ExID 0x514f), version 1. Documentation/wire-format.md
 * is the specification; this file and tests/descriptor_test.c follow it.
 *
 *  0     kind = 253
 *  1     length = 19 or 25
 *  2..3  ExID 0x514f
 *  4     version << 4 | flags (F_TWO = 0x01, F_STRIDE = 0x02)
 *  5..8  seq_base of run 0 (u32)
 *  9..16 block id of run 0 (u64); with F_STRIDE: 9..10 stride minus 1 (u16, stride
 *        1..32768) and 11..16 block id of run 0 (u48)
 * 17..18 offset of run 0 in its block (u16, < 32768, < stride)
 *  with F_TWO:
 * 19..20 seq_base of run 1 minus seq_base of run 0 (u16, 1..32768; 1..65535 with F_STRIDE)
 * 21..22 block id of run 1 minus block id of run 0 (u16)
 * 23..24 offset of run 1 in its block (u16, < 32768, < stride)
 * All fields big endian.
 */
#include <linux/errno.h>
#include <net/tcp.h>
#include <asm/unaligned.h>
#include <kunit/visibility.h>

#include "descriptor.h"

int qotp_desc_encode(const struct qotp_desc *d, u8 *buf, unsigned int size)
{
	unsigned int len = d->n == 2 ? QOTP_OPT_LEN2 : QOTP_OPT_LEN1;
	unsigned int pad = round_up(len, 4) - len;
	u32 offmax = d->stride ?: QOTP_RUN_MAX;
	u8 *p = buf;

	if (d->n < 1 || d->n > 2 || size < len + pad || d->stride > QOTP_RUN_MAX ||
	    d->run[0].off >= offmax || (d->stride && d->run[0].blk >= QOTP_BLK_STRIDE_LIMIT))
		return -ERANGE;
	if (d->n == 2) {
		u32 dseq = d->run[1].seq - d->run[0].seq;

		if (!dseq || dseq > (d->stride ? QOTP_DSEQ_MAX_STRIDE : QOTP_RUN_MAX) ||
		    d->run[1].blk < d->run[0].blk || d->run[1].blk - d->run[0].blk > U16_MAX ||
		    d->run[1].off >= offmax)
			return -ERANGE;
	}
	/* Leading NOPs keep the 32-bit fields of whatever follows aligned as TCP expects. */
	memset(p, TCPOPT_NOP, pad);
	p += pad;
	p[0] = QOTP_OPT_KIND;
	p[1] = len;
	put_unaligned_be16(QOTP_OPT_EXID, p + 2);
	p[4] = QOTP_OPT_VERSION << 4 | (d->n == 2 ? QOTP_OPT_F_TWO : 0) |
	       (d->stride ? QOTP_OPT_F_STRIDE : 0);
	put_unaligned_be32(d->run[0].seq, p + 5);
	put_unaligned_be64(d->run[0].blk, p + 9);
	if (d->stride)
		put_unaligned_be16(d->stride - 1, p + 9);
	put_unaligned_be16(d->run[0].off, p + 17);
	if (d->n == 2) {
		put_unaligned_be16(d->run[1].seq - d->run[0].seq, p + 19);
		put_unaligned_be16(d->run[1].blk - d->run[0].blk, p + 21);
		put_unaligned_be16(d->run[1].off, p + 23);
	}
	return len + pad;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_desc_encode);

static int parse_one(const u8 *p, unsigned int len, struct qotp_desc *d)
{
	u8 flags = p[4] & 0x0f;
	u32 dseq, offmax;

	if (p[4] >> 4 != QOTP_OPT_VERSION || (flags & ~(QOTP_OPT_F_TWO | QOTP_OPT_F_STRIDE)))
		return -EBADMSG;
	if (len != (flags & QOTP_OPT_F_TWO ? QOTP_OPT_LEN2 : QOTP_OPT_LEN1))
		return -EBADMSG;
	d->stride = 0;
	d->run[0].blk = get_unaligned_be64(p + 9);
	if (flags & QOTP_OPT_F_STRIDE) {
		d->stride = get_unaligned_be16(p + 9) + 1;
		d->run[0].blk &= QOTP_BLK_STRIDE_LIMIT - 1;
		if (d->stride > QOTP_RUN_MAX)
			return -EBADMSG;
	}
	offmax = d->stride ?: QOTP_RUN_MAX;
	d->n = 1;
	d->run[0].seq = get_unaligned_be32(p + 5);
	d->run[0].off = get_unaligned_be16(p + 17);
	if (d->run[0].off >= offmax)
		return -EBADMSG;
	if (!(flags & QOTP_OPT_F_TWO))
		return 0;
	dseq = get_unaligned_be16(p + 19);
	d->n = 2;
	d->run[1].seq = d->run[0].seq + dseq;
	d->run[1].blk = d->run[0].blk + get_unaligned_be16(p + 21);
	d->run[1].off = get_unaligned_be16(p + 23);
	/* A block id that wraps 2^64 cannot follow an earlier one. */
	if (!dseq || (!d->stride && dseq > QOTP_RUN_MAX) || d->run[1].off >= offmax ||
	    d->run[1].blk < d->run[0].blk)
		return -EBADMSG;
	return 0;
}

int qotp_desc_parse(const u8 *opt, unsigned int len, struct qotp_desc *d)
{
	unsigned int i = 0;
	bool found = false;
	int err;

	while (i < len) {
		u8 kind = opt[i], olen;

		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			i++;
			continue;
		}
		/* A broken option list makes every later option unreliable, ours included. */
		if (len - i < 2)
			return -EBADMSG;
		olen = opt[i + 1];
		if (olen < 2 || olen > len - i)
			return -EBADMSG;
		if (kind == QOTP_OPT_KIND && olen >= 4 &&
		    get_unaligned_be16(opt + i + 2) == QOTP_OPT_EXID) {
			if (found || olen < 5)
				return -EBADMSG;
			err = parse_one(opt + i, olen, d);
			if (err)
				return err;
			found = true;
		}
		i += olen;
	}
	return found ? 0 : -ENOENT;
}
EXPORT_SYMBOL_IF_KUNIT(qotp_desc_parse);
