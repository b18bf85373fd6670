/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the datapath's KUnit suites. */
#ifndef _QOTP_DP_TEST_H
#define _QOTP_DP_TEST_H

#include <kunit/test.h>
#include <linux/string.h>

/* KUNIT_*_MEMEQ arrived in 6.2; 6.1 is what we build against. */
#ifndef KUNIT_EXPECT_MEMEQ
#define KUNIT_EXPECT_MEMEQ(test, a, b, n) \
	KUNIT_EXPECT_EQ_MSG(test, memcmp(a, b, n), 0, "%s and %s differ", #a, #b)
#define KUNIT_ASSERT_MEMEQ(test, a, b, n) \
	KUNIT_ASSERT_EQ_MSG(test, memcmp(a, b, n), 0, "%s and %s differ", #a, #b)
#endif

#endif /* _QOTP_DP_TEST_H */
