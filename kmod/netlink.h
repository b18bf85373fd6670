/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The qotp generic netlink family, and the event queue that lets the packet path (softirq)
 * and block frees report to userspace without allocating netlink messages there.
 */
#ifndef _QOTP_NETLINK_H
#define _QOTP_NETLINK_H

#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>

/* At most this many events wait; later ones are dropped and counted in @lost. */
#define QOTP_EVQ_MAX	8192

struct qotp_ev {
	struct list_head node;
	u8 cmd;			/* QOTP_CMD_EVENT_* */
	u8 dir;
	u32 peer;
	u64 val;		/* AVAIL, DROPS or CONSUMED, by cmd */
	u64 block_id;		/* RELEASED only */
};

struct qotp_evq {
	spinlock_t lock;	/* bh: events are queued from softirq */
	struct list_head list;
	unsigned int len;
	unsigned long lost;
	bool live;		/* false: queue only (tests) or shutting down */
	struct net *net;	/* where events go; NULL in tests */
	struct work_struct work;
};

void qotp_evq_init(struct qotp_evq *q, struct net *net);
/* Stops sending, waits for the worker and frees what is still queued. */
void qotp_evq_exit(struct qotp_evq *q);
/* Any context. */
void qotp_evq_add(struct qotp_evq *q, u8 cmd, u32 peer, u8 dir, u64 val, u64 block_id);
/* Moves every queued event to @out (tests). */
void qotp_evq_take(struct qotp_evq *q, struct list_head *out);

int qotp_genl_init(void);
void qotp_genl_exit(void);

#endif /* _QOTP_NETLINK_H */
