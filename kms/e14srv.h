/* SPDX-License-Identifier: GPL-2.0 */
/*
 * e14srv: the KME side of ETSI GS QKD 014 V1.1.1 (the REST key delivery API) over HTTPS with
 * mutual TLS, on libevent's evhttp and OpenSSL bufferevents. It owns the transport: TLS (1.2
 * or later; the client must present a certificate that chains to the configured CA), the
 * URLs, methods, GET query forms and POST bodies (through the etsi014.h codec), the limits,
 * the Error bodies and counters. What keys exist is the backend's business (kmesimd, kmsd),
 * reached through struct e14srv_ops.
 *
 * Served paths (SAE_ID: percent-decoded, must pass e14_id_valid, else 400):
 *   GET      /api/v1/keys/{slave_SAE_ID}/status      ops->status
 *   GET/POST /api/v1/keys/{slave_SAE_ID}/enc_keys    ops->enc_keys  (?number=N&size=BITS)
 *   GET/POST /api/v1/keys/{master_SAE_ID}/dec_keys   ops->dec_keys  (?key_ID=UUID)
 * Anything else is 404, another method 405 (with Allow), both with an Error body. The
 * caller is identified before anything else: no usable certificate or ops->identify
 * refusing it is 401. Requests the server itself can refuse never reach the backend: a
 * malformed, unknown or repeated query parameter, a body the codec rejects (400 with its
 * reason), number above max_keys_per_request, extension_mandatory (400, "not all
 * extension_mandatory parameters are supported", details [{"extension_mandatory_unsupported":
 * name}, ...]). All answers are application/json and Cache-Control: no-store.
 *
 * Each request reaching the backend is a struct e14_req that the backend answers exactly
 * once, at once (inside the callback) or later from the event loop, with e14_req_status,
 * e14_req_keys or e14_req_error; rq is freed by that call. If the client goes away first (or
 * the server is freed), ops->cancel(arg, rq) is called instead and the backend must forget
 * rq without answering it. Bodies holding keys are wiped once sent and never logged.
 */
#ifndef KMS_E14SRV_H
#define KMS_E14SRV_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "etsi014.h"

struct event_base;
struct e14srv;
struct e14_req;

enum e14_method { E14_STATUS, E14_ENC_KEYS, E14_DEC_KEYS };

/* Defaults for the fields left 0. */
#define E14SRV_MAX_CONNECTIONS 256
#define E14SRV_MAX_BODY (256 * 1024)
#define E14SRV_IDLE_TIMEOUT_S 60
#define E14SRV_MAX_KEYS_PER_REQUEST 128

struct e14srv_config {
	const char *listen;	/* "host:port", "[v6addr]:port" (port 0: any free one) */
	const char *cert;	/* PEM: this KME's certificate (chain) */
	const char *key;	/* PEM: its private key */
	const char *ca;		/* PEM: CA(s) that SAE client certificates must chain to */
	const char *kme_id;	/* this KME's KME_ID (log prefix) */
	unsigned max_connections;	/* open at once; beyond, the TLS handshake is refused */
	size_t max_body;		/* request body bytes (evhttp answers 413 beyond) */
	unsigned idle_timeout_s;	/* read/write timeout of a connection */
	unsigned max_keys_per_request;	/* number / key_IDs per request, <= E14_MAX_KEYS */
};

struct e14srv_ops {
	/*
	 * The SAE_ID of the client presenting cert (verified against the CA; cn its subject
	 * CN, NULL if it has none or several): 0 with sae_id filled (must pass e14_id_valid),
	 * or -1 to refuse the request with 401. Called for every request.
	 */
	int (*identify)(void *arg, X509 *cert, const char *cn, char sae_id[E14_ID_MAX + 1]);
	/* master: the caller; answer with e14_req_status or e14_req_error */
	void (*status)(void *arg, struct e14_req *rq, const char *master, const char *slave);
	/*
	 * master: the caller. kr is checked (number <= max_keys_per_request, no
	 * extension_mandatory; number/size 0 = absent). Answer with e14_req_keys or
	 * e14_req_error. In every op the pointer arguments (strings, kr, ids) are valid during
	 * the call only, and not after rq is answered even within it (they may live in rq).
	 */
	void (*enc_keys)(void *arg, struct e14_req *rq, const char *master, const char *slave,
			 const struct e14_key_request *kr);
	/*
	 * slave: the caller. ids: 1..max_keys_per_request UUIDs, in lower case, no two equal;
	 * valid during the call only.
	 */
	void (*dec_keys)(void *arg, struct e14_req *rq, const char *slave, const char *master,
			 const struct e14_key_ids *ids);
	/* The client went away (or e14srv_free): forget rq, do not answer it. */
	void (*cancel)(void *arg, struct e14_req *rq);
};

/* Per-SAE and total counters (answers sent; a canceled request counts in no status). */
struct e14srv_counters {
	uint64_t requests;	/* received (total: also those refused before identification) */
	uint64_t keys_out;	/* keys sent in 200 answers (enc_keys + dec_keys) */
	uint64_t canceled;	/* client gone before the backend answered */
	uint64_t s200, s400, s401, s404, s405, s503, s_other;
};

struct e14srv_stats {
	struct e14srv_counters total;
	uint64_t conns_accepted;	/* TCP connections taken */
	uint64_t conns_refused;		/* of those, refused beyond max_connections */
	unsigned conns_open;
	size_t pending;			/* requests awaiting the backend's answer */
};

/*
 * Listens on cf->listen and serves on base. ops and arg are kept; the strings of cf are
 * copied. NULL with err set on failure (unreadable cert/key/CA, bad address, bind).
 */
struct e14srv *e14srv_new(struct event_base *base, const struct e14srv_config *cf,
			  const struct e14srv_ops *ops, void *arg, char *err, size_t errlen);
/* Cancels pending requests (ops->cancel), closes every connection, frees everything. */
void e14srv_free(struct e14srv *s);
/* The bound address, "127.0.0.1:8443" or "[::1]:8443". */
const char *e14srv_address(const struct e14srv *s);

void e14srv_get_stats(const struct e14srv *s, struct e14srv_stats *st);
/* fn for every identified SAE seen (at most 1024 of them are counted apart). */
void e14srv_foreach_sae(const struct e14srv *s,
			void (*fn)(void *arg, const char *sae_id, const struct e14srv_counters *c),
			void *arg);

/* ---- one request (valid from the ops callback until answered or canceled) ---- */

enum e14_method e14_req_method(const struct e14_req *rq);
const char *e14_req_sae(const struct e14_req *rq);	/* the caller's SAE_ID */
void e14_req_set_data(struct e14_req *rq, void *data);	/* for the backend's own use */
void *e14_req_data(const struct e14_req *rq);

/* Answers 200 with a Status body. */
void e14_req_status(struct e14_req *rq, const struct e14_status *st);
/* Answers 200 with a Key container of keys[0..n) (1..E14_MAX_KEYS); the text is wiped. */
void e14_req_keys(struct e14_req *rq, const struct e14_key *keys, size_t n);
/*
 * Answers http_status (400, 401, 503, ...) with an Error body: message, and when n_details
 * > 0 "details": [{detail_name: details[i]}, ...].
 */
void e14_req_error(struct e14_req *rq, int http_status, const char *message,
		   const char *detail_name, const char *const *details, size_t n_details);
/* Test hook (simulators): the answer's body is cut to half its length, status unchanged. */
void e14_req_truncate(struct e14_req *rq);

#endif
