/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QKD source interface: where a link's raw key blocks come from. kmsd only sees this
 * struct of function pointers, so a real device backend (an ETSI GS QKD 014 REST client,
 * pulling keys with get_key) can be added beside the simulator client without touching
 * the rest of the daemon. A backend pushes blocks and link status through the callbacks.
 */
#ifndef KMS_QKD_H
#define KMS_QKD_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"

struct qkd_block {
	uint64_t id;
	const uint8_t *key;
	size_t len;
};

struct msg;
struct evbuffer;

struct qkd_callbacks {
	/*
	 * A batch of blocks in arrival order; bytes are only valid during the call. 0 when
	 * they are stored (committed), 1 when some id was seen before (that block ignored),
	 * -1 when they were lost (store error).
	 */
	int (*blocks)(void *arg, const struct qkd_block *b, size_t n);
	/* The link (device pair, or simulator with both ends) went up or down. */
	void (*status)(void *arg, int up);
	/* How long one batch may take to store, in microseconds (0: no bound); see budget.h. */
	unsigned (*budget_us)(void *arg);
	/* A MSG_QKD to the neighbour over the peer session: 0, or -1 (no session). */
	int (*send)(void *arg, const struct msg *m);
};

struct qkd_source;

struct qkd_source_ops {
	const char *name;
	struct qkd_source *(*open)(struct event_base *base, const struct kms_config *cf,
				   const struct kms_neighbour *nb, const struct qkd_callbacks *cb,
				   void *arg);
	void (*close)(struct qkd_source *src);
	/* Stop/resume delivery (backpressure when the link store is full). */
	void (*pause)(struct qkd_source *src, int paused);
	/* One line naming the source, for kmsctl ("qkd-sim unix:/run/q.sock end a"). */
	void (*describe)(struct qkd_source *src, char *buf, size_t len);
	/* Optional. The peer session with the neighbour came up (1) or went down (0). */
	void (*peer)(struct qkd_source *src, int up);
	/* Optional. A MSG_QKD from the neighbour: 0, or -1 (protocol violation: close). */
	int (*recv)(struct qkd_source *src, const struct msg *m);
	/* Optional. kmsctl links: the backend's counters, text lines or JSON members. */
	void (*ctl)(struct qkd_source *src, struct evbuffer *o, int json);
};

struct qkd_source {
	const struct qkd_source_ops *ops;
};

const struct qkd_source_ops *qkd_backend_ops(enum qkd_backend backend);
/* qkd_etsi.c: link key from a pair of ETSI GS QKD 014 KMEs (Documentation/etsi014.md) */
extern const struct qkd_source_ops qkd_etsi014_ops;
/* Loads a KME profile's certificate, key and CA as the source will: 0, or -1 with err. */
int qkd_etsi014_check(const struct kms_kme *k, char *err, size_t errlen);

#endif
