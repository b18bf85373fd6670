/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmsd's side of the qotp kernel interface (uapi/linux/qotp.h), over kms/nlclient:
 * pushing key blocks into a peer's rings, flushing rings, reading a ring's highest id,
 * and receiving the family's events on a non-blocking socket whose fd goes on kmsd's
 * libevent base (EV_READ | EV_PERSIST, then kk_dispatch()).
 *
 * Two sockets: requests (blocking, acked, answered within the kernel call) and events
 * (multicast, non-blocking), so an event arriving during a request is never mistaken for
 * its reply. Every buffer that held key bytes is wiped before it is freed.
 */
#ifndef KMS_KERNEL_KEYS_H
#define KMS_KERNEL_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nl_msg;

/* A nested attribute's length is 16 bits: QOTP_A_PUSH_BLOCKS must fit in it. */
#define KK_NEST_MAX 65000
#define KK_MAX_EVENT_IDS 1024

struct kk_block {
	uint64_t id;
	const uint8_t *data;
	uint32_t len;			/* 1..QOTP_MAX_BLOCK_LEN */
};

enum kk_event_type {
	KK_EV_LOW_WATERMARK = 1,	/* avail */
	KK_EV_KEY_EMPTY,		/* drops */
	KK_EV_RELEASED,			/* ids[], consumed */
	KK_EV_FLUSHED,			/* peer 0 = all peers, dir -1 = both */
	KK_EV_OVERRUN,			/* the socket dropped events: re-read every ring */
};

struct kk_event {
	enum kk_event_type type;
	uint32_t peer;			/* 0: absent (FLUSHED of all peers) */
	int dir;			/* QOTP_DIR_*, -1: absent (both) */
	uint64_t avail, drops, consumed;
	size_t n_ids;
	const uint64_t *ids;		/* RELEASED; valid during the callback only */
};

typedef void (*kk_event_cb)(void *arg, const struct kk_event *ev);

struct kk;

/*
 * Opens both sockets and subscribes to the events group. Returns 0, -ENOENT ("the qotp
 * module is not loaded"), or another negative errno.
 */
int kk_open(struct kk **out, kk_event_cb cb, void *arg);
void kk_close(struct kk *kk);
int kk_event_fd(const struct kk *kk);
/*
 * Reads and delivers every pending event; 0, -ENODEV once the qotp family was unregistered
 * (module unloaded: close and reopen), or another negative errno if the socket failed.
 */
int kk_dispatch(struct kk *kk);
/* The kernel's explanation of the last refused request ("" if none). */
const char *kk_last_error(const struct kk *kk);

/*
 * Pushes n blocks (ids strictly increasing) into ring dir of peer, in as few messages as
 * the limits allow; each message is all or nothing in the kernel. *done (may be NULL) is
 * set to the number of leading blocks the kernel accepted. Returns 0 or a negative errno
 * (-EEXIST: an id at or below the ring's last one; -ENOSPC: over the ring's memory cap).
 */
int kk_push(struct kk *kk, uint32_t peer, int dir, const struct kk_block *b, size_t n,
	    size_t *done);
/* QOTP_CMD_FLUSH: peer 0 = all peers, dir -1 = both rings. */
int kk_flush(struct kk *kk, uint32_t peer, int dir);
/* QOTP_A_RING_LAST_ID and QOTP_A_RING_AVAIL of one ring (last 0 if never set). */
int kk_ring_info(struct kk *kk, uint32_t peer, int dir, uint64_t *last_id, uint64_t *avail);

/* Message building and parsing, usable without the module (unit tested). */

/* How many of the n leading blocks fit in one PUSH_KEYS message (0 if b[0] is invalid). */
size_t kk_push_fit(const struct kk_block *b, size_t n);
/*
 * Builds one PUSH_KEYS message for family with the kk_push_fit() leading blocks; *used is
 * that count. NULL on invalid input or no memory. The caller wipes and frees it.
 */
struct nl_msg *kk_build_push(int family, uint32_t peer, int dir, const struct kk_block *b,
			     size_t n, size_t *used);
/*
 * Parses one event message with a userspace policy. ids must hold KK_MAX_EVENT_IDS.
 * Returns 0, -EBADMSG (malformed / missing attribute) or -EOPNOTSUPP (not an event).
 */
int kk_parse_event(struct nl_msg *msg, struct kk_event *ev, uint64_t *ids);

#endif
