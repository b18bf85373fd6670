/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key routing (paper §IV.2.D): a distance-vector protocol over the quantum links.
 *
 * A node knows its neighbours (the far ends of its quantum links) and whether each link is
 * usable. Every neighbour periodically, and at once after a change (triggered update),
 * advertises its distance to every node it can reach. We keep the last vector heard from
 * each neighbour and recompute the table from all of them, so a failed next hop is replaced
 * by the best remaining neighbour at once instead of waiting for a better offer.
 * Split horizon with poisoned reverse: a route is advertised back to its own next hop with
 * metric RT_INFINITY. Metrics saturate at RT_INFINITY (16), which bounds counting to
 * infinity after a partition to at most RT_INFINITY rounds.
 *
 * Pure logic: no I/O, no clock, no globals. The caller feeds events with a monotonic time
 * in milliseconds, sends rt_build_advert() to each up neighbour when rt_take_changed()
 * says so (and every RT_UPDATE_MS anyway), and calls rt_tick() about once a second.
 * Node ids are the kmsd node names ([A-Za-z0-9._-]{1,63}, also the TLS identity).
 * Not thread safe: one owner.
 */
#ifndef KMS_ROUTE_H
#define KMS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_ID_MAX 63			/* same bound as the kmsd node id */
#define RT_INFINITY 16			/* metric of an unreachable destination */
#define RT_MAX_NODES 1024		/* bound on destinations and on entries of one advert */
#define RT_MAX_NEIGHBOURS 64
#define RT_UPDATE_MS 10000		/* periodic full advertisement */
#define RT_TIMEOUT_MS 35000		/* a neighbour's vector expires when not refreshed */
#define RT_GC_MS 60000			/* unreachable routes are forgotten after this */

#define RT_WIRE_VERSION 1

enum rt_status {
	RT_STATUS_DIRECT,		/* destination is a neighbour on an up link, best via it */
	RT_STATUS_VIA,			/* reached through another node */
	RT_STATUS_UNREACHABLE,		/* known, but no up path at metric < RT_INFINITY */
};

/* One destination of an advertisement. */
struct rt_entry {
	char dest[RT_ID_MAX + 1];
	uint8_t metric;			/* 0..RT_INFINITY */
};

/* One row of the table, for lookups and `kmsctl routes`. */
struct rt_route {
	char dest[RT_ID_MAX + 1];
	char next_hop[RT_ID_MAX + 1];	/* "" when unreachable */
	uint8_t metric;
	enum rt_status status;
	uint64_t changed_ms;		/* when metric or next hop last changed */
};

struct rt_neighbour_info {
	char id[RT_ID_MAX + 1];
	bool up;
	uint8_t cost;
	uint64_t heard_ms;		/* last advertisement, 0 if never */
	uint32_t entries;		/* destinations in its last advertisement */
};

struct rt_config {
	uint64_t timeout_ms;		/* 0: RT_TIMEOUT_MS */
	uint64_t gc_ms;			/* 0: RT_GC_MS */
};

struct rt;

int rt_valid_id(const char *id);

/* NULL on allocation failure or invalid self id. cfg may be NULL for the defaults. */
struct rt *rt_new(const char *self, const struct rt_config *cfg);
void rt_free(struct rt *rt);
const char *rt_self(const struct rt *rt);

/*
 * Link status of a neighbour (cost 1..RT_INFINITY-1; a quantum link is normally 1).
 * Bringing a link up makes the neighbour a direct route; bringing it down drops every route
 * through it. Returns 0, -EINVAL (bad id, self, cost) or -ENOSPC (too many neighbours).
 */
int rt_link_up(struct rt *rt, const char *nbr, uint8_t cost, uint64_t now_ms);
int rt_link_down(struct rt *rt, const char *nbr, uint64_t now_ms);

/*
 * Stores the vector advertised by neighbour from (replacing the previous one) and
 * recomputes. Entries for ourselves are ignored. Returns 0, -ENOENT if from is not a
 * neighbour with an up link (the advert is dropped), -EINVAL on a bad entry.
 */
int rt_recv_advert(struct rt *rt, const char *from, const struct rt_entry *e, size_t n,
		   uint64_t now_ms);

/*
 * Fills out (room for max entries) with the vector to send to neighbour nbr: every known
 * destination with its metric, RT_INFINITY for routes whose next hop is nbr (poisoned
 * reverse) and for unreachable ones (so neighbours drop them fast). Sorted by dest.
 * Returns the number of entries, or -ENOSPC if max is too small.
 */
int rt_build_advert(const struct rt *rt, const char *nbr, struct rt_entry *out, size_t max);

/* Expires silent neighbours' vectors and forgets old unreachable routes. */
void rt_tick(struct rt *rt, uint64_t now_ms);

/* True once after the table changed (metric, next hop or set of destinations). */
bool rt_take_changed(struct rt *rt);

/*
 * The paper's findnexthop. Copies the next hop toward dest into next_hop (RT_ID_MAX+1
 * bytes) and its metric. Returns 0, or -EHOSTUNREACH (known but unreachable, or unknown).
 */
int rt_lookup(const struct rt *rt, const char *dest, char *next_hop, uint8_t *metric);

/*
 * Like rt_lookup but never through a neighbour in avoid[0..n_avoid): the best remaining
 * neighbour's vector, so a retry can take another route where one exists. A neighbour in
 * avoid is also never returned as destination-is-neighbour.
 */
int rt_lookup_avoid(const struct rt *rt, const char *dest, const char *const *avoid,
		    size_t n_avoid, char *next_hop, uint8_t *metric);

/* Table iteration in dest order (for kmsctl routes). Returns false past the end. */
size_t rt_count(const struct rt *rt);
bool rt_get(const struct rt *rt, size_t i, struct rt_route *out);
size_t rt_neighbour_count(const struct rt *rt);
bool rt_get_neighbour(const struct rt *rt, size_t i, struct rt_neighbour_info *out);

const char *rt_status_name(enum rt_status s);

/*
 * Wire format of an advertisement (big endian), carried as one peer-channel payload:
 *   u8 version (RT_WIRE_VERSION) | u8 flags (0) | u16 count |
 *   u8 origin_len | origin[origin_len] |
 *   count * ( u8 metric (0..16) | u8 dest_len | dest[dest_len] )
 * Ids are 1..RT_ID_MAX bytes of [A-Za-z0-9._-]; dests strictly increasing (strcmp order),
 * which also forbids duplicates; the buffer must end exactly after the last entry.
 */
#define RT_ADVERT_MAX_LEN (5 + RT_ID_MAX + RT_MAX_NODES * (2 + RT_ID_MAX))

/* Returns bytes written or -ENOSPC / -EINVAL. */
long rt_advert_encode(const char *origin, const struct rt_entry *e, size_t n, uint8_t *buf,
		      size_t buflen);
/*
 * Decodes into origin (RT_ID_MAX+1 bytes) and e (room for max entries). Returns the entry
 * count, or -EPROTONOSUPPORT (version), -EBADMSG (malformed), -E2BIG (more than max).
 */
long rt_advert_decode(const uint8_t *buf, size_t len, char *origin, struct rt_entry *e,
		      size_t max);

#endif
