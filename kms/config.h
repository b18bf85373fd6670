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

enum qkd_backend { QKD_BACKEND_NONE, QKD_BACKEND_SIM };

struct kms_neighbour {
	char id[KMS_ID_MAX + 1];
	char address[KMS_ADDR_MAX];	/* host:port we dial, "" = accept only */
	enum qkd_backend qkd_backend;
	char qkd_spec[KMS_PATH_MAX];	/* qkd-sim: unix:/path or tcp:host:port */
	char qkd_end;			/* 'a' or 'b': which end of the simulated link we are */
	uint32_t qotp_peer;		/* local qotp peer id of this neighbour's encryptor;
					 * 0 = no key distribution to the kernel */
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
int config_valid_id(const char *s);
/* Splits "host:port" or "[v6]:port". Returns 0 on success. */
int config_split_addr(const char *addr, char *host, size_t hostlen, unsigned *port);

#endif
