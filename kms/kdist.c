// SPDX-License-Identifier: GPL-2.0
/*
 * Key distribution (Documentation/kms.md, "Key distribution"): distrib.c's logic driven by
 * the peer channel (MSG_DIST), the store and the qotp kernel interface (kernel_keys.c).
 *
 * A `remote ... qotp-peer N` pair (no quantum link) works the same way with PPETP transfer
 * keys instead of link blocks: the encryptor offers only transfer keys it was the source
 * of (the two-generals rule of ppetp.h: the destination of a transfer whose DONE was lost
 * holds a key the source dropped, and that key is never offered), naming them by txid
 * (source PPETP); the decryptor takes the key (peer, src = peer, txid). With none in stock
 * the encryptor starts transfers (xfer_start, at most KD_MAX_XFER at a time, counted by
 * dist_reserve) and refills when they commit (kd_xfer_done). Below, "link block" means
 * the transfer key for such pairs.
 *
 * Quantum-link pairs:
 *
 * For a neighbour with `qotp-peer N`, verified link blocks feed the rings of local qotp
 * peer N: our encrypt ring (we are its encryptor: we assign its ids and OFFER each block,
 * naming the link block by id) and our decrypt ring (the neighbour's offers). The two ends
 * of a link never pick the same link block: the caching leader distributes the even link
 * block ids, the follower the odd ones. An encryptor takes its block from the store
 * (delivered, committed) before the offer; the decryptor takes the named block by id,
 * persists the accepted ring id, pushes it into its decrypt ring and only then ACCEPTs;
 * the encryptor then pushes the same bytes under the same id into its encrypt ring. Ring
 * ids are persisted (dist_persist, fsync + rename) before they leave the process. A block
 * whose offer fails is burnt (consumed) at both ends, never reused. RELEASED -> the link
 * block is consumed (its bytes wiped in the store).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/qotp.h>

#include "codec.h"
#include "distrib.h"
#include "kdist.h"
#include "kernel_keys.h"
#include "kmsd.h"
#include "log.h"

#define KD_MAX_INFLIGHT 8
#define KD_MAX_XFER 4			/* PPETP transfers under way per remote pair */
#define KD_OFFER_TIMEOUT_MS 5000
#define KD_RETRY_S 2

struct kd_pending {			/* an offer of ours awaiting ACCEPT */
	uint64_t ring_id, link_id;
	uint32_t len;
	uint8_t *key;
};

struct kd_link {
	struct link *l;
	struct dist_pair *dp;
	struct dist_persist ps;
	char state_path[KMS_PATH_MAX + KMS_ID_MAX + 16];
	struct kd_pending pend[KD_MAX_INFLIGHT];
	uint64_t delivered_bytes[2], delivered_blocks[2];	/* pushed into the kernel */
	uint64_t consumed, burnt, push_errors;
	/* remote pairs: PPETP transfers this pair started to get key material */
	uint64_t xfer_inflight, xfer_reserved, xfer_started, xfer_failed;
	char last_error[128];
};

struct kd {
	struct kmsd *d;
	struct kk *kk;
	struct event *kk_ev, *retry_ev;
	int kk_state;			/* 0 ok, else the errno of the last open */
	int logged_absent;
	struct store_block *blk;	/* scratch (large) */
	struct msg *msg;		/* scratch (large) */
};

static struct kd_link *kd_of(struct link *l)
{
	return l->kd;
}

/* Every session-holding node: neighbours first, then remotes. */
static size_t kd_count(const struct kmsd *d)
{
	return d->n_links + d->n_remotes;
}

static struct link *kd_at(struct kmsd *d, size_t i)
{
	return i < d->n_links ? &d->links[i] : &d->remotes[i - d->n_links];
}

static void set_err(struct kd_link *k, const char *what, int err)
{
	snprintf(k->last_error, sizeof(k->last_error), "%s: %s", what, strerror(err));
}

/* Atomically writes the persisted ids: tmp file, fsync, rename, fsync of the directory. */
static int persist(struct kd_link *k)
{
	char tmp[sizeof(k->state_path) + 8], dir[sizeof(k->state_path)], *slash;
	FILE *f;
	int fd, rc = -1;

	dist_persist(k->dp, &k->ps);
	snprintf(tmp, sizeof(tmp), "%s.tmp", k->state_path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	if (fprintf(f, "%" PRIu64 " %" PRIu64 "\n", k->ps.out_next_id, k->ps.in_last_id) > 0 &&
	    fflush(f) == 0 && fsync(fileno(f)) == 0)
		rc = 0;
	if (fclose(f) || rc || rename(tmp, k->state_path))
		return -1;
	snprintf(dir, sizeof(dir), "%s", k->state_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	return rc;
}

static void load_persist(struct kd_link *k)
{
	FILE *f = fopen(k->state_path, "r");
	unsigned long long a = 0, b = 0;

	memset(&k->ps, 0, sizeof(k->ps));
	if (!f)
		return;
	if (fscanf(f, "%llu %llu", &a, &b) == 2) {
		k->ps.out_next_id = a;
		k->ps.in_last_id = b;
	}
	fclose(f);
}

/*
 * The store side of a block that is done with (dir: the ring it was for). Quantum pairs:
 * the link block. Remote pairs: the transfer key, whose source is the encryptor (us for
 * our encrypt ring, the peer for our decrypt ring). 0 consumed, else not.
 */
static int store_done(struct kd_link *k, int dir, uint64_t ref)
{
	struct kmsd *d = k->l->d;
	int rc;

	if (k->l->quantum)
		rc = store_consume(d->st, k->l->nb.id, ref);
	else
		rc = store_xfer_consume(d->st, k->l->nb.id,
					dir == DIST_OUT ? d->cf.node_id : k->l->nb.id, ref);
	if (rc < 0)
		log_warnx("%s %s: cannot consume %s %" PRIu64 ": %s",
			  k->l->quantum ? "link" : "remote", k->l->nb.id,
			  k->l->quantum ? "block" : "transfer key", ref, store_errmsg(d->st));
	return rc;
}

static void burn(struct kd_link *k, int dir, uint64_t ref)
{
	store_done(k, dir, ref);
	k->burnt++;
}

static void pend_free(struct kd_pending *p)
{
	if (p->key) {
		explicit_bzero(p->key, p->len);
		free(p->key);
	}
	memset(p, 0, sizeof(*p));
}

static struct kd_pending *pend_find(struct kd_link *k, uint64_t ring_id)
{
	for (int i = 0; i < KD_MAX_INFLIGHT; i++)
		if (k->pend[i].key && k->pend[i].ring_id == ring_id)
			return &k->pend[i];
	return NULL;
}

/* The pushed-block map lives in the store, so RELEASED still finds it after a restart. */
static void map_add(struct kd_link *k, int dir, uint64_t ring_id, uint64_t link_id)
{
	struct kmsd *d = k->l->d;

	if (store_dist_map_add(d->st, k->l->nb.id, dir, ring_id, link_id) < 0)
		log_warnx("%s: cannot record pushed block %" PRIu64 ": %s; its store row stays "
			  "delivered", k->l->nb.id, ring_id, store_errmsg(d->st));
}

static int map_take(struct kd_link *k, int dir, uint64_t ring_id, uint64_t *link_id)
{
	return store_dist_map_take(k->l->d->st, k->l->nb.id, dir, ring_id, link_id) == 0 ? 0 : -1;
}

/* A block that will never be (or no longer is) in the kernel: unmap it, burn its key. */
static void forget(struct kd_link *k, int dir, uint64_t ring_id, uint64_t ref)
{
	uint64_t x;

	map_take(k, dir, ring_id, &x);
	burn(k, dir, ref);
}

struct drain_ctx {
	struct kd_link *k;
	int dir;
};

static void drain_one(void *arg, uint64_t ring_id, uint64_t ref)
{
	struct drain_ctx *c = arg;

	burn(c->k, c->dir, ref);
}

/*
 * Blocks the kernel cannot hold (ring lost; or, at pair start, ids above its ring's last
 * id: offered or taken but never pushed before a crash) that dist does not track: burn
 * their store keys. Every block is mapped from the moment its key is taken for a ring id
 * (before the OFFER leaves / before the decrypt push), so none is forgotten.
 */
static void map_drain(struct kd_link *k, int dir, uint64_t above_id)
{
	struct drain_ctx c = { k, dir };
	int n = store_dist_map_drain(k->l->d->st, k->l->nb.id, dir, above_id, drain_one, &c);

	if (n > 0)
		log_info("%s: %d pushed %s blocks the kernel no longer holds burnt", k->l->nb.id,
			 n, dir == DIST_OUT ? "encrypt" : "decrypt");
}

static int send_dist(struct kd_link *k, uint8_t type, uint64_t id, int we_encrypt)
{
	struct kd *kd = k->l->d->kd;
	struct msg *m = kd->msg;

	memset(m, 0, sizeof(*m));
	m->type = MSG_DIST;
	m->dist.type = type;
	snprintf(m->dist.enc, sizeof(m->dist.enc), "%s",
		 we_encrypt ? k->l->d->cf.node_id : k->l->nb.id);
	snprintf(m->dist.dec, sizeof(m->dist.dec), "%s",
		 we_encrypt ? k->l->nb.id : k->l->d->cf.node_id);
	m->dist.id = id;
	return k->l->peer ? peer_send(k->l->peer, m) : -1;
}

static int my_parity(const struct kd_link *k)
{
	return k->l->cache.leader ? 0 : 1;
}

/*
 * Remote pair, no transfer key of ours in stock: start PPETP transfers to the peer for
 * what the ring still needs (dist_reserve counts them as coming). kd_xfer_done follows.
 */
/* Bytes of every transfer kdist starts (ppetp-block is not reloaded: this stays fixed). */
static uint32_t xfer_len(const struct kmsd *d)
{
	return d->cf.ppetp_block < d->cf.dist_block ? d->cf.ppetp_block : d->cf.dist_block;
}

static void request_xfers(struct kd_link *k)
{
	struct kmsd *d = k->l->d;
	uint32_t len = xfer_len(d);
	int rc;

	while (k->dp && k->xfer_inflight < KD_MAX_XFER && dist_need(k->dp) > 0) {
		rc = xfer_start(d, k->l->nb.id, len, KD_XFER_COOKIE);
		if (rc) {
			set_err(k, "cannot start a key transfer", -rc);
			return;
		}
		k->xfer_inflight++;
		k->xfer_started++;
		k->xfer_reserved += len;
		dist_reserve(k->dp, len);
	}
}

/* Takes key material for one offer: a link block of our parity, or a transfer key we sourced. */
static int take_material(struct kd_link *k, struct store_block *b)
{
	struct kmsd *d = k->l->d;
	size_t n = 0;

	if (k->l->quantum)
		return store_take_parity(d->st, k->l->nb.id, my_parity(k), 1, b, 1, &n) < 0 || n == 0;
	/* Only keys we were the source of: the destination of a lost DONE never offers. */
	return store_xfer_take(d->st, k->l->nb.id, d->cf.node_id, 0, b) != 0;
}

/* Encryptor: offers key blocks until distrib says the ring will be full enough. */
static void refill(struct kd_link *k)
{
	struct kmsd *d = k->l->d;
	struct store_block *b = d->kd->blk;
	struct msg *m = d->kd->msg;
	uint64_t id;

	while (k->dp && k->l->peer && k->l->peer->hello_rx && d->kd->kk && dist_need(k->dp) > 0) {
		struct kd_pending *p = NULL;		/* a free slot has key == NULL */
		uint32_t len;

		for (int i = 0; !p && i < KD_MAX_INFLIGHT; i++)
			if (!k->pend[i].key)
				p = &k->pend[i];
		if (!p)
			return;
		if (take_material(k, b)) {
			/* links: the next caching round calls us; remotes: transfer some */
			if (!k->l->quantum)
				request_xfers(k);
			return;
		}
		len = b->len < d->cf.dist_block ? b->len : d->cf.dist_block;
		if (dist_assign(k->dp, len, (uint64_t)mono_ms(), &id) || persist(k)) {
			set_err(k, "cannot assign or persist a ring id", errno ? errno : EIO);
			explicit_bzero(b->key, b->len);
			burn(k, DIST_OUT, b->id);
			return;
		}
		/* mapped before the offer leaves: a crash from here on leaves it findable */
		map_add(k, DIST_OUT, id, b->id);
		p->key = malloc(len);
		if (!p->key) {
			explicit_bzero(b->key, b->len);
			forget(k, DIST_OUT, id, b->id);
			return;
		}
		memcpy(p->key, b->key, len);
		explicit_bzero(b->key, b->len);
		p->ring_id = id;
		p->link_id = b->id;
		p->len = len;
		memset(m, 0, sizeof(*m));
		m->type = MSG_DIST;
		m->dist.type = DIST_OFFER;
		snprintf(m->dist.enc, sizeof(m->dist.enc), "%s", d->cf.node_id);
		snprintf(m->dist.dec, sizeof(m->dist.dec), "%s", k->l->nb.id);
		m->dist.id = id;
		m->dist.len = len;
		m->dist.source = k->l->quantum ? DIST_SRC_LINK : DIST_SRC_PPETP;
		m->dist.ref = b->id;
		m->dist.ref_off = 0;
		if (peer_send(k->l->peer, m) < 0)
			return;
	}
}

static int push(struct kd_link *k, int qdir, uint64_t id, const uint8_t *key, uint32_t len)
{
	struct kk_block kb = { .id = id, .data = key, .len = len };
	struct kd *kd = k->l->d->kd;
	int rc;

	if (!kd->kk)
		return -ENOENT;
	rc = kk_push(kd->kk, k->l->nb.qotp_peer, qdir, &kb, 1, NULL);
	if (rc) {
		k->push_errors++;
		snprintf(k->last_error, sizeof(k->last_error), "push %s id %" PRIu64 ": %s%s%s",
			 qdir == QOTP_DIR_ENCRYPT ? "encrypt" : "decrypt", id, strerror(-rc),
			 kk_last_error(kd->kk)[0] ? ": " : "", kk_last_error(kd->kk));
		log_warnx("link %s: %s", k->l->nb.id, k->last_error);
	}
	return rc;
}

/* Decryptor: an OFFER for our decrypt ring. */
static void on_offer(struct kd_link *k, const struct dist_msg *dm)
{
	struct kmsd *d = k->l->d;
	struct store_block *b = d->kd->blk;
	int rc, bad_source;

	/* links: a block of the peer's parity; remotes: a transfer key the peer sourced */
	if (k->l->quantum)
		bad_source = dm->source != DIST_SRC_LINK || (int)(dm->ref & 1) == my_parity(k);
	else
		bad_source = dm->source != DIST_SRC_PPETP;
	if (dist_check_offer(k->dp, dm->id, dm->len) || bad_source || dm->ref_off != 0 ||
	    !d->kd->kk) {
		send_dist(k, DIST_REJECT, dm->id, 0);
		return;
	}
	if (k->l->quantum)
		rc = store_take_id(d->st, k->l->nb.id, dm->ref, b);
	else
		rc = store_xfer_take(d->st, k->l->nb.id, k->l->nb.id, dm->ref, b);
	if (rc != 0) {
		log_warnx("%s %s: offer %" PRIu64 " names %s %" PRIu64 " we do not hold",
			  k->l->quantum ? "link" : "remote", k->l->nb.id, dm->id,
			  k->l->quantum ? "link block" : "transfer key", dm->ref);
		send_dist(k, DIST_REJECT, dm->id, 0);
		return;
	}
	map_add(k, DIST_IN, dm->id, dm->ref);	/* before the push: see map_drain */
	if (dm->len > b->len || dist_in_accepted(k->dp, dm->id) || persist(k)) {
		explicit_bzero(b->key, b->len);
		forget(k, DIST_IN, dm->id, dm->ref);
		send_dist(k, DIST_REJECT, dm->id, 0);
		return;
	}
	rc = push(k, QOTP_DIR_DECRYPT, dm->id, b->key, dm->len);
	explicit_bzero(b->key, b->len);
	if (rc) {
		forget(k, DIST_IN, dm->id, dm->ref);
		send_dist(k, DIST_REJECT, dm->id, 0);
		return;
	}
	dist_pushed(k->dp, DIST_IN, dm->id, dm->len);
	k->delivered_bytes[DIST_IN] += dm->len;
	if (k->l->quantum)
		k->l->used_bytes += dm->len;
	k->delivered_blocks[DIST_IN]++;
	send_dist(k, DIST_ACCEPT, dm->id, 0);
}

/* Encryptor: the peer holds the block in its decrypt ring; push into our encrypt ring. */
static void on_accept(struct kd_link *k, uint64_t id)
{
	struct kd_pending *p = pend_find(k, id);
	uint32_t len;
	uint64_t link_id;

	if (!p)
		return;
	link_id = p->link_id;
	if (dist_offer_accepted(k->dp, id, &len) || len != p->len ||
	    push(k, QOTP_DIR_ENCRYPT, id, p->key, p->len)) {
		pend_free(p);
		forget(k, DIST_OUT, id, link_id);
		return;
	}
	dist_pushed(k->dp, DIST_OUT, id, len);
	k->delivered_bytes[DIST_OUT] += len;
	if (k->l->quantum)
		k->l->used_bytes += len;
	k->delivered_blocks[DIST_OUT]++;
	pend_free(p);
	refill(k);
}

static void on_reject(struct kd_link *k, uint64_t id)
{
	struct kd_pending *p = pend_find(k, id);

	dist_offer_rejected(k->dp, id);
	if (p) {
		uint64_t link_id = p->link_id;

		pend_free(p);
		forget(k, DIST_OUT, id, link_id);
	}
}

static void drop_cb(void *arg, enum dist_dir dir, uint64_t id)
{
	struct kd_link *k = arg;
	struct kd_pending *p;
	uint64_t link_id;

	if (dir == DIST_OUT && (p = pend_find(k, id))) {
		link_id = p->link_id;
		pend_free(p);
		forget(k, DIST_OUT, id, link_id);
		return;
	}
	if (map_take(k, dir, id, &link_id) == 0)
		burn(k, dir, link_id);
}

int kd_recv(struct link *l, const struct msg *m)
{
	struct kd_link *k = kd_of(l);
	const struct dist_msg *dm = &m->dist;
	struct kd *kd = l->d->kd;
	uint64_t first;
	int rc;
	int enc_is_peer = !strcmp(dm->enc, l->nb.id) && !strcmp(dm->dec, l->d->cf.node_id);
	int enc_is_us = !strcmp(dm->enc, l->d->cf.node_id) && !strcmp(dm->dec, l->nb.id);

	if (!enc_is_peer && !enc_is_us)
		return -1;		/* names another pair: a protocol violation */
	if (!k || !k->dp)
		return 0;		/* not distributing (yet): offers time out at the peer */
	switch (dm->type) {
	case DIST_OFFER:
		if (!enc_is_peer)
			return -1;
		on_offer(k, dm);
		return 0;
	case DIST_ACCEPT:
		if (!enc_is_us)
			return -1;
		on_accept(k, dm->id);
		return 0;
	case DIST_REJECT:
		if (!enc_is_us)
			return -1;
		on_reject(k, dm->id);
		return 0;
	case DIST_RESYNC:		/* the peer lost its encrypt ring: flush our decrypt ring */
		if (!enc_is_peer)
			return -1;
		if (kd->kk)
			kk_flush(kd->kk, l->nb.qotp_peer, QOTP_DIR_DECRYPT);
		dist_peer_resync(k->dp, DIST_RESYNC, drop_cb, k, &first);
		map_drain(k, DIST_IN, 0);
		persist(k);
		return 0;
	case DIST_RESYNC_REQ:		/* the peer lost its decrypt ring: restart our encrypt ring */
		if (!enc_is_us)
			return -1;
		if (kd->kk)
			kk_flush(kd->kk, l->nb.qotp_peer, QOTP_DIR_ENCRYPT);
		rc = dist_peer_resync(k->dp, DIST_RESYNC_REQ, drop_cb, k, &first);
		map_drain(k, DIST_OUT, 0);
		if (rc == DIST_RESYNC && persist(k) == 0)
			send_dist(k, DIST_RESYNC, first, 1);
		refill(k);
		return 0;
	}
	return 0;
}

static struct kd_link *kd_by_peer(struct kmsd *d, uint32_t peer)
{
	for (size_t i = 0; i < kd_count(d); i++)
		if (kd_at(d, i)->kd && kd_at(d, i)->nb.qotp_peer == peer)
			return kd_at(d, i)->kd;
	return NULL;
}

static void kernel_lost(struct kd_link *k, int dir)
{
	uint64_t first = 0;
	int t;

	if (!k->dp)
		return;
	t = dist_kernel_lost(k->dp, dir, drop_cb, k, &first);
	map_drain(k, dir, 0);		/* blocks pushed before a restart of ours */
	persist(k);
	if (t == DIST_RESYNC)
		send_dist(k, DIST_RESYNC, first, 1);
	else if (t == DIST_RESYNC_REQ)
		send_dist(k, DIST_RESYNC_REQ, 0, 0);
}

static void kk_event(void *arg, const struct kk_event *ev)
{
	struct kmsd *d = arg;
	struct kd_link *k = ev->peer ? kd_by_peer(d, ev->peer) : NULL;
	uint64_t link_id;

	switch (ev->type) {
	case KK_EV_LOW_WATERMARK:
	case KK_EV_KEY_EMPTY:
		if (!k || !k->dp || ev->dir != QOTP_DIR_ENCRYPT)
			return;
		dist_kernel_level(k->dp, ev->type == KK_EV_KEY_EMPTY ? 0 : ev->avail);
		refill(k);
		return;
	case KK_EV_RELEASED:
		if (!k || !k->dp || ev->dir < 0 || ev->dir > 1)
			return;
		dist_released(k->dp, ev->dir == QOTP_DIR_ENCRYPT ? DIST_OUT : DIST_IN, ev->ids,
			      ev->n_ids);
		for (size_t i = 0; i < ev->n_ids; i++) {
			int dir = ev->dir == QOTP_DIR_ENCRYPT ? DIST_OUT : DIST_IN;

			if (map_take(k, dir, ev->ids[i], &link_id) == 0 &&
			    store_done(k, dir, link_id) == 0)
				k->consumed++;
		}
		return;
	case KK_EV_FLUSHED:
		for (size_t i = 0; i < kd_count(d); i++) {
			struct kd_link *x = kd_at(d, i)->kd;

			if (!x || (ev->peer && kd_at(d, i)->nb.qotp_peer != ev->peer))
				continue;
			if (ev->dir < 0 || ev->dir == QOTP_DIR_ENCRYPT)
				kernel_lost(x, DIST_OUT);
			if (ev->dir < 0 || ev->dir == QOTP_DIR_DECRYPT)
				kernel_lost(x, DIST_IN);
			refill(x);
		}
		return;
	case KK_EV_OVERRUN:
		log_warnx("kernel events overrun: re-reading ring levels");
		for (size_t i = 0; i < kd_count(d); i++) {
			struct kd_link *x = kd_at(d, i)->kd;
			uint64_t last, avail;

			if (x && x->dp && kk_ring_info(d->kd->kk, kd_at(d, i)->nb.qotp_peer,
						       QOTP_DIR_ENCRYPT, &last, &avail) == 0) {
				dist_kernel_level(x->dp, avail);
				refill(x);
			}
		}
		return;
	}
}

/* Creates the pair once the kernel knows the peer: ids start above its rings' last ids. */
static void pair_start(struct kd_link *k)
{
	struct kmsd *d = k->l->d;
	struct dist_config cfg = {
		.low_watermark = d->cf.dist_low, .target = d->cf.dist_target,
		.block_len = d->cf.dist_block, .max_inflight = KD_MAX_INFLIGHT,
		.offer_timeout_ms = KD_OFFER_TIMEOUT_MS,
	};
	uint64_t out_last = 0, in_last = 0, avail = 0, dummy;
	int rc;

	if (k->dp || !d->kd->kk)
		return;
	rc = kk_ring_info(d->kd->kk, k->l->nb.qotp_peer, QOTP_DIR_ENCRYPT, &out_last, &avail);
	if (!rc)
		rc = kk_ring_info(d->kd->kk, k->l->nb.qotp_peer, QOTP_DIR_DECRYPT, &in_last, &dummy);
	if (rc) {
		set_err(k, "qotp peer not usable", -rc);
		return;
	}
	/* A fresh kernel ring (module reloaded, peer re-added) holds none of our old blocks. */
	map_drain(k, DIST_OUT, out_last);
	map_drain(k, DIST_IN, in_last);
	load_persist(k);
	k->dp = dist_pair_new(d->cf.node_id, k->l->nb.id, &cfg, &k->ps, out_last, in_last);
	if (!k->dp) {
		snprintf(k->last_error, sizeof(k->last_error), "cannot create the pair");
		return;
	}
	if (persist(k)) {
		set_err(k, "cannot persist ring ids", errno ? errno : EIO);
		dist_pair_free(k->dp);
		k->dp = NULL;
		return;
	}
	dist_kernel_level(k->dp, avail);
	k->last_error[0] = '\0';
	k->xfer_reserved = 0;		/* a new pair: transfers in flight are not counted */
	log_info("%s %s: key distribution to qotp peer %u from %s (encrypt ids from %" PRIu64
		 ", decrypt above %" PRIu64 ")", k->l->quantum ? "link" : "remote", k->l->nb.id,
		 k->l->nb.qotp_peer, k->l->quantum ? "link key" : "PPETP transfer keys",
		 k->ps.out_next_id, k->ps.in_last_id);
	refill(k);
}

static void kk_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct kmsd *d = arg;
	int rc = kk_dispatch(d->kd->kk);

	if (rc < 0 && rc != -EAGAIN) {
		log_warnx("qotp kernel events: %s; reopening", strerror(-rc));
		kd_kernel_close(d);
	}
}

void kd_kernel_close(struct kmsd *d)
{
	struct kd *kd = d->kd;
	struct timeval tv = { KD_RETRY_S, 0 };

	if (kd->kk_ev) {
		event_free(kd->kk_ev);
		kd->kk_ev = NULL;
	}
	if (kd->kk) {
		kk_close(kd->kk);
		kd->kk = NULL;
	}
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;

		if (!k || !k->dp)
			continue;
		/* the module may be gone with its rings: offers in flight are burnt */
		for (int j = 0; j < KD_MAX_INFLIGHT; j++)
			if (k->pend[j].key)
				drop_cb(k, DIST_OUT, k->pend[j].ring_id);
		dist_pair_free(k->dp);
		k->dp = NULL;
		k->xfer_reserved = 0;
	}
	evtimer_add(kd->retry_ev, &tv);
}

static void retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct kmsd *d = arg;
	struct kd *kd = d->kd;
	struct timeval tv = { KD_RETRY_S, 0 };
	int rc;

	if (!kd->kk) {
		rc = kk_open(&kd->kk, kk_event, d);
		if (rc) {
			if (!kd->logged_absent || rc != kd->kk_state)
				log_warnx("key distribution: %s; retrying every %d s",
					  rc == -ENOENT ? "the qotp module is not loaded" :
					  strerror(-rc), KD_RETRY_S);
			kd->logged_absent = 1;
			kd->kk_state = rc;
			kd->kk = NULL;
			evtimer_add(kd->retry_ev, &tv);
			return;
		}
		kd->kk_state = 0;
		kd->logged_absent = 0;
		kd->kk_ev = event_new(d->base, kk_event_fd(kd->kk), EV_READ | EV_PERSIST,
				      kk_read_cb, d);
		event_add(kd->kk_ev, NULL);
		log_info("key distribution: connected to the qotp module");
	}
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;

		if (k && !k->dp)
			pair_start(k);
		if (k && !k->dp)
			evtimer_add(kd->retry_ev, &tv);	/* peer not created yet */
	}
}

int kd_init(struct kmsd *d)
{
	struct kd *kd;
	int any = 0;

	for (size_t i = 0; i < kd_count(d); i++)
		any |= kd_at(d, i)->nb.qotp_peer != 0;
	if (!any)
		return 0;
	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -1;
	d->kd = kd;
	kd->d = d;
	kd->blk = malloc(sizeof(*kd->blk));
	kd->msg = malloc(sizeof(*kd->msg));
	kd->retry_ev = evtimer_new(d->base, retry_cb, d);
	if (!kd->blk || !kd->msg || !kd->retry_ev)
		return -1;
	for (size_t i = 0; i < kd_count(d); i++) {
		struct link *l = kd_at(d, i);
		struct kd_link *k;

		if (!l->nb.qotp_peer)
			continue;
		k = calloc(1, sizeof(*k));
		if (!k)
			return -1;
		k->l = l;
		l->kd = k;
		snprintf(k->state_path, sizeof(k->state_path), "%s.dist-%s", d->cf.store, l->nb.id);
	}
	event_active(kd->retry_ev, 0, 0);
	return 0;
}

void kd_free(struct kmsd *d)
{
	struct kd *kd = d->kd;

	if (!kd)
		return;
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;

		if (!k)
			continue;
		for (int j = 0; j < KD_MAX_INFLIGHT; j++)
			pend_free(&k->pend[j]);
		dist_pair_free(k->dp);
		free(k);
		kd_at(d, i)->kd = NULL;
	}
	if (kd->kk_ev)
		event_free(kd->kk_ev);
	if (kd->kk)
		kk_close(kd->kk);
	if (kd->retry_ev)
		event_free(kd->retry_ev);
	if (kd->blk) {
		explicit_bzero(kd->blk, sizeof(*kd->blk));
		free(kd->blk);
	}
	free(kd->msg);
	free(kd);
	d->kd = NULL;
}

void kd_peer_up(struct link *l)
{
	if (l->kd)
		refill(l->kd);
}

void kd_kick(struct link *l)
{
	if (l->kd)
		refill(l->kd);
}

void kd_xfer_done(struct kmsd *d, const char *peer, int ok)
{
	struct link *l = kmsd_find_link(d, peer);
	struct kd_link *k = l && d->kd ? l->kd : NULL;
	uint32_t len = xfer_len(d);

	if (!k)
		return;
	if (k->xfer_inflight)
		k->xfer_inflight--;
	if (!ok)
		k->xfer_failed++;
	if (k->dp && k->xfer_reserved >= len) {
		k->xfer_reserved -= len;
		dist_reserve(k->dp, -(int64_t)len);
	}
	refill(k);
}

void kd_tick(struct kmsd *d)
{
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;

		if (k && k->dp) {
			dist_tick(k->dp, (uint64_t)mono_ms(), drop_cb, k);
			refill(k);
		}
	}
}

static void json_s(struct evbuffer *o, const char *s)
{
	evbuffer_add(o, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add_printf(o, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			evbuffer_add_printf(o, "\\u%04x", *s);
		else
			evbuffer_add(o, s, 1);
	}
	evbuffer_add(o, "\"", 1);
}

void kd_ctl_pairs(struct kmsd *d, struct evbuffer *o, int json)
{
	struct kd *kd = d->kd;
	const char *kstate = !kd ? "unused" : kd->kk ? "connected" :
		kd->kk_state == -ENOENT ? "module not loaded" : "unavailable";
	int first = 1;

	if (json) {
		evbuffer_add_printf(o, "{\"kernel\":");
		json_s(o, kstate);
		evbuffer_add_printf(o, ",\"pairs\":[");
	} else {
		evbuffer_add_printf(o, "kernel: %s\n", kstate);
	}
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;
		struct dist_stats s;

		if (!k)
			continue;
		memset(&s, 0, sizeof(s));
		if (k->dp)
			dist_get_stats(k->dp, &s);
		if (json) {
			evbuffer_add_printf(o, "%s{\"neighbour\":", first ? "" : ",");
			json_s(o, k->l->nb.id);
			evbuffer_add_printf(o, ",\"via\":\"%s\",\"xfer_started\":%llu,"
					    "\"xfer_failed\":%llu,\"xfer_inflight\":%llu",
					    k->l->quantum ? "link" : "ppetp",
					    (unsigned long long)k->xfer_started,
					    (unsigned long long)k->xfer_failed,
					    (unsigned long long)k->xfer_inflight);
			evbuffer_add_printf(o, ",\"qotp_peer\":%u,\"active\":%s,\"peer_up\":%s,"
				"\"next_out_id\":%llu,\"last_in_id\":%llu,"
				"\"delivered_out_bytes\":%llu,\"delivered_out_blocks\":%llu,"
				"\"delivered_in_bytes\":%llu,\"delivered_in_blocks\":%llu,"
				"\"level\":%llu,\"inflight\":%u,\"offered\":%llu,\"accepted\":%llu,"
				"\"rejected\":%llu,\"expired\":%llu,\"released\":%llu,"
				"\"consumed\":%llu,\"burnt\":%llu,\"push_errors\":%llu,\"last_error\":",
				k->l->nb.qotp_peer, k->dp ? "true" : "false",
				k->l->peer ? "true" : "false",
				(unsigned long long)k->ps.out_next_id,
				(unsigned long long)k->ps.in_last_id,
				(unsigned long long)k->delivered_bytes[DIST_OUT],
				(unsigned long long)k->delivered_blocks[DIST_OUT],
				(unsigned long long)k->delivered_bytes[DIST_IN],
				(unsigned long long)k->delivered_blocks[DIST_IN],
				(unsigned long long)s.level, s.inflight,
				(unsigned long long)s.offered, (unsigned long long)s.accepted,
				(unsigned long long)s.rejected, (unsigned long long)s.expired,
				(unsigned long long)s.released, (unsigned long long)k->consumed,
				(unsigned long long)k->burnt, (unsigned long long)k->push_errors);
			json_s(o, k->last_error);
			evbuffer_add_printf(o, "}");
		} else {
			evbuffer_add_printf(o, "pair %s (qotp peer %u): %s, peer %s, key from %s\n"
				"  encrypt ring: %llu bytes in %llu blocks delivered, next id %llu, "
				"level ~%llu, %u offers in flight\n"
				"  decrypt ring: %llu bytes in %llu blocks delivered, last id %llu\n"
				"  offers %llu accepted %llu rejected %llu expired %llu; "
				"released %llu consumed %llu burnt %llu push errors %llu\n",
				k->l->nb.id, k->l->nb.qotp_peer, k->dp ? "active" : "waiting",
				k->l->peer ? "up" : "down",
				k->l->quantum ? "link key" : "PPETP transfer keys",
				(unsigned long long)k->delivered_bytes[DIST_OUT],
				(unsigned long long)k->delivered_blocks[DIST_OUT],
				(unsigned long long)k->ps.out_next_id, (unsigned long long)s.level,
				s.inflight,
				(unsigned long long)k->delivered_bytes[DIST_IN],
				(unsigned long long)k->delivered_blocks[DIST_IN],
				(unsigned long long)k->ps.in_last_id,
				(unsigned long long)s.offered, (unsigned long long)s.accepted,
				(unsigned long long)s.rejected, (unsigned long long)s.expired,
				(unsigned long long)s.released, (unsigned long long)k->consumed,
				(unsigned long long)k->burnt, (unsigned long long)k->push_errors);
			if (!k->l->quantum)
				evbuffer_add_printf(o, "  transfers: %llu started, %llu failed, "
					"%llu under way\n", (unsigned long long)k->xfer_started,
					(unsigned long long)k->xfer_failed,
					(unsigned long long)k->xfer_inflight);
			if (k->last_error[0])
				evbuffer_add_printf(o, "  last error: %s\n", k->last_error);
		}
		first = 0;
	}
	if (json)
		evbuffer_add_printf(o, "]}\n");
}
