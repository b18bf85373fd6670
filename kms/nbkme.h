/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmsd's northbound side: an ETSI GS QKD 014 KME for the applications (SAEs) of this site
 * (Documentation/etsi014.md, "Northbound"), on e14srv.[ch]. Keys for a slave SAE at another
 * node are cut from key this node already shares with that node -- a verified link block of
 * our parity (quantum neighbour) or a PPETP transfer key we were the source of (remote,
 * transferred on demand) -- and the slave's node is told where each key lies (MSG_SAE); it
 * holds them for that slave SAE in the store (sae_keys) until dec_keys hands each out once.
 */
#ifndef KMS_NBKME_H
#define KMS_NBKME_H

#include <stddef.h>
#include <stdint.h>

struct kmsd;
struct link;
struct msg;
struct evbuffer;
struct kms_e14_listen;

#define NB_XFER_COOKIE (1ULL << 62)	/* xfer_start cookie of our transfers */

/* Listens if kmsd.conf has etsi014-listen (d->nb stays NULL otherwise). 0 or -1 (logged). */
int nb_init(struct kmsd *d);
void nb_free(struct kmsd *d);
/* kmsd -n: the listener's certificate, key and CA load. 0, or -1 with err. */
int nb_check(const struct kms_e14_listen *e, char *err, size_t errlen);
/* A MSG_SAE from the peer of l. -1: a protocol violation (close the session). */
int nb_recv(struct link *l, const struct msg *m);
/* A transfer started with NB_XFER_COOKIE to node peer ended (ok: committed). */
void nb_xfer_done(struct kmsd *d, const char *peer, int ok);
/* The store group committed: dec_keys answers held since it opened go out. */
void nb_release_held(struct kmsd *d);
/* Once a second: deadlines, expiry of slave keys never fetched. */
void nb_tick(struct kmsd *d);
/* kmsctl saes */
void nb_ctl(struct kmsd *d, struct evbuffer *o, int json);

#endif
