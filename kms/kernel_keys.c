// SPDX-License-Identifier: GPL-2.0
/*
 * kmsd <-> qotp.ko: key pushes, flushes, ring queries and events (see kernel_keys.h).
 * Requests go through kms/nlclient (extack, capped acks, wiped buffers); this file adds
 * the splitting of pushes, the event socket and the userspace parsing policies.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <linux/qotp.h>

#include "kernel_keys.h"
#include "nlclient.h"

struct kk {
	struct nlc req;			/* requests */
	struct nlc evt;			/* events: subscribed, non-blocking */
	struct nl_cb *cb;
	kk_event_cb ev_cb;
	void *ev_arg;
	uint64_t ids[KK_MAX_EVENT_IDS];
	int parse_err;
	int gone;			/* nlctrl said the qotp family was unregistered */
};

static void wipe_free_msg(struct nl_msg *msg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	explicit_bzero(nlh, nlh->nlmsg_len);
	nlmsg_free(msg);
}

/* Bytes one block takes inside QOTP_A_PUSH_BLOCKS. */
static size_t block_cost(uint32_t len)
{
	return NLA_HDRLEN + (NLA_HDRLEN + 8) + NLA_HDRLEN + NLA_ALIGN(len);
}

size_t kk_push_fit(const struct kk_block *b, size_t n)
{
	size_t used = NLA_HDRLEN, k;

	for (k = 0; k < n && k < QOTP_MAX_PUSH_BLOCKS; k++) {
		if (!b[k].data || b[k].len == 0 || b[k].len > QOTP_MAX_BLOCK_LEN)
			break;
		if (k && b[k].id <= b[k - 1].id)
			break;
		if (used + block_cost(b[k].len) > KK_NEST_MAX)
			break;
		used += block_cost(b[k].len);
	}
	return k;
}

struct nl_msg *kk_build_push(int family, uint32_t peer, int dir, const struct kk_block *b,
			     size_t n, size_t *used)
{
	size_t k = kk_push_fit(b, n), bytes = 0;
	struct nlattr *blocks;
	struct nl_msg *msg;

	*used = 0;
	if (!k || peer == 0 || dir < 0 || dir > QOTP_DIR_MAX)
		return NULL;
	for (size_t i = 0; i < k; i++)
		bytes += block_cost(b[i].len);
	msg = nlmsg_alloc_size(bytes + 512);
	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, QOTP_CMD_PUSH_KEYS,
			 QOTP_GENL_VERSION) ||
	    nla_put_u32(msg, QOTP_A_PUSH_PEER, peer) ||
	    nla_put_u8(msg, QOTP_A_PUSH_DIR, (uint8_t)dir))
		goto fail;
	blocks = nla_nest_start(msg, QOTP_A_PUSH_BLOCKS | NLA_F_NESTED);
	if (!blocks)
		goto fail;
	for (size_t i = 0; i < k; i++) {
		struct nlattr *one = nla_nest_start(msg, NLA_F_NESTED);

		if (!one || nla_put_u64(msg, QOTP_A_BLOCK_ID, b[i].id) ||
		    nla_put(msg, QOTP_A_BLOCK_DATA, (int)b[i].len, b[i].data))
			goto fail;
		nla_nest_end(msg, one);
	}
	nla_nest_end(msg, blocks);
	*used = k;
	return msg;
fail:
	wipe_free_msg(msg);
	return NULL;
}

static struct nla_policy evt_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_EVT_PEER] = { .type = NLA_U32 },
	[QOTP_A_EVT_DIR] = { .type = NLA_U8 },
	[QOTP_A_EVT_AVAIL] = { .type = NLA_U64 },
	[QOTP_A_EVT_DROPS] = { .type = NLA_U64 },
	[QOTP_A_EVT_BLOCK_IDS] = { .type = NLA_NESTED },
	[QOTP_A_EVT_CONSUMED] = { .type = NLA_U64 },
};

int kk_parse_event(struct nl_msg *msg, struct kk_event *ev, uint64_t *ids)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[QOTP_A_MAX + 1];
	struct genlmsghdr *gh;

	memset(ev, 0, sizeof(*ev));
	ev->dir = -1;
	ev->ids = ids;
	if (!genlmsg_valid_hdr(nlh, 0))
		return -EBADMSG;
	gh = genlmsg_hdr(nlh);
	if (genlmsg_parse(nlh, 0, tb, QOTP_A_MAX, evt_policy))
		return -EBADMSG;
	if (tb[QOTP_A_EVT_PEER])
		ev->peer = nla_get_u32(tb[QOTP_A_EVT_PEER]);
	if (tb[QOTP_A_EVT_DIR]) {
		ev->dir = nla_get_u8(tb[QOTP_A_EVT_DIR]);
		if (ev->dir > QOTP_DIR_MAX)
			return -EBADMSG;
	}
	switch (gh->cmd) {
	case QOTP_CMD_EVENT_LOW_WATERMARK:
		ev->type = KK_EV_LOW_WATERMARK;
		if (!tb[QOTP_A_EVT_AVAIL])
			return -EBADMSG;
		ev->avail = nla_get_u64(tb[QOTP_A_EVT_AVAIL]);
		break;
	case QOTP_CMD_EVENT_KEY_EMPTY:
		ev->type = KK_EV_KEY_EMPTY;
		if (tb[QOTP_A_EVT_DROPS])
			ev->drops = nla_get_u64(tb[QOTP_A_EVT_DROPS]);
		break;
	case QOTP_CMD_EVENT_RELEASED: {
		struct nlattr *a;
		int rem;

		ev->type = KK_EV_RELEASED;
		if (!tb[QOTP_A_EVT_BLOCK_IDS])
			return -EBADMSG;
		nla_for_each_nested(a, tb[QOTP_A_EVT_BLOCK_IDS], rem) {
			/* Ids are type 0; the kernel may interleave QOTP_A_PAD for alignment. */
			if (nla_type(a) == QOTP_A_PAD)
				continue;
			if (nla_type(a) != 0 || nla_len(a) != 8 || ev->n_ids >= KK_MAX_EVENT_IDS)
				return -EBADMSG;
			ids[ev->n_ids++] = nla_get_u64(a);
		}
		if (tb[QOTP_A_EVT_CONSUMED])
			ev->consumed = nla_get_u64(tb[QOTP_A_EVT_CONSUMED]);
		break;
	}
	case QOTP_CMD_EVENT_FLUSHED:
		ev->type = KK_EV_FLUSHED;
		break;
	default:
		return -EOPNOTSUPP;
	}
	/* Every event but FLUSHED names its ring. */
	if (ev->type != KK_EV_FLUSHED && (!ev->peer || ev->dir < 0))
		return -EBADMSG;
	return 0;
}

static struct nla_policy ctrl_policy[CTRL_ATTR_MAX + 1] = {
	[CTRL_ATTR_FAMILY_ID] = { .type = NLA_U16 },
};

/*
 * nlctrl's notification that the qotp family was unregistered (the module unloaded): its
 * rings are gone, and the family and group ids this socket knows may be reused when it
 * comes back, so the socket must be reopened. 1 if MSG says that, else 0.
 */
static int family_deleted(struct nl_msg *msg, int family)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[CTRL_ATTR_MAX + 1];

	if (nlh->nlmsg_type != GENL_ID_CTRL || !genlmsg_valid_hdr(nlh, 0) ||
	    genlmsg_hdr(nlh)->cmd != CTRL_CMD_DELFAMILY ||
	    genlmsg_parse(nlh, 0, tb, CTRL_ATTR_MAX, ctrl_policy) || !tb[CTRL_ATTR_FAMILY_ID])
		return 0;
	return nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]) == family;
}

static int event_valid(struct nl_msg *msg, void *arg)
{
	struct kk *kk = arg;
	struct kk_event ev;

	if (family_deleted(msg, kk->evt.family)) {
		kk->gone = 1;
		return NL_STOP;
	}
	/* Malformed or foreign messages are skipped: the next one may be fine. */
	if (kk_parse_event(msg, &ev, kk->ids) == 0)
		kk->ev_cb(kk->ev_arg, &ev);
	return NL_OK;
}

/*
 * Events are multicast with sequence number 0: libnl's default check (strict ordering
 * against our own requests' numbers) would refuse every one of them with NLE_SEQ_MISMATCH.
 */
static int seq_any(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

int kk_open(struct kk **out, kk_event_cb cb, void *arg)
{
	struct kk *kk;
	int err;

	*out = NULL;
	if (!cb)
		return -EINVAL;
	kk = calloc(1, sizeof(*kk));
	if (!kk)
		return -ENOMEM;
	kk->ev_cb = cb;
	kk->ev_arg = arg;
	err = nlc_open(&kk->req);
	if (err)
		goto fail;
	err = nlc_open(&kk->evt);
	if (err)
		goto fail;
	err = nlc_subscribe(&kk->evt);
	if (err)
		goto fail;
	/* nlctrl's notifications: the module's unloading must not go unnoticed */
	err = genl_ctrl_resolve_grp(kk->evt.sk, "nlctrl", "notify");
	if (err < 0 || nl_socket_add_membership(kk->evt.sk, err)) {
		err = -EPROTO;
		goto fail;
	}
	if (nl_socket_set_nonblocking(kk->evt.sk)) {
		err = -EIO;
		goto fail;
	}
	kk->cb = nl_cb_alloc(NL_CB_CUSTOM);
	if (!kk->cb) {
		err = -ENOMEM;
		goto fail;
	}
	nl_cb_set(kk->cb, NL_CB_VALID, NL_CB_CUSTOM, event_valid, kk);
	nl_cb_set(kk->cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, seq_any, NULL);
	*out = kk;
	return 0;
fail:
	kk_close(kk);
	return err;
}

void kk_close(struct kk *kk)
{
	if (!kk)
		return;
	if (kk->cb)
		nl_cb_put(kk->cb);
	nlc_close(&kk->evt);
	nlc_close(&kk->req);
	explicit_bzero(kk->ids, sizeof(kk->ids));
	free(kk);
}

int kk_event_fd(const struct kk *kk)
{
	return nl_socket_get_fd(kk->evt.sk);
}

int kk_dispatch(struct kk *kk)
{
	for (;;) {
		int err = nl_recvmsgs(kk->evt.sk, kk->cb);

		if (kk->gone)
			return -ENODEV;
		if (err >= 0)
			continue;
		if (err == -NLE_AGAIN)
			return 0;
		if (err == -NLE_NOMEM || err == -NLE_MSG_OVERFLOW) {
			/* ENOBUFS: the kernel dropped events for us; levels must be re-read. */
			struct kk_event ev = { .type = KK_EV_OVERRUN, .dir = -1 };

			kk->ev_cb(kk->ev_arg, &ev);
			continue;
		}
		return -EIO;
	}
}

const char *kk_last_error(const struct kk *kk)
{
	return kk->req.extack;
}

int kk_push(struct kk *kk, uint32_t peer, int dir, const struct kk_block *b, size_t n,
	    size_t *done)
{
	size_t off = 0;

	if (done)
		*done = 0;
	while (off < n) {
		size_t used;
		struct nl_msg *msg = kk_build_push(kk->req.family, peer, dir, b + off, n - off,
						   &used);
		int err;

		if (!msg)
			return kk_push_fit(b + off, n - off) ? -ENOMEM : -EINVAL;
		/* Across messages too: the kernel refuses an id at or below the last. */
		if (off && b[off].id <= b[off - 1].id) {
			wipe_free_msg(msg);
			return -EINVAL;
		}
		err = nlc_request(&kk->req, msg, NULL, NULL);	/* wipes and frees msg */
		if (err)
			return err;
		off += used;
		if (done)
			*done = off;
	}
	return 0;
}

int kk_flush(struct kk *kk, uint32_t peer, int dir)
{
	struct nl_msg *msg = nlc_msg(&kk->req, QOTP_CMD_FLUSH, 0, 64);

	if (!msg)
		return -ENOMEM;
	if ((peer && nla_put_u32(msg, QOTP_A_FLUSH_PEER, peer)) ||
	    (dir >= 0 && nla_put_u8(msg, QOTP_A_FLUSH_DIR, (uint8_t)dir))) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return nlc_request(&kk->req, msg, NULL, NULL);
}

struct ring_q {
	int dir;
	int found;
	uint64_t last, avail;
};

static struct nla_policy peer_reply_policy[QOTP_A_MAX + 1] = {
	[QOTP_A_PEER_ID] = { .type = NLA_U32 },
	[QOTP_A_PEER_RINGS] = { .type = NLA_NESTED },
};

static struct nla_policy ring_policy[QOTP_A_RING_MAX + 1] = {
	[QOTP_A_RING_DIR] = { .type = NLA_U8 },
	[QOTP_A_RING_AVAIL] = { .type = NLA_U64 },
	[QOTP_A_RING_LAST_ID] = { .type = NLA_U64 },
};

static int ring_reply(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[QOTP_A_MAX + 1], *r;
	struct ring_q *q = arg;
	int rem;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, QOTP_A_MAX, peer_reply_policy) ||
	    !tb[QOTP_A_PEER_RINGS])
		return -EBADMSG;
	nla_for_each_nested(r, tb[QOTP_A_PEER_RINGS], rem) {
		struct nlattr *rt[QOTP_A_RING_MAX + 1];

		if (nla_parse_nested(rt, QOTP_A_RING_MAX, r, ring_policy) || !rt[QOTP_A_RING_DIR])
			return -EBADMSG;
		if (nla_get_u8(rt[QOTP_A_RING_DIR]) != q->dir)
			continue;
		q->found = 1;
		q->last = rt[QOTP_A_RING_LAST_ID] ? nla_get_u64(rt[QOTP_A_RING_LAST_ID]) : 0;
		q->avail = rt[QOTP_A_RING_AVAIL] ? nla_get_u64(rt[QOTP_A_RING_AVAIL]) : 0;
	}
	return 0;
}

int kk_ring_info(struct kk *kk, uint32_t peer, int dir, uint64_t *last_id, uint64_t *avail)
{
	struct ring_q q = { .dir = dir };
	struct nl_msg *msg;
	int err;

	if (!peer || dir < 0 || dir > QOTP_DIR_MAX)
		return -EINVAL;
	msg = nlc_msg(&kk->req, QOTP_CMD_GET_PEER, 0, 64);
	if (!msg)
		return -ENOMEM;
	if (nla_put_u32(msg, QOTP_A_PEER_ID, peer)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	err = nlc_request(&kk->req, msg, ring_reply, &q);
	if (err)
		return err;
	if (!q.found)
		return -ENOENT;
	if (last_id)
		*last_id = q.last;
	if (avail)
		*avail = q.avail;
	return 0;
}
