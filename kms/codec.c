// SPDX-License-Identifier: GPL-2.0
/* Encoder and strict decoder of the kmsd peer messages (see codec.h). */
#include <errno.h>
#include <string.h>

#include "codec.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v >> 32);
	put32(p + 4, (uint32_t)v);
}

const char *codec_strerror(int err)
{
	switch (err) {
	case CODEC_OK: return "ok";
	case CODEC_SHORT: return "truncated frame";
	case CODEC_EVERSION: return "protocol version mismatch";
	case CODEC_ERESERVED: return "reserved header bits set";
	case CODEC_ETOOBIG: return "frame too large";
	case CODEC_ETYPE: return "unknown message type";
	case CODEC_ELENGTH: return "payload length does not match its fields";
	case CODEC_EFIELD: return "invalid field value";
	}
	return "unknown error";
}

const char *msg_type_name(uint8_t type)
{
	switch (type) {
	case MSG_HELLO: return "hello";
	case MSG_KEEPALIVE: return "keepalive";
	case MSG_VERIFY_REQ: return "verify-req";
	case MSG_VERIFY_RESP: return "verify-resp";
	case MSG_ROUTE_ADVERT: return "route-advert";
	case MSG_DIST: return "dist";
	case MSG_PPETP: return "ppetp";
	case MSG_QKD: return "qkd";
	case MSG_SAE: return "sae";
	}
	return "unknown";
}

int codec_decode_header(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *plen)
{
	if (len < 1)
		return CODEC_SHORT;
	/* Check the version first so that a peer of another version learns why, not "bad frame". */
	if (buf[0] != KMS_PROTO_VERSION)
		return CODEC_EVERSION;
	if (len < MSG_HDR_LEN)
		return CODEC_SHORT;
	if (get16(buf + 2) != 0)
		return CODEC_ERESERVED;
	*plen = get32(buf + 4);
	if (*plen > MSG_MAX_PAYLOAD)
		return CODEC_ETOOBIG;
	if (buf[1] == 0 || buf[1] >= __MSG_LAST)
		return CODEC_ETYPE;
	*type = buf[1];
	return CODEC_OK;
}

/* MSG_SAE (codec.h) */
#define SAE_KEY_WIRE (MSG_QKD_KEY_ID_LEN + 12)

static int printable(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Reads a u8-length-prefixed id of 0..max bytes into out; returns bytes used or 0. */
static size_t get_id(const uint8_t *p, size_t left, char *out, size_t max)
{
	size_t n;

	if (left < 1 || (n = p[0]) > max || left < 1 + n || !printable(p + 1, n))
		return 0;
	memcpy(out, p + 1, n);
	out[n] = '\0';
	return 1 + n;
}

static int sae_invalid(const struct msg *m)
{
	size_t ml = strnlen(m->sae.master, sizeof(m->sae.master));
	size_t sl = strnlen(m->sae.slave, sizeof(m->sae.slave));

	if (ml > KMS_SAE_ID_MAX || sl > KMS_SAE_ID_MAX)
		return 1;
	if (m->sae.op == SAE_ACK)
		return m->sae.status > SAE_NOT_GOT || m->sae.nkeys || m->sae.key_len || ml || sl;
	if (m->sae.op != SAE_KEYS || m->sae.status > SAE_XFER || m->sae.nkeys == 0 ||
	    m->sae.nkeys > MSG_SAE_MAX_KEYS || m->sae.key_len == 0 || !ml || !sl ||
	    !printable((const uint8_t *)m->sae.master, ml) ||
	    !printable((const uint8_t *)m->sae.slave, sl))
		return 1;
	for (size_t i = 0; i < m->sae.nkeys; i++)
		if (strnlen(m->sae.key[i].id, sizeof(m->sae.key[i].id)) != MSG_QKD_KEY_ID_LEN ||
		    !printable((const uint8_t *)m->sae.key[i].id, MSG_QKD_KEY_ID_LEN))
			return 1;
	return 0;
}

static int decode_sae(const uint8_t *p, size_t plen, struct msg *m)
{
	size_t pos = 16, used;

	if (plen < 18)
		return CODEC_ELENGTH;
	m->sae.op = p[0];
	m->sae.status = p[1];
	m->sae.nkeys = get16(p + 2);
	m->sae.seq = get64(p + 4);
	m->sae.key_len = get32(p + 12);
	if (m->sae.nkeys > MSG_SAE_MAX_KEYS)
		return CODEC_EFIELD;
	if (!(used = get_id(p + pos, plen - pos, m->sae.master, KMS_SAE_ID_MAX)))
		return CODEC_EFIELD;
	pos += used;
	if (!(used = get_id(p + pos, plen - pos, m->sae.slave, KMS_SAE_ID_MAX)))
		return CODEC_EFIELD;
	pos += used;
	if (plen - pos != (size_t)m->sae.nkeys * SAE_KEY_WIRE)
		return CODEC_ELENGTH;
	for (size_t i = 0; i < m->sae.nkeys; i++, pos += SAE_KEY_WIRE) {
		memcpy(m->sae.key[i].id, p + pos, MSG_QKD_KEY_ID_LEN);
		m->sae.key[i].id[MSG_QKD_KEY_ID_LEN] = '\0';
		m->sae.key[i].ref = get64(p + pos + MSG_QKD_KEY_ID_LEN);
		m->sae.key[i].off = get32(p + pos + MSG_QKD_KEY_ID_LEN + 8);
	}
	return sae_invalid(m) ? CODEC_EFIELD : CODEC_OK;
}

static void encode_sae(const struct msg *m, uint8_t *p)
{
	size_t ml = strlen(m->sae.master), sl = strlen(m->sae.slave), pos = 16;

	p[0] = m->sae.op;
	p[1] = m->sae.status;
	put16(p + 2, m->sae.nkeys);
	put64(p + 4, m->sae.seq);
	put32(p + 12, m->sae.key_len);
	p[pos++] = (uint8_t)ml;
	memcpy(p + pos, m->sae.master, ml);
	pos += ml;
	p[pos++] = (uint8_t)sl;
	memcpy(p + pos, m->sae.slave, sl);
	pos += sl;
	for (size_t i = 0; i < m->sae.nkeys; i++, pos += SAE_KEY_WIRE) {
		memcpy(p + pos, m->sae.key[i].id, MSG_QKD_KEY_ID_LEN);
		put64(p + pos + MSG_QKD_KEY_ID_LEN, m->sae.key[i].ref);
		put32(p + pos + MSG_QKD_KEY_ID_LEN + 8, m->sae.key[i].off);
	}
}

int codec_decode_payload(uint8_t type, const uint8_t *p, size_t plen, struct msg *m)
{
	size_t n;

	m->type = type;
	switch (type) {
	case MSG_HELLO:
		if (plen < 1 || plen != 1 + (size_t)p[0])
			return CODEC_ELENGTH;
		n = p[0];
		if (n == 0 || n > KMS_ID_MAX)
			return CODEC_EFIELD;
		memcpy(m->hello.node_id, p + 1, n);
		m->hello.node_id[n] = '\0';
		if (strlen(m->hello.node_id) != n || !config_valid_id(m->hello.node_id))
			return CODEC_EFIELD;
		return CODEC_OK;
	case MSG_KEEPALIVE:
		if (plen != 8)
			return CODEC_ELENGTH;
		m->keepalive.nonce = get64(p);
		return CODEC_OK;
	case MSG_VERIFY_REQ:
		if (plen < 10)
			return CODEC_ELENGTH;
		m->vreq.txid = get64(p);
		n = get16(p + 8);
		if (n == 0 || n > MSG_MAX_BLOCKS)
			return CODEC_EFIELD;
		if (plen != 10 + n * (12 + KMS_TAG_LEN))
			return CODEC_ELENGTH;
		m->vreq.count = n;
		p += 10;
		for (size_t i = 0; i < n; i++, p += 12 + KMS_TAG_LEN) {
			m->vreq.blocks[i].id = get64(p);
			m->vreq.blocks[i].len = get32(p + 8);
			memcpy(m->vreq.blocks[i].tag, p + 12, KMS_TAG_LEN);
		}
		return CODEC_OK;
	case MSG_VERIFY_RESP:
		if (plen < 10)
			return CODEC_ELENGTH;
		m->vresp.txid = get64(p);
		n = get16(p + 8);
		if (n == 0 || n > MSG_MAX_BLOCKS)
			return CODEC_EFIELD;
		if (plen != 10 + n * 9)
			return CODEC_ELENGTH;
		m->vresp.count = n;
		p += 10;
		for (size_t i = 0; i < n; i++, p += 9) {
			m->vresp.blocks[i].id = get64(p);
			m->vresp.blocks[i].status = p[8];
			if (p[8] >= __VERIFY_LAST)
				return CODEC_EFIELD;
		}
		return CODEC_OK;
	case MSG_ROUTE_ADVERT: {
		long r = rt_advert_decode(p, plen, m->advert.origin, m->advert.e, RT_MAX_NODES);

		if (r < 0)
			return r == -EBADMSG ? CODEC_ELENGTH : CODEC_EFIELD;
		m->advert.count = (uint16_t)r;
		return CODEC_OK;
	}
	case MSG_DIST: {
		int r = dist_decode(p, plen, &m->dist);

		if (r < 0)
			return r == -EBADMSG ? CODEC_ELENGTH : CODEC_EFIELD;
		return CODEC_OK;
	}
	case MSG_PPETP:
		if (plen == 0 || plen > PPETP_MSG_MAX)
			return CODEC_ELENGTH;
		m->ppetp.len = (uint32_t)plen;
		memcpy(m->ppetp.data, p, plen);
		return CODEC_OK;
	case MSG_QKD:
		if (plen < 16)
			return CODEC_ELENGTH;
		m->qkd.op = p[0];
		m->qkd.status = p[1];
		m->qkd.nkeys = n = get16(p + 2);
		m->qkd.block = get64(p + 4);
		m->qkd.key_len = get32(p + 12);
		if (plen != 16 + n * MSG_QKD_KEY_ID_LEN)
			return CODEC_ELENGTH;
		if (m->qkd.op == QKD_IDS) {
			if (m->qkd.status || n == 0 || n > MSG_QKD_MAX_KEYS || m->qkd.key_len == 0)
				return CODEC_EFIELD;
		} else if (m->qkd.op == QKD_ACK) {
			if (m->qkd.status > QKD_NOT_GOT || n || m->qkd.key_len)
				return CODEC_EFIELD;
		} else {
			return CODEC_EFIELD;
		}
		for (size_t i = 0; i < n; i++) {
			const uint8_t *k = p + 16 + i * MSG_QKD_KEY_ID_LEN;

			for (size_t j = 0; j < MSG_QKD_KEY_ID_LEN; j++)
				if (k[j] < 0x21 || k[j] > 0x7e)
					return CODEC_EFIELD;
			memcpy(m->qkd.key_id[i], k, MSG_QKD_KEY_ID_LEN);
			m->qkd.key_id[i][MSG_QKD_KEY_ID_LEN] = '\0';
		}
		return CODEC_OK;
	case MSG_SAE:
		return decode_sae(p, plen, m);
	}
	return CODEC_ETYPE;
}

int codec_decode(const uint8_t *buf, size_t len, struct msg *m, size_t *used)
{
	uint8_t type;
	uint32_t plen;
	int rc = codec_decode_header(buf, len, &type, &plen);

	if (rc != CODEC_OK)
		return rc;
	if (len - MSG_HDR_LEN < plen)
		return CODEC_SHORT;
	rc = codec_decode_payload(type, buf + MSG_HDR_LEN, plen, m);
	if (rc == CODEC_OK)
		*used = MSG_HDR_LEN + plen;
	return rc;
}

long codec_encode(const struct msg *m, uint8_t *buf, size_t buflen)
{
	size_t plen, n = 0;
	uint8_t *p;

	switch (m->type) {
	case MSG_HELLO:
		n = strnlen(m->hello.node_id, sizeof(m->hello.node_id));
		if (!config_valid_id(m->hello.node_id))
			return -1;
		plen = 1 + n;
		break;
	case MSG_KEEPALIVE:
		plen = 8;
		break;
	case MSG_VERIFY_REQ:
		if (m->vreq.count == 0 || m->vreq.count > MSG_MAX_BLOCKS)
			return -1;
		plen = 10 + (size_t)m->vreq.count * (12 + KMS_TAG_LEN);
		break;
	case MSG_VERIFY_RESP:
		if (m->vresp.count == 0 || m->vresp.count > MSG_MAX_BLOCKS)
			return -1;
		plen = 10 + (size_t)m->vresp.count * 9;
		break;
	case MSG_ROUTE_ADVERT: {
		/* the vector is encoded in place; its length is only known afterwards */
		size_t room = buflen > MSG_HDR_LEN ? buflen - MSG_HDR_LEN : 0;
		long r = rt_advert_encode(m->advert.origin, m->advert.e, m->advert.count,
					  buf + MSG_HDR_LEN,
					  room < MSG_MAX_PAYLOAD ? room : MSG_MAX_PAYLOAD);

		if (r < 0)
			return -1;
		plen = (size_t)r;
		break;
	}
	case MSG_DIST: {
		size_t room = buflen > MSG_HDR_LEN ? buflen - MSG_HDR_LEN : 0;
		long r = dist_encode(&m->dist, buf + MSG_HDR_LEN, room);

		if (r < 0)
			return -1;
		plen = (size_t)r;
		break;
	}
	case MSG_PPETP:
		if (m->ppetp.len == 0 || m->ppetp.len > PPETP_MSG_MAX)
			return -1;
		plen = m->ppetp.len;
		break;
	case MSG_SAE:
		if (sae_invalid(m))
			return -1;
		plen = 18 + strlen(m->sae.master) + strlen(m->sae.slave) +
		       (size_t)m->sae.nkeys * SAE_KEY_WIRE;
		break;
	case MSG_QKD:
		if (m->qkd.op == QKD_IDS ? m->qkd.status || m->qkd.nkeys == 0 ||
		    m->qkd.nkeys > MSG_QKD_MAX_KEYS || m->qkd.key_len == 0 :
		    m->qkd.op != QKD_ACK || m->qkd.status > QKD_NOT_GOT || m->qkd.nkeys ||
		    m->qkd.key_len)
			return -1;
		for (size_t i = 0; i < m->qkd.nkeys; i++)
			if (strlen(m->qkd.key_id[i]) != MSG_QKD_KEY_ID_LEN)
				return -1;
		plen = 16 + (size_t)m->qkd.nkeys * MSG_QKD_KEY_ID_LEN;
		break;
	default:
		return -1;
	}
	if (plen > MSG_MAX_PAYLOAD || buflen < MSG_HDR_LEN + plen)
		return -1;
	buf[0] = KMS_PROTO_VERSION;
	buf[1] = m->type;
	put16(buf + 2, 0);
	put32(buf + 4, plen);
	p = buf + MSG_HDR_LEN;
	switch (m->type) {
	case MSG_HELLO:
		p[0] = n;
		memcpy(p + 1, m->hello.node_id, n);
		break;
	case MSG_KEEPALIVE:
		put64(p, m->keepalive.nonce);
		break;
	case MSG_VERIFY_REQ:
		put64(p, m->vreq.txid);
		put16(p + 8, m->vreq.count);
		p += 10;
		for (size_t i = 0; i < m->vreq.count; i++, p += 12 + KMS_TAG_LEN) {
			put64(p, m->vreq.blocks[i].id);
			put32(p + 8, m->vreq.blocks[i].len);
			memcpy(p + 12, m->vreq.blocks[i].tag, KMS_TAG_LEN);
		}
		break;
	case MSG_VERIFY_RESP:
		put64(p, m->vresp.txid);
		put16(p + 8, m->vresp.count);
		p += 10;
		for (size_t i = 0; i < m->vresp.count; i++, p += 9) {
			if (m->vresp.blocks[i].status >= __VERIFY_LAST)
				return -1;
			put64(p, m->vresp.blocks[i].id);
			p[8] = m->vresp.blocks[i].status;
		}
		break;
	case MSG_PPETP:
		memcpy(p, m->ppetp.data, m->ppetp.len);
		break;
	case MSG_QKD:
		p[0] = m->qkd.op;
		p[1] = m->qkd.status;
		put16(p + 2, m->qkd.nkeys);
		put64(p + 4, m->qkd.block);
		put32(p + 12, m->qkd.key_len);
		for (size_t i = 0; i < m->qkd.nkeys; i++)
			memcpy(p + 16 + i * MSG_QKD_KEY_ID_LEN, m->qkd.key_id[i],
			       MSG_QKD_KEY_ID_LEN);
		break;
	case MSG_SAE:
		encode_sae(m, p);
		break;
	case MSG_ROUTE_ADVERT:
	case MSG_DIST:
		break;		/* already written */
	}
	return (long)(MSG_HDR_LEN + plen);
}
