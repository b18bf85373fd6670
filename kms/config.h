/* SPDX-License-Identifier: GPL-2.0 */
/* kmsd.conf parser. The format is documented in kmsd.conf(5). */
#ifndef KMS_CONFIG_H
#define KMS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define KMS_ID_MAX 63		/* node ids: [A-Za-z0-9._-]{1,63}, also the TLS identity */
#define KMS_PATH_MAX 256
#define KMS_ADDR_MAX 128
#define KMS_MAX_NEIGHBOURS 64
#define KMS_MAX_REMOTES 64
#define KMS_MAX_KMES 8
#define KMS_SAE_ID_MAX 127	/* ETSI GS QKD 014 SAE_ID (= E14_ID_MAX in etsi014.h) */
#define KMS_MAX_SAES 128

enum qkd_backend { QKD_BACKEND_NONE, QKD_BACKEND_SIM, QKD_BACKEND_ETSI014 };

/*
 * An ETSI GS QKD 014 KME kmsd calls as an SAE (Documentation/etsi014.md):
 * `etsi014-kme NAME url https://HOST[:PORT] cert FILE key FILE ca FILE`.
 */
struct kms_kme {
	char name[KMS_ID_MAX + 1];
	char url[KMS_ADDR_MAX + 8];
	char host[KMS_ADDR_MAX];	/* from url; an IPv6 literal without brackets */
	unsigned port;			/* from url; 443 when it names none */
	char cert[KMS_PATH_MAX];	/* our SAE's client certificate and key */
	char key[KMS_PATH_MAX];
	char ca[KMS_PATH_MAX];		/* CA of the KME's server certificate */
};

struct kms_neighbour {
	char id[KMS_ID_MAX + 1];
	char address[KMS_ADDR_MAX];	/* host:port we dial, "" = accept only */
	enum qkd_backend qkd_backend;
	char qkd_spec[KMS_PATH_MAX];	/* qkd-sim: unix:/path or tcp:host:port */
	char qkd_end;			/* 'a' or 'b': which end of the simulated link we are */
	uint32_t qotp_peer;		/* local qotp peer id of this neighbour's encryptor;
					 * 0 = no key distribution to the kernel */
	/* qkd-etsi014 KME: link key from that KME (kme indexes kms_config.kme) */
	char qkd_kme[KMS_ID_MAX + 1];
	int kme;
	char sae_id[KMS_SAE_ID_MAX + 1];	/* our SAE at that KME */
	char peer_sae_id[KMS_SAE_ID_MAX + 1];	/* the neighbour's SAE at its KME */
	uint32_t etsi_block;		/* bytes of key per link block (one enc_keys call) */
	unsigned line;			/* where it was configured, for later errors */
};

/*
 * A kmsd we share no quantum link with but talk to end to end (key transfer + PPETP):
 * `remote ID [address HOST:PORT] [qotp-peer N]`. Same TLS identity rule as neighbours.
 */
struct kms_remote {
	char id[KMS_ID_MAX + 1];
	char address[KMS_ADDR_MAX];	/* host:port we dial, "" = accept only */
	uint32_t qotp_peer;		/* local qotp peer id of its encryptor; 0 = none */
};

/*
 * kmsd as an ETSI GS QKD 014 KME for applications (northbound, Documentation/etsi014.md):
 * `etsi014-listen HOST:PORT cert FILE key FILE ca FILE [kme-id ID] [max-connections N]
 * [max-keys N] [key-size BITS] [max-key-size BITS] [key-ttl S]`. listen "" = off.
 */
struct kms_e14_listen {
	char listen[KMS_ADDR_MAX];
	char cert[KMS_PATH_MAX];	/* this KME's server certificate and key */
	char key[KMS_PATH_MAX];
	char ca[KMS_PATH_MAX];		/* CA the SAEs' client certificates chain to */
	char kme_id[KMS_ID_MAX + 1];	/* KME_ID in Status answers; default: the node id */
	unsigned max_connections;
	unsigned max_keys;		/* keys per request */
	unsigned key_size;		/* bits, when a request names none */
	unsigned max_key_size;		/* bits; a key never spans two link blocks */
	unsigned key_ttl_s;		/* a slave's keys not fetched by then are wiped */
};

/*
 * An SAE kmsd's KMEs know: `sae SAE_ID node NODE [cn CN]`: the node whose KME it uses
 * (this node, a neighbour or a remote) and the subject CN of its client certificate
 * (default: the SAE_ID).
 */
struct kms_sae {
	char id[KMS_SAE_ID_MAX + 1];
	char node[KMS_ID_MAX + 1];
	char cn[KMS_SAE_ID_MAX + 1];
	unsigned line;			/* where it was configured, for later errors */
};

struct kms_config {
	char node_id[KMS_ID_MAX + 1];
	char listen[KMS_ADDR_MAX];
	char tls_cert[KMS_PATH_MAX];
	char tls_key[KMS_PATH_MAX];
	char tls_ca[KMS_PATH_MAX];
	char store[KMS_PATH_MAX];
	char control[KMS_PATH_MAX];
	char pidfile[KMS_PATH_MAX];

	unsigned round_blocks;		/* blocks verified per caching round */
	unsigned round_budget_ms;	/* a bulk step (round, intake batch) lasts about this */
	unsigned round_interval_ms;	/* pause between rounds when nothing is fresh */
	unsigned lock_timeout_ms;	/* a round's locks are released after this */
	unsigned min_block_age_ms;	/* only verify blocks the peer has surely received */
	unsigned fresh_max_age_s;	/* unverified blocks older than this are discarded */
	unsigned keepalive_s;		/* peer keepalive interval; dead after 3 missed */
	unsigned reconnect_max_s;	/* reconnect backoff ceiling */
	uint64_t link_max_bytes;	/* stop storing QKD blocks for a link above this */
	uint64_t store_min_free;	/* ... and for every link below this much free space */
	size_t write_high_watermark;	/* peer channel backpressure */
	uint32_t dist_block;		/* key distribution: bytes per block pushed */
	uint64_t dist_low;		/* refill an encrypt ring below this many bytes */
	uint64_t dist_target;		/* ... up to this many */
	uint32_t ppetp_block;		/* bytes per key transfer kdist starts for a remote pair */

	struct kms_neighbour nb[KMS_MAX_NEIGHBOURS];
	size_t n_nb;
	struct kms_remote rm[KMS_MAX_REMOTES];
	size_t n_rm;
	struct kms_kme kme[KMS_MAX_KMES];
	size_t n_kme;
	struct kms_e14_listen e14;
	struct kms_sae sae[KMS_MAX_SAES];
	size_t n_sae;
};

void config_defaults(struct kms_config *cf);
/*
 * Parses text (len bytes, need not be NUL terminated) named filename in messages. On error
 * returns -1 and writes "file:line: what is wrong: `value'" into err.
 */
int config_parse(struct kms_config *cf, const char *filename, const char *text, size_t len,
		 char *err, size_t errlen);
int config_load(struct kms_config *cf, const char *path, char *err, size_t errlen);
const struct kms_neighbour *config_find_neighbour(const struct kms_config *cf, const char *id);
const struct kms_remote *config_find_remote(const struct kms_config *cf, const char *id);
const struct kms_sae *config_find_sae(const struct kms_config *cf, const char *id);
int config_valid_id(const char *s);
/* An ETSI 014 SAE_ID: 1..KMS_SAE_ID_MAX of 0x21..0x7e, none of "/?#%" (a URL path segment). */
int config_valid_sae_id(const char *s);
/* Splits "host:port" or "[v6]:port". Returns 0 on success. */
int config_split_addr(const char *addr, char *host, size_t hostlen, unsigned *port);

#endif
