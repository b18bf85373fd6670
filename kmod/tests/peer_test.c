// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of peers (peer.c): longest-prefix lookup over IPv4 and IPv6 prefixes of
 * several peers, prefix ownership conflicts, SET_PEER replacing the list, deletion, and
 * reference semantics. A struct qotp_net without a netns (events only queued, no flows).
 */
#include <kunit/test.h>
#include <linux/inet.h>
#include <linux/slab.h>

#include "../qotp.h"
#include "../peer.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

static struct qotp_net *qn_new(struct kunit *test)
{
	struct qotp_net *qn = kunit_kzalloc(test, sizeof(*qn), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, qn);
	KUNIT_ASSERT_EQ(test, qotp_cp_init(qn), 0);
	return qn;
}

static struct qotp_prefix pfx(const char *addr, u8 len)
{
	struct qotp_prefix p = { .len = len };

	if (in4_pton(addr, -1, (u8 *)&p.addr, -1, NULL)) {
		p.family = AF_INET;
	} else {
		p.family = AF_INET6;
		WARN_ON(!in6_pton(addr, -1, (u8 *)&p.addr, -1, NULL));
	}
	return p;
}

static int add(struct qotp_net *qn, u32 id, const struct qotp_prefix *p, u32 n)
{
	int err;

	mutex_lock(&qotp_cp(qn)->lock);
	err = qotp_peer_add(qn, id, p, n, NULL);
	mutex_unlock(&qotp_cp(qn)->lock);
	return err;
}

static u32 who4(struct qotp_net *qn, const char *addr)
{
	struct qotp_peer *peer;
	__be32 a = in_aton(addr);
	u32 id;

	rcu_read_lock();
	peer = qotp_peer_lookup_v4(qn, a);
	id = peer ? peer->id : 0;
	rcu_read_unlock();
	return id;
}

static u32 who6(struct qotp_net *qn, const char *addr)
{
	struct qotp_peer *peer;
	struct in6_addr a;
	u32 id;

	WARN_ON(!in6_pton(addr, -1, (u8 *)&a, -1, NULL));
	rcu_read_lock();
	peer = qotp_peer_lookup_v6(qn, &a);
	id = peer ? peer->id : 0;
	rcu_read_unlock();
	return id;
}

static void test_longest_prefix(struct kunit *test)
{
	struct qotp_net *qn = qn_new(test);
	struct qotp_prefix p1[] = { pfx("10.0.0.0", 8), pfx("2001:db8::", 32) };
	struct qotp_prefix p2[] = { pfx("10.1.0.0", 16), pfx("2001:db8:1::", 48) };
	struct qotp_prefix p3[] = { pfx("10.1.2.3", 32), pfx("0.0.0.0", 0) };

	/* Added shortest last, so the table's order cannot come from insertion order. */
	KUNIT_ASSERT_EQ(test, add(qn, 2, p2, 2), 0);
	KUNIT_ASSERT_EQ(test, add(qn, 3, p3, 2), 0);
	KUNIT_ASSERT_EQ(test, add(qn, 1, p1, 2), 0);

	KUNIT_EXPECT_EQ(test, who4(qn, "10.1.2.3"), 3U);
	KUNIT_EXPECT_EQ(test, who4(qn, "10.1.2.4"), 2U);
	KUNIT_EXPECT_EQ(test, who4(qn, "10.2.0.1"), 1U);
	KUNIT_EXPECT_EQ(test, who4(qn, "192.0.2.1"), 3U);	/* the default route */
	KUNIT_EXPECT_EQ(test, who6(qn, "2001:db8:1::5"), 2U);
	KUNIT_EXPECT_EQ(test, who6(qn, "2001:db8:2::5"), 1U);
	KUNIT_EXPECT_EQ(test, who6(qn, "2001:db9::1"), 0U);

	rcu_read_lock();
	KUNIT_EXPECT_NOT_NULL(test, qotp_peer_find(qn, 2)->ring[QOTP_DIR_ENCRYPT]);
	KUNIT_EXPECT_NULL(test, qotp_peer_find(qn, 4));
	rcu_read_unlock();
	qotp_cp_exit(qn);
}

static void test_conflicts(struct kunit *test)
{
	struct qotp_net *qn = qn_new(test);
	struct qotp_prefix a[] = { pfx("10.0.0.0", 8) };
	struct qotp_prefix dup[] = { pfx("10.0.0.0", 8) };
	struct qotp_prefix twice[] = { pfx("10.9.0.0", 16), pfx("10.9.0.0", 16) };
	struct qotp_prefix host[] = { pfx("10.9.0.1", 16) };
	struct qotp_prefix moved[] = { pfx("10.0.0.0", 8), pfx("fd00::", 8) };

	KUNIT_ASSERT_EQ(test, add(qn, 1, a, 1), 0);
	KUNIT_EXPECT_EQ(test, add(qn, 1, NULL, 0), -EEXIST);
	KUNIT_EXPECT_EQ(test, add(qn, 2, dup, 1), -EEXIST);
	KUNIT_EXPECT_EQ(test, add(qn, 2, twice, 2), -EINVAL);
	KUNIT_EXPECT_EQ(test, add(qn, 2, host, 1), -EINVAL);
	rcu_read_lock();
	KUNIT_EXPECT_NULL(test, qotp_peer_find(qn, 2));
	rcu_read_unlock();

	/* SET replaces the list; a peer may keep its own prefixes. */
	mutex_lock(&qotp_cp(qn)->lock);
	KUNIT_EXPECT_EQ(test, qotp_peer_set(qn, 1, moved, 2, NULL), 0);
	KUNIT_EXPECT_EQ(test, qotp_peer_set(qn, 9, moved, 2, NULL), -ENOENT);
	mutex_unlock(&qotp_cp(qn)->lock);
	KUNIT_EXPECT_EQ(test, who6(qn, "fd00::1"), 1U);
	mutex_lock(&qotp_cp(qn)->lock);
	KUNIT_EXPECT_EQ(test, qotp_peer_set(qn, 1, NULL, 0, NULL), 0);
	mutex_unlock(&qotp_cp(qn)->lock);
	KUNIT_EXPECT_EQ(test, who4(qn, "10.1.1.1"), 0U);
	KUNIT_EXPECT_EQ(test, add(qn, 2, dup, 1), 0);	/* free again */
	KUNIT_EXPECT_EQ(test, who4(qn, "10.1.1.1"), 2U);
	qotp_cp_exit(qn);
}

static void test_delete_and_refs(struct kunit *test)
{
	struct qotp_net *qn = qn_new(test);
	struct qotp_prefix a[] = { pfx("192.0.2.0", 24) };
	struct qotp_peer *peer;

	KUNIT_ASSERT_EQ(test, add(qn, 5, a, 1), 0);
	rcu_read_lock();
	peer = qotp_peer_lookup_v4(qn, in_aton("192.0.2.7"));
	KUNIT_ASSERT_NOT_NULL(test, peer);
	KUNIT_ASSERT_TRUE(test, qotp_peer_get(peer));
	rcu_read_unlock();

	mutex_lock(&qotp_cp(qn)->lock);
	KUNIT_EXPECT_EQ(test, qotp_peer_del(qn, 5), 0);
	KUNIT_EXPECT_EQ(test, qotp_peer_del(qn, 5), -ENOENT);
	mutex_unlock(&qotp_cp(qn)->lock);

	/* Gone from the tables, refused to new holders, alive for the one we hold. */
	KUNIT_EXPECT_EQ(test, who4(qn, "192.0.2.7"), 0U);
	KUNIT_EXPECT_FALSE(test, qotp_peer_get(peer));
	KUNIT_EXPECT_EQ(test, peer->id, 5U);
	KUNIT_EXPECT_EQ(test, qotp_ring_avail(peer->ring[QOTP_DIR_DECRYPT]), 0ULL);
	qotp_peer_put(peer);
	qotp_cp_exit(qn);
}

static void test_ports(struct kunit *test)
{
	struct qotp_net qn = { .ports = { 1935, 8443 }, .nports = 2 };

	KUNIT_EXPECT_TRUE(test, qotp_port_protected(&qn, 1935));
	KUNIT_EXPECT_TRUE(test, qotp_port_protected(&qn, 8443));
	KUNIT_EXPECT_FALSE(test, qotp_port_protected(&qn, 80));
	qn.nports = 1;
	KUNIT_EXPECT_FALSE(test, qotp_port_protected(&qn, 8443));
	qn.nports = 0;
	KUNIT_EXPECT_FALSE(test, qotp_port_protected(&qn, 1935));
}

static struct kunit_case peer_cases[] = {
	KUNIT_CASE(test_longest_prefix),
	KUNIT_CASE(test_conflicts),
	KUNIT_CASE(test_delete_and_refs),
	KUNIT_CASE(test_ports),
	{}
};

static struct kunit_suite peer_suite = {
	.name = "qotp_peer",
	.test_cases = peer_cases,
};
kunit_test_suite(peer_suite);
