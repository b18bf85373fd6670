// SPDX-License-Identifier: GPL-2.0
/*
 * QKD source: link key from a pair of ETSI GS QKD 014 KMEs (Documentation/etsi014.md).
 *
 * Each end of the link is an SAE of its own site's KME. The end with the lower node id is
 * the master: it asks its KME for keys shared with the neighbour's SAE (status, then
 * enc_keys), makes one link block of the keys of one answer, keeps the block in memory and
 * names its key_IDs to the neighbour (MSG_QKD QKD_IDS). The slave fetches those keys from
 * its own KME (dec_keys), stores the block under the master's block id and answers QKD_ACK
 * GOT; only then does the master store its copy. A block the slave could not obtain (the
 * KME refused, withheld or lost a key, the session dropped, no answer in time) is wiped on
 * both ends and counted; key caching then verifies the stored blocks as for any link.
 *
 * One HTTPS request is in flight per link at a time; a failed request closes the
 * connection and is retried with backoff, and never stops the other links. The master asks
 * for key as fast as the KME's stored_key_count allows: at once while it holds a block's
 * worth, polling from 20 ms up to 1 s while it does not.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "caching.h"
#include "codec.h"
#include "e14cli.h"
#include "kmsd.h"
#include "etsi014.h"
#include "log.h"
#include "qkd.h"
#include "store.h"

_Static_assert(KMS_SAE_ID_MAX == E14_ID_MAX, "one SAE_ID bound");
_Static_assert(MSG_QKD_KEY_ID_LEN == E14_UUID_LEN, "key_IDs are UUIDs");

#define E14_PENDING_MAX 8		/* master: blocks waiting for the slave's answer */
#define E14_PENDING_MS 30000		/* ... at most this long */
#define E14_QUEUE_MAX 16		/* slave: blocks named, not yet fetched */
#define E14_TRIES 3			/* slave: dec_keys attempts per block on 5xx / I/O */
#define E14_HTTP_TIMEOUT_S 10
#define E14_POLL_MIN_MS 20
#define E14_POLL_MAX_MS 1000
#define E14_BACKOFF_MIN_MS 250

enum e14_call { CALL_NONE, CALL_STATUS, CALL_ENC, CALL_DEC };

struct e14_pend {
	uint64_t block;
	uint8_t *key;
	size_t len;
	int64_t sent_ms;
};

struct e14_fetch {
	uint64_t block;
	uint32_t key_len;
	uint16_t nkeys;
	unsigned tries;
	char (*ids)[E14_UUID_LEN + 1];
};

struct e14_src {
	struct qkd_source src;
	struct event_base *base;
	struct kms_neighbour nb;
	struct kms_kme kme;
	struct qkd_callbacks cb;
	void *arg;
	unsigned backoff_max_ms;
	int master, peer_up, paused, up, closing;
	uint64_t epoch;			/* bumped when the peer session goes down */
	SSL_CTX *ctx;
	struct evdns_base *dns;		/* resolves a KME's DNS name without blocking */
	struct evhttp_connection *conn;
	int conn_dead;
	enum evhttp_request_error http_err;	/* of the request in flight */
	enum e14_call call;		/* the request in flight */
	uint64_t call_epoch;
	struct event *step_ev, *tick_ev;
	unsigned poll_ms, backoff_ms;
	int64_t not_before_ms;		/* no call before this (backoff), monotonic */
	unsigned refused_run;		/* master: blocks refused in a row by the slave */
	uint64_t next_id;
	uint32_t ask_number, ask_bits;	/* the enc_keys in flight */
	uint64_t avail_bits;		/* key the last status reported, less what we took */
	struct e14_pend pend[E14_PENDING_MAX];
	size_t n_pend;
	struct e14_fetch fq[E14_QUEUE_MAX];
	size_t fq_head, fq_n;
	struct e14_status st;
	int warned_small;
	/* counters for kmsctl */
	uint64_t requests, failures, keys, blocks_named, blocks_stored, blocks_refused;
	uint64_t blocks_lost;
	int last_http;
	char last_error[200];
};

static void e14_step(struct e14_src *c);

static int64_t mono_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_up(struct e14_src *c, int up)
{
	if (c->up != up) {
		c->up = up;
		c->cb.status(c->arg, up);
	}
}

static void schedule(struct e14_src *c, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_del(c->step_ev);
	event_add(c->step_ev, &tv);
}

/* A failed call: logged when its reason changes, link down, retried after a backoff. */
static void failed(struct e14_src *c, int http, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failed(struct e14_src *c, int http, const char *fmt, ...)
{
	char msg[sizeof(c->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->failures++;
	c->last_http = http;
	c->avail_bits = 0;
	if (strcmp(msg, c->last_error))
		log_warnx("link %s: ETSI 014 KME %s: %s", c->nb.id, c->kme.url, msg);
	else
		log_debug("link %s: ETSI 014 KME %s: %s", c->nb.id, c->kme.url, msg);
	snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
	if (http == 0 || http >= 500)
		set_up(c, 0);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : E14_BACKOFF_MIN_MS;
	if (c->backoff_ms > c->backoff_max_ms)
		c->backoff_ms = c->backoff_max_ms;
	c->not_before_ms = mono_now_ms() + c->backoff_ms;
	if (!event_pending(c->step_ev, EV_TIMEOUT, NULL))
		schedule(c, 0);
}

/*
 * A call answered. The backoff and the last error are reset only when a whole cycle
 * worked (enc_keys on the master, dec_keys on the slave): a KME that answers status but
 * refuses every enc_keys must not be called every 250 ms forever.
 */
static void succeeded(struct e14_src *c, int cycle)
{
	c->last_http = 200;
	set_up(c, 1);
	if (!cycle)
		return;
	c->backoff_ms = 0;
	c->not_before_ms = 0;
	if (c->last_error[0])
		log_info("link %s: ETSI 014 KME %s answers again", c->nb.id, c->kme.url);
	c->last_error[0] = '\0';
}

/* ---- HTTPS client ---------------------------------------------------------------- */

static void conn_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct e14_src *c = arg;

	if (conn == c->conn)
		c->conn_dead = 1;
}

static struct evhttp_connection *get_conn(struct e14_src *c)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (c->conn && !c->conn_dead)
		return c->conn;
	if (c->conn) {
		evhttp_connection_free(c->conn);
		c->conn = NULL;
	}
	ssl = SSL_new(c->ctx);
	if (!ssl)
		return NULL;
	/* the KME's certificate must name the host of its url: an IP address or a DNS name */
	if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->kme.host) &&
	    (!SSL_set1_host(ssl, c->kme.host) || !SSL_set_tlsext_host_name(ssl, c->kme.host))) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->conn = evhttp_connection_base_bufferevent_new(c->base, c->dns, bev, c->kme.host,
							 (unsigned short)c->kme.port);
	if (!c->conn) {
		bufferevent_free(bev);
		return NULL;
	}
	c->conn_dead = 0;
	evhttp_connection_set_timeout(c->conn, E14_HTTP_TIMEOUT_S);
	evhttp_connection_set_retries(c->conn, 0);
	evhttp_connection_set_max_body_size(c->conn, E14_MAX_BODY);
	evhttp_connection_set_closecb(c->conn, conn_close_cb, c);
	return c->conn;
}

static void request_error(enum evhttp_request_error e, void *arg)
{
	struct e14_src *c = arg;

	c->http_err = e;
}

static void request_done(struct evhttp_request *req, void *arg);

/* Starts one call; body (NULL for GET) is wiped by the caller. 0, or -1 (logged). */
static int start_call(struct e14_src *c, enum e14_call call, const char *path,
		      const char *body, size_t blen, size_t max_answer)
{
	struct evhttp_connection *conn = get_conn(c);
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char host[KMS_ADDR_MAX + 16];

	if (!conn) {
		failed(c, 0, "cannot set up a TLS connection (out of memory or bad host `%s')",
		       c->kme.host);
		return -1;
	}
	req = evhttp_request_new(request_done, c);
	if (!req) {
		failed(c, 0, "out of memory");
		return -1;
	}
	evhttp_request_set_error_cb(req, request_error);
	c->http_err = EVREQ_HTTP_BUFFER_ERROR;	/* what a refused connect reports */
	h = evhttp_request_get_output_headers(req);
	snprintf(host, sizeof(host), strchr(c->kme.host, ':') ? "[%s]:%u" : "%s:%u",
		 c->kme.host, c->kme.port);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Accept", "application/json");
	if (body) {
		evhttp_add_header(h, "Content-Type", "application/json");
		if (evbuffer_add(evhttp_request_get_output_buffer(req), body, blen)) {
			evhttp_request_free(req);
			failed(c, 0, "out of memory");
			return -1;
		}
	}
	c->call = call;
	c->call_epoch = c->epoch;
	c->requests++;
	/* an authenticated KME all the same: no answer larger than this call can need */
	evhttp_connection_set_max_body_size(conn, (ev_ssize_t)max_answer);
	if (evhttp_make_request(conn, req, body ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path)) {
		c->call = CALL_NONE;
		c->conn_dead = 1;
		failed(c, 0, "cannot send the request %s", path);
		return -1;
	}
	/*
	 * evhttp writes headers and body as two TLS records: without TCP_NODELAY the second
	 * waits for the KME's delayed ACK, about 40 ms a call. The socket exists once the
	 * connect started (at once for an IP address; after the lookup for a DNS name, and
	 * then from the connection's next request on).
	 */
	{
		evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
		int one = 1;

		if (fd >= 0)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	log_debug("link %s: ETSI 014 %s %s", c->nb.id, body ? "POST" : "GET", path);
	return 0;
}

/* ---- master: status, enc_keys, one block per answer -------------------------------- */

static void pend_drop(struct e14_src *c, size_t i)
{
	explicit_bzero(c->pend[i].key, c->pend[i].len);
	free(c->pend[i].key);
	c->pend[i] = c->pend[--c->n_pend];
	memset(&c->pend[c->n_pend], 0, sizeof(c->pend[0]));
}

static void master_status(struct e14_src *c)
{
	char path[64 + E14_ID_MAX];

	snprintf(path, sizeof(path), "/api/v1/keys/%s/status", c->nb.peer_sae_id);
	start_call(c, CALL_STATUS, path, NULL, 0, 64 * 1024);
}

/* How many keys of which size make one link block of about etsi_block bytes. */
static int block_shape(struct e14_src *c, uint32_t *number, uint32_t *bits)
{
	const struct e14_status *s = &c->st;
	uint64_t want = (uint64_t)c->nb.etsi_block * 8, size = want, n, avail;

	if (s->max_key_size && size > s->max_key_size)
		size = s->max_key_size;
	if (size > E14_MAX_KEY_BITS)
		size = E14_MAX_KEY_BITS;
	size &= ~7ULL;
	if (size < s->min_key_size)
		size = (s->min_key_size + 7) & ~7U;
	if (size == 0 || size > E14_MAX_KEY_BITS)
		return -1;
	n = (want + size - 1) / size;
	if (n * size > (uint64_t)STORE_BLOCK_MAX * 8)
		n = (uint64_t)STORE_BLOCK_MAX * 8 / size;
	if (s->max_key_per_request && n > s->max_key_per_request)
		n = s->max_key_per_request;
	if (n > MSG_QKD_MAX_KEYS)
		n = MSG_QKD_MAX_KEYS;
	if (n == 0)
		return -1;
	if (n * size / 8 <= CACHE_STRIP)
		return -2;	/* caching spends that much of a block: nothing would be left */
	*number = (uint32_t)n;
	*bits = (uint32_t)size;
	avail = (uint64_t)s->stored_key_count * s->key_size;
	c->avail_bits = avail;
	return avail >= n * size;
}

static void master_enc(struct e14_src *c)
{
	struct e14_key_request r;
	char path[64 + E14_ID_MAX];
	size_t blen;
	char *body;

	memset(&r, 0, sizeof(r));
	r.number = c->ask_number;
	r.size = c->ask_bits;
	body = e14_format_key_request(&r, &blen);
	if (!body) {
		failed(c, 0, "out of memory");
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/keys/%s/enc_keys", c->nb.peer_sae_id);
	start_call(c, CALL_ENC, path, body, blen,
		   (size_t)c->ask_number * (c->ask_bits / 6 + 128) + 64 * 1024);
	e14_text_free(body);
}

static void status_answer(struct e14_src *c, const char *body, size_t len)
{
	char err[200];
	int r;

	if (e14_parse_status(body, len, &c->st, err, sizeof(err))) {
		failed(c, 200, "status answer: %s", err);
		return;
	}
	succeeded(c, 0);
	r = block_shape(c, &c->ask_number, &c->ask_bits);
	if (r == -2) {
		failed(c, 200, "the KME's limits (max_key_size %u bits, max_key_per_request %u) "
		       "make link blocks of %u bytes or less, all spent by key caching",
		       c->st.max_key_size, c->st.max_key_per_request, CACHE_STRIP);
		return;
	}
	if (r < 0) {
		failed(c, 200, "status: no usable key size (min %u, max %u bits)",
		       c->st.min_key_size, c->st.max_key_size);
		return;
	}
	if (!r) {
		/* not a block's worth stored yet: poll, slower while it stays so */
		if (!c->warned_small && (uint64_t)c->st.max_key_count * c->st.key_size <
					(uint64_t)c->ask_number * c->ask_bits) {
			log_warnx("link %s: KME %s holds at most %u keys of %u bits, less than "
				  "one link block of %u bytes: lower etsi-block", c->nb.id,
				  c->kme.url, c->st.max_key_count, c->st.key_size,
				  c->nb.etsi_block);
			c->warned_small = 1;
		}
		c->poll_ms = c->poll_ms ? c->poll_ms * 2 : E14_POLL_MIN_MS;
		if (c->poll_ms > E14_POLL_MAX_MS)
			c->poll_ms = E14_POLL_MAX_MS;
		schedule(c, c->poll_ms);
		return;
	}
	c->poll_ms = 0;
	/* the session may have gone, intake paused or the pending blocks filled meanwhile */
	if (c->peer_up && !c->paused && c->n_pend < E14_PENDING_MAX)
		master_enc(c);
}

static void enc_answer(struct e14_src *c, const char *body, size_t len)
{
	struct e14_key_container kc = { 0 };
	size_t klen = c->ask_bits / 8, blen, i;
	struct e14_pend *p;
	struct msg *m;
	char err[200];
	struct timeval tv;
	uint64_t now_us;

	if (e14_parse_key_container(body, len, c->ask_number, &kc, err, sizeof(err))) {
		failed(c, 200, "enc_keys answer: %s", err);
		return;
	}
	for (i = 0; i < kc.n; i++)
		if (kc.keys[i].len != klen)
			break;
	if (kc.n != c->ask_number || i < kc.n) {
		failed(c, 200, "enc_keys answered %zu keys (key %zu: %zu bytes), asked for %u "
		       "of %zu bytes", kc.n, i, i < kc.n ? kc.keys[i].len : klen,
		       c->ask_number, klen);
		e14_key_container_free(&kc);
		return;
	}
	succeeded(c, 1);
	c->keys += kc.n;
	c->avail_bits -= c->avail_bits < (uint64_t)kc.n * c->ask_bits ? c->avail_bits :
			 (uint64_t)kc.n * c->ask_bits;
	blen = kc.n * klen;
	m = calloc(1, sizeof(*m));
	p = &c->pend[c->n_pend];
	p->key = malloc(blen);
	if (!m || !p->key) {
		free(m);
		free(p->key);
		p->key = NULL;
		e14_key_container_free(&kc);
		failed(c, 0, "out of memory: %zu keys lost", kc.n);
		return;
	}
	/* block ids grow with time: a restarted master never names an id used before */
	gettimeofday(&tv, NULL);
	now_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	if (c->next_id < now_us)
		c->next_id = now_us;
	p->block = c->next_id++;
	p->len = blen;
	p->sent_ms = mono_now_ms();
	m->type = MSG_QKD;
	m->qkd.op = QKD_IDS;
	m->qkd.nkeys = (uint16_t)kc.n;
	m->qkd.block = p->block;
	m->qkd.key_len = (uint32_t)klen;
	for (i = 0; i < kc.n; i++) {
		memcpy(p->key + i * klen, kc.keys[i].key, klen);
		memcpy(m->qkd.key_id[i], kc.keys[i].key_id, E14_UUID_LEN + 1);
	}
	e14_key_container_free(&kc);
	if (c->cb.send(c->arg, m)) {
		/* no session to name them over: the slave can never fetch these keys */
		explicit_bzero(p->key, blen);
		free(p->key);
		p->key = NULL;
		c->blocks_lost++;
	} else {
		c->n_pend++;
		c->blocks_named++;
	}
	free(m);
}

/* ---- slave: dec_keys for the blocks the master named ------------------------------ */

static void fetch_pop(struct e14_src *c)
{
	struct e14_fetch *f = &c->fq[c->fq_head];

	free(f->ids);
	memset(f, 0, sizeof(*f));
	c->fq_head = (c->fq_head + 1) % E14_QUEUE_MAX;
	c->fq_n--;
}

static void send_ack(struct e14_src *c, uint64_t block, int status)
{
	struct msg *m = calloc(1, sizeof(*m));

	if (!m)
		return;		/* the master's wait times out: the same as a refusal */
	m->type = MSG_QKD;
	m->qkd.op = QKD_ACK;
	m->qkd.status = (uint8_t)status;
	m->qkd.block = block;
	c->cb.send(c->arg, m);
	free(m);
}

/* The head of the queue is done: stored (GOT) or given up (NOT_GOT). */
static void fetch_done(struct e14_src *c, int status)
{
	struct e14_fetch *f = &c->fq[c->fq_head];

	if (status == QKD_GOT)
		c->blocks_stored++;
	else
		c->blocks_refused++;
	send_ack(c, f->block, status);
	fetch_pop(c);
}

static void slave_dec(struct e14_src *c)
{
	struct e14_fetch *f = &c->fq[c->fq_head];
	char path[64 + E14_ID_MAX];
	size_t blen;
	char *body;

	body = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])f->ids, f->nkeys, &blen);
	if (!body) {
		failed(c, 0, "out of memory");
		return;
	}
	f->tries++;
	snprintf(path, sizeof(path), "/api/v1/keys/%s/dec_keys", c->nb.peer_sae_id);
	start_call(c, CALL_DEC, path, body, blen,
		   (size_t)f->nkeys * (f->key_len * 8 / 6 + 128) + 64 * 1024);
	e14_text_free(body);
}

static void dec_answer(struct e14_src *c, const char *body, size_t len)
{
	struct e14_fetch *f = &c->fq[c->fq_head];
	struct e14_key_container kc = { 0 };
	size_t blen = (size_t)f->nkeys * f->key_len, i, j;
	struct qkd_block b;
	uint8_t *key;
	char err[200];
	int st = QKD_NOT_GOT;

	if (e14_parse_key_container(body, len, f->nkeys, &kc, err, sizeof(err))) {
		failed(c, 200, "dec_keys answer: %s", err);
		fetch_done(c, QKD_NOT_GOT);
		return;
	}
	succeeded(c, 1);
	key = kc.n == f->nkeys ? malloc(blen) : NULL;
	/* the block is the keys in the order the master named them, each of its length */
	for (i = 0; key && i < f->nkeys; i++) {
		for (j = 0; j < kc.n; j++)
			if (!strcasecmp(kc.keys[j].key_id, f->ids[i]))
				break;
		if (j == kc.n || kc.keys[j].len != f->key_len)
			break;
		memcpy(key + i * f->key_len, kc.keys[j].key, f->key_len);
	}
	if (!key) {
		log_warnx("link %s: dec_keys answered %zu keys for %u key_IDs", c->nb.id,
			  kc.n, f->nkeys);
	} else if (i < f->nkeys) {
		log_warnx("link %s: dec_keys answer lacks key_ID %s or has another length than "
			  "%u bytes: block %llu discarded", c->nb.id, f->ids[i], f->key_len,
			  (unsigned long long)f->block);
	} else {
		b.id = f->block;
		b.key = key;
		b.len = blen;
		if (c->cb.blocks(c->arg, &b, 1) == 0)
			st = QKD_GOT;
		c->keys += f->nkeys;
	}
	if (key) {
		explicit_bzero(key, blen);
		free(key);
	}
	e14_key_container_free(&kc);
	fetch_done(c, st);
}

/* ---- one response -------------------------------------------------------------- */

static void request_done(struct evhttp_request *req, void *arg)
{
	struct e14_src *c = arg;
	enum e14_call call = c->call;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
	size_t len = in ? evbuffer_get_length(in) : 0;
	char *body = len ? (char *)evbuffer_pullup(in, -1) : (char *)"";
	int stale = c->call_epoch != c->epoch;

	if (c->closing)
		return;
	c->call = CALL_NONE;
	if (code == 0) {
		char why[180];

		c->conn_dead = 1;
		e14cli_reason(c->conn ? evhttp_connection_get_bufferevent(c->conn) : NULL,
			      c->http_err, why, sizeof(why));
		failed(c, 0, "%s: %s", call == CALL_STATUS ? "status" :
		       call == CALL_ENC ? "enc_keys" : "dec_keys", why);
		if (call == CALL_DEC && !stale && c->fq_n && c->fq[c->fq_head].tries >= E14_TRIES)
			fetch_done(c, QKD_NOT_GOT);
	} else if (code != 200) {
		char msg[160];

		if (e14_parse_error(body, len, msg, sizeof(msg)))
			snprintf(msg, sizeof(msg), "(no Error body)");
		failed(c, code, "%s: HTTP %d: %s", call == CALL_STATUS ? "status" :
		       call == CALL_ENC ? "enc_keys" : "dec_keys", code, msg);
		/* 4xx: this KME will not hand these keys out; 5xx: maybe later */
		if (call == CALL_DEC && !stale && c->fq_n &&
		    (code < 500 || c->fq[c->fq_head].tries >= E14_TRIES))
			fetch_done(c, QKD_NOT_GOT);
		if (code >= 500 || code == 401)
			c->conn_dead = 1;
	} else if (call == CALL_STATUS) {
		status_answer(c, body, len);
	} else if (call == CALL_ENC) {
		if (!c->peer_up) {
			/* no session to name the key_IDs over (a new one since: name them there) */
			succeeded(c, 1);
			c->blocks_lost++;
		} else {
			enc_answer(c, body, len);
		}
	} else if (call == CALL_DEC && !stale && c->fq_n) {
		dec_answer(c, body, len);
	}
	if (len)
		explicit_bzero(body, len);
	if (in)
		evbuffer_drain(in, len);
	if (!event_pending(c->step_ev, EV_TIMEOUT, NULL))
		schedule(c, c->backoff_ms);
}

/* ---- driving ------------------------------------------------------------------- */

static void e14_step(struct e14_src *c)
{
	int64_t now = mono_now_ms();

	if (c->call != CALL_NONE || c->closing)
		return;
	if (!c->master && c->paused) {
		/* intake paused: refuse what is named rather than fetch it */
		while (c->fq_n)
			fetch_done(c, QKD_NOT_GOT);
		return;
	}
	if (now < c->not_before_ms) {
		if (!event_pending(c->step_ev, EV_TIMEOUT, NULL))
			schedule(c, (unsigned)(c->not_before_ms - now));
		return;
	}
	if (c->master) {
		if (!c->peer_up || c->paused || c->n_pend >= E14_PENDING_MAX)
			return;
		/* while the last status promised another block's worth, skip asking again */
		if (c->avail_bits >= (uint64_t)c->ask_number * c->ask_bits && c->ask_number)
			master_enc(c);
		else
			master_status(c);
	} else if (c->fq_n) {
		slave_dec(c);
	}
}

static void step_cb(evutil_socket_t fd, short ev, void *arg)
{
	e14_step(arg);
}

/* Once a second: blocks the slave did not answer for in time are wiped. */
static void tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct e14_src *c = arg;
	int64_t now = mono_now_ms();

	for (size_t i = 0; i < c->n_pend;) {
		if (now - c->pend[i].sent_ms > E14_PENDING_MS) {
			log_warnx("link %s: no answer for ETSI 014 block %llu in %d s: discarded",
				  c->nb.id, (unsigned long long)c->pend[i].block,
				  E14_PENDING_MS / 1000);
			c->blocks_lost++;
			pend_drop(c, i);
			e14_step(c);
		} else {
			i++;
		}
	}
}

static int e14_recv(struct qkd_source *src, const struct msg *m)
{
	struct e14_src *c = (struct e14_src *)src;

	if (m->qkd.op == QKD_ACK) {
		size_t i;

		if (!c->master)
			return -1;
		for (i = 0; i < c->n_pend; i++)
			if (c->pend[i].block == m->qkd.block)
				break;
		if (i == c->n_pend) {
			/* timed out here already: the slave's copy is orphaned, caching drops it */
			log_info("link %s: answer for ETSI 014 block %llu we no longer hold",
				 c->nb.id, (unsigned long long)m->qkd.block);
			return 0;
		}
		if (m->qkd.status == QKD_GOT) {
			struct qkd_block b = { c->pend[i].block, c->pend[i].key, c->pend[i].len };

			if (c->cb.blocks(c->arg, &b, 1) == 0)
				c->blocks_stored++;
			else
				c->blocks_lost++;
			c->refused_run = 0;
		} else {
			unsigned ms = E14_BACKOFF_MIN_MS << (c->refused_run < 8 ? c->refused_run : 8);

			/* the slave refuses (paused, its KME failing): draw no key meanwhile */
			if (ms > c->backoff_max_ms)
				ms = c->backoff_max_ms;
			if (!c->refused_run++)
				log_info("link %s: the neighbour could not obtain ETSI 014 block %llu: "
					 "discarded", c->nb.id, (unsigned long long)m->qkd.block);
			else
				log_debug("link %s: ETSI 014 block %llu refused too (%u in a row)",
					  c->nb.id, (unsigned long long)m->qkd.block,
					  c->refused_run);
			c->blocks_refused++;
			if (c->not_before_ms < mono_now_ms() + ms)
				c->not_before_ms = mono_now_ms() + ms;
		}
		pend_drop(c, i);
		e14_step(c);
		return 0;
	}
	/* QKD_IDS: only the master names blocks */
	if (c->master)
		return -1;
	if (c->fq_n == E14_QUEUE_MAX) {
		log_warnx("link %s: %d ETSI 014 blocks queued: block %llu refused", c->nb.id,
			  E14_QUEUE_MAX, (unsigned long long)m->qkd.block);
		c->blocks_refused++;
		send_ack(c, m->qkd.block, QKD_NOT_GOT);
		return 0;
	}
	{
		struct e14_fetch *f = &c->fq[(c->fq_head + c->fq_n) % E14_QUEUE_MAX];

		f->ids = calloc(m->qkd.nkeys, sizeof(*f->ids));
		if (!f->ids) {
			send_ack(c, m->qkd.block, QKD_NOT_GOT);
			return 0;
		}
		for (size_t i = 0; i < m->qkd.nkeys; i++) {
			int dup = 0;

			for (size_t j = 0; j < i && !dup; j++)
				dup = !strcasecmp(f->ids[j], m->qkd.key_id[i]);
			/* a key named twice would be one key used twice in the block */
			if (dup || !e14_uuid_valid(m->qkd.key_id[i])) {
				free(f->ids);
				f->ids = NULL;
				return -1;
			}
			memcpy(f->ids[i], m->qkd.key_id[i], E14_UUID_LEN + 1);
		}
		if ((uint64_t)m->qkd.key_len * m->qkd.nkeys > STORE_BLOCK_MAX) {
			free(f->ids);
			f->ids = NULL;
			return -1;
		}
		f->block = m->qkd.block;
		f->key_len = m->qkd.key_len;
		f->nkeys = m->qkd.nkeys;
		f->tries = 0;
		c->fq_n++;
		c->blocks_named++;
	}
	e14_step(c);
	return 0;
}

static void e14_peer(struct qkd_source *src, int up)
{
	struct e14_src *c = (struct e14_src *)src;

	c->peer_up = up;
	if (!up) {
		/* what was named over the lost session can no longer be agreed on */
		c->epoch++;
		c->blocks_lost += c->n_pend;
		while (c->n_pend)
			pend_drop(c, 0);
		while (c->fq_n) {
			c->blocks_lost++;
			fetch_pop(c);
		}
		return;
	}
	e14_step(c);
}

static void e14_pause(struct qkd_source *src, int paused)
{
	struct e14_src *c = (struct e14_src *)src;

	c->paused = paused;
	if (!paused)
		e14_step(c);
}

static SSL_CTX *client_ctx(const struct kms_kme *k, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* the read buffer holds decrypted key text: give it back when idle */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, k->cert) != 1)
		snprintf(err, errlen, "cannot load cert `%s'", k->cert);
	else if (SSL_CTX_use_PrivateKey_file(ctx, k->key, SSL_FILETYPE_PEM) != 1)
		snprintf(err, errlen, "cannot load key `%s'", k->key);
	else if (SSL_CTX_check_private_key(ctx) != 1)
		snprintf(err, errlen, "key `%s' does not match cert `%s'", k->key, k->cert);
	else if (SSL_CTX_load_verify_locations(ctx, k->ca, NULL) != 1)
		snprintf(err, errlen, "cannot load ca `%s'", k->ca);
	else
		return ctx;
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int qkd_etsi014_check(const struct kms_kme *k, char *err, size_t errlen)
{
	SSL_CTX *ctx = client_ctx(k, err, errlen);

	SSL_CTX_free(ctx);
	return ctx ? 0 : -1;
}

static struct qkd_source *e14_open(struct event_base *base, const struct kms_config *cf,
				   const struct kms_neighbour *nb, const struct qkd_callbacks *cb,
				   void *arg)
{
	struct e14_src *c = calloc(1, sizeof(*c));
	struct timeval one = { 1, 0 };
	char err[2 * KMS_PATH_MAX + 64];

	if (!c)
		return NULL;
	e14_init();
	c->src.ops = &qkd_etsi014_ops;
	c->base = base;
	c->nb = *nb;
	c->kme = cf->kme[nb->kme];
	c->cb = *cb;
	c->arg = arg;
	c->master = strcmp(cf->node_id, nb->id) < 0;
	c->backoff_max_ms = cf->reconnect_max_s * 1000;
	c->ctx = client_ctx(&c->kme, err, sizeof(err));
	if (!c->ctx) {
		log_warnx("link %s: etsi014-kme %s: %s", nb->id, c->kme.name, err);
		free(c);
		return NULL;
	}
	/* NULL (a blocking lookup) only when there is no resolver configuration at all */
	c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	c->step_ev = evtimer_new(base, step_cb, c);
	c->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, c);
	if (!c->step_ev || !c->tick_ev) {
		if (c->step_ev)
			event_free(c->step_ev);
		if (c->dns)
			evdns_base_free(c->dns, 0);
		SSL_CTX_free(c->ctx);
		free(c);
		return NULL;
	}
	/* intake is bulk work: behind the key protocols, as the simulator's */
	event_priority_set(c->step_ev, event_base_get_npriorities(base) - 1);
	event_add(c->tick_ev, &one);
	log_info("link %s: key from ETSI 014 KME %s as SAE %s, shared with SAE %s (%s)",
		 nb->id, c->kme.url, nb->sae_id, nb->peer_sae_id,
		 c->master ? "master: asks enc_keys" : "slave: asks dec_keys");
	return &c->src;
}

static void e14_close(struct qkd_source *src)
{
	struct e14_src *c = (struct e14_src *)src;

	c->closing = 1;
	if (c->conn)
		evhttp_connection_free(c->conn);
	while (c->n_pend)
		pend_drop(c, 0);
	while (c->fq_n)
		fetch_pop(c);
	event_free(c->step_ev);
	event_free(c->tick_ev);
	if (c->dns)
		evdns_base_free(c->dns, 0);
	SSL_CTX_free(c->ctx);
	free(c);
}

static void e14_describe(struct qkd_source *src, char *buf, size_t len)
{
	struct e14_src *c = (struct e14_src *)src;

	snprintf(buf, len, "etsi014 %s %s -> %s (%s)", c->kme.url, c->nb.sae_id,
		 c->nb.peer_sae_id, c->master ? "master" : "slave");
}

static void e14_ctl(struct qkd_source *src, struct evbuffer *o, int json)
{
	struct e14_src *c = (struct e14_src *)src;

	if (json) {
		evbuffer_add_printf(o, ",\"etsi014\":{\"master\":%s,\"requests\":%llu,"
				    "\"failures\":%llu,\"last_http\":%d,\"keys\":%llu,"
				    "\"blocks_named\":%llu,\"blocks_stored\":%llu,"
				    "\"blocks_refused\":%llu,\"blocks_lost\":%llu,"
				    "\"waiting\":%zu,\"stored_key_count\":%u,\"last_error\":",
				    c->master ? "true" : "false",
				    (unsigned long long)c->requests,
				    (unsigned long long)c->failures, c->last_http,
				    (unsigned long long)c->keys,
				    (unsigned long long)c->blocks_named,
				    (unsigned long long)c->blocks_stored,
				    (unsigned long long)c->blocks_refused,
				    (unsigned long long)c->blocks_lost,
				    c->master ? c->n_pend : c->fq_n, c->st.stored_key_count);
		json_str(o, c->last_error);
		evbuffer_add_printf(o, "}");
		return;
	}
	evbuffer_add_printf(o, "  etsi014: %llu requests (%llu failed%s%s), %llu keys, "
			    "blocks %llu named, %llu stored, %llu refused, %llu lost, "
			    "%zu waiting\n",
			    (unsigned long long)c->requests, (unsigned long long)c->failures,
			    c->last_error[0] ? ", last: " : "", c->last_error,
			    (unsigned long long)c->keys, (unsigned long long)c->blocks_named,
			    (unsigned long long)c->blocks_stored,
			    (unsigned long long)c->blocks_refused,
			    (unsigned long long)c->blocks_lost,
			    c->master ? c->n_pend : c->fq_n);
}

const struct qkd_source_ops qkd_etsi014_ops = {
	.name = "etsi014",
	.open = e14_open,
	.close = e14_close,
	.pause = e14_pause,
	.describe = e14_describe,
	.peer = e14_peer,
	.recv = e14_recv,
	.ctl = e14_ctl,
};
