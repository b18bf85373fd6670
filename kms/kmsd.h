/* SPDX-License-Identifier: GPL-2.0 */
/* kmsd's shared state: the daemon, its links (one per neighbour) and peer connections. */
#ifndef KMS_KMSD_H
#define KMS_KMSD_H

#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "caching.h"
#include "config.h"
#include "qkd.h"
#include "store.h"

struct kmsd;
struct peer;
struct kd;
struct kd_link;

struct link {
	struct kmsd *d;
	struct kms_neighbour nb;
	struct cache_link cache;
	struct qkd_source *qkd;
	int qkd_up;
	int qkd_paused;
	uint64_t qkd_blocks, qkd_dup;
	struct peer *peer;		/* identified connection, or NULL */
	struct kd_link *kd;		/* key distribution (kdist.c), NULL if not configured */
	struct event *reconnect_ev;
	struct event *round_ev;
	unsigned backoff_ms;
	uint64_t connects;
	char last_error[160];
};

struct peer {
	struct kmsd *d;
	struct bufferevent *bev;
	struct link *link;		/* set once the certificate identified the peer */
	int outbound;
	int hello_rx;
	int read_throttled;
	struct event *ka_ev;
	int64_t last_rx_ms;
	char addr[KMS_ADDR_MAX];
	struct msg *in, *out;		/* scratch messages (large) */
};

struct kmsd {
	const char *conf_path;
	struct kms_config cf;
	struct event_base *base;
	SSL_CTX *ssl_srv, *ssl_cli;
	struct evconnlistener *lis;
	struct store *st;
	struct link links[KMS_MAX_NEIGHBOURS];
	size_t n_links;
	struct event *tick_ev;
	struct evconnlistener *ctl;
	time_t started;
	/* key routing (routing.c) */
	struct rt *rt;
	struct msg *rt_msg;		/* scratch advert (large) */
	uint64_t rt_last_full_ms;	/* last periodic advertisement */
	uint64_t rt_adverts_tx, rt_adverts_rx, rt_adverts_bad;
	int stopping;			/* shutting down: no more adverts */
	struct kd *kd;			/* key distribution to the kernel, NULL if unused */
};

int64_t now_ms(void);

/* peer.c */
int peer_tls_init(struct kmsd *d, char *err, size_t errlen);
int peer_listen(struct kmsd *d);
void peer_dial(struct link *l);
void peer_close(struct peer *p, const char *why);
int peer_send(struct peer *p, const struct msg *m);
void peer_shutdown(struct kmsd *d);

/* routing.c: route.c driven by peer-session state and the peer channel */
uint64_t mono_ms(void);
int routing_init(struct kmsd *d);
void routing_free(struct kmsd *d);
void routing_peer_up(struct link *l);
void routing_peer_down(struct link *l);
int routing_recv(struct link *l, const struct msg *m);
void routing_tick(struct kmsd *d);

/* ctl.c */
int ctl_listen(struct kmsd *d);
void ctl_close(struct kmsd *d);

#endif
