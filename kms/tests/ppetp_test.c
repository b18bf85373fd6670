// SPDX-License-Identifier: GPL-2.0
/*
 * PPETP tests. A simulated network: each node has a ppetp instance, a route table (the
 * real route.c, converged before the test) and, per quantum link, a mock link store in
 * which both ends hold the same pseudo-random key stream and every byte can be taken once
 * per end (a second take fails, as the real store's tombstones do). Messages go through a
 * queue that tests can drop, duplicate or inspect, always through the wire encoding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "distrib.h"
#include "ppetp.h"
#include "route.h"

#define MAXN 5
#define LINKKEY 4096	/* per link and direction */

struct node;

struct linkstore {		/* one end's view of one link */
	uint8_t key[2][LINKKEY];	/* [0]: stream the lower id sends on, [1]: the other */
	uint8_t taken[2][LINKKEY];
	size_t next_send;		/* next offset in our own sending stream */
	size_t bytes_taken;
	int fail_send;			/* simulate an exhausted link */
};

struct commit {
	char peer[16], src[16];
	uint64_t txid, cookie;
	uint8_t key[PPETP_MAX_LEN];
	size_t len;
};

struct node {
	int i;
	char name[8];
	struct ppetp *pp;
	struct rt *rt;
	struct linkstore ls[MAXN];	/* by neighbour index */
	struct commit commits[8];
	int n_commits;
	int n_failed;
	int last_err;
	int double_take;		/* take of an already consumed byte was attempted */
};

struct qmsg {
	int from, to;
	uint8_t *buf;
	size_t len;
};

static struct sim {
	int n;
	struct node node[MAXN];
	int edge[MAXN][MAXN];
	struct qmsg q[512];
	int qhead, qtail;
	uint64_t now;
	int seq;			/* messages sent so far */
	int drop_seq;			/* drop the message with this sequence number (-1: none) */
	int drop_type;			/* drop every message of this type (0: none) */
	int dup_all;			/* deliver every message twice */
	int dead;			/* node whose incoming messages vanish (-1: none) */
	int last_rc[512];		/* ppetp_recv result per delivery */
	int n_rc;
} S;

static int by_name(const char *name)
{
	for (int i = 0; i < S.n; i++)
		if (!strcmp(S.node[i].name, name))
			return i;
	return -1;
}

static int next_hop_cb(void *arg, const char *dst, const char *const *avoid, size_t n_avoid,
		       char *nh)
{
	struct node *nd = arg;
	uint8_t m;

	return rt_lookup_avoid(nd->rt, dst, avoid, n_avoid, nh, &m);
}

/* Stream s of link (a, b) is sent on by the lower index when s == 0. */
static int send_stream(int self, int peer)
{
	return self < peer ? 0 : 1;
}

static int take_send_cb(void *arg, const char *nbr, size_t len, uint8_t *key,
			struct ppetp_keyref *ref)
{
	struct node *nd = arg;
	int j = by_name(nbr);
	struct linkstore *ls;
	int s;

	if (j < 0 || !S.edge[nd->i][j])
		return -ENOENT;
	ls = &nd->ls[j];
	s = send_stream(nd->i, j);
	if (ls->fail_send || ls->next_send + len > LINKKEY)
		return -ENOSPC;
	for (size_t k = 0; k < len; k++) {
		if (ls->taken[s][ls->next_send + k])
			nd->double_take = 1;
		ls->taken[s][ls->next_send + k] = 1;
	}
	memcpy(key, ls->key[s] + ls->next_send, len);
	memset(ls->key[s] + ls->next_send, 0, len);	/* consumed: wiped at this end */
	ref->block = (uint64_t)s;
	ref->offset = (uint32_t)ls->next_send;
	ls->next_send += len;
	ls->bytes_taken += len;
	return 0;
}

static int take_recv_cb(void *arg, const char *nbr, const struct ppetp_keyref *ref, size_t len,
			uint8_t *key)
{
	struct node *nd = arg;
	int j = by_name(nbr);
	struct linkstore *ls;

	if (j < 0 || !S.edge[nd->i][j])
		return -ENOENT;
	ls = &nd->ls[j];
	/* The peer may only use the stream it sends on. */
	if (ref->block != (uint64_t)send_stream(j, nd->i) || ref->offset > LINKKEY ||
	    len > LINKKEY - ref->offset)
		return -EKEYREJECTED;
	for (size_t k = 0; k < len; k++)
		if (ls->taken[ref->block][ref->offset + k])
			return -EKEYREJECTED;
	for (size_t k = 0; k < len; k++)
		ls->taken[ref->block][ref->offset + k] = 1;
	memcpy(key, ls->key[ref->block] + ref->offset, len);
	memset(ls->key[ref->block] + ref->offset, 0, len);
	ls->bytes_taken += len;
	return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static int random_cb(void *arg, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		buf[i] = (uint8_t)rng_state;
	}
	return 0;
}

static void send_cb(void *arg, const char *to, const uint8_t *msg, size_t len)
{
	struct node *nd = arg;
	int seq = S.seq++;
	struct qmsg *q;

	if (seq == S.drop_seq || (S.drop_type && len > 1 && msg[1] == S.drop_type))
		return;
	assert_true(S.qtail < (int)(sizeof(S.q) / sizeof(S.q[0])));
	q = &S.q[S.qtail++];
	q->from = nd->i;
	q->to = by_name(to);
	assert_true(q->to >= 0);
	q->buf = malloc(len);
	assert_non_null(q->buf);
	memcpy(q->buf, msg, len);
	q->len = len;
}

static void commit_cb(void *arg, const char *peer, const char *src, uint64_t txid,
		      uint64_t cookie, const uint8_t *key, size_t len)
{
	struct node *nd = arg;
	struct commit *c;

	assert_true(nd->n_commits < 8);
	c = &nd->commits[nd->n_commits++];
	strcpy(c->peer, peer);
	strcpy(c->src, src);
	c->txid = txid;
	c->cookie = cookie;
	memcpy(c->key, key, len);
	c->len = len;
}

static void failed_cb(void *arg, uint64_t cookie, const char *dst, int err)
{
	struct node *nd = arg;

	nd->n_failed++;
	nd->last_err = err;
}

static void sim_init(int n, const int (*edges)[2], int n_edges, unsigned int max_attempts)
{
	struct ppetp_config cfg = { .max_attempts = max_attempts };

	memset(&S, 0, sizeof(S));
	S.n = n;
	S.now = 1000;
	S.drop_seq = -1;
	S.dead = -1;
	for (int i = 0; i < n; i++) {
		struct node *nd = &S.node[i];
		struct ppetp_ops ops = {
			.arg = nd, .next_hop = next_hop_cb, .take_send = take_send_cb,
			.take_recv = take_recv_cb, .random = random_cb, .send = send_cb,
			.commit = commit_cb, .failed = failed_cb,
		};

		nd->i = i;
		snprintf(nd->name, sizeof(nd->name), "n%c", 'A' + i);
		nd->rt = rt_new(nd->name, NULL);
		nd->pp = ppetp_new(nd->name, &ops, &cfg);
		assert_non_null(nd->rt);
		assert_non_null(nd->pp);
	}
	for (int e = 0; e < n_edges; e++) {
		int a = edges[e][0], b = edges[e][1];

		S.edge[a][b] = S.edge[b][a] = 1;
		/* Both ends of a link hold the same two streams (key caching verified them). */
		for (int s = 0; s < 2; s++)
			for (int k = 0; k < LINKKEY; k++)
				S.node[a].ls[b].key[s][k] = S.node[b].ls[a].key[s][k] =
					(uint8_t)(a * 31 + b * 17 + s * 101 + k * 7 + (k >> 8));
		assert_int_equal(rt_link_up(S.node[a].rt, S.node[b].name, 1, S.now), 0);
		assert_int_equal(rt_link_up(S.node[b].rt, S.node[a].name, 1, S.now), 0);
	}
	/* Converge routing by exchanging full vectors until nothing changes. */
	for (int round = 0; round < 20; round++) {
		for (int a = 0; a < n; a++) {
			for (int b = 0; b < n; b++) {
				struct rt_entry e[MAXN];
				int ne;

				if (!S.edge[a][b])
					continue;
				ne = rt_build_advert(S.node[a].rt, S.node[b].name, e, MAXN);
				assert_true(ne >= 0);
				rt_recv_advert(S.node[b].rt, S.node[a].name, e, (size_t)ne, S.now);
			}
		}
	}
}

static void sim_free(void)
{
	for (int i = S.n - 1; i >= 0; i--) {
		ppetp_free(S.node[i].pp);
		rt_free(S.node[i].rt);
		explicit_bzero(S.node[i].commits, sizeof(S.node[i].commits));
	}
	for (int i = S.qhead; i < S.qtail; i++)
		free(S.q[i].buf);
}

/* Delivers queued messages until the queue is empty. */
static void run(void)
{
	while (S.qhead < S.qtail) {
		struct qmsg *q = &S.q[S.qhead++];
		int times = S.dup_all ? 2 : 1;

		for (int t = 0; t < times; t++) {
			int rc = 0;

			if (q->to != S.dead)
				rc = ppetp_recv(S.node[q->to].pp, S.node[q->from].name, q->buf,
						q->len, S.now);
			if (S.n_rc < 512)
				S.last_rc[S.n_rc++] = rc;
		}
		S.now += 1;
		free(q->buf);
		q->buf = NULL;
	}
}

/* Runs, then advances time in 500 ms steps with ticks until nothing is pending. */
static void run_with_time(uint64_t total_ms)
{
	run();
	for (uint64_t t = 0; t < total_ms; t += 500) {
		S.now += 500;
		for (int i = 0; i < S.n; i++)
			ppetp_tick(S.node[i].pp, S.now);
		run();
	}
}

static uint64_t active(int i)
{
	struct ppetp_stats st;

	ppetp_get_stats(S.node[i].pp, &st);
	return st.active;
}

static const int line4[][2] = { { 0, 1 }, { 1, 2 }, { 2, 3 } };
static const int ring4[][2] = { { 0, 1 }, { 1, 2 }, { 2, 3 }, { 3, 0 } };

static void test_three_hop_relay(void **state)
{
	struct ppetp_stats st;
	const size_t len = 1000;

	sim_init(4, line4, 3, 3);
	assert_int_equal(ppetp_start(S.node[0].pp, "nD", len, 42, S.now), 0);
	run();
	/* r1 arrives identical at both ends, once each. */
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[3].n_commits, 1);
	assert_int_equal(S.node[0].commits[0].len, len);
	assert_int_equal(S.node[3].commits[0].len, len);
	assert_memory_equal(S.node[0].commits[0].key, S.node[3].commits[0].key, len);
	assert_string_equal(S.node[0].commits[0].peer, "nD");
	assert_string_equal(S.node[3].commits[0].peer, "nA");
	assert_int_equal(S.node[0].commits[0].txid, S.node[3].commits[0].txid);
	assert_int_equal(S.node[0].commits[0].cookie, 42);
	/* Relays never commit anything. */
	assert_int_equal(S.node[1].n_commits, 0);
	assert_int_equal(S.node[2].n_commits, 0);
	/* Every hop consumed exactly len bytes of its link, at both ends, once. */
	for (int e = 0; e < 3; e++) {
		int a = line4[e][0], b = line4[e][1];

		assert_int_equal(S.node[a].ls[b].bytes_taken, len);
		assert_int_equal(S.node[b].ls[a].bytes_taken, len);
	}
	for (int i = 0; i < 4; i++) {
		assert_false(S.node[i].double_take);
		assert_int_equal(active(i), 0);
	}
	/* r1 is not the raw link key of the first hop (c1 hides it). */
	assert_memory_not_equal(S.node[0].commits[0].key, S.node[1].ls[0].key[0], len);
	ppetp_get_stats(S.node[1].pp, &st);
	assert_int_equal(st.relayed, 1);
	assert_int_equal(st.relayed_bytes, len);
	ppetp_get_stats(S.node[0].pp, &st);
	assert_int_equal(st.completed, 1);
	assert_int_equal(st.hops_total, 3);
	assert_int_equal(st.bytes_delivered, len);
	sim_free();
}

static void test_direct_neighbour(void **state)
{
	sim_init(2, line4, 1, 1);
	assert_int_equal(ppetp_start(S.node[0].pp, "nB", 64, 1, S.now), 0);
	run();
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[1].n_commits, 1);
	assert_memory_equal(S.node[0].commits[0].key, S.node[1].commits[0].key, 64);
	sim_free();
}

/*
 * Drops the k-th message of a one-attempt transfer, for every k. Whatever is lost, no node
 * keeps key material after the timeouts, no link byte is taken twice, and if the source
 * committed then the destination committed the same key. Losing anything before the ACK
 * reached the source leaves nothing committed anywhere.
 */
static void test_abort_at_each_step(void **state)
{
	int total;

	sim_init(4, line4, 3, 1);
	assert_int_equal(ppetp_start(S.node[0].pp, "nD", 200, 7, S.now), 0);
	run_with_time(0);
	total = S.seq;		/* C1, RELAY x3, ACK, CONFIRM, DONE */
	assert_int_equal(total, 7);
	sim_free();

	for (int k = 0; k < total; k++) {
		int first_ack_seq;

		sim_init(4, line4, 3, 1);
		S.drop_seq = k;
		assert_int_equal(ppetp_start(S.node[0].pp, "nD", 200, 7, S.now), 0);
		run_with_time(60000);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(active(i), 0);
			assert_false(S.node[i].double_take);
			assert_true(S.node[i].n_commits <= 1);
		}
		if (S.node[0].n_commits) {
			assert_int_equal(S.node[3].n_commits, 1);
			assert_memory_equal(S.node[0].commits[0].key, S.node[3].commits[0].key,
					    200);
		} else {
			assert_int_equal(S.node[0].n_failed, 1);
		}
		first_ack_seq = 4;	/* messages 0..4 come before the source sees the ACK */
		if (k <= first_ack_seq) {
			for (int i = 0; i < 4; i++)
				assert_int_equal(S.node[i].n_commits, 0);
		}
		if (k == 5) {
			/* A lost CONFIRM is re-sent: both ends commit. */
			assert_int_equal(S.node[0].n_commits, 1);
		}
		if (k == 6) {
			/* A lost DONE: the re-sent CONFIRM gets it again, both commit once. */
			assert_int_equal(S.node[0].n_commits, 1);
		}
		sim_free();
	}

	/* Every DONE lost: the documented in-doubt case, reported to the source. */
	sim_init(4, line4, 3, 1);
	S.drop_type = PPETP_DONE;
	assert_int_equal(ppetp_start(S.node[0].pp, "nD", 200, 7, S.now), 0);
	run_with_time(60000);
	assert_int_equal(S.node[0].n_commits, 0);
	assert_int_equal(S.node[3].n_commits, 1);
	assert_int_equal(S.node[0].n_failed, 1);
	assert_int_equal(S.node[0].last_err, -ETIMEDOUT);
	for (int i = 0; i < 4; i++)
		assert_int_equal(active(i), 0);
	sim_free();
}

static void test_duplicates_rejected(void **state)
{
	int accepted = 0;

	sim_init(4, line4, 3, 1);
	S.dup_all = 1;
	assert_int_equal(ppetp_start(S.node[0].pp, "nD", 300, 9, S.now), 0);
	run();
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[3].n_commits, 1);
	assert_memory_equal(S.node[0].commits[0].key, S.node[3].commits[0].key, 300);
	/*
	 * Exactly the seven steps were accepted (C1, RELAY x3, ACK, CONFIRM, DONE); every
	 * copy, and the DONE re-sent for the duplicate CONFIRM, was refused as a duplicate.
	 */
	for (int i = 0; i < S.n_rc; i++) {
		if (S.last_rc[i] == 0)
			accepted++;
		else
			assert_int_equal(S.last_rc[i], -EALREADY);
	}
	assert_int_equal(accepted, 7);
	assert_int_equal(S.n_rc, 16);
	for (int e = 0; e < 3; e++) {
		int a = line4[e][0], b = line4[e][1];

		assert_int_equal(S.node[a].ls[b].bytes_taken, 300);
		assert_int_equal(S.node[b].ls[a].bytes_taken, 300);
	}
	for (int i = 0; i < 4; i++)
		assert_false(S.node[i].double_take);
	sim_free();
}

/* A RELAY recorded now, replayed after the node forgot the txid: the store refuses it. */
static void test_replay_after_forgetting(void **state)
{
	struct qmsg saved = { 0 };

	sim_init(3, line4, 2, 1);
	assert_int_equal(ppetp_start(S.node[0].pp, "nC", 100, 1, S.now), 0);
	for (int i = S.qhead; i < S.qtail; i++) {
		if (S.q[i].to == 1) {
			saved = S.q[i];
			saved.buf = malloc(S.q[i].len);
			memcpy(saved.buf, S.q[i].buf, S.q[i].len);
		}
	}
	assert_non_null(saved.buf);
	run();
	assert_int_equal(S.node[2].n_commits, 1);
	S.now += 10 * 60 * 1000;
	for (int i = 0; i < 3; i++)
		ppetp_tick(S.node[i].pp, S.now);
	assert_int_equal(ppetp_recv(S.node[1].pp, "nA", saved.buf, saved.len, S.now),
			 -EKEYREJECTED);
	assert_int_equal(S.node[1].ls[0].bytes_taken, 100);
	assert_int_equal(S.node[1].ls[2].bytes_taken, 100);
	free(saved.buf);
	sim_free();
}

static long mk(struct ppetp_msg *m, uint8_t *buf)
{
	long n = ppetp_encode(m, buf, PPETP_MSG_MAX);

	assert_true(n > 0);
	return n;
}

static void test_mismatch_and_unknown(void **state)
{
	static uint8_t buf[PPETP_MSG_MAX];
	uint8_t data[100] = { 1 };
	struct ppetp_msg m;
	long n;

	sim_init(3, line4, 2, 1);
	/* Unknown transactions. */
	memset(&m, 0, sizeof(m));
	m.type = PPETP_ACK;
	m.txid = 77;
	strcpy(m.src, "nA");
	strcpy(m.dst, "nC");
	m.len = 10;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[0].pp, "nC", buf, (size_t)n, S.now), -ENOENT);
	m.type = PPETP_DONE;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[0].pp, "nC", buf, (size_t)n, S.now), -ENOENT);
	m.type = PPETP_CONFIRM;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, (size_t)n, S.now), -ENOENT);
	/* A CONFIRM from somebody else than the source is refused. */
	assert_int_equal(ppetp_recv(S.node[2].pp, "nB", buf, (size_t)n, S.now), -EPERM);

	/* C1 of 100 bytes, then a RELAY claiming 50: mismatch, the transaction dies. */
	memset(&m, 0, sizeof(m));
	m.type = PPETP_C1;
	m.txid = 5;
	strcpy(m.src, "nA");
	strcpy(m.dst, "nC");
	m.len = 100;
	m.data = data;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nB", buf, (size_t)n, S.now), -EPERM);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, (size_t)n, S.now), 0);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, (size_t)n, S.now), -EALREADY);
	memset(&m, 0, sizeof(m));
	m.type = PPETP_RELAY;
	m.txid = 5;
	strcpy(m.src, "nA");
	strcpy(m.dst, "nC");
	m.ttl = 15;
	m.n_path = 2;
	strcpy(m.path[0], "nA");
	strcpy(m.path[1], "nB");
	m.ref.block = 0;	/* nB < nC sends on stream 0 */
	m.len = 50;
	m.data = data;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nB", buf, (size_t)n, S.now), -EMSGSIZE);
	assert_int_equal(active(2), 0);
	assert_int_equal(S.node[2].n_commits, 0);
	/* The refused RELAY's link key was destroyed at this end too, and only once. */
	assert_int_equal(S.node[2].ls[1].bytes_taken, 50);
	/* A RELAY whose path does not end with the sender, or contains us, is refused. */
	m.txid = 6;
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, (size_t)n, S.now), -EPERM);
	strcpy(m.path[1], "nC");
	n = mk(&m, buf);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nC", buf, (size_t)n, S.now), -EPERM);
	/* Garbage. */
	buf[0] = 9;
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, (size_t)n, S.now), -EPROTONOSUPPORT);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", buf, 0, S.now), -EBADMSG);
	sim_free();
}

/* Ring nA-nB-nC-nD: nB's link to nC is out of key; the retry goes through nD. */
static void test_retry_other_route(void **state)
{
	struct ppetp_stats st;

	sim_init(4, ring4, 4, 3);
	S.node[1].ls[2].fail_send = 1;
	assert_int_equal(ppetp_start(S.node[0].pp, "nC", 100, 3, S.now), 0);
	run();
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[2].n_commits, 1);
	assert_memory_equal(S.node[0].commits[0].key, S.node[2].commits[0].key, 100);
	ppetp_get_stats(S.node[3].pp, &st);
	assert_int_equal(st.relayed, 1);
	ppetp_get_stats(S.node[1].pp, &st);
	assert_int_equal(st.relayed, 0);
	ppetp_get_stats(S.node[0].pp, &st);
	assert_int_equal(st.attempts_failed, 1);
	/* The failed attempt took link key A-B once (at both ends) and never again. */
	assert_int_equal(S.node[0].ls[1].bytes_taken, 100);
	assert_int_equal(S.node[1].ls[0].bytes_taken, 100);
	assert_int_equal(S.node[1].ls[2].bytes_taken, 0);
	for (int i = 0; i < 4; i++) {
		assert_false(S.node[i].double_take);
		assert_int_equal(active(i), 0);
	}
	sim_free();
}

/* nB is dead (its messages vanish): the attempt times out and the retry goes via nD. */
static void test_timeout_then_retry(void **state)
{
	sim_init(4, ring4, 4, 3);
	S.dead = 1;
	assert_int_equal(ppetp_start(S.node[0].pp, "nC", 100, 3, S.now), 0);
	run_with_time(20000);
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[2].n_commits, 1);
	assert_memory_equal(S.node[0].commits[0].key, S.node[2].commits[0].key, 100);
	for (int i = 0; i < 4; i++)
		assert_int_equal(active(i), 0);
	sim_free();
}

/*
 * The destination's kmsd restarts after C1 arrived and before the RELAY: the new instance
 * never gets c1, wipes the lone half on its timer, and the source's retry succeeds.
 */
static void test_destination_restart(void **state)
{
	struct ppetp_ops ops = {
		.arg = &S.node[2], .next_hop = next_hop_cb, .take_send = take_send_cb,
		.take_recv = take_recv_cb, .random = random_cb, .send = send_cb,
		.commit = commit_cb, .failed = failed_cb,
	};
	struct ppetp_config cfg = { .max_attempts = 3 };

	sim_init(3, line4, 2, 3);
	assert_int_equal(ppetp_start(S.node[0].pp, "nC", 100, 3, S.now), 0);
	/* Deliver only C1 (sent first, straight to nC). */
	assert_int_equal(S.q[S.qhead].to, 2);
	assert_int_equal(ppetp_recv(S.node[2].pp, "nA", S.q[S.qhead].buf, S.q[S.qhead].len,
				    S.now), 0);
	free(S.q[S.qhead].buf);
	S.qhead++;
	ppetp_free(S.node[2].pp);
	S.node[2].pp = ppetp_new("nC", &ops, &cfg);
	assert_non_null(S.node[2].pp);
	run_with_time(40000);
	assert_int_equal(S.node[0].n_commits, 1);
	assert_int_equal(S.node[2].n_commits, 1);
	assert_memory_equal(S.node[0].commits[0].key, S.node[2].commits[0].key, 100);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(active(i), 0);
		assert_false(S.node[i].double_take);
	}
	sim_free();
}

/*
 * The whole chain in one process: star nA (centre) with leaves nB and nC, which share no
 * link. nB's encrypt ring for nC needs key: distribution asks, PPETP relays through nA,
 * and each committed r1 becomes one block offered by its source. Both "kernel rings"
 * end up with the same bytes under the same ids, and nA's relay counters moved.
 */
struct ring {
	uint64_t id[16];
	uint8_t key[16][256];
	int n;
};

static void test_chain_distribution_over_ppetp(void **state)
{
	static const int star[][2] = { { 0, 1 }, { 0, 2 } };
	const struct dist_config dc = {
		.low_watermark = 512, .target = 1024, .block_len = 256, .max_inflight = 4,
		.offer_timeout_ms = 5000,
	};
	struct dist_pair *xb, *yc;
	struct ring enc = { 0 }, dec = { 0 };
	struct ppetp_stats st;
	int rounds = 0;

	sim_init(3, star, 2, 3);
	xb = dist_pair_new("nB", "nC", &dc, NULL, 0, 0);
	yc = dist_pair_new("nC", "nB", &dc, NULL, 0, 0);
	assert_non_null(xb);
	assert_non_null(yc);
	while (dist_need(xb) > 0 && rounds++ < 10) {
		int before = S.node[1].n_commits;
		uint64_t need = dist_need(xb);

		dist_reserve(xb, (int64_t)need);
		for (uint64_t got = 0; got < need; got += dc.block_len)
			assert_int_equal(ppetp_start(S.node[1].pp, "nC", dc.block_len, got, S.now),
					 0);
		run();
		dist_reserve(xb, -(int64_t)need);
		/* Every transfer nB committed is offered; nC finds its copy by (nB, txid). */
		for (int i = before; i < S.node[1].n_commits; i++) {
			const struct commit *cb = &S.node[1].commits[i];
			const struct commit *cc = NULL;
			struct dist_msg o = { .type = DIST_OFFER, .n = 1 };
			uint8_t wbuf[DIST_MSG_MAX];
			uint32_t len;
			uint64_t id;
			long n;

			assert_int_equal(dist_assign(xb, (uint32_t)cb->len, S.now, &id), 0);
			strcpy(o.enc, "nB");
			strcpy(o.dec, "nC");
			o.e[0].id = id;		/* a batch of one */
			o.e[0].len = (uint32_t)cb->len;
			o.e[0].source = DIST_SRC_PPETP;
			o.e[0].ref = cb->txid;
			n = dist_encode(&o, wbuf, sizeof(wbuf));
			assert_true(n > 0);
			assert_int_equal(dist_decode(wbuf, (size_t)n, &o), 0);
			/* nC: offered by the transfer's source, so nC must hold it. */
			for (int j = 0; j < S.node[2].n_commits; j++)
				if (S.node[2].commits[j].txid == o.e[0].ref &&
				    !strcmp(S.node[2].commits[j].src, "nB"))
					cc = &S.node[2].commits[j];
			assert_non_null(cc);
			assert_int_equal(dist_check_offer(yc, o.e[0].id, o.e[0].len), 0);
			assert_int_equal(dist_in_accepted(yc, o.e[0].id), 0);
			dec.id[dec.n] = o.e[0].id;
			memcpy(dec.key[dec.n++], cc->key, o.e[0].len);
			assert_int_equal(dist_pushed(yc, DIST_IN, o.e[0].id, o.e[0].len), 0);
			/* ACCEPT back at nB: push the encrypt ring. */
			assert_int_equal(dist_offer_accepted(xb, o.e[0].id, &len), 0);
			enc.id[enc.n] = o.e[0].id;
			memcpy(enc.key[enc.n++], cb->key, len);
			assert_int_equal(dist_pushed(xb, DIST_OUT, o.e[0].id, len), 0);
		}
		/* The commit log is small: start over for the next round. */
		S.node[1].n_commits = 0;
		S.node[2].n_commits = 0;
	}
	assert_int_equal(dist_need(xb), 0);
	assert_int_equal(enc.n, 4);
	assert_int_equal(dec.n, enc.n);
	for (int i = 0; i < enc.n; i++) {
		assert_int_equal(enc.id[i], (uint64_t)i + 1);
		assert_int_equal(dec.id[i], enc.id[i]);
		assert_memory_equal(enc.key[i], dec.key[i], dc.block_len);
	}
	ppetp_get_stats(S.node[0].pp, &st);
	assert_int_equal(st.relayed, 4);
	assert_int_equal(st.relayed_bytes, 4 * dc.block_len);
	dist_pair_free(xb);
	dist_pair_free(yc);
	explicit_bzero(&enc, sizeof(enc));
	explicit_bzero(&dec, sizeof(dec));
	sim_free();
}

/* A partitioned destination: start fails at once, nothing is taken. */
static void test_unreachable(void **state)
{
	sim_init(4, line4, 2, 3);	/* nD has no link */
	assert_int_equal(ppetp_start(S.node[0].pp, "nD", 100, 3, S.now), -EHOSTUNREACH);
	assert_int_equal(ppetp_start(S.node[0].pp, "nA", 100, 3, S.now), -EINVAL);
	assert_int_equal(ppetp_start(S.node[0].pp, "nB", 0, 3, S.now), -EINVAL);
	assert_int_equal(ppetp_start(S.node[0].pp, "nB", PPETP_MAX_LEN + 1, 3, S.now), -EINVAL);
	assert_int_equal(S.node[0].ls[1].bytes_taken, 0);
	sim_free();
}

/* All attempts fail: failed() once, nothing committed, nothing held. */
static void test_all_attempts_fail(void **state)
{
	sim_init(3, line4, 2, 3);
	S.node[1].ls[2].fail_send = 1;
	assert_int_equal(ppetp_start(S.node[0].pp, "nC", 100, 3, S.now), 0);
	run_with_time(20000);
	assert_int_equal(S.node[0].n_failed, 1);
	assert_int_equal(S.node[0].last_err, -ENOSPC);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(S.node[i].n_commits, 0);
		assert_int_equal(active(i), 0);
		assert_false(S.node[i].double_take);
	}
	/* Three attempts, each took 100 fresh bytes of A-B. */
	assert_int_equal(S.node[0].ls[1].bytes_taken, 300);
	sim_free();
}

static void test_codec(void **state)
{
	static uint8_t buf[PPETP_MSG_MAX];
	uint8_t data[32];
	struct ppetp_msg m, d;
	long n;

	for (int i = 0; i < 32; i++)
		data[i] = (uint8_t)i;
	memset(&m, 0, sizeof(m));
	m.type = PPETP_RELAY;
	m.txid = 0x0102030405060708ULL;
	strcpy(m.src, "a");
	strcpy(m.dst, "b.c");
	m.ttl = 3;
	m.n_path = 2;
	strcpy(m.path[0], "a");
	strcpy(m.path[1], "x-1");
	m.ref.block = 99;
	m.ref.offset = 12;
	m.len = 32;
	m.data = data;
	n = ppetp_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, 12 + 2 + 4 + 2 + 2 + 4 + 8 + 4 + 2 + 32);
	assert_int_equal(ppetp_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.txid, m.txid);
	assert_string_equal(d.path[1], "x-1");
	assert_int_equal(d.ref.block, 99);
	assert_int_equal(d.ref.offset, 12);
	assert_memory_equal(d.data, data, 32);
	for (long l = 0; l < n; l++)
		assert_int_not_equal(ppetp_decode(buf, (size_t)l, &d), 0);
	assert_int_equal(ppetp_decode(buf, (size_t)n + 1, &d), -EBADMSG);
	buf[16] = '\0';	/* dst "b.c" -> "b\0c": shorter than its length byte */
	assert_int_equal(ppetp_decode(buf, (size_t)n, &d), -EBADMSG);
	buf[16] = '.';
	buf[3] = 2;	/* unknown flag */
	assert_int_equal(ppetp_decode(buf, (size_t)n, &d), -EBADMSG);
	m.flags = PPETP_F_ORIGIN;
	m.data = NULL;
	n = ppetp_encode(&m, buf, sizeof(buf));
	assert_int_equal(ppetp_decode(buf, (size_t)n, &d), 0);
	assert_null(d.data);
	assert_int_equal(ppetp_encode(&m, buf, 10), -ENOSPC);
	strcpy(m.src, "bad id");
	assert_int_equal(ppetp_encode(&m, buf, sizeof(buf)), -EINVAL);

	memset(&m, 0, sizeof(m));
	m.type = PPETP_NACK;
	strcpy(m.src, "a");
	strcpy(m.dst, "b");
	m.reason = PPETP_R_NOROUTE;
	strcpy(m.reporter, "r");
	n = ppetp_encode(&m, buf, sizeof(buf));
	assert_int_equal(ppetp_decode(buf, (size_t)n, &d), 0);
	assert_string_equal(d.reporter, "r");
	assert_string_equal(ppetp_reason_name(d.reason), "no route");
	m.type = PPETP_CONFIRM;
	m.flags = PPETP_F_ORIGIN;	/* only RELAY has flags */
	assert_int_equal(ppetp_encode(&m, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_hop_relay),
		cmocka_unit_test(test_direct_neighbour),
		cmocka_unit_test(test_abort_at_each_step),
		cmocka_unit_test(test_duplicates_rejected),
		cmocka_unit_test(test_replay_after_forgetting),
		cmocka_unit_test(test_mismatch_and_unknown),
		cmocka_unit_test(test_retry_other_route),
		cmocka_unit_test(test_timeout_then_retry),
		cmocka_unit_test(test_destination_restart),
		cmocka_unit_test(test_chain_distribution_over_ppetp),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_all_attempts_fail),
		cmocka_unit_test(test_codec),
	};

	return cmocka_run_group_tests_name("ppetp", tests, NULL, NULL);
}
