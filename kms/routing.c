// SPDX-License-Identifier: GPL-2.0
/*
 * Key routing in kmsd (Documentation/key-routing.md, "Key routing"): route.c's distance
 * vector, fed by the peer sessions. A neighbour's link is up for routing exactly while its
 * peer session is identified (HELLO received) and down as soon as the session closes (EOF,
 * keepalive timeout, bad frame). Advertisements (MSG_ROUTE_ADVERT) go to every neighbour
 * with an up session: at once after any table change (triggered update), to a neighbour
 * whose session just came up, and to all every RT_UPDATE_MS. rt_tick runs once a second.
 * route.c's clock is CLOCK_MONOTONIC in milliseconds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmsd.h"
#include "log.h"

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int routing_init(struct kmsd *d)
{
	d->rt = rt_new(d->cf.node_id, NULL);
	d->rt_msg = malloc(sizeof(*d->rt_msg));
	if (!d->rt || !d->rt_msg)
		return -1;
	d->rt_last_full_ms = mono_ms();
	return 0;
}

void routing_free(struct kmsd *d)
{
	rt_free(d->rt);
	free(d->rt_msg);
	d->rt = NULL;
	d->rt_msg = NULL;
}

static int up(const struct link *l)
{
	return l->peer && l->peer->hello_rx;
}

static void send_advert(struct link *l)
{
	struct kmsd *d = l->d;
	struct msg *m = d->rt_msg;
	int n = rt_build_advert(d->rt, l->nb.id, m->advert.e, RT_MAX_NODES);

	if (n < 0) {
		log_warnx("link %s: route advert does not fit (%d)", l->nb.id, n);
		return;
	}
	m->type = MSG_ROUTE_ADVERT;
	snprintf(m->advert.origin, sizeof(m->advert.origin), "%s", d->cf.node_id);
	m->advert.count = (uint16_t)n;
	if (peer_send(l->peer, m) == 0)
		d->rt_adverts_tx++;
}

static void send_all(struct kmsd *d)
{
	for (size_t i = 0; i < d->n_links; i++)
		if (up(&d->links[i]))
			send_advert(&d->links[i]);
}

/* Triggered update: returns 1 if the table had changed and every up neighbour was told. */
static int flush(struct kmsd *d)
{
	if (d->stopping || !rt_take_changed(d->rt))
		return 0;
	send_all(d);
	return 1;
}

void routing_peer_up(struct link *l)
{
	int rc = rt_link_up(l->d->rt, l->nb.id, 1, mono_ms());

	if (rc < 0) {
		log_warnx("link %s: routing: cannot add neighbour: %s", l->nb.id, strerror(-rc));
		return;
	}
	log_info("link %s: routing link up", l->nb.id);
	/* a new neighbour needs our whole vector even if our table did not change */
	if (!flush(l->d))
		send_advert(l);
}

void routing_peer_down(struct link *l)
{
	if (rt_link_down(l->d->rt, l->nb.id, mono_ms()) < 0)
		return;
	log_info("link %s: routing link down", l->nb.id);
	flush(l->d);
}

int routing_recv(struct link *l, const struct msg *m)
{
	struct kmsd *d = l->d;
	int rc;

	if (strcmp(m->advert.origin, l->nb.id)) {
		d->rt_adverts_bad++;
		log_warnx("link %s: route advert claims origin `%s'", l->nb.id, m->advert.origin);
		return -1;
	}
	rc = rt_recv_advert(d->rt, l->nb.id, m->advert.e, m->advert.count, mono_ms());
	if (rc < 0) {
		d->rt_adverts_bad++;
		log_warnx("link %s: route advert refused: %s", l->nb.id, strerror(-rc));
		return 0;	/* not fatal: e.g. a race with our own link-down */
	}
	d->rt_adverts_rx++;
	log_debug("link %s: route advert, %u destinations", l->nb.id, m->advert.count);
	flush(d);
	return 0;
}

void routing_tick(struct kmsd *d)
{
	uint64_t now = mono_ms();

	rt_tick(d->rt, now);
	if (now - d->rt_last_full_ms >= RT_UPDATE_MS) {
		d->rt_last_full_ms = now;
		rt_take_changed(d->rt);		/* everybody gets the full vector now */
		if (!d->stopping)
			send_all(d);
		return;
	}
	flush(d);
}
