// SPDX-License-Identifier: GPL-2.0
/*
 * libnl-genl client of the qotp family (see nlclient.h).
 *
 * The socket asks for extended acks (the kernel's reason for a refusal) and for capped
 * acks, so a refused PUSH_KEYS is not echoed back with its key bytes in the error message.
 * Every request buffer is wiped before it is freed, since it may hold key bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <linux/qotp.h>

#include "nlclient.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct req {
	struct nlc *c;
	int (*cb)(struct nl_msg *, void *);
	void *arg;
	int done;
	int cb_err;
};

int nlc_open(struct nlc *c)
{
	int one = 1, fd, id;

	memset(c, 0, sizeof(*c));
	c->sk = nl_socket_alloc();
	if (!c->sk)
		return -ENOMEM;
	if (genl_connect(c->sk)) {
		nl_socket_free(c->sk);
		c->sk = NULL;
		return -ENOTCONN;
	}
	fd = nl_socket_get_fd(c->sk);
	/* Best effort: old kernels lack them, and the request still works. */
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)nl_socket_set_buffer_size(c->sk, 1 << 20, 1 << 20);
	id = genl_ctrl_resolve(c->sk, QOTP_GENL_NAME);
	if (id < 0) {
		nl_socket_free(c->sk);
		c->sk = NULL;
		return -ENOENT;
	}
	c->family = id;
	return 0;
}

void nlc_close(struct nlc *c)
{
	if (c->sk)
		nl_socket_free(c->sk);
	c->sk = NULL;
}

struct nl_msg *nlc_msg(struct nlc *c, uint8_t cmd, int flags, size_t payload)
{
	struct nl_msg *msg = nlmsg_alloc_size(payload + 4096);

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0, flags, cmd,
			 QOTP_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static void msg_wipe_free(struct nl_msg *msg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	explicit_bzero(nlh, nlh->nlmsg_len);
	nlmsg_free(msg);
}

/* Extended ack TLVs follow the nlmsgerr and, unless capped, the echoed request. */
static void parse_extack(struct nlc *c, struct nlmsgerr *e)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	size_t off = sizeof(*e);
	struct nlattr *attrs;
	int len;

	c->extack[0] = 0;
	c->bad_off = 0;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	len = (int)nlh->nlmsg_len - NLMSG_HDRLEN - (int)off;
	if (len <= 0)
		return;
	attrs = (struct nlattr *)((char *)e + off);
	if (nla_parse(tb, NLMSGERR_ATTR_MAX, attrs, len, NULL))
		return;
	if (tb[NLMSGERR_ATTR_MSG] && nla_len(tb[NLMSGERR_ATTR_MSG]) > 0) {
		snprintf(c->extack, sizeof(c->extack), "%.*s",
			 nla_len(tb[NLMSGERR_ATTR_MSG]), (char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
		c->extack[strcspn(c->extack, "\0")] = 0;
	}
	if (tb[NLMSGERR_ATTR_OFFS] && nla_len(tb[NLMSGERR_ATTR_OFFS]) >= 4)
		c->bad_off = nla_get_u32(tb[NLMSGERR_ATTR_OFFS]);
}

static int err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct req *r = arg;

	r->c->err = e->error;
	parse_extack(r->c, e);
	r->done = 1;
	return NL_STOP;
}

static int ack_cb(struct nl_msg *msg, void *arg)
{
	struct req *r = arg;

	r->done = 1;
	return NL_STOP;
}

static int valid_cb(struct nl_msg *msg, void *arg)
{
	struct req *r = arg;

	if (r->cb && !r->cb_err)
		r->cb_err = r->cb(msg, r->arg);
	return NL_OK;
}

int nlc_request(struct nlc *c, struct nl_msg *msg, int (*cb)(struct nl_msg *, void *), void *arg)
{
	struct req r = { .c = c, .cb = cb, .arg = arg };
	struct nl_cb *nlcb = nl_cb_alloc(NL_CB_CUSTOM);
	int err;

	c->err = 0;
	c->extack[0] = 0;
	if (!nlcb) {
		msg_wipe_free(msg);
		return -ENOMEM;
	}
	nl_cb_err(nlcb, NL_CB_CUSTOM, err_cb, &r);
	nl_cb_set(nlcb, NL_CB_ACK, NL_CB_CUSTOM, ack_cb, &r);
	nl_cb_set(nlcb, NL_CB_FINISH, NL_CB_CUSTOM, ack_cb, &r);
	nl_cb_set(nlcb, NL_CB_VALID, NL_CB_CUSTOM, valid_cb, &r);

	err = nl_send_auto(c->sk, msg);
	msg_wipe_free(msg);
	if (err < 0) {
		nl_cb_put(nlcb);
		return err == -NLE_MSGSIZE ? -EMSGSIZE : -EIO;
	}
	while (!r.done) {
		err = nl_recvmsgs(c->sk, nlcb);
		if (err < 0 && !r.done) {
			nl_cb_put(nlcb);
			return c->err ? c->err : -EIO;
		}
	}
	nl_cb_put(nlcb);
	if (c->err)
		return c->err;
	return r.cb_err;
}

int nlc_subscribe(struct nlc *c)
{
	int grp = genl_ctrl_resolve_grp(c->sk, QOTP_GENL_NAME, QOTP_MCGRP_EVENTS);

	if (grp < 0)
		return -ENOENT;
	nl_socket_disable_seq_check(c->sk);
	return nl_socket_add_membership(c->sk, grp) ? -EPERM : 0;
}

const char *nlc_strerror(const struct nlc *c, int err, char *buf, size_t len)
{
	if (c->extack[0])
		snprintf(buf, len, "%s (%s)", c->extack, strerror(-err));
	else
		snprintf(buf, len, "%s", strerror(-err));
	return buf;
}
