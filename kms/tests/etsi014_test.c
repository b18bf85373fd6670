// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the ETSI GS QKD 014 JSON codec: the standard's examples, round trips, and
 * every rejection path with its exact message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "etsi014.h"
#include "wipe.h"

static char err[512];
static struct e14_status st;
static struct e14_key_request rq;
static struct e14_key_container kc;
static struct e14_key_ids ki;

#define UUID1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define UUID2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define KEY1 "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s="
#define KEY2 "OeGMPxh1+2RpJpNCYixWHFLYRubpOKCw94FcCI7VdJA="
#define KEY1_BYTES "\xc0\x71\xd5\xc5\x1c\x03\x26\xcd\xff\x6d\x77\x77\xf0\x61\xcf\xde" \
	"\x87\xb8\xb2\xf4\xee\x46\x96\x52\xd3\x20\x82\xef\x1e\x0b\xcb\xeb"
#define KEY2_BYTES "\x39\xe1\x8c\x3f\x18\x75\xfb\x64\x69\x26\x93\x42\x62\x2c\x56\x1c" \
	"\x52\xd8\x46\xe6\xe9\x38\xa0\xb0\xf7\x81\x5c\x08\x8e\xd5\x74\x90"

/* The key container example of the standard (clause 6.3), byte for byte. */
static const char container_example[] =
	"{\"keys\":[{\"key_ID\":\"" UUID1 "\",\"key\":\"" KEY1 "\"},"
	"{\"key_ID\":\"" UUID2 "\",\"key\":\"" KEY2 "\"}]}";

static int status(const char *json)
{
	err[0] = '\0';
	return e14_parse_status(json, strlen(json), &st, err, sizeof(err));
}

static int request(const char *json)
{
	err[0] = '\0';
	return e14_parse_key_request(json, strlen(json), &rq, err, sizeof(err));
}

static int container(const char *json, size_t max)
{
	err[0] = '\0';
	e14_key_container_free(&kc);
	return e14_parse_key_container(json, strlen(json), max, &kc, err, sizeof(err));
}

static int key_ids(const char *json, size_t max)
{
	err[0] = '\0';
	e14_key_ids_free(&ki);
	return e14_parse_key_ids(json, strlen(json), max, &ki, err, sizeof(err));
}

struct bad {
	const char *json, *msg;
};

/* Messages common to every parser: the body is not a JSON object. */
static const struct bad not_object[] = {
	{ "", "body is not JSON: unexpected token near end of file at line 1 column 0" },
	{ "{", "body is not JSON: string or '}' expected near end of file at line 1 column 1" },
	{ "{} x", "body is not JSON: end of file expected near 'x' at line 1 column 4" },
	{ "{}{}", "body is not JSON: end of file expected near '{' at line 1 column 3" },
	{ "{\"a\":1,\"a\":2}", "body is not JSON: duplicate object key near '\"a\"' at line 1"
	  " column 10" },
	{ "{\"a\":\"\\u0000\"}", "body is not JSON: \\u0000 is not allowed without JSON_ALLOW_NUL"
	  " near '\"\\u0000\"' at line 1 column 13" },
	{ "{\"a\":\"\x01\"}", "body is not JSON: control character 0x1 near '\"' at line 1"
	  " column 6" },
	{ "{\"a\":\"\xff\"}", "body is not JSON: unable to decode byte 0xff near '\"' at line 1"
	  " column 6" },
	{ "{'a':1}", "body is not JSON: string or '}' expected near ''' at line 1 column 2" },
	/* bytes of the body that jansson quotes are made printable ASCII */
	{ "{} \xc3\xa9", "body is not JSON: end of file expected near '?" "?' at line 1 column 4" },
	{ "{\"a\":\t\x7f}", "body is not JSON: invalid token near '?' at line 1 column 7" },
	{ "[]", "body is not a JSON object" },
	{ "[{}]", "body is not a JSON object" },
	{ "42", "body is not a JSON object" },
	{ "\"x\"", "body is not a JSON object" },
	{ "null", "body is not a JSON object" },
};

static void test_not_object(void **state)
{
	char msg[128];
	size_t i;

	for (i = 0; i < sizeof(not_object) / sizeof(not_object[0]); i++) {
		const char *j = not_object[i].json, *m = not_object[i].msg;

		print_message("%zu: %s\n", i, j);
		assert_int_equal(status(j), -1);
		assert_string_equal(err, m);
		assert_int_equal(request(j), -1);
		assert_string_equal(err, m);
		assert_int_equal(container(j, E14_MAX_KEYS), -1);
		/* jansson's context (" near '...'") is left out where the body holds keys */
		if (strstr(m, " near '")) {
			char want[256];
			const char *near = strstr(m, " near '"), *at = strstr(m, " at line");

			snprintf(want, sizeof(want), "%.*s%s", (int)(near - m), m, at);
			assert_string_equal(err, want);
		} else {
			assert_string_equal(err, m);
		}
		assert_int_equal(key_ids(j, E14_MAX_KEYS), -1);
		assert_string_equal(err, m);
		assert_int_equal(e14_parse_error(j, strlen(j), msg, sizeof(msg)), -1);
		assert_string_equal(msg, m);
	}
	/* json need not be NUL-terminated: only len bytes are read */
	assert_int_equal(e14_parse_key_request("{}xyz", 2, &rq, err, sizeof(err)), 0);
	assert_int_equal(e14_parse_key_request(NULL, 0, &rq, err, sizeof(err)), -1);
	/* too large: refused before reading (the pointer is never dereferenced that far) */
	assert_int_equal(e14_parse_key_ids("{}", (size_t)E14_MAX_BODY + 1, 1, &ki, err,
					   sizeof(err)), -1);
	assert_string_equal(err, "body too large: 89613313 bytes, at most 89613312");
	/* a NULL or empty err is allowed */
	assert_int_equal(e14_parse_status("[]", 2, &st, NULL, 0), -1);
	err[0] = 'x';
	assert_int_equal(e14_parse_status("[]", 2, &st, err, 0), -1);
	assert_int_equal(err[0], 'x');
	/* err is cut to errlen */
	assert_int_equal(e14_parse_status("[]", 2, &st, err, 8), -1);
	assert_string_equal(err, "body is");
}

static void test_init(void **state)
{
	json_malloc_t m;
	json_free_t f;

	e14_init();
	e14_init();
	json_get_alloc_funcs(&m, &f);
	assert_ptr_equal(m, malloc);
	assert_ptr_equal(f, wipe_free);
}

/* ---- identifiers ---- */

static void test_uuid_valid(void **state)
{
	assert_true(e14_uuid_valid(UUID1));
	assert_true(e14_uuid_valid("BC490419-7D60-487F-ADC1-4DDCC177C139"));
	assert_true(e14_uuid_valid("00000000-0000-0000-0000-000000000000"));
	assert_true(e14_uuid_valid("aBcDeF09-AbCd-0000-ffFF-0123456789aB"));
	assert_false(e14_uuid_valid(NULL));
	assert_false(e14_uuid_valid(""));
	assert_false(e14_uuid_valid("bc490419-7d60-487f-adc1-4ddcc177c13"));	/* 35 */
	assert_false(e14_uuid_valid(UUID1 "0"));				/* 37 */
	assert_false(e14_uuid_valid(UUID1 " "));
	assert_false(e14_uuid_valid(" " UUID1));
	assert_false(e14_uuid_valid("bc490419-7d60-487f-adc1-4ddcc177c13g"));
	assert_false(e14_uuid_valid("bc4904197-d60-487f-adc1-4ddcc177c139"));
	assert_false(e14_uuid_valid("bc490419-7d60-487f-adc14ddcc177c139-"));
	assert_false(e14_uuid_valid("bc490419_7d60_487f_adc1_4ddcc177c139"));
	assert_false(e14_uuid_valid("bc4904197d60487fadc14ddcc177c139"));
	assert_false(e14_uuid_valid("{bc490419-7d60-487f-adc1-4ddcc177c13}"));
	assert_false(e14_uuid_valid("bc490419-7d60-487f-adc1-4ddcc177c1\xc3\xa9"));
	assert_false(e14_uuid_valid("+c490419-7d60-487f-adc1-4ddcc177c139"));
}

static void test_uuid_generate(void **state)
{
	static char ids[64][E14_UUID_LEN + 1];
	int i, j, k;

	for (i = 0; i < 64; i++) {
		memset(ids[i], 'x', sizeof(ids[i]));
		assert_int_equal(e14_uuid_generate(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), E14_UUID_LEN);
		assert_true(e14_uuid_valid(ids[i]));
		assert_int_equal(ids[i][14], '4');			/* version 4 */
		assert_non_null(strchr("89ab", ids[i][19]));		/* variant 10xx */
		for (k = 0; k < E14_UUID_LEN; k++)
			assert_false(ids[i][k] >= 'A' && ids[i][k] <= 'F');
		for (j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
}

static void test_id_valid(void **state)
{
	char id[E14_ID_MAX + 2];
	const char *bad[] = { "", "a b", "a/b", "a?b", "a#b", "a%b", "a\tb", "a\x7f", "a\x80",
			      "\xc3\xa9", " a", "a\n" };
	size_t i;

	assert_true(e14_id_valid("A"));
	assert_true(e14_id_valid("ABCDEFG"));
	assert_true(e14_id_valid("!\"$&'()*+,-.:;<=>@[\\]^_`{|}~"));
	assert_false(e14_id_valid(NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(e14_id_valid(bad[i]));
	memset(id, 'x', sizeof(id));
	id[E14_ID_MAX] = '\0';
	assert_true(e14_id_valid(id));
	id[E14_ID_MAX] = 'x';
	id[E14_ID_MAX + 1] = '\0';
	assert_false(e14_id_valid(id));
}

/* ---- Status ---- */

#define STATUS_TEXT \
	"{\"source_KME_ID\":\"EEEEFFFFGGGGHHHH\",\"target_KME_ID\":\"IIIIJJJJKKKKLLLL\"," \
	"\"master_SAE_ID\":\"IIIIJJJJKKKKLLLL\",\"slave_SAE_ID\":\"MMMMNNNNOOOOPPPP\"," \
	"\"key_size\":352,\"stored_key_count\":25000,\"max_key_count\":100000," \
	"\"max_key_per_request\":128,\"max_key_size\":1024,\"min_key_size\":64," \
	"\"max_SAE_ID_count\":0}"

static void check_status_example(void)
{
	assert_string_equal(st.source_kme_id, "EEEEFFFFGGGGHHHH");
	assert_string_equal(st.target_kme_id, "IIIIJJJJKKKKLLLL");
	assert_string_equal(st.master_sae_id, "IIIIJJJJKKKKLLLL");
	assert_string_equal(st.slave_sae_id, "MMMMNNNNOOOOPPPP");
	assert_int_equal(st.key_size, 352);
	assert_int_equal(st.stored_key_count, 25000);
	assert_int_equal(st.max_key_count, 100000);
	assert_int_equal(st.max_key_per_request, 128);
	assert_int_equal(st.max_key_size, 1024);
	assert_int_equal(st.min_key_size, 64);
	assert_int_equal(st.max_sae_id_count, 0);
}

static void test_status(void **state)
{
	/* the standard's example (clause 6.1), its layout and its status_extension */
	static const char ex[] = "{\n  \"source_KME_ID\": \"EEEEFFFFGGGGHHHH\",\n"
		"  \"target_KME_ID\": \"IIIIJJJJKKKKLLLL\",\n"
		"  \"master_SAE_ID\": \"IIIIJJJJKKKKLLLL\",\n"
		"  \"slave_SAE_ID\": \"MMMMNNNNOOOOPPPP\",\n  \"key_size\": 352,\n"
		"  \"stored_key_count\": 25000,\n  \"max_key_count\": 100000,\n"
		"  \"max_key_per_request\": 128,\n  \"max_key_size\": 1024,\n"
		"  \"min_key_size\": 64,\n  \"max_SAE_ID_count\": 0,\n"
		"  \"status_extension\": {\"abc\": [1, 2]},\n  \"unknown\": null\n}\n";
	struct e14_status copy;
	size_t len = 0;
	char *t;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(status(ex), 0);
	check_status_example();
	copy = st;
	t = e14_format_status(&copy, &len);
	assert_non_null(t);
	assert_string_equal(t, STATUS_TEXT);
	assert_int_equal(len, strlen(STATUS_TEXT));
	memset(&st, 0, sizeof(st));
	assert_int_equal(e14_parse_status(t, len, &st, err, sizeof(err)), 0);
	assert_memory_equal(&st, &copy, sizeof(st));
	e14_text_free(t);

	/* the extremes of the integers */
	copy.key_size = UINT32_MAX;
	copy.max_sae_id_count = UINT32_MAX;
	copy.min_key_size = 0;
	t = e14_format_status(&copy, NULL);
	assert_non_null(t);
	assert_non_null(strstr(t, "\"key_size\":4294967295,"));
	assert_int_equal(status(t), 0);
	assert_memory_equal(&st, &copy, sizeof(st));
	e14_text_free(t);

	/* an invalid ID: nothing to format */
	copy.slave_sae_id[0] = '\0';
	assert_null(e14_format_status(&copy, &len));
	strcpy(copy.slave_sae_id, "a/b");
	assert_null(e14_format_status(&copy, &len));
}

/* STATUS_TEXT with member `name' replaced by `repl' (a member text, or "" to drop it). */
static char *status_with(const char *name, const char *repl)
{
	static char buf[1024];
	char quoted[64];
	const char *p, *e;
	size_t pre;

	snprintf(quoted, sizeof(quoted), "\"%s\":", name);
	p = strstr(STATUS_TEXT, quoted);
	assert_non_null(p);
	e = strpbrk(p + strlen(quoted), ",}");
	assert_non_null(e);
	pre = p - STATUS_TEXT;
	if (*e == ',')		/* not the last member */
		snprintf(buf, sizeof(buf), "%.*s%s%s%s", (int)pre, STATUS_TEXT, repl,
			 repl[0] ? "," : "", e + 1);
	else			/* the last: drop the comma before it if dropping it */
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(repl[0] ? pre : pre - 1),
			 STATUS_TEXT, repl, e);
	return buf;
}

static void test_status_errors(void **state)
{
	static const char *const ids[] = { "source_KME_ID", "target_KME_ID", "master_SAE_ID",
					   "slave_SAE_ID" };
	static const char *const ints[] = { "key_size", "stored_key_count", "max_key_count",
					    "max_key_per_request", "max_key_size", "min_key_size",
					    "max_SAE_ID_count" };
	char member[256], want[256];
	size_t i;

	/* the helper itself */
	assert_int_equal(status(status_with("max_SAE_ID_count", "\"max_SAE_ID_count\":7")), 0);
	assert_int_equal(st.max_sae_id_count, 7);
	assert_int_equal(status(status_with("source_KME_ID", "\"source_KME_ID\":\"x\"")), 0);
	assert_string_equal(st.source_kme_id, "x");

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		print_message("%s\n", ids[i]);
		assert_int_equal(status(status_with(ids[i], "")), -1);
		snprintf(want, sizeof(want), "%s: missing", ids[i]);
		assert_string_equal(err, want);
		/* the struct is left zeroed */
		assert_int_equal(st.source_kme_id[0], 0);
		assert_int_equal(st.key_size, 0);

		snprintf(member, sizeof(member), "\"%s\":42", ids[i]);
		assert_int_equal(status(status_with(ids[i], member)), -1);
		snprintf(want, sizeof(want), "%s: not a string", ids[i]);
		assert_string_equal(err, want);

		snprintf(member, sizeof(member), "\"%s\":null", ids[i]);
		assert_int_equal(status(status_with(ids[i], member)), -1);
		assert_string_equal(err, want);

		snprintf(member, sizeof(member), "\"%s\":\"\"", ids[i]);
		assert_int_equal(status(status_with(ids[i], member)), -1);
		snprintf(want, sizeof(want), "%s: not a valid ID: \"\"", ids[i]);
		assert_string_equal(err, want);

		snprintf(member, sizeof(member), "\"%s\":\"a/b\\n\\\"\\u00e9\"", ids[i]);
		assert_int_equal(status(status_with(ids[i], member)), -1);
		snprintf(want, sizeof(want), "%s: not a valid ID: \"a/b\\x0a\\x22\\xc3\\xa9\"",
			 ids[i]);
		assert_string_equal(err, want);

		/* 128 characters: too long, and quoted only in part */
		snprintf(member, sizeof(member), "\"%s\":\"%0128d\"", ids[i], 0);
		assert_int_equal(status(status_with(ids[i], member)), -1);
		snprintf(want, sizeof(want), "%s: not a valid ID: \"%032d\"...", ids[i], 0);
		assert_string_equal(err, want);
	}
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		static const char *const not_int[] = { "\"1\"", "1.0", "1e3", "true", "null",
						       "[1]", "{}" };
		size_t j;

		print_message("%s\n", ints[i]);
		assert_int_equal(status(status_with(ints[i], "")), -1);
		snprintf(want, sizeof(want), "%s: missing", ints[i]);
		assert_string_equal(err, want);

		for (j = 0; j < sizeof(not_int) / sizeof(not_int[0]); j++) {
			snprintf(member, sizeof(member), "\"%s\":%s", ints[i], not_int[j]);
			assert_int_equal(status(status_with(ints[i], member)), -1);
			snprintf(want, sizeof(want), "%s: not an integer", ints[i]);
			assert_string_equal(err, want);
		}
		snprintf(member, sizeof(member), "\"%s\":-1", ints[i]);
		assert_int_equal(status(status_with(ints[i], member)), -1);
		snprintf(want, sizeof(want), "%s: -1 is out of range 0..4294967295", ints[i]);
		assert_string_equal(err, want);

		snprintf(member, sizeof(member), "\"%s\":4294967296", ints[i]);
		assert_int_equal(status(status_with(ints[i], member)), -1);
		snprintf(want, sizeof(want), "%s: 4294967296 is out of range 0..4294967295",
			 ints[i]);
		assert_string_equal(err, want);

		snprintf(member, sizeof(member), "\"%s\":0", ints[i]);
		assert_int_equal(status(status_with(ints[i], member)), 0);
		snprintf(member, sizeof(member), "\"%s\":4294967295", ints[i]);
		assert_int_equal(status(status_with(ints[i], member)), 0);
	}
	/* an integer beyond jansson's range is a JSON error */
	assert_int_equal(status(status_with("key_size", "\"key_size\":99999999999999999999")),
			 -1);
	assert_string_equal(err, "body is not JSON: too big integer near '99999999999999999999'"
			    " at line 1 column 171");
	assert_int_equal(status(status_with("key_size", "\"status_extension\":[]")), -1);
	assert_string_equal(err, "key_size: missing");
	assert_int_equal(status(status_with("max_SAE_ID_count",
					    "\"max_SAE_ID_count\":0,\"status_extension\":[]")), -1);
	assert_string_equal(err, "status_extension: not an object");
	assert_int_equal(status(status_with("max_SAE_ID_count",
					    "\"max_SAE_ID_count\":0,\"status_extension\":null")),
			 -1);
	assert_string_equal(err, "status_extension: not an object");
	assert_int_equal(status("{}"), -1);
	assert_string_equal(err, "source_KME_ID: missing");
}

/* ---- Key request ---- */

static const char request_example[] =
	"{\n  \"number\": 3,\n  \"size\": 1024,\n"
	"  \"additional_slave_SAE_IDs\": [\n    \"ABCDEFG\",\n    \"HIJKLMN\"\n  ],\n"
	"  \"extension_mandatory\": [\n    {\"abc_route_type\": \"direct\"},\n"
	"    {\"abc_transfer_method\": \"qkd\"}\n  ],\n"
	"  \"extension_optional\": [\n    {\"abc_max_age\": 30000}\n  ]\n}\n";

static void test_key_request(void **state)
{
	struct e14_key_request copy;
	size_t len;
	char *t;

	memset(&rq, 0xa5, sizeof(rq));
	assert_int_equal(request(request_example), 0);
	assert_int_equal(rq.number, 3);
	assert_int_equal(rq.size, 1024);
	assert_int_equal(rq.n_additional, 2);
	assert_string_equal(rq.additional[0], "ABCDEFG");
	assert_string_equal(rq.additional[1], "HIJKLMN");
	assert_int_equal(rq.n_ext_mandatory, 2);
	assert_string_equal(rq.ext_mandatory[0], "abc_route_type");
	assert_string_equal(rq.ext_mandatory[1], "abc_transfer_method");

	copy = rq;
	t = e14_format_key_request(&copy, &len);
	assert_non_null(t);
	assert_string_equal(t, "{\"number\":3,\"size\":1024,"
			    "\"additional_slave_SAE_IDs\":[\"ABCDEFG\",\"HIJKLMN\"],"
			    "\"extension_mandatory\":[{\"abc_route_type\":null},"
			    "{\"abc_transfer_method\":null}]}");
	assert_int_equal(len, strlen(t));
	assert_int_equal(e14_parse_key_request(t, len, &rq, err, sizeof(err)), 0);
	assert_memory_equal(&rq, &copy, sizeof(rq));
	e14_text_free(t);

	/* all optional: an empty request is the standard's defaults */
	memset(&rq, 0xa5, sizeof(rq));
	assert_int_equal(request("{}"), 0);
	memset(&copy, 0, sizeof(copy));
	assert_memory_equal(&rq, &copy, sizeof(rq));
	t = e14_format_key_request(&copy, &len);
	assert_string_equal(t, "{}");
	assert_int_equal(len, 2);
	e14_text_free(t);

	/* empty arrays, several names in one object, unknown members */
	assert_int_equal(request("{\"number\":1024,\"size\":8,\"additional_slave_SAE_IDs\":[],"
				 "\"extension_mandatory\":[{},{\"a\":1,\"b\":{\"c\":2}},{\"\":0}],"
				 "\"extension_optional\":[],\"other\":[1]}"), 0);
	assert_int_equal(rq.number, 1024);
	assert_int_equal(rq.size, 8);
	assert_int_equal(rq.n_additional, 0);
	assert_int_equal(rq.n_ext_mandatory, 3);
	assert_string_equal(rq.ext_mandatory[0], "a");
	assert_string_equal(rq.ext_mandatory[1], "b");
	assert_string_equal(rq.ext_mandatory[2], "");
	assert_int_equal(request("{\"size\":524288}"), 0);
	assert_int_equal(rq.size, E14_MAX_KEY_BITS);
	assert_int_equal(rq.number, 0);
}

static void test_key_request_limits(void **state)
{
	char body[4096], want[256];
	size_t n, i;
	char *t;

	/* E14_MAX_SAE_IDS additional IDs, then one more */
	n = snprintf(body, sizeof(body), "{\"additional_slave_SAE_IDs\":[");
	for (i = 0; i < E14_MAX_SAE_IDS; i++)
		n += snprintf(body + n, sizeof(body) - n, "%s\"sae-%zu\"", i ? "," : "", i);
	snprintf(body + n, sizeof(body) - n, "]}");
	assert_int_equal(request(body), 0);
	assert_int_equal(rq.n_additional, E14_MAX_SAE_IDS);
	assert_string_equal(rq.additional[E14_MAX_SAE_IDS - 1], "sae-15");
	snprintf(body + n, sizeof(body) - n, ",\"x\"]}");
	assert_int_equal(request(body), -1);
	assert_string_equal(err, "additional_slave_SAE_IDs: 17 IDs, at most 16");

	/* extension_mandatory names: all counted, the first E14_MAX_EXT kept and formatted */
	n = snprintf(body, sizeof(body), "{\"extension_mandatory\":[{\"n0\":0");
	for (i = 1; i < 20; i++)
		n += snprintf(body + n, sizeof(body) - n, i % 3 ? ",\"n%zu\":0" : "},{\"n%zu\":0",
			      i);
	snprintf(body + n, sizeof(body) - n, "}]}");
	assert_int_equal(request(body), 0);
	assert_int_equal(rq.n_ext_mandatory, 20);
	for (i = 0; i < E14_MAX_EXT; i++) {
		snprintf(want, sizeof(want), "n%zu", i);
		assert_string_equal(rq.ext_mandatory[i], want);
	}
	t = e14_format_key_request(&rq, &n);
	assert_non_null(t);
	assert_int_equal(request(t), 0);
	assert_int_equal(rq.n_ext_mandatory, E14_MAX_EXT);
	assert_string_equal(rq.ext_mandatory[E14_MAX_EXT - 1], "n15");
	e14_text_free(t);

	/* a member name of E14_ID_MAX bytes is kept, one more is refused */
	snprintf(body, sizeof(body), "{\"extension_mandatory\":[{\"%0*d\":1}]}", E14_ID_MAX, 0);
	assert_int_equal(request(body), 0);
	assert_int_equal(strlen(rq.ext_mandatory[0]), E14_ID_MAX);
	snprintf(body, sizeof(body), "{\"extension_mandatory\":[{},{\"%0*d\":1}]}",
		 E14_ID_MAX + 1, 0);
	assert_int_equal(request(body), -1);
	snprintf(want, sizeof(want), "extension_mandatory[1]: member name longer than 127 bytes:"
		 " \"%032d\"...", 0);
	assert_string_equal(err, want);
	assert_int_equal(rq.n_ext_mandatory, 0);
}

static void test_key_request_errors(void **state)
{
	static const struct bad cases[] = {
		{ "{\"number\":0}", "number: 0 is out of range 1..1024" },
		{ "{\"number\":-1}", "number: -1 is out of range 1..1024" },
		{ "{\"number\":1025}", "number: 1025 is out of range 1..1024" },
		{ "{\"number\":9223372036854775807}",
		  "number: 9223372036854775807 is out of range 1..1024" },
		{ "{\"number\":-9223372036854775808}",
		  "number: -9223372036854775808 is out of range 1..1024" },
		{ "{\"number\":\"3\"}", "number: not an integer" },
		{ "{\"number\":3.0}", "number: not an integer" },
		{ "{\"number\":null}", "number: not an integer" },
		{ "{\"number\":false}", "number: not an integer" },
		{ "{\"size\":0}", "size: 0 is out of range 8..524288" },
		{ "{\"size\":-8}", "size: -8 is out of range 8..524288" },
		{ "{\"size\":4}", "size: 4 is out of range 8..524288" },
		{ "{\"size\":524296}", "size: 524296 is out of range 8..524288" },
		{ "{\"size\":1001}", "size: 1001 is not a multiple of 8" },
		{ "{\"size\":1024.5}", "size: not an integer" },
		{ "{\"size\":[1024]}", "size: not an integer" },
		{ "{\"number\":1,\"size\":12}", "size: 12 is not a multiple of 8" },
		{ "{\"additional_slave_SAE_IDs\":\"ABC\"}",
		  "additional_slave_SAE_IDs: not an array" },
		{ "{\"additional_slave_SAE_IDs\":{}}", "additional_slave_SAE_IDs: not an array" },
		{ "{\"additional_slave_SAE_IDs\":null}", "additional_slave_SAE_IDs: not an array" },
		{ "{\"additional_slave_SAE_IDs\":[\"A\",1]}",
		  "additional_slave_SAE_IDs[1]: not a string" },
		{ "{\"additional_slave_SAE_IDs\":[[\"A\"]]}",
		  "additional_slave_SAE_IDs[0]: not a string" },
		{ "{\"additional_slave_SAE_IDs\":[\"\"]}",
		  "additional_slave_SAE_IDs[0]: not a valid ID: \"\"" },
		{ "{\"additional_slave_SAE_IDs\":[\"A\",\"B\",\"x?y=1\"]}",
		  "additional_slave_SAE_IDs[2]: not a valid ID: \"x?y=1\"" },
		{ "{\"additional_slave_SAE_IDs\":[\"has space\"]}",
		  "additional_slave_SAE_IDs[0]: not a valid ID: \"has space\"" },
		{ "{\"extension_mandatory\":{\"a\":1}}", "extension_mandatory: not an array" },
		{ "{\"extension_mandatory\":[{\"a\":1},\"b\"]}",
		  "extension_mandatory[1]: not an object" },
		{ "{\"extension_mandatory\":[[]]}", "extension_mandatory[0]: not an object" },
		{ "{\"extension_mandatory\":[null]}", "extension_mandatory[0]: not an object" },
		{ "{\"extension_optional\":{}}", "extension_optional: not an array" },
		{ "{\"extension_optional\":[{},1]}", "extension_optional[1]: not an object" },
		{ "{\"extension_mandatory\":[{\"a\":1,\"a\":2}]}",
		  "body is not JSON: duplicate object key near '\"a\"' at line 1 column 34" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%zu: %s\n", i, cases[i].json);
		memset(&rq, 0xa5, sizeof(rq));
		assert_int_equal(request(cases[i].json), -1);
		assert_string_equal(err, cases[i].msg);
		assert_int_equal(rq.number, 0);
		assert_int_equal(rq.n_additional, 0);
	}
}

static void test_key_request_format_rejects(void **state)
{
	struct e14_key_request r;
	size_t len;

	memset(&r, 0, sizeof(r));
	r.number = E14_MAX_KEYS + 1;
	assert_null(e14_format_key_request(&r, &len));
	r.number = 1;
	r.size = 12;
	assert_null(e14_format_key_request(&r, &len));
	r.size = E14_MAX_KEY_BITS + 8;
	assert_null(e14_format_key_request(&r, &len));
	r.size = 256;
	r.n_additional = E14_MAX_SAE_IDS + 1;
	assert_null(e14_format_key_request(&r, &len));
	r.n_additional = 1;
	strcpy(r.additional[0], "a/b");
	assert_null(e14_format_key_request(&r, &len));
	strcpy(r.additional[0], "B");
	r.n_ext_mandatory = 1;
	strcpy(r.ext_mandatory[0], "\xff");	/* not UTF-8 */
	assert_null(e14_format_key_request(&r, &len));
	strcpy(r.ext_mandatory[0], "x");
	{
		char *t = e14_format_key_request(&r, &len);

		assert_string_equal(t, "{\"number\":1,\"size\":256,\"additional_slave_SAE_IDs\":"
				    "[\"B\"],\"extension_mandatory\":[{\"x\":null}]}");
		e14_text_free(t);
	}
}

/* ---- Key container ---- */

static void test_key_container(void **state)
{
	struct e14_key keys[2];
	size_t len;
	char *t;

	assert_int_equal(container(container_example, E14_MAX_KEYS), 0);
	assert_int_equal(kc.n, 2);
	assert_string_equal(kc.keys[0].key_id, UUID1);
	assert_int_equal(kc.keys[0].len, 32);
	assert_memory_equal(kc.keys[0].key, KEY1_BYTES, 32);
	assert_string_equal(kc.keys[1].key_id, UUID2);
	assert_int_equal(kc.keys[1].len, 32);
	assert_memory_equal(kc.keys[1].key, KEY2_BYTES, 32);

	/* formatting gives back the standard's text, byte for byte */
	t = e14_format_key_container(kc.keys, kc.n, &len);
	assert_non_null(t);
	assert_string_equal(t, container_example);
	assert_int_equal(len, strlen(container_example));
	e14_text_free(t);

	memcpy(keys[0].key_id, UUID2, sizeof(keys[0].key_id));
	keys[0].key = (uint8_t *)KEY2_BYTES;
	keys[0].len = 32;
	t = e14_format_key_container(keys, 1, NULL);
	assert_string_equal(t, "{\"keys\":[{\"key_ID\":\"" UUID2 "\",\"key\":\"" KEY2 "\"}]}");
	e14_text_free(t);

	/* extensions, upper-case key_IDs, unknown members; max_keys exact */
	assert_int_equal(container("{\"keys\":[{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139"
				   "\",\"key_ID_extension\":{\"a\":1},\"key\":\"AA==\","
				   "\"key_extension\":{}},{\"key\":\"AAA=\",\"key_ID\":\"" UUID2
				   "\",\"x\":1}],\"key_container_extension\":{\"y\":[]},\"z\":0}",
				   2), 0);
	assert_int_equal(kc.n, 2);
	assert_string_equal(kc.keys[0].key_id, "BC490419-7D60-487F-ADC1-4DDCC177C139");
	assert_int_equal(kc.keys[0].len, 1);
	assert_int_equal(kc.keys[0].key[0], 0);
	assert_int_equal(kc.keys[1].len, 2);
	assert_memory_equal(kc.keys[1].key, "\0\0", 2);
	e14_key_container_free(&kc);
	assert_int_equal(kc.n, 0);
	assert_null(kc.keys);
}

/* Keys of 1..40 bytes: exact base64 text length and padding, and exact decoded length. */
static void test_base64_lengths(void **state)
{
	uint8_t bytes[40];
	struct e14_key k;
	size_t len, n, i;
	const char *b, *e;
	char *t;

	memcpy(k.key_id, UUID1, sizeof(k.key_id));
	k.key = bytes;
	for (n = 1; n <= sizeof(bytes); n++) {
		for (i = 0; i < n; i++)
			bytes[i] = (uint8_t)(0xff - i * 7 - n);
		k.len = n;
		t = e14_format_key_container(&k, 1, &len);
		assert_non_null(t);
		b = strstr(t, "\"key\":\"") + 7;
		e = strchr(b, '"');
		assert_int_equal(e - b, (n + 2) / 3 * 4);
		assert_int_equal(e[-1] == '=', n % 3 != 0);
		assert_int_equal(e[-2] == '=', n % 3 == 1);
		assert_int_equal(container(t, 1), 0);
		assert_int_equal(kc.n, 1);
		assert_int_equal(kc.keys[0].len, n);
		assert_memory_equal(kc.keys[0].key, bytes, n);
		e14_text_free(t);
	}
	/* all-zero and all-one bytes */
	memset(bytes, 0, sizeof(bytes));
	k.len = 5;
	t = e14_format_key_container(&k, 1, &len);
	assert_non_null(strstr(t, "\"AAAAAAA=\""));
	e14_text_free(t);
	memset(bytes, 0xff, sizeof(bytes));
	k.len = 4;
	t = e14_format_key_container(&k, 1, &len);
	assert_non_null(strstr(t, "\"/////w==\""));
	assert_int_equal(container(t, 1), 0);
	assert_memory_equal(kc.keys[0].key, "\xff\xff\xff\xff", 4);
	e14_text_free(t);
}

/* The largest key, and one byte more. */
static void test_key_max(void **state)
{
	size_t max = E14_MAX_KEY_BITS / 8, len;
	uint8_t *bytes = malloc(max + 1);
	struct e14_key k;
	char *t, *b;

	assert_non_null(bytes);
	for (size_t i = 0; i <= max; i++)
		bytes[i] = (uint8_t)(i * 31);
	memcpy(k.key_id, UUID1, sizeof(k.key_id));
	k.key = bytes;
	k.len = max;
	t = e14_format_key_container(&k, 1, &len);
	assert_non_null(t);
	assert_int_equal(container(t, 1), 0);
	assert_int_equal(kc.keys[0].len, max);
	assert_memory_equal(kc.keys[0].key, bytes, max);
	e14_text_free(t);
	k.len = max + 1;
	assert_null(e14_format_key_container(&k, 1, &len));

	/* 65537 bytes of base64 by hand: 87384 characters for 65538 bytes, less one '=' */
	b = malloc(87384 + 128);
	assert_non_null(b);
	strcpy(b, "{\"keys\":[{\"key_ID\":\"" UUID1 "\",\"key\":\"");
	len = strlen(b);
	memset(b + len, 'A', 87384);
	strcpy(b + len + 87383, "=\"}]}");
	assert_int_equal(container(b, 1), -1);
	assert_string_equal(err, "keys[0].key: longer than 65536 bytes");
	free(b);
	free(bytes);
}

static void test_key_container_errors(void **state)
{
#define K(id, key) "{\"key_ID\":\"" id "\",\"key\":" key "}"
#define C(list) "{\"keys\":[" list "]}"
	static const struct bad cases[] = {
		{ "{}", "keys: missing" },
		{ "{\"key\":[]}", "keys: missing" },
		{ "{\"keys\":{}}", "keys: not an array" },
		{ "{\"keys\":null}", "keys: not an array" },
		{ "{\"keys\":\"" KEY1 "\"}", "keys: not an array" },
		{ C(), "keys: empty array" },
		{ C(K(UUID1, "\"AA==\"") "," K(UUID2, "\"AA==\"") "," K(UUID1, "\"AA==\"")),
		  "keys: 3 elements, at most 2" },
		{ C(K(UUID1, "\"AA==\"") "," "\"x\""), "keys[1]: not an object" },
		{ C("[]"), "keys[0]: not an object" },
		{ C("null"), "keys[0]: not an object" },
		{ C("{\"key\":\"AA==\"}"), "keys[0].key_ID: missing" },
		{ C("{\"key_ID\":1,\"key\":\"AA==\"}"), "keys[0].key_ID: not a string" },
		{ C("{\"key_ID\":null,\"key\":\"AA==\"}"), "keys[0].key_ID: not a string" },
		{ C(K("bc490419-7d60-487f-adc1-4ddcc177c13", "\"AA==\"")),
		  "keys[0].key_ID: not a UUID: \"bc490419-7d60-487f-adc1-4ddcc177\"..." },
		{ C(K("xyz", "\"AA==\"")), "keys[0].key_ID: not a UUID: \"xyz\"" },
		{ C(K("", "\"AA==\"")), "keys[0].key_ID: not a UUID: \"\"" },
		{ C(K(UUID1, "\"AA==\"") "," K(UUID1, "\"AA==\"")),
		  "keys[1].key_ID: same as keys[0].key_ID" },
		{ C(K(UUID1, "\"AA==\"") ","
		    K("BC490419-7D60-487F-ADC1-4DDCC177C139", "\"AA==\"")),
		  "keys[1].key_ID: same as keys[0].key_ID" },
		{ C("{\"key_ID\":\"" UUID1 "\",\"key_ID_extension\":[],\"key\":\"AA==\"}"),
		  "keys[0].key_ID_extension: not an object" },
		{ C(K(UUID1, "\"AA==\"") "," "{\"key_ID\":\"" UUID2 "\"}"),
		  "keys[1].key: missing" },
		{ C(K(UUID1, "1")), "keys[0].key: not a string" },
		{ C(K(UUID1, "[\"AA==\"]")), "keys[0].key: not a string" },
		{ C(K(UUID1, "\"\"")), "keys[0].key: empty" },
		{ C(K(UUID1, "\"A\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA\"")), "keys[0].key: not valid base64" },		/* no pad */
		{ C(K(UUID1, "\"AAA\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA=\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA===\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"A===\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"====\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"=AAA\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"A=AA\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA=A\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA==AAAA\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AAAA====\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AB==\"")), "keys[0].key: not valid base64" },	/* bits left */
		{ C(K(UUID1, "\"AAB=\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\" AA==\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA== \"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AAAA\\nAAAA\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"AA-_\"")), "keys[0].key: not valid base64" },	/* base64url */
		{ C(K(UUID1, "\"AA.A\"")), "keys[0].key: not valid base64" },
		{ C(K(UUID1, "\"\\u00e9AAA\"")), "keys[0].key: not valid base64" },
		{ C("{\"key_ID\":\"" UUID1 "\",\"key\":\"AA==\",\"key_extension\":1}"),
		  "keys[0].key_extension: not an object" },
		{ "{\"keys\":[" K(UUID1, "\"AA==\"") "],\"key_container_extension\":[]}",
		  "key_container_extension: not an object" },
		{ "{\"keys\":[" K(UUID1, "\"AA==\"") "],\"key_container_extension\":\"x\"}",
		  "key_container_extension: not an object" },
		/* no key text in a JSON error message, however short */
		{ C(K(UUID1, "\"AB\x01\"")),
		  "body is not JSON: control character 0x1 at line 1 column 67" },
		{ C(K(UUID1, "\"AA==\"") ",") "x",
		  "body is not JSON: unexpected token at line 1 column 73" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%zu: %s\n", i, cases[i].json);
		assert_int_equal(container(cases[i].json, 2), -1);
		assert_string_equal(err, cases[i].msg);
		assert_int_equal(kc.n, 0);
		assert_null(kc.keys);
	}
	/* max_keys 0 takes nothing; above E14_MAX_KEYS it is E14_MAX_KEYS */
	assert_int_equal(container(C(K(UUID1, "\"AA==\"")), 0), -1);
	assert_string_equal(err, "keys: 1 elements, at most 0");
#undef C
#undef K
}

static void test_key_container_many(void **state)
{
	size_t n = E14_MAX_KEYS + 1, i, len;
	struct e14_key *keys = calloc(n, sizeof(*keys));
	uint8_t byte = 7;
	char *t;

	assert_non_null(keys);
	for (i = 0; i < n; i++) {
		assert_int_equal(e14_uuid_generate(keys[i].key_id), 0);
		keys[i].key = &byte;
		keys[i].len = 1;
	}
	assert_null(e14_format_key_container(keys, n, &len));
	assert_null(e14_format_key_container(keys, 0, &len));
	assert_null(e14_format_key_container(NULL, 1, &len));
	t = e14_format_key_container(keys, E14_MAX_KEYS, &len);
	assert_non_null(t);
	assert_int_equal(container(t, SIZE_MAX), 0);
	assert_int_equal(kc.n, E14_MAX_KEYS);
	for (i = 0; i < kc.n; i++) {
		assert_string_equal(kc.keys[i].key_id, keys[i].key_id);
		assert_int_equal(kc.keys[i].len, 1);
		assert_int_equal(kc.keys[i].key[0], 7);
	}
	assert_int_equal(container(t, E14_MAX_KEYS - 1), -1);
	assert_string_equal(err, "keys: 1024 elements, at most 1023");
	e14_text_free(t);

	/* what the formatter will not write */
	keys[1].len = 0;
	assert_null(e14_format_key_container(keys, 2, &len));
	keys[1].len = 1;
	keys[1].key = NULL;
	assert_null(e14_format_key_container(keys, 2, &len));
	keys[1].key = &byte;
	keys[1].key_id[0] = 'g';
	assert_null(e14_format_key_container(keys, 2, &len));
	free(keys);
}

/* ---- Key IDs ---- */

static void test_key_ids(void **state)
{
	static const char ex[] = "{\n  \"key_IDs\": [\n    {\n      \"key_ID\": \"" UUID1 "\"\n"
		"    },\n    {\n      \"key_ID\": \"" UUID2 "\",\n"
		"      \"key_ID_extension\": {\"x\": 1}\n    }\n  ],\n"
		"  \"key_IDs_extension\": {}\n}\n";
	static const char ids[2][E14_UUID_LEN + 1] = { UUID1, UUID2 };
	size_t len;
	char *t;

	assert_int_equal(key_ids(ex, 2), 0);
	assert_int_equal(ki.n, 2);
	assert_string_equal(ki.ids[0], UUID1);
	assert_string_equal(ki.ids[1], UUID2);
	t = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])ki.ids, ki.n, &len);
	assert_non_null(t);
	assert_string_equal(t, "{\"key_IDs\":[{\"key_ID\":\"" UUID1 "\"},{\"key_ID\":\"" UUID2
			    "\"}]}");
	assert_int_equal(len, strlen(t));
	assert_int_equal(key_ids(t, 2), 0);
	assert_int_equal(ki.n, 2);
	assert_memory_equal(ki.ids, ids, sizeof(ids));
	e14_text_free(t);

	t = e14_format_key_ids(ids, 1, NULL);
	assert_string_equal(t, "{\"key_IDs\":[{\"key_ID\":\"" UUID1 "\"}]}");
	e14_text_free(t);

	assert_null(e14_format_key_ids(ids, 0, &len));
	assert_null(e14_format_key_ids(NULL, 1, &len));
	{
		static const char bad[1][E14_UUID_LEN + 1] = {
			"bc490419-7d60-487f-adc1+4ddcc177c139"
		};

		assert_null(e14_format_key_ids(bad, 1, &len));
	}
	e14_key_ids_free(&ki);
	assert_int_equal(ki.n, 0);
	assert_null(ki.ids);
}

static void test_key_ids_many(void **state)
{
	size_t n = E14_MAX_KEYS + 1, i, len;
	char (*ids)[E14_UUID_LEN + 1] = calloc(n, sizeof(*ids));
	char *t;

	assert_non_null(ids);
	for (i = 0; i < n; i++)
		assert_int_equal(e14_uuid_generate(ids[i]), 0);
	assert_null(e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])ids, n, &len));
	t = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])ids, n - 1, &len);
	assert_non_null(t);
	assert_int_equal(key_ids(t, SIZE_MAX), 0);
	assert_int_equal(ki.n, E14_MAX_KEYS);
	assert_memory_equal(ki.ids, ids, E14_MAX_KEYS * sizeof(*ids));
	assert_int_equal(key_ids(t, 5), -1);
	assert_string_equal(err, "key_IDs: 1024 elements, at most 5");
	e14_text_free(t);

	/* the last one repeats the 700th, in upper case */
	for (i = 0; i < E14_UUID_LEN; i++)
		ids[E14_MAX_KEYS - 1][i] = ids[700][i] >= 'a' ? ids[700][i] - 32 : ids[700][i];
	t = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])ids, n - 1, &len);
	assert_int_equal(key_ids(t, E14_MAX_KEYS), -1);
	assert_string_equal(err, "key_IDs[1023].key_ID: same as key_IDs[700].key_ID");
	e14_text_free(t);
	free(ids);
}

static void test_key_ids_errors(void **state)
{
#define I(id) "{\"key_ID\":\"" id "\"}"
#define L(list) "{\"key_IDs\":[" list "]}"
	static const struct bad cases[] = {
		{ "{}", "key_IDs: missing" },
		{ "{\"key_ID\":\"" UUID1 "\"}", "key_IDs: missing" },
		{ "{\"key_IDs\":{}}", "key_IDs: not an array" },
		{ "{\"key_IDs\":\"" UUID1 "\"}", "key_IDs: not an array" },
		{ L(), "key_IDs: empty array" },
		{ L(I(UUID1) "," I(UUID2) "," I("00000000-0000-0000-0000-000000000000")),
		  "key_IDs: 3 elements, at most 2" },
		{ L("\"" UUID1 "\""), "key_IDs[0]: not an object" },
		{ L(I(UUID1) "," "[]"), "key_IDs[1]: not an object" },
		{ L("{}"), "key_IDs[0].key_ID: missing" },
		{ L("{\"key_id\":\"" UUID1 "\"}"), "key_IDs[0].key_ID: missing" },
		{ L("{\"key_ID\":7}"), "key_IDs[0].key_ID: not a string" },
		{ L("{\"key_ID\":{}}"), "key_IDs[0].key_ID: not a string" },
		{ L(I(UUID1) "," I("not-a-uuid")),
		  "key_IDs[1].key_ID: not a UUID: \"not-a-uuid\"" },
		{ L(I("bc490419-7d60-487f-adc1-4ddcc177c139\\n")),
		  "key_IDs[0].key_ID: not a UUID: \"bc490419-7d60-487f-adc1-4ddcc177\"..." },
		{ L(I("\\\"\\\\\\u0001")), "key_IDs[0].key_ID: not a UUID: \"\\x22\\x5c\\x01\"" },
		{ L(I(UUID2) "," I(UUID2)), "key_IDs[1].key_ID: same as key_IDs[0].key_ID" },
		{ L("{\"key_ID\":\"" UUID1 "\",\"key_ID_extension\":\"x\"}"),
		  "key_IDs[0].key_ID_extension: not an object" },
		{ "{\"key_IDs\":[" I(UUID1) "],\"key_IDs_extension\":[{}]}",
		  "key_IDs_extension: not an object" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%zu: %s\n", i, cases[i].json);
		assert_int_equal(key_ids(cases[i].json, 2), -1);
		assert_string_equal(err, cases[i].msg);
		assert_int_equal(ki.n, 0);
		assert_null(ki.ids);
	}
	/* the same UUID in another case is the same key */
	assert_int_equal(key_ids(L(I(UUID2) "," I("0A782FB5-3434-48FE-AA4D-14F41D46CF92")), 2), -1);
	assert_string_equal(err, "key_IDs[1].key_ID: same as key_IDs[0].key_ID");
	/* the first repeat in order is named, with its first occurrence */
	assert_int_equal(key_ids(L(I(UUID1) "," I(UUID2) "," I(UUID2) "," I(UUID1)), 4), -1);
	assert_string_equal(err, "key_IDs[2].key_ID: same as key_IDs[1].key_ID");
	assert_int_equal(key_ids(L(I(UUID1) "," I(UUID2) "," I(UUID1) "," I(UUID1)), 4), -1);
	assert_string_equal(err, "key_IDs[2].key_ID: same as key_IDs[0].key_ID");
	assert_int_equal(key_ids(L(I(UUID1)), 0), -1);
	assert_string_equal(err, "key_IDs: 1 elements, at most 0");
#undef I
#undef L
}

/* ---- Error ---- */

static void test_error_parse(void **state)
{
	static const char ex[] = "{\n  \"message\": \"not all extension_mandatory parameters are "
		"supported\",\n  \"details\": [\n    {\"extension_mandatory_unsupported\": "
		"\"abc_route_type\"},\n    {\"extension_mandatory_unsupported\": "
		"\"abc_transfer_method\"}\n  ]\n}\n";
	static const struct bad cases[] = {
		{ "{}", "message: missing" },
		{ "{\"details\":[]}", "message: missing" },
		{ "{\"message\":1}", "message: not a string" },
		{ "{\"message\":null}", "message: not a string" },
		{ "{\"message\":[\"x\"]}", "message: not a string" },
		{ "{\"message\":\"x\",\"details\":{}}", "details: not an array" },
		{ "{\"message\":\"x\",\"details\":\"y\"}", "details: not an array" },
		{ "{\"message\":\"x\",\"details\":[{},\"y\"]}", "details[1]: not an object" },
	};
	char msg[64];
	size_t i;

	assert_int_equal(e14_parse_error(ex, strlen(ex), msg, sizeof(msg)), 0);
	assert_string_equal(msg, "not all extension_mandatory parameters are supported");
	assert_int_equal(e14_parse_error("{\"message\":\"\",\"details\":[]}", 27, msg, sizeof(msg)),
			 0);
	assert_string_equal(msg, "");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%zu: %s\n", i, cases[i].json);
		assert_int_equal(e14_parse_error(cases[i].json, strlen(cases[i].json), msg,
						 sizeof(msg)), -1);
		assert_string_equal(msg, cases[i].msg);
	}
	/* cut at msglen, on a UTF-8 character boundary; control characters become '?' */
	assert_int_equal(e14_parse_error("{\"message\":\"abc\\u00e9\"}", 23, msg, 5), 0);
	assert_string_equal(msg, "abc");
	assert_int_equal(e14_parse_error("{\"message\":\"abc\\u00e9\"}", 23, msg, 6), 0);
	assert_string_equal(msg, "abc\xc3\xa9");
	assert_int_equal(e14_parse_error("{\"message\":\"ab\\u20ac\"}", 22, msg, 5), 0);
	assert_string_equal(msg, "ab");
	assert_int_equal(e14_parse_error("{\"message\":\"a\\nb\\u007f\\tc\"}", 27, msg,
					 sizeof(msg)), 0);
	assert_string_equal(msg, "a?b??c");
	assert_int_equal(e14_parse_error("{\"message\":\"abcdef\"}", 20, msg, 1), 0);
	assert_string_equal(msg, "");
	msg[0] = 'x';
	assert_int_equal(e14_parse_error("{\"message\":\"abcdef\"}", 20, msg, 0), 0);
	assert_int_equal(msg[0], 'x');
	assert_int_equal(e14_parse_error("{\"message\":\"abcdef\"}", 20, NULL, 0), 0);
	assert_int_equal(e14_parse_error("{}", 2, NULL, 0), -1);
}

static void test_error_format(void **state)
{
	static const char *const names[] = { "abc_route_type", "abc_transfer_method" };
	char msg[128];
	size_t len;
	char *t;

	t = e14_format_error("not all extension_mandatory parameters are supported",
			     "extension_mandatory_unsupported", names, 2, &len);
	assert_string_equal(t, "{\"message\":\"not all extension_mandatory parameters are "
			    "supported\",\"details\":[{\"extension_mandatory_unsupported\":"
			    "\"abc_route_type\"},{\"extension_mandatory_unsupported\":"
			    "\"abc_transfer_method\"}]}");
	assert_int_equal(len, strlen(t));
	assert_int_equal(e14_parse_error(t, len, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "not all extension_mandatory parameters are supported");
	e14_text_free(t);

	t = e14_format_error("number: 0 is out of range 1..1024", NULL, NULL, 0, &len);
	assert_string_equal(t, "{\"message\":\"number: 0 is out of range 1..1024\"}");
	e14_text_free(t);

	/* escaping, and bytes that are not UTF-8 */
	t = e14_format_error("a \"q\" \\ \n \xc3\xa9", "d", names, 1, NULL);
	assert_string_equal(t, "{\"message\":\"a \\\"q\\\" \\\\ \\n \xc3\xa9\",\"details\":"
			    "[{\"d\":\"abc_route_type\"}]}");
	e14_text_free(t);
	{
		static const char *const bad[] = { "x\xff", "\xc3" };

		t = e14_format_error("bad \xc3\x28", "d", bad, 2, NULL);
		assert_string_equal(t, "{\"message\":\"bad ?(\",\"details\":[{\"d\":\"x?\"},"
				    "{\"d\":\"?\"}]}");
		e14_text_free(t);
	}
	t = e14_format_error(NULL, NULL, NULL, 0, NULL);
	assert_string_equal(t, "{\"message\":\"\"}");
	e14_text_free(t);
	assert_null(e14_format_error("m", NULL, names, 1, NULL));
	assert_null(e14_format_error("m", "d", NULL, 1, NULL));
	assert_null(e14_format_error("m", "\xff", names, 1, NULL));
	e14_text_free(NULL);
}

static void test_free_zeroed(void **state)
{
	struct e14_key_container c;
	struct e14_key_ids k;

	memset(&c, 0, sizeof(c));
	memset(&k, 0, sizeof(k));
	e14_key_container_free(&c);
	e14_key_ids_free(&k);
	e14_key_container_free(&c);
	e14_key_ids_free(&k);
	assert_int_equal(c.n, 0);
	assert_null(c.keys);
	assert_int_equal(k.n, 0);
	assert_null(k.ids);
}

static int teardown(void **state)
{
	e14_key_container_free(&kc);
	e14_key_ids_free(&ki);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_uuid_valid),
		cmocka_unit_test(test_uuid_generate),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_status_errors),
		cmocka_unit_test(test_key_request),
		cmocka_unit_test(test_key_request_limits),
		cmocka_unit_test(test_key_request_errors),
		cmocka_unit_test(test_key_request_format_rejects),
		cmocka_unit_test(test_key_container),
		cmocka_unit_test(test_base64_lengths),
		cmocka_unit_test(test_key_max),
		cmocka_unit_test(test_key_container_errors),
		cmocka_unit_test(test_key_container_many),
		cmocka_unit_test(test_key_ids),
		cmocka_unit_test(test_key_ids_many),
		cmocka_unit_test(test_key_ids_errors),
		cmocka_unit_test(test_error_parse),
		cmocka_unit_test(test_error_format),
		cmocka_unit_test(test_free_zeroed),
	};

	e14_init();
	return cmocka_run_group_tests(tests, NULL, teardown);
}
