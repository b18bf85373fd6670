// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the peer message codec: round trips and every rejection path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"

static struct msg in, out;
static uint8_t buf[MSG_HDR_LEN + MSG_MAX_PAYLOAD];

static void roundtrip(const struct msg *m, long expect_len)
{
	size_t used = 0;
	long n = codec_encode(m, buf, sizeof(buf));

	assert_int_equal(n, expect_len);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(codec_decode(buf, n, &out, &used), CODEC_OK);
	assert_int_equal(used, n);
	assert_int_equal(out.type, m->type);
	/* every shorter prefix is incomplete, never accepted nor an error */
	for (long i = 1; i < n; i++)
		assert_int_equal(codec_decode(buf, i, &out, &used), CODEC_SHORT);
	assert_int_equal(codec_decode(buf, n, &out, &used), CODEC_OK);
}

static void test_hello_roundtrip(void **state)
{
	in.type = MSG_HELLO;
	strcpy(in.hello.node_id, "kms-a.example_1");
	roundtrip(&in, MSG_HDR_LEN + 1 + 15);
	assert_string_equal(out.hello.node_id, "kms-a.example_1");
	/* the exact wire bytes: version 1, type 1, reserved 0, length 16 */
	assert_memory_equal(buf, "\x01\x01\x00\x00\x00\x00\x00\x10\x0f" "kms-a", 14);
}

static void test_keepalive_roundtrip(void **state)
{
	in.type = MSG_KEEPALIVE;
	in.keepalive.nonce = 0x0102030405060708ULL;
	roundtrip(&in, MSG_HDR_LEN + 8);
	assert_true(out.keepalive.nonce == 0x0102030405060708ULL);
	assert_memory_equal(buf + MSG_HDR_LEN, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
}

static void test_verify_req_roundtrip(void **state)
{
	in.type = MSG_VERIFY_REQ;
	in.vreq.txid = UINT64_MAX;
	in.vreq.count = MSG_MAX_BLOCKS;
	for (int i = 0; i < MSG_MAX_BLOCKS; i++) {
		in.vreq.blocks[i].id = (uint64_t)i << 40 | i;
		in.vreq.blocks[i].len = 4096 + i;
		memset(in.vreq.blocks[i].tag, i, KMS_TAG_LEN);
	}
	roundtrip(&in, MSG_HDR_LEN + 10 + MSG_MAX_BLOCKS * 44);
	assert_true(out.vreq.txid == UINT64_MAX);
	assert_int_equal(out.vreq.count, MSG_MAX_BLOCKS);
	for (int i = 0; i < MSG_MAX_BLOCKS; i++) {
		assert_true(out.vreq.blocks[i].id == ((uint64_t)i << 40 | i));
		assert_int_equal(out.vreq.blocks[i].len, 4096 + i);
		assert_memory_equal(out.vreq.blocks[i].tag, in.vreq.blocks[i].tag, KMS_TAG_LEN);
	}
}

static void test_verify_resp_roundtrip(void **state)
{
	in.type = MSG_VERIFY_RESP;
	in.vresp.txid = 77;
	in.vresp.count = 3;
	for (int i = 0; i < 3; i++) {
		in.vresp.blocks[i].id = 1000 + i;
		in.vresp.blocks[i].status = i;
	}
	roundtrip(&in, MSG_HDR_LEN + 10 + 27);
	for (int i = 0; i < 3; i++) {
		assert_true(out.vresp.blocks[i].id == (uint64_t)(1000 + i));
		assert_int_equal(out.vresp.blocks[i].status, i);
	}
}

static void test_route_advert_roundtrip(void **state)
{
	in.type = MSG_ROUTE_ADVERT;
	strcpy(in.advert.origin, "kms-b");
	in.advert.count = 2;
	strcpy(in.advert.e[0].dest, "kms-a");
	in.advert.e[0].metric = RT_INFINITY;
	strcpy(in.advert.e[1].dest, "kms-c");
	in.advert.e[1].metric = 1;
	roundtrip(&in, MSG_HDR_LEN + 4 + 6 + 2 * 7);
	assert_string_equal(out.advert.origin, "kms-b");
	assert_int_equal(out.advert.count, 2);
	assert_string_equal(out.advert.e[1].dest, "kms-c");
	assert_int_equal(out.advert.e[0].metric, RT_INFINITY);
	assert_memory_equal(buf, "\x01\x05\x00\x00\x00\x00\x00\x18\x01\x00\x00\x02\x05kms-b", 18);
	/* an empty vector (a node with no route yet) is valid */
	in.advert.count = 0;
	roundtrip(&in, MSG_HDR_LEN + 4 + 6);
	assert_int_equal(out.advert.count, 0);
}

static void test_dist_roundtrip(void **state)
{
	/* OFFER of 2 blocks: 4 + (1+5) + (1+5) + 2 + 2 x 25 bytes of payload */
	memset(&in, 0, sizeof(in));
	in.type = MSG_DIST;
	in.dist.type = DIST_OFFER;
	strcpy(in.dist.enc, "kms-a");
	strcpy(in.dist.dec, "kms-b");
	in.dist.n = 2;
	in.dist.e[0].id = 0x0102030405060708ULL;
	in.dist.e[0].len = 4096;
	in.dist.e[0].source = DIST_SRC_LINK;
	in.dist.e[0].ref = 77;
	in.dist.e[0].ref_off = 12;
	in.dist.e[1].id = 0x0102030405060709ULL;
	in.dist.e[1].len = 4032;
	in.dist.e[1].source = DIST_SRC_LINK;
	in.dist.e[1].ref = 79;
	roundtrip(&in, MSG_HDR_LEN + 4 + 12 + 2 + 50);
	assert_memory_equal(buf, "\x01\x06\x00\x00\x00\x00\x00\x44\x02\x01\x00\x00\x05" "kms-a",
			    18);
	assert_int_equal(out.dist.type, DIST_OFFER);
	assert_string_equal(out.dist.enc, "kms-a");
	assert_string_equal(out.dist.dec, "kms-b");
	assert_int_equal(out.dist.n, 2);
	assert_true(out.dist.e[0].id == 0x0102030405060708ULL);
	assert_int_equal(out.dist.e[0].len, 4096);
	assert_int_equal(out.dist.e[0].source, DIST_SRC_LINK);
	assert_true(out.dist.e[0].ref == 77);
	assert_int_equal(out.dist.e[0].ref_off, 12);
	assert_true(out.dist.e[1].ref == 79);

	in.dist.type = DIST_ACCEPT;
	in.dist.e[1].verdict = DIST_V_REFUSED;
	roundtrip(&in, MSG_HDR_LEN + 4 + 12 + 2 + 18);
	assert_int_equal(out.dist.type, DIST_ACCEPT);
	assert_true(out.dist.e[0].id == 0x0102030405060708ULL);
	assert_int_equal(out.dist.e[0].verdict, DIST_V_ACCEPTED);
	assert_int_equal(out.dist.e[1].verdict, DIST_V_REFUSED);
	in.dist.type = DIST_RESYNC;
	in.dist.n = 0;
	in.dist.id = 5000;
	roundtrip(&in, MSG_HDR_LEN + 4 + 12 + 8);
	assert_true(out.dist.id == 5000);
	in.dist.type = DIST_RESYNC_REQ;
	in.dist.id = 0;
	roundtrip(&in, MSG_HDR_LEN + 4 + 12);
	assert_int_equal(out.dist.type, DIST_RESYNC_REQ);

	/* rejections: bad inner version, version 1, trailing byte, zero id, bad node id */
	memset(&in.dist.e, 0, sizeof(in.dist.e));
	in.dist.type = DIST_ACCEPT;
	in.dist.n = 1;
	in.dist.e[0].id = 9;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), MSG_HDR_LEN + 27);
	assert_int_equal(codec_decode_payload(MSG_DIST, buf + MSG_HDR_LEN, 27, &out), CODEC_OK);
	assert_int_equal(codec_decode_payload(MSG_DIST, buf + MSG_HDR_LEN, 26, &out), CODEC_ELENGTH);
	buf[MSG_HDR_LEN + 27] = 0;
	assert_int_equal(codec_decode_payload(MSG_DIST, buf + MSG_HDR_LEN, 28, &out), CODEC_ELENGTH);
	buf[MSG_HDR_LEN] = 1;
	assert_int_equal(codec_decode_payload(MSG_DIST, buf + MSG_HDR_LEN, 27, &out), CODEC_EFIELD);
	buf[MSG_HDR_LEN] = 9;
	assert_int_equal(codec_decode_payload(MSG_DIST, buf + MSG_HDR_LEN, 27, &out), CODEC_EFIELD);
	in.dist.e[0].id = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.dist.e[0].id = 9;
	in.dist.n = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.dist.n = 1;
	strcpy(in.dist.enc, "bad id");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	assert_string_equal(msg_type_name(MSG_DIST), "dist");
}

static void test_header_rejects(void **state)
{
	uint8_t h[MSG_HDR_LEN] = { 1, MSG_KEEPALIVE, 0, 0, 0, 0, 0, 8 };
	uint8_t type;
	uint32_t plen;

	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_OK);
	assert_int_equal(plen, 8);
	h[0] = 2;	/* version is judged from the first byte alone */
	assert_int_equal(codec_decode_header(h, 1, &type, &plen), CODEC_EVERSION);
	h[0] = 0;
	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_EVERSION);
	h[0] = 1;
	h[3] = 1;
	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_ERESERVED);
	h[3] = 0;
	h[5] = 1;	/* 65544 > MSG_MAX_PAYLOAD */
	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_ETOOBIG);
	h[5] = 0;
	h[1] = 0;
	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_ETYPE);
	h[1] = __MSG_LAST;
	assert_int_equal(codec_decode_header(h, sizeof(h), &type, &plen), CODEC_ETYPE);
}

/* MSG_PPETP carries one ppetp.h message as it is: 1..PPETP_MSG_MAX bytes. */
static void test_ppetp_frame(void **state)
{
	memset(&in, 0, sizeof(in));
	in.type = MSG_PPETP;
	in.ppetp.len = 5;
	memcpy(in.ppetp.data, "\x01\x04\x00\x00\x09", 5);
	roundtrip(&in, MSG_HDR_LEN + 5);
	assert_memory_equal(buf, "\x01\x07\x00\x00\x00\x00\x00\x05\x01\x04", 10);
	assert_int_equal(out.ppetp.len, 5);
	assert_memory_equal(out.ppetp.data, in.ppetp.data, 5);
	in.ppetp.len = PPETP_MSG_MAX;
	roundtrip(&in, MSG_HDR_LEN + PPETP_MSG_MAX);
	in.ppetp.len = PPETP_MSG_MAX + 1;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.ppetp.len = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	assert_int_equal(codec_decode_payload(MSG_PPETP, buf, 0, &out), CODEC_ELENGTH);
	assert_int_equal(codec_decode_payload(MSG_PPETP, buf, PPETP_MSG_MAX + 1, &out),
			 CODEC_ELENGTH);
	assert_string_equal(msg_type_name(MSG_PPETP), "ppetp");
}

/* MSG_QKD: key_IDs of one ETSI 014 link block (QKD_IDS) and the slave's answer (QKD_ACK). */
static void test_qkd_frame(void **state)
{
	static const char uuid[] = "bc490419-7d60-487f-adc1-4ddcc177c139";
	long n;

	memset(&in, 0, sizeof(in));
	in.type = MSG_QKD;
	in.qkd.op = QKD_IDS;
	in.qkd.nkeys = 2;
	in.qkd.block = 0x0102030405060708ULL;
	in.qkd.key_len = 32768;
	strcpy(in.qkd.key_id[0], uuid);
	strcpy(in.qkd.key_id[1], "0a782fb5-3434-48fe-aa4d-14f41d46cf92");
	roundtrip(&in, MSG_HDR_LEN + 16 + 2 * 36);
	assert_memory_equal(buf, "\x01\x08\x00\x00\x00\x00\x00\x58\x01\x00\x00\x02"
			    "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x80\x00", 24);
	assert_int_equal(out.qkd.nkeys, 2);
	assert_int_equal(out.qkd.block, in.qkd.block);
	assert_int_equal(out.qkd.key_len, 32768);
	assert_string_equal(out.qkd.key_id[0], uuid);
	assert_string_equal(out.qkd.key_id[1], in.qkd.key_id[1]);
	assert_string_equal(msg_type_name(MSG_QKD), "qkd");
	/* the most keys fit the payload bound */
	in.qkd.nkeys = MSG_QKD_MAX_KEYS;
	for (size_t i = 0; i < MSG_QKD_MAX_KEYS; i++)
		strcpy(in.qkd.key_id[i], uuid);
	roundtrip(&in, MSG_HDR_LEN + 16 + MSG_QKD_MAX_KEYS * 36);
	/* encoder refusals: no key, too many, a short key_ID, key length 0, bad op */
	in.qkd.nkeys = MSG_QKD_MAX_KEYS + 1;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.qkd.nkeys = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.qkd.nkeys = 1;
	strcpy(in.qkd.key_id[0], "short");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	strcpy(in.qkd.key_id[0], uuid);
	in.qkd.key_len = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.qkd.key_len = 1;
	in.qkd.op = 3;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	/* the answer: no key_IDs, a status */
	memset(&in, 0, sizeof(in));
	in.type = MSG_QKD;
	in.qkd.op = QKD_ACK;
	in.qkd.status = QKD_NOT_GOT;
	in.qkd.block = 7;
	roundtrip(&in, MSG_HDR_LEN + 16);
	assert_int_equal(out.qkd.status, QKD_NOT_GOT);
	in.qkd.status = 2;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	/* decoder refusals, from a good IDS payload */
	memset(&in, 0, sizeof(in));
	in.type = MSG_QKD;
	in.qkd.op = QKD_IDS;
	in.qkd.nkeys = 1;
	in.qkd.key_len = 32;
	strcpy(in.qkd.key_id[0], uuid);
	n = codec_encode(&in, buf, sizeof(buf));
	assert_int_equal(n, MSG_HDR_LEN + 16 + 36);
	{
		uint8_t *p = buf + MSG_HDR_LEN;
		size_t pl = (size_t)n - MSG_HDR_LEN;

		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_OK);
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl - 1, &out), CODEC_ELENGTH);
		assert_int_equal(codec_decode_payload(MSG_QKD, p, 15, &out), CODEC_ELENGTH);
		p[1] = 1;	/* IDS with a status */
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_EFIELD);
		p[1] = 0;
		p[16 + 8] = ' ';	/* a space in a key_ID */
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_EFIELD);
		p[16 + 8] = '-';
		memset(p + 12, 0, 4);	/* key length 0 */
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_EFIELD);
		p[15] = 32;
		p[0] = QKD_ACK;		/* an ACK with key_IDs */
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_EFIELD);
		p[0] = 9;
		assert_int_equal(codec_decode_payload(MSG_QKD, p, pl, &out), CODEC_EFIELD);
	}
}

/*
 * MSG_SAE: where the keys of one enc_keys request lie (SAE_KEYS) and the slave node's answer
 * (SAE_ACK). Round trips at both bounds, the exact wire bytes, every encoder refusal.
 */
static void sae_keys(uint16_t nkeys, uint8_t kind)
{
	memset(&in, 0, sizeof(in));
	in.type = MSG_SAE;
	in.sae.op = SAE_KEYS;
	in.sae.status = kind;
	in.sae.nkeys = nkeys;
	in.sae.seq = 0x1112131415161718ULL;
	in.sae.key_len = 32;
	strcpy(in.sae.master, "SAE_A");
	strcpy(in.sae.slave, "sae-b");
	for (uint16_t i = 0; i < nkeys; i++) {
		snprintf(in.sae.key[i].id, sizeof(in.sae.key[i].id),
			 "%08x-7d60-487f-adc1-4ddcc177c139", i);
		in.sae.key[i].ref = 0x0102030405060708ULL + i;
		in.sae.key[i].off = 0xa0b0c0d0U + 32 * i;
	}
}

static void test_sae_frame(void **state)
{
	static const char uuid[] = "bc490419-7d60-487f-adc1-4ddcc177c139";

	sae_keys(1, SAE_LINK);
	strcpy(in.sae.key[0].id, uuid);
	roundtrip(&in, MSG_HDR_LEN + 18 + 5 + 5 + 48);
	assert_memory_equal(buf, "\x01\x09\x00\x00\x00\x00\x00\x4c"
			    "\x01\x00\x00\x01\x11\x12\x13\x14\x15\x16\x17\x18\x00\x00\x00\x20"
			    "\x05" "SAE_A" "\x05" "sae-b", 8 + 16 + 12);
	assert_memory_equal(buf + 36, uuid, 36);
	assert_memory_equal(buf + 72, "\x01\x02\x03\x04\x05\x06\x07\x08\xa0\xb0\xc0\xd0", 12);
	assert_int_equal(out.sae.op, SAE_KEYS);
	assert_int_equal(out.sae.status, SAE_LINK);
	assert_int_equal(out.sae.nkeys, 1);
	assert_true(out.sae.seq == 0x1112131415161718ULL);
	assert_int_equal(out.sae.key_len, 32);
	assert_string_equal(out.sae.master, "SAE_A");
	assert_string_equal(out.sae.slave, "sae-b");
	assert_string_equal(out.sae.key[0].id, uuid);
	assert_true(out.sae.key[0].ref == 0x0102030405060708ULL);
	assert_true(out.sae.key[0].off == 0xa0b0c0d0U);
	assert_string_equal(msg_type_name(MSG_SAE), "sae");
	/* the most keys of a transfer key, both SAE_IDs at their longest: within the bound */
	sae_keys(MSG_SAE_MAX_KEYS, SAE_XFER);
	for (size_t i = 0; i < KMS_SAE_ID_MAX; i++) {
		in.sae.master[i] = (char)(0x21 + i % 94);
		in.sae.slave[i] = (char)(0x7e - i % 94);
	}
	roundtrip(&in, MSG_HDR_LEN + 18 + 2 * KMS_SAE_ID_MAX + MSG_SAE_MAX_KEYS * 48);
	assert_int_equal(out.sae.status, SAE_XFER);
	assert_int_equal(out.sae.nkeys, MSG_SAE_MAX_KEYS);
	assert_string_equal(out.sae.master, in.sae.master);
	assert_string_equal(out.sae.slave, in.sae.slave);
	for (size_t i = 0; i < MSG_SAE_MAX_KEYS; i++) {
		assert_string_equal(out.sae.key[i].id, in.sae.key[i].id);
		assert_true(out.sae.key[i].ref == in.sae.key[i].ref);
		assert_true(out.sae.key[i].off == in.sae.key[i].off);
	}
	/* a buffer one byte short */
	assert_int_equal(codec_encode(&in, buf, MSG_HDR_LEN + 18 + 2 * KMS_SAE_ID_MAX +
				      MSG_SAE_MAX_KEYS * 48 - 1), -1);
	/* the answers: a status and the seq, nothing else */
	for (uint8_t s = SAE_GOT; s <= SAE_NOT_GOT; s++) {
		memset(&in, 0, sizeof(in));
		in.type = MSG_SAE;
		in.sae.op = SAE_ACK;
		in.sae.status = s;
		in.sae.seq = 77 + s;
		roundtrip(&in, MSG_HDR_LEN + 18);
		assert_memory_equal(buf, "\x01\x09\x00\x00\x00\x00\x00\x12\x02", 9);
		assert_int_equal(out.sae.op, SAE_ACK);
		assert_int_equal(out.sae.status, s);
		assert_true(out.sae.seq == 77u + s);
		assert_int_equal(out.sae.nkeys, 0);
		assert_int_equal(out.sae.key_len, 0);
		assert_string_equal(out.sae.master, "");
		assert_string_equal(out.sae.slave, "");
	}
}

static void test_sae_encode_rejects(void **state)
{
	/* SAE_KEYS: no key, too many, unknown kind, key length 0, an empty or bad SAE_ID */
	sae_keys(1, SAE_LINK);
	assert_true(codec_encode(&in, buf, sizeof(buf)) > 0);
	in.sae.nkeys = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.nkeys = MSG_SAE_MAX_KEYS + 1;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, 2);
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_XFER);
	in.sae.key_len = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	in.sae.master[0] = '\0';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	in.sae.slave[0] = '\0';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	in.sae.master[2] = ' ';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	in.sae.slave[4] = '\x7f';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	memset(in.sae.master, 'm', sizeof(in.sae.master));	/* 128 bytes, no NUL */
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(1, SAE_LINK);
	memset(in.sae.slave, 's', sizeof(in.sae.slave));
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	/* a key_ID of 35 or 37 characters, or with a space; in the last of several keys */
	sae_keys(3, SAE_LINK);
	in.sae.key[2].id[35] = '\0';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(3, SAE_LINK);
	in.sae.key[2].id[36] = '0';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	sae_keys(3, SAE_LINK);
	in.sae.key[2].id[8] = ' ';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	/* an unknown op */
	sae_keys(1, SAE_LINK);
	in.sae.op = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.op = 3;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	/* SAE_ACK: an unknown status, keys, a key length or an SAE_ID */
	memset(&in, 0, sizeof(in));
	in.type = MSG_SAE;
	in.sae.op = SAE_ACK;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), MSG_HDR_LEN + 18);
	in.sae.status = 2;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.status = SAE_NOT_GOT;
	in.sae.nkeys = 1;
	strcpy(in.sae.key[0].id, "bc490419-7d60-487f-adc1-4ddcc177c139");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.nkeys = 0;
	in.sae.key_len = 32;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.key_len = 0;
	strcpy(in.sae.master, "SAE_A");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.master[0] = '\0';
	strcpy(in.sae.slave, "SAE_B");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.sae.slave[0] = '\0';
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), MSG_HDR_LEN + 18);
}

static int sae_dec(const uint8_t *p, size_t pl)
{
	return codec_decode_payload(MSG_SAE, p, pl, &out);
}

/* Writes an MSG_SAE payload field by field (SAE_ID lengths as given); returns its length. */
static size_t sae_craft(uint8_t *p, uint8_t op, uint8_t status, uint16_t nkeys,
			uint32_t key_len, const char *master, const char *slave)
{
	size_t ml = strlen(master), sl = strlen(slave), pos = 16;

	memset(p, 0, 16);
	p[0] = op;
	p[1] = status;
	p[2] = (uint8_t)(nkeys >> 8);
	p[3] = (uint8_t)nkeys;
	p[11] = 42;		/* seq */
	p[12] = (uint8_t)(key_len >> 24);
	p[13] = (uint8_t)(key_len >> 16);
	p[14] = (uint8_t)(key_len >> 8);
	p[15] = (uint8_t)key_len;
	p[pos++] = (uint8_t)ml;
	memcpy(p + pos, master, ml);
	pos += ml;
	p[pos++] = (uint8_t)sl;
	memcpy(p + pos, slave, sl);
	pos += sl;
	for (uint16_t i = 0; i < nkeys; i++, pos += 48) {
		memcpy(p + pos, "bc490419-7d60-487f-adc1-4ddcc177c139", 36);
		memset(p + pos + 36, 7, 12);
	}
	return pos;
}

/* Decoder refusals: a good SAE_KEYS of two keys cut and altered, and crafted payloads. */
static void test_sae_decode_rejects(void **state)
{
	static const uint8_t bad[] = { 0x00, 0x20, 0x7f, 0x80, 0xff };
	static uint8_t p[1024];
	char id[KMS_SAE_ID_MAX + 2];
	uint8_t *k = p + 28;	/* the first key */
	size_t pl;
	long n;

	sae_keys(2, SAE_LINK);
	n = codec_encode(&in, buf, sizeof(buf));
	assert_int_equal(n, MSG_HDR_LEN + 18 + 10 + 2 * 48);
	pl = (size_t)n - MSG_HDR_LEN;
	memcpy(p, buf + MSG_HDR_LEN, pl);
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	/* truncated anywhere: in the fixed part, an SAE_ID, a key; and a trailing byte */
	assert_int_equal(sae_dec(p, 0), CODEC_ELENGTH);
	assert_int_equal(sae_dec(p, 16), CODEC_ELENGTH);
	assert_int_equal(sae_dec(p, 17), CODEC_ELENGTH);
	assert_int_equal(sae_dec(p, 18), CODEC_EFIELD);	/* master: length 5, 1 byte left */
	assert_int_equal(sae_dec(p, 21), CODEC_EFIELD);
	assert_int_equal(sae_dec(p, 22), CODEC_EFIELD);	/* no slave length byte */
	assert_int_equal(sae_dec(p, 27), CODEC_EFIELD);	/* slave's last byte missing */
	assert_int_equal(sae_dec(p, 28), CODEC_ELENGTH);	/* no keys */
	assert_int_equal(sae_dec(p, pl - 48), CODEC_ELENGTH);	/* one key of two */
	assert_int_equal(sae_dec(p, pl - 1), CODEC_ELENGTH);
	p[pl] = 0;
	assert_int_equal(sae_dec(p, pl + 1), CODEC_ELENGTH);
	/* nkeys disagrees with the payload; above the bound it is a field error */
	p[3] = 1;
	assert_int_equal(sae_dec(p, pl), CODEC_ELENGTH);
	p[3] = 3;
	assert_int_equal(sae_dec(p, pl), CODEC_ELENGTH);
	p[2] = 0x04;	/* 1025 */
	p[3] = 0x01;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[2] = 0xff;
	p[3] = 0xff;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[2] = 0;
	p[3] = 0;	/* no key at all */
	assert_int_equal(sae_dec(p, pl - 96), CODEC_EFIELD);
	p[3] = 2;
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	/* an SAE_ID length byte beyond the payload, or above KMS_SAE_ID_MAX */
	p[16] = (uint8_t)(pl - 16);	/* one byte beyond */
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[16] = 0xff;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[16] = 5;
	p[22] = (uint8_t)(pl - 22);
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[22] = KMS_SAE_ID_MAX + 1;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[22] = 5;
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	/* a non-printable byte in either SAE_ID or in any key_ID */
	for (size_t i = 0; i < sizeof(bad); i++) {
		uint8_t *at[] = { p + 17, p + 21, p + 23, p + 27, k, k + 8, k + 48 + 35 };

		for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++) {
			uint8_t save = *at[j];

			*at[j] = bad[i];
			assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
			*at[j] = save;
		}
	}
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	/* fields: unknown kind, key length 0, unknown op, an ACK with keys */
	p[1] = 2;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[1] = SAE_XFER;
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	memset(p + 12, 0, 4);
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[15] = 32;
	p[0] = 0;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[0] = 3;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	p[0] = SAE_ACK;
	p[1] = SAE_GOT;
	assert_int_equal(sae_dec(p, pl), CODEC_EFIELD);
	/* crafted SAE_KEYS: an empty master or slave SAE_ID */
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_LINK, 1, 32, "A", "B")),
			 CODEC_OK);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_LINK, 1, 32, "", "B")),
			 CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_LINK, 1, 32, "A", "")),
			 CODEC_EFIELD);
	/* an SAE_ID of KMS_SAE_ID_MAX bytes is read; one byte more is not */
	memset(id, 'x', sizeof(id));
	id[KMS_SAE_ID_MAX] = '\0';
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_XFER, 2, 32, id, id)), CODEC_OK);
	assert_string_equal(out.sae.master, id);
	assert_string_equal(out.sae.slave, id);
	id[KMS_SAE_ID_MAX] = 'x';
	id[KMS_SAE_ID_MAX + 1] = '\0';
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_XFER, 2, 32, id, "B")),
			 CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_KEYS, SAE_XFER, 2, 32, "A", id)),
			 CODEC_EFIELD);
	/* SAE_ACK: empty but for status and seq; an SAE_ID, a key length or keys refused */
	pl = sae_craft(p, SAE_ACK, SAE_NOT_GOT, 0, 0, "", "");
	assert_int_equal(pl, 18);
	assert_int_equal(sae_dec(p, pl), CODEC_OK);
	assert_true(out.sae.seq == 42);
	assert_int_equal(sae_dec(p, pl + 1), CODEC_ELENGTH);
	assert_int_equal(sae_dec(p, pl - 1), CODEC_ELENGTH);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_ACK, 2, 0, 0, "", "")), CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_ACK, SAE_GOT, 0, 32, "", "")), CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_ACK, SAE_GOT, 0, 0, "A", "")), CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_ACK, SAE_GOT, 0, 0, "", "B")), CODEC_EFIELD);
	assert_int_equal(sae_dec(p, sae_craft(p, SAE_ACK, SAE_GOT, 1, 0, "", "")), CODEC_EFIELD);
	/* the same through codec_decode: a whole frame is refused, not taken as incomplete */
	sae_keys(1, SAE_LINK);
	n = codec_encode(&in, buf, sizeof(buf));
	assert_true(n > 0);
	buf[MSG_HDR_LEN + 17] = ' ';
	{
		size_t used = 0;

		assert_int_equal(codec_decode(buf, (size_t)n, &out, &used), CODEC_EFIELD);
		assert_int_equal(used, 0);
	}
}

static void test_payload_rejects(void **state)
{
	uint8_t p[64] = { 0 };

	/* hello: length byte disagrees with the payload, empty id, invalid characters */
	p[0] = 3;
	memcpy(p + 1, "abc", 3);
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 4, &out), CODEC_OK);
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 5, &out), CODEC_ELENGTH);
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 3, &out), CODEC_ELENGTH);
	p[2] = '/';
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 4, &out), CODEC_EFIELD);
	p[0] = 0;
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 1, &out), CODEC_EFIELD);
	assert_int_equal(codec_decode_payload(MSG_HELLO, p, 0, &out), CODEC_ELENGTH);
	/* keepalive is exactly 8 bytes */
	assert_int_equal(codec_decode_payload(MSG_KEEPALIVE, p, 7, &out), CODEC_ELENGTH);
	assert_int_equal(codec_decode_payload(MSG_KEEPALIVE, p, 9, &out), CODEC_ELENGTH);
	/* verify-req: zero count, count larger than the payload */
	memset(p, 0, sizeof(p));
	assert_int_equal(codec_decode_payload(MSG_VERIFY_REQ, p, 10, &out), CODEC_EFIELD);
	p[9] = 1;
	assert_int_equal(codec_decode_payload(MSG_VERIFY_REQ, p, 10, &out), CODEC_ELENGTH);
	assert_int_equal(codec_decode_payload(MSG_VERIFY_REQ, p, 54, &out), CODEC_OK);
	assert_int_equal(codec_decode_payload(MSG_VERIFY_REQ, p, 55, &out), CODEC_ELENGTH);
	/* verify-resp: unknown status */
	assert_int_equal(codec_decode_payload(MSG_VERIFY_RESP, p, 19, &out), CODEC_OK);
	p[18] = __VERIFY_LAST;
	assert_int_equal(codec_decode_payload(MSG_VERIFY_RESP, p, 19, &out), CODEC_EFIELD);
	p[8] = 0x04;	/* count 1025 */
	p[9] = 0x01;
	assert_int_equal(codec_decode_payload(MSG_VERIFY_RESP, p, 19, &out), CODEC_EFIELD);
	/* route advert: version, flags, trailing byte, unsorted dests, metric above infinity */
	memcpy(p, "\x01\x00\x00\x02\x01" "b" "\x01\x01" "a" "\x02\x01" "c", 12);
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 12, &out), CODEC_OK);
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 13, &out), CODEC_ELENGTH);
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 11, &out), CODEC_ELENGTH);
	p[9] = 17;
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 12, &out), CODEC_ELENGTH);
	p[9] = 2;
	p[11] = 'a';
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 12, &out), CODEC_ELENGTH);
	p[11] = 'c';
	p[1] = 1;
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 12, &out), CODEC_ELENGTH);
	p[1] = 0;
	p[0] = 2;
	assert_int_equal(codec_decode_payload(MSG_ROUTE_ADVERT, p, 12, &out), CODEC_EFIELD);
}

static void test_encode_rejects(void **state)
{
	in.type = MSG_HELLO;
	strcpy(in.hello.node_id, "bad id");
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.type = MSG_VERIFY_REQ;
	in.vreq.count = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.vreq.count = 2;
	assert_int_equal(codec_encode(&in, buf, MSG_HDR_LEN + 10 + 44), -1);
	in.type = MSG_ROUTE_ADVERT;
	strcpy(in.advert.origin, "bad id");
	in.advert.count = 0;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
	in.type = 99;
	assert_int_equal(codec_encode(&in, buf, sizeof(buf)), -1);
}

static void test_stream_of_frames(void **state)
{
	size_t used, off = 0, total = 0;
	long n;

	in.type = MSG_KEEPALIVE;
	for (int i = 0; i < 3; i++) {
		in.keepalive.nonce = i;
		n = codec_encode(&in, buf + total, sizeof(buf) - total);
		assert_true(n > 0);
		total += n;
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(codec_decode(buf + off, total - off, &out, &used), CODEC_OK);
		assert_true(out.keepalive.nonce == (uint64_t)i);
		off += used;
	}
	assert_int_equal(off, total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_roundtrip),
		cmocka_unit_test(test_keepalive_roundtrip),
		cmocka_unit_test(test_verify_req_roundtrip),
		cmocka_unit_test(test_verify_resp_roundtrip),
		cmocka_unit_test(test_route_advert_roundtrip),
		cmocka_unit_test(test_dist_roundtrip),
		cmocka_unit_test(test_header_rejects),
		cmocka_unit_test(test_ppetp_frame),
		cmocka_unit_test(test_qkd_frame),
		cmocka_unit_test(test_sae_frame),
		cmocka_unit_test(test_sae_encode_rejects),
		cmocka_unit_test(test_sae_decode_rejects),
		cmocka_unit_test(test_payload_rejects),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_stream_of_frames),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
