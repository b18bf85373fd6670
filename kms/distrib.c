// SPDX-License-Identifier: GPL-2.0
/*
 * Key distribution: block id ownership, refill decisions and kernel-loss handling for one
 * pair of encryptors (see distrib.h). Holds ids and lengths only, never key bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "distrib.h"
#include "nodeid.h"

_Static_assert(DIST_ID_MAX == KMS_NODE_ID_MAX, "node ids have one length bound");

struct blk {
	uint64_t id;
	uint32_t len;
	uint64_t deadline;
};

struct dist_pair {
	char local[DIST_ID_MAX + 1], remote[DIST_ID_MAX + 1];
	struct dist_config cfg;
	uint64_t next_id;		/* our encrypt ring: next id to assign */
	uint64_t out_granted;		/* highest id we told the caller to push */
	uint64_t in_last;		/* our decrypt ring: highest id accepted */
	uint64_t level;			/* estimated available bytes in our encrypt ring */
	uint64_t lead;			/* refill lead (dist_set_rates) */
	int64_t reserved;
	bool filling;			/* went below the low watermark, not yet at target */
	struct blk *inflight;
	size_t n_inflight;
	struct blk *pushed[2];
	size_t n_pushed[2];
	struct dist_stats st;
};

static int valid_id(const char *s)
{
	return node_id_valid(s);
}

/*
 * Hysteresis: start refilling below the low watermark, raised by the lead (the bytes the
 * ring drains while an offer is under way), keep going up to the target (the ring's memory
 * budget, never exceeded: the lead moves the start, not the goal). With topup,
 * refilling also starts as soon as the ring is topup bytes below the target: the ring is
 * kept near the target, so a burst has the whole target to drain before it runs dry, not
 * just the low watermark.
 */
static void update_filling(struct dist_pair *dp)
{
	if (dp->level < dp->cfg.low_watermark + dp->lead ||
	    (dp->cfg.topup && dp->level + dp->cfg.topup <= dp->cfg.target))
		dp->filling = true;
	else if (dp->level >= dp->cfg.target)
		dp->filling = false;
}

void dist_set_rates(struct dist_pair *dp, uint64_t drain_bps, uint64_t rtt_ms)
{
	uint64_t lead;

	/* both bounded so the product cannot overflow: 1 TB/s, 1 h */
	if (drain_bps > (1ULL << 40))
		drain_bps = 1ULL << 40;
	if (rtt_ms > 3600000)
		rtt_ms = 3600000;
	lead = drain_bps * rtt_ms / 1000;
	dp->lead = lead < dp->cfg.target ? lead : dp->cfg.target;
	update_filling(dp);
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

struct dist_pair *dist_pair_new(const char *local, const char *remote,
				const struct dist_config *cfg, const struct dist_persist *ps,
				uint64_t kernel_out_last, uint64_t kernel_in_last)
{
	struct dist_pair *dp;

	if (!valid_id(local) || !valid_id(remote) || !strcmp(local, remote) || !cfg ||
	    cfg->block_len == 0 || cfg->block_len > DIST_MAX_BLOCK || cfg->max_inflight == 0 ||
	    cfg->target < cfg->low_watermark || cfg->offer_timeout_ms == 0)
		return NULL;
	if (kernel_out_last == UINT64_MAX || (ps && ps->out_next_id == UINT64_MAX))
		return NULL;
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return NULL;
	strcpy(dp->local, local);
	strcpy(dp->remote, remote);
	dp->cfg = *cfg;
	/* Above everything we ever assigned and everything the kernel ever accepted. */
	dp->next_id = max64(max64(ps ? ps->out_next_id : 0, kernel_out_last + 1), 1);
	dp->out_granted = dp->next_id - 1;
	dp->in_last = max64(ps ? ps->in_last_id : 0, kernel_in_last);
	update_filling(dp);
	dp->inflight = calloc(cfg->max_inflight, sizeof(*dp->inflight));
	dp->pushed[0] = calloc(DIST_MAX_TRACKED, sizeof(struct blk));
	dp->pushed[1] = calloc(DIST_MAX_TRACKED, sizeof(struct blk));
	if (!dp->inflight || !dp->pushed[0] || !dp->pushed[1]) {
		dist_pair_free(dp);
		return NULL;
	}
	return dp;
}

void dist_pair_free(struct dist_pair *dp)
{
	if (!dp)
		return;
	free(dp->inflight);
	free(dp->pushed[0]);
	free(dp->pushed[1]);
	free(dp);
}

void dist_persist(const struct dist_pair *dp, struct dist_persist *ps)
{
	ps->out_next_id = dp->next_id;
	ps->in_last_id = dp->in_last;
}

void dist_get_stats(const struct dist_pair *dp, struct dist_stats *st)
{
	*st = dp->st;
	st->level = dp->level;
	st->lead = dp->lead;
	st->inflight = (uint32_t)dp->n_inflight;
	st->inflight_bytes = 0;
	for (size_t i = 0; i < dp->n_inflight; i++)
		st->inflight_bytes += dp->inflight[i].len;
	st->reserved_bytes = dp->reserved > 0 ? (uint64_t)dp->reserved : 0;
	st->pushed_out = (uint32_t)dp->n_pushed[DIST_OUT];
	st->pushed_in = (uint32_t)dp->n_pushed[DIST_IN];
}

uint64_t dist_need(const struct dist_pair *dp)
{
	uint64_t coming = dp->level, room, goal = dp->cfg.target;

	for (size_t i = 0; i < dp->n_inflight; i++)
		coming += dp->inflight[i].len;
	if (dp->reserved > 0)
		coming += (uint64_t)dp->reserved;
	if (!dp->filling || coming >= goal || dp->n_inflight >= dp->cfg.max_inflight)
		return 0;
	/* No more than the free offer slots can carry. */
	room = (uint64_t)(dp->cfg.max_inflight - dp->n_inflight) * dp->cfg.block_len;
	return goal - coming < room ? goal - coming : room;
}

void dist_reserve(struct dist_pair *dp, int64_t delta)
{
	dp->reserved += delta;
	if (dp->reserved < 0)
		dp->reserved = 0;
}

int dist_assign(struct dist_pair *dp, uint32_t len, uint64_t now_ms, uint64_t *id)
{
	struct blk *b;

	if (len == 0 || len > DIST_MAX_BLOCK)
		return -EINVAL;
	if (dp->n_inflight >= dp->cfg.max_inflight)
		return -EBUSY;
	if (dp->next_id == UINT64_MAX)
		return -EOVERFLOW;
	b = &dp->inflight[dp->n_inflight++];
	b->id = dp->next_id++;
	b->len = len;
	b->deadline = now_ms + dp->cfg.offer_timeout_ms;
	dp->st.offered++;
	*id = b->id;
	return 0;
}

static int take_inflight(struct dist_pair *dp, uint64_t id, uint32_t *len)
{
	for (size_t i = 0; i < dp->n_inflight; i++) {
		if (dp->inflight[i].id != id)
			continue;
		if (len)
			*len = dp->inflight[i].len;
		memmove(&dp->inflight[i], &dp->inflight[i + 1],
			(dp->n_inflight - i - 1) * sizeof(*dp->inflight));
		dp->n_inflight--;
		return 0;
	}
	return -ENOENT;
}

int dist_offer_accepted(struct dist_pair *dp, uint64_t id, uint32_t *len)
{
	if (take_inflight(dp, id, len))
		return -ENOENT;
	/* The kernel wants increasing ids: anything at or below a granted one is dead. */
	if (id <= dp->out_granted) {
		dp->st.rejected++;
		return -EALREADY;
	}
	dp->out_granted = id;
	dp->st.accepted++;
	return 0;
}

int dist_offer_rejected(struct dist_pair *dp, uint64_t id)
{
	if (take_inflight(dp, id, NULL))
		return -ENOENT;
	dp->st.rejected++;
	return 0;
}

int dist_pushed(struct dist_pair *dp, enum dist_dir dir, uint64_t id, uint32_t len)
{
	struct blk *b;

	if (dir != DIST_OUT && dir != DIST_IN)
		return -EINVAL;
	if (dir == DIST_OUT) {
		dp->level += len;
		update_filling(dp);
	}
	if (dp->n_pushed[dir] >= DIST_MAX_TRACKED)
		return -ENOSPC;
	b = &dp->pushed[dir][dp->n_pushed[dir]++];
	b->id = id;
	b->len = len;
	return 0;
}

void dist_tick(struct dist_pair *dp, uint64_t now_ms, dist_drop_fn drop, void *arg)
{
	size_t k = 0;

	for (size_t i = 0; i < dp->n_inflight; i++) {
		if (now_ms >= dp->inflight[i].deadline) {
			dp->st.expired++;
			if (drop)
				drop(arg, DIST_OUT, dp->inflight[i].id);
			continue;
		}
		dp->inflight[k++] = dp->inflight[i];
	}
	dp->n_inflight = k;
}

int dist_check_offer(const struct dist_pair *dp, uint64_t id, uint32_t len)
{
	if (id == 0 || len == 0 || len > DIST_MAX_BLOCK)
		return -EINVAL;
	if (id <= dp->in_last)
		return -EALREADY;
	return 0;
}

int dist_in_accepted(struct dist_pair *dp, uint64_t id)
{
	if (id == 0)
		return -EINVAL;
	if (id <= dp->in_last) {
		dp->st.in_refused++;
		return -EALREADY;
	}
	dp->in_last = id;
	dp->st.in_accepted++;
	return 0;
}

void dist_kernel_level(struct dist_pair *dp, uint64_t avail)
{
	dp->level = avail;
	update_filling(dp);
}

size_t dist_released(struct dist_pair *dp, enum dist_dir dir, const uint64_t *ids, size_t n)
{
	size_t found = 0;

	if (dir != DIST_OUT && dir != DIST_IN)
		return 0;
	for (size_t j = 0; j < n; j++) {
		for (size_t i = 0; i < dp->n_pushed[dir]; i++) {
			struct blk *b = &dp->pushed[dir][i];

			if (b->id != ids[j])
				continue;
			/* Released bytes are no longer available in the ring. */
			if (dir == DIST_OUT)
				dp->level = dp->level > b->len ? dp->level - b->len : 0;
			update_filling(dp);
			*b = dp->pushed[dir][--dp->n_pushed[dir]];
			found++;
			dp->st.released++;
			break;
		}
	}
	return found;
}

static void drop_pushed(struct dist_pair *dp, enum dist_dir dir, dist_drop_fn drop, void *arg)
{
	for (size_t i = 0; i < dp->n_pushed[dir]; i++) {
		dp->st.lost++;
		if (drop)
			drop(arg, dir, dp->pushed[dir][i].id);
	}
	dp->n_pushed[dir] = 0;
}

static int restart_out(struct dist_pair *dp, dist_drop_fn drop, void *arg,
		       uint64_t *first_valid)
{
	drop_pushed(dp, DIST_OUT, drop, arg);
	for (size_t i = 0; i < dp->n_inflight; i++) {
		dp->st.lost++;
		if (drop)
			drop(arg, DIST_OUT, dp->inflight[i].id);
	}
	dp->n_inflight = 0;
	dp->level = 0;
	update_filling(dp);
	/* Late ACCEPTs of cancelled offers must not be pushed. */
	dp->out_granted = dp->next_id - 1;
	if (first_valid)
		*first_valid = dp->next_id;
	return DIST_RESYNC;
}

int dist_kernel_lost(struct dist_pair *dp, enum dist_dir dir, dist_drop_fn drop, void *arg,
		     uint64_t *first_valid)
{
	if (dir == DIST_OUT)
		return restart_out(dp, drop, arg, first_valid);
	if (dir != DIST_IN)
		return -EINVAL;
	drop_pushed(dp, DIST_IN, drop, arg);
	return DIST_RESYNC_REQ;
}

int dist_peer_resync(struct dist_pair *dp, uint8_t type, dist_drop_fn drop, void *arg,
		     uint64_t *first_valid)
{
	if (type == DIST_RESYNC_REQ)
		return restart_out(dp, drop, arg, first_valid);
	if (type != DIST_RESYNC)
		return -EINVAL;
	drop_pushed(dp, DIST_IN, drop, arg);
	return 0;
}

/* Wire encoding. */

static size_t put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return (size_t)n;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Body bytes implied by the type and, for OFFER / ACCEPT, the entry count n. */
static size_t body_len(uint8_t type, size_t n)
{
	switch (type) {
	case DIST_OFFER: return 2 + n * DIST_OFFER_ENTRY;
	case DIST_ACCEPT: return 2 + n * DIST_ACCEPT_ENTRY;
	case DIST_RESYNC: return 8;
	case DIST_RESYNC_REQ: return 0;
	}
	return 0;
}

static bool has_entries(uint8_t type)
{
	return type == DIST_OFFER || type == DIST_ACCEPT;
}

/* The checks of dist_encode and dist_decode on the entries: the same rules both ways. */
static int check_entries(const struct dist_msg *m)
{
	if (!has_entries(m->type))
		return m->type == DIST_RESYNC && m->id == 0 ? -1 : 0;
	if (m->n == 0 || m->n > DIST_BATCH_MAX)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const struct dist_entry *e = &m->e[i];

		if (e->id == 0 || (i && e->id <= m->e[i - 1].id))
			return -1;
		if (m->type == DIST_OFFER &&
		    (e->len == 0 || e->len > DIST_MAX_BLOCK ||
		     (e->source != DIST_SRC_LINK && e->source != DIST_SRC_PPETP)))
			return -1;
		if (m->type == DIST_ACCEPT && e->verdict > DIST_V_ERROR)
			return -1;
	}
	return 0;
}

long dist_encode(const struct dist_msg *m, uint8_t *buf, size_t buflen)
{
	size_t le, ld, off = 0, need;

	if (m->type == 0 || m->type >= __DIST_MSG_LAST || m->type == 3 || !valid_id(m->enc) ||
	    !valid_id(m->dec) || check_entries(m))
		return -EINVAL;
	le = strlen(m->enc);
	ld = strlen(m->dec);
	need = 4 + 1 + le + 1 + ld + body_len(m->type, m->n);
	if (need > buflen)
		return -ENOSPC;
	buf[off++] = DIST_VERSION;
	buf[off++] = m->type;
	off += put_be(buf + off, 0, 2);
	buf[off++] = (uint8_t)le;
	memcpy(buf + off, m->enc, le);
	off += le;
	buf[off++] = (uint8_t)ld;
	memcpy(buf + off, m->dec, ld);
	off += ld;
	if (has_entries(m->type))
		off += put_be(buf + off, m->n, 2);
	switch (m->type) {
	case DIST_OFFER:
		for (size_t i = 0; i < m->n; i++) {
			off += put_be(buf + off, m->e[i].id, 8);
			off += put_be(buf + off, m->e[i].len, 4);
			buf[off++] = m->e[i].source;
			off += put_be(buf + off, m->e[i].ref, 8);
			off += put_be(buf + off, m->e[i].ref_off, 4);
		}
		break;
	case DIST_ACCEPT:
		for (size_t i = 0; i < m->n; i++) {
			off += put_be(buf + off, m->e[i].id, 8);
			buf[off++] = m->e[i].verdict;
		}
		break;
	case DIST_RESYNC:
		off += put_be(buf + off, m->id, 8);
		break;
	default:
		break;
	}
	return (long)off;
}

static int get_id(const uint8_t *buf, size_t len, size_t *off, char *id)
{
	size_t n;

	if (*off >= len)
		return -EBADMSG;
	n = buf[*off];
	if (n == 0 || n > DIST_ID_MAX || len - *off - 1 < n)
		return -EBADMSG;
	memcpy(id, buf + *off + 1, n);
	id[n] = '\0';
	*off += 1 + n;
	/* An embedded NUL would make the id shorter than its length byte says. */
	return strlen(id) == n && valid_id(id) ? 0 : -EBADMSG;
}

int dist_decode(const uint8_t *buf, size_t len, struct dist_msg *m)
{
	size_t off = 4;
	const uint8_t *p;

	memset(m, 0, sizeof(*m));
	if (len < 1)
		return -EBADMSG;
	if (buf[0] != DIST_VERSION)
		return -EPROTONOSUPPORT;
	if (len < 4 || buf[1] == 0 || buf[1] >= __DIST_MSG_LAST || buf[1] == 3 || buf[2] ||
	    buf[3])
		return -EBADMSG;
	m->type = buf[1];
	if (get_id(buf, len, &off, m->enc) || get_id(buf, len, &off, m->dec))
		return -EBADMSG;
	if (has_entries(m->type)) {
		if (len - off < 2)
			return -EBADMSG;
		m->n = (uint16_t)get_be(buf + off, 2);
		if (m->n == 0 || m->n > DIST_BATCH_MAX)
			return -EBADMSG;
		off += 2;
	}
	if (len - off != body_len(m->type, m->n) - (has_entries(m->type) ? 2 : 0))
		return -EBADMSG;
	p = buf + off;
	switch (m->type) {
	case DIST_OFFER:
		for (size_t i = 0; i < m->n; i++, p += DIST_OFFER_ENTRY) {
			m->e[i].id = get_be(p, 8);
			m->e[i].len = (uint32_t)get_be(p + 8, 4);
			m->e[i].source = p[12];
			m->e[i].ref = get_be(p + 13, 8);
			m->e[i].ref_off = (uint32_t)get_be(p + 21, 4);
		}
		break;
	case DIST_ACCEPT:
		for (size_t i = 0; i < m->n; i++, p += DIST_ACCEPT_ENTRY) {
			m->e[i].id = get_be(p, 8);
			m->e[i].verdict = p[8];
		}
		break;
	case DIST_RESYNC:
		m->id = get_be(p, 8);
		break;
	default:
		break;
	}
	return check_entries(m) ? -EBADMSG : 0;
}
