/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * qotp: one-time-pad encryption of RTMP (TCP port 1935) payloads in the kernel, keyed by
 * a quantum key management network. This header is the contract between qotp.ko and its
 * userspace (kmsd, qotpctl); both include it unchanged.
 *
 * Generic netlink family QOTP_GENL_NAME, version QOTP_GENL_VERSION. The family is
 * netns-aware: every command acts on the network namespace of the socket that sends it.
 * Mutating commands need CAP_NET_ADMIN in the user namespace owning that netns.
 * Every rejection carries an extack message naming the offending attribute.
 *
 * Terms. A "peer" is a remote encryptor, named by a 32-bit id chosen by userspace, that
 * protects a set of IPv4/IPv6 prefixes. Each peer has two key rings: the encrypt ring
 * (QOTP_DIR_ENCRYPT, bytes this host sends toward the peer) and the decrypt ring
 * (QOTP_DIR_DECRYPT, bytes the peer sends to this host). The encrypt ring of X for peer Y
 * holds the same blocks, with the same 64-bit ids, as the decrypt ring of Y for peer X.
 * Key bytes only ever travel userspace -> kernel; no reply, dump or event carries them.
 *
 * QOTP_CMD_SET_CONFIG (CAP_NET_ADMIN), all attributes optional:
 *    QOTP_A_CFG_PORTS: NLA_NESTED, array of
 *        0: NLA_U16 TCP port, host order, non-zero (at most QOTP_MAX_PORTS)
 *    QOTP_A_CFG_MODE: NLA_U32, QOTP_MODE_* bits (unknown bits refused)
 *    QOTP_A_CFG_RING_MAX_BYTES: NLA_U64, memory cap of one ring (pushes over it refused)
 *    QOTP_A_CFG_LOW_WATERMARK: NLA_U64, available bytes below which an event is sent
 *    QOTP_A_CFG_MAX_FLOWS: NLA_U32, flow table bound of this netns
 *
 * QOTP_CMD_GET_CONFIG (doit) replies with every QOTP_A_CFG_* attribute above.
 *
 * QOTP_CMD_ADD_PEER / QOTP_CMD_SET_PEER (CAP_NET_ADMIN):
 *    QOTP_A_PEER_ID: NLA_U32, required, non-zero
 *    QOTP_A_PEER_PREFIXES: NLA_NESTED, array of  (SET_PEER: replaces the whole list)
 *        0: NLA_NESTED
 *            QOTP_A_PREFIX_FAMILY: NLA_U16, AF_INET or AF_INET6
 *            QOTP_A_PREFIX_ADDR: binary, 4 or 16 bytes
 *            QOTP_A_PREFIX_LEN: NLA_U8, 0..32 or 0..128
 *    ADD_PEER of an existing id: -EEXIST. SET_PEER of an unknown id: -ENOENT.
 *
 * QOTP_CMD_DEL_PEER (CAP_NET_ADMIN): QOTP_A_PEER_ID. Wipes both rings, ends its flows.
 *
 * QOTP_CMD_GET_PEER (dump, or doit with QOTP_A_PEER_ID): one message per peer:
 *    QOTP_A_PEER_ID, QOTP_A_PEER_PREFIXES (as above)
 *    QOTP_A_PEER_RINGS: NLA_NESTED, array of
 *        0: NLA_NESTED
 *            QOTP_A_RING_DIR: NLA_U8, QOTP_DIR_*
 *            QOTP_A_RING_BLOCKS: NLA_U32, blocks held
 *            QOTP_A_RING_AVAIL: NLA_U64, bytes neither reserved nor released
 *            QOTP_A_RING_RESERVED / _PUSHED / _CONSUMED / _WASTED: NLA_U64, bytes
 *            QOTP_A_RING_REFUSED: NLA_U64, refused push messages
 *            QOTP_A_RING_LAST_ID: NLA_U64, highest block id ever accepted (absent if none)
 *    QOTP_A_PEER_STATS: NLA_NESTED, one NLA_U64 per enum qotp_stat (attribute type =
 *        the qotp_stat value + 1); unknown ones are ignored by old userspace.
 *
 * QOTP_CMD_PUSH_KEYS (CAP_NET_ADMIN):
 *    QOTP_A_PUSH_PEER: NLA_U32, required
 *    QOTP_A_PUSH_DIR: NLA_U8, QOTP_DIR_ENCRYPT or QOTP_DIR_DECRYPT, required
 *    QOTP_A_PUSH_BLOCKS: NLA_NESTED, array of (1..QOTP_MAX_PUSH_BLOCKS), required
 *        0: NLA_NESTED
 *            QOTP_A_BLOCK_ID: NLA_U64, strictly above every id the ring ever accepted,
 *                             and strictly increasing within the message
 *            QOTP_A_BLOCK_DATA: binary, 1..QOTP_MAX_BLOCK_LEN key bytes
 *    All or nothing: one bad block refuses the whole message and the ring is unchanged.
 *    Larger pushes are split over several messages by userspace.
 *
 * QOTP_CMD_FLUSH (CAP_NET_ADMIN): QOTP_A_FLUSH_PEER (NLA_U32, optional: all peers) and
 *    QOTP_A_FLUSH_DIR (NLA_U8, optional: both rings). Wipes key bytes, ends affected flows.
 *    The "highest id ever accepted" of a ring survives a flush: no id is ever reused.
 *
 * Events, multicast group QOTP_MCGRP_EVENTS, sent in the netns they concern:
 *    QOTP_CMD_EVENT_LOW_WATERMARK: QOTP_A_EVT_PEER, QOTP_A_EVT_DIR, QOTP_A_EVT_AVAIL
 *    QOTP_CMD_EVENT_KEY_EMPTY: QOTP_A_EVT_PEER, QOTP_A_EVT_DIR, QOTP_A_EVT_DROPS
 *        (a protected segment was dropped for want of key; rate limited)
 *    QOTP_CMD_EVENT_RELEASED: QOTP_A_EVT_PEER, QOTP_A_EVT_DIR,
 *        QOTP_A_EVT_BLOCK_IDS: NLA_NESTED array of 0: NLA_U64 (blocks wiped and freed;
 *        userspace may delete them from its store), QOTP_A_EVT_CONSUMED: NLA_U64
 *    QOTP_CMD_EVENT_FLUSHED: QOTP_A_EVT_PEER (absent: all), QOTP_A_EVT_DIR (absent: both)
 */
#ifndef _UAPI_LINUX_QOTP_H
#define _UAPI_LINUX_QOTP_H

#include <linux/types.h>

#define QOTP_GENL_NAME		"qotp"
#define QOTP_GENL_VERSION	1
#define QOTP_MCGRP_EVENTS	"events"

#define QOTP_DEFAULT_PORT	1935
#define QOTP_MAX_PORTS		16
#define QOTP_MAX_BLOCK_LEN	32768
#define QOTP_MAX_PUSH_BLOCKS	64

enum qotp_mode {
	QOTP_MODE_GATEWAY = 1U << 0,	/* protect forwarded traffic (NF_INET_FORWARD) */
	QOTP_MODE_ENDPOINT = 1U << 1,	/* protect local traffic (LOCAL_OUT / LOCAL_IN) */
	QOTP_MODE_ALL = QOTP_MODE_GATEWAY | QOTP_MODE_ENDPOINT,
};

enum qotp_dir {
	QOTP_DIR_ENCRYPT = 0,
	QOTP_DIR_DECRYPT = 1,
	__QOTP_DIR_LAST,
};
#define QOTP_DIR_MAX (__QOTP_DIR_LAST - 1)

enum qotp_cmd {
	QOTP_CMD_UNSPEC,
	QOTP_CMD_SET_CONFIG,
	QOTP_CMD_GET_CONFIG,
	QOTP_CMD_ADD_PEER,
	QOTP_CMD_SET_PEER,
	QOTP_CMD_DEL_PEER,
	QOTP_CMD_GET_PEER,
	QOTP_CMD_PUSH_KEYS,
	QOTP_CMD_FLUSH,
	QOTP_CMD_EVENT_LOW_WATERMARK,
	QOTP_CMD_EVENT_KEY_EMPTY,
	QOTP_CMD_EVENT_RELEASED,
	QOTP_CMD_EVENT_FLUSHED,
	__QOTP_CMD_LAST,
};
#define QOTP_CMD_MAX (__QOTP_CMD_LAST - 1)

/*
 * One flat attribute space for the top level of every command, so a single policy table
 * validates them all; nested sets have their own enums below.
 */
enum qotp_attr {
	QOTP_A_UNSPEC,
	QOTP_A_CFG_PORTS,
	QOTP_A_CFG_MODE,
	QOTP_A_CFG_RING_MAX_BYTES,
	QOTP_A_CFG_LOW_WATERMARK,
	QOTP_A_CFG_MAX_FLOWS,
	QOTP_A_PEER_ID,
	QOTP_A_PEER_PREFIXES,
	QOTP_A_PEER_RINGS,
	QOTP_A_PEER_STATS,
	QOTP_A_PUSH_PEER,
	QOTP_A_PUSH_DIR,
	QOTP_A_PUSH_BLOCKS,
	QOTP_A_FLUSH_PEER,
	QOTP_A_FLUSH_DIR,
	QOTP_A_EVT_PEER,
	QOTP_A_EVT_DIR,
	QOTP_A_EVT_AVAIL,
	QOTP_A_EVT_DROPS,
	QOTP_A_EVT_BLOCK_IDS,
	QOTP_A_EVT_CONSUMED,
	QOTP_A_PAD,
	__QOTP_A_LAST,
};
#define QOTP_A_MAX (__QOTP_A_LAST - 1)

enum qotp_prefix_attr {
	QOTP_A_PREFIX_UNSPEC,
	QOTP_A_PREFIX_FAMILY,
	QOTP_A_PREFIX_ADDR,
	QOTP_A_PREFIX_LEN,
	__QOTP_A_PREFIX_LAST,
};
#define QOTP_A_PREFIX_MAX (__QOTP_A_PREFIX_LAST - 1)

enum qotp_ring_attr {
	QOTP_A_RING_UNSPEC,
	QOTP_A_RING_DIR,
	QOTP_A_RING_BLOCKS,
	QOTP_A_RING_AVAIL,
	QOTP_A_RING_RESERVED,
	QOTP_A_RING_PUSHED,
	QOTP_A_RING_CONSUMED,
	QOTP_A_RING_WASTED,
	QOTP_A_RING_REFUSED,
	QOTP_A_RING_LAST_ID,
	QOTP_A_RING_PAD,
	__QOTP_A_RING_LAST,
};
#define QOTP_A_RING_MAX (__QOTP_A_RING_LAST - 1)

enum qotp_block_attr {
	QOTP_A_BLOCK_UNSPEC,
	QOTP_A_BLOCK_ID,
	QOTP_A_BLOCK_DATA,
	QOTP_A_BLOCK_PAD,
	__QOTP_A_BLOCK_LAST,
};
#define QOTP_A_BLOCK_MAX (__QOTP_A_BLOCK_LAST - 1)

/*
 * Per-peer datapath counters. In QOTP_A_PEER_STATS each is an NLA_U64 whose attribute
 * type is the enum value + 1. New counters are only ever appended.
 */
enum qotp_stat {
	QOTP_STAT_ENC_SEGS,		/* segments encrypted toward the peer */
	QOTP_STAT_ENC_BYTES,		/* payload bytes encrypted */
	QOTP_STAT_DEC_SEGS,		/* segments decrypted from the peer */
	QOTP_STAT_DEC_BYTES,		/* payload bytes decrypted */
	QOTP_STAT_KEY_USED,		/* key bytes released after protecting payload */
	QOTP_STAT_DROP_NO_KEY,		/* dropped: ring empty (fail closed) */
	QOTP_STAT_DROP_NO_DESC,		/* dropped: no descriptor covers the bytes */
	QOTP_STAT_DROP_BAD_DESC,	/* dropped: malformed or unknown descriptor */
	QOTP_STAT_DROP_CSUM,		/* dropped: checksum wrong on arrival */
	QOTP_STAT_DROP_NOMEM,		/* dropped: allocation failed */
	QOTP_STAT_DROP_OTHER,		/* dropped: anything else (malformed packet, flow limit) */
	QOTP_STAT_FLOWS_CREATED,
	QOTP_STAT_FLOWS_ACTIVE,		/* gauge, not a counter */
	QOTP_STAT_STALE,		/* toward the peer, bytes whose key is released (the
					 * peer side acknowledged them): sent on as a pure ACK,
					 * the payload dropped */
	QOTP_STAT_TRIMMED,		/* cut to the bytes one descriptor describes
					 * (two key runs, 24 key blocks; toward the
					 * peer), or a SYN's data cut off
					 * (TCP Fast Open); TCP sends the rest again */
	QOTP_STAT_SACK_CUT,		/* toward the peer, SACK blocks left out to make
					 * room for the descriptor */
	__QOTP_STAT_LAST,
};
#define QOTP_STAT_MAX (__QOTP_STAT_LAST - 1)

#endif /* _UAPI_LINUX_QOTP_H */
