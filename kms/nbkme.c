// SPDX-License-Identifier: GPL-2.0
/*
 * kmsd as an ETSI GS QKD 014 KME for local applications (nbkme.h; Documentation/etsi014.md,
 * "Northbound"). e14srv owns HTTPS, mutual TLS, URLs, bodies and limits; this file decides
 * where keys come from and makes both nodes agree on them without ever using a byte twice.
 *
 * Master side (enc_keys from a local SAE for a slave SAE at node S). Keys are cut, in order,
 * from one piece of key shared with S at a time (struct carve): a verified link block of our
 * parity when S is a quantum neighbour (the same even/odd rule as key distribution and PPETP
 * hops, so the two nodes never cut the same block), else a transfer key we were the source
 * of (PPETP made on demand, NB_XFER_COOKIE). The piece is taken and consumed in the store in
 * one committed transaction before any byte of it is used: after a crash its rest is lost,
 * never reused. A key never spans two pieces. The request's keys (key_ID, piece, offset) go
 * to S in one MSG_SAE SAE_KEYS; the answer to the SAE leaves only after S's SAE_ACK GOT. No
 * answer in NB_TIMEOUT_MS, NOT_GOT, the session down: the keys are wiped and the SAE gets
 * 503; the piece is dropped too (S may not hold it), the next request takes a new one.
 *
 * Slave side (SAE_KEYS from node M). The keys must name a slave SAE of this node and a
 * master SAE of node M. Each piece M names is taken (and consumed) from our store by its id
 * the first time, kept in memory (struct carve) while M cuts from it, and wiped when M names
 * another; offsets must grow (a range once handed out is never accepted again). The keys go
 * into the store (sae_keys) in one transaction with the takes; the ACK leaves after that
 * commit. Anything wrong: rollback, the piece forgotten, NOT_GOT. dec_keys from the slave
 * SAE hands each key out once (deleted in the same committed transaction); keys not fetched
 * within key-ttl are deleted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "e14srv.h"
#include "etsi014.h"
#include "kmsd.h"
#include "log.h"
#include "nbkme.h"
#include "qkd.h"

#define NB_TIMEOUT_MS 10000	/* a request's keys: cut, sent and acknowledged by then */
#define NB_MAX_XFER 4		/* transfers under way per remote node */
#define NB_MAX_NODES (KMS_MAX_NEIGHBOURS + KMS_MAX_REMOTES)

struct carve {				/* one piece of key shared with a node, cut in keys */
	int kind;			/* SAE_LINK, SAE_XFER; -1: none */
	uint64_t ref;			/* link block id / transfer txid */
	uint32_t len, off;		/* off: first byte not yet cut (slave: not yet named) */
	uint64_t sess;			/* master: the peer session it was taken in */
	uint8_t key[STORE_BLOCK_MAX];
};

struct nb_node {			/* a node we cut keys with */
	char id[KMS_ID_MAX + 1];
	struct carve *tx, *rx;		/* master side / slave side */
	unsigned xfer_inflight;
	uint64_t xfer_started, xfer_failed;
	/* counters (keys) */
	uint64_t cut, delivered, refused, timeouts, stored_rx, refused_rx;
	uint64_t pieces_tx, pieces_rx, wasted_bytes;
	char last_error[160];
};

enum { R_CUTTING, R_WAIT_ACK };

struct nb_req {
	struct nb_req *next;
	struct e14_req *rq;		/* NULL once the client went away */
	struct nb_node *n;
	int state;
	char master[KMS_SAE_ID_MAX + 1], slave[KMS_SAE_ID_MAX + 1];
	uint32_t number, len, cut;
	uint64_t seq, deadline_ms;
	struct e14_key *keys;
	struct msg_sae_key *where;	/* per key: piece and offset */
};

/* A dec_keys answer waiting for the store group that took its keys to commit. */
struct nb_held {
	struct nb_held *next;
	struct e14_req *rq;		/* NULL once the client went away */
	struct e14_key *keys;
	size_t n, cap;			/* keys; bytes allocated for each */
};

struct nb {
	struct kmsd *d;
	struct e14srv *srv;
	struct nb_node *nodes[NB_MAX_NODES];
	size_t n_nodes;
	struct nb_req *reqs;		/* oldest first */
	struct nb_held *held, **held_tail;
	struct msg *msg;		/* scratch (large) */
	uint64_t seq;
	int64_t last_expire_ms;
	uint64_t expired, dec_refused, dec_delivered, store_errors;
};

static int64_t nb_now(void)
{
	return now_ms();
}

static struct nb_node *node_get(struct nb *nb, const char *id)
{
	struct nb_node *n;

	for (size_t i = 0; i < nb->n_nodes; i++)
		if (!strcmp(nb->nodes[i]->id, id))
			return nb->nodes[i];
	if (nb->n_nodes == NB_MAX_NODES || !(n = calloc(1, sizeof(*n))))
		return NULL;
	snprintf(n->id, sizeof(n->id), "%s", id);
	nb->nodes[nb->n_nodes++] = n;
	return n;
}

/* Wipes and frees a piece (its bytes were consumed in the store when taken). */
static void carve_drop(struct nb_node *n, struct carve **cp, int count_waste)
{
	struct carve *c = *cp;

	if (!c)
		return;
	if (count_waste && c->kind >= 0 && c->len > c->off)
		n->wasted_bytes += c->len - c->off;
	explicit_bzero(c, sizeof(*c));
	free(c);
	*cp = NULL;
}

static struct carve *carve_new(void)
{
	struct carve *c = malloc(sizeof(*c));

	if (c) {
		c->kind = -1;
		c->len = c->off = 0;
	}
	return c;
}

/* ---- master side ---- */

static void req_unlink(struct nb *nb, struct nb_req *r)
{
	for (struct nb_req **pp = &nb->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

static void req_free(struct nb *nb, struct nb_req *r)
{
	req_unlink(nb, r);
	if (r->keys) {
		for (uint32_t i = 0; i < r->number; i++)
			if (r->keys[i].key) {
				explicit_bzero(r->keys[i].key, r->keys[i].len);
				free(r->keys[i].key);
			}
		free(r->keys);
	}
	free(r->where);
	explicit_bzero(r, sizeof(*r));
	free(r);
}

static void req_fail(struct nb *nb, struct nb_req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void req_fail(struct nb *nb, struct nb_req *r, int status, const char *fmt, ...)
{
	char msg[sizeof(r->n->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("etsi014: enc_keys %s -> %s: %s", r->master, r->slave, msg);
	snprintf(r->n->last_error, sizeof(r->n->last_error), "%s", msg);
	if (r->rq)
		e14_req_error(r->rq, status, msg, NULL, NULL, 0);
	req_free(nb, r);
}

/*
 * Takes a new piece of key shared with n into n->tx (consumed in the store, committed):
 * 0 taken, 1 none available, -1 store error.
 */
static int take_piece(struct nb *nb, struct nb_node *n)
{
	struct kmsd *d = nb->d;
	struct link *l = kmsd_find_link(d, n->id);
	struct store_block *b = malloc(sizeof(*b));
	size_t got = 0;
	int rc;

	if (!b || !l)
		goto fail;
	b->len = 0;		/* what a failed take leaves to wipe */
	if (!n->tx && !(n->tx = carve_new()))
		goto fail;
	/* durable before any key of it leaves: MSG_SAE is held until the group commits */
	if (store_begin_grouped(d->st))
		goto fail;
	if (l->quantum) {
		rc = store_take_parity_tx(d->st, n->id, l->cache.leader ? 0 : 1, 1, b, 1, &got);
		rc = rc < 0 ? -1 : got ? 0 : 1;
		if (rc == 0 && store_consume(d->st, n->id, b->id) != 0)
			rc = -1;
	} else {
		rc = store_xfer_take_tx(d->st, n->id, d->cf.node_id, 0, b);
		if (rc == 0 && store_xfer_consume(d->st, n->id, d->cf.node_id, b->id) != 0)
			rc = -1;
	}
	if (rc < 0 || (rc == 0 && store_release(d->st))) {
		store_rollback(d->st);
		explicit_bzero(b->key, b->len);
		goto fail;
	}
	if (rc == 1) {
		store_rollback(d->st);
		free(b);
		return 1;
	}
	n->tx->kind = l->quantum ? SAE_LINK : SAE_XFER;
	n->tx->ref = b->id;
	n->tx->len = b->len;
	n->tx->off = 0;
	n->tx->sess = l->connects;
	memcpy(n->tx->key, b->key, b->len);
	explicit_bzero(b->key, b->len);
	free(b);
	n->pieces_tx++;
	if (l->quantum)
		l->used_bytes += n->tx->len;
	return 0;
fail:
	free(b);
	nb->store_errors++;
	log_warnx("etsi014: cannot take key shared with %s: %s", n->id, store_errmsg(d->st));
	return -1;
}

static void start_xfers(struct nb *nb, struct nb_node *n)
{
	struct kmsd *d = nb->d;
	int rc;

	while (n->xfer_inflight < NB_MAX_XFER) {
		rc = xfer_start(d, n->id, d->cf.ppetp_block, NB_XFER_COOKIE);
		if (rc) {
			snprintf(n->last_error, sizeof(n->last_error),
				 "cannot start a key transfer: %s", xfer_strerror(rc));
			return;
		}
		n->xfer_inflight++;
		n->xfer_started++;
	}
}

/*
 * Transfer keys kept ahead for a remote slave node: while the stock (and what is under way)
 * is below NB_MAX_XFER transfers' worth, start more. Called when a master asks for status
 * (an SAE that polls status before enc_keys, as kmsd's own ETSI 014 source does, would
 * otherwise wait for a stock that only enc_keys starts) and after keys were cut.
 */
static void keep_pool(struct nb *nb, struct nb_node *n)
{
	struct kmsd *d = nb->d;
	struct link *l = kmsd_find_link(d, n->id);
	struct store_xfer_stats xs;
	uint64_t have;

	if (!l || l->quantum || !l->peer || !l->peer->hello_rx ||
	    store_xfer_stats(d->st, n->id, d->cf.node_id, &xs))
		return;
	have = xs.bytes[BS_VERIFIED][0] + (uint64_t)n->xfer_inflight * d->cf.ppetp_block;
	if (have < (uint64_t)NB_MAX_XFER * d->cf.ppetp_block)
		start_xfers(nb, n);
}

static void send_keys(struct nb *nb, struct nb_req *r)
{
	struct link *l = kmsd_find_link(nb->d, r->n->id);
	struct msg *m = nb->msg;

	memset(&m->sae, 0, offsetof(typeof(m->sae), key));
	m->type = MSG_SAE;
	m->sae.op = SAE_KEYS;
	m->sae.status = (uint8_t)r->n->tx->kind;
	m->sae.nkeys = (uint16_t)r->number;
	m->sae.seq = r->seq = ++nb->seq;
	m->sae.key_len = r->len;
	snprintf(m->sae.master, sizeof(m->sae.master), "%s", r->master);
	snprintf(m->sae.slave, sizeof(m->sae.slave), "%s", r->slave);
	memcpy(m->sae.key, r->where, r->number * sizeof(*r->where));
	if (!l || !l->peer || !l->peer->hello_rx || peer_send(l->peer, m)) {
		carve_drop(r->n, &r->n->tx, 1);
		req_fail(nb, r, 503, "node %s is unreachable", r->n->id);
		return;
	}
	r->state = R_WAIT_ACK;
}

/*
 * Cuts the keys r still lacks; sends them to the slave's node once all are cut. Returns 1
 * if r waits for key (a transfer), else 0 (sent or failed: r may be gone).
 */
static int cut(struct nb *nb, struct nb_req *r)
{
	struct nb_node *n = r->n;
	struct carve *c;
	int rc;

	while (r->cut < r->number) {
		struct link *sl = kmsd_find_link(nb->d, n->id);

		c = n->tx;
		/*
		 * A new session may be a restarted node: the piece it was cutting from is gone
		 * with its memory (taken and consumed in its store), so ours is of no use.
		 */
		if (!c || c->kind < 0 || c->len - c->off < r->len || !sl || sl->connects != c->sess) {
			carve_drop(n, &n->tx, 1);
			rc = take_piece(nb, n);
			if (rc < 0) {
				req_fail(nb, r, 503, "key store error");
				return 0;
			}
			if (rc == 1) {
				struct link *l = kmsd_find_link(nb->d, n->id);

				if (l && l->quantum) {
					req_fail(nb, r, 503, "no verified key shared with node %s "
						 "(%u of %u keys cut)", n->id, r->cut, r->number);
					return 0;
				}
				start_xfers(nb, n);
				if (!n->xfer_inflight) {
					req_fail(nb, r, 503, "no key shared with node %s and %s",
						 n->id, n->last_error);
					return 0;
				}
				return 1;
			}
			c = n->tx;
			if (c->len < r->len) {
				uint32_t have = c->len;

				carve_drop(n, &n->tx, 1);
				req_fail(nb, r, 503, "keys of %u bits do not fit the pieces of key "
					 "shared with node %s (%u bytes)", r->len * 8, n->id, have);
				return 0;
			}
		}
		struct e14_key *k = &r->keys[r->cut];

		k->key = malloc(r->len);
		if (!k->key || e14_uuid_generate(k->key_id)) {
			req_fail(nb, r, 503, "out of memory or RNG failure");
			return 0;
		}
		k->len = r->len;
		memcpy(k->key, c->key + c->off, r->len);
		memcpy(r->where[r->cut].id, k->key_id, sizeof(r->where[r->cut].id));
		r->where[r->cut].ref = c->ref;
		r->where[r->cut].off = c->off;
		c->off += r->len;
		r->cut++;
		n->cut++;
	}
	send_keys(nb, r);
	keep_pool(nb, n);
	return 0;
}

/* Requests of n waiting for key, oldest first, until one still has to wait. */
static void resume(struct nb *nb, struct nb_node *n)
{
	struct nb_req *r, *next;

	for (r = nb->reqs; r; r = next) {
		next = r->next;
		if (r->n != n || r->state != R_CUTTING)
			continue;
		if (cut(nb, r))
			return;
		next = nb->reqs;	/* the list may have changed: from the start */
	}
}

void nb_xfer_done(struct kmsd *d, const char *peer, int ok)
{
	struct nb *nb = d->nb;
	struct nb_node *n;

	if (!nb || !(n = node_get(nb, peer)))
		return;
	if (n->xfer_inflight)
		n->xfer_inflight--;
	if (!ok) {
		n->xfer_failed++;
		snprintf(n->last_error, sizeof(n->last_error), "a key transfer to %s failed",
			 peer);
	}
	resume(nb, n);
	/* waiting with nothing under way: every transfer failed */
	if (!n->xfer_inflight)
		for (struct nb_req *r = nb->reqs, *next; r; r = next) {
			next = r->next;
			if (r->n == n && r->state == R_CUTTING) {
				req_fail(nb, r, 503, "no key shared with node %s: %s", n->id,
					 n->last_error);
				next = nb->reqs;
			}
		}
}

/* ---- e14srv backend ---- */

static const struct kms_sae *local_sae(const struct kmsd *d, const char *id)
{
	const struct kms_sae *a = config_find_sae(&d->cf, id);

	return a && !strcmp(a->node, d->cf.node_id) ? a : NULL;
}

static int op_identify(void *arg, X509 *cert, const char *cn, char sae_id[E14_ID_MAX + 1])
{
	struct nb *nb = arg;
	const struct kms_config *cf = &nb->d->cf;

	if (!cn)
		return -1;
	for (size_t i = 0; i < cf->n_sae; i++)
		if (!strcmp(cf->sae[i].cn, cn) && !strcmp(cf->sae[i].node, cf->node_id)) {
			snprintf(sae_id, E14_ID_MAX + 1, "%s", cf->sae[i].id);
			return 0;
		}
	log_warnx("etsi014: client certificate CN %.64s is no SAE of this node: refused", cn);
	return -1;
}

/*
 * The slave SAE of a master request: known, at another node we hold a session with. NULL
 * after answering rq with an error.
 */
static struct nb_node *slave_node(struct nb *nb, struct e14_req *rq, const char *master,
				  const char *slave)
{
	struct kmsd *d = nb->d;
	const struct kms_sae *s = config_find_sae(&d->cf, slave);
	struct link *l;
	struct nb_node *n;

	if (!s) {
		e14_req_error(rq, 400, "slave_SAE_ID is not known to this KME", NULL, NULL, 0);
		return NULL;
	}
	if (!strcmp(master, slave)) {
		e14_req_error(rq, 400, "slave_SAE_ID is the caller itself", NULL, NULL, 0);
		return NULL;
	}
	if (!strcmp(s->node, d->cf.node_id)) {
		e14_req_error(rq, 400, "slave SAE is at this KME's own node: keys between two SAEs "
			      "of one node are not served", NULL, NULL, 0);
		return NULL;
	}
	l = kmsd_find_link(d, s->node);
	n = node_get(nb, s->node);
	if (!l || !n) {
		e14_req_error(rq, 503, "no key path to the slave SAE's node", NULL, NULL, 0);
		return NULL;
	}
	if (!l->peer || !l->peer->hello_rx) {
		e14_req_error(rq, 503, "the slave SAE's node is unreachable", NULL, NULL, 0);
		return NULL;
	}
	return n;
}

static uint64_t available_bytes(struct nb *nb, struct nb_node *n)
{
	struct kmsd *d = nb->d;
	struct link *l = kmsd_find_link(d, n->id);
	uint64_t b = n->tx && n->tx->kind >= 0 ? n->tx->len - n->tx->off : 0;

	if (l && l->quantum) {
		int64_t live = store_link_live_bytes(d->st, n->id);

		b += live > 0 ? (uint64_t)live / 2 : 0;	/* our parity: about half */
	} else {
		struct store_xfer_stats xs;

		if (store_xfer_stats(d->st, n->id, d->cf.node_id, &xs) == 0)
			b += xs.bytes[BS_VERIFIED][0];
	}
	return b;
}

static void op_status(void *arg, struct e14_req *rq, const char *master, const char *slave)
{
	struct nb *nb = arg;
	struct kmsd *d = nb->d;
	const struct kms_e14_listen *e = &d->cf.e14;
	struct nb_node *n = slave_node(nb, rq, master, slave);
	struct e14_status st;
	uint64_t keys, max;

	if (!n)
		return;
	keep_pool(nb, n);
	memset(&st, 0, sizeof(st));
	snprintf(st.source_kme_id, sizeof(st.source_kme_id), "%s", e->kme_id);
	snprintf(st.target_kme_id, sizeof(st.target_kme_id), "%s", n->id);
	snprintf(st.master_sae_id, sizeof(st.master_sae_id), "%s", master);
	snprintf(st.slave_sae_id, sizeof(st.slave_sae_id), "%s", slave);
	keys = available_bytes(nb, n) / (e->key_size / 8);
	max = d->cf.link_max_bytes / (e->key_size / 8);
	st.key_size = e->key_size;
	st.max_key_count = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
	st.stored_key_count = keys > st.max_key_count ? st.max_key_count : (uint32_t)keys;
	st.max_key_per_request = e->max_keys;
	st.max_key_size = e->max_key_size;
	st.min_key_size = 64;
	st.max_sae_id_count = 0;
	e14_req_status(rq, &st);
}

static void op_enc_keys(void *arg, struct e14_req *rq, const char *master, const char *slave,
			const struct e14_key_request *kr)
{
	struct nb *nb = arg;
	const struct kms_e14_listen *e = &nb->d->cf.e14;
	uint32_t number = kr->number ? kr->number : 1, size = kr->size ? kr->size : e->key_size;
	struct nb_node *n;
	struct nb_req *r, **pp;
	char msg[160];

	if (kr->n_additional) {
		e14_req_error(rq, 400, "additional_slave_SAE_IDs: not supported "
			      "(max_SAE_ID_count is 0)", NULL, NULL, 0);
		return;
	}
	if (size < 64 || size > e->max_key_size || size % 8) {
		snprintf(msg, sizeof(msg), "size: %u bits is not a multiple of 8 within "
			 "min_key_size..max_key_size (64..%u)", size, e->max_key_size);
		e14_req_error(rq, 400, msg, NULL, NULL, 0);
		return;
	}
	if (!(n = slave_node(nb, rq, master, slave)))
		return;
	{
		struct link *l = kmsd_find_link(nb->d, n->id);

		/* transfer keys are ppetp-block bytes: refuse before a piece is taken in vain */
		if (l && !l->quantum && size / 8 > nb->d->cf.ppetp_block) {
			snprintf(msg, sizeof(msg), "size: %u bits exceeds the pieces of key shared "
				 "with the slave SAE's node (%u bytes)", size,
				 nb->d->cf.ppetp_block);
			e14_req_error(rq, 400, msg, NULL, NULL, 0);
			return;
		}
	}
	r = calloc(1, sizeof(*r));
	if (r) {
		r->keys = calloc(number, sizeof(*r->keys));
		r->where = calloc(number, sizeof(*r->where));
	}
	if (!r || !r->keys || !r->where) {
		if (r) {
			free(r->keys);
			free(r->where);
		}
		free(r);
		e14_req_error(rq, 503, "out of memory", NULL, NULL, 0);
		return;
	}
	r->rq = rq;
	r->n = n;
	r->number = number;
	r->len = size / 8;
	r->deadline_ms = (uint64_t)nb_now() + NB_TIMEOUT_MS;
	snprintf(r->master, sizeof(r->master), "%s", master);
	snprintf(r->slave, sizeof(r->slave), "%s", slave);
	e14_req_set_data(rq, r);
	for (pp = &nb->reqs; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	/* behind requests of the same node still waiting for key: cut in arrival order */
	for (struct nb_req *o = nb->reqs; o != r; o = o->next)
		if (o->n == n && o->state == R_CUTTING)
			return;
	cut(nb, r);
}

static void held_free(struct nb_held *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->keys[i].key) {
			explicit_bzero(h->keys[i].key, h->cap);
			free(h->keys[i].key);
		}
	free(h->keys);
	free(h);
}

/*
 * The slave SAE fetches keys held for it: all or none, each taken (deleted) in the store
 * group; the answer leaves once the group committed (nb_release_held).
 */
static void op_dec_keys(void *arg, struct e14_req *rq, const char *slave, const char *master,
			const struct e14_key_ids *ids)
{
	struct nb *nb = arg;
	struct kmsd *d = nb->d;
	struct nb_held *h = calloc(1, sizeof(*h));
	const char *detail = NULL;
	size_t i, len;
	int rc = 0;

	if (h) {
		h->cap = d->cf.e14.max_key_size / 8;
		h->keys = calloc(ids->n, sizeof(*h->keys));
	}
	if (!h || !h->keys) {
		free(h);
		e14_req_error(rq, 503, "out of memory", NULL, NULL, 0);
		return;
	}
	h->n = ids->n;
	if (!config_find_sae(&d->cf, master)) {
		held_free(h);
		e14_req_error(rq, 400, "master_SAE_ID is not known to this KME", NULL, NULL, 0);
		return;
	}
	if (store_begin_grouped(d->st)) {
		held_free(h);
		nb->store_errors++;
		e14_req_error(rq, 503, "key store error", NULL, NULL, 0);
		return;
	}
	for (i = 0; i < ids->n && rc == 0; i++) {
		struct e14_key *k = &h->keys[i];

		k->key = malloc(h->cap);
		memcpy(k->key_id, ids->ids[i], sizeof(k->key_id));
		rc = k->key ? store_sae_take(d->st, ids->ids[i], slave, master, k->key, h->cap,
					     &len) : -1;
		if (rc == 0)
			k->len = len;
		else if (rc == 1)
			detail = ids->ids[i];
	}
	if (rc || store_release(d->st)) {
		store_rollback(d->st);
		if (rc == 1) {
			nb->dec_refused++;
			log_warnx("etsi014: dec_keys %s <- %s: key_ID %s is not held for this pair",
				  slave, master, detail);
			e14_req_error(rq, 400, "key_ID not found: unknown, for another SAE, or "
				      "already delivered", "key_ID_not_found", &detail, 1);
		} else {
			nb->store_errors++;
			e14_req_error(rq, 503, "key store error", NULL, NULL, 0);
		}
		held_free(h);
		return;
	}
	h->rq = rq;
	e14_req_set_data(rq, h);
	*nb->held_tail = h;
	nb->held_tail = &h->next;
	if (!store_group_pending(d->st))	/* no group commit: already durable */
		nb_release_held(d);
}

void nb_release_held(struct kmsd *d)
{
	struct nb *nb = d->nb;
	struct nb_held *h;

	if (!nb)
		return;
	while ((h = nb->held)) {
		nb->held = h->next;
		if (h->rq) {
			nb->dec_delivered += h->n;
			e14_req_keys(h->rq, h->keys, h->n);
		}
		held_free(h);
	}
	nb->held_tail = &nb->held;
}

static void op_cancel(void *arg, struct e14_req *rq)
{
	struct nb *nb = arg;
	struct nb_req *r = e14_req_data(rq);

	if (!r)
		return;
	for (struct nb_held *h = nb->held; h; h = h->next)
		if (h->rq == rq) {
			h->rq = NULL;	/* taken in the group: wiped when it commits */
			return;
		}
	r->rq = NULL;
	if (r->state == R_CUTTING) {
		/* keys cut and never named to anyone: gone with the request */
		r->n->wasted_bytes += (uint64_t)r->cut * r->len;
		req_free(nb, r);
	}
	/* waiting for the ack: kept to match it; the keys are wiped then */
}

static const struct e14srv_ops nb_ops = {
	.identify = op_identify,
	.status = op_status,
	.enc_keys = op_enc_keys,
	.dec_keys = op_dec_keys,
	.cancel = op_cancel,
};

/* ---- slave side and acknowledgements ---- */

static void send_ack(struct link *l, uint64_t seq, int got)
{
	struct msg *m = l->d->nb ? l->d->nb->msg : malloc(sizeof(*m));

	if (!m)
		return;
	memset(&m->sae, 0, offsetof(typeof(m->sae), key));
	m->type = MSG_SAE;
	m->sae.op = SAE_ACK;
	m->sae.status = got ? SAE_GOT : SAE_NOT_GOT;
	m->sae.seq = seq;
	if (l->peer)
		peer_send(l->peer, m);
	if (!l->d->nb)
		free(m);
}

/* Makes n->rx the piece (kind, ref) M names, taken from the store in the open transaction. */
static int rx_piece(struct nb *nb, struct link *l, struct nb_node *n, int kind, uint64_t ref)
{
	struct kmsd *d = nb->d;
	struct store_block *b;
	int rc;

	if (n->rx && n->rx->kind == kind && n->rx->ref == ref)
		return 0;
	carve_drop(n, &n->rx, 1);
	if ((kind == SAE_LINK) != !!l->quantum)
		return 1;
	if (!(n->rx = carve_new()) || !(b = malloc(sizeof(*b))))
		return -1;
	b->len = 0;		/* what a failed take leaves to wipe */
	if (kind == SAE_LINK) {
		/* the master cuts blocks of its parity only */
		if ((int)(ref & 1) != (l->cache.leader ? 1 : 0)) {
			free(b);
			return 1;
		}
		rc = store_take_id_tx(d->st, n->id, ref, b);
		if (rc == 0 && store_consume(d->st, n->id, ref) != 0)
			rc = -1;
	} else {
		rc = store_xfer_take_tx(d->st, n->id, n->id, ref, b);
		if (rc == 0 && store_xfer_consume(d->st, n->id, n->id, ref) != 0)
			rc = -1;
	}
	if (rc == 0) {
		n->rx->kind = kind;
		n->rx->ref = ref;
		n->rx->len = b->len;
		n->rx->off = 0;
		memcpy(n->rx->key, b->key, b->len);
		n->pieces_rx++;
	}
	explicit_bzero(b->key, b->len);
	free(b);
	return rc;
}

static void on_keys(struct nb *nb, struct link *l, const struct msg *m)
{
	struct kmsd *d = nb->d;
	struct nb_node *n = node_get(nb, l->nb.id);
	const struct kms_sae *ms = config_find_sae(&d->cf, m->sae.master);
	const char *why = NULL;
	int rc = 0, began = 0;

	if (!n) {
		send_ack(l, m->sae.seq, 0);
		return;
	}
	if (!local_sae(d, m->sae.slave))
		why = "the slave SAE is not an SAE of this node";
	else if (!ms || strcmp(ms->node, l->nb.id))
		why = "the master SAE is not an SAE of the sending node";
	else if (m->sae.key_len > d->cf.e14.max_key_size / 8)
		why = "keys larger than this node's max-key-size";
	else if (store_begin_grouped(d->st))
		rc = -1;
	else
		began = 1;
	for (uint16_t i = 0; !why && rc == 0 && i < m->sae.nkeys; i++) {
		const struct msg_sae_key *k = &m->sae.key[i];

		rc = rx_piece(nb, l, n, m->sae.status, k->ref);
		if (rc == 1) {
			why = "a piece of key this node does not hold (verified) any more";
			break;
		}
		if (rc < 0)
			break;
		if (!e14_uuid_valid(k->id) || k->off < n->rx->off ||
		    (uint64_t)k->off + m->sae.key_len > n->rx->len) {
			why = "a key range already named, or outside its piece";
			break;
		}
		rc = store_sae_add(d->st, k->id, m->sae.master, m->sae.slave,
				   n->rx->key + k->off, m->sae.key_len, nb_now());
		if (rc == 1) {
			why = "a key_ID already held";
			break;
		}
		n->rx->off = k->off + m->sae.key_len;
	}
	if (!why && rc == 0 && store_release(d->st) == 0) {
		n->stored_rx += m->sae.nkeys;
		/* the ack leaves after the commit (peer_send holds it while a group is open) */
		send_ack(l, m->sae.seq, 1);
		return;
	}
	if (!why && !rc)
		rc = -1;
	/*
	 * A piece taken in the rolled-back transaction is verified in the store again while
	 * memory holds its bytes: forget it, so that it can never be cut without its take.
	 */
	if (began) {
		store_rollback(d->st);
		carve_drop(n, &n->rx, 1);
	}
	n->refused_rx += m->sae.nkeys;
	if (rc < 0) {
		nb->store_errors++;
		why = "key store error";
	}
	log_warnx("etsi014: %u keys %s -> %s from %s refused: %s", m->sae.nkeys, m->sae.master,
		  m->sae.slave, l->nb.id, why);
	send_ack(l, m->sae.seq, 0);
}

static void on_ack(struct nb *nb, struct link *l, const struct msg *m)
{
	struct nb_req *r;

	for (r = nb->reqs; r; r = r->next)
		if (r->state == R_WAIT_ACK && r->seq == m->sae.seq && !strcmp(r->n->id, l->nb.id))
			break;
	if (!r) {
		log_debug("etsi014: late or unknown ack %" PRIu64 " from %s", m->sae.seq,
			  l->nb.id);
		return;
	}
	if (m->sae.status != SAE_GOT) {
		r->n->refused += r->number;
		carve_drop(r->n, &r->n->tx, 1);
		req_fail(nb, r, 503, "node %s could not hold the keys for the slave SAE", r->n->id);
		return;
	}
	if (r->rq) {
		r->n->delivered += r->number;
		e14_req_keys(r->rq, r->keys, r->number);
	} else {
		r->n->wasted_bytes += (uint64_t)r->number * r->len;
	}
	req_free(nb, r);
}

int nb_recv(struct link *l, const struct msg *m)
{
	struct nb *nb = l->d->nb;

	if (!nb) {
		log_warnx("etsi014: SAE message from %s but no etsi014-listen here", l->nb.id);
		if (m->sae.op == SAE_KEYS)
			send_ack(l, m->sae.seq, 0);
		return 0;
	}
	if (m->sae.op == SAE_KEYS)
		on_keys(nb, l, m);
	else
		on_ack(nb, l, m);
	return 0;
}

/* ---- life cycle, tick, kmsctl ---- */

void nb_tick(struct kmsd *d)
{
	struct nb *nb = d->nb;
	uint64_t now;
	int rc;

	if (!nb)
		return;
	now = (uint64_t)nb_now();
	for (struct nb_req *r = nb->reqs, *next; r; r = next) {
		next = r->next;
		if (now < r->deadline_ms)
			continue;
		r->n->timeouts += r->number;
		if (r->state == R_WAIT_ACK)
			carve_drop(r->n, &r->n->tx, 1);
		req_fail(nb, r, 503, "node %s did not confirm the keys in time", r->n->id);
		next = nb->reqs;
	}
	if ((int64_t)now - nb->last_expire_ms >= 10000) {
		nb->last_expire_ms = (int64_t)now;
		rc = store_sae_expire(d->st, (int64_t)now - (int64_t)d->cf.e14.key_ttl_s * 1000);
		if (rc > 0) {
			nb->expired += (uint64_t)rc;
			log_info("etsi014: %d keys no slave SAE fetched within %u s wiped", rc,
				 d->cf.e14.key_ttl_s);
		}
	}
}

int nb_check(const struct kms_e14_listen *e, char *err, size_t errlen)
{
	struct kms_kme k;

	memset(&k, 0, sizeof(k));
	snprintf(k.cert, sizeof(k.cert), "%s", e->cert);
	snprintf(k.key, sizeof(k.key), "%s", e->key);
	snprintf(k.ca, sizeof(k.ca), "%s", e->ca);
	return qkd_etsi014_check(&k, err, errlen);
}

int nb_init(struct kmsd *d)
{
	const struct kms_e14_listen *e = &d->cf.e14;
	struct e14srv_config sc = {
		.listen = e->listen, .cert = e->cert, .key = e->key, .ca = e->ca,
		.kme_id = e->kme_id, .max_connections = e->max_connections,
		.max_keys_per_request = e->max_keys,
	};
	struct nb *nb;
	char err[512];

	if (!e->listen[0])
		return 0;
	e14_init();
	nb = calloc(1, sizeof(*nb));
	if (!nb || !(nb->msg = malloc(sizeof(*nb->msg)))) {
		free(nb);
		return -1;
	}
	nb->d = d;
	nb->held_tail = &nb->held;
	nb->last_expire_ms = now_ms();
	nb->srv = e14srv_new(d->base, &sc, &nb_ops, nb, err, sizeof(err));
	if (!nb->srv) {
		log_warnx("etsi014-listen %s: %s", e->listen, err);
		free(nb->msg);
		free(nb);
		return -1;
	}
	d->nb = nb;
	log_info("etsi014: KME %s serving SAEs on https://%s", e->kme_id,
		 e14srv_address(nb->srv));
	return 0;
}

void nb_free(struct kmsd *d)
{
	struct nb *nb = d->nb;

	if (!nb)
		return;
	e14srv_free(nb->srv);		/* cancels what is pending */
	while (nb->held) {
		struct nb_held *h = nb->held;

		nb->held = h->next;
		held_free(h);
	}
	while (nb->reqs)
		req_free(nb, nb->reqs);
	for (size_t i = 0; i < nb->n_nodes; i++) {
		carve_drop(nb->nodes[i], &nb->nodes[i]->tx, 0);
		carve_drop(nb->nodes[i], &nb->nodes[i]->rx, 0);
		free(nb->nodes[i]);
	}
	free(nb->msg);
	free(nb);
	d->nb = NULL;
}

struct pend_ctx {
	struct evbuffer *o;
	int json, first;
};

static void pending_cb(void *arg, const char *master, const char *slave, uint64_t keys,
		       uint64_t bytes)
{
	struct pend_ctx *c = arg;

	if (c->json) {
		evbuffer_add_printf(c->o, "%s{\"master\":", c->first ? "" : ",");
		json_str(c->o, master);
		evbuffer_add_printf(c->o, ",\"slave\":");
		json_str(c->o, slave);
		evbuffer_add_printf(c->o, ",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", keys,
				    bytes);
	} else {
		evbuffer_add_printf(c->o, "  pending for %s from %s: %" PRIu64 " keys, %" PRIu64
				    " bytes\n", slave, master, keys, bytes);
	}
	c->first = 0;
}

static void sae_cb(void *arg, const char *sae_id, const struct e14srv_counters *s)
{
	struct pend_ctx *c = arg;

	if (c->json) {
		evbuffer_add_printf(c->o, "%s{\"sae\":", c->first ? "" : ",");
		json_str(c->o, sae_id);
		evbuffer_add_printf(c->o, ",\"requests\":%" PRIu64 ",\"keys_out\":%" PRIu64
				    ",\"s200\":%" PRIu64 ",\"s400\":%" PRIu64 ",\"s401\":%" PRIu64
				    ",\"s503\":%" PRIu64 "}", s->requests, s->keys_out, s->s200,
				    s->s400, s->s401, s->s503);
	} else {
		evbuffer_add_printf(c->o, "  requests from %s: %" PRIu64 ", keys out %" PRIu64
				    ", 200: %" PRIu64 ", 400: %" PRIu64 ", 401: %" PRIu64
				    ", 503: %" PRIu64 "\n", sae_id, s->requests, s->keys_out,
				    s->s200, s->s400, s->s401, s->s503);
	}
	c->first = 0;
}

void nb_ctl(struct kmsd *d, struct evbuffer *o, int json)
{
	struct nb *nb = d->nb;
	struct pend_ctx c = { o, json, 1 };
	struct e14srv_stats st;

	if (!nb) {
		evbuffer_add_printf(o, json ? "{\"listen\":null}\n" :
				    "not a KME (no etsi014-listen in kmsd.conf)\n");
		return;
	}
	e14srv_get_stats(nb->srv, &st);
	if (json) {
		evbuffer_add_printf(o, "{\"listen\":");
		json_str(o, e14srv_address(nb->srv));
		evbuffer_add_printf(o, ",\"kme_id\":");
		json_str(o, d->cf.e14.kme_id);
		evbuffer_add_printf(o, ",\"connections\":%u,\"pending_requests\":%zu,"
				    "\"requests\":%" PRIu64 ",\"dec_delivered\":%" PRIu64
				    ",\"dec_refused\":%" PRIu64 ",\"expired\":%" PRIu64
				    ",\"store_errors\":%" PRIu64 ",\"saes\":[", st.conns_open,
				    st.pending, st.total.requests, nb->dec_delivered,
				    nb->dec_refused, nb->expired, nb->store_errors);
		for (size_t i = 0; i < d->cf.n_sae; i++) {
			evbuffer_add_printf(o, "%s{\"sae\":", i ? "," : "");
			json_str(o, d->cf.sae[i].id);
			evbuffer_add_printf(o, ",\"node\":");
			json_str(o, d->cf.sae[i].node);
			evbuffer_add_printf(o, ",\"local\":%s}",
					    strcmp(d->cf.sae[i].node, d->cf.node_id) ? "false" : "true");
		}
		evbuffer_add_printf(o, "],\"counters\":[");
	} else {
		evbuffer_add_printf(o, "KME %s on https://%s: %u connections, %zu requests "
				    "pending, %" PRIu64 " requests\n", d->cf.e14.kme_id,
				    e14srv_address(nb->srv), st.conns_open, st.pending,
				    st.total.requests);
		for (size_t i = 0; i < d->cf.n_sae; i++)
			evbuffer_add_printf(o, "  sae %s at %s%s\n", d->cf.sae[i].id,
					    d->cf.sae[i].node,
					    strcmp(d->cf.sae[i].node, d->cf.node_id) ? "" :
					    " (this node)");
		evbuffer_add_printf(o, "  dec_keys: %" PRIu64 " delivered, %" PRIu64 " refused; "
				    "%" PRIu64 " expired unfetched\n", nb->dec_delivered,
				    nb->dec_refused, nb->expired);
	}
	e14srv_foreach_sae(nb->srv, sae_cb, &c);
	if (json)
		evbuffer_add_printf(o, "],\"nodes\":[");
	for (size_t i = 0; i < nb->n_nodes; i++) {
		const struct nb_node *n = nb->nodes[i];

		if (json) {
			evbuffer_add_printf(o, "%s{\"node\":", i ? "," : "");
			json_str(o, n->id);
			evbuffer_add_printf(o, ",\"cut\":%" PRIu64 ",\"delivered\":%" PRIu64
					    ",\"refused\":%" PRIu64 ",\"timeouts\":%" PRIu64
					    ",\"stored_rx\":%" PRIu64 ",\"refused_rx\":%" PRIu64
					    ",\"pieces_tx\":%" PRIu64 ",\"pieces_rx\":%" PRIu64
					    ",\"wasted_bytes\":%" PRIu64 ",\"xfer_started\":%" PRIu64
					    ",\"xfer_failed\":%" PRIu64 ",\"last_error\":", n->cut,
					    n->delivered, n->refused, n->timeouts, n->stored_rx,
					    n->refused_rx, n->pieces_tx, n->pieces_rx,
					    n->wasted_bytes, n->xfer_started, n->xfer_failed);
			json_str(o, n->last_error);
			evbuffer_add_printf(o, "}");
		} else {
			evbuffer_add_printf(o, "  node %s: keys cut %" PRIu64 ", delivered %" PRIu64
					    ", refused %" PRIu64 ", timed out %" PRIu64 "; held for "
					    "our SAEs %" PRIu64 ", refused %" PRIu64 "; pieces %" PRIu64
					    " out, %" PRIu64 " in; %" PRIu64 " bytes wasted; transfers %"
					    PRIu64 " (%" PRIu64 " failed)%s%s\n", n->id, n->cut,
					    n->delivered, n->refused, n->timeouts, n->stored_rx,
					    n->refused_rx, n->pieces_tx, n->pieces_rx,
					    n->wasted_bytes, n->xfer_started, n->xfer_failed,
					    n->last_error[0] ? "; last error: " : "", n->last_error);
		}
	}
	c.first = 1;
	if (json)
		evbuffer_add_printf(o, "],\"pending\":[");
	if (store_sae_pending(d->st, pending_cb, &c))
		nb->store_errors++;
	if (json)
		evbuffer_add_printf(o, "]}\n");
}
