// SPDX-License-Identifier: GPL-2.0
/*
 * The peer channel: TCP + TLS 1.3 with mutual certificate authentication. A peer is only
 * accepted if its certificate chains to our CA *and* names a configured neighbour or remote
 * (SAN DNS or CN equal to its node id); the first message must then be a HELLO naming that
 * same node. Every refusal is logged with its reason. The end with the smaller id dials (and
 * leads key caching); the other accepts, so there is one connection per node pair.
 * Sessions with remotes (no quantum link) carry only keepalives, the end-to-end PPETP
 * messages and key distribution of transfer keys: no key caching, no route adverts, no
 * RELAY.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "kdist.h"
#include "kmsd.h"
#include "log.h"
#include "nbkme.h"

#define BACKOFF_MIN_MS 250
#define HANDSHAKE_TIMEOUT_S 10

static void peer_read_cb(struct bufferevent *bev, void *arg);

static const char *ssl_errstr(struct bufferevent *bev)
{
	static char buf[256];
	unsigned long e = bev ? bufferevent_get_openssl_error(bev) : ERR_get_error();

	if (!e)
		return NULL;
	ERR_error_string_n(e, buf, sizeof(buf));
	while ((bev ? bufferevent_get_openssl_error(bev) : ERR_get_error()) != 0)
		;
	return buf;
}

static SSL_CTX *mkctx(struct kmsd *d, int server, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	const char *what = "SSL_CTX_new";

	if (!ctx)
		goto fail;
	what = "TLS 1.3";
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	what = d->cf.tls_cert;
	if (SSL_CTX_use_certificate_chain_file(ctx, d->cf.tls_cert) != 1)
		goto fail;
	what = d->cf.tls_key;
	if (SSL_CTX_use_PrivateKey_file(ctx, d->cf.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	what = d->cf.tls_ca;
	if (SSL_CTX_load_verify_locations(ctx, d->cf.tls_ca, NULL) != 1)
		goto fail;
	/* Both directions verify: no certificate, or one not from our CA, fails the handshake. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
fail:
	snprintf(err, errlen, "TLS setup: %s: %s", what, ssl_errstr(NULL) ?: "failed");
	SSL_CTX_free(ctx);
	return NULL;
}

int peer_tls_init(struct kmsd *d, char *err, size_t errlen)
{
	d->ssl_srv = mkctx(d, 1, err, errlen);
	if (!d->ssl_srv)
		return -1;
	d->ssl_cli = mkctx(d, 0, err, errlen);
	return d->ssl_cli ? 0 : -1;
}

int peer_send(struct peer *p, const struct msg *m)
{
	uint8_t buf[MSG_HDR_LEN + MSG_MAX_PAYLOAD];
	long n = codec_encode(m, buf, sizeof(buf));
	int rc;

	if (n < 0) {
		log_warnx("peer %s: cannot encode %s", p->addr, msg_type_name(m->type));
		return -1;
	}
	if (store_group_pending(p->d->st)) {
		/* depends, or may, on store operations not yet committed: kmsd_sync */
		if (m->type == MSG_PPETP) {
			p->d->group_ppetp = 1;
			if (p->d->failpoint == FP_PPETP_BEFORE_COMMIT) {
				log_warnx("KMSD_FAILPOINT: killed with a PPETP message held, "
					  "before its group's commit");
				raise(SIGKILL);
			}
		}
		if (!p->held && !(p->held = evbuffer_new()))
			rc = -1;
		else if ((rc = evbuffer_add(p->held, buf, n)) == 0 && !p->held_listed) {
			p->held_next = p->d->held;
			p->d->held = p;
			p->held_listed = 1;
		}
	} else {
		rc = bufferevent_write(p->bev, buf, n);
	}
	if (m->type == MSG_PPETP)
		explicit_bzero(buf, n);		/* padded key bytes: no copy left behind */
	return rc;
}

void peer_release_held(struct kmsd *d)
{
	struct peer *p = d->held, *next;

	d->held = NULL;
	for (; p; p = next) {
		next = p->held_next;
		p->held_next = NULL;
		p->held_listed = 0;
		if (bufferevent_write_buffer(p->bev, p->held))
			log_warnx("peer %s: cannot queue %zu held bytes", p->addr,
				  evbuffer_get_length(p->held));
	}
}

/* A peer that goes away takes its held messages with it, unsent. */
static void unhold(struct peer *p)
{
	struct peer **pp = &p->d->held;

	if (p->held_listed) {
		while (*pp != p)
			pp = &(*pp)->held_next;
		*pp = p->held_next;
	}
	if (p->held)
		evbuffer_free(p->held);
}

static void schedule_reconnect(struct link *l)
{
	struct timeval tv;

	if (!l->nb.address[0] || strcmp(l->d->cf.node_id, l->nb.id) > 0)
		return;		/* the other end dials */
	if (!l->backoff_ms)
		l->backoff_ms = BACKOFF_MIN_MS;
	tv.tv_sec = l->backoff_ms / 1000;
	tv.tv_usec = (l->backoff_ms % 1000) * 1000;
	event_add(l->reconnect_ev, &tv);
	l->backoff_ms *= 2;
	if (l->backoff_ms > l->d->cf.reconnect_max_s * 1000)
		l->backoff_ms = l->d->cf.reconnect_max_s * 1000;
}

void peer_close(struct peer *p, const char *why)
{
	struct link *l = p->link;

	if (why) {
		log_warnx("peer %s%s%s: closing: %s", p->link ? p->link->nb.id : "",
			  p->link ? " " : "", p->addr, why);
		if (l)
			snprintf(l->last_error, sizeof(l->last_error), "%s", why);
	}
	if (l && l->peer == p) {
		l->peer = NULL;
		if (l->quantum)
			cache_peer_lost(&l->cache);
		if (l->quantum && p->hello_rx)
			routing_peer_down(l);
		if (l->quantum && p->hello_rx && l->qkd && l->qkd->ops->peer)
			l->qkd->ops->peer(l->qkd, 0);
	}
	if (p->ka_ev)
		event_free(p->ka_ev);
	if (p->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(p->bev);

		if (ssl)
			SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
		bufferevent_free(p->bev);
	}
	unhold(p);
	free(p->in);
	free(p->out);
	if (p->outbound && l)
		schedule_reconnect(l);
	free(p);
}

static void keepalive_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;
	struct msg m = { .type = MSG_KEEPALIVE };

	if (now_ms() - p->last_rx_ms > 3000LL * p->d->cf.keepalive_s) {
		peer_close(p, "keepalive timeout: nothing received for 3 intervals");
		return;
	}
	m.keepalive.nonce = (uint64_t)now_ms();
	peer_send(p, &m);
}

/* Which configured neighbour or remote does the verified certificate name? */
static struct link *identify(struct kmsd *d, X509 *cert)
{
	for (size_t i = 0; i < d->n_links; i++)
		if (X509_check_host(cert, d->links[i].nb.id, 0,
				    X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1)
			return &d->links[i];
	for (size_t i = 0; i < d->n_remotes; i++)
		if (X509_check_host(cert, d->remotes[i].nb.id, 0,
				    X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1)
			return &d->remotes[i];
	return NULL;
}

static void peer_established(struct peer *p)
{
	SSL *ssl = bufferevent_openssl_get_ssl(p->bev);
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	struct msg m = { .type = MSG_HELLO };
	struct timeval tv = { p->d->cf.keepalive_s, 0 };
	struct link *l;
	int one = 1;

	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) {
		peer_close(p, "unauthenticated peer: no verified certificate");
		return;
	}
	/*
	 * Every message is written whole and waited for by the other side: without this a
	 * message cut into two TLS records waits for the peer's delayed ACK (40 ms a hop).
	 */
	if (setsockopt(bufferevent_getfd(p->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		log_warn("peer %s: TCP_NODELAY", p->addr);
	l = identify(p->d, cert);
	if (!l || (p->link && l != p->link)) {
		char cn[128] = "?";

		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					  sizeof(cn));
		p->link = NULL;
		peer_close(p, p->outbound ? "peer certificate does not match the neighbour id" :
			   "peer certificate names no configured neighbour or remote");
		log_warnx("refused certificate subject CN `%s'", cn);
		return;
	}
	p->link = l;
	if (SSL_version(ssl) != TLS1_3_VERSION) {
		peer_close(p, "peer did not negotiate TLS 1.3");
		return;
	}
	log_info("peer %s %s: TLS 1.3 established (%s)", l->nb.id, p->addr,
		 p->outbound ? "outbound" : "inbound");
	snprintf(m.hello.node_id, sizeof(m.hello.node_id), "%s", p->d->cf.node_id);
	peer_send(p, &m);
	p->last_rx_ms = now_ms();
	p->ka_ev = event_new(p->d->base, -1, EV_PERSIST, keepalive_cb, p);
	event_add(p->ka_ev, &tv);
	bufferevent_set_timeouts(p->bev, NULL, NULL);	/* keepalive takes over */
	if (evbuffer_get_length(bufferevent_get_input(p->bev)))
		peer_read_cb(p->bev, p);
}

static void peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;
	char why[300];
	const char *e;
	int serr;

	if (what & BEV_EVENT_CONNECTED) {
		peer_established(p);
		return;
	}
	serr = EVUTIL_SOCKET_ERROR();
	e = ssl_errstr(bev);
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "TLS handshake timeout");
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed by peer");
	else if (serr && (!e || !strncmp(e, "error:00000005:", 15)))
		/* libevent reports a failed connect as SSL_ERROR_SYSCALL: show errno */
		snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(serr));
	else if (e)
		snprintf(why, sizeof(why), "TLS: %s", e);
	else
		snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(
				 EVUTIL_SOCKET_ERROR()));
	peer_close(p, why);
}

static void peer_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;

	/* Output drained below the low watermark: accept requests again. */
	if (p->read_throttled) {
		p->read_throttled = 0;
		bufferevent_enable(bev, EV_READ);
		peer_read_cb(bev, p);
	}
}

static struct peer *peer_new(struct kmsd *d, int outbound)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->d = d;
	p->outbound = outbound;
	p->in = malloc(sizeof(*p->in));
	p->out = malloc(sizeof(*p->out));
	if (!p->in || !p->out) {
		free(p->in);
		free(p->out);
		free(p);
		return NULL;
	}
	return p;
}

static void setup_bev(struct peer *p)
{
	/* An unauthenticated connection gets HANDSHAKE_TIMEOUT_S to prove who it is. */
	struct timeval tv = { HANDSHAKE_TIMEOUT_S, 0 };

	bufferevent_set_timeouts(p->bev, &tv, &tv);
	bufferevent_setcb(p->bev, peer_read_cb, peer_write_cb, peer_event_cb, p);
	bufferevent_setwatermark(p->bev, EV_WRITE, p->d->cf.write_high_watermark / 4, 0);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

static int handle_msg(struct peer *p, struct msg *m)
{
	struct link *l = p->link;
	int rc;

	if (!p->hello_rx) {
		if (m->type != MSG_HELLO) {
			peer_close(p, "first message is not hello");
			return -1;
		}
		if (strcmp(m->hello.node_id, l->nb.id)) {
			peer_close(p, "hello node id does not match the certificate");
			return -1;
		}
		p->hello_rx = 1;
		if (l->peer && l->peer != p)
			peer_close(l->peer, "replaced by a new connection");
		l->peer = p;
		l->backoff_ms = 0;
		l->connects++;
		l->last_error[0] = '\0';
		if (!l->quantum) {
			log_info("remote %s: peer up (end-to-end session, no quantum link)",
				 l->nb.id);
			kd_peer_up(l);
			return 0;
		}
		log_info("link %s: peer up (%s of key caching)", l->nb.id,
			 l->cache.leader ? "leader" : "follower");
		event_active(l->round_ev, 0, 0);
		routing_peer_up(l);
		kd_peer_up(l);
		if (l->qkd && l->qkd->ops->peer)
			l->qkd->ops->peer(l->qkd, 1);
		return 0;
	}
	switch (m->type) {
	case MSG_HELLO:
		peer_close(p, "second hello");
		return -1;
	case MSG_KEEPALIVE:
		return 0;
	case MSG_PPETP:
		if (xfer_recv(l, m) < 0) {
			peer_close(p, "PPETP relay message from a node without a quantum link");
			return -1;
		}
		return 0;
	case MSG_DIST:		/* neighbours: link keys; remotes: PPETP transfer keys */
		if (kd_recv(l, m) < 0) {
			peer_close(p, "key distribution message for another pair");
			return -1;
		}
		return 0;
	case MSG_SAE:		/* northbound ETSI 014: link blocks or transfer keys */
		return nb_recv(l, m);
	}
	if (!l->quantum) {
		char why[64];

		snprintf(why, sizeof(why), "%s message on a session without a quantum link",
			 msg_type_name(m->type));
		peer_close(p, why);
		return -1;
	}
	switch (m->type) {
	case MSG_VERIFY_REQ:
		if (cache_handle_req(&l->cache, m, p->out) < 0) {
			peer_close(p, l->cache.leader ? "verify request sent to the leader" :
				   "verify request could not be processed");
			return -1;
		}
		rc = peer_send(p, p->out);
		kd_kick(l);
		return rc;
	case MSG_VERIFY_RESP:
		rc = cache_handle_resp(&l->cache, m, now_ms());
		if (rc < 0) {
			peer_close(p, "verify response does not answer our round");
			return -1;
		}
		event_active(l->round_ev, 0, 0);
		kd_kick(l);
		return 0;
	case MSG_ROUTE_ADVERT:
		if (routing_recv(l, m) < 0) {
			peer_close(p, "route advert from another origin than the peer");
			return -1;
		}
		return 0;
	case MSG_QKD:
		if (!l->qkd || !l->qkd->ops->recv || l->qkd->ops->recv(l->qkd, m) < 0) {
			peer_close(p, "ETSI 014 key_ID message the link's QKD source does not "
				   "expect");
			return -1;
		}
		return 0;
	}
	return 0;
}

static void peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char why[128];

	if (!p->link)
		return;		/* not yet identified (cannot happen after CONNECTED) */
	p->last_rx_ms = now_ms();
	for (;;) {
		size_t avail = evbuffer_get_length(in), n;
		uint8_t *h, type = 0;
		uint32_t plen = 0;
		int rc;

		if (evbuffer_get_length(bufferevent_get_output(bev)) >=
		    p->d->cf.write_high_watermark) {
			/* Backpressure: stop answering until the peer reads our answers. */
			p->read_throttled = 1;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (avail == 0)
			return;
		n = avail < MSG_HDR_LEN ? avail : MSG_HDR_LEN;
		h = evbuffer_pullup(in, n);
		rc = codec_decode_header(h, n, &type, &plen);
		if (rc == CODEC_SHORT)
			return;
		if (rc != CODEC_OK) {
			snprintf(why, sizeof(why), "bad frame: %s (version byte %u, ours %u)",
				 codec_strerror(rc), h[0], KMS_PROTO_VERSION);
			peer_close(p, why);
			return;
		}
		if (avail < MSG_HDR_LEN + plen)
			return;
		h = evbuffer_pullup(in, MSG_HDR_LEN + plen);
		rc = codec_decode_payload(type, h + MSG_HDR_LEN, plen, p->in);
		evbuffer_drain(in, MSG_HDR_LEN + plen);
		if (rc != CODEC_OK) {
			snprintf(why, sizeof(why), "bad %s message: %s", msg_type_name(type),
				 codec_strerror(rc));
			peer_close(p, why);
			return;
		}
		if (handle_msg(p, p->in) < 0)
			return;
	}
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct kmsd *d = arg;
	struct peer *p = peer_new(d, 0);
	SSL *ssl = p ? SSL_new(d->ssl_srv) : NULL;

	if (!ssl) {
		free(p);
		evutil_closesocket(fd);
		return;
	}
	{
		char host[64] = "?", serv[16] = "?";

		getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(p->addr, sizeof(p->addr), "%s:%s", host, serv);
	}
	p->bev = bufferevent_openssl_socket_new(d->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!p->bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		peer_close(p, NULL);
		return;
	}
	log_debug("peer %s: accepted, TLS handshake", p->addr);
	setup_bev(p);
}

int peer_listen(struct kmsd *d)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (evutil_parse_sockaddr_port(d->cf.listen, (struct sockaddr *)&ss, &len)) {
		log_warnx("cannot parse listen address: `%s'", d->cf.listen);
		return -1;
	}
	d->lis = evconnlistener_new_bind(d->base, accept_cb, d, LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 16,
					 (struct sockaddr *)&ss, len);
	if (!d->lis) {
		log_warn("listen on %s", d->cf.listen);
		return -1;
	}
	return 0;
}

void peer_dial(struct link *l)
{
	struct kmsd *d = l->d;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	struct peer *p;
	SSL *ssl;

	if (l->peer)
		return;
	if (evutil_parse_sockaddr_port(l->nb.address, (struct sockaddr *)&ss, &len)) {
		log_warnx("link %s: cannot parse address: `%s'", l->nb.id, l->nb.address);
		return;
	}
	p = peer_new(d, 1);
	ssl = p ? SSL_new(d->ssl_cli) : NULL;
	if (!ssl) {
		free(p);
		schedule_reconnect(l);
		return;
	}
	p->link = l;
	snprintf(p->addr, sizeof(p->addr), "%s", l->nb.address);
	/* The handshake itself checks that the certificate names this neighbour. */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_WILDCARDS);
	if (!SSL_set1_host(ssl, l->nb.id) || !SSL_set_tlsext_host_name(ssl, l->nb.id)) {
		SSL_free(ssl);
		peer_close(p, "cannot set expected peer identity");
		return;
	}
	p->bev = bufferevent_openssl_socket_new(d->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!p->bev) {
		SSL_free(ssl);
		peer_close(p, "out of memory");
		return;
	}
	setup_bev(p);
	log_debug("link %s: dialling %s", l->nb.id, l->nb.address);
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&ss, len) < 0)
		peer_close(p, "connect failed");
}

void peer_shutdown(struct kmsd *d)
{
	for (size_t i = 0; i < d->n_links + d->n_remotes; i++) {
		struct link *l = i < d->n_links ? &d->links[i] : &d->remotes[i - d->n_links];

		event_del(l->reconnect_ev);
		if (l->peer) {
			l->peer->outbound = 0;	/* no reconnect */
			peer_close(l->peer, NULL);
		}
	}
	if (d->lis)
		evconnlistener_free(d->lis);
	d->lis = NULL;
}
