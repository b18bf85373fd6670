// SPDX-License-Identifier: GPL-2.0
/* JSON codec of ETSI GS QKD 014 (see etsi014.h): jansson for JSON, OpenSSL for base64. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "etsi014.h"
#include "wipe.h"

#define KEY_MAX_BYTES (E14_MAX_KEY_BITS / 8)
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

void e14_init(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

/* ---- identifiers ---- */

static int hexdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int e14_uuid_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < E14_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!hexdigit(s[i])) {
			return 0;
		}
	}
	return s[E14_UUID_LEN] == '\0';
}

int e14_uuid_generate(char out[E14_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 10xx (RFC 4122) */
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return 0;
}

int e14_id_valid(const char *s)
{
	size_t i;

	if (!s || !s[0])
		return 0;
	for (i = 0; s[i]; i++) {
		if (i >= E14_ID_MAX || s[i] < 0x21 || s[i] > 0x7e || strchr("/?#%", s[i]))
			return 0;
	}
	return 1;
}

/* ---- error reporting ---- */

/* Writes a one-line reason into err: anything but printable ASCII becomes '?'. */
static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (i = 0; err[i]; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] > 0x7e)
			err[i] = '?';
}

/* A bad value in double quotes for a message: at most 32 bytes of it, escaped to ASCII. */
struct quoted {
	char s[32 * 4 + 8];
};

static const char *quote(struct quoted *q, const char *v)
{
	size_t i, o = 0;

	q->s[o++] = '"';
	for (i = 0; v[i] && i < 32; i++) {
		unsigned char c = v[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			q->s[o++] = c;
		else
			o += snprintf(q->s + o, sizeof(q->s) - o, "\\x%02x", c);
	}
	q->s[o++] = '"';
	if (v[i]) {
		memcpy(q->s + o, "...", 3);
		o += 3;
	}
	q->s[o] = '\0';
	return q->s;
}

/* ---- parsing helpers ---- */

/*
 * The body as a JSON object, or NULL with err set. When secret (the body holds key text),
 * jansson's " near '<token>'" context is left out of the message.
 */
static json_t *load(const char *json, size_t len, int secret, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root;
	char *near;

	if (len > E14_MAX_BODY) {
		seterr(err, errlen, "body too large: %zu bytes, at most %d", len, E14_MAX_BODY);
		return NULL;
	}
	root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root) {
		if (secret && (near = strstr(je.text, " near '")))
			*near = '\0';
		seterr(err, errlen, "body is not JSON: %s at line %d column %d", je.text, je.line,
		       je.column);
		explicit_bzero(&je, sizeof(je));
		return NULL;
	}
	if (!json_is_object(root)) {
		seterr(err, errlen, "body is not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* v (not NULL) is an integer in min..max: 0, or -1 with err set. */
static int int_in(const json_t *v, const char *path, json_int_t min, json_int_t max,
		  json_int_t *out, char *err, size_t errlen)
{
	json_int_t n;

	if (!json_is_integer(v)) {
		seterr(err, errlen, "%s: not an integer", path);
		return -1;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		seterr(err, errlen, "%s: %lld is out of range %lld..%lld", path, (long long)n,
		       (long long)min, (long long)max);
		return -1;
	}
	*out = n;
	return 0;
}

/* A required uint32 member. */
static int get_u32(const json_t *obj, const char *name, uint32_t *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(obj, name);
	json_int_t n;

	if (!v) {
		seterr(err, errlen, "%s: missing", name);
		return -1;
	}
	if (int_in(v, name, 0, UINT32_MAX, &n, err, errlen))
		return -1;
	*out = (uint32_t)n;
	return 0;
}

/* v (not NULL) is a string that e14_id_valid accepts; copied into out. */
static int id_value(const json_t *v, const char *path, char out[E14_ID_MAX + 1], char *err,
		    size_t errlen)
{
	struct quoted q;
	const char *s;

	if (!json_is_string(v)) {
		seterr(err, errlen, "%s: not a string", path);
		return -1;
	}
	s = json_string_value(v);
	if (!e14_id_valid(s)) {
		seterr(err, errlen, "%s: not a valid ID: %s", path, quote(&q, s));
		return -1;
	}
	strcpy(out, s);
	return 0;
}

/* A required ID member. */
static int get_id(const json_t *obj, const char *name, char out[E14_ID_MAX + 1], char *err,
		  size_t errlen)
{
	const json_t *v = json_object_get(obj, name);

	if (!v) {
		seterr(err, errlen, "%s: missing", name);
		return -1;
	}
	return id_value(v, name, out, err, errlen);
}

/* An optional member that must be an object when present. prefix: "" or "keys[2]." */
static int opt_object(const json_t *obj, const char *prefix, const char *name, char *err,
		      size_t errlen)
{
	const json_t *v = json_object_get(obj, name);

	if (v && !json_is_object(v)) {
		seterr(err, errlen, "%s%s: not an object", prefix, name);
		return -1;
	}
	return 0;
}

/*
 * An optional member that must be an array of objects when present (extension_mandatory,
 * extension_optional, details): the array or NULL.
 */
static int opt_object_array(const json_t *obj, const char *name, const json_t **out, char *err,
			    size_t errlen)
{
	const json_t *v = json_object_get(obj, name);
	size_t i;

	*out = v;
	if (!v)
		return 0;
	if (!json_is_array(v)) {
		seterr(err, errlen, "%s: not an array", name);
		return -1;
	}
	for (i = 0; i < json_array_size(v); i++) {
		if (!json_is_object(json_array_get(v, i))) {
			seterr(err, errlen, "%s[%zu]: not an object", name, i);
			return -1;
		}
	}
	return 0;
}

/*
 * The required array member `name' of 1..max elements, each an object (the key container's
 * "keys", Key IDs' "key_IDs"), or NULL with err set.
 */
static const json_t *object_list(const json_t *obj, const char *name, size_t max, char *err,
				 size_t errlen)
{
	const json_t *v = json_object_get(obj, name);
	size_t i, n;

	if (!v) {
		seterr(err, errlen, "%s: missing", name);
		return NULL;
	}
	if (!json_is_array(v)) {
		seterr(err, errlen, "%s: not an array", name);
		return NULL;
	}
	n = json_array_size(v);
	if (n == 0) {
		seterr(err, errlen, "%s: empty array", name);
		return NULL;
	}
	if (n > max) {
		seterr(err, errlen, "%s: %zu elements, at most %zu", name, n, max);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (!json_is_object(json_array_get(v, i))) {
			seterr(err, errlen, "%s[%zu]: not an object", name, i);
			return NULL;
		}
	}
	return v;
}

/* The required UUID member "key_ID" of element i of array `list'. */
static int get_key_id(const json_t *el, const char *list, size_t i, char out[E14_UUID_LEN + 1],
		      char *err, size_t errlen)
{
	const json_t *v = json_object_get(el, "key_ID");
	struct quoted q;

	if (!v) {
		seterr(err, errlen, "%s[%zu].key_ID: missing", list, i);
		return -1;
	}
	if (!json_is_string(v)) {
		seterr(err, errlen, "%s[%zu].key_ID: not a string", list, i);
		return -1;
	}
	if (!e14_uuid_valid(json_string_value(v))) {
		seterr(err, errlen, "%s[%zu].key_ID: not a UUID: %s", list, i,
		       quote(&q, json_string_value(v)));
		return -1;
	}
	memcpy(out, json_string_value(v), E14_UUID_LEN + 1);
	return 0;
}

struct idx {
	const char *id;
	size_t i;
};

static int idx_cmp(const void *a, const void *b)
{
	const struct idx *x = a, *y = b;
	int c = strcasecmp(x->id, y->id);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * UUIDs at ids, stride bytes apart: 1 if two are equal (case-insensitively) with *dup the
 * first index in order that repeats an earlier one, *orig that earlier one; 0 if all
 * differ; -1 if out of memory.
 */
static int find_dup(const char *ids, size_t stride, size_t n, size_t *dup, size_t *orig)
{
	struct idx *t = calloc(n, sizeof(*t));
	size_t i;
	int found = 0;

	if (!t)
		return -1;
	for (i = 0; i < n; i++) {
		t[i].id = ids + i * stride;
		t[i].i = i;
	}
	qsort(t, n, sizeof(*t), idx_cmp);
	for (i = 1; i < n; i++) {
		if (strcasecmp(t[i - 1].id, t[i].id) == 0 && (!found || t[i].i < *dup)) {
			*dup = t[i].i;
			*orig = t[i - 1].i;
			found = 1;
		}
	}
	free(t);
	return found;
}

/* ---- base64 (RFC 4648 clause 4, padded, canonical) ---- */

/* 1 + the value of each base64 character, 0 for any other byte (a table: keys of 32 KiB) */
static const unsigned char b64_tab[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
	['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
	['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
	['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
	['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int b64_val(unsigned char c)
{
	return (int)b64_tab[c] - 1;
}

/* The exact decoded length of canonical base64 text s[0..n), or -1 if it is not that. */
static long b64_len(const char *s, size_t n)
{
	size_t i, pad = 0;

	if (n == 0 || n % 4)
		return -1;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (b64_val(s[i]) < 0)
			return -1;
	/* the bits the padding leaves over must be zero (only one text per key) */
	if (pad == 1 && (b64_val(s[n - 2]) & 0x03))
		return -1;
	if (pad == 2 && (b64_val(s[n - 3]) & 0x0f))
		return -1;
	return (long)(n / 4 * 3 - pad);
}

/*
 * Decodes canonical base64 into a fresh heap block of exactly *len bytes: 0, -1 if it is not
 * valid base64, -2 if it decodes to more than max bytes, -3 if out of memory.
 */
static int b64_decode(const char *s, size_t n, size_t max, uint8_t **out, size_t *len)
{
	long dlen = b64_len(s, n);
	size_t full;
	uint8_t *buf;

	if (dlen < 0)
		return -1;
	if ((size_t)dlen > max)
		return -2;
	full = n / 4 * 3;
	buf = malloc(full);
	if (!buf)
		return -3;
	/* EVP_DecodeBlock decodes each '=' as a zero byte and counts it in its result */
	if (EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) != (int)full) {
		explicit_bzero(buf, full);
		free(buf);
		return -1;
	}
	explicit_bzero(buf + dlen, full - dlen);
	*out = buf;
	*len = dlen;
	return 0;
}

/* ---- parsers ---- */

int e14_parse_status(const char *json, size_t len, struct e14_status *s, char *err,
		     size_t errlen)
{
	json_t *root;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	root = load(json, len, 0, err, errlen);
	if (!root)
		return -1;
	if (get_id(root, "source_KME_ID", s->source_kme_id, err, errlen) ||
	    get_id(root, "target_KME_ID", s->target_kme_id, err, errlen) ||
	    get_id(root, "master_SAE_ID", s->master_sae_id, err, errlen) ||
	    get_id(root, "slave_SAE_ID", s->slave_sae_id, err, errlen) ||
	    get_u32(root, "key_size", &s->key_size, err, errlen) ||
	    get_u32(root, "stored_key_count", &s->stored_key_count, err, errlen) ||
	    get_u32(root, "max_key_count", &s->max_key_count, err, errlen) ||
	    get_u32(root, "max_key_per_request", &s->max_key_per_request, err, errlen) ||
	    get_u32(root, "max_key_size", &s->max_key_size, err, errlen) ||
	    get_u32(root, "min_key_size", &s->min_key_size, err, errlen) ||
	    get_u32(root, "max_SAE_ID_count", &s->max_sae_id_count, err, errlen) ||
	    opt_object(root, "", "status_extension", err, errlen))
		goto out;
	rc = 0;
out:
	json_decref(root);
	if (rc)
		memset(s, 0, sizeof(*s));
	return rc;
}

/* Member names of the objects in extension_mandatory (already checked: objects). */
static int ext_names(const json_t *arr, struct e14_key_request *r, char *err, size_t errlen)
{
	const char *name;
	const json_t *v;
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		json_object_foreach((json_t *)json_array_get(arr, i), name, v) {
			struct quoted q;

			if (strlen(name) > E14_ID_MAX) {
				seterr(err, errlen, "extension_mandatory[%zu]: member name longer "
				       "than %d bytes: %s", i, E14_ID_MAX, quote(&q, name));
				return -1;
			}
			if (r->n_ext_mandatory < E14_MAX_EXT)
				strcpy(r->ext_mandatory[r->n_ext_mandatory], name);
			r->n_ext_mandatory++;
		}
	}
	return 0;
}

int e14_parse_key_request(const char *json, size_t len, struct e14_key_request *r, char *err,
			  size_t errlen)
{
	const json_t *v, *ext;
	json_t *root;
	json_int_t n;
	char path[64];
	size_t i;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	root = load(json, len, 0, err, errlen);
	if (!root)
		return -1;
	v = json_object_get(root, "number");
	if (v) {
		if (int_in(v, "number", 1, E14_MAX_KEYS, &n, err, errlen))
			goto out;
		r->number = (uint32_t)n;
	}
	v = json_object_get(root, "size");
	if (v) {
		if (int_in(v, "size", 8, E14_MAX_KEY_BITS, &n, err, errlen))
			goto out;
		if (n % 8) {
			seterr(err, errlen, "size: %lld is not a multiple of 8", (long long)n);
			goto out;
		}
		r->size = (uint32_t)n;
	}
	v = json_object_get(root, "additional_slave_SAE_IDs");
	if (v) {
		if (!json_is_array(v)) {
			seterr(err, errlen, "additional_slave_SAE_IDs: not an array");
			goto out;
		}
		if (json_array_size(v) > E14_MAX_SAE_IDS) {
			seterr(err, errlen, "additional_slave_SAE_IDs: %zu IDs, at most %d",
			       json_array_size(v), E14_MAX_SAE_IDS);
			goto out;
		}
		for (i = 0; i < json_array_size(v); i++) {
			snprintf(path, sizeof(path), "additional_slave_SAE_IDs[%zu]", i);
			if (id_value(json_array_get(v, i), path, r->additional[i], err, errlen))
				goto out;
		}
		r->n_additional = json_array_size(v);
	}
	if (opt_object_array(root, "extension_mandatory", &ext, err, errlen))
		goto out;
	if (ext && ext_names(ext, r, err, errlen))
		goto out;
	if (opt_object_array(root, "extension_optional", &v, err, errlen))
		goto out;
	rc = 0;
out:
	json_decref(root);
	if (rc)
		memset(r, 0, sizeof(*r));
	return rc;
}

static void keys_wipe(struct e14_key *keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (keys[i].key) {
			explicit_bzero(keys[i].key, keys[i].len);
			free(keys[i].key);
		}
	}
	explicit_bzero(keys, n * sizeof(*keys));
	free(keys);
}

/* Element i of "keys" (an object) into k. */
static int parse_key(const json_t *el, size_t i, struct e14_key *k, char *err, size_t errlen)
{
	char prefix[32];
	const json_t *v;

	snprintf(prefix, sizeof(prefix), "keys[%zu].", i);
	if (get_key_id(el, "keys", i, k->key_id, err, errlen) ||
	    opt_object(el, prefix, "key_ID_extension", err, errlen))
		return -1;
	v = json_object_get(el, "key");
	if (!v) {
		seterr(err, errlen, "keys[%zu].key: missing", i);
		return -1;
	}
	if (!json_is_string(v)) {
		seterr(err, errlen, "keys[%zu].key: not a string", i);
		return -1;
	}
	/* never quote it: it is key text */
	switch (b64_decode(json_string_value(v), json_string_length(v), KEY_MAX_BYTES, &k->key,
			   &k->len)) {
	case 0:
		break;
	case -2:
		seterr(err, errlen, "keys[%zu].key: longer than %d bytes", i, KEY_MAX_BYTES);
		return -1;
	case -3:
		seterr(err, errlen, "keys[%zu].key: out of memory", i);
		return -1;
	default:
		seterr(err, errlen, "keys[%zu].key: %s", i, json_string_length(v) ?
		       "not valid base64" : "empty");
		return -1;
	}
	return opt_object(el, prefix, "key_extension", err, errlen);
}

int e14_parse_key_container(const char *json, size_t len, size_t max_keys,
			    struct e14_key_container *c, char *err, size_t errlen)
{
	const json_t *keys;
	struct e14_key *k = NULL;
	size_t i, n = 0, dup, orig;
	json_t *root;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	root = load(json, len, 1, err, errlen);
	if (!root)
		return -1;
	if (max_keys > E14_MAX_KEYS)
		max_keys = E14_MAX_KEYS;
	keys = object_list(root, "keys", max_keys, err, errlen);
	if (!keys)
		goto out;
	n = json_array_size(keys);
	k = calloc(n, sizeof(*k));
	if (!k) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (parse_key(json_array_get(keys, i), i, &k[i], err, errlen))
			goto out;
	switch (find_dup((const char *)k + offsetof(struct e14_key, key_id), sizeof(*k), n, &dup,
			 &orig)) {
	case 0:
		break;
	case 1:
		seterr(err, errlen, "keys[%zu].key_ID: same as keys[%zu].key_ID", dup, orig);
		goto out;
	default:
		seterr(err, errlen, "out of memory");
		goto out;
	}
	if (opt_object(root, "", "key_container_extension", err, errlen))
		goto out;
	c->keys = k;
	c->n = n;
	k = NULL;
	rc = 0;
out:
	if (k)
		keys_wipe(k, n);
	json_decref(root);
	return rc;
}

int e14_parse_key_ids(const char *json, size_t len, size_t max_ids, struct e14_key_ids *k,
		      char *err, size_t errlen)
{
	char (*ids)[E14_UUID_LEN + 1] = NULL;
	const json_t *list, *el;
	size_t i, n, dup, orig;
	char prefix[32];
	json_t *root;
	int rc = -1;

	memset(k, 0, sizeof(*k));
	root = load(json, len, 0, err, errlen);
	if (!root)
		return -1;
	if (max_ids > E14_MAX_KEYS)
		max_ids = E14_MAX_KEYS;
	list = object_list(root, "key_IDs", max_ids, err, errlen);
	if (!list)
		goto out;
	n = json_array_size(list);
	ids = calloc(n, sizeof(*ids));
	if (!ids) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		el = json_array_get(list, i);
		snprintf(prefix, sizeof(prefix), "key_IDs[%zu].", i);
		if (get_key_id(el, "key_IDs", i, ids[i], err, errlen) ||
		    opt_object(el, prefix, "key_ID_extension", err, errlen))
			goto out;
	}
	switch (find_dup((const char *)ids, sizeof(*ids), n, &dup, &orig)) {
	case 0:
		break;
	case 1:
		seterr(err, errlen, "key_IDs[%zu].key_ID: same as key_IDs[%zu].key_ID", dup, orig);
		goto out;
	default:
		seterr(err, errlen, "out of memory");
		goto out;
	}
	if (opt_object(root, "", "key_IDs_extension", err, errlen))
		goto out;
	k->ids = ids;
	k->n = n;
	ids = NULL;
	rc = 0;
out:
	free(ids);
	json_decref(root);
	return rc;
}

/* Copies s into msg[0..msglen) whole or cut at a UTF-8 character boundary; controls -> '?'. */
static void copy_text(char *msg, size_t msglen, const char *s)
{
	size_t n = strlen(s), i;

	if (msglen == 0)
		return;
	if (n >= msglen) {
		n = msglen - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++)
		msg[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	msg[n] = '\0';
}

int e14_parse_error(const char *json, size_t len, char *msg, size_t msglen)
{
	char why[256];
	const json_t *v;
	json_t *root;
	int rc = -1;

	root = load(json, len, 0, why, sizeof(why));
	if (!root)
		goto out;
	v = json_object_get(root, "message");
	if (!v) {
		snprintf(why, sizeof(why), "message: missing");
		goto out;
	}
	if (!json_is_string(v)) {
		snprintf(why, sizeof(why), "message: not a string");
		goto out;
	}
	if (opt_object_array(root, "details", &v, why, sizeof(why)))
		goto out;
	if (msg)
		copy_text(msg, msglen, json_string_value(json_object_get(root, "message")));
	rc = 0;
out:
	if (rc && msg)
		copy_text(msg, msglen, why);
	json_decref(root);
	return rc;
}

/* ---- formatters ---- */

/* The compact text of root (consumed), or NULL. */
static char *dump(json_t *root, size_t *outlen)
{
	char *s = root ? json_dumps(root, DUMP_FLAGS) : NULL;

	json_decref(root);
	if (s && outlen)
		*outlen = strlen(s);
	return s;
}

void e14_text_free(char *text)
{
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
}

/*
 * Sets obj[name] = v; on any failure (obj or v NULL too) frees obj and returns NULL. v is
 * consumed either way (json_object_set_new drops it on failure).
 */
static json_t *set(json_t *obj, const char *name, json_t *v)
{
	if (json_object_set_new(obj, name, v)) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Appends v (consumed either way) to arr; on any failure frees arr and returns NULL. */
static json_t *append(json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, v)) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *id_string(const char *id)
{
	return e14_id_valid(id) ? json_string(id) : NULL;
}

char *e14_format_status(const struct e14_status *s, size_t *outlen)
{
	json_t *o = json_object();

	o = set(o, "source_KME_ID", id_string(s->source_kme_id));
	o = set(o, "target_KME_ID", id_string(s->target_kme_id));
	o = set(o, "master_SAE_ID", id_string(s->master_sae_id));
	o = set(o, "slave_SAE_ID", id_string(s->slave_sae_id));
	o = set(o, "key_size", json_integer(s->key_size));
	o = set(o, "stored_key_count", json_integer(s->stored_key_count));
	o = set(o, "max_key_count", json_integer(s->max_key_count));
	o = set(o, "max_key_per_request", json_integer(s->max_key_per_request));
	o = set(o, "max_key_size", json_integer(s->max_key_size));
	o = set(o, "min_key_size", json_integer(s->min_key_size));
	o = set(o, "max_SAE_ID_count", json_integer(s->max_sae_id_count));
	return dump(o, outlen);
}

char *e14_format_key_request(const struct e14_key_request *r, size_t *outlen)
{
	json_t *o = json_object(), *a, *e;
	size_t i;

	if (r->number > E14_MAX_KEYS || r->size > E14_MAX_KEY_BITS || r->size % 8 ||
	    r->n_additional > E14_MAX_SAE_IDS) {
		json_decref(o);
		return NULL;
	}
	if (r->number)
		o = set(o, "number", json_integer(r->number));
	if (r->size)
		o = set(o, "size", json_integer(r->size));
	if (r->n_additional) {
		a = json_array();
		for (i = 0; i < r->n_additional; i++)
			a = append(a, id_string(r->additional[i]));
		o = set(o, "additional_slave_SAE_IDs", a);
	}
	if (r->n_ext_mandatory) {
		a = json_array();
		for (i = 0; i < r->n_ext_mandatory && i < E14_MAX_EXT; i++) {
			e = set(json_object(), r->ext_mandatory[i], json_null());
			a = append(a, e);
		}
		o = set(o, "extension_mandatory", a);
	}
	return dump(o, outlen);
}

/* A JSON string of the base64 text of key[0..len), wiping the intermediate text. */
static json_t *uuid_string(const char *id)
{
	return e14_uuid_valid(id) ? json_string(id) : NULL;
}

/*
 * Written directly rather than through jansson: every byte of it comes from the UUID or the
 * base64 alphabet, which JSON needs no escape for, and jansson's byte-by-byte string
 * escaping was most of a KME's CPU time with 32 KiB keys (bench/e14.sh). The text is what
 * json_dumps gives with DUMP_FLAGS (etsi014_test compares them).
 */
char *e14_format_key_container(const struct e14_key *keys, size_t n, size_t *outlen)
{
	static const char head[] = "{\"keys\":[", tail[] = "]}";
	static const char id_pre[] = "{\"key_ID\":\"", key_pre[] = "\",\"key\":\"";
	size_t i, cap = sizeof(head) + sizeof(tail), o = 0;
	char *t;

	if (!keys || n == 0 || n > E14_MAX_KEYS)
		return NULL;
	for (i = 0; i < n; i++) {
		if (!e14_uuid_valid(keys[i].key_id) || !keys[i].key || keys[i].len == 0 ||
		    keys[i].len > KEY_MAX_BYTES)
			return NULL;
		cap += 1 + sizeof(id_pre) + E14_UUID_LEN + sizeof(key_pre) +
		       (keys[i].len + 2) / 3 * 4 + 2;
	}
	t = malloc(cap);
	if (!t)
		return NULL;
	memcpy(t, head, sizeof(head) - 1);
	o = sizeof(head) - 1;
	for (i = 0; i < n; i++) {
		if (i)
			t[o++] = ',';
		memcpy(t + o, id_pre, sizeof(id_pre) - 1);
		o += sizeof(id_pre) - 1;
		memcpy(t + o, keys[i].key_id, E14_UUID_LEN);
		o += E14_UUID_LEN;
		memcpy(t + o, key_pre, sizeof(key_pre) - 1);
		o += sizeof(key_pre) - 1;
		o += (size_t)EVP_EncodeBlock((unsigned char *)t + o, keys[i].key, (int)keys[i].len);
		t[o++] = '"';
		t[o++] = '}';
	}
	memcpy(t + o, tail, sizeof(tail));	/* with its NUL */
	o += sizeof(tail) - 1;
	if (outlen)
		*outlen = o;
	return t;
}

char *e14_format_key_ids(const char (*ids)[E14_UUID_LEN + 1], size_t n, size_t *outlen)
{
	json_t *o = json_object(), *a = json_array();
	size_t i;

	if (!ids || n == 0 || n > E14_MAX_KEYS) {
		json_decref(o);
		json_decref(a);
		return NULL;
	}
	for (i = 0; i < n; i++)
		a = append(a, set(json_object(), "key_ID", uuid_string(ids[i])));
	return dump(set(o, "key_IDs", a), outlen);
}

/* A JSON string of s; bytes of invalid UTF-8 text become '?' rather than fail. */
static json_t *text_string(const char *s)
{
	json_t *v;
	char *t;
	size_t i;

	if (!s)
		s = "";
	v = json_string(s);
	if (v)
		return v;
	t = strdup(s);
	if (!t)
		return NULL;
	for (i = 0; t[i]; i++)
		if ((unsigned char)t[i] >= 0x80)
			t[i] = '?';
	v = json_string(t);
	free(t);
	return v;
}

char *e14_format_error(const char *msg, const char *detail_name, const char *const *details,
		       size_t n_details, size_t *outlen)
{
	json_t *o = set(json_object(), "message", text_string(msg)), *a;
	size_t i;

	if (n_details) {
		if (!detail_name || !details) {
			json_decref(o);
			return NULL;
		}
		a = json_array();
		for (i = 0; i < n_details; i++)
			a = append(a, set(json_object(), detail_name, text_string(details[i])));
		o = set(o, "details", a);
	}
	return dump(o, outlen);
}

/* ---- freeing ---- */

void e14_key_container_free(struct e14_key_container *c)
{
	if (c->keys)
		keys_wipe(c->keys, c->n);
	memset(c, 0, sizeof(*c));
}

void e14_key_ids_free(struct e14_key_ids *k)
{
	free(k->ids);
	memset(k, 0, sizeof(*k));
}
