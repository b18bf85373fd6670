/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ETSI GS QKD 014 V1.1.1 (2019-02), the REST key delivery API: its JSON data formats
 * (clause 6: Status, Key request, Key container, Key IDs, Error) and key_ID UUIDs.
 *
 * Pure codec, no I/O: used by the KME side (kmesimd, kmsd's northbound server) and the SAE
 * side (kmsd's southbound QKD source). JSON is jansson's; call e14_init() once before any
 * other function so jansson's allocations (which hold base64 key text) are wiped on free.
 *
 * Parsers are strict about what the standard fixes (types, required members, ranges) and
 * tolerant of what it leaves open (unknown members are ignored, as clause 6 allows
 * extensions). On failure they return -1, leave their output struct zeroed and write a
 * one-line reason (printable ASCII only) into err, fit for the "message" of an Error
 * response or a log line ("key_IDs[3].key_ID: not a string"). Bodies longer than
 * E14_MAX_BODY are refused unread.
 */
#ifndef KMS_ETSI014_H
#define KMS_ETSI014_H

#include <stddef.h>
#include <stdint.h>

#define E14_ID_MAX 127		/* SAE_ID / KME_ID: printable, no '/', '?', '#', '%' */
#define E14_UUID_LEN 36		/* 8-4-4-4-12 hex digits */
#define E14_MAX_KEYS 1024	/* keys in one request or container (our bound) */
#define E14_MAX_KEY_BITS (64 * 1024 * 8)	/* one key, in bits (our bound) */
#define E14_MAX_SAE_IDS 16	/* additional_slave_SAE_IDs (our bound) */
#define E14_MAX_EXT 16		/* extension_mandatory names remembered */
#define E14_MAX_BODY (E14_MAX_KEYS * (E14_MAX_KEY_BITS / 6 + 128) + 4096)

/* Status (clause 6.1). All sizes in bits. */
struct e14_status {
	char source_kme_id[E14_ID_MAX + 1];
	char target_kme_id[E14_ID_MAX + 1];
	char master_sae_id[E14_ID_MAX + 1];
	char slave_sae_id[E14_ID_MAX + 1];
	uint32_t key_size;		/* default size of a key */
	uint32_t stored_key_count;	/* keys of key_size available to this pair */
	uint32_t max_key_count;
	uint32_t max_key_per_request;
	uint32_t max_key_size;
	uint32_t min_key_size;
	uint32_t max_sae_id_count;	/* additional slave SAEs allowed in one request */
};

/* Key request (clause 6.2): the body of a POST enc_keys, or its GET query. */
struct e14_key_request {
	uint32_t number;		/* 0 = absent (the standard's default is 1) */
	uint32_t size;			/* bits; 0 = absent (default: status key_size) */
	size_t n_additional;
	char additional[E14_MAX_SAE_IDS][E14_ID_MAX + 1];	/* additional_slave_SAE_IDs */
	/*
	 * extension_mandatory: the member names of its objects. We support none, so a KME
	 * answers 400 when n_ext_mandatory > 0 (clause 6.2: a KME that cannot honour a
	 * mandatory extension must refuse the request), listing them in "details".
	 * n_ext_mandatory counts all of them even beyond E14_MAX_EXT names kept.
	 */
	size_t n_ext_mandatory;
	char ext_mandatory[E14_MAX_EXT][E14_ID_MAX + 1];
};

/* One key: a key_ID and its bytes (decoded from base64). */
struct e14_key {
	char key_id[E14_UUID_LEN + 1];
	uint8_t *key;			/* heap; wiped by e14_keys_free */
	size_t len;			/* bytes */
};

/* Key container (clause 6.3): keys in the order the KME listed them. */
struct e14_key_container {
	size_t n;
	struct e14_key *keys;
};

/* Key IDs (clause 6.4): the body of a POST dec_keys (or the key_ID of its GET query). */
struct e14_key_ids {
	size_t n;
	char (*ids)[E14_UUID_LEN + 1];	/* heap */
};

/* Sets jansson's allocator to wipe on free (wipe.h). Idempotent. */
void e14_init(void);

/* 1 if s is a UUID in canonical text form (case-insensitive hex), else 0. */
int e14_uuid_valid(const char *s);
/* A fresh random (version 4) UUID in lower case; 0, or -1 if the RNG failed. */
int e14_uuid_generate(char out[E14_UUID_LEN + 1]);
/* 1 if s can be an SAE_ID or KME_ID (1..E14_ID_MAX printable ASCII, none of "/?#%"). */
int e14_id_valid(const char *s);

/* Parsers (len bytes of JSON, need not be NUL terminated): 0, or -1 with err set. */
int e14_parse_status(const char *json, size_t len, struct e14_status *s, char *err,
		     size_t errlen);
int e14_parse_key_request(const char *json, size_t len, struct e14_key_request *r, char *err,
			  size_t errlen);
/*
 * Keys: 1..max_keys of them (max_keys capped at E14_MAX_KEYS), each key_ID a UUID, no two
 * the same (case-insensitively), each key canonical padded base64 of 1..E14_MAX_KEY_BITS/8
 * bytes. A failure message never quotes key text.
 */
int e14_parse_key_container(const char *json, size_t len, size_t max_keys,
			    struct e14_key_container *c, char *err, size_t errlen);
int e14_parse_key_ids(const char *json, size_t len, size_t max_ids, struct e14_key_ids *k,
		      char *err, size_t errlen);
/*
 * Error (clause 6.5): its "message" into msg (cut to msglen at a UTF-8 character boundary,
 * control characters replaced by '?'); 0, or -1 with the reason it is not an Error in msg.
 */
int e14_parse_error(const char *json, size_t len, char *msg, size_t msglen);

/*
 * Formatters: a NUL-terminated compact JSON text in a heap block (*outlen its length, without
 * the NUL; outlen may be NULL), or NULL if out of memory or given what the matching parser
 * would refuse (an invalid ID or UUID, a key of 0 or too many bytes, 0 or too many keys or
 * IDs, a size not a multiple of 8...). Free with e14_text_free, which wipes it (a key
 * container holds key bytes in base64).
 */
char *e14_format_status(const struct e14_status *s, size_t *outlen);
/*
 * number/size 0 are left out of the body; each kept extension_mandatory name goes out as an
 * object {"<name>": null} (we keep names, not values).
 */
char *e14_format_key_request(const struct e14_key_request *r, size_t *outlen);
char *e14_format_key_container(const struct e14_key *keys, size_t n, size_t *outlen);
char *e14_format_key_ids(const char (*ids)[E14_UUID_LEN + 1], size_t n, size_t *outlen);
/*
 * {"message": msg} plus "details": [{"<detail_name>": detail}, ...] when n_details > 0.
 * Bytes of msg or a detail that are not valid UTF-8 text go out as '?'.
 */
char *e14_format_error(const char *msg, const char *detail_name, const char *const *details,
		       size_t n_details, size_t *outlen);
void e14_text_free(char *text);

/* Wipe and free what the parsers allocated (safe on a zeroed struct; leaves it zeroed). */
void e14_key_container_free(struct e14_key_container *c);
void e14_key_ids_free(struct e14_key_ids *k);

#endif
