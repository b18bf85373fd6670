// SPDX-License-Identifier: GPL-2.0
/* Unit tests of qotpctl's argument parsers: prefixes, byte counts, ids, directions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <linux/qotp.h>

#include "qotpctl_args.h"

static void test_cidr_ok(void **state)
{
	struct qotpctl_cidr c;
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1 };

	assert_int_equal(qotpctl_parse_cidr("10.1.0.0/16", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.len, 16);
	assert_memory_equal(c.addr, "\x0a\x01\x00\x00", 4);
	assert_int_equal(qotpctl_parse_cidr("0.0.0.0/0", &c), 0);
	assert_int_equal(c.len, 0);
	assert_int_equal(qotpctl_parse_cidr("192.0.2.7/32", &c), 0);
	assert_int_equal(qotpctl_parse_cidr("2001:db8:1::/48", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.len, 48);
	assert_memory_equal(c.addr, v6, 16);
	assert_int_equal(qotpctl_parse_cidr("::/0", &c), 0);
	assert_int_equal(qotpctl_parse_cidr("::1/128", &c), 0);
}

static void test_cidr_bad(void **state)
{
	static const char *const bad[] = {
		"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8",
		"10.0.0.0/8x", "10.0.0/8", "10.0.0.256/32", "/8", "fd00::/129", "fd00::1::/64",
		"host/8", "", "10.0.0.0/99999999999999999999",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128/8",
	};
	struct qotpctl_cidr c;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (qotpctl_parse_cidr(bad[i], &c) != -EINVAL)
			fail_msg("accepted `%s'", bad[i]);
	}
	/* Host bits are an error of their own, so the message can say so. */
	assert_int_equal(qotpctl_parse_cidr("10.0.0.1/24", &c), -EDOM);
	assert_int_equal(qotpctl_parse_cidr("fd00::1/64", &c), -EDOM);
	assert_int_equal(qotpctl_parse_cidr("128.0.0.0/0", &c), -EDOM);
}

static void test_bytes(void **state)
{
	uint64_t v;

	assert_true(qotpctl_parse_u64("4096", &v, true));
	assert_int_equal(v, 4096);
	assert_true(qotpctl_parse_u64("64K", &v, true));
	assert_int_equal(v, 65536);
	assert_true(qotpctl_parse_u64("16m", &v, true));
	assert_int_equal(v, 16 << 20);
	assert_true(qotpctl_parse_u64("1G", &v, true));
	assert_int_equal(v, 1 << 30);
	assert_true(qotpctl_parse_u64("0x10", &v, false));
	assert_int_equal(v, 16);
	assert_true(qotpctl_parse_u64("18446744073709551615", &v, false));
	assert_true(v == UINT64_MAX);

	assert_false(qotpctl_parse_u64("64K", &v, false));	/* no suffix for ids */
	assert_false(qotpctl_parse_u64("1T", &v, true));
	assert_false(qotpctl_parse_u64("1KK", &v, true));
	assert_false(qotpctl_parse_u64("-1", &v, true));
	assert_false(qotpctl_parse_u64("+1", &v, true));
	assert_false(qotpctl_parse_u64(" 1", &v, true));
	assert_false(qotpctl_parse_u64("", &v, true));
	assert_false(qotpctl_parse_u64(NULL, &v, true));
	assert_false(qotpctl_parse_u64("18446744073709551616", &v, false));
	assert_false(qotpctl_parse_u64("17179869184G", &v, true));	/* 2^64: overflows */
}

static void test_u32_and_dir(void **state)
{
	uint32_t v;

	assert_true(qotpctl_parse_u32("4294967295", &v));
	assert_true(v == UINT32_MAX);
	assert_false(qotpctl_parse_u32("4294967296", &v));
	assert_false(qotpctl_parse_u32("1k", &v));
	assert_int_equal(qotpctl_parse_dir("encrypt"), QOTP_DIR_ENCRYPT);
	assert_int_equal(qotpctl_parse_dir("dec"), QOTP_DIR_DECRYPT);
	assert_int_equal(qotpctl_parse_dir("both"), -1);
	assert_int_equal(qotpctl_parse_dir("Encrypt"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_ok),
		cmocka_unit_test(test_cidr_bad),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_u32_and_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
