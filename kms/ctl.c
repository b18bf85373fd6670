// SPDX-License-Identifier: GPL-2.0
/*
 * Control socket for kmsctl: a UNIX stream socket, mode 0600 (root only when kmsd runs as
 * root). One request line "<command>[ args...][ json]\n", one reply, then the server
 * closes. Replies carry counters, states and key fingerprints, never key bytes.
 * "transfer NODE BYTES" is answered when the transfer commits or fails (the connection is
 * held open meanwhile; a client that goes away does not cancel the transfer).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "kdist.h"
#include "kmsd.h"
#include "log.h"
#include "nbkme.h"
#include "ppetp.h"

void json_str(struct evbuffer *o, const char *s)
{
	evbuffer_add(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			evbuffer_add_printf(o, "\\%c", c);
		else if (c < 0x20)
			evbuffer_add_printf(o, "\\u%04x", c);
		else
			evbuffer_add(o, s, 1);
	}
	evbuffer_add(o, "\"", 1);
}

static double mismatch_rate(const struct store_link_stats *s)
{
	uint64_t judged = s->verified_total + s->mismatched_total;

	return judged ? (double)s->mismatched_total / judged : 0.0;
}

static void cmd_status(struct kmsd *d, struct evbuffer *o, int json)
{
	size_t up = 0, reachable = 0;
	struct rt_route r;

	for (size_t i = 0; i < d->n_links; i++)
		up += d->links[i].peer != NULL;
	for (size_t i = 0; rt_get(d->rt, i, &r); i++)
		reachable += r.status != RT_STATUS_UNREACHABLE;
	if (json) {
		evbuffer_add_printf(o, "{\"node\":");
		json_str(o, d->cf.node_id);
		evbuffer_add_printf(o, ",\"pid\":%d,\"uptime\":%lld,\"store\":", (int)getpid(),
				    (long long)(time(NULL) - d->started));
		json_str(o, d->cf.store);
		evbuffer_add_printf(o, ",\"links\":%zu,\"links_up\":%zu,\"routes\":%zu,"
				    "\"routes_reachable\":%zu,\"route_adverts_tx\":%llu,"
				    "\"route_adverts_rx\":%llu,\"route_adverts_bad\":%llu",
				    d->n_links, up, rt_count(d->rt), reachable,
				    (unsigned long long)d->rt_adverts_tx,
				    (unsigned long long)d->rt_adverts_rx,
				    (unsigned long long)d->rt_adverts_bad);
		xfer_ctl_status(d, o, 1);
		evbuffer_add_printf(o, "}\n");
		return;
	}
	evbuffer_add_printf(o, "node: %s\npid: %d\nuptime: %llds\nlisten: %s\nstore: %s\n"
			    "links: %zu (%zu up)\nroutes: %zu (%zu reachable)\n"
			    "route adverts: %llu sent, %llu received, %llu refused\n",
			    d->cf.node_id, (int)getpid(),
			    (long long)(time(NULL) - d->started), d->cf.listen, d->cf.store,
			    d->n_links, up, rt_count(d->rt), reachable,
			    (unsigned long long)d->rt_adverts_tx,
			    (unsigned long long)d->rt_adverts_rx,
			    (unsigned long long)d->rt_adverts_bad);
	xfer_ctl_status(d, o, 0);
}

static void cmd_routes(struct kmsd *d, struct evbuffer *o, int json)
{
	uint64_t now = mono_ms();
	struct rt_neighbour_info nb;
	struct rt_route r;

	if (json) {
		evbuffer_add_printf(o, "{\"node\":");
		json_str(o, d->cf.node_id);
		evbuffer_add_printf(o, ",\"routes\":[");
	} else {
		evbuffer_add_printf(o, "%-24s %-24s %6s  %-11s %s\n", "DESTINATION", "NEXT HOP",
				    "METRIC", "STATUS", "CHANGED");
	}
	for (size_t i = 0; rt_get(d->rt, i, &r); i++) {
		unsigned long long age = now > r.changed_ms ? now - r.changed_ms : 0;

		if (!json) {
			evbuffer_add_printf(o, "%-24s %-24s %6u  %-11s %llu.%01llus ago\n", r.dest,
					    r.next_hop[0] ? r.next_hop : "-", r.metric,
					    rt_status_name(r.status), age / 1000, age % 1000 / 100);
			continue;
		}
		evbuffer_add_printf(o, "%s{\"dest\":", i ? "," : "");
		json_str(o, r.dest);
		evbuffer_add_printf(o, ",\"next_hop\":");
		if (r.next_hop[0])
			json_str(o, r.next_hop);
		else
			evbuffer_add_printf(o, "null");
		evbuffer_add_printf(o, ",\"metric\":%u,\"status\":\"%s\",\"changed_ms_ago\":%llu}",
				    r.metric, rt_status_name(r.status), age);
	}
	if (json)
		evbuffer_add_printf(o, "],\"neighbours\":[");
	else
		evbuffer_add_printf(o, "neighbours:\n");
	for (size_t i = 0; rt_get_neighbour(d->rt, i, &nb); i++) {
		long long heard = nb.heard_ms ? (long long)(now - nb.heard_ms) : -1;

		if (!json) {
			evbuffer_add_printf(o, "  %-24s %-4s cost %u, %u destinations advertised, ",
					    nb.id, nb.up ? "up" : "down", nb.cost, nb.entries);
			if (heard < 0)
				evbuffer_add_printf(o, "never heard\n");
			else
				evbuffer_add_printf(o, "heard %lld.%01llds ago\n", heard / 1000,
						    heard % 1000 / 100);
			continue;
		}
		evbuffer_add_printf(o, "%s{\"id\":", i ? "," : "");
		json_str(o, nb.id);
		evbuffer_add_printf(o, ",\"up\":%s,\"cost\":%u,\"entries\":%u,"
				    "\"heard_ms_ago\":%lld}", nb.up ? "true" : "false", nb.cost,
				    nb.entries, heard);
	}
	if (json)
		evbuffer_add_printf(o, "]}\n");
}

static void cmd_links(struct kmsd *d, struct evbuffer *o, int json)
{
	if (json)
		evbuffer_add_printf(o, "[");
	for (size_t i = 0; i < d->n_links; i++) {
		struct link *l = &d->links[i];
		struct store_link_stats s;
		char qkd[KMS_ADDR_MAX + 2 * KMS_SAE_ID_MAX + 64];

		if (store_link_stats(d->st, l->nb.id, &s))
			memset(&s, 0, sizeof(s));
		l->qkd->ops->describe(l->qkd, qkd, sizeof(qkd));
		if (json) {
			evbuffer_add_printf(o, "%s{\"peer\":", i ? "," : "");
			json_str(o, l->nb.id);
			evbuffer_add_printf(o, ",\"address\":");
			json_str(o, l->nb.address);
			evbuffer_add_printf(o, ",\"connected\":%s,\"role\":\"%s\",\"qkd\":",
					    l->peer ? "true" : "false",
					    l->cache.leader ? "leader" : "follower");
			json_str(o, qkd);
			if (l->qkd->ops->ctl)
				l->qkd->ops->ctl(l->qkd, o, 1);
			evbuffer_add_printf(o, ",\"qkd_up\":%s,\"qkd_blocks\":%llu,"
					    "\"verified_blocks\":%llu,\"verified_bytes\":%llu,"
					    "\"verified_total\":%llu,\"mismatched_total\":%llu,"
					    "\"orphaned_total\":%llu,\"mismatch_rate\":%.6f,"
					    "\"rounds\":%llu,\"rounds_timed_out\":%llu,"
					    "\"round_cap\":%u,\"rounds_shrunk\":%llu,"
					    "\"connects\":%llu,\"surplus_dropped_bytes\":%llu,"
					    "\"last_error\":",
					    l->qkd_up ? "true" : "false",
					    (unsigned long long)l->qkd_blocks,
					    (unsigned long long)s.blocks[BS_VERIFIED],
					    (unsigned long long)s.bytes[BS_VERIFIED],
					    (unsigned long long)s.verified_total,
					    (unsigned long long)s.mismatched_total,
					    (unsigned long long)s.orphaned_total, mismatch_rate(&s),
					    (unsigned long long)l->cache.rounds,
					    (unsigned long long)l->cache.rounds_timed_out,
					    l->cache.cap,
					    (unsigned long long)l->cache.rounds_shrunk,
					    (unsigned long long)l->connects,
					    (unsigned long long)l->surplus_bytes);
			json_str(o, l->last_error);
			evbuffer_add_printf(o, "}");
			continue;
		}
		evbuffer_add_printf(o, "link %s\n  address: %s\n  peer: %s%s%s\n  role: %s\n"
				    "  qkd: %s, %s, %llu blocks received\n"
				    "  verified: %llu blocks, %llu bytes\n"
				    "  mismatch rate: %.2f%% (%llu of %llu blocks), %llu orphaned\n"
				    "  rounds: %llu (%llu timed out), next %u blocks (%llu over budget)\n",
				    l->nb.id, l->nb.address[0] ? l->nb.address : "(inbound only)",
				    l->peer ? "connected" : "down",
				    !l->peer && l->last_error[0] ? ", last error: " : "",
				    !l->peer ? l->last_error : "",
				    l->cache.leader ? "leader" : "follower", qkd,
				    l->qkd_up ? "up" : "down",
				    (unsigned long long)l->qkd_blocks,
				    (unsigned long long)s.blocks[BS_VERIFIED],
				    (unsigned long long)s.bytes[BS_VERIFIED],
				    100.0 * mismatch_rate(&s),
				    (unsigned long long)s.mismatched_total,
				    (unsigned long long)(s.verified_total + s.mismatched_total),
				    (unsigned long long)s.orphaned_total,
				    (unsigned long long)l->cache.rounds,
				    (unsigned long long)l->cache.rounds_timed_out, l->cache.cap,
				    (unsigned long long)l->cache.rounds_shrunk);
		if (l->surplus_bytes)
			evbuffer_add_printf(o, "  idle direction's key dropped for room: %llu bytes\n",
					    (unsigned long long)l->surplus_bytes);
		if (l->qkd->ops->ctl)
			l->qkd->ops->ctl(l->qkd, o, 0);
	}
	if (json)
		evbuffer_add_printf(o, "]\n");
}

struct rates {
	double window_s, qkd_bps, verified_per_s, used_bps;
};

/* Rates between the oldest and the newest of the last RATE_SAMPLES one-second samples. */
static struct rates link_rates(const struct link *l)
{
	struct rates r = { 0 };
	const struct rate_sample *a, *b;

	if (l->rs_n < 2)
		return r;
	b = &l->rs[(l->rs_next + RATE_SAMPLES - 1) % RATE_SAMPLES];
	a = &l->rs[(l->rs_next + RATE_SAMPLES - l->rs_n) % RATE_SAMPLES];
	if (b->ms <= a->ms)
		return r;
	r.window_s = (b->ms - a->ms) / 1000.0;
	r.qkd_bps = (b->qkd_bytes - a->qkd_bytes) / r.window_s;
	r.verified_per_s = (b->verified_blocks - a->verified_blocks) / r.window_s;
	r.used_bps = (b->used_bytes - a->used_bytes) / r.window_s;
	return r;
}

static void cmd_keys(struct kmsd *d, struct evbuffer *o, int json)
{
	if (json)
		evbuffer_add_printf(o, "[");
	for (size_t i = 0; i < d->n_links; i++) {
		struct store_link_stats s;
		struct rates r = link_rates(&d->links[i]);

		if (store_link_stats(d->st, d->links[i].nb.id, &s))
			memset(&s, 0, sizeof(s));
		if (json) {
			evbuffer_add_printf(o, "%s{\"link\":", i ? "," : "");
			json_str(o, d->links[i].nb.id);
			for (int st = 0; st < __BS_LAST; st++)
				evbuffer_add_printf(o, ",\"%s\":{\"blocks\":%llu,\"bytes\":%llu}",
						    block_state_name(st),
						    (unsigned long long)s.blocks[st],
						    (unsigned long long)s.bytes[st]);
			evbuffer_add_printf(o, ",\"rates\":{\"window_s\":%.1f,\"qkd_bytes_per_s\":%.0f,"
					    "\"verified_blocks_per_s\":%.2f,\"used_bytes_per_s\":%.0f}}",
					    r.window_s, r.qkd_bps, r.verified_per_s, r.used_bps);
			continue;
		}
		evbuffer_add_printf(o, "link %s\n", d->links[i].nb.id);
		for (int st = 0; st < __BS_LAST; st++)
			evbuffer_add_printf(o, "  %-10s %10llu blocks %14llu bytes\n",
					    block_state_name(st), (unsigned long long)s.blocks[st],
					    (unsigned long long)s.bytes[st]);
		evbuffer_add_printf(o, "  rates over %.0f s: QKD in %.0f B/s, verified %.2f blocks/s, "
				    "used %.0f B/s\n", r.window_s, r.qkd_bps, r.verified_per_s,
				    r.used_bps);
	}
	if (json)
		evbuffer_add_printf(o, "]\n");
}

static const struct {
	const char *name;
	void (*fn)(struct kmsd *d, struct evbuffer *o, int json);
} commands[] = {
	{ "status", cmd_status },
	{ "links", cmd_links },
	{ "keys", cmd_keys },
	{ "routes", cmd_routes },
	{ "pairs", kd_ctl_pairs },
	{ "transfers", xfer_ctl_transfers },
	{ "saes", nb_ctl },
};

struct ctl_req {
	struct ctl_req *next;
	struct bufferevent *bev;
	uint64_t cookie, start_ms;
	int json;
	int answered;			/* answer written, held until the store group commits */
};

static void ctl_done_cb(struct bufferevent *bev, void *arg);
static void ctl_event_cb(struct bufferevent *bev, short what, void *arg);

static struct ctl_req *req_unlink(struct kmsd *d, struct bufferevent *bev, uint64_t cookie)
{
	for (struct ctl_req **pp = &d->ctl_reqs; *pp; pp = &(*pp)->next) {
		struct ctl_req *r = *pp;

		if ((bev && r->bev == bev) || (!bev && !r->answered && r->cookie == cookie)) {
			*pp = r->next;
			return r;
		}
	}
	return NULL;
}

/* The client went away before the end: the transfer goes on, nobody is told. */
static void req_event_cb(struct bufferevent *bev, short what, void *arg)
{
	free(req_unlink(arg, bev, 0));
	bufferevent_free(bev);
}

static void answer(struct kmsd *d, struct ctl_req *r)
{
	bufferevent_setcb(r->bev, NULL, ctl_done_cb, ctl_event_cb, d);
	bufferevent_enable(r->bev, EV_WRITE);
	free(r);
}

void ctl_release_held(struct kmsd *d)
{
	struct ctl_req **pp = &d->ctl_reqs, *r;

	while ((r = *pp)) {
		if (r->answered) {
			*pp = r->next;
			answer(d, r);
		} else {
			pp = &r->next;
		}
	}
}

void ctl_xfer_done(struct kmsd *d, uint64_t cookie, int err, const char *dst, uint64_t txid,
		   size_t len, const uint8_t *fp)
{
	struct ctl_req *r = req_unlink(d, NULL, cookie);
	struct evbuffer *o;
	unsigned long long ms;

	if (!r)
		return;
	/* written now, sent once the key it reports is committed (ctl_release_held) */
	bufferevent_disable(r->bev, EV_WRITE);
	o = bufferevent_get_output(r->bev);
	ms = (unsigned long long)(mono_ms() - r->start_ms);
	if (err) {
		evbuffer_add_printf(o, "error: transfer to %s failed: %s\n", dst, xfer_strerror(err));
	} else if (r->json) {
		evbuffer_add_printf(o, "{\"dst\":\"%s\",\"bytes\":%zu,\"txid\":\"%016" PRIx64
				    "\",\"fingerprint\":\"%02x%02x%02x%02x%02x%02x%02x%02x\","
				    "\"ms\":%llu}\n", dst, len, txid, fp[0], fp[1], fp[2], fp[3],
				    fp[4], fp[5], fp[6], fp[7], ms);
	} else {
		evbuffer_add_printf(o, "transfer to %s committed: %zu bytes, txid %016" PRIx64
				    ", fingerprint %02x%02x%02x%02x%02x%02x%02x%02x, %llu ms\n",
				    dst, len, txid, fp[0], fp[1], fp[2], fp[3], fp[4], fp[5], fp[6],
				    fp[7], ms);
	}
	if (!store_group_pending(d->st)) {
		answer(d, r);
		return;
	}
	r->answered = 1;
	r->next = d->ctl_reqs;
	d->ctl_reqs = r;
}

/* transfer NODE BYTES: starts a key transfer + PPETP relay; answered by ctl_xfer_done. */
static int cmd_transfer(struct kmsd *d, struct bufferevent *bev, char *args, int json)
{
	struct evbuffer *o = bufferevent_get_output(bev);
	char *node = strtok(args, " "), *bytes = strtok(NULL, " "), *end;
	struct ctl_req *r;
	unsigned long len;
	int rc;

	if (!node || !bytes || strtok(NULL, " ")) {
		evbuffer_add_printf(o, "error: usage: transfer NODE BYTES\n");
		return 0;
	}
	errno = 0;
	len = strtoul(bytes, &end, 10);
	if (bytes[0] < '0' || bytes[0] > '9' || *end || errno || len == 0 ||
	    len > PPETP_MAX_LEN) {
		evbuffer_add_printf(o, "error: byte count must be 1..%d: `%.32s'\n",
				    PPETP_MAX_LEN, bytes);
		return 0;
	}
	if (!config_valid_id(node) || !strcmp(node, d->cf.node_id)) {
		evbuffer_add_printf(o, "error: not a node id other than ours: `%.64s'\n", node);
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		evbuffer_add_printf(o, "error: out of memory\n");
		return 0;
	}
	r->bev = bev;
	r->cookie = ++d->ctl_next_cookie;
	r->start_ms = mono_ms();
	r->json = json;
	rc = xfer_start(d, node, len, r->cookie);
	if (rc) {
		free(r);
		evbuffer_add_printf(o, "error: transfer to %s not started: %s\n", node,
				    rc == -ENOSPC ? "no verified link block of that many bytes "
				    "toward the next hop (one transfer uses one block per hop)" :
				    strerror(-rc));
		return 0;
	}
	r->next = d->ctl_reqs;
	d->ctl_reqs = r;
	return 1;
}

static void ctl_done_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct kmsd *d = arg;
	struct evbuffer *o = bufferevent_get_output(bev);
	size_t n;
	char *line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_LF);
	char *arg2;
	int json = 0;
	size_t i;

	if (!line) {
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 256)
			bufferevent_free(bev);
		return;
	}
	arg2 = strchr(line, ' ');
	if (arg2) {
		size_t al;

		*arg2++ = '\0';
		al = strlen(arg2);
		if (!strcmp(arg2, "json") || (al > 5 && !strcmp(arg2 + al - 5, " json"))) {
			json = 1;
			arg2[al > 5 ? al - 5 : 0] = '\0';
		}
	}
	if (!strcmp(line, "transfer")) {
		bufferevent_disable(bev, EV_READ);
		if (cmd_transfer(d, bev, arg2 ? arg2 : (char *)"", json)) {
			bufferevent_setcb(bev, NULL, NULL, req_event_cb, d);
			free(line);
			return;
		}
		free(line);
		bufferevent_setcb(bev, NULL, ctl_done_cb, ctl_event_cb, d);
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(line, commands[i].name)) {
			commands[i].fn(d, o, json);
			break;
		}
	}
	if (i == sizeof(commands) / sizeof(commands[0]))
		evbuffer_add_printf(o, "error: unknown command `%.32s'\n", line);
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_done_cb, ctl_event_cb, d);
}

static void ctl_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	struct kmsd *d = arg;
	struct bufferevent *bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_read_cb, NULL, ctl_event_cb, d);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int ctl_listen(struct kmsd *d)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(d->cf.control) >= sizeof(sun.sun_path)) {
		log_warnx("control socket path too long: `%s'", d->cf.control);
		return -1;
	}
	strcpy(sun.sun_path, d->cf.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("socket");
		return -1;
	}
	unlink(sun.sun_path);
	/* created 0600 from the start: no window in which others could connect */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		log_warn("bind %s", d->cf.control);
		close(fd);
		return -1;
	}
	umask(old);
	d->ctl = evconnlistener_new(d->base, ctl_accept_cb, d, LEV_OPT_CLOSE_ON_FREE, 8, fd);
	if (!d->ctl) {
		log_warn("listen %s", d->cf.control);
		close(fd);
		return -1;
	}
	return 0;
}

void ctl_close(struct kmsd *d)
{
	while (d->ctl_reqs) {
		struct ctl_req *r = d->ctl_reqs;

		d->ctl_reqs = r->next;
		bufferevent_free(r->bev);
		free(r);
	}
	if (d->ctl) {
		evconnlistener_free(d->ctl);
		unlink(d->cf.control);
		d->ctl = NULL;
	}
}
