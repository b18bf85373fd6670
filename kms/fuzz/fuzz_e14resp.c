// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the ETSI 014 parsers an SAE runs on what a KME answers (Status, Key
 * container, Error). What they accept must format and parse back to the same; what they
 * refuse must come with a one-line printable reason.
 */
#include <stdlib.h>
#include <string.h>

#include "etsi014.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, int empty_ok)
{
	size_t i;

	if (!s[0] && !empty_ok)
		abort();
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void status(const char *json, size_t size)
{
	static struct e14_status s, s2;
	char err[256] = "";
	size_t len;
	char *t;

	if (e14_parse_status(json, size, &s, err, sizeof(err))) {
		check_text(err, 0);
		return;
	}
	t = e14_format_status(&s, &len);
	if (!t || e14_parse_status(t, len, &s2, err, sizeof(err)) || memcmp(&s, &s2, sizeof(s)))
		abort();
	e14_text_free(t);
}

static void key_container(const char *json, size_t size)
{
	struct e14_key_container c = { 0 }, c2 = { 0 };
	char err[256] = "";
	size_t len, i;
	char *t;

	if (e14_parse_key_container(json, size, E14_MAX_KEYS, &c, err, sizeof(err))) {
		check_text(err, 0);
		if (c.n || c.keys)
			abort();
		return;
	}
	t = e14_format_key_container(c.keys, c.n, &len);
	if (!t || e14_parse_key_container(t, len, c.n, &c2, err, sizeof(err)) || c2.n != c.n)
		abort();
	for (i = 0; i < c.n; i++)
		if (strcmp(c.keys[i].key_id, c2.keys[i].key_id) || c.keys[i].len != c2.keys[i].len ||
		    memcmp(c.keys[i].key, c2.keys[i].key, c.keys[i].len))
			abort();
	e14_text_free(t);
	e14_key_container_free(&c);
	e14_key_container_free(&c2);
}

static void error(const char *json, size_t size)
{
	char msg[256], msg2[256];
	size_t len;
	char *t;

	if (e14_parse_error(json, size, msg, sizeof(msg))) {
		check_text(msg, 0);
		return;
	}
	check_text(msg, 1);
	t = e14_format_error(msg, NULL, NULL, 0, &len);
	if (!t || e14_parse_error(t, len, msg2, sizeof(msg2)) || strcmp(msg, msg2))
		abort();
	e14_text_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;

	if (!init) {
		e14_init();
		init = 1;
	}
	status((const char *)data, size);
	key_container((const char *)data, size);
	error((const char *)data, size);
	return 0;
}
