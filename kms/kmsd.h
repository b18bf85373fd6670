/* SPDX-License-Identifier: GPL-2.0 */
/* kmsd's shared state: the daemon, its links (one per neighbour) and peer connections. */
#ifndef KMS_KMSD_H
#define KMS_KMSD_H

#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
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
struct msg;
struct ctl_req;

/*
 * A node we hold a peer session with. Quantum-link neighbours (quantum = 1) run key caching,
 * routing and link-key distribution; remotes (quantum = 0, `remote` in kmsd.conf) only
 * carry end-to-end PPETP messages (and key distribution of transfer keys). For a remote
 * only nb.id, nb.address and nb.qotp_peer are set.
 */
#define RATE_SAMPLES 11		/* rates over the last 10 s */

struct link {
	struct kmsd *d;
	int quantum;
	struct kms_neighbour nb;
	struct cache_link cache;
	struct qkd_source *qkd;
	int qkd_up;
	int qkd_paused;
	uint64_t qkd_blocks, qkd_dup;
	uint64_t qkd_bytes;		/* raw key bytes received from the QKD source */
	uint64_t used_bytes;		/* verified key used: pushed into rings, PPETP hops */
	uint64_t surplus_bytes;		/* verified key of an idle direction dropped for room */
	/* once a second: the counters above and verified blocks, for `kmsctl keys` rates */
	struct rate_sample {
		int64_t ms;
		uint64_t qkd_bytes, verified_blocks, used_bytes;
	} rs[RATE_SAMPLES];
	unsigned rs_n, rs_next;
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
	struct evbuffer *held;		/* sent while a store group was open (kmsd_sync) */
	struct peer *held_next;		/* on kmsd.held (held_listed) while held has bytes */
	int held_listed;
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
	struct link remotes[KMS_MAX_REMOTES];
	size_t n_remotes;
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
	struct nb *nb;			/* ETSI 014 KME for local SAEs (nbkme.c), or NULL */
	struct xfer *xf;		/* key transfer + PPETP relay (xfer.c) */
	struct ctl_req *ctl_reqs;	/* kmsctl transfer requests waiting for their end */
	uint64_t ctl_next_cookie;
	/* group commit (store.h): one store transaction per event-loop pass */
	struct event *sync_ev;		/* commits the open group; KMSD_PRIO_SYNC */
	struct peer *held;		/* peers with messages waiting for that commit */
	uint64_t groups, group_ops;	/* groups committed, single operations in them */
	int group_ppetp;		/* the open group holds a PPETP message */
	int failpoint;			/* KMSD_FAILPOINT (tests only): enum below */
};

/* Crash points for the tests of group commit (kill -9 of ourselves, at the first chance). */
enum { FP_NONE, FP_PPETP_BEFORE_COMMIT, FP_PPETP_AFTER_COMMIT };

/*
 * Event priorities (event_base_priority_init): the group commit first once a pass's
 * callbacks have run, then peer messages, kernel events, control requests and timers of
 * the time-critical protocols, and last the bulk work that can wait a pass: caching rounds
 * and QKD intake.
 */
enum { KMSD_PRIO_SYNC, KMSD_PRIO_PROTO, KMSD_PRIO_BULK, KMSD_NPRIO };

int64_t now_ms(void);
/* The store group is committed now if one is open (kmsd.c). */
void kmsd_sync(struct kmsd *d);

/* peer.c */
int peer_tls_init(struct kmsd *d, char *err, size_t errlen);
int peer_listen(struct kmsd *d);
void peer_dial(struct link *l);
void peer_close(struct peer *p, const char *why);
int peer_send(struct peer *p, const struct msg *m);
void peer_shutdown(struct kmsd *d);
/* The group committed: messages held since it opened go out, in order. */
void peer_release_held(struct kmsd *d);

/* routing.c: route.c driven by peer-session state and the peer channel */
uint64_t mono_ms(void);
int routing_init(struct kmsd *d);
void routing_free(struct kmsd *d);
void routing_peer_up(struct link *l);
void routing_peer_down(struct link *l);
int routing_recv(struct link *l, const struct msg *m);
void routing_tick(struct kmsd *d);

/* The session-holding link (neighbour or remote) of node id, or NULL. */
struct link *kmsd_find_link(struct kmsd *d, const char *id);

/* xfer.c: key transfer + PPETP relay driven by the peer sessions and the store */
struct xfer;
int xfer_init(struct kmsd *d);
void xfer_free(struct kmsd *d);
/* A MSG_PPETP from the peer of l. -1: a protocol violation (close the session). */
int xfer_recv(struct link *l, const struct msg *m);
/* Operator transfer (kmsctl transfer): 0 started, else -errno; the end comes by ctl_xfer_done. */
int xfer_start(struct kmsd *d, const char *dst, size_t len, uint64_t cookie);
/*
 * What a transfer's failure means, for logs and kmsctl: -ENOSPC is PPETP's "not enough link
 * key on a hop" (a store error is -EIO), which strerror would call a full disk.
 */
const char *xfer_strerror(int err);
void xfer_ctl_status(struct kmsd *d, struct evbuffer *o, int json);
void xfer_ctl_transfers(struct kmsd *d, struct evbuffer *o, int json);
void xfer_fingerprint(const uint8_t *key, size_t len, uint8_t fp[STORE_FP_LEN]);

/* ctl.c */
/* s as a JSON string, quoted and escaped (kmsctl --json output). */
void json_str(struct evbuffer *o, const char *s);
int ctl_listen(struct kmsd *d);
void ctl_close(struct kmsd *d);
/* The group committed: transfer answers held since it opened go out. */
void ctl_release_held(struct kmsd *d);
/* The transfer a `kmsctl transfer` started ended: answer and close that request. */
void ctl_xfer_done(struct kmsd *d, uint64_t cookie, int err, const char *dst, uint64_t txid,
		   size_t len, const uint8_t *fp);

#endif
