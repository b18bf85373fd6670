// SPDX-License-Identifier: GPL-2.0
/*
 * ETSI GS QKD 014 KME server (see e14srv.h): evhttp on OpenSSL bufferevents.
 *
 * Connections: evhttp calls bevcb for each accepted socket; we give it an SSL bufferevent
 * whose SSL carries a struct conn (ex_data). The conn lives as long as the SSL (its ex_data
 * free callback), which libevent may free after e14srv_free returned, so what it shares with
 * the server (the open connection count) is a small refcounted struct of its own. Beyond
 * max_connections the conn is marked and the TLS handshake refused at the ClientHello.
 *
 * Requests: a struct e14_req per request that reaches the dispatcher, on the server's pending
 * list until answered. When a connection closes (evhttp's close callback, which runs before
 * evhttp frees the connection's requests) its pending requests are canceled; a request that
 * evhttp detached from a dying connection (req->evcon == NULL) is then ours to free.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "e14srv.h"
#include "log.h"

#define MAX_SAES 1024
#define MAX_HEADERS 8192
#define PREFIX "/api/v1/keys/"
#define EXT_MSG "not all extension_mandatory parameters are supported"

struct conncount {
	unsigned ref;		/* the server + each live conn */
	unsigned open;
};

struct conn {
	struct conncount *cnt;
	int refuse;		/* over max_connections: fail the handshake */
};

struct sae_stat {
	struct sae_stat *next;
	char sae[E14_ID_MAX + 1];
	struct e14srv_counters c;
};

struct e14_req {
	struct e14srv *srv;
	struct evhttp_request *req;
	struct conn *conn;
	struct e14_req *prev, *next;	/* srv->pending */
	struct sae_stat *st;		/* NULL until identified */
	struct event *gone_ev;		/* watches for the client closing meanwhile */
	enum e14_method method;
	int truncate;
	void *data;
	char sae[E14_ID_MAX + 1];
	char what[160];			/* "GET /api/v1/..." for log lines */
};

struct e14srv {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ctx;
	struct e14srv_ops ops;
	void *arg;
	char kme_id[E14_ID_MAX + 1];
	char addr[INET6_ADDRSTRLEN + 8];
	unsigned max_conns, max_keys;
	struct conncount *cnt;
	struct e14_req *pending;
	size_t npending;
	struct sae_stat *saes;
	size_t nsaes;
	struct e14srv_counters total;
	uint64_t accepted, refused;
};

static int conn_idx = -1;	/* SSL ex_data index of struct conn */

/* ---- TLS ---- */

static const char *ssl_errstr(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return "failed";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static void conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	struct conn *c = ptr;

	if (!c)
		return;
	c->cnt->open--;
	if (--c->cnt->ref == 0)
		free(c->cnt);
	free(c);
}

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct conn *c = SSL_get_ex_data(ssl, conn_idx);

	if (c && c->refuse) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* A refused handshake (no certificate, a foreign one, too many connections) is logged. */
static void info_cb(const SSL *ssl, int where, int ret)
{
	struct e14srv *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	if ((where & SSL_CB_ALERT) && (where & SSL_CB_WRITE) && (ret >> 8) == SSL3_AL_FATAL)
		log_info("%s: TLS %s: sent alert %s%s%s", s ? s->kme_id : "-",
			 SSL_is_init_finished(ssl) ? "session closed" : "handshake refused",
			 /* TLS 1.3's certificate_required is newer than OpenSSL's names */
			 (ret & 0xff) == 116 ? "certificate required" :
			 SSL_alert_desc_string_long(ret),
			 SSL_get_verify_result(ssl) != X509_V_OK ? ": " : "",
			 SSL_get_verify_result(ssl) != X509_V_OK ?
			 X509_verify_cert_error_string(SSL_get_verify_result(ssl)) : "");
}

static SSL_CTX *mkctx(const struct e14srv_config *cf, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "qotp-e14srv";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	STACK_OF(X509_NAME) *names;
	const char *what = "SSL_CTX_new";

	if (!ctx)
		goto fail;
	what = "TLS 1.2";
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		goto fail;
	/* TLS 1.2: forward secrecy and AEAD only (TLS 1.3 suites are all that) */
	what = "cipher list";
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"))
		goto fail;
	what = cf->cert;
	if (SSL_CTX_use_certificate_chain_file(ctx, cf->cert) != 1)
		goto fail;
	what = cf->key;
	if (SSL_CTX_use_PrivateKey_file(ctx, cf->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	what = cf->ca;
	if (SSL_CTX_load_verify_locations(ctx, cf->ca, NULL) != 1)
		goto fail;
	names = SSL_load_client_CA_file(cf->ca);
	if (!names)
		goto fail;
	SSL_CTX_set_client_CA_list(ctx, names);
	/* no certificate, or one not from the CA: the handshake fails */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* every connection a full handshake: the client's certificate is always checked */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	SSL_CTX_set_info_callback(ctx, info_cb);
	return ctx;
fail:
	snprintf(err, errlen, "TLS setup: %s: %s", what, ssl_errstr());
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * evhttp's per-connection bufferevent. Never NULL when we can help it: evhttp would then
 * serve the connection without TLS (request_cb refuses any request on such a connection).
 */
static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
	struct e14srv *s = arg;
	struct bufferevent *bev;
	struct conn *c;
	SSL *ssl;

	ssl = SSL_new(s->ctx);
	if (!ssl) {
		log_warnx("%s: SSL_new: %s", s->kme_id, ssl_errstr());
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !SSL_set_ex_data(ssl, conn_idx, c)) {
		free(c);
		SSL_free(ssl);
		log_warnx("%s: out of memory for a connection", s->kme_id);
		return NULL;
	}
	c->cnt = s->cnt;
	c->cnt->ref++;
	c->cnt->open++;
	s->accepted++;
	if (c->cnt->open > s->max_conns) {
		c->refuse = 1;
		s->refused++;
		log_info("%s: refusing a connection: %u open, at most %u", s->kme_id,
			 c->cnt->open - 1, s->max_conns);
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);		/* frees c */
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* ---- counters ---- */

static void count_status(struct e14srv_counters *c, int code)
{
	switch (code) {
	case 200: c->s200++; break;
	case 400: c->s400++; break;
	case 401: c->s401++; break;
	case 404: c->s404++; break;
	case 405: c->s405++; break;
	case 503: c->s503++; break;
	default: c->s_other++; break;
	}
}

static struct sae_stat *sae_stat(struct e14srv *s, const char *sae)
{
	struct sae_stat *st;

	for (st = s->saes; st; st = st->next)
		if (!strcmp(st->sae, sae))
			return st;
	if (s->nsaes >= MAX_SAES || !(st = calloc(1, sizeof(*st))))
		return NULL;
	strcpy(st->sae, sae);
	st->next = s->saes;
	s->saes = st;
	s->nsaes++;
	return st;
}

void e14srv_get_stats(const struct e14srv *s, struct e14srv_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->total = s->total;
	st->conns_accepted = s->accepted;
	st->conns_refused = s->refused;
	st->conns_open = s->cnt->open;
	st->pending = s->npending;
}

void e14srv_foreach_sae(const struct e14srv *s,
			void (*fn)(void *arg, const char *sae_id, const struct e14srv_counters *c),
			void *arg)
{
	const struct sae_stat *st;

	for (st = s->saes; st; st = st->next)
		fn(arg, st->sae, &st->c);
}

/* ---- answering ---- */

static void req_unlink(struct e14_req *rq)
{
	struct e14srv *s = rq->srv;

	if (rq->gone_ev) {
		event_free(rq->gone_ev);
		rq->gone_ev = NULL;
	}
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		s->pending = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	s->npending--;
}

static void text_cleanup(const void *data, size_t len, void *extra)
{
	e14_text_free((char *)data);
}

/*
 * Sends code with text (heap, from the codec; consumed and wiped once sent) as the body,
 * logs, counts, frees rq. text NULL: a 503 with a fixed body (out of memory).
 */
static void send_json(struct e14_req *rq, int code, char *text, size_t len, size_t nkeys,
		      const char *why)
{
	static const char oom[] = "{\"message\":\"server out of memory\"}";
	struct e14srv *s = rq->srv;
	struct evkeyvalq *h = evhttp_request_get_output_headers(rq->req);
	struct evbuffer *buf = evbuffer_new();

	if (!text) {
		code = 503;
		nkeys = 0;
		why = "out of memory";
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (code == 405)
		evhttp_add_header(h, "Allow", rq->method == E14_STATUS ? "GET" : "GET, POST");
	if (buf && text) {
		if (rq->truncate)
			len /= 2;
		if (evbuffer_add_reference(buf, text, len, text_cleanup, NULL)) {
			e14_text_free(text);
			code = 503;
			nkeys = 0;
			why = "out of memory";
			evbuffer_add(buf, oom, sizeof(oom) - 1);
		}
	} else {
		e14_text_free(text);
		if (buf)
			evbuffer_add(buf, oom, sizeof(oom) - 1);
	}
	evhttp_send_reply(rq->req, code, NULL, buf);
	if (buf)
		evbuffer_free(buf);	/* normally empty: its chains moved to the connection */

	count_status(&s->total, code);
	s->total.keys_out += nkeys;
	if (rq->st) {
		count_status(&rq->st->c, code);
		rq->st->c.keys_out += nkeys;
	}
	if (code == 200 && rq->method == E14_STATUS)
		log_debug("%s: %s %s: 200", s->kme_id, rq->sae, rq->what);
	else if (code == 200)
		log_debug("%s: %s %s: 200, %zu keys", s->kme_id, rq->sae, rq->what, nkeys);
	else
		log_info("%s: %s %s: %d %s", s->kme_id, rq->sae[0] ? rq->sae : "-", rq->what,
			 code, why ? why : "");
	req_unlink(rq);
	free(rq);
}

void e14_req_error(struct e14_req *rq, int http_status, const char *message,
		   const char *detail_name, const char *const *details, size_t n_details)
{
	size_t len = 0;
	char *text = e14_format_error(message, detail_name, details, n_details, &len);

	if (http_status < 400 || http_status > 599)
		http_status = 503;
	send_json(rq, http_status, text, len, 0, message);
}

void e14_req_status(struct e14_req *rq, const struct e14_status *st)
{
	size_t len = 0;
	char *text = e14_format_status(st, &len);

	send_json(rq, 200, text, len, 0, NULL);
}

void e14_req_keys(struct e14_req *rq, const struct e14_key *keys, size_t n)
{
	size_t len = 0;
	char *text = e14_format_key_container(keys, n, &len);

	send_json(rq, 200, text, len, n, NULL);
}

void e14_req_truncate(struct e14_req *rq)
{
	rq->truncate = 1;
}

enum e14_method e14_req_method(const struct e14_req *rq)
{
	return rq->method;
}

const char *e14_req_sae(const struct e14_req *rq)
{
	return rq->sae;
}

void e14_req_set_data(struct e14_req *rq, void *data)
{
	rq->data = data;
}

void *e14_req_data(const struct e14_req *rq)
{
	return rq->data;
}

static void __attribute__((format(printf, 3, 4)))
fail(struct e14_req *rq, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e14_req_error(rq, code, msg, NULL, NULL, 0);
}

/* ---- cancellation ---- */

static void cancel(struct e14_req *rq)
{
	struct e14srv *s = rq->srv;

	req_unlink(rq);
	s->total.canceled++;
	if (rq->st)
		rq->st->c.canceled++;
	log_info("%s: %s %s: canceled, the client went away", s->kme_id,
		 rq->sae[0] ? rq->sae : "-", rq->what);
	s->ops.cancel(s->arg, rq);
	/* detached from its dying connection by evhttp: ours to free; else evhttp frees it */
	if (!evhttp_request_get_connection(rq->req))
		evhttp_request_free(rq->req);
	free(rq);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn *c = ssl ? SSL_get_ex_data(ssl, conn_idx) : NULL;
	struct e14srv *s = arg;
	struct e14_req *rq, *next;

	if (!c)
		return;
	for (rq = s->pending; rq; rq = next) {
		next = rq->next;
		if (rq->conn == c)
			cancel(rq);
	}
}

/*
 * While a request waits for the backend, evhttp does not read from its connection, so it
 * would notice a client that went away only when the answer fails to go out. So watch the
 * socket for the peer's close (EV_CLOSED, epoll's EPOLLRDHUP) meanwhile. Data (a pipelined
 * request, a TLS record) is evhttp's to read later: then watch for the close alone.
 */
static void gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct e14_req *rq = arg, *r, *next;
	struct e14srv *s = rq->srv;
	struct evhttp_connection *evcon = evhttp_request_get_connection(rq->req);
	struct conn *c = rq->conn;
	char b;
	ssize_t n;

	if (!(what & EV_CLOSED)) {
		n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
					errno == EINTR))) {
			event_del(rq->gone_ev);
			event_assign(rq->gone_ev, s->base, fd, EV_CLOSED, gone_cb, rq);
			event_add(rq->gone_ev, NULL);
			return;
		}
	}
	for (r = s->pending; r; r = next) {
		next = r->next;
		if (r->conn == c)
			cancel(r);		/* rq too */
	}
	if (evcon)
		evhttp_connection_free(evcon);
}

/* Called before the backend gets rq: from then on, rq may be answered any time. */
static void watch_gone(struct e14_req *rq)
{
	struct e14srv *s = rq->srv;
	struct evhttp_connection *evcon = evhttp_request_get_connection(rq->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0 || !(event_base_get_features(s->base) & EV_FEATURE_EARLY_CLOSE))
		return;
	rq->gone_ev = event_new(s->base, fd, EV_READ | EV_CLOSED, gone_cb, rq);
	if (rq->gone_ev && event_add(rq->gone_ev, NULL)) {
		event_free(rq->gone_ev);
		rq->gone_ev = NULL;
	}
}

/* ---- request parsing ---- */

/* A value for a message: at most 40 printable ASCII characters, quoted. */
static const char *q(char *buf, size_t len, const char *v)
{
	size_t i, o = 0;

	buf[o++] = '"';
	for (i = 0; v[i] && i < 40 && o + 3 < len; i++)
		buf[o++] = v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' ? v[i] : '?';
	if (v[i] && o + 6 < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Decimal digits only, min..max. */
static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long n = 0;
	size_t i;

	if (!v[0] || strlen(v) > 10)
		return -1;
	for (i = 0; v[i]; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	if (n < min || n > max)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

/*
 * The GET query into vals[i] for names[i] (NULL if absent): 0, or -1 after answering 400.
 * The strings live in *qs until evhttp_clear_headers(qs).
 */
static int get_query(struct e14_req *rq, const char *query, struct evkeyvalq *qs,
		     const char *const *names, const char **vals, size_t n)
{
	struct evkeyval *kv;
	char b[64];
	size_t i;

	for (i = 0; i < n; i++)
		vals[i] = NULL;
	if (!query || !query[0])
		return 0;
	if (evhttp_parse_query_str(query, qs)) {
		fail(rq, 400, "malformed query string: every parameter must be name=value");
		return -1;
	}
	TAILQ_FOREACH(kv, qs, next) {
		for (i = 0; i < n && strcmp(kv->key, names[i]); i++)
			;
		if (i == n) {
			if (n)
				fail(rq, 400, "unknown query parameter %s",
				     q(b, sizeof(b), kv->key));
			else
				fail(rq, 400, "no query parameters allowed here (%s)",
				     q(b, sizeof(b), kv->key));
			return -1;
		}
		if (vals[i]) {
			fail(rq, 400, "query parameter %s given twice", names[i]);
			return -1;
		}
		vals[i] = kv->value;
	}
	return 0;
}

static void do_status(struct e14_req *rq, const char *query, const char *slave)
{
	struct e14srv *s = rq->srv;
	struct evkeyvalq qs;

	TAILQ_INIT(&qs);
	if (get_query(rq, query, &qs, NULL, NULL, 0) == 0) {
		watch_gone(rq);
		s->ops.status(s->arg, rq, rq->sae, slave);
	}
	evhttp_clear_headers(&qs);
}

static void do_enc_keys(struct e14_req *rq, const char *query, const char *slave)
{
	static const char *const names[] = { "number", "size" };
	struct e14srv *s = rq->srv;
	struct evbuffer *in = evhttp_request_get_input_buffer(rq->req);
	const char *details[E14_MAX_EXT];
	struct e14_key_request kr;
	const char *vals[2];
	struct evkeyvalq qs;
	char err[256], b[64];
	size_t i;

	TAILQ_INIT(&qs);
	memset(&kr, 0, sizeof(kr));
	if (evhttp_request_get_command(rq->req) == EVHTTP_REQ_GET) {
		if (get_query(rq, query, &qs, names, vals, 2))
			goto out;
		if (vals[0] && parse_u32(vals[0], 1, E14_MAX_KEYS, &kr.number)) {
			fail(rq, 400, "number: %s is not an integer in 1..%d",
			     q(b, sizeof(b), vals[0]), E14_MAX_KEYS);
			goto out;
		}
		if (vals[1] && (parse_u32(vals[1], 8, E14_MAX_KEY_BITS, &kr.size) ||
				kr.size % 8)) {
			fail(rq, 400, "size: %s is not a multiple of 8 in 8..%d bits",
			     q(b, sizeof(b), vals[1]), E14_MAX_KEY_BITS);
			goto out;
		}
	} else {
		if (query && query[0]) {
			fail(rq, 400, "POST takes its parameters in the body, not the "
			     "query string");
			goto out;
		}
		if (e14_parse_key_request((const char *)evbuffer_pullup(in, -1),
					  evbuffer_get_length(in), &kr, err, sizeof(err))) {
			e14_req_error(rq, 400, err, NULL, NULL, 0);
			goto out;
		}
	}
	if (kr.n_ext_mandatory) {
		for (i = 0; i < kr.n_ext_mandatory && i < E14_MAX_EXT; i++)
			details[i] = kr.ext_mandatory[i];
		e14_req_error(rq, 400, EXT_MSG, "extension_mandatory_unsupported", details, i);
		goto out;
	}
	if (kr.number > s->max_keys) {
		fail(rq, 400, "number: %u is more than max_key_per_request (%u)", kr.number,
		     s->max_keys);
		goto out;
	}
	watch_gone(rq);
	s->ops.enc_keys(s->arg, rq, rq->sae, slave, &kr);
out:
	evhttp_clear_headers(&qs);
}

static void do_dec_keys(struct e14_req *rq, const char *query, const char *master)
{
	static const char *const names[] = { "key_ID" };
	struct e14srv *s = rq->srv;
	struct evbuffer *in = evhttp_request_get_input_buffer(rq->req);
	char one[1][E14_UUID_LEN + 1];
	struct e14_key_ids ids = { 0 };
	struct evkeyvalq qs;
	char err[256], b[64];
	const char *val;
	size_t i, j;
	int heap = 0;

	TAILQ_INIT(&qs);
	if (evhttp_request_get_command(rq->req) == EVHTTP_REQ_GET) {
		if (get_query(rq, query, &qs, names, &val, 1))
			goto out;
		if (!val) {
			fail(rq, 400, "key_ID: missing (GET dec_keys?key_ID=UUID)");
			goto out;
		}
		if (!e14_uuid_valid(val)) {
			fail(rq, 400, "key_ID: not a UUID: %s", q(b, sizeof(b), val));
			goto out;
		}
		memcpy(one[0], val, sizeof(one[0]));
		ids.ids = one;
		ids.n = 1;
	} else {
		if (query && query[0]) {
			fail(rq, 400, "POST takes its parameters in the body, not the "
			     "query string");
			goto out;
		}
		if (e14_parse_key_ids((const char *)evbuffer_pullup(in, -1),
				      evbuffer_get_length(in), s->max_keys, &ids, err,
				      sizeof(err))) {
			e14_req_error(rq, 400, err, NULL, NULL, 0);
			goto out;
		}
		heap = 1;
	}
	for (i = 0; i < ids.n; i++)
		for (j = 0; j < E14_UUID_LEN; j++)
			ids.ids[i][j] = tolower((unsigned char)ids.ids[i][j]);
	watch_gone(rq);
	s->ops.dec_keys(s->arg, rq, rq->sae, master, &ids);
out:
	if (heap)
		e14_key_ids_free(&ids);
	evhttp_clear_headers(&qs);
}

/* The subject CN of x, or -1 if it has none, several, or one that is no C string. */
static int cert_cn(X509 *x, char *cn, size_t len)
{
	X509_NAME *nm = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
	unsigned char *u = NULL;
	int n;

	if (i < 0 || X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
		return -1;
	n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
	if (n < 0)
		return -1;
	if ((size_t)n >= len || memchr(u, 0, n)) {
		OPENSSL_free(u);
		return -1;
	}
	memcpy(cn, u, n);
	cn[n] = '\0';
	OPENSSL_free(u);
	return 0;
}

/*
 * The SAE_ID path segment seg[0..n), percent-decoded, into *id (heap): 0, or -1 after
 * answering 400. A decoded '/', '%' or NUL does not pass e14_id_valid either.
 */
static int decode_id(struct e14_req *rq, const char *seg, size_t n, char **id)
{
	char enc[3 * E14_ID_MAX + 1], b[64];
	size_t len = 0;

	*id = NULL;
	if (n >= sizeof(enc)) {
		fail(rq, 400, "SAE_ID in the path: longer than %d characters", E14_ID_MAX);
		return -1;
	}
	memcpy(enc, seg, n);
	enc[n] = '\0';
	*id = evhttp_uridecode(enc, 0, &len);
	if (!*id || len != strlen(*id) || !e14_id_valid(*id)) {
		fail(rq, 400, "SAE_ID in the path: not a valid ID: %s",
		     q(b, sizeof(b), *id && len == strlen(*id) ? *id : enc));
		free(*id);
		*id = NULL;
		return -1;
	}
	return 0;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct e14srv *s = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn *c = ssl ? SSL_get_ex_data(ssl, conn_idx) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL, *query = u ? evhttp_uri_get_query(u)
		: NULL, *seg, *rest;
	char cn[E14_ID_MAX + 1], b[64], *id = NULL;
	struct e14_req *rq;
	X509 *x;

	s->total.requests++;
	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	rq->srv = s;
	rq->req = req;
	rq->conn = c;
	rq->next = s->pending;
	if (s->pending)
		s->pending->prev = rq;
	s->pending = rq;
	s->npending++;
	snprintf(rq->what, sizeof(rq->what), "%s %s", method_name(cmd),
		 evhttp_request_get_uri(req));
	if (evcon)
		evhttp_connection_set_closecb(evcon, conn_closed, s);

	/* 1. who is asking */
	x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	if (!c || !x || SSL_get_verify_result(ssl) != X509_V_OK) {
		fail(rq, 401, "no verified TLS client certificate");
		return;
	}
	if (s->ops.identify(s->arg, x, cert_cn(x, cn, sizeof(cn)) ? NULL : cn, rq->sae) ||
	    !e14_id_valid(rq->sae)) {
		rq->sae[0] = '\0';
		fail(rq, 401, "the client certificate does not name an authorised SAE");
		return;
	}
	rq->st = sae_stat(s, rq->sae);
	if (rq->st)
		rq->st->c.requests++;
	log_debug("%s: %s %s", s->kme_id, rq->sae, rq->what);

	/* 2. what: /api/v1/keys/{SAE_ID}/{status,enc_keys,dec_keys} */
	if (!path || strncmp(path, PREFIX, strlen(PREFIX)) ||
	    !(rest = strchr(seg = path + strlen(PREFIX), '/')) || rest == seg) {
		fail(rq, 404, "no such resource: %s (the API is %s{SAE_ID}/status, enc_keys, "
		     "dec_keys)", q(b, sizeof(b), path ? path : ""), PREFIX);
		return;
	}
	rest++;
	if (!strcmp(rest, "status")) {
		rq->method = E14_STATUS;
	} else if (!strcmp(rest, "enc_keys")) {
		rq->method = E14_ENC_KEYS;
	} else if (!strcmp(rest, "dec_keys")) {
		rq->method = E14_DEC_KEYS;
	} else {
		fail(rq, 404, "no such resource: %s (the API is %s{SAE_ID}/status, enc_keys, "
		     "dec_keys)", q(b, sizeof(b), path), PREFIX);
		return;
	}
	if (!(cmd == EVHTTP_REQ_GET || (cmd == EVHTTP_REQ_POST && rq->method != E14_STATUS))) {
		fail(rq, 405, "method %s not allowed for %s (use %s)", method_name(cmd), rest,
		     rq->method == E14_STATUS ? "GET" : "GET or POST");
		return;
	}
	if (decode_id(rq, seg, (size_t)(rest - 1 - seg), &id))
		return;

	/* 3. the method's parameters, then the backend */
	switch (rq->method) {
	case E14_STATUS:
		do_status(rq, query, id);
		break;
	case E14_ENC_KEYS:
		do_enc_keys(rq, query, id);
		break;
	case E14_DEC_KEYS:
		do_dec_keys(rq, query, id);
		break;
	}
	free(id);
}

/* ---- setup ---- */

static int bind_listen(struct e14srv *s, const char *spec, char *err, size_t errlen)
{
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	struct evutil_addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	struct evconnlistener *lis;
	int len = sizeof(ss), rc;
	char host[256], *port;
	socklen_t sl = sizeof(ss);
	uint16_t p;

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &len) == 0) {
		lis = evconnlistener_new_bind(s->base, NULL, NULL, flags, 128,
					      (struct sockaddr *)&ss, len);
	} else {
		/* a host name: "name:port" */
		if (strlen(spec) >= sizeof(host) || !(port = strrchr(strcpy(host, spec), ':')) ||
		    port == host || !port[1]) {
			snprintf(err, errlen, "listen address is not HOST:PORT: `%s'", spec);
			return -1;
		}
		*port++ = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
		rc = evutil_getaddrinfo(host, port, &hints, &ai);
		if (rc || !ai) {
			snprintf(err, errlen, "listen address `%s': %s", spec,
				 evutil_gai_strerror(rc));
			return -1;
		}
		lis = evconnlistener_new_bind(s->base, NULL, NULL, flags, 128, ai->ai_addr,
					      (int)ai->ai_addrlen);
		evutil_freeaddrinfo(ai);
	}
	if (!lis) {
		snprintf(err, errlen, "listen on %s: %s", spec, strerror(errno));
		return -1;
	}
	/*
	 * Accepted sockets inherit TCP_NODELAY (Linux): evhttp writes an answer's headers
	 * and body as two TLS records, and without it the second waits ~40 ms for the
	 * client's delayed ACK (e14bench: 182 pairs/s, 44 ms a round; 5,000+ with it).
	 */
	{
		int one = 1;

		setsockopt(evconnlistener_get_fd(lis), IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
	}
	if (!evhttp_bind_listener(s->http, lis)) {
		evconnlistener_free(lis);
		snprintf(err, errlen, "listen on %s: evhttp_bind_listener failed", spec);
		return -1;
	}
	/* what we are bound to (port 0 picked one) */
	memset(&ss, 0, sizeof(ss));
	if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&ss, &sl) == 0) {
		char a[INET6_ADDRSTRLEN];

		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			evutil_inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
			p = ntohs(in6->sin6_port);
			snprintf(s->addr, sizeof(s->addr), "[%s]:%u", a, p);
		} else {
			struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;

			evutil_inet_ntop(AF_INET, &in4->sin_addr, a, sizeof(a));
			p = ntohs(in4->sin_port);
			snprintf(s->addr, sizeof(s->addr), "%s:%u", a, p);
		}
	} else {
		snprintf(s->addr, sizeof(s->addr), "%s", spec);
	}
	return 0;
}

struct e14srv *e14srv_new(struct event_base *base, const struct e14srv_config *cf,
			  const struct e14srv_ops *ops, void *arg, char *err, size_t errlen)
{
	struct e14srv *s;

	if (!cf->listen || !cf->cert || !cf->key || !cf->ca || !ops->identify || !ops->status ||
	    !ops->enc_keys || !ops->dec_keys || !ops->cancel) {
		snprintf(err, errlen, "e14srv: listen, cert, key, ca and every op are required");
		return NULL;
	}
	if (cf->kme_id && !e14_id_valid(cf->kme_id)) {
		snprintf(err, errlen, "not a valid KME_ID: `%s'", cf->kme_id);
		return NULL;
	}
	if (conn_idx < 0) {
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
		if (conn_idx < 0) {
			snprintf(err, errlen, "SSL_get_ex_new_index: %s", ssl_errstr());
			return NULL;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->cnt = calloc(1, sizeof(*s->cnt)))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cnt->ref = 1;
	s->base = base;
	s->ops = *ops;
	s->arg = arg;
	snprintf(s->kme_id, sizeof(s->kme_id), "%s", cf->kme_id ? cf->kme_id : "KME");
	s->max_conns = cf->max_connections ? cf->max_connections : E14SRV_MAX_CONNECTIONS;
	s->max_keys = cf->max_keys_per_request ? cf->max_keys_per_request :
		E14SRV_MAX_KEYS_PER_REQUEST;
	if (s->max_keys > E14_MAX_KEYS)
		s->max_keys = E14_MAX_KEYS;
	s->ctx = mkctx(cf, err, errlen);
	if (!s->ctx)
		goto fail;
	SSL_CTX_set_app_data(s->ctx, s);
	s->http = evhttp_new(base);
	if (!s->http) {
		snprintf(err, errlen, "evhttp_new failed");
		goto fail;
	}
	evhttp_set_bevcb(s->http, bevcb, s);
	evhttp_set_gencb(s->http, request_cb, s);
	/* every method reaches request_cb, which answers 405 with an Error body */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(s->http, cf->max_body ? cf->max_body : E14SRV_MAX_BODY);
	evhttp_set_max_headers_size(s->http, MAX_HEADERS);
	evhttp_set_timeout(s->http, cf->idle_timeout_s ? (int)cf->idle_timeout_s :
			   E14SRV_IDLE_TIMEOUT_S);
	/* a too large body is read away before the 413, so that the client sees it */
	evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
	if (bind_listen(s, cf->listen, err, errlen))
		goto fail;
	log_info("%s: ETSI 014 KME listening on %s (at most %u connections, %u keys a request)",
		 s->kme_id, s->addr, s->max_conns, s->max_keys);
	return s;
fail:
	e14srv_free(s);
	return NULL;
}

const char *e14srv_address(const struct e14srv *s)
{
	return s->addr;
}

void e14srv_free(struct e14srv *s)
{
	struct sae_stat *st;

	if (!s)
		return;
	while (s->pending)
		cancel(s->pending);
	if (s->http)
		evhttp_free(s->http);
	SSL_CTX_free(s->ctx);
	while ((st = s->saes)) {
		s->saes = st->next;
		free(st);
	}
	if (--s->cnt->ref == 0)
		free(s->cnt);
	free(s);
}
