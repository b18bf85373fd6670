/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Peer messages between kmsd instances (Documentation/kms.md, "Peer protocol").
 *
 * Every frame: u8 version | u8 type | u16 reserved (0) | u32 payload length | payload,
 * all integers big endian. The decoder is strict: a frame whose payload is not exactly the
 * length its fields imply is rejected. No message carries key bytes in clear: only block
 * ids, lengths, one-time-padded tags and statuses, and in MSG_PPETP key bytes one-time
 * padded with link key (c1 = r1 ^ k, relay data = k ^ k').
 */
#ifndef KMS_CODEC_H
#define KMS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "distrib.h"
#include "ppetp.h"
#include "route.h"

#define KMS_PROTO_VERSION 1
#define MSG_HDR_LEN 8
#define MSG_MAX_PAYLOAD (64 * 1024)
#define MSG_MAX_BLOCKS 1024
#define KMS_TAG_LEN 32

enum msg_type {
	MSG_HELLO = 1,
	MSG_KEEPALIVE = 2,
	MSG_VERIFY_REQ = 3,
	MSG_VERIFY_RESP = 4,
	MSG_ROUTE_ADVERT = 5,	/* distance vector, payload as in route.h */
	MSG_DIST = 6,		/* key distribution: OFFER/ACCEPT/REJECT/RESYNC/RESYNC_REQ,
				 * payload as in distrib.h (dist_encode), block ids only */
	MSG_PPETP = 7,		/* key transfer + relay: payload is one ppetp.h message, opaque
				 * here (1..PPETP_MSG_MAX bytes), parsed by ppetp_decode */
	MSG_QKD = 8,		/* link key from ETSI 014 KMEs (qkd_etsi.c): key_IDs, no key bytes */
	MSG_SAE = 9,		/* northbound ETSI 014 (nbkme.c): where SAE keys lie, no bytes */
	__MSG_LAST
};

enum verify_status { VERIFY_OK = 0, VERIFY_MISMATCH = 1, VERIFY_MISSING = 2, __VERIFY_LAST };

enum codec_err {
	CODEC_OK = 0,
	CODEC_SHORT = 1,	/* need more bytes (not an error for a stream) */
	CODEC_EVERSION = -1,
	CODEC_ERESERVED = -2,
	CODEC_ETOOBIG = -3,
	CODEC_ETYPE = -4,
	CODEC_ELENGTH = -5,
	CODEC_EFIELD = -6,
};

struct msg_block_tag {
	uint64_t id;
	uint32_t len;			/* raw block length as received from the QKD source */
	uint8_t tag[KMS_TAG_LEN];
};

struct msg_block_status {
	uint64_t id;
	uint8_t status;			/* enum verify_status */
};

/*
 * MSG_QKD: the master end of an ETSI 014 link names the key_IDs one link block was made of
 * (QKD_IDS), the slave answers whether it obtained them all from its own KME (QKD_ACK).
 *   u8 op | u8 status | u16 nkeys | u64 block id | u32 bytes per key | nkeys x 36-byte key_ID
 * QKD_IDS: status 0, nkeys 1..MSG_QKD_MAX_KEYS. QKD_ACK: nkeys 0, bytes 0, status QKD_GOT
 * or QKD_NOT_GOT. A key_ID is the canonical UUID text (ETSI GS QKD 014 clause 6.3).
 */
#define MSG_QKD_KEY_ID_LEN 36
#define MSG_QKD_MAX_KEYS 1024
enum { QKD_IDS = 1, QKD_ACK = 2 };
enum { QKD_GOT = 0, QKD_NOT_GOT = 1 };

/*
 * MSG_SAE: kmsd's northbound KME (nbkme.c). The master SAE's node names, for one enc_keys
 * request, the keys it cut for a slave SAE at the receiving node: where each lies in key
 * both nodes hold (a link block of the sender's parity, or a transfer key the sender was
 * the source of), never the bytes; the slave's node answers whether it holds them now.
 *   u8 op | u8 status | u16 nkeys | u64 seq | u32 bytes per key | u8 len | master SAE_ID |
 *   u8 len | slave SAE_ID | nkeys x (36-byte key_ID | u64 ref | u32 offset)
 * SAE_KEYS: status SAE_LINK or SAE_XFER (what ref names: link block id or transfer txid),
 * nkeys 1..MSG_SAE_MAX_KEYS, both SAE_IDs 1..KMS_SAE_ID_MAX printable bytes.
 * SAE_ACK: status SAE_GOT or SAE_NOT_GOT, seq of the SAE_KEYS it answers, the rest empty.
 */
#define MSG_SAE_MAX_KEYS 1024
enum { SAE_KEYS = 1, SAE_ACK = 2 };
enum { SAE_LINK = 0, SAE_XFER = 1 };
enum { SAE_GOT = 0, SAE_NOT_GOT = 1 };

struct msg_sae_key {
	char id[MSG_QKD_KEY_ID_LEN + 1];
	uint64_t ref;
	uint32_t off;
};

struct msg {
	uint8_t type;
	union {
		struct {
			char node_id[KMS_ID_MAX + 1];
		} hello;
		struct {
			uint64_t nonce;
		} keepalive;
		struct {
			uint64_t txid;
			uint16_t count;
			struct msg_block_tag blocks[MSG_MAX_BLOCKS];
		} vreq;
		struct {
			uint64_t txid;
			uint16_t count;
			struct msg_block_status blocks[MSG_MAX_BLOCKS];
		} vresp;
		struct {
			char origin[RT_ID_MAX + 1];
			uint16_t count;
			struct rt_entry e[RT_MAX_NODES];
		} advert;
		struct dist_msg dist;
		struct {
			uint32_t len;
			uint8_t data[PPETP_MSG_MAX];
		} ppetp;
		struct {
			uint8_t op, status;
			uint16_t nkeys;
			uint64_t block;
			uint32_t key_len;
			char key_id[MSG_QKD_MAX_KEYS][MSG_QKD_KEY_ID_LEN + 1];
		} qkd;
		struct {
			uint8_t op, status;
			uint16_t nkeys;
			uint64_t seq;
			uint32_t key_len;
			char master[KMS_SAE_ID_MAX + 1], slave[KMS_SAE_ID_MAX + 1];
			struct msg_sae_key key[MSG_SAE_MAX_KEYS];
		} sae;
	};
};

/* Reads a header; returns CODEC_OK with *type and *plen set, CODEC_SHORT, or an error. */
int codec_decode_header(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *plen);
/* Decodes one payload of the given type. Returns CODEC_OK or an error. */
int codec_decode_payload(uint8_t type, const uint8_t *p, size_t plen, struct msg *m);
/* Decodes a whole frame (header + payload); *used is the frame length. */
int codec_decode(const uint8_t *buf, size_t len, struct msg *m, size_t *used);
/* Encodes m into buf; returns the frame length or -1 if m is invalid or buf too small. */
long codec_encode(const struct msg *m, uint8_t *buf, size_t buflen);
const char *codec_strerror(int err);
const char *msg_type_name(uint8_t type);

#endif
