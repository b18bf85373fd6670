// SPDX-License-Identifier: GPL-2.0
/*
 * Key transfer + PPETP relay state machines (see ppetp.h for the protocol).
 *
 * Every transaction is a record keyed by (src, txid) in a fixed table. Records holding key
 * material are live; finished ones keep only ids for replay_ms so a replayed or late
 * message is refused without touching the link store. Every key buffer is wiped with
 * explicit_bzero before it is freed or reused, including the encode buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ppetp.h"
#include "nodeid.h"

_Static_assert(PPETP_ID_MAX == KMS_NODE_ID_MAX, "node ids have one length bound");

enum role { ROLE_FREE, ROLE_SRC, ROLE_RELAY, ROLE_DST };

enum state {
	S_PENDING,		/* source: sent, waiting for ACK */
	S_CONFIRMING,		/* source: ACK verified, CONFIRM sent, waiting for DONE */
	S_WAIT,			/* destination: has one of C1 / RELAY */
	S_PREPARED,		/* destination: r1 recovered, ACK sent, waiting for CONFIRM */
	S_DONE,			/* terminal: committed (destination) or relayed */
	S_ABORTED,		/* terminal */
};

#define MAX_ATTEMPTS 8

struct tx {
	enum role role;
	enum state st;
	char src[PPETP_ID_MAX + 1], dst[PPETP_ID_MAX + 1];
	uint64_t txid;
	uint16_t len;
	uint8_t *r1;			/* source: r1; destination: r1 once prepared */
	uint8_t *c1, *k;		/* destination: the two halves */
	char prev[PPETP_ID_MAX + 1];	/* relay: where it came from */
	char next[PPETP_ID_MAX + 1];	/* relay / source: where it went */
	uint64_t deadline, retx, expire;
	uint8_t hops;
	/* source: the transfer this attempt belongs to */
	uint64_t cookie, xfer_start;
	unsigned int attempt;
	char avoid[MAX_ATTEMPTS][PPETP_ID_MAX + 1];
	size_t n_avoid;
};

struct ppetp {
	char self[PPETP_ID_MAX + 1];
	struct ppetp_ops ops;
	struct ppetp_config cfg;
	struct tx *tab;
	struct ppetp_stats st;
	uint8_t *buf;			/* encode buffer, wiped after each send */
	uint8_t *scratch;		/* link key being discarded */
};

static const char *const reason_names[] = {
	[PPETP_R_NOROUTE] = "no route",
	[PPETP_R_NOKEY] = "not enough link key",
	[PPETP_R_BADKEY] = "link key reference refused",
	[PPETP_R_TIMEOUT] = "timeout",
	[PPETP_R_MISMATCH] = "length or tag mismatch",
	[PPETP_R_TTL] = "path too long",
	[PPETP_R_CANCEL] = "cancelled by the source",
};

const char *ppetp_reason_name(int reason)
{
	if (reason > 0 && reason < __PPETP_R_LAST)
		return reason_names[reason];
	return "unknown";
}

static int reason_errno(int reason)
{
	switch (reason) {
	case PPETP_R_NOROUTE: return -EHOSTUNREACH;
	case PPETP_R_NOKEY: return -ENOSPC;
	case PPETP_R_BADKEY: return -EKEYREJECTED;
	case PPETP_R_TIMEOUT: return -ETIMEDOUT;
	case PPETP_R_MISMATCH: return -EBADMSG;
	case PPETP_R_TTL: return -ELOOP;
	default: return -ECONNABORTED;
	}
}

static int valid_id(const char *s)
{
	return node_id_valid(s);
}

/* Encoding. */

struct wbuf {
	uint8_t *p;
	size_t len, off;
	int err;
};

static void w_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->err)
		return;
	if (w->len - w->off < n) {
		w->err = 1;
		return;
	}
	memcpy(w->p + w->off, src, n);
	w->off += n;
}

static void w_u8(struct wbuf *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void w_be(struct wbuf *w, uint64_t v, int n)
{
	uint8_t b[8];

	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	w_bytes(w, b, (size_t)n);
}

static void w_id(struct wbuf *w, const char *id)
{
	if (!valid_id(id)) {
		w->err = 2;
		return;
	}
	w_u8(w, (uint8_t)strlen(id));
	w_bytes(w, id, strlen(id));
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static const uint8_t *r_bytes(struct rbuf *r, size_t n)
{
	const uint8_t *s;

	if (r->err || r->len - r->off < n) {
		r->err = 1;
		return NULL;
	}
	s = r->p + r->off;
	r->off += n;
	return s;
}

static uint64_t r_be(struct rbuf *r, int n)
{
	const uint8_t *b = r_bytes(r, (size_t)n);
	uint64_t v = 0;

	if (!b)
		return 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

static void r_id(struct rbuf *r, char *id)
{
	size_t n = (size_t)r_be(r, 1);
	const uint8_t *s;

	if (r->err || n == 0 || n > PPETP_ID_MAX) {
		r->err = 1;
		return;
	}
	s = r_bytes(r, n);
	if (!s)
		return;
	memcpy(id, s, n);
	id[n] = '\0';
	/* An embedded NUL would make the id shorter than its length byte says. */
	if (strlen(id) != n || !valid_id(id))
		r->err = 1;
}

long ppetp_encode(const struct ppetp_msg *m, uint8_t *buf, size_t buflen)
{
	struct wbuf w = { buf, buflen, 0, 0 };

	if (m->type == 0 || m->type >= __PPETP_TYPE_LAST)
		return -EINVAL;
	if ((m->flags & ~PPETP_F_ORIGIN) || (m->flags && m->type != PPETP_RELAY))
		return -EINVAL;
	w_u8(&w, PPETP_VERSION);
	w_u8(&w, m->type);
	w_be(&w, m->flags, 2);
	w_be(&w, m->txid, 8);
	w_id(&w, m->src);
	w_id(&w, m->dst);
	switch (m->type) {
	case PPETP_RELAY:
		if (m->n_path == 0 || m->n_path > PPETP_MAX_HOPS || m->len == 0 ||
		    m->len > PPETP_MAX_LEN || (!(m->flags & PPETP_F_ORIGIN) && !m->data))
			return -EINVAL;
		w_u8(&w, m->ttl);
		w_u8(&w, m->n_path);
		for (int i = 0; i < m->n_path; i++)
			w_id(&w, m->path[i]);
		w_be(&w, m->ref.block, 8);
		w_be(&w, m->ref.offset, 4);
		w_be(&w, m->len, 2);
		if (!(m->flags & PPETP_F_ORIGIN))
			w_bytes(&w, m->data, m->len);
		break;
	case PPETP_C1:
		if (m->len == 0 || m->len > PPETP_MAX_LEN || !m->data)
			return -EINVAL;
		w_be(&w, m->len, 2);
		w_bytes(&w, m->data, m->len);
		break;
	case PPETP_ACK:
		if (m->len == 0 || m->len > PPETP_MAX_LEN)
			return -EINVAL;
		w_u8(&w, m->hops);
		w_be(&w, m->len, 2);
		w_bytes(&w, m->tag, PPETP_TAG_LEN);
		break;
	case PPETP_ABORT:
		w_u8(&w, m->reason);
		break;
	case PPETP_NACK:
		w_u8(&w, m->reason);
		w_id(&w, m->reporter);
		break;
	default:
		break;
	}
	if (w.err)
		return w.err == 2 ? -EINVAL : -ENOSPC;
	return (long)w.off;
}

int ppetp_decode(const uint8_t *buf, size_t len, struct ppetp_msg *m)
{
	struct rbuf r = { buf, len, 0, 0 };

	memset(m, 0, sizeof(*m));
	if (len < 1)
		return -EBADMSG;
	if (buf[0] != PPETP_VERSION)
		return -EPROTONOSUPPORT;
	r.off = 1;
	m->type = (uint8_t)r_be(&r, 1);
	m->flags = (uint16_t)r_be(&r, 2);
	m->txid = r_be(&r, 8);
	r_id(&r, m->src);
	r_id(&r, m->dst);
	if (r.err || m->type == 0 || m->type >= __PPETP_TYPE_LAST)
		return -EBADMSG;
	if ((m->flags & ~PPETP_F_ORIGIN) || (m->flags && m->type != PPETP_RELAY))
		return -EBADMSG;
	switch (m->type) {
	case PPETP_RELAY:
		m->ttl = (uint8_t)r_be(&r, 1);
		m->n_path = (uint8_t)r_be(&r, 1);
		if (r.err || m->n_path == 0 || m->n_path > PPETP_MAX_HOPS)
			return -EBADMSG;
		for (int i = 0; i < m->n_path; i++)
			r_id(&r, m->path[i]);
		m->ref.block = r_be(&r, 8);
		m->ref.offset = (uint32_t)r_be(&r, 4);
		m->len = (uint16_t)r_be(&r, 2);
		if (r.err || m->len == 0 || m->len > PPETP_MAX_LEN)
			return -EBADMSG;
		if (!(m->flags & PPETP_F_ORIGIN))
			m->data = r_bytes(&r, m->len);
		break;
	case PPETP_C1:
		m->len = (uint16_t)r_be(&r, 2);
		if (r.err || m->len == 0 || m->len > PPETP_MAX_LEN)
			return -EBADMSG;
		m->data = r_bytes(&r, m->len);
		break;
	case PPETP_ACK: {
		const uint8_t *t;

		m->hops = (uint8_t)r_be(&r, 1);
		m->len = (uint16_t)r_be(&r, 2);
		if (r.err || m->len == 0 || m->len > PPETP_MAX_LEN)
			return -EBADMSG;
		t = r_bytes(&r, PPETP_TAG_LEN);
		if (t)
			memcpy(m->tag, t, PPETP_TAG_LEN);
		break;
	}
	case PPETP_ABORT:
		m->reason = (uint8_t)r_be(&r, 1);
		break;
	case PPETP_NACK:
		m->reason = (uint8_t)r_be(&r, 1);
		r_id(&r, m->reporter);
		break;
	default:
		break;
	}
	if (r.err || r.off != len)
		return -EBADMSG;
	return 0;
}

/* Transaction table. */

static struct tx *find(struct ppetp *p, const char *src, uint64_t txid)
{
	for (unsigned int i = 0; i < p->cfg.max_tx; i++) {
		struct tx *t = &p->tab[i];

		if (t->role != ROLE_FREE && t->txid == txid && !strcmp(t->src, src))
			return t;
	}
	return NULL;
}

static void wipe_free(uint8_t **b, size_t len)
{
	if (*b) {
		explicit_bzero(*b, len);
		free(*b);
		*b = NULL;
	}
}

static void tx_wipe(struct tx *t)
{
	wipe_free(&t->r1, t->len);
	wipe_free(&t->c1, t->len);
	wipe_free(&t->k, t->len);
}

static bool terminal(const struct tx *t)
{
	return t->st == S_DONE || t->st == S_ABORTED;
}

static void tx_finish(struct ppetp *p, struct tx *t, enum state st, uint64_t now)
{
	tx_wipe(t);
	t->st = st;
	t->expire = now + p->cfg.replay_ms;
}

/*
 * A free slot, else the finished record that expires first. Evicting replay memory is safe
 * for key material: a replayed RELAY then reaches take_recv with a reference the link
 * store has already consumed and is refused there.
 */
static struct tx *tx_alloc(struct ppetp *p, enum role role, const char *src, uint64_t txid)
{
	struct tx *victim = NULL;

	for (unsigned int i = 0; i < p->cfg.max_tx; i++) {
		struct tx *t = &p->tab[i];

		if (t->role == ROLE_FREE) {
			victim = t;
			break;
		}
		if (terminal(t) && (!victim || t->expire < victim->expire))
			victim = t;
	}
	if (!victim)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->role = role;
	strcpy(victim->src, src);
	victim->txid = txid;
	return victim;
}

static int rnd(struct ppetp *p, uint8_t *b, size_t n)
{
	if (p->ops.random)
		return p->ops.random(p->ops.arg, b, n);
	return RAND_bytes(b, (int)n) == 1 ? 0 : -EIO;
}

static void send_msg(struct ppetp *p, const char *to, const struct ppetp_msg *m)
{
	long n = ppetp_encode(m, p->buf, PPETP_MSG_MAX);

	if (n > 0)
		p->ops.send(p->ops.arg, to, p->buf, (size_t)n);
	explicit_bzero(p->buf, n > 0 ? (size_t)n : PPETP_MSG_MAX);
}

static void send_simple(struct ppetp *p, const char *to, uint8_t type, const char *src,
			const char *dst, uint64_t txid, uint8_t reason)
{
	struct ppetp_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.txid = txid;
	strcpy(m.src, src);
	strcpy(m.dst, dst);
	m.reason = reason;
	strcpy(m.reporter, p->self);
	send_msg(p, to, &m);
}

static void ack_tag(const uint8_t *r1, size_t len, const char *src, const char *dst,
		    uint64_t txid, uint8_t tag[PPETP_TAG_LEN])
{
	static const char label[] = "qotp-ppetp-ack";
	uint8_t msg[sizeof(label) + 8 + 2 * (PPETP_ID_MAX + 1)], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t off = 0;

	memcpy(msg, label, sizeof(label));
	off = sizeof(label);
	for (int i = 0; i < 8; i++)
		msg[off++] = (uint8_t)(txid >> (56 - 8 * i));
	memcpy(msg + off, src, strlen(src) + 1);
	off += strlen(src) + 1;
	memcpy(msg + off, dst, strlen(dst) + 1);
	off += strlen(dst) + 1;
	HMAC(EVP_sha256(), r1, (int)len, msg, off, md, &mdlen);
	memcpy(tag, md, PPETP_TAG_LEN);
	explicit_bzero(md, sizeof(md));
}

/* Takes and wipes the link key a refused RELAY points at, so both link ends consumed it. */
static void discard_link_key(struct ppetp *p, const char *from, const struct ppetp_msg *m)
{
	if (m->type != PPETP_RELAY)
		return;
	if (p->ops.take_recv(p->ops.arg, from, &m->ref, m->len, p->scratch) == 0)
		p->st.link_bytes_taken += m->len;
	explicit_bzero(p->scratch, m->len);
}

struct ppetp *ppetp_new(const char *self, const struct ppetp_ops *ops,
			const struct ppetp_config *cfg)
{
	struct ppetp *p;

	if (!valid_id(self) || !ops || !ops->next_hop || !ops->take_send || !ops->take_recv ||
	    !ops->send || !ops->commit || !ops->failed)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	strcpy(p->self, self);
	p->ops = *ops;
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.attempt_ms)
		p->cfg.attempt_ms = 5000;
	if (!p->cfg.confirm_ms)
		p->cfg.confirm_ms = 10000;
	if (!p->cfg.retx_ms)
		p->cfg.retx_ms = 1000;
	if (!p->cfg.hold_ms)
		p->cfg.hold_ms = 30000;
	/* The destination must hold r1 at least as long as the source may still confirm. */
	if (p->cfg.hold_ms < p->cfg.attempt_ms + p->cfg.confirm_ms)
		p->cfg.hold_ms = p->cfg.attempt_ms + p->cfg.confirm_ms;
	if (!p->cfg.replay_ms)
		p->cfg.replay_ms = 120000;
	if (p->cfg.replay_ms < p->cfg.hold_ms)
		p->cfg.replay_ms = p->cfg.hold_ms;
	if (!p->cfg.max_attempts)
		p->cfg.max_attempts = 3;
	if (p->cfg.max_attempts > MAX_ATTEMPTS)
		p->cfg.max_attempts = MAX_ATTEMPTS;
	if (!p->cfg.max_tx)
		p->cfg.max_tx = 1024;
	p->tab = calloc(p->cfg.max_tx, sizeof(*p->tab));
	p->buf = malloc(PPETP_MSG_MAX);
	p->scratch = malloc(PPETP_MAX_LEN);
	if (!p->tab || !p->buf || !p->scratch) {
		ppetp_free(p);
		return NULL;
	}
	return p;
}

void ppetp_free(struct ppetp *p)
{
	if (!p)
		return;
	if (p->tab)
		for (unsigned int i = 0; i < p->cfg.max_tx; i++)
			tx_wipe(&p->tab[i]);
	free(p->tab);
	free(p->buf);
	free(p->scratch);
	free(p);
}

/* Source. */

static int start_attempt(struct ppetp *p, const char *dst, uint16_t len, uint64_t cookie,
			 unsigned int attempt, const struct tx *prev_attempt, uint64_t now)
{
	const char *avoid[MAX_ATTEMPTS] = { NULL };
	char nh[PPETP_ID_MAX + 1];
	struct ppetp_keyref ref;
	struct ppetp_msg m;
	struct tx *t;
	uint64_t txid = 0;
	uint8_t *k;
	size_t n_avoid = prev_attempt ? prev_attempt->n_avoid : 0;
	int rc;

	for (size_t i = 0; i < n_avoid; i++)
		avoid[i] = prev_attempt->avoid[i];
	rc = p->ops.next_hop(p->ops.arg, dst, avoid, n_avoid, nh);
	/* Nothing left beside the hops that failed: the plain route may have healed. */
	if (rc && n_avoid)
		rc = p->ops.next_hop(p->ops.arg, dst, NULL, 0, nh);
	if (rc)
		return -EHOSTUNREACH;
	do {
		if (rnd(p, (uint8_t *)&txid, sizeof(txid)))
			return -EIO;
	} while (txid == 0 || find(p, p->self, txid));
	t = tx_alloc(p, ROLE_SRC, p->self, txid);
	if (!t)
		return -EBUSY;
	strcpy(t->dst, dst);
	strcpy(t->next, nh);
	t->len = len;
	t->cookie = cookie;
	t->attempt = attempt;
	t->xfer_start = prev_attempt ? prev_attempt->xfer_start : now;
	if (prev_attempt) {
		memcpy(t->avoid, prev_attempt->avoid, sizeof(t->avoid));
		t->n_avoid = prev_attempt->n_avoid;
	}
	t->r1 = malloc(len);
	k = malloc(len);
	if (!t->r1 || !k) {
		free(k);
		tx_finish(p, t, S_ABORTED, now);
		return -ENOMEM;
	}
	rc = rnd(p, t->r1, len);
	if (!rc)
		rc = p->ops.take_send(p->ops.arg, nh, len, k, &ref);
	if (rc) {
		explicit_bzero(k, len);
		free(k);
		tx_finish(p, t, S_ABORTED, now);
		return rc < 0 ? rc : -EIO;
	}
	p->st.link_bytes_taken += len;
	for (size_t i = 0; i < len; i++)
		k[i] ^= t->r1[i];		/* k now holds c1 = r1 ^ k_AX */

	memset(&m, 0, sizeof(m));
	m.type = PPETP_C1;
	m.txid = txid;
	strcpy(m.src, p->self);
	strcpy(m.dst, dst);
	m.len = len;
	m.data = k;
	send_msg(p, dst, &m);
	explicit_bzero(k, len);
	free(k);

	memset(&m, 0, sizeof(m));
	m.type = PPETP_RELAY;
	m.flags = PPETP_F_ORIGIN;
	m.txid = txid;
	strcpy(m.src, p->self);
	strcpy(m.dst, dst);
	m.ttl = PPETP_MAX_HOPS;
	m.n_path = 1;
	strcpy(m.path[0], p->self);
	m.ref = ref;
	m.len = len;
	send_msg(p, nh, &m);

	t->st = S_PENDING;
	t->deadline = now + p->cfg.attempt_ms;
	return 0;
}

/* An attempt failed before commit: tell the destination to drop its half, retry or fail. */
static void attempt_failed(struct ppetp *p, struct tx *t, int reason, uint64_t now)
{
	struct tx prev = *t;
	int rc = reason_errno(reason);

	/* prev keeps only ids and the avoid list: key pointers are not copied over. */
	prev.r1 = prev.c1 = prev.k = NULL;
	send_simple(p, t->dst, PPETP_ABORT, p->self, t->dst, t->txid, PPETP_R_CANCEL);
	tx_finish(p, t, S_ABORTED, now);
	p->st.attempts_failed++;
	if (prev.n_avoid < MAX_ATTEMPTS) {
		bool dup = false;

		for (size_t i = 0; i < prev.n_avoid; i++)
			dup |= !strcmp(prev.avoid[i], prev.next);
		if (!dup)
			strcpy(prev.avoid[prev.n_avoid++], prev.next);
	}
	while (prev.attempt + 1 < p->cfg.max_attempts) {
		prev.attempt++;
		rc = start_attempt(p, prev.dst, prev.len, prev.cookie, prev.attempt, &prev, now);
		if (!rc)
			return;
	}
	p->st.failed++;
	p->ops.failed(p->ops.arg, prev.cookie, prev.dst, rc);
}

int ppetp_start(struct ppetp *p, const char *dst, size_t len, uint64_t cookie, uint64_t now_ms)
{
	int rc;

	if (!valid_id(dst) || !strcmp(dst, p->self) || len == 0 || len > PPETP_MAX_LEN)
		return -EINVAL;
	rc = start_attempt(p, dst, (uint16_t)len, cookie, 0, NULL, now_ms);
	if (!rc)
		p->st.started++;
	return rc;
}

static int src_ack(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, p->self, m->txid);
	uint8_t tag[PPETP_TAG_LEN];

	if (!t || t->role != ROLE_SRC)
		return -ENOENT;
	if (strcmp(from, t->dst))
		return -EPERM;
	if (t->st != S_PENDING)
		return -EALREADY;
	if (m->len != t->len) {
		attempt_failed(p, t, PPETP_R_MISMATCH, now);
		return -EMSGSIZE;
	}
	ack_tag(t->r1, t->len, p->self, t->dst, t->txid, tag);
	if (CRYPTO_memcmp(tag, m->tag, PPETP_TAG_LEN)) {
		/* The relay delivered a different k_AX: neither end may use it. */
		attempt_failed(p, t, PPETP_R_MISMATCH, now);
		return -EBADMSG;
	}
	t->hops = m->hops;
	p->st.latency_ms_total += now - t->xfer_start;
	p->st.hops_total += m->hops;
	t->st = S_CONFIRMING;
	t->deadline = now + p->cfg.confirm_ms;
	t->retx = now + p->cfg.retx_ms;
	send_simple(p, t->dst, PPETP_CONFIRM, p->self, t->dst, t->txid, 0);
	return 0;
}

static int src_done(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, p->self, m->txid);

	if (!t || t->role != ROLE_SRC)
		return -ENOENT;
	if (strcmp(from, t->dst))
		return -EPERM;
	if (t->st != S_CONFIRMING)
		return -EALREADY;
	p->ops.commit(p->ops.arg, t->dst, p->self, t->txid, t->cookie, t->r1, t->len);
	p->st.completed++;
	p->st.bytes_delivered += t->len;
	tx_finish(p, t, S_DONE, now);
	return 0;
}

/* Destination. */

static void dst_abort(struct ppetp *p, struct tx *t, int reason, uint64_t now)
{
	send_simple(p, t->src, PPETP_ABORT, t->src, p->self, t->txid, (uint8_t)reason);
	tx_finish(p, t, S_ABORTED, now);
}

static int dst_half(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, m->src, m->txid);
	struct ppetp_msg a;
	int rc;

	if (!t) {
		t = tx_alloc(p, ROLE_DST, m->src, m->txid);
		if (!t) {
			discard_link_key(p, from, m);
			return -EBUSY;
		}
		strcpy(t->dst, p->self);
		t->len = m->len;
		t->st = S_WAIT;
		t->deadline = now + p->cfg.hold_ms;
	}
	if (t->role != ROLE_DST || t->st != S_WAIT ||
	    (m->type == PPETP_RELAY && t->k) || (m->type == PPETP_C1 && t->c1)) {
		discard_link_key(p, from, m);
		return -EALREADY;
	}
	if (m->len != t->len) {
		discard_link_key(p, from, m);
		dst_abort(p, t, PPETP_R_MISMATCH, now);
		return -EMSGSIZE;
	}
	if (m->type == PPETP_RELAY) {
		t->k = malloc(t->len);
		if (!t->k) {
			dst_abort(p, t, PPETP_R_NOKEY, now);
			return -ENOMEM;
		}
		rc = p->ops.take_recv(p->ops.arg, from, &m->ref, m->len, t->k);
		if (rc) {
			dst_abort(p, t, PPETP_R_BADKEY, now);
			return rc < 0 ? rc : -EKEYREJECTED;
		}
		p->st.link_bytes_taken += m->len;
		if (!(m->flags & PPETP_F_ORIGIN))
			for (size_t i = 0; i < t->len; i++)
				t->k[i] ^= m->data[i];
		t->hops = m->n_path;
	} else {
		t->c1 = malloc(t->len);
		if (!t->c1) {
			dst_abort(p, t, PPETP_R_NOKEY, now);
			return -ENOMEM;
		}
		memcpy(t->c1, m->data, t->len);
	}
	if (!t->c1 || !t->k)
		return 0;

	/* Both halves: r1 = c1 ^ k_AX. Prepared, not usable until CONFIRM. */
	t->r1 = t->c1;
	t->c1 = NULL;
	for (size_t i = 0; i < t->len; i++)
		t->r1[i] ^= t->k[i];
	wipe_free(&t->k, t->len);
	t->st = S_PREPARED;
	t->deadline = now + p->cfg.hold_ms;
	memset(&a, 0, sizeof(a));
	a.type = PPETP_ACK;
	a.txid = t->txid;
	strcpy(a.src, t->src);
	strcpy(a.dst, p->self);
	a.hops = t->hops;
	a.len = t->len;
	ack_tag(t->r1, t->len, t->src, p->self, t->txid, a.tag);
	send_msg(p, t->src, &a);
	return 0;
}

static int dst_confirm(struct ppetp *p, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, m->src, m->txid);

	if (!t || t->role != ROLE_DST)
		return -ENOENT;
	if (t->st == S_DONE) {
		/* Our DONE was lost: say it again, commit nothing twice. */
		send_simple(p, t->src, PPETP_DONE, t->src, p->self, t->txid, 0);
		return -EALREADY;
	}
	if (t->st != S_PREPARED)
		return -EALREADY;
	p->ops.commit(p->ops.arg, t->src, t->src, t->txid, 0, t->r1, t->len);
	p->st.received++;
	tx_finish(p, t, S_DONE, now);
	send_simple(p, t->src, PPETP_DONE, t->src, p->self, t->txid, 0);
	return 0;
}

static int recv_abort(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, m->src, m->txid);

	if (!strcmp(m->src, p->self)) {
		/* From the destination to us, the source. */
		if (!t || t->role != ROLE_SRC)
			return -ENOENT;
		if (strcmp(from, t->dst))
			return -EPERM;
		if (t->st != S_PENDING && t->st != S_CONFIRMING)
			return -EALREADY;
		attempt_failed(p, t, m->reason, now);
		return 0;
	}
	if (strcmp(m->dst, p->self) || strcmp(from, m->src))
		return -EPERM;
	if (!t) {
		/* Aborted before anything arrived: remember, so late halves are refused. */
		t = tx_alloc(p, ROLE_DST, m->src, m->txid);
		if (!t)
			return -EBUSY;
		strcpy(t->dst, p->self);
		tx_finish(p, t, S_ABORTED, now);
		return 0;
	}
	if (t->role != ROLE_DST || terminal(t))
		return -EALREADY;
	tx_finish(p, t, S_ABORTED, now);
	return 0;
}

/* Relay. */

static void nack(struct ppetp *p, const char *to, const struct ppetp_msg *m, int reason)
{
	send_simple(p, to, PPETP_NACK, m->src, m->dst, m->txid, (uint8_t)reason);
}

static int relay(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	const char *avoid[PPETP_MAX_HOPS] = { NULL };
	struct ppetp_msg out;
	struct tx *t = find(p, m->src, m->txid);
	uint8_t *k = NULL, *ko = NULL;
	int rc = 0;

	if (t) {
		discard_link_key(p, from, m);
		return -EALREADY;
	}
	t = tx_alloc(p, ROLE_RELAY, m->src, m->txid);
	if (!t) {
		discard_link_key(p, from, m);
		return -EBUSY;
	}
	strcpy(t->dst, m->dst);
	strcpy(t->prev, from);
	t->len = m->len;
	tx_finish(p, t, S_ABORTED, now);	/* holds no key; becomes S_DONE once sent */

	k = malloc(m->len);
	ko = malloc(m->len);
	if (!k || !ko) {
		nack(p, from, m, PPETP_R_NOKEY);
		rc = -ENOMEM;
		goto out;
	}
	rc = p->ops.take_recv(p->ops.arg, from, &m->ref, m->len, k);
	if (rc) {
		nack(p, from, m, PPETP_R_BADKEY);
		rc = rc < 0 ? rc : -EKEYREJECTED;
		goto out;
	}
	p->st.link_bytes_taken += m->len;
	if (m->ttl <= 1 || m->n_path >= PPETP_MAX_HOPS) {
		nack(p, from, m, PPETP_R_TTL);
		rc = -ELOOP;
		goto out;
	}
	for (int i = 0; i < m->n_path; i++)
		avoid[i] = m->path[i];
	if (p->ops.next_hop(p->ops.arg, m->dst, avoid, m->n_path, t->next)) {
		nack(p, from, m, PPETP_R_NOROUTE);
		rc = -EHOSTUNREACH;
		goto out;
	}
	if (!(m->flags & PPETP_F_ORIGIN))
		for (size_t i = 0; i < m->len; i++)
			k[i] ^= m->data[i];		/* k = k_AX */
	memset(&out, 0, sizeof(out));
	rc = p->ops.take_send(p->ops.arg, t->next, m->len, ko, &out.ref);
	if (rc) {
		nack(p, from, m, PPETP_R_NOKEY);
		rc = rc < 0 ? rc : -ENOSPC;
		goto out;
	}
	p->st.link_bytes_taken += m->len;
	for (size_t i = 0; i < m->len; i++)
		ko[i] ^= k[i];				/* ko = k_AX ^ k_XY */
	out.type = PPETP_RELAY;
	out.txid = m->txid;
	strcpy(out.src, m->src);
	strcpy(out.dst, m->dst);
	out.ttl = (uint8_t)(m->ttl - 1);
	out.n_path = (uint8_t)(m->n_path + 1);
	memcpy(out.path, m->path, sizeof(out.path[0]) * m->n_path);
	strcpy(out.path[m->n_path], p->self);
	out.len = m->len;
	out.data = ko;
	send_msg(p, t->next, &out);
	t->st = S_DONE;
	p->st.relayed++;
	p->st.relayed_bytes += m->len;
out:
	if (k) {
		explicit_bzero(k, m->len);
		free(k);
	}
	if (ko) {
		explicit_bzero(ko, m->len);
		free(ko);
	}
	return rc;
}

/* A NACK walks back along the relay path to the source. */
static int recv_nack(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	struct tx *t = find(p, m->src, m->txid);

	if (!t)
		return -ENOENT;
	if (t->role == ROLE_RELAY) {
		if (strcmp(from, t->next) || t->st != S_DONE)
			return -EPERM;
		t->st = S_ABORTED;	/* forward one NACK only */
		nack(p, t->prev, m, m->reason);
		return 0;
	}
	if (t->role != ROLE_SRC || strcmp(from, t->next))
		return -EPERM;
	if (t->st != S_PENDING)
		return -EALREADY;
	attempt_failed(p, t, m->reason, now);
	return 0;
}

static bool on_path(const struct ppetp_msg *m, const char *id)
{
	for (int i = 0; i < m->n_path; i++)
		if (!strcmp(m->path[i], id))
			return true;
	return false;
}

static int dispatch(struct ppetp *p, const char *from, const struct ppetp_msg *m, uint64_t now)
{
	bool to_me = !strcmp(m->dst, p->self), from_me = !strcmp(m->src, p->self);

	if (!valid_id(from) || !strcmp(m->src, m->dst))
		return -EPERM;
	switch (m->type) {
	case PPETP_RELAY:
		/* The sender appended itself; we must not be on the path already. */
		if (from_me || strcmp(m->path[0], m->src) ||
		    strcmp(m->path[m->n_path - 1], from) || on_path(m, p->self))
			return -EPERM;
		return to_me ? dst_half(p, from, m, now) : relay(p, from, m, now);
	case PPETP_C1:
		if (!to_me || strcmp(from, m->src))
			return -EPERM;
		return dst_half(p, from, m, now);
	case PPETP_ACK:
		if (!from_me)
			return -EPERM;
		return src_ack(p, from, m, now);
	case PPETP_CONFIRM:
		if (!to_me || strcmp(from, m->src))
			return -EPERM;
		return dst_confirm(p, m, now);
	case PPETP_DONE:
		if (!from_me)
			return -EPERM;
		return src_done(p, from, m, now);
	case PPETP_ABORT:
		return recv_abort(p, from, m, now);
	case PPETP_NACK:
		return recv_nack(p, from, m, now);
	}
	return -EBADMSG;
}

int ppetp_recv(struct ppetp *p, const char *from, const uint8_t *buf, size_t len,
	       uint64_t now_ms)
{
	struct ppetp_msg *m = malloc(sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	rc = ppetp_decode(buf, len, m);
	if (!rc)
		rc = dispatch(p, from, m, now_ms);
	if (rc)
		p->st.rejected++;
	explicit_bzero(m, sizeof(*m));
	free(m);
	return rc;
}

void ppetp_tick(struct ppetp *p, uint64_t now)
{
	for (unsigned int i = 0; i < p->cfg.max_tx; i++) {
		struct tx *t = &p->tab[i];

		switch (t->role == ROLE_FREE ? -1 : (int)t->st) {
		case S_PENDING:
			if (now >= t->deadline)
				attempt_failed(p, t, PPETP_R_TIMEOUT, now);
			break;
		case S_CONFIRMING:
			if (now >= t->deadline) {
				/* No DONE: C may or may not have committed; we do not. */
				uint64_t cookie = t->cookie;
				char dst[PPETP_ID_MAX + 1];

				strcpy(dst, t->dst);
				tx_finish(p, t, S_ABORTED, now);
				p->st.failed++;
				p->ops.failed(p->ops.arg, cookie, dst, -ETIMEDOUT);
			} else if (now >= t->retx) {
				send_simple(p, t->dst, PPETP_CONFIRM, p->self, t->dst, t->txid, 0);
				t->retx = now + p->cfg.retx_ms;
			}
			break;
		case S_WAIT:
		case S_PREPARED:
			if (now >= t->deadline)
				dst_abort(p, t, PPETP_R_TIMEOUT, now);
			break;
		case S_DONE:
		case S_ABORTED:
			if (now >= t->expire) {
				tx_wipe(t);
				memset(t, 0, sizeof(*t));
			}
			break;
		default:
			break;
		}
	}
}

void ppetp_get_stats(const struct ppetp *p, struct ppetp_stats *st)
{
	*st = p->st;
	st->active = 0;
	for (unsigned int i = 0; i < p->cfg.max_tx; i++)
		if (p->tab[i].role != ROLE_FREE && !terminal(&p->tab[i]))
			st->active++;
}
