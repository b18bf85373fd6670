// SPDX-License-Identifier: GPL-2.0
/*
 * Key routing: distance vector with split horizon, poisoned reverse and triggered updates.
 * See route.h for the model. The table is recomputed from the stored neighbour vectors
 * after every event; with at most RT_MAX_NODES destinations and RT_MAX_NEIGHBOURS
 * neighbours that is cheap, and it makes the result a pure function of (links, vectors),
 * which is what the tests check against breadth-first distances.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "nodeid.h"

_Static_assert(RT_ID_MAX == KMS_NODE_ID_MAX, "node ids have one length bound");

struct nbr {
	char id[RT_ID_MAX + 1];
	bool up;
	uint8_t cost;
	uint64_t heard_ms;
	struct rt_entry *vec;		/* sorted by dest, no duplicates, no entry for us */
	size_t n;
};

struct route {
	struct rt_route r;
	uint64_t unreach_ms;		/* when it became unreachable */
};

struct rt {
	char self[RT_ID_MAX + 1];
	uint64_t timeout_ms, gc_ms;
	struct nbr nb[RT_MAX_NEIGHBOURS];
	size_t n_nb;
	struct route *tab;		/* sorted by dest */
	size_t n_tab, cap_tab;
	bool changed;
};

int rt_valid_id(const char *s)
{
	return node_id_valid(s);
}

const char *rt_status_name(enum rt_status s)
{
	switch (s) {
	case RT_STATUS_DIRECT: return "direct";
	case RT_STATUS_VIA: return "via";
	case RT_STATUS_UNREACHABLE: return "unreachable";
	}
	return "?";
}

struct rt *rt_new(const char *self, const struct rt_config *cfg)
{
	struct rt *rt;

	if (!rt_valid_id(self))
		return NULL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	strcpy(rt->self, self);
	rt->timeout_ms = cfg && cfg->timeout_ms ? cfg->timeout_ms : RT_TIMEOUT_MS;
	rt->gc_ms = cfg && cfg->gc_ms ? cfg->gc_ms : RT_GC_MS;
	return rt;
}

void rt_free(struct rt *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->n_nb; i++)
		free(rt->nb[i].vec);
	free(rt->tab);
	free(rt);
}

const char *rt_self(const struct rt *rt)
{
	return rt->self;
}

static struct nbr *find_nbr(const struct rt *rt, const char *id)
{
	for (size_t i = 0; i < rt->n_nb; i++)
		if (!strcmp(rt->nb[i].id, id))
			return (struct nbr *)&rt->nb[i];
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct rt_entry *)a)->dest, ((const struct rt_entry *)b)->dest);
}

static int cmp_route(const void *a, const void *b)
{
	return strcmp(((const struct route *)a)->r.dest, ((const struct route *)b)->r.dest);
}

static struct route *find_route(const struct rt *rt, const char *dest)
{
	struct route key;

	if (!rt->n_tab)
		return NULL;
	strcpy(key.r.dest, dest);
	return bsearch(&key, rt->tab, rt->n_tab, sizeof(*rt->tab), cmp_route);
}

/* Metric of dest through neighbour b, RT_INFINITY if b cannot reach it. */
static uint8_t metric_via(const struct nbr *b, const char *dest)
{
	struct rt_entry key, *e;
	unsigned int m;

	if (!b->up)
		return RT_INFINITY;
	if (!strcmp(b->id, dest))
		return b->cost;
	if (!b->n)
		return RT_INFINITY;
	strcpy(key.dest, dest);
	e = bsearch(&key, b->vec, b->n, sizeof(*b->vec), cmp_entry);
	if (!e)
		return RT_INFINITY;
	m = (unsigned int)e->metric + b->cost;
	return m >= RT_INFINITY ? RT_INFINITY : (uint8_t)m;
}

static bool avoided(const char *id, const char *const *avoid, size_t n_avoid)
{
	for (size_t i = 0; i < n_avoid; i++)
		if (avoid[i] && !strcmp(avoid[i], id))
			return true;
	return false;
}

/*
 * Best neighbour toward dest: lowest metric; on a tie keep prefer (the current next hop, so
 * equal-cost paths do not flap), else the lowest id so every run decides the same way.
 */
static const struct nbr *best_via(const struct rt *rt, const char *dest, const char *prefer,
				  const char *const *avoid, size_t n_avoid, uint8_t *metric)
{
	const struct nbr *best = NULL;
	uint8_t bm = RT_INFINITY;

	for (size_t i = 0; i < rt->n_nb; i++) {
		const struct nbr *b = &rt->nb[i];
		uint8_t m;

		if (avoided(b->id, avoid, n_avoid))
			continue;
		m = metric_via(b, dest);
		if (m >= RT_INFINITY)
			continue;
		if (!best || m < bm ||
		    (m == bm && strcmp(best->id, prefer) && (!strcmp(b->id, prefer) ||
							     strcmp(b->id, best->id) < 0))) {
			best = b;
			bm = m;
		}
	}
	*metric = bm;
	return best;
}

static int add_route(struct rt *rt, const char *dest)
{
	struct route *r;

	if (find_route(rt, dest))
		return 0;
	if (rt->n_tab >= RT_MAX_NODES)
		return -ENOSPC;
	if (rt->n_tab == rt->cap_tab) {
		size_t cap = rt->cap_tab ? rt->cap_tab * 2 : 16;
		struct route *t = realloc(rt->tab, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		rt->tab = t;
		rt->cap_tab = cap;
	}
	r = &rt->tab[rt->n_tab++];
	memset(r, 0, sizeof(*r));
	strcpy(r->r.dest, dest);
	r->r.metric = RT_INFINITY;
	r->r.status = RT_STATUS_UNREACHABLE;
	qsort(rt->tab, rt->n_tab, sizeof(*rt->tab), cmp_route);
	return 0;
}

/*
 * Brings every destination any up neighbour offers into the table (unreachable offers are
 * not learnt), then recomputes each row. A table full of RT_MAX_NODES rows silently stops
 * learning new destinations: a hostile neighbour cannot grow our memory without bound.
 */
static void recompute(struct rt *rt, uint64_t now_ms)
{
	for (size_t i = 0; i < rt->n_nb; i++) {
		const struct nbr *b = &rt->nb[i];

		if (!b->up)
			continue;
		add_route(rt, b->id);
		for (size_t j = 0; j < b->n; j++)
			if (metric_via(b, b->vec[j].dest) < RT_INFINITY)
				add_route(rt, b->vec[j].dest);
	}
	for (size_t i = 0; i < rt->n_tab; i++) {
		struct route *r = &rt->tab[i];
		const struct nbr *b;
		uint8_t m;

		b = best_via(rt, r->r.dest, r->r.next_hop, NULL, 0, &m);
		if (!b) {
			if (r->r.status != RT_STATUS_UNREACHABLE) {
				r->r.status = RT_STATUS_UNREACHABLE;
				r->r.metric = RT_INFINITY;
				r->r.next_hop[0] = '\0';
				r->r.changed_ms = now_ms;
				r->unreach_ms = now_ms;
				rt->changed = true;
			}
			continue;
		}
		if (r->r.metric != m || strcmp(r->r.next_hop, b->id)) {
			r->r.metric = m;
			strcpy(r->r.next_hop, b->id);
			r->r.changed_ms = now_ms;
			rt->changed = true;
		}
		r->r.status = strcmp(b->id, r->r.dest) ? RT_STATUS_VIA : RT_STATUS_DIRECT;
	}
}

int rt_link_up(struct rt *rt, const char *nbr, uint8_t cost, uint64_t now_ms)
{
	struct nbr *b;

	if (!rt_valid_id(nbr) || !strcmp(nbr, rt->self) || cost == 0 || cost >= RT_INFINITY)
		return -EINVAL;
	b = find_nbr(rt, nbr);
	if (!b) {
		if (rt->n_nb >= RT_MAX_NEIGHBOURS)
			return -ENOSPC;
		b = &rt->nb[rt->n_nb++];
		memset(b, 0, sizeof(*b));
		strcpy(b->id, nbr);
	}
	if (b->up && b->cost == cost)
		return 0;
	b->up = true;
	b->cost = cost;
	recompute(rt, now_ms);
	return 0;
}

int rt_link_down(struct rt *rt, const char *nbr, uint64_t now_ms)
{
	struct nbr *b = rt_valid_id(nbr) ? find_nbr(rt, nbr) : NULL;

	if (!b)
		return -ENOENT;
	if (!b->up)
		return 0;
	b->up = false;
	free(b->vec);
	b->vec = NULL;
	b->n = 0;
	recompute(rt, now_ms);
	return 0;
}

int rt_recv_advert(struct rt *rt, const char *from, const struct rt_entry *e, size_t n,
		   uint64_t now_ms)
{
	struct nbr *b = rt_valid_id(from) ? find_nbr(rt, from) : NULL;
	struct rt_entry *vec = NULL;
	size_t k = 0;

	if (!b || !b->up)
		return -ENOENT;
	if (n > RT_MAX_NODES)
		return -EINVAL;
	if (n) {
		vec = calloc(n, sizeof(*vec));
		if (!vec)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!rt_valid_id(e[i].dest) || e[i].metric > RT_INFINITY) {
			free(vec);
			return -EINVAL;
		}
		/* Entries for us carry nothing: our distance to ourselves is 0. */
		if (!strcmp(e[i].dest, rt->self))
			continue;
		vec[k++] = e[i];
	}
	if (k)
		qsort(vec, k, sizeof(*vec), cmp_entry);
	for (size_t i = 1; i < k; i++) {
		if (!strcmp(vec[i - 1].dest, vec[i].dest)) {
			free(vec);
			return -EINVAL;
		}
	}
	free(b->vec);
	b->vec = vec;
	b->n = k;
	b->heard_ms = now_ms;
	recompute(rt, now_ms);
	return 0;
}

int rt_build_advert(const struct rt *rt, const char *nbr, struct rt_entry *out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < rt->n_tab; i++) {
		const struct route *r = &rt->tab[i];

		if (k >= max)
			return -ENOSPC;
		strcpy(out[k].dest, r->r.dest);
		if (r->r.status == RT_STATUS_UNREACHABLE || !strcmp(r->r.next_hop, nbr))
			out[k].metric = RT_INFINITY;
		else
			out[k].metric = r->r.metric;
		k++;
	}
	return (int)k;
}

void rt_tick(struct rt *rt, uint64_t now_ms)
{
	bool dirty = false;
	size_t k = 0;

	for (size_t i = 0; i < rt->n_nb; i++) {
		struct nbr *b = &rt->nb[i];

		if (b->up && b->n && now_ms - b->heard_ms >= rt->timeout_ms) {
			free(b->vec);
			b->vec = NULL;
			b->n = 0;
			dirty = true;
		}
	}
	if (dirty)
		recompute(rt, now_ms);
	/* Forget unreachable rows after gc_ms; they were advertised as RT_INFINITY until now. */
	for (size_t i = 0; i < rt->n_tab; i++) {
		struct route *r = &rt->tab[i];

		if (r->r.status == RT_STATUS_UNREACHABLE && now_ms - r->unreach_ms >= rt->gc_ms)
			continue;
		rt->tab[k++] = *r;
	}
	rt->n_tab = k;
}

bool rt_take_changed(struct rt *rt)
{
	bool c = rt->changed;

	rt->changed = false;
	return c;
}

int rt_lookup(const struct rt *rt, const char *dest, char *next_hop, uint8_t *metric)
{
	const struct route *r = rt_valid_id(dest) ? find_route(rt, dest) : NULL;

	if (!r || r->r.status == RT_STATUS_UNREACHABLE)
		return -EHOSTUNREACH;
	if (next_hop)
		strcpy(next_hop, r->r.next_hop);
	if (metric)
		*metric = r->r.metric;
	return 0;
}

int rt_lookup_avoid(const struct rt *rt, const char *dest, const char *const *avoid,
		    size_t n_avoid, char *next_hop, uint8_t *metric)
{
	const struct route *r;
	const struct nbr *b;
	uint8_t m;

	if (!rt_valid_id(dest) || !strcmp(dest, rt->self))
		return -EHOSTUNREACH;
	r = find_route(rt, dest);
	b = best_via(rt, dest, r ? r->r.next_hop : "", avoid, n_avoid, &m);
	if (!b)
		return -EHOSTUNREACH;
	if (next_hop)
		strcpy(next_hop, b->id);
	if (metric)
		*metric = m;
	return 0;
}

size_t rt_count(const struct rt *rt)
{
	return rt->n_tab;
}

bool rt_get(const struct rt *rt, size_t i, struct rt_route *out)
{
	if (i >= rt->n_tab)
		return false;
	*out = rt->tab[i].r;
	return true;
}

size_t rt_neighbour_count(const struct rt *rt)
{
	return rt->n_nb;
}

bool rt_get_neighbour(const struct rt *rt, size_t i, struct rt_neighbour_info *out)
{
	const struct nbr *b;

	if (i >= rt->n_nb)
		return false;
	b = &rt->nb[i];
	strcpy(out->id, b->id);
	out->up = b->up;
	out->cost = b->cost;
	out->heard_ms = b->heard_ms;
	out->entries = (uint32_t)b->n;
	return true;
}

/* Wire encoding. */

static size_t put_id(uint8_t *p, const char *id)
{
	size_t n = strlen(id);

	p[0] = (uint8_t)n;
	memcpy(p + 1, id, n);
	return n + 1;
}

/* Reads a length-prefixed id at *off; 0 or -EBADMSG. */
static int get_id(const uint8_t *buf, size_t len, size_t *off, char *id)
{
	size_t n;

	if (*off >= len)
		return -EBADMSG;
	n = buf[*off];
	if (n == 0 || n > RT_ID_MAX || len - *off - 1 < n)
		return -EBADMSG;
	memcpy(id, buf + *off + 1, n);
	id[n] = '\0';
	/* An embedded NUL would make the id shorter than its length byte says. */
	if (strlen(id) != n || !rt_valid_id(id))
		return -EBADMSG;
	*off += n + 1;
	return 0;
}

long rt_advert_encode(const char *origin, const struct rt_entry *e, size_t n, uint8_t *buf,
		      size_t buflen)
{
	size_t need = 5 + strnlen(origin, RT_ID_MAX + 1), off;

	if (!rt_valid_id(origin) || n > RT_MAX_NODES)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!rt_valid_id(e[i].dest) || e[i].metric > RT_INFINITY ||
		    (i && strcmp(e[i - 1].dest, e[i].dest) >= 0))
			return -EINVAL;
		need += 2 + strlen(e[i].dest);
	}
	if (need > buflen)
		return -ENOSPC;
	buf[0] = RT_WIRE_VERSION;
	buf[1] = 0;
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	off = 4 + put_id(buf + 4, origin);
	for (size_t i = 0; i < n; i++) {
		buf[off++] = e[i].metric;
		off += put_id(buf + off, e[i].dest);
	}
	return (long)off;
}

long rt_advert_decode(const uint8_t *buf, size_t len, char *origin, struct rt_entry *e,
		      size_t max)
{
	size_t off = 4, n;

	if (len < 1)
		return -EBADMSG;
	if (buf[0] != RT_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	if (len < 4 || buf[1] != 0)
		return -EBADMSG;
	n = (size_t)buf[2] << 8 | buf[3];
	if (n > RT_MAX_NODES)
		return -EBADMSG;
	if (n > max)
		return -E2BIG;
	if (get_id(buf, len, &off, origin))
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (off >= len || buf[off] > RT_INFINITY)
			return -EBADMSG;
		e[i].metric = buf[off++];
		if (get_id(buf, len, &off, e[i].dest))
			return -EBADMSG;
		if (i && strcmp(e[i - 1].dest, e[i].dest) >= 0)
			return -EBADMSG;
	}
	if (off != len)
		return -EBADMSG;
	return (long)n;
}
