// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the key routing, PPETP and distribution decoders, and for the PPETP
 * state machine fed with sequences of arbitrary messages.
 *
 * Input: a sequence of records  u8 selector | u16 length (big endian) | bytes.
 *   selector % 4 == 0: route advertisement: decode, re-encode (must be identical), and
 *                      feed to an rt instance as from neighbour "nb"
 *   selector % 4 == 1: PPETP message: decode, re-encode (identical), then ppetp_recv() on
 *                      one instance, "from" taken from the selector's high bits
 *   selector % 4 == 2: distribution message: decode, re-encode (identical)
 *   selector % 4 == 3: ppetp_tick() with the time advanced by the length field
 * Every accepted message must round-trip byte for byte; anything else is a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distrib.h"
#include "ppetp.h"
#include "route.h"

static const char *const names[] = { "me", "nb", "far", "src" };

static int next_hop(void *arg, const char *dst, const char *const *avoid, size_t n_avoid,
		    char *nh)
{
	for (size_t i = 0; i < n_avoid; i++)
		if (!strcmp(avoid[i], "nb"))
			return -113;
	strcpy(nh, "nb");
	return 0;
}

static int take_send(void *arg, const char *nbr, size_t len, uint8_t *key,
		     struct ppetp_keyref *ref)
{
	if (len > PPETP_MAX_LEN)
		__builtin_trap();
	memset(key, 0xa5, len);
	ref->block = 1;
	ref->offset = 0;
	return 0;
}

static int take_recv(void *arg, const char *nbr, const struct ppetp_keyref *ref, size_t len,
		     uint8_t *key)
{
	if (len > PPETP_MAX_LEN)
		__builtin_trap();
	if (ref->block & 1)
		return -129;
	memset(key, 0x5a, len);
	return 0;
}

static int rnd(void *arg, uint8_t *buf, size_t len)
{
	memset(buf, 7, len);
	buf[0] = (uint8_t)(*(unsigned int *)arg)++;
	return 0;
}

static void snd(void *arg, const char *to, const uint8_t *msg, size_t len)
{
	struct ppetp_msg m;

	/* Everything the state machine sends must be well formed. */
	if (ppetp_decode(msg, len, &m))
		__builtin_trap();
}

static void commit(void *arg, const char *peer, const char *src, uint64_t txid,
		   uint64_t cookie, const uint8_t *key, size_t len)
{
	if (len == 0 || len > PPETP_MAX_LEN)
		__builtin_trap();
}

static void failed(void *arg, uint64_t cookie, const char *dst, int err)
{
}

static uint8_t enc[PPETP_MSG_MAX];

static void one_route(const uint8_t *p, size_t n, struct rt *rt, uint64_t now)
{
	static struct rt_entry e[RT_MAX_NODES];
	char origin[RT_ID_MAX + 1];
	static uint8_t out[RT_ADVERT_MAX_LEN];
	long k = rt_advert_decode(p, n, origin, e, RT_MAX_NODES);
	long m;

	if (k < 0)
		return;
	m = rt_advert_encode(origin, e, (size_t)k, out, sizeof(out));
	if (m != (long)n || memcmp(out, p, n))
		__builtin_trap();
	rt_recv_advert(rt, "nb", e, (size_t)k, now);
	if (rt_build_advert(rt, "nb", e, RT_MAX_NODES) < 0)
		__builtin_trap();
}

static void one_ppetp(const uint8_t *p, size_t n, struct ppetp *pp, uint8_t sel,
		      uint64_t now)
{
	struct ppetp_msg m;
	long k;

	if (ppetp_decode(p, n, &m) == 0) {
		k = ppetp_encode(&m, enc, sizeof(enc));
		if (k != (long)n || memcmp(enc, p, n))
			__builtin_trap();
	}
	ppetp_recv(pp, names[(sel >> 2) & 3], p, n, now);
}

static void one_dist(const uint8_t *p, size_t n)
{
	struct dist_msg m;
	uint8_t out[DIST_MSG_MAX];
	long k;

	if (dist_decode(p, n, &m))
		return;
	k = dist_encode(&m, out, sizeof(out));
	if (k != (long)n || memcmp(out, p, n))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ppetp_config cfg = { .max_tx = 8, .max_attempts = 2 };
	unsigned int seed = 0;
	struct ppetp_ops ops = {
		.arg = &seed, .next_hop = next_hop, .take_send = take_send,
		.take_recv = take_recv, .random = rnd, .send = snd, .commit = commit,
		.failed = failed,
	};
	struct ppetp *pp = ppetp_new("me", &ops, &cfg);
	struct rt *rt = rt_new("me", NULL);
	uint64_t now = 1000;
	size_t off = 0;

	if (!pp || !rt)
		abort();
	rt_link_up(rt, "nb", 1, now);
	/* One transfer of our own in flight, so ACK/DONE/NACK paths are reachable. */
	ppetp_start(pp, "far", 16, 1, now);
	while (size - off >= 3) {
		uint8_t sel = data[off];
		size_t n = (size_t)data[off + 1] << 8 | data[off + 2];

		off += 3;
		if (n > size - off)
			n = size - off;
		switch (sel & 3) {
		case 0:
			one_route(data + off, n, rt, now);
			break;
		case 1:
			one_ppetp(data + off, n, pp, sel, now);
			break;
		case 2:
			one_dist(data + off, n);
			break;
		case 3:
			now += n;
			ppetp_tick(pp, now);
			rt_tick(rt, now);
			n = 0;
			break;
		}
		off += n;
	}
	ppetp_free(pp);
	rt_free(rt);
	return 0;
}
