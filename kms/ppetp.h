/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key transfer + PPETP hop-by-hop relay (paper §IV.2.B–C, Figs. 4–6), as a pure state
 * machine: messages and time in, callbacks out. No sockets, no clock, no globals.
 *
 * Source A gives C (no common quantum link) a fresh shared key r1 of len bytes:
 *
 *   A: X = next_hop(C); k_AX = take_send(X, len) (fresh link key A–X, reference ref1)
 *      c1 = r1 ^ k_AX                     --C1{c1}-------------------------------> C (e2e)
 *                                         --RELAY{ORIGIN, ref1}--> X (hop)
 *   X: k_AX = take_recv(A, ref1); Y = next_hop(C); k_XY = take_send(Y, len) (ref2)
 *                                         --RELAY{ref2, k_AX ^ k_XY}--> Y (hop) ... --> C
 *   C: k = take_recv(prev, ref); k_AX = data ^ k; r1 = c1 ^ k_AX   (prepared, not usable)
 *                                         <--ACK{hops, tag = HMAC(r1, txid..)[:16]}-- C (e2e)
 *   A: verifies the tag; state confirming --CONFIRM--> C (e2e, retransmitted)
 *   C: commit(r1)                         <--DONE-- C (e2e, re-sent for every CONFIRM)
 *   A: commit(r1)
 *
 * Two-phase commit: the destination only hands r1 out after CONFIRM, the source only after
 * DONE, so if the source committed then the destination did. No relay failure before the
 * ACK leaves anything committed anywhere. The one case left open by the two generals
 * problem (every DONE lost) leaves the destination holding a key the source dropped (the
 * source reports it as failed with -ETIMEDOUT); key distribution must therefore only ever
 * use a transfer key offered by its source (Documentation/key-routing.md).
 *
 * Link key is consumed exactly once: each hop's sender takes fresh bytes (take_send) and
 * the receiver takes the same bytes by reference (take_recv), both of which must destroy
 * them in the link store; every (src, txid) is accepted once per node, so replays consume
 * nothing. An aborted attempt wastes the link key it took, never reuses it.
 * A failed attempt (NACK from a relay, ABORT from the destination, no ACK in time, bad
 * tag) is retried with a new txid, avoiding the first hops that failed, up to
 * max_attempts. Relays never forward to a node already on the path (no loops).
 *
 * C1, ACK, CONFIRM, DONE and ABORT are end to end: the caller must deliver them over a
 * direct authenticated session with the named node (relays never see c1, which is the
 * point of sending c1 apart from k_AX), and must pass that session's authenticated peer
 * as `from` to ppetp_recv(). RELAY and NACK travel between quantum-link neighbours.
 * Not re-entrant: callbacks must not call back into ppetp (queue sends instead).
 */
#ifndef KMS_PPETP_H
#define KMS_PPETP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPETP_ID_MAX 63			/* kmsd node id */
#define PPETP_VERSION 1
#define PPETP_MAX_LEN 32768		/* key bytes of one transfer (= QOTP_MAX_BLOCK_LEN) */
#define PPETP_MAX_HOPS 16
#define PPETP_TAG_LEN 16
/* Largest message: a RELAY with a full path and a full key. */
#define PPETP_MSG_MAX (12 + 2 * (1 + PPETP_ID_MAX) + 2 + PPETP_MAX_HOPS * (1 + PPETP_ID_MAX) + \
		       14 + PPETP_MAX_LEN)

enum ppetp_type {
	PPETP_RELAY = 1,
	PPETP_C1 = 2,
	PPETP_ACK = 3,
	PPETP_CONFIRM = 4,
	PPETP_DONE = 5,
	PPETP_ABORT = 6,
	PPETP_NACK = 7,
	__PPETP_TYPE_LAST,
};

/* Reasons in ABORT / NACK and errors given to failed(). */
enum ppetp_reason {
	PPETP_R_NOROUTE = 1,		/* a relay had no next hop */
	PPETP_R_NOKEY = 2,		/* not enough link key on a hop */
	PPETP_R_BADKEY = 3,		/* the link key reference was refused */
	PPETP_R_TIMEOUT = 4,
	PPETP_R_MISMATCH = 5,		/* C1 and RELAY lengths differ, or the ACK tag was wrong */
	PPETP_R_TTL = 6,		/* path longer than PPETP_MAX_HOPS */
	PPETP_R_CANCEL = 7,		/* the source gave up this attempt */
	__PPETP_R_LAST,
};

/* Where a hop's link key sits in the link store; chosen by the hop's sender. */
struct ppetp_keyref {
	uint64_t block;
	uint32_t offset;
};

/* A decoded message. Key bytes point into the decoded buffer (no copy). */
struct ppetp_msg {
	uint8_t type;
	uint16_t flags;			/* RELAY: PPETP_F_ORIGIN */
	uint64_t txid;
	char src[PPETP_ID_MAX + 1];
	char dst[PPETP_ID_MAX + 1];
	uint8_t ttl;			/* RELAY: hops left */
	uint8_t n_path;			/* RELAY: nodes that already handled it, source first */
	char path[PPETP_MAX_HOPS][PPETP_ID_MAX + 1];
	struct ppetp_keyref ref;	/* RELAY */
	uint16_t len;			/* RELAY, C1, ACK: key length */
	const uint8_t *data;		/* RELAY (not ORIGIN): k ^ hop key; C1: c1 */
	uint8_t hops;			/* ACK: quantum hops the relay took */
	uint8_t tag[PPETP_TAG_LEN];	/* ACK */
	uint8_t reason;			/* ABORT, NACK */
	char reporter[PPETP_ID_MAX + 1];	/* NACK: the node that failed to forward */
};
#define PPETP_F_ORIGIN 0x0001		/* first hop: the key is the link key at ref itself */

/*
 * Wire (big endian): u8 version | u8 type | u16 flags | u64 txid | id src | id dst | body,
 * id = u8 length (1..63) + [A-Za-z0-9._-]. Bodies:
 *   RELAY   u8 ttl | u8 n_path | n_path * id | u64 ref.block | u32 ref.offset | u16 len |
 *           len bytes unless PPETP_F_ORIGIN
 *   C1      u16 len | len bytes          ACK   u8 hops | u16 len | 16-byte tag
 *   CONFIRM, DONE: empty                 ABORT u8 reason      NACK  u8 reason | id reporter
 * Unknown flag bits, trailing bytes, len 0 or > PPETP_MAX_LEN are rejected.
 */
long ppetp_encode(const struct ppetp_msg *m, uint8_t *buf, size_t buflen);
/* Returns 0, -EPROTONOSUPPORT (version) or -EBADMSG. */
int ppetp_decode(const uint8_t *buf, size_t len, struct ppetp_msg *m);

struct ppetp_ops {
	void *arg;
	/* findnexthop: the neighbour toward dst avoiding avoid[]; 0, or -EHOSTUNREACH. */
	int (*next_hop)(void *arg, const char *dst, const char *const *avoid, size_t n_avoid,
			char nh[PPETP_ID_MAX + 1]);
	/* Takes len fresh link key bytes shared with neighbour nbr, never handed out before. */
	int (*take_send)(void *arg, const char *nbr, size_t len, uint8_t *key,
			 struct ppetp_keyref *ref);
	/* Takes the bytes nbr took at ref; fails if unknown or already taken. */
	int (*take_recv)(void *arg, const char *nbr, const struct ppetp_keyref *ref, size_t len,
			 uint8_t *key);
	/* Cryptographic randomness; NULL: OpenSSL RAND_bytes. */
	int (*random)(void *arg, uint8_t *buf, size_t len);
	/* Queue msg to node `to` (a neighbour for RELAY/NACK, the far end otherwise). */
	void (*send)(void *arg, const char *to, const uint8_t *msg, size_t len);
	/*
	 * r1 is now shared with peer under (src, txid); the caller stores it durably and
	 * ppetp wipes its copy on return. cookie is the one given to ppetp_start (0 at C).
	 */
	void (*commit)(void *arg, const char *peer, const char *src, uint64_t txid,
		       uint64_t cookie, const uint8_t *key, size_t len);
	/* The source gave up a transfer after all attempts (err: -EHOSTUNREACH, ...). */
	void (*failed)(void *arg, uint64_t cookie, const char *dst, int err);
};

struct ppetp_config {
	uint64_t attempt_ms;		/* source waits this long for the ACK (default 5000) */
	uint64_t confirm_ms;		/* then re-sends CONFIRM this long for DONE (10000) */
	uint64_t retx_ms;		/* CONFIRM retransmission interval (1000) */
	uint64_t hold_ms;		/* destination holds an unconfirmed r1 (30000) */
	uint64_t replay_ms;		/* finished (src, txid) remembered (120000) */
	unsigned int max_attempts;	/* routes tried per transfer (3) */
	unsigned int max_tx;		/* transactions tracked at once (1024) */
};

struct ppetp_stats {
	uint64_t started, completed, failed, attempts_failed;
	uint64_t bytes_delivered;	/* r1 bytes committed as source */
	uint64_t latency_ms_total;	/* start -> ACK of completed transfers, as source */
	uint64_t hops_total;		/* hops of completed transfers (latency per hop) */
	uint64_t relayed, relayed_bytes;	/* as relay */
	uint64_t received;		/* r1 committed as destination */
	uint64_t rejected;		/* messages refused (malformed, replayed, unknown) */
	uint64_t link_bytes_taken;	/* link key consumed, both directions */
	uint64_t active;		/* tracked transactions holding key material */
};

struct ppetp;

struct ppetp *ppetp_new(const char *self, const struct ppetp_ops *ops,
			const struct ppetp_config *cfg);
void ppetp_free(struct ppetp *p);	/* wipes every key buffer */

/*
 * Starts a transfer of len (1..PPETP_MAX_LEN) bytes to dst. Returns 0 (commit or failed
 * will follow), -EINVAL, -EBUSY (too many transactions) or the first attempt's error
 * when no attempt could even start (-EHOSTUNREACH, or take_send's error).
 */
int ppetp_start(struct ppetp *p, const char *dst, size_t len, uint64_t cookie, uint64_t now_ms);

/*
 * Handles one message from authenticated node `from`. Returns 0, or a negative errno
 * when the message was refused (counted in stats.rejected): -EBADMSG malformed,
 * -EPERM wrong sender, -ENOENT unknown transaction, -EALREADY replay or duplicate,
 * -EMSGSIZE length mismatch, -EBUSY table full, or a callback's error.
 */
int ppetp_recv(struct ppetp *p, const char *from, const uint8_t *buf, size_t len,
	       uint64_t now_ms);

/* Timeouts, retransmissions and retries. Call about every 100..1000 ms. */
void ppetp_tick(struct ppetp *p, uint64_t now_ms);

void ppetp_get_stats(const struct ppetp *p, struct ppetp_stats *st);
const char *ppetp_reason_name(int reason);

#endif
