// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the peer message codec: round trips and every rejection path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
		cmocka_unit_test(test_payload_rejects),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_stream_of_frames),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
