// SPDX-License-Identifier: GPL-2.0
/*
 * Key routing tests. A small network of rt instances exchanges advertisements, every one of
 * them through the wire encoding, in synchronous rounds until no node changes; the tables
 * are then checked against breadth-first distances computed independently from the edges.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

#define MAXN 8

struct net {
	int n;
	struct rt *rt[MAXN];
	char name[MAXN][8];
	int edge[MAXN][MAXN];		/* link up */
	uint64_t now;
	int max_metric_seen;		/* highest metric ever carried in an advert */
};

static void net_init(struct net *net, int n)
{
	memset(net, 0, sizeof(*net));
	net->n = n;
	net->now = 1000;
	for (int i = 0; i < n; i++) {
		snprintf(net->name[i], sizeof(net->name[i]), "n%c", 'A' + i);
		net->rt[i] = rt_new(net->name[i], NULL);
		assert_non_null(net->rt[i]);
	}
}

static void net_free(struct net *net)
{
	for (int i = 0; i < net->n; i++)
		rt_free(net->rt[i]);
}

static void link_up(struct net *net, int a, int b)
{
	net->edge[a][b] = net->edge[b][a] = 1;
	assert_int_equal(rt_link_up(net->rt[a], net->name[b], 1, net->now), 0);
	assert_int_equal(rt_link_up(net->rt[b], net->name[a], 1, net->now), 0);
}

static void link_down(struct net *net, int a, int b)
{
	net->edge[a][b] = net->edge[b][a] = 0;
	assert_int_equal(rt_link_down(net->rt[a], net->name[b], net->now), 0);
	assert_int_equal(rt_link_down(net->rt[b], net->name[a], net->now), 0);
}

struct pending {
	int to;
	uint8_t buf[1024];
	long len;
};

/*
 * Runs triggered-update rounds: in each, every node whose table changed sends its vector to
 * each up neighbour; all are delivered before the next round. Returns the number of rounds
 * that carried messages, or -1 if it had not gone quiet after limit rounds.
 */
static int converge(struct net *net, int all_first, int limit)
{
	static struct pending q[MAXN * MAXN];
	int rounds = 0;

	for (int i = 0; i < net->n; i++)
		if (!all_first)
			continue;
		else
			(void)rt_take_changed(net->rt[i]);
	for (int r = 0; r < limit; r++) {
		int nq = 0;

		for (int i = 0; i < net->n; i++) {
			if (!rt_take_changed(net->rt[i]) && !(all_first && r == 0))
				continue;
			for (int j = 0; j < net->n; j++) {
				struct rt_entry e[MAXN];
				int ne;

				if (!net->edge[i][j])
					continue;
				ne = rt_build_advert(net->rt[i], net->name[j], e, MAXN);
				assert_true(ne >= 0);
				for (int k = 0; k < ne; k++)
					if (e[k].metric > net->max_metric_seen)
						net->max_metric_seen = e[k].metric;
				q[nq].to = j;
				q[nq].len = rt_advert_encode(net->name[i], e, (size_t)ne, q[nq].buf,
							     sizeof(q[nq].buf));
				assert_true(q[nq].len > 0);
				nq++;
			}
		}
		if (!nq)
			return rounds;
		rounds++;
		net->now += 100;
		for (int k = 0; k < nq; k++) {
			struct rt_entry e[MAXN];
			char origin[RT_ID_MAX + 1];
			long ne = rt_advert_decode(q[k].buf, (size_t)q[k].len, origin, e, MAXN);

			assert_true(ne >= 0);
			assert_int_equal(rt_recv_advert(net->rt[q[k].to], origin, e, (size_t)ne,
							net->now), 0);
		}
	}
	return -1;
}

/* BFS distance matrix from the edge table; RT_INFINITY when disconnected. */
static void bfs(const struct net *net, int src, int *dist)
{
	int queue[MAXN], head = 0, tail = 0;

	for (int i = 0; i < net->n; i++)
		dist[i] = RT_INFINITY;
	dist[src] = 0;
	queue[tail++] = src;
	while (head < tail) {
		int u = queue[head++];

		for (int v = 0; v < net->n; v++) {
			if (net->edge[u][v] && dist[v] == RT_INFINITY) {
				dist[v] = dist[u] + 1;
				queue[tail++] = v;
			}
		}
	}
}

static int idx(const struct net *net, const char *name)
{
	for (int i = 0; i < net->n; i++)
		if (!strcmp(net->name[i], name))
			return i;
	return -1;
}

/* Every node's table equals BFS distances, and each next hop is a neighbour one step closer. */
static void check_tables(const struct net *net)
{
	for (int s = 0; s < net->n; s++) {
		int dist[MAXN];

		bfs(net, s, dist);
		for (int d = 0; d < net->n; d++) {
			char nh[RT_ID_MAX + 1];
			uint8_t m;
			int rc;

			if (d == s)
				continue;
			rc = rt_lookup(net->rt[s], net->name[d], nh, &m);
			if (dist[d] == RT_INFINITY) {
				assert_int_equal(rc, -EHOSTUNREACH);
				continue;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(m, dist[d]);
			int h = idx(net, nh);
			assert_true(h >= 0);
			assert_true(net->edge[s][h]);
			int dh[MAXN];
			bfs(net, h, dh);
			assert_int_equal(dh[d], dist[d] - 1);
		}
	}
}

static void test_line_converges(void **state)
{
	struct net net;
	int rounds;

	net_init(&net, 5);
	for (int i = 0; i + 1 < 5; i++)
		link_up(&net, i, i + 1);
	rounds = converge(&net, 1, 50);
	assert_true(rounds >= 4 && rounds <= 5);	/* diameter 4: news travels one hop a round */
	check_tables(&net);
	printf("# line of 5 converged in %d rounds\n", rounds);
	net_free(&net);
}

static void test_star_converges(void **state)
{
	struct net net;
	int rounds;

	net_init(&net, 5);
	for (int i = 1; i < 5; i++)
		link_up(&net, 0, i);
	rounds = converge(&net, 1, 50);
	assert_true(rounds >= 2 && rounds <= 3);
	check_tables(&net);
	printf("# star of 5 converged in %d rounds\n", rounds);
	/* A leaf reaches another leaf through the centre at metric 2. */
	char nh[RT_ID_MAX + 1];
	uint8_t m;
	assert_int_equal(rt_lookup(net.rt[1], "nC", nh, &m), 0);
	assert_string_equal(nh, "nA");
	assert_int_equal(m, 2);
	net_free(&net);
}

static void ring4(struct net *net)
{
	net_init(net, 4);
	link_up(net, 0, 1);
	link_up(net, 1, 2);
	link_up(net, 2, 3);
	link_up(net, 3, 0);
	assert_true(converge(net, 1, 50) > 0);
	check_tables(net);
}

static void test_ring_cut_reroutes(void **state)
{
	struct net net;
	char nh[RT_ID_MAX + 1];
	uint8_t m;
	int rounds;

	ring4(&net);
	assert_int_equal(rt_lookup(net.rt[0], "nB", nh, &m), 0);
	assert_string_equal(nh, "nB");
	assert_int_equal(m, 1);

	link_down(&net, 0, 1);
	rounds = converge(&net, 0, 50);
	assert_true(rounds >= 0 && rounds <= 4);
	check_tables(&net);
	assert_int_equal(rt_lookup(net.rt[0], "nB", nh, &m), 0);
	assert_string_equal(nh, "nD");
	assert_int_equal(m, 3);
	printf("# ring of 4 re-converged after a cut in %d rounds\n", rounds);

	/* The link comes back: the direct route returns. */
	link_up(&net, 0, 1);
	assert_true(converge(&net, 0, 50) >= 0);
	check_tables(&net);
	assert_int_equal(rt_lookup(net.rt[0], "nB", nh, &m), 0);
	assert_string_equal(nh, "nB");
	net_free(&net);
}

static void test_partition_unreachable(void **state)
{
	struct net net;
	int rounds;

	ring4(&net);
	net.max_metric_seen = 0;
	/* Cut nA-nB and nC-nD: {nA,nD} and {nB,nC}. */
	link_down(&net, 0, 1);
	link_down(&net, 2, 3);
	rounds = converge(&net, 0, 100);
	assert_true(rounds >= 0);
	assert_true(rounds <= 4);	/* no counting to infinity: gone in a few rounds */
	assert_true(net.max_metric_seen <= RT_INFINITY);
	check_tables(&net);
	printf("# ring of 4 cut in two halves went quiet in %d rounds\n", rounds);
	assert_int_equal(rt_lookup(net.rt[0], "nB", NULL, NULL), -EHOSTUNREACH);
	assert_int_equal(rt_lookup(net.rt[3], "nC", NULL, NULL), -EHOSTUNREACH);

	/* Reported as unreachable rows, then forgotten after the gc time. */
	struct rt_route r;
	int found = 0;
	for (size_t i = 0; rt_get(net.rt[0], i, &r); i++) {
		if (!strcmp(r.dest, "nB")) {
			found = 1;
			assert_int_equal(r.status, RT_STATUS_UNREACHABLE);
			assert_int_equal(r.metric, RT_INFINITY);
		}
	}
	assert_true(found);
	rt_tick(net.rt[0], net.now + RT_GC_MS);
	for (size_t i = 0; rt_get(net.rt[0], i, &r); i++)
		assert_string_not_equal(r.dest, "nB");
	net_free(&net);
}

/* Line nA-nB-nC-nD; nD is cut from nC: a single lost link with a tail behind it. */
static void test_line_cut_counts_bounded(void **state)
{
	struct net net;
	int rounds;

	net_init(&net, 4);
	for (int i = 0; i + 1 < 4; i++)
		link_up(&net, i, i + 1);
	assert_true(converge(&net, 1, 50) > 0);
	net.max_metric_seen = 0;
	link_down(&net, 2, 3);
	rounds = converge(&net, 0, 100);
	assert_true(rounds >= 0 && rounds <= 4);
	assert_true(net.max_metric_seen <= RT_INFINITY);
	check_tables(&net);
	net_free(&net);
}

static void test_poisoned_reverse(void **state)
{
	struct net net;
	struct rt_entry e[MAXN];
	int n;

	net_init(&net, 3);
	link_up(&net, 0, 1);
	link_up(&net, 1, 2);
	assert_true(converge(&net, 1, 50) > 0);
	/* nA reaches nC via nB: told to nB as infinity, to nobody else differently. */
	n = rt_build_advert(net.rt[0], "nB", e, MAXN);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_int_equal(e[i].metric, RT_INFINITY);	/* both nB and nC are via nB */
	n = rt_build_advert(net.rt[1], "nA", e, MAXN);
	for (int i = 0; i < n; i++) {
		if (!strcmp(e[i].dest, "nC"))
			assert_int_equal(e[i].metric, 1);
		if (!strcmp(e[i].dest, "nA"))
			assert_int_equal(e[i].metric, RT_INFINITY);
	}
	assert_int_equal(rt_build_advert(net.rt[1], "nA", e, 1), -ENOSPC);
	net_free(&net);
}

static void test_timeout_expires_vector(void **state)
{
	struct net net;
	char nh[RT_ID_MAX + 1];

	net_init(&net, 3);
	link_up(&net, 0, 1);
	link_up(&net, 1, 2);
	assert_true(converge(&net, 1, 50) > 0);
	assert_int_equal(rt_lookup(net.rt[0], "nC", nh, NULL), 0);
	(void)rt_take_changed(net.rt[0]);
	struct rt_neighbour_info ni;
	assert_true(rt_get_neighbour(net.rt[0], 0, &ni));
	assert_string_equal(ni.id, "nB");
	assert_true(ni.heard_ms > 0);
	/* nB goes silent (its link stays up): nC is lost, nB itself stays direct. */
	rt_tick(net.rt[0], ni.heard_ms + RT_TIMEOUT_MS - 1);
	assert_int_equal(rt_lookup(net.rt[0], "nC", nh, NULL), 0);
	assert_false(rt_take_changed(net.rt[0]));
	rt_tick(net.rt[0], ni.heard_ms + RT_TIMEOUT_MS);
	assert_int_equal(rt_lookup(net.rt[0], "nC", nh, NULL), -EHOSTUNREACH);
	assert_true(rt_take_changed(net.rt[0]));
	assert_int_equal(rt_lookup(net.rt[0], "nB", nh, NULL), 0);
	assert_string_equal(nh, "nB");
	net_free(&net);
}

static void test_lookup_avoid(void **state)
{
	struct net net;
	char nh[RT_ID_MAX + 1];
	uint8_t m;
	const char *avoid[] = { "nB" };
	const char *both[] = { "nB", "nD" };

	ring4(&net);
	/* nA to nC: equal cost via nB and nD; the lower id wins, avoid picks the other. */
	assert_int_equal(rt_lookup(net.rt[0], "nC", nh, &m), 0);
	assert_string_equal(nh, "nB");
	assert_int_equal(rt_lookup_avoid(net.rt[0], "nC", avoid, 1, nh, &m), 0);
	assert_string_equal(nh, "nD");
	assert_int_equal(m, 2);
	assert_int_equal(rt_lookup_avoid(net.rt[0], "nC", both, 2, nh, &m), -EHOSTUNREACH);
	net_free(&net);
}

static void test_recv_rejects(void **state)
{
	struct rt *rt = rt_new("a", NULL);
	struct rt_entry e[2] = { { "b", 1 }, { "b", 2 } };

	assert_null(rt_new("bad id", NULL));
	assert_int_equal(rt_recv_advert(rt, "x", e, 1, 1), -ENOENT);	/* not a neighbour */
	assert_int_equal(rt_link_up(rt, "a", 1, 1), -EINVAL);		/* self */
	assert_int_equal(rt_link_up(rt, "x", 0, 1), -EINVAL);
	assert_int_equal(rt_link_up(rt, "x", RT_INFINITY, 1), -EINVAL);
	assert_int_equal(rt_link_up(rt, "x", 1, 1), 0);
	assert_int_equal(rt_recv_advert(rt, "x", e, 2, 1), -EINVAL);	/* duplicate dest */
	e[1].metric = RT_INFINITY + 1;
	strcpy(e[1].dest, "c");
	assert_int_equal(rt_recv_advert(rt, "x", e, 2, 1), -EINVAL);
	/* An infinite offer of an unknown node is not learnt. */
	e[0].metric = RT_INFINITY;
	assert_int_equal(rt_recv_advert(rt, "x", e, 1, 1), 0);
	assert_int_equal(rt_count(rt), 1);	/* only x */
	rt_free(rt);
}

static void test_codec_roundtrip_and_rejects(void **state)
{
	struct rt_entry e[3] = { { "b", 0 }, { "c.d", 5 }, { "z_9", RT_INFINITY } }, d[3];
	uint8_t buf[256];
	char origin[RT_ID_MAX + 1];
	long len, n;

	len = rt_advert_encode("node-1", e, 3, buf, sizeof(buf));
	assert_int_equal(len, 4 + 7 + 2 + 1 + 2 + 3 + 2 + 3);
	n = rt_advert_decode(buf, (size_t)len, origin, d, 3);
	assert_int_equal(n, 3);
	assert_string_equal(origin, "node-1");
	for (int i = 0; i < 3; i++) {
		assert_string_equal(d[i].dest, e[i].dest);
		assert_int_equal(d[i].metric, e[i].metric);
	}
	/* Every truncation is rejected, as is a trailing byte. */
	for (long l = 0; l < len; l++)
		assert_true(rt_advert_decode(buf, (size_t)l, origin, d, 3) < 0);
	buf[len] = 0;
	assert_int_equal(rt_advert_decode(buf, (size_t)len + 1, origin, d, 3), -EBADMSG);
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 2), -E2BIG);
	buf[0] = 2;
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 3), -EPROTONOSUPPORT);
	buf[0] = RT_WIRE_VERSION;
	buf[1] = 1;	/* unknown flag */
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 3), -EBADMSG);
	buf[1] = 0;
	buf[11] = RT_INFINITY + 1;	/* first entry's metric */
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 3), -EBADMSG);
	buf[11] = 0;
	buf[13] = ' ';	/* first entry's id gets a forbidden character */
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 3), -EBADMSG);
	buf[13] = '\0';	/* an embedded NUL: the id would decode shorter than its length */
	assert_int_equal(rt_advert_decode(buf, (size_t)len, origin, d, 3), -EBADMSG);
	/* Unsorted input is refused by the encoder too; a short buffer says so. */
	struct rt_entry u[2] = { { "c", 1 }, { "b", 1 } };
	assert_int_equal(rt_advert_encode("a", u, 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(rt_advert_encode("a", e, 3, buf, 10), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_converges),
		cmocka_unit_test(test_star_converges),
		cmocka_unit_test(test_ring_cut_reroutes),
		cmocka_unit_test(test_partition_unreachable),
		cmocka_unit_test(test_line_cut_counts_bounded),
		cmocka_unit_test(test_poisoned_reverse),
		cmocka_unit_test(test_timeout_expires_vector),
		cmocka_unit_test(test_lookup_avoid),
		cmocka_unit_test(test_recv_rejects),
		cmocka_unit_test(test_codec_roundtrip_and_rejects),
	};

	return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
