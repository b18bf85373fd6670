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
 * naming the link block by id, up to DIST_BATCH_MAX blocks per OFFER message, each batch
 * taken, assigned, persisted and mapped in one store transaction) and our decrypt ring (the
 * neighbour's offers, answered with one verdict per block). The two ends
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

/*
 * Blocks offered and not yet answered, per pair: up to DIST_BATCH_MAX blocks per OFFER
 * message (one store transaction and one id persist per batch at each end), several
 * messages in flight. 256 blocks of 4032 bytes are about 1 MiB, twice the default target.
 */
#define KD_MAX_INFLIGHT 256
#define KD_MAX_XFER 16		/* PPETP transfers under way per remote pair */
#define KD_OFFER_TIMEOUT_MS 10000
#define KD_RETRY_S 2

struct kd_pending {			/* an offer of ours awaiting ACCEPT */
	uint64_t ring_id, link_id;
	uint32_t len;
	uint8_t *key;
	uint64_t sent_ms;
};

#define LW_SAMPLES 64

struct kd_link {
	struct link *l;
	struct dist_pair *dp;
	struct dist_persist ps;
	char state_path[KMS_PATH_MAX + KMS_ID_MAX + 16];
	struct kd_pending pend[KD_MAX_INFLIGHT];
	uint64_t delivered_bytes[2], delivered_blocks[2];	/* pushed into the kernel */
	uint64_t consumed, burnt, push_errors;
	/* refill lead (dist_set_rates): encrypt ring drain and offer round trip, smoothed */
	uint64_t released_bytes, drain_bps, rtt_ms, rate_ms;
	uint64_t batches_out, batches_in;	/* OFFER messages sent / answered */
	/*
	 * Refill latency: from a LOW_WATERMARK or KEY_EMPTY event of our encrypt ring to the
	 * first push into it after the event (ms, the last LW_SAMPLES); 0: no event pending.
	 */
	uint64_t lw_at_ms;
	uint32_t lw_ms[LW_SAMPLES];
	unsigned lw_n, lw_next;
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
	struct store_block *blk;	/* scratch: DIST_BATCH_MAX blocks (large) */
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

/* A DIST message of ours, header filled, body empty (kd->msg). */
static struct msg *dist_msg_new(struct kd_link *k, uint8_t type, int we_encrypt)
{
	struct msg *m = k->l->d->kd->msg;

	memset(m, 0, sizeof(*m));
	m->type = MSG_DIST;
	m->dist.type = type;
	snprintf(m->dist.enc, sizeof(m->dist.enc), "%s",
		 we_encrypt ? k->l->d->cf.node_id : k->l->nb.id);
	snprintf(m->dist.dec, sizeof(m->dist.dec), "%s",
		 we_encrypt ? k->l->nb.id : k->l->d->cf.node_id);
	return m;
}

static int send_dist(struct kd_link *k, uint8_t type, uint64_t id, int we_encrypt)
{
	struct msg *m = dist_msg_new(k, type, we_encrypt);

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
			snprintf(k->last_error, sizeof(k->last_error), "cannot start a key transfer: %s",
				 xfer_strerror(rc));
			return;
		}
		k->xfer_inflight++;
		k->xfer_started++;
		k->xfer_reserved += len;
		dist_reserve(k->dp, len);
	}
}

/*
 * Takes key material for up to max offers inside the caller's store transaction: link
 * blocks of our parity, or transfer keys we sourced (the destination of a lost DONE never
 * offers). Returns how many, or -1 on a store error.
 */
static int take_material(struct kd_link *k, struct store_block *b, size_t max, uint64_t need)
{
	struct kmsd *d = k->l->d;
	size_t n = 0;
	int rc;

	if (k->l->quantum)
		return store_take_parity_tx(d->st, k->l->nb.id, my_parity(k), need, b, max, &n) < 0
			? -1 : (int)n;
	for (uint64_t got = 0; n < max && got < need; got += b[n++].len) {
		rc = store_xfer_take_tx(d->st, k->l->nb.id, d->cf.node_id, 0, &b[n]);
		if (rc < 0) {
			for (size_t i = 0; i < n; i++)
				explicit_bzero(b[i].key, b[i].len);
			return -1;
		}
		if (rc)
			break;
	}
	return (int)n;
}

static void wipe_blocks(struct store_block *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		explicit_bzero(b[i].key, b[i].len);
}

static size_t free_slots(const struct kd_link *k)
{
	size_t n = 0;

	for (int i = 0; i < KD_MAX_INFLIGHT; i++)
		n += !k->pend[i].key;
	return n;
}

static struct kd_pending *free_slot(struct kd_link *k)
{
	for (int i = 0; i < KD_MAX_INFLIGHT; i++)
		if (!k->pend[i].key)
			return &k->pend[i];
	return NULL;
}

/*
 * Encryptor: one OFFER of up to DIST_BATCH_MAX blocks, sized to what the ring lacks. In one
 * store transaction: take the blocks, assign their ring ids (persisted, fsync + rename,
 * before the transaction commits) and map them; commit; then the offer leaves. A failure
 * before the commit rolls everything back (the blocks stay verified; the assigned ids are
 * burnt, never reused). Returns blocks offered; 0 when nothing is needed or available.
 */
static int offer_batch(struct kd_link *k)
{
	struct kmsd *d = k->l->d;
	struct store_block *b = d->kd->blk;
	uint64_t need = dist_need(k->dp), ids[DIST_BATCH_MAX], now = (uint64_t)mono_ms();
	size_t want, n_assigned = 0;
	struct msg *m;
	int n;

	/* the take stops at need bytes: the deficit below the target (plus the lead) */
	want = free_slots(k);
	if (want > DIST_BATCH_MAX)
		want = DIST_BATCH_MAX;
	if (!need || !want)
		return 0;
	if (store_begin(d->st)) {
		snprintf(k->last_error, sizeof(k->last_error), "store: %s", store_errmsg(d->st));
		return 0;
	}
	n = take_material(k, b, want, need);
	if (n <= 0) {
		store_rollback(d->st);
		if (n < 0)
			snprintf(k->last_error, sizeof(k->last_error), "store: %s",
				 store_errmsg(d->st));
		/* links: the next caching round calls us; remotes: transfer some */
		else if (!k->l->quantum)
			request_xfers(k);
		return 0;
	}
	for (; n_assigned < (size_t)n; n_assigned++) {
		uint32_t len = b[n_assigned].len < d->cf.dist_block ? b[n_assigned].len :
			d->cf.dist_block;

		if (dist_assign(k->dp, len, now, &ids[n_assigned]))
			goto undo;
	}
	if (persist(k))
		goto undo;
	/* mapped in the same transaction: a crash from here on leaves every block findable */
	for (int i = 0; i < n; i++)
		if (store_dist_map_add(d->st, k->l->nb.id, DIST_OUT, ids[i], b[i].id) < 0)
			goto undo;
	if (store_commit(d->st)) {
		n_assigned = (size_t)n;
		for (size_t i = 0; i < n_assigned; i++)
			dist_offer_rejected(k->dp, ids[i]);
		wipe_blocks(b, (size_t)n);
		set_err(k, "cannot commit an offer batch", EIO);
		return 0;
	}
	m = dist_msg_new(k, DIST_OFFER, 1);
	for (int i = 0; i < n; i++) {
		struct kd_pending *p = free_slot(k);
		uint32_t len = b[i].len < d->cf.dist_block ? b[i].len : d->cf.dist_block;

		if (p)
			p->key = malloc(len);
		if (!p || !p->key) {
			/* committed as delivered and mapped: burn it, never offered */
			dist_offer_rejected(k->dp, ids[i]);
			forget(k, DIST_OUT, ids[i], b[i].id);
			continue;
		}
		memcpy(p->key, b[i].key, len);
		p->ring_id = ids[i];
		p->link_id = b[i].id;
		p->len = len;
		p->sent_ms = now;
		m->dist.e[m->dist.n].id = ids[i];
		m->dist.e[m->dist.n].len = len;
		m->dist.e[m->dist.n].source = k->l->quantum ? DIST_SRC_LINK : DIST_SRC_PPETP;
		m->dist.e[m->dist.n].ref = b[i].id;
		m->dist.n++;
	}
	wipe_blocks(b, (size_t)n);
	if (!m->dist.n)
		return 0;
	k->batches_out++;
	log_debug("%s: offering %u blocks, %llu bytes still needed", k->l->nb.id,
		  (unsigned)m->dist.n, (unsigned long long)need);
	/* a send failure closes the session: these offers expire (burnt) at the next ticks */
	if (peer_send(k->l->peer, m) < 0)
		return 0;
	return m->dist.n;
undo:
	store_rollback(d->st);
	for (size_t i = 0; i < n_assigned; i++)
		dist_offer_rejected(k->dp, ids[i]);
	wipe_blocks(b, (size_t)n);
	set_err(k, "cannot assign, persist or map ring ids", errno ? errno : EIO);
	return 0;
}

/* Encryptor: offers key blocks until distrib says the ring will be full enough. */
static void refill(struct kd_link *k)
{
	struct kmsd *d = k->l->d;

	while (k->dp && k->l->peer && k->l->peer->hello_rx && d->kd->kk && dist_need(k->dp) > 0)
		if (offer_batch(k) <= 0)
			return;
}

/* Pushes n blocks (ids increasing) into ring qdir; returns how many leading ones the kernel took. */
static size_t push(struct kd_link *k, int qdir, const struct kk_block *kb, size_t n)
{
	struct kd *kd = k->l->d->kd;
	size_t done = 0;
	int rc;

	if (!n)
		return 0;
	if (!kd->kk)
		return 0;
	rc = kk_push(kd->kk, k->l->nb.qotp_peer, qdir, kb, n, &done);
	if (rc) {
		k->push_errors++;
		snprintf(k->last_error, sizeof(k->last_error), "push %s id %" PRIu64 ": %s%s%s",
			 qdir == QOTP_DIR_ENCRYPT ? "encrypt" : "decrypt",
			 done < n ? kb[done].id : 0, strerror(-rc),
			 kk_last_error(kd->kk)[0] ? ": " : "", kk_last_error(kd->kk));
		log_warnx("link %s: %s", k->l->nb.id, k->last_error);
	}
	return done < n ? done : n;
}

/*
 * Decryptor: an OFFER of blocks for our decrypt ring. In one store transaction: take each
 * named key, map it, record the highest accepted id (persisted before the commit); commit;
 * push the accepted blocks into the decrypt ring in one request; answer with one verdict
 * per block. A block refused after its key was taken is burnt (consumed) in the same
 * transaction; one the kernel did not take is burnt after the push. The encryptor pushes
 * only blocks answered DIST_V_ACCEPTED, so both rings hold the same ids.
 */
static void on_offer(struct kd_link *k, const struct dist_msg *dm)
{
	struct kmsd *d = k->l->d;
	struct store_block *b = d->kd->blk;
	struct kk_block kb[DIST_BATCH_MAX];
	uint8_t verdict[DIST_BATCH_MAX];
	size_t idx[DIST_BATCH_MAX], nk = 0, done;
	int rc, tx_ok = 0, began = 0;
	struct msg *m;

	memset(verdict, DIST_V_ERROR, sizeof(verdict));
	if (d->kd->kk && store_begin(d->st) == 0)
		tx_ok = began = 1;
	for (size_t i = 0; tx_ok && i < dm->n; i++) {
		const struct dist_entry *e = &dm->e[i];
		int bad_source;

		/* links: a block of the peer's parity; remotes: a transfer key the peer sourced */
		if (k->l->quantum)
			bad_source = e->source != DIST_SRC_LINK ||
				(int)(e->ref & 1) == my_parity(k);
		else
			bad_source = e->source != DIST_SRC_PPETP;
		if (dist_check_offer(k->dp, e->id, e->len) || bad_source || e->ref_off != 0) {
			verdict[i] = DIST_V_REFUSED;
			continue;
		}
		if (k->l->quantum)
			rc = store_take_id_tx(d->st, k->l->nb.id, e->ref, &b[nk]);
		else
			rc = store_xfer_take_tx(d->st, k->l->nb.id, k->l->nb.id, e->ref, &b[nk]);
		if (rc < 0) {
			tx_ok = 0;
			break;
		}
		if (rc) {
			log_warnx("%s %s: offer %" PRIu64 " names %s %" PRIu64 " we do not hold",
				  k->l->quantum ? "link" : "remote", k->l->nb.id, e->id,
				  k->l->quantum ? "link block" : "transfer key", e->ref);
			verdict[i] = DIST_V_NO_KEY;
			continue;
		}
		if (e->len > b[nk].len || dist_in_accepted(k->dp, e->id)) {
			explicit_bzero(b[nk].key, b[nk].len);
			burn(k, DIST_IN, e->ref);	/* taken in this transaction: burnt in it */
			verdict[i] = DIST_V_REFUSED;
			continue;
		}
		/* mapped before the push, in the take's transaction: see map_drain */
		if (store_dist_map_add(d->st, k->l->nb.id, DIST_IN, e->id, e->ref) < 0) {
			explicit_bzero(b[nk].key, b[nk].len);
			tx_ok = 0;
			break;
		}
		kb[nk].id = e->id;
		kb[nk].data = b[nk].key;
		kb[nk].len = e->len;
		idx[nk++] = i;
	}
	if (tx_ok && nk && persist(k))
		tx_ok = 0;
	if (tx_ok && store_commit(d->st))
		tx_ok = 0;		/* store_commit rolled back */
	else if (!tx_ok && began)
		store_rollback(d->st);
	if (!tx_ok) {
		/* nothing taken, nothing mapped: every block refused */
		wipe_blocks(b, nk);
		memset(verdict, DIST_V_ERROR, sizeof(verdict));
		nk = 0;
	}
	done = push(k, QOTP_DIR_DECRYPT, kb, nk);
	for (size_t j = 0; j < nk; j++) {
		const struct dist_entry *e = &dm->e[idx[j]];

		if (j >= done) {
			forget(k, DIST_IN, e->id, e->ref);
			verdict[idx[j]] = DIST_V_ERROR;
			continue;
		}
		dist_pushed(k->dp, DIST_IN, e->id, e->len);
		k->delivered_bytes[DIST_IN] += e->len;
		if (k->l->quantum)
			k->l->used_bytes += e->len;
		k->delivered_blocks[DIST_IN]++;
		verdict[idx[j]] = DIST_V_ACCEPTED;
	}
	wipe_blocks(b, nk);
	k->batches_in++;
	m = dist_msg_new(k, DIST_ACCEPT, 0);
	m->dist.n = dm->n;
	for (size_t i = 0; i < dm->n; i++) {
		m->dist.e[i].id = dm->e[i].id;
		m->dist.e[i].verdict = verdict[i];
	}
	if (k->l->peer)
		peer_send(k->l->peer, m);
}

/*
 * Encryptor: the answer to an OFFER. Blocks the peer holds in its decrypt ring go into our
 * encrypt ring in one push; refused ones, and any the kernel did not take, are burnt.
 */
static void on_accept(struct kd_link *k, const struct dist_msg *dm)
{
	struct kmsd *d = k->l->d;
	struct kk_block kb[DIST_BATCH_MAX];
	struct kd_pending *pp[DIST_BATCH_MAX];
	uint64_t now = (uint64_t)mono_ms();
	size_t nk = 0, done;
	int tx = store_begin(d->st) == 0;	/* one fsync for the burns of the batch */

	for (size_t i = 0; i < dm->n; i++) {
		const struct dist_entry *e = &dm->e[i];
		struct kd_pending *p = pend_find(k, e->id);
		uint32_t len;

		if (!p)
			continue;		/* expired or cancelled meanwhile: already burnt */
		if (e->verdict != DIST_V_ACCEPTED) {
			uint64_t link_id = p->link_id;

			dist_offer_rejected(k->dp, e->id);
			pend_free(p);
			forget(k, DIST_OUT, e->id, link_id);
			continue;
		}
		if (dist_offer_accepted(k->dp, e->id, &len) || len != p->len) {
			uint64_t link_id = p->link_id;

			pend_free(p);
			forget(k, DIST_OUT, e->id, link_id);
			continue;
		}
		/*
		 * Round trip of the offer, part of the refill lead: follows a longer sample at
		 * once (load rises with the stream it must keep up with), decays slowly.
		 */
		if (now - p->sent_ms > k->rtt_ms)
			k->rtt_ms = now - p->sent_ms;
		else
			k->rtt_ms = (7 * k->rtt_ms + (now - p->sent_ms)) / 8;
		kb[nk].id = e->id;
		kb[nk].data = p->key;
		kb[nk].len = p->len;
		pp[nk++] = p;
	}
	done = push(k, QOTP_DIR_ENCRYPT, kb, nk);
	log_debug("%s: %zu of %zu accepted blocks pushed into the encrypt ring", k->l->nb.id,
		  done, nk);
	if (done && k->lw_at_ms) {
		k->lw_ms[k->lw_next] = (uint32_t)((uint64_t)mono_ms() - k->lw_at_ms);
		k->lw_next = (k->lw_next + 1) % LW_SAMPLES;
		if (k->lw_n < LW_SAMPLES)
			k->lw_n++;
		k->lw_at_ms = 0;
	}
	for (size_t j = 0; j < nk; j++) {
		struct kd_pending *p = pp[j];
		uint64_t id = p->ring_id, link_id = p->link_id;
		uint32_t len = p->len;

		pend_free(p);
		if (j >= done) {
			forget(k, DIST_OUT, id, link_id);
			continue;
		}
		dist_pushed(k->dp, DIST_OUT, id, len);
		k->delivered_bytes[DIST_OUT] += len;
		if (k->l->quantum)
			k->l->used_bytes += len;
		k->delivered_blocks[DIST_OUT]++;
	}
	if (tx && store_commit(d->st))
		log_warnx("%s: cannot commit the burns of an answer: %s", k->l->nb.id,
			  store_errmsg(d->st));
	refill(k);
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
		on_accept(k, dm);
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
		log_debug("%s: kernel event %s, encrypt ring at %llu bytes, need %llu", k->l->nb.id,
			  ev->type == KK_EV_KEY_EMPTY ? "key-empty" : "low-watermark",
			  (unsigned long long)ev->avail, (unsigned long long)dist_need(k->dp));
		if (!k->lw_at_ms)
			k->lw_at_ms = (uint64_t)mono_ms();
		refill(k);
		return;
	case KK_EV_RELEASED: {
		struct dist_stats a, b;

		if (!k || !k->dp || ev->dir < 0 || ev->dir > 1)
			return;
		dist_get_stats(k->dp, &a);
		dist_released(k->dp, ev->dir == QOTP_DIR_ENCRYPT ? DIST_OUT : DIST_IN, ev->ids,
			      ev->n_ids);
		dist_get_stats(k->dp, &b);
		if (ev->dir == QOTP_DIR_ENCRYPT) {
			uint64_t last, avail;

			/*
			 * The kernel's own level: dist only knows the lengths of blocks pushed
			 * since this kmsd started, so after a restart its estimate would never
			 * fall and the top-up would not start.
			 */
			if (d->kd->kk && kk_ring_info(d->kd->kk, k->l->nb.qotp_peer,
						      QOTP_DIR_ENCRYPT, &last, &avail) == 0) {
				b.level = avail;
				dist_kernel_level(k->dp, avail);
			}
			if (a.level > b.level)	/* the drain rate's samples */
				k->released_bytes += a.level - b.level;
		}
		/*
		 * Grouped (store.h): nothing leaves kmsd because of a burn, so the burns of
		 * every event read in this pass share one commit, the pass's, instead of one
		 * fsync per event (a backlog of RELEASED events in front of a LOW_WATERMARK
		 * one cost the refill that many fsyncs).
		 */
		for (size_t i = 0; i < ev->n_ids; i++) {
			int dir = ev->dir == QOTP_DIR_ENCRYPT ? DIST_OUT : DIST_IN;

			if (map_take(k, dir, ev->ids[i], &link_id) == 0 &&
			    store_done(k, dir, link_id) == 0)
				k->consumed++;
		}
		if (ev->dir == QOTP_DIR_ENCRYPT)
			refill(k);		/* the top-up starts as the ring drains */
		return;
	}
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
		/* keep the ring near the target: refill once an eighth of it has drained */
		.topup = d->cf.dist_target / 8,
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

	if (rc == -ENODEV) {
		log_warnx("qotp kernel events: the qotp module was unloaded, its rings are "
			  "gone; reopening when it is back");
		/* as a FLUSHED of every ring: the peers resync theirs before new offers */
		for (size_t i = 0; i < kd_count(d); i++) {
			struct kd_link *x = kd_at(d, i)->kd;

			if (x) {
				kernel_lost(x, DIST_OUT);
				kernel_lost(x, DIST_IN);
			}
		}
		kd_kernel_close(d);
	} else if (rc < 0 && rc != -EAGAIN) {
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
	kd->blk = calloc(DIST_BATCH_MAX, sizeof(*kd->blk));
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
		explicit_bzero(kd->blk, DIST_BATCH_MAX * sizeof(*kd->blk));
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

/*
 * The refill lead: the encrypt ring's drain (bytes the kernel released per second,
 * smoothed over a few seconds) times the offer round trip. Called about once a second.
 */
static void update_rates(struct kd_link *k, uint64_t now)
{
	uint64_t dt = now - k->rate_ms, bps;

	if (!k->rate_ms || dt < 500) {
		if (!k->rate_ms)
			k->rate_ms = now;
		return;
	}
	bps = k->released_bytes * 1000 / dt;
	/* a rising drain is followed at once, a falling one over a few seconds */
	k->drain_bps = bps > k->drain_bps ? bps : (k->drain_bps + 3 * bps) / 4;
	k->released_bytes = 0;
	k->rate_ms = now;
	dist_set_rates(k->dp, k->drain_bps, k->rtt_ms);
}

void kd_tick(struct kmsd *d)
{
	for (size_t i = 0; i < kd_count(d); i++) {
		struct kd_link *k = kd_at(d, i)->kd;
		uint64_t now = (uint64_t)mono_ms();

		if (k && k->dp) {
			int tx = store_begin(d->st) == 0;	/* one fsync for expired offers */

			dist_tick(k->dp, now, drop_cb, k);
			if (tx && store_commit(d->st))
				log_warnx("%s: cannot commit expired offers: %s", k->l->nb.id,
					  store_errmsg(d->st));
			update_rates(k, now);
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

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Median and maximum of the refill latency samples (0 without any). */
static void lw_summary(const struct kd_link *k, unsigned *med, unsigned *max)
{
	uint32_t v[LW_SAMPLES];

	*med = *max = 0;
	if (!k->lw_n)
		return;
	memcpy(v, k->lw_ms, k->lw_n * sizeof(v[0]));
	qsort(v, k->lw_n, sizeof(v[0]), cmp_u32);
	*med = v[(k->lw_n - 1) / 2];
	*max = v[k->lw_n - 1];
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
		unsigned lw_med, lw_max;

		if (!k)
			continue;
		lw_summary(k, &lw_med, &lw_max);
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
			evbuffer_add_printf(o, ",\"offer_batches\":%llu,\"answered_batches\":%llu,"
				"\"drain_bps\":%llu,\"rtt_ms\":%llu,\"lead\":%llu,"
				"\"refill_samples\":%u,\"refill_ms_median\":%u,\"refill_ms_max\":%u,"
				"\"refill_ms\":[",
				(unsigned long long)k->batches_out,
				(unsigned long long)k->batches_in,
				(unsigned long long)k->drain_bps, (unsigned long long)k->rtt_ms,
				(unsigned long long)s.lead, k->lw_n, lw_med, lw_max);
			/* oldest first */
			for (unsigned j = 0; j < k->lw_n; j++)
				evbuffer_add_printf(o, "%s%u", j ? "," : "",
					k->lw_ms[(k->lw_next + LW_SAMPLES - k->lw_n + j) % LW_SAMPLES]);
			evbuffer_add_printf(o, "]}");
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
			evbuffer_add_printf(o, "  refill: %llu offer messages sent, %llu answered; "
				"drain ~%llu B/s, offer round trip ~%llu ms, lead %llu bytes\n",
				(unsigned long long)k->batches_out,
				(unsigned long long)k->batches_in,
				(unsigned long long)k->drain_bps, (unsigned long long)k->rtt_ms,
				(unsigned long long)s.lead);
			if (k->lw_n)
				evbuffer_add_printf(o, "  low watermark to key in the ring: median "
					"%u ms, max %u ms (last %u events)\n", lw_med, lw_max,
					k->lw_n);
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
