// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the ETSI 014 parsers a KME runs on what SAEs send (Key request, Key IDs).
 * What they accept must format and parse back to the same; what they refuse must come with a
 * one-line printable reason; the Error a KME answers with must parse back.
 */
#include <stdlib.h>
#include <string.h>

#include "etsi014.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err)
{
	size_t i;

	if (!err[0])
		abort();
	for (i = 0; err[i]; i++)
		if (err[i] < 0x20 || err[i] > 0x7e)
			abort();
}

/* The 400 answer to a request asking for extensions we lack, and its parse. */
static void unsupported(const struct e14_key_request *r)
{
	const char *names[E14_MAX_EXT];
	char msg[128];
	size_t i, n = r->n_ext_mandatory < E14_MAX_EXT ? r->n_ext_mandatory : E14_MAX_EXT, len;
	char *t;

	for (i = 0; i < n; i++)
		names[i] = r->ext_mandatory[i];
	t = e14_format_error("not all extension_mandatory parameters are supported",
			     "extension_mandatory_unsupported", names, n, &len);
	if (!t || e14_parse_error(t, len, msg, sizeof(msg)) ||
	    strcmp(msg, "not all extension_mandatory parameters are supported"))
		abort();
	e14_text_free(t);
}

static void key_request(const char *json, size_t size)
{
	static struct e14_key_request r, r2;
	char err[256] = "";
	size_t len, i;
	char *t;

	if (e14_parse_key_request(json, size, &r, err, sizeof(err))) {
		check_err(err);
		return;
	}
	t = e14_format_key_request(&r, &len);
	if (!t || e14_parse_key_request(t, len, &r2, err, sizeof(err)))
		abort();
	if (r2.number != r.number || r2.size != r.size || r2.n_additional != r.n_additional ||
	    memcmp(r2.additional, r.additional, sizeof(r.additional)) ||
	    r2.n_ext_mandatory != (r.n_ext_mandatory < E14_MAX_EXT ? r.n_ext_mandatory :
				   E14_MAX_EXT))
		abort();
	for (i = 0; i < r2.n_ext_mandatory; i++)
		if (strcmp(r2.ext_mandatory[i], r.ext_mandatory[i]))
			abort();
	e14_text_free(t);
	if (r.n_ext_mandatory)
		unsupported(&r);
}

static void key_ids(const char *json, size_t size)
{
	struct e14_key_ids k = { 0 }, k2 = { 0 };
	char err[256] = "";
	size_t len;
	char *t;

	if (e14_parse_key_ids(json, size, E14_MAX_KEYS, &k, err, sizeof(err))) {
		check_err(err);
		if (k.n || k.ids)
			abort();
		return;
	}
	t = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])k.ids, k.n, &len);
	if (!t || e14_parse_key_ids(t, len, k.n, &k2, err, sizeof(err)) || k2.n != k.n ||
	    memcmp(k2.ids, k.ids, k.n * sizeof(*k.ids)))
		abort();
	e14_text_free(t);
	e14_key_ids_free(&k);
	e14_key_ids_free(&k2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;

	if (!init) {
		e14_init();
		init = 1;
	}
	key_request((const char *)data, size);
	key_ids((const char *)data, size);
	return 0;
}
