// SPDX-License-Identifier: GPL-2.0
/*
 * kernel_keys tests that need no module: PUSH_KEYS splitting and building (parsed back
 * with the attribute layout the kernel's policy expects), event parsing from messages
 * built the way kmod/netlink.c builds them, and the "module not loaded" mapping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <linux/qotp.h>

#include "kernel_keys.h"

#define FAMILY 0x20

static uint8_t keybuf[70 * QOTP_MAX_BLOCK_LEN];

static void mkblocks(struct kk_block *b, size_t n, uint32_t len, uint64_t first)
{
	for (size_t i = 0; i < n; i++) {
		b[i].id = first + i;
		b[i].len = len;
		b[i].data = keybuf + i * len;
	}
}

static void test_push_fit(void **state)
{
	static struct kk_block b[130];

	for (size_t i = 0; i < sizeof(keybuf); i++)
		keybuf[i] = (uint8_t)(i * 13 + 5);
	mkblocks(b, 130, 100, 1);
	assert_int_equal(kk_push_fit(b, 130), QOTP_MAX_PUSH_BLOCKS);
	assert_int_equal(kk_push_fit(b, 10), 10);
	/* Two full blocks do not fit the 16-bit nest length. */
	mkblocks(b, 3, QOTP_MAX_BLOCK_LEN, 1);
	assert_int_equal(kk_push_fit(b, 3), 1);
	mkblocks(b, 130, 4096, 1);
	assert_int_equal(kk_push_fit(b, 130), 15);	/* 15 * (4096 + 32) < 65000 */
	/* Ids must increase; invalid lengths stop the message. */
	mkblocks(b, 4, 100, 10);
	b[2].id = 11;
	assert_int_equal(kk_push_fit(b, 4), 2);
	b[2].id = 12;
	b[3].len = 0;
	assert_int_equal(kk_push_fit(b, 4), 3);
	b[0].len = QOTP_MAX_BLOCK_LEN + 1;
	assert_int_equal(kk_push_fit(b, 4), 0);
}

static struct nla_policy push_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_PUSH_PEER] = { .type = NLA_U32 },
	[QOTP_A_PUSH_DIR] = { .type = NLA_U8 },
	[QOTP_A_PUSH_BLOCKS] = { .type = NLA_NESTED },
};

static struct nla_policy block_policy[QOTP_A_BLOCK_MAX + 1] = {
	[QOTP_A_BLOCK_ID] = { .type = NLA_U64 },
};

static void wipe_free(struct nl_msg *msg)
{
	explicit_bzero(nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len);
	nlmsg_free(msg);
}

static void test_build_push_parses_back(void **state)
{
	static struct kk_block b[20];
	struct nlattr *tb[QOTP_A_MAX + 1], *a;
	struct nl_msg *msg;
	size_t used, k = 0;
	int rem;

	mkblocks(b, 20, 4096, 1000);
	msg = kk_build_push(FAMILY, 7, QOTP_DIR_DECRYPT, b, 20, &used);
	assert_non_null(msg);
	assert_int_equal(used, 15);
	assert_int_equal(nlmsg_hdr(msg)->nlmsg_type, FAMILY);
	assert_int_equal(genlmsg_hdr(nlmsg_hdr(msg))->cmd, QOTP_CMD_PUSH_KEYS);
	assert_int_equal(genlmsg_hdr(nlmsg_hdr(msg))->version, QOTP_GENL_VERSION);
	assert_int_equal(genlmsg_parse(nlmsg_hdr(msg), 0, tb, QOTP_A_MAX, push_policy), 0);
	assert_int_equal(nla_get_u32(tb[QOTP_A_PUSH_PEER]), 7);
	assert_int_equal(nla_get_u8(tb[QOTP_A_PUSH_DIR]), QOTP_DIR_DECRYPT);
	assert_true(tb[QOTP_A_PUSH_BLOCKS]->nla_type & NLA_F_NESTED);
	assert_true(nla_len(tb[QOTP_A_PUSH_BLOCKS]) <= KK_NEST_MAX);
	nla_for_each_nested(a, tb[QOTP_A_PUSH_BLOCKS], rem) {
		struct nlattr *bt[QOTP_A_BLOCK_MAX + 1];

		assert_int_equal(nla_parse_nested(bt, QOTP_A_BLOCK_MAX, a, block_policy), 0);
		assert_int_equal(nla_get_u64(bt[QOTP_A_BLOCK_ID]), 1000 + k);
		assert_int_equal(nla_len(bt[QOTP_A_BLOCK_DATA]), 4096);
		assert_memory_equal(nla_data(bt[QOTP_A_BLOCK_DATA]), b[k].data, 4096);
		k++;
	}
	assert_int_equal(k, 15);
	wipe_free(msg);

	/* Invalid arguments build nothing. */
	assert_null(kk_build_push(FAMILY, 0, QOTP_DIR_ENCRYPT, b, 1, &used));
	assert_null(kk_build_push(FAMILY, 1, 2, b, 1, &used));
	assert_null(kk_build_push(FAMILY, 1, QOTP_DIR_ENCRYPT, b, 0, &used));
	assert_int_equal(used, 0);
}

/* Walks a large push the way kk_push does: every block lands in exactly one message. */
static void test_split_covers_everything(void **state)
{
	static struct kk_block b[200];
	size_t off = 0, msgs = 0;

	for (size_t i = 0; i < 200; i++) {
		b[i].id = 5 + 2 * i;
		b[i].len = (uint32_t)(1 + (i * 977) % QOTP_MAX_BLOCK_LEN);
		b[i].data = keybuf;
	}
	while (off < 200) {
		size_t used;
		struct nl_msg *msg = kk_build_push(FAMILY, 3, QOTP_DIR_ENCRYPT, b + off, 200 - off,
						   &used);

		assert_non_null(msg);
		assert_true(used >= 1 && used <= QOTP_MAX_PUSH_BLOCKS);
		assert_true(nlmsg_hdr(msg)->nlmsg_len < 66000);
		wipe_free(msg);
		off += used;
		msgs++;
	}
	assert_int_equal(off, 200);
	assert_true(msgs > 1);
}

static struct nl_msg *evmsg(uint8_t cmd)
{
	struct nl_msg *msg = nlmsg_alloc();

	assert_non_null(msg);
	assert_non_null(genlmsg_put(msg, 0, 0, FAMILY, 0, 0, cmd, QOTP_GENL_VERSION));
	return msg;
}

static void test_parse_events(void **state)
{
	uint64_t ids[KK_MAX_EVENT_IDS];
	struct kk_event ev;
	struct nl_msg *msg;
	struct nlattr *nest;

	msg = evmsg(QOTP_CMD_EVENT_LOW_WATERMARK);
	nla_put_u32(msg, QOTP_A_EVT_PEER, 9);
	nla_put_u8(msg, QOTP_A_EVT_DIR, QOTP_DIR_ENCRYPT);
	nla_put_u64(msg, QOTP_A_EVT_AVAIL, 12345);
	assert_int_equal(kk_parse_event(msg, &ev, ids), 0);
	assert_int_equal(ev.type, KK_EV_LOW_WATERMARK);
	assert_int_equal(ev.peer, 9);
	assert_int_equal(ev.dir, QOTP_DIR_ENCRYPT);
	assert_int_equal(ev.avail, 12345);
	nlmsg_free(msg);

	/* RELEASED with the kernel's PAD attributes between the ids. */
	msg = evmsg(QOTP_CMD_EVENT_RELEASED);
	nla_put_u32(msg, QOTP_A_EVT_PEER, 9);
	nla_put_u8(msg, QOTP_A_EVT_DIR, QOTP_DIR_DECRYPT);
	nest = nla_nest_start(msg, QOTP_A_EVT_BLOCK_IDS);
	nla_put_u64(msg, 0, 100);
	nla_put(msg, QOTP_A_PAD, 0, NULL);
	nla_put_u64(msg, 0, 101);
	nla_nest_end(msg, nest);
	nla_put_u64(msg, QOTP_A_EVT_CONSUMED, 8192);
	assert_int_equal(kk_parse_event(msg, &ev, ids), 0);
	assert_int_equal(ev.type, KK_EV_RELEASED);
	assert_int_equal(ev.n_ids, 2);
	assert_int_equal(ev.ids[0], 100);
	assert_int_equal(ev.ids[1], 101);
	assert_int_equal(ev.consumed, 8192);
	nlmsg_free(msg);

	/* FLUSHED of everything: no peer, no dir. */
	msg = evmsg(QOTP_CMD_EVENT_FLUSHED);
	assert_int_equal(kk_parse_event(msg, &ev, ids), 0);
	assert_int_equal(ev.type, KK_EV_FLUSHED);
	assert_int_equal(ev.peer, 0);
	assert_int_equal(ev.dir, -1);
	nlmsg_free(msg);

	/* Refusals: missing ring, missing avail, bad dir, wrong-size id, not an event. */
	msg = evmsg(QOTP_CMD_EVENT_KEY_EMPTY);
	nla_put_u64(msg, QOTP_A_EVT_DROPS, 1);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EBADMSG);
	nlmsg_free(msg);
	msg = evmsg(QOTP_CMD_EVENT_LOW_WATERMARK);
	nla_put_u32(msg, QOTP_A_EVT_PEER, 9);
	nla_put_u8(msg, QOTP_A_EVT_DIR, QOTP_DIR_ENCRYPT);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EBADMSG);
	nlmsg_free(msg);
	msg = evmsg(QOTP_CMD_EVENT_KEY_EMPTY);
	nla_put_u32(msg, QOTP_A_EVT_PEER, 9);
	nla_put_u8(msg, QOTP_A_EVT_DIR, 5);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EBADMSG);
	nlmsg_free(msg);
	msg = evmsg(QOTP_CMD_EVENT_RELEASED);
	nla_put_u32(msg, QOTP_A_EVT_PEER, 9);
	nla_put_u8(msg, QOTP_A_EVT_DIR, 0);
	nest = nla_nest_start(msg, QOTP_A_EVT_BLOCK_IDS);
	nla_put_u32(msg, 0, 100);
	nla_nest_end(msg, nest);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EBADMSG);
	nlmsg_free(msg);
	msg = evmsg(QOTP_CMD_PUSH_KEYS);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EOPNOTSUPP);
	nlmsg_free(msg);
	/* A u32 where the policy wants a u8 is refused by the userspace policy. */
	msg = evmsg(QOTP_CMD_EVENT_FLUSHED);
	nla_put_u16(msg, QOTP_A_EVT_PEER, 1);
	assert_int_equal(kk_parse_event(msg, &ev, ids), -EBADMSG);
	nlmsg_free(msg);
}

static void noop_cb(void *arg, const struct kk_event *ev)
{
}

/* This host cannot load the module: opening must say so, not fail obscurely. */
static void test_open_without_module(void **state)
{
	struct kk *kk = NULL;
	int rc = kk_open(&kk, noop_cb, NULL);

	if (rc == 0) {
		kk_close(kk);
		skip();		/* the family exists here: nothing to check */
	}
	if (rc == -ENOTCONN)
		skip();		/* no generic netlink at all in this sandbox */
	assert_int_equal(rc, -ENOENT);
	assert_null(kk);
	assert_int_equal(kk_open(&kk, NULL, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_fit),
		cmocka_unit_test(test_build_push_parses_back),
		cmocka_unit_test(test_split_covers_everything),
		cmocka_unit_test(test_parse_events),
		cmocka_unit_test(test_open_without_module),
	};

	return cmocka_run_group_tests_name("kernel_keys", tests, NULL, NULL);
}
