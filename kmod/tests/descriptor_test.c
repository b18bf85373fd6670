// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the qotp TCP option (descriptor.c): the known-answer vectors of
 * Documentation/wire-format.md, malformed options, and encode/parse round trips of
 * random descriptors.
 */
#include "dp_test.h"
#include <linux/random.h>
#include <net/tcp.h>

#include "../descriptor.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

struct desc_vec {
	const char *name;
	struct qotp_desc d;
	u8 bytes[QOTP_OPT_SPACE];
	int len;
};

/* The vectors of Documentation/wire-format.md, section "Test vectors". */
static const struct desc_vec vectors[] = {
	{
		.name = "one run",
		.d = { .n = 1, .run = { { 0x01020304, 0x1122334455667788ULL, 0x0102 } } },
		.bytes = { 0x01, 0xfd, 0x13, 0x51, 0x4f, 0x10, 0x01, 0x02, 0x03, 0x04, 0x11,
			   0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x01, 0x02 },
		.len = 20,
	},
	{
		.name = "two runs across the 2^32 sequence wrap",
		.d = { .n = 2, .run = { { 0xfffffff0, 7, 0x7fff }, { 0x00000010, 8, 0 } } },
		.bytes = { 0x01, 0x01, 0x01, 0xfd, 0x19, 0x51, 0x4f, 0x11, 0xff, 0xff, 0xff,
			   0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x7f, 0xff,
			   0x00, 0x20, 0x00, 0x01, 0x00, 0x00 },
		.len = 28,
	},
	{
		.name = "two runs in one block, top block id",
		.d = { .n = 2, .run = { { 1000, 0xfffffffffffffff0ULL, 100 },
					{ 1000 + 32768, 0xfffffffffffffff0ULL, 200 } } },
		.bytes = { 0x01, 0x01, 0x01, 0xfd, 0x19, 0x51, 0x4f, 0x11, 0x00, 0x00, 0x03,
			   0xe8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00, 0x64,
			   0x80, 0x00, 0x00, 0x00, 0x00, 0xc8 },
		.len = 28,
	},
	{
		.name = "one run going on into blocks of 4096 bytes",
		.d = { .n = 1, .stride = 4096,
		       .run = { { 0x01020304, 0x334455667788ULL, 0x0102 } } },
		.bytes = { 0x01, 0xfd, 0x13, 0x51, 0x4f, 0x12, 0x01, 0x02, 0x03, 0x04, 0x0f,
			   0xff, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x01, 0x02 },
		.len = 20,
	},
	{
		.name = "two runs, stride 32768, second run 65535 bytes on",
		.d = { .n = 2, .stride = 32768,
		       .run = { { 0xffff0000, 5, 0x7fff }, { 0xffffffff, 7, 0x0010 } } },
		.bytes = { 0x01, 0x01, 0x01, 0xfd, 0x19, 0x51, 0x4f, 0x13, 0xff, 0xff, 0x00,
			   0x00, 0x7f, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x7f, 0xff,
			   0xff, 0xff, 0x00, 0x02, 0x00, 0x10 },
		.len = 28,
	},
};

static void desc_eq(struct kunit *test, const struct qotp_desc *a, const struct qotp_desc *b)
{
	unsigned int i;

	KUNIT_ASSERT_EQ(test, a->n, b->n);
	KUNIT_EXPECT_EQ(test, a->stride, b->stride);
	for (i = 0; i < a->n; i++) {
		KUNIT_EXPECT_EQ(test, a->run[i].seq, b->run[i].seq);
		KUNIT_EXPECT_EQ(test, a->run[i].blk, b->run[i].blk);
		KUNIT_EXPECT_EQ(test, a->run[i].off, b->run[i].off);
	}
}

static void desc_known_answers(struct kunit *test)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(vectors); i++) {
		const struct desc_vec *v = &vectors[i];
		u8 buf[QOTP_OPT_SPACE];
		struct qotp_desc d;

		kunit_info(test, "vector: %s", v->name);
		KUNIT_ASSERT_EQ(test, qotp_desc_encode(&v->d, buf, sizeof(buf)), v->len);
		KUNIT_EXPECT_MEMEQ(test, buf, v->bytes, v->len);
		KUNIT_ASSERT_EQ(test, qotp_desc_parse(v->bytes, v->len, &d), 0);
		desc_eq(test, &d, &v->d);
	}
}

/* The option among others, as a real SYN-less data segment would carry it. */
static void desc_among_other_options(struct kunit *test)
{
	u8 opts[40] = { TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, 10, 1, 2, 3, 4, 5, 6, 7, 8 };
	/* Another experiment's option with kind 253 but another ExID, skipped. */
	static const u8 other[] = { 0xfd, 0x06, 0x12, 0x34, 0xaa, 0xbb };
	struct qotp_desc d;

	memcpy(opts + 12, vectors[0].bytes, 20);
	KUNIT_ASSERT_EQ(test, qotp_desc_parse(opts, 32, &d), 0);
	desc_eq(test, &d, &vectors[0].d);

	memcpy(opts + 12, other, sizeof(other));
	memcpy(opts + 18, vectors[0].bytes + 1, 19);
	KUNIT_ASSERT_EQ(test, qotp_desc_parse(opts, 37, &d), 0);
	desc_eq(test, &d, &vectors[0].d);

	/* Absent: only timestamps; the other experiment; an EOL before ours. */
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(opts, 12, &d), -ENOENT);
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(other, sizeof(other), &d), -ENOENT);
	opts[12] = TCPOPT_EOL;
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(opts, 37, &d), -ENOENT);
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(opts, 0, &d), -ENOENT);
}

struct bad_vec {
	const char *name;
	unsigned int at;	/* byte of vector 1 (two runs, no padding) changed */
	u8 val;
};

static const struct bad_vec bad[] = {
	{ "version 0", 4, 0x01 },
	{ "version 2", 4, 0x21 },
	{ "reserved flag", 4, 0x15 },
	{ "reserved flag 0x08", 4, 0x19 },
	{ "length 25 without F_TWO", 4, 0x10 },
	{ "length 19 with F_TWO", 1, 19 },
	{ "length past the option space", 1, 26 },
	{ "length 1", 1, 1 },
	{ "offset 0 of 32768", 17, 0x80 },
	{ "offset 1 of 32768", 23, 0x80 },
	{ "second run starts with the first", 19, 0x00 },	/* with [20] = 0 below */
	{ "second run more than a block after the first", 19, 0x80 },
	{ "second block id wraps 2^64", 21, 0xff },
};

static void desc_malformed(struct kunit *test)
{
	const u8 *good = vectors[1].bytes + 3;	/* skip the padding */
	struct qotp_desc d;
	u8 buf[25], two[50];
	unsigned int i;

	KUNIT_ASSERT_EQ(test, qotp_desc_parse(good, 25, &d), 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		memcpy(buf, good, 25);
		buf[bad[i].at] = bad[i].val;
		if (bad[i].at == 19 && bad[i].val == 0)
			buf[20] = 0;
		if (bad[i].at == 19 && bad[i].val == 0x80)
			buf[20] = 1;
		if (bad[i].at == 21) {	/* run 0 block near 2^64 plus a delta that wraps */
			memset(buf + 9, 0xff, 8);
			buf[22] = 0xff;
		}
		kunit_info(test, "malformed: %s", bad[i].name);
		KUNIT_EXPECT_EQ(test, qotp_desc_parse(buf, 25, &d), -EBADMSG);
	}
	/* Truncated: the option list ends inside ours. */
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(good, 24, &d), -EBADMSG);
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(good, 1, &d), -EBADMSG);
	/* Present twice: which one would we believe? Neither. */
	memcpy(two, good, 25);
	memcpy(two + 25, good, 25);
	KUNIT_EXPECT_EQ(test, qotp_desc_parse(two, 50, &d), -EBADMSG);
	/* With F_STRIDE (vector 4, no padding): a stride above 32768, offsets not below it. */
	{
		const u8 *sg = vectors[4].bytes + 3;
		u8 sb[25];

		KUNIT_ASSERT_EQ(test, qotp_desc_parse(sg, 25, &d), 0);
		KUNIT_EXPECT_EQ(test, d.run[0].blk, 5ULL);
		memcpy(sb, sg, 25);
		sb[9] = 0x80;	/* stride 32769 */
		sb[10] = 0x00;
		KUNIT_EXPECT_EQ(test, qotp_desc_parse(sb, 25, &d), -EBADMSG);
		memcpy(sb, sg, 25);
		sb[9] = 0x00;	/* stride 16: offset 0x10 of run 1 is not below it */
		sb[10] = 0x0f;
		sb[17] = 0;
		sb[18] = 0;
		KUNIT_EXPECT_EQ(test, qotp_desc_parse(sb, 25, &d), -EBADMSG);
		sb[10] = 0x10;	/* stride 17: it is */
		KUNIT_EXPECT_EQ(test, qotp_desc_parse(sb, 25, &d), 0);
		KUNIT_EXPECT_EQ(test, d.stride, 17U);
		sb[4] = 0x11;	/* the same bytes without F_STRIDE: Δseq 65535 is too far */
		KUNIT_EXPECT_EQ(test, qotp_desc_parse(sb, 25, &d), -EBADMSG);
	}
	/* ExID only, no version byte. */
	KUNIT_EXPECT_EQ(test, qotp_desc_parse((const u8[]){ 0xfd, 4, 0x51, 0x4f }, 4, &d),
			-EBADMSG);
}

static void desc_unrepresentable(struct kunit *test)
{
	struct qotp_desc d = { .n = 2, .run = { { 0, 10, 0 }, { 100, 10 + 65536, 0 } } };
	u8 buf[QOTP_OPT_SPACE];

	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].blk = 9;		/* block ids go down */
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].blk = 11;
	d.run[1].seq = 32769;		/* first run longer than a block */
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].seq = 100;
	d.run[1].off = 32768;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].off = 0;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, 27), -ERANGE);
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), 28);
	/* With a stride: Δseq up to 65535, offsets below the stride, stride <= 32768. */
	d.stride = 4096;
	d.run[1].seq = 65535;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), 28);
	d.run[1].seq = 65536;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].seq = 100;
	d.run[1].off = 4096;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[1].off = 0;
	d.stride = 32769;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.stride = 4096;
	d.run[0].blk = QOTP_BLK_STRIDE_LIMIT;	/* 48 bits for the block id with a stride */
	d.run[1].blk = d.run[0].blk + 1;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
	d.run[0].blk--;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), 28);
	d.stride = 0;
	d.n = 3;
	KUNIT_EXPECT_EQ(test, qotp_desc_encode(&d, buf, sizeof(buf)), -ERANGE);
}

static void desc_roundtrip_random(struct kunit *test)
{
	unsigned int i;

	for (i = 0; i < 2000; i++) {
		struct qotp_desc d = {}, e;
		u8 buf[QOTP_OPT_SPACE];
		int len;

		u32 offmax;

		d.n = 1 + (get_random_u32() & 1);
		d.stride = get_random_u32() & 1 ? 1 + get_random_u32() % QOTP_RUN_MAX : 0;
		offmax = d.stride ?: QOTP_RUN_MAX;
		d.run[0].seq = get_random_u32();
		d.run[0].blk = get_random_u64() >> (d.stride ? 16 : 1);
		d.run[0].off = get_random_u32() % offmax;
		if (d.n == 2) {
			d.run[1].seq = d.run[0].seq + 1 +
				       get_random_u32() % (d.stride ? QOTP_DSEQ_MAX_STRIDE : QOTP_RUN_MAX);
			d.run[1].blk = d.run[0].blk + (get_random_u32() & 0xffff);
			d.run[1].off = get_random_u32() % offmax;
		}
		len = qotp_desc_encode(&d, buf, sizeof(buf));
		KUNIT_ASSERT_EQ(test, len, d.n == 2 ? 28 : 20);
		KUNIT_ASSERT_EQ(test, qotp_desc_parse(buf, len, &e), 0);
		desc_eq(test, &e, &d);
		KUNIT_EXPECT_EQ(test, qotp_desc_pick(&e, d.run[0].seq), 0U);
		if (d.n == 2) {
			KUNIT_EXPECT_EQ(test, qotp_desc_pick(&e, d.run[1].seq), 1U);
			KUNIT_EXPECT_EQ(test, qotp_desc_pick(&e, d.run[1].seq - 1), 0U);
		}
	}
}

static struct kunit_case desc_cases[] = {
	KUNIT_CASE(desc_known_answers),
	KUNIT_CASE(desc_among_other_options),
	KUNIT_CASE(desc_malformed),
	KUNIT_CASE(desc_unrepresentable),
	KUNIT_CASE(desc_roundtrip_random),
	{}
};

static struct kunit_suite desc_suite = {
	.name = "qotp_descriptor",
	.test_cases = desc_cases,
};
kunit_test_suite(desc_suite);
