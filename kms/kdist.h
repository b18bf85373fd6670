/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmsd's key distribution into the qotp kernel rings (kdist.c): from link key for
 * neighbours, from PPETP transfer keys for remotes.
 */
#ifndef KMS_KDIST_H
#define KMS_KDIST_H

#include <stddef.h>

#include <event2/buffer.h>

struct kmsd;
struct link;
struct msg;

/* Sets up distribution for every neighbour with qotp-peer; opens the kernel when it can. */
int kd_init(struct kmsd *d);
void kd_free(struct kmsd *d);
/* The kernel socket failed: close it, drop the pairs, retry opening. */
void kd_kernel_close(struct kmsd *d);
/* A peer session came up / a caching round verified blocks: offer if the ring needs key. */
void kd_peer_up(struct link *l);
void kd_kick(struct link *l);
/* Transfers kdist starts carry this cookie (kmsctl's are small counters). */
#define KD_XFER_COOKIE (1ULL << 63)
/* A transfer kdist started to peer ended (ok: committed and stored): refill. */
void kd_xfer_done(struct kmsd *d, const char *peer, int ok);
/* Periodic: expires unanswered offers (burnt), refills. */
void kd_tick(struct kmsd *d);
/* A MSG_DIST from the peer of l. -1: a protocol violation (close the session). */
int kd_recv(struct link *l, const struct msg *m);
/* `kmsctl pairs`. */
void kd_ctl_pairs(struct kmsd *d, struct evbuffer *o, int json);

#endif
