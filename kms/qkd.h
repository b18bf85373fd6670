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

struct qkd_callbacks {
	/* A batch of blocks in arrival order; bytes are only valid during the call. */
	void (*blocks)(void *arg, const struct qkd_block *b, size_t n);
	/* The link (device pair, or simulator with both ends) went up or down. */
	void (*status)(void *arg, int up);
	/* How long one batch may take to store, in microseconds (0: no bound); see budget.h. */
	unsigned (*budget_us)(void *arg);
};

struct qkd_source;

struct qkd_source_ops {
	const char *name;
	struct qkd_source *(*open)(struct event_base *base, const struct kms_neighbour *nb,
				   const struct qkd_callbacks *cb, void *arg);
	void (*close)(struct qkd_source *src);
	/* Stop/resume delivery (backpressure when the link store is full). */
	void (*pause)(struct qkd_source *src, int paused);
};

struct qkd_source {
	const struct qkd_source_ops *ops;
};

const struct qkd_source_ops *qkd_backend_ops(enum qkd_backend backend);

#endif
