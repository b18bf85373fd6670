// SPDX-License-Identifier: GPL-2.0
/*
 * Key transfer + PPETP relay in kmsd (Documentation/key-routing.md, "Key transfer +
 * PPETP"): ppetp.c's state machine driven by the peer sessions, the routing table, the
 * store and a libevent timer.
 *
 *  - next hop: routing's table (rt_lookup_avoid), so retries go around failed hops;
 *  - hop link key: take_send takes the oldest verified block of our parity on that link
 *    (the caching leader owns the even ids, the follower the odd ones, as for key
 *    distribution) with at least len bytes and names it by id; take_recv takes exactly that
 *    block at the other end. Both move it verified -> consumed (bytes wiped) in one
 *    committed transaction before using it: once per hop, never twice, even across kill -9.
 *    A block longer than len is consumed whole (the rest is counted as wasted);
 *  - RELAY and NACK travel only between quantum-link neighbours; C1, ACK, CONFIRM, DONE and
 *    ABORT go over the direct session with the named node (a neighbour's, or a `remote`
 *    session). A message for a node without an up session is dropped: ppetp's timeouts
 *    abort and retry the attempt;
 *  - commit stores r1 in the store's transfer-key table (durable, take-once) before the
 *    source's kmsctl request is answered.
 * ppetp.c runs on CLOCK_MONOTONIC milliseconds (mono_ms) and is ticked every TICK_MS.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec.h"
#include "kdist.h"
#include "kmsd.h"
#include "log.h"
#include "nbkme.h"
#include "ppetp.h"

#define TICK_MS 200

struct xfer {
	struct kmsd *d;
	struct ppetp *pp;
	struct event *tick_ev;
	struct msg *msg;		/* scratch (large) */
	struct store_block *blk;	/* scratch (large), wiped after each use */
	uint64_t send_dropped;		/* messages for a node without an up session */
	uint64_t refused_remote;	/* RELAY/NACK from a session without a quantum link */
	uint64_t commit_errors;		/* committed r1 that could not be stored */
	uint64_t link_bytes_wasted;	/* rest of hop blocks longer than the transfer */
	uint64_t failed_noroute, failed_timeout, failed_other;
};

void xfer_fingerprint(const uint8_t *key, size_t len, uint8_t fp[STORE_FP_LEN])
{
	/* Not secret: a one-way digest of a random key, to compare both ends' copies. */
	static const char label[] = "qotp-xfer-fingerprint";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	memset(fp, 0, STORE_FP_LEN);
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(c, label, sizeof(label)) && EVP_DigestUpdate(c, key, len) &&
	    EVP_DigestFinal_ex(c, md, &n) && n >= STORE_FP_LEN)
		memcpy(fp, md, STORE_FP_LEN);
	EVP_MD_CTX_free(c);
	explicit_bzero(md, sizeof(md));
}

static struct link *quantum_link(struct kmsd *d, const char *id)
{
	struct link *l = kmsd_find_link(d, id);

	return l && l->quantum ? l : NULL;
}

static int my_parity(const struct link *l)
{
	return l->cache.leader ? 0 : 1;
}

static int op_next_hop(void *arg, const char *dst, const char *const *avoid, size_t n_avoid,
		       char nh[PPETP_ID_MAX + 1])
{
	struct xfer *x = arg;
	struct link *l;
	uint8_t metric;

	if (rt_lookup_avoid(x->d->rt, dst, avoid, n_avoid, nh, &metric))
		return -EHOSTUNREACH;
	l = quantum_link(x->d, nh);
	if (!l || !l->peer || !l->peer->hello_rx)
		return -EHOSTUNREACH;
	return 0;
}

static int op_take_send(void *arg, const char *nbr, size_t len, uint8_t *key,
			struct ppetp_keyref *ref)
{
	struct xfer *x = arg;
	struct link *l = quantum_link(x->d, nbr);
	int rc;

	if (!l)
		return -EHOSTUNREACH;
	rc = store_take_use(x->d->st, nbr, my_parity(l), len, x->blk);
	if (rc)
		return rc > 0 ? -ENOSPC : -EIO;
	memcpy(key, x->blk->key, len);
	x->link_bytes_wasted += x->blk->len - len;
	l->used_bytes += x->blk->len;
	ref->block = x->blk->id;
	ref->offset = 0;
	explicit_bzero(x->blk->key, x->blk->len);
	log_debug("link %s: hop key block %" PRIu64 " taken to send (%zu bytes)", nbr,
		  ref->block, len);
	return 0;
}

static int op_take_recv(void *arg, const char *nbr, const struct ppetp_keyref *ref, size_t len,
			uint8_t *key)
{
	struct xfer *x = arg;
	struct link *l = quantum_link(x->d, nbr);
	int rc;

	if (!l)
		return -EPERM;
	/* The sender uses its own half of the ids only: never a block we could take too. */
	if (ref->offset != 0 || (int)(ref->block & 1) == my_parity(l))
		return -EPERM;
	rc = store_take_use_id(x->d->st, nbr, ref->block, x->blk);
	if (rc) {
		log_warnx("link %s: hop key block %" PRIu64 " is not verified here", nbr,
			  ref->block);
		return rc > 0 ? -ENOKEY : -EIO;
	}
	if (x->blk->len < len) {
		explicit_bzero(x->blk->key, x->blk->len);
		return -EMSGSIZE;	/* consumed all the same: never offered again */
	}
	memcpy(key, x->blk->key, len);
	x->link_bytes_wasted += x->blk->len - len;
	l->used_bytes += x->blk->len;
	explicit_bzero(x->blk->key, x->blk->len);
	log_debug("link %s: hop key block %" PRIu64 " taken to receive (%zu bytes)", nbr,
		  ref->block, len);
	return 0;
}

static void op_send(void *arg, const char *to, const uint8_t *buf, size_t len)
{
	struct xfer *x = arg;
	struct link *l = kmsd_find_link(x->d, to);
	struct msg *m = x->msg;

	if (!l || !l->peer || !l->peer->hello_rx || len > sizeof(m->ppetp.data)) {
		x->send_dropped++;
		log_debug("ppetp: no session with %s, %s message dropped", to,
			  len > 1 && buf[1] < __PPETP_TYPE_LAST ? "a" : "an unknown");
		return;
	}
	m->type = MSG_PPETP;
	m->ppetp.len = (uint32_t)len;
	memcpy(m->ppetp.data, buf, len);
	peer_send(l->peer, m);
	explicit_bzero(m->ppetp.data, len);
}

static void op_commit(void *arg, const char *peer, const char *src, uint64_t txid,
		      uint64_t cookie, const uint8_t *key, size_t len)
{
	struct xfer *x = arg;
	uint8_t fp[STORE_FP_LEN];
	int rc;

	xfer_fingerprint(key, len, fp);
	rc = store_xfer_add(x->d->st, peer, src, txid, key, len, fp, now_ms());
	if (rc < 0) {
		x->commit_errors++;
		log_warnx("transfer %016" PRIx64 " with %s: cannot store the key: %s", txid, peer,
			  store_errmsg(x->d->st));
	} else if (rc == 1) {
		log_warnx("transfer %016" PRIx64 " with %s: already stored, ignored", txid, peer);
	} else {
		log_info("transfer %016" PRIx64 " %s %s: %zu bytes committed, fingerprint "
			 "%02x%02x%02x%02x%02x%02x%02x%02x", txid,
			 strcmp(src, x->d->cf.node_id) ? "from" : "to", peer, len, fp[0], fp[1],
			 fp[2], fp[3], fp[4], fp[5], fp[6], fp[7]);
	}
	if (cookie == KD_XFER_COOKIE)
		kd_xfer_done(x->d, peer, rc == 0);
	else if (cookie == NB_XFER_COOKIE)
		nb_xfer_done(x->d, peer, rc == 0);
	else if (cookie)
		ctl_xfer_done(x->d, cookie, rc < 0 ? -EIO : 0, peer, txid, len, fp);
}

const char *xfer_strerror(int err)
{
	return err == -ENOSPC ? "not enough verified link key on a hop of the path" : strerror(-err);
}

static void op_failed(void *arg, uint64_t cookie, const char *dst, int err)
{
	struct xfer *x = arg;

	if (err == -EHOSTUNREACH)
		x->failed_noroute++;
	else if (err == -ETIMEDOUT)
		x->failed_timeout++;
	else
		x->failed_other++;
	log_warnx("transfer to %s failed after every attempt: %s", dst, xfer_strerror(err));
	if (cookie == KD_XFER_COOKIE)
		kd_xfer_done(x->d, dst, 0);
	else if (cookie == NB_XFER_COOKIE)
		nb_xfer_done(x->d, dst, 0);
	else if (cookie)
		ctl_xfer_done(x->d, cookie, err, dst, 0, 0, NULL);
}

static void tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct xfer *x = arg;

	ppetp_tick(x->pp, mono_ms());
}

int xfer_init(struct kmsd *d)
{
	static const struct ppetp_config cfg = { 0 };	/* ppetp.h defaults */
	struct ppetp_ops ops = {
		.next_hop = op_next_hop, .take_send = op_take_send, .take_recv = op_take_recv,
		.send = op_send, .commit = op_commit, .failed = op_failed,
	};
	struct timeval tv = { 0, TICK_MS * 1000 };
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	d->xf = x;
	x->d = d;
	ops.arg = x;
	x->msg = malloc(sizeof(*x->msg));
	x->blk = malloc(sizeof(*x->blk));
	x->pp = ppetp_new(d->cf.node_id, &ops, &cfg);
	x->tick_ev = event_new(d->base, -1, EV_PERSIST, tick_cb, x);
	if (!x->msg || !x->blk || !x->pp || !x->tick_ev)
		return -1;
	return event_add(x->tick_ev, &tv);
}

void xfer_free(struct kmsd *d)
{
	struct xfer *x = d->xf;

	if (!x)
		return;
	if (x->tick_ev)
		event_free(x->tick_ev);
	ppetp_free(x->pp);		/* wipes every key it held */
	if (x->blk) {
		explicit_bzero(x->blk, sizeof(*x->blk));
		free(x->blk);
	}
	free(x->msg);
	free(x);
	d->xf = NULL;
}

int xfer_recv(struct link *l, const struct msg *m)
{
	struct xfer *x = l->d->xf;
	uint8_t type = m->ppetp.len > 1 ? m->ppetp.data[1] : 0;
	int rc;

	/* Hop messages name link key: only from the far end of a quantum link. */
	if (!l->quantum && (type == PPETP_RELAY || type == PPETP_NACK)) {
		x->refused_remote++;
		return -1;
	}
	rc = ppetp_recv(x->pp, l->nb.id, m->ppetp.data, m->ppetp.len, mono_ms());
	if (rc)
		log_debug("ppetp: message from %s refused: %s", l->nb.id, strerror(-rc));
	explicit_bzero((void *)m->ppetp.data, m->ppetp.len);
	return 0;
}

int xfer_start(struct kmsd *d, const char *dst, size_t len, uint64_t cookie)
{
	return ppetp_start(d->xf->pp, dst, len, cookie, mono_ms());
}

void xfer_ctl_status(struct kmsd *d, struct evbuffer *o, int json)
{
	struct xfer *x = d->xf;
	struct ppetp_stats s;
	size_t up = 0;
	double lat = 0, hop = 0;

	ppetp_get_stats(x->pp, &s);
	for (size_t i = 0; i < d->n_remotes; i++)
		up += d->remotes[i].peer && d->remotes[i].peer->hello_rx;
	if (s.completed)
		lat = (double)s.latency_ms_total / s.completed;
	if (s.hops_total)
		hop = (double)s.latency_ms_total / s.hops_total;
	if (json) {
		evbuffer_add_printf(o, ",\"store_groups\":%llu,\"store_group_ops\":%llu",
				    (unsigned long long)d->groups,
				    (unsigned long long)d->group_ops);
		evbuffer_add_printf(o, ",\"remotes\":%zu,\"remotes_up\":%zu,\"ppetp\":{"
			"\"started\":%llu,\"committed\":%llu,\"failed\":%llu,\"attempts_failed\":%llu,"
			"\"failed_noroute\":%llu,\"failed_timeout\":%llu,\"failed_other\":%llu,"
			"\"bytes_committed\":%llu,\"received\":%llu,\"relayed\":%llu,"
			"\"relayed_bytes\":%llu,\"link_bytes_taken\":%llu,\"link_bytes_wasted\":%llu,"
			"\"latency_ms_avg\":%.1f,\"latency_ms_per_hop\":%.1f,\"hops_total\":%llu,"
			"\"rejected\":%llu,\"refused_remote\":%llu,\"send_dropped\":%llu,"
			"\"commit_errors\":%llu,\"active\":%llu}",
			d->n_remotes, up,
			(unsigned long long)s.started, (unsigned long long)s.completed,
			(unsigned long long)s.failed, (unsigned long long)s.attempts_failed,
			(unsigned long long)x->failed_noroute, (unsigned long long)x->failed_timeout,
			(unsigned long long)x->failed_other,
			(unsigned long long)s.bytes_delivered, (unsigned long long)s.received,
			(unsigned long long)s.relayed, (unsigned long long)s.relayed_bytes,
			(unsigned long long)s.link_bytes_taken,
			(unsigned long long)x->link_bytes_wasted, lat, hop,
			(unsigned long long)s.hops_total, (unsigned long long)s.rejected,
			(unsigned long long)x->refused_remote, (unsigned long long)x->send_dropped,
			(unsigned long long)x->commit_errors, (unsigned long long)s.active);
		return;
	}
	evbuffer_add_printf(o, "store: %llu group commits of %llu operations\n",
			    (unsigned long long)d->groups, (unsigned long long)d->group_ops);
	evbuffer_add_printf(o, "remotes: %zu (%zu up)\n"
		"transfers: %llu started, %llu committed (%llu bytes), %llu failed "
		"(%llu attempts failed)\n"
		"  latency: %.1f ms per transfer, %.1f ms per hop\n"
		"  as destination: %llu received; as relay: %llu relayed, %llu bytes\n"
		"  hop link key: %llu bytes taken, %llu wasted; %llu messages refused, "
		"%llu dropped (no session)\n",
		d->n_remotes, up,
		(unsigned long long)s.started, (unsigned long long)s.completed,
		(unsigned long long)s.bytes_delivered, (unsigned long long)s.failed,
		(unsigned long long)s.attempts_failed, lat, hop,
		(unsigned long long)s.received, (unsigned long long)s.relayed,
		(unsigned long long)s.relayed_bytes, (unsigned long long)s.link_bytes_taken,
		(unsigned long long)x->link_bytes_wasted,
		(unsigned long long)(s.rejected + x->refused_remote),
		(unsigned long long)x->send_dropped);
}

struct list_ctx {
	struct evbuffer *o;
	int json, n;
};

static void list_row(void *arg, const struct store_xfer_info *r)
{
	struct list_ctx *c = arg;
	char fp[2 * STORE_FP_LEN + 1];

	for (int i = 0; i < STORE_FP_LEN; i++)
		snprintf(fp + 2 * i, 3, "%02x", r->fp[i]);
	if (c->json)
		evbuffer_add_printf(c->o, "%s{\"peer\":\"%s\",\"src\":\"%s\",\"txid\":\"%016" PRIx64
				    "\",\"state\":\"%s\",\"bytes\":%u,\"fingerprint\":\"%s\"}",
				    c->n ? "," : "", r->peer, r->src, r->txid,
				    block_state_name(r->state), r->len, fp);
	else
		evbuffer_add_printf(c->o, "%-20s %-20s %016" PRIx64 " %-10s %6u %s\n", r->peer,
				    r->src, r->txid, block_state_name(r->state), r->len, fp);
	c->n++;
}

/* `kmsctl transfers`: every transfer key (ids are node names: no JSON escaping needed). */
void xfer_ctl_transfers(struct kmsd *d, struct evbuffer *o, int json)
{
	struct list_ctx c = { o, json, 0 };

	if (json)
		evbuffer_add_printf(o, "{\"node\":\"%s\",\"keys\":[", d->cf.node_id);
	else
		evbuffer_add_printf(o, "%-20s %-20s %-16s %-10s %6s %s\n", "PEER", "SOURCE",
				    "TXID", "STATE", "BYTES", "FINGERPRINT");
	if (store_xfer_list(d->st, list_row, &c) < 0)
		log_warnx("listing transfer keys: %s", store_errmsg(d->st));
	if (json)
		evbuffer_add_printf(o, "]}\n");
}
