/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small libnl-genl client of the qotp family: resolve it, send one request, collect the
 * replies, and turn a failure into errno plus the kernel's extack message.
 */
#ifndef QOTP_NLCLIENT_H
#define QOTP_NLCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <netlink/netlink.h>
#include <netlink/genl/genl.h>

struct nlc {
	struct nl_sock *sk;
	int family;
	int err;		/* last request: 0 or a negative errno */
	char extack[256];	/* the kernel's explanation of the last failure, or "" */
	uint32_t bad_off;	/* extack offset of the offending attribute, or 0 */
};

/* Connects and resolves the family. -ENOENT: the qotp module is not loaded. */
int nlc_open(struct nlc *c);
void nlc_close(struct nlc *c);

/* A request for @cmd (flags: 0 or NLM_F_DUMP), sized for @payload bytes of attributes. */
struct nl_msg *nlc_msg(struct nlc *c, uint8_t cmd, int flags, size_t payload);

/*
 * Sends @msg (consumed: wiped and freed) and waits for its acknowledgement or the end of
 * the dump; @cb is called for each reply message. Returns 0 or a negative errno, with
 * c->extack set when the kernel said why.
 */
int nlc_request(struct nlc *c, struct nl_msg *msg, int (*cb)(struct nl_msg *, void *), void *arg);

/* Subscribes to the events group (for monitor). */
int nlc_subscribe(struct nlc *c);

/* "strerror(-err): extack" into @buf. */
const char *nlc_strerror(const struct nlc *c, int err, char *buf, size_t len);

#endif
