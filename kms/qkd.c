// SPDX-License-Identifier: GPL-2.0
/* QKD sources: the qkdsimd client (see qkdsim.h for its wire format). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "budget.h"
#include "log.h"
#include "qkd.h"
#include "qkdsim.h"

#define SIM_BATCH 256
#define SIM_RETRY_MS 1000
#define SIM_FLUSH_MS 100
#define SIM_BATCH_BYTES (1024 * 1024 + QKDSIM_HDR_LEN + QKDSIM_MAX_BLOCK)
/* the budget's floor: an eighth of the largest batch (each batch is one commit) */
#define SIM_BATCH_MIN (SIM_BATCH_BYTES / 8)

struct sim_client {
	struct qkd_source src;
	struct event_base *base;
	struct kms_neighbour nb;
	struct qkd_callbacks cb;
	void *arg;
	struct bufferevent *bev;
	struct event *retry, *flush;
	int up, paused, connected;
	size_t batch;				/* bytes the next batch may take */
};

static void sim_connect(struct sim_client *c);

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void set_up(struct sim_client *c, int up)
{
	if (c->up != up) {
		c->up = up;
		c->cb.status(c->arg, up);
	}
}

static void sim_drop(struct sim_client *c, const char *why)
{
	struct timeval tv = { SIM_RETRY_MS / 1000, (SIM_RETRY_MS % 1000) * 1000 };

	if (c->connected || why)
		log_warnx("link %s: QKD simulator %s: %s", c->nb.id, c->nb.qkd_spec,
			  why ? why : "disconnected");
	c->connected = 0;
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	set_up(c, 0);
	event_add(c->retry, &tv);
}

static void sim_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct qkd_block blk[SIM_BATCH];
	size_t n = 0, off = 0, avail = evbuffer_get_length(in);
	uint64_t t0 = budget_now_us();
	uint8_t *p;

	if (c->paused)
		return;
	/*
	 * Process whole frames in place, in batches, so the store commits once per batch.
	 * Linearize only one batch worth of bytes: pulling up the whole buffer on each call
	 * would copy megabytes over and over when the simulator runs at memory speed. A batch
	 * is sized to the time budget (budget.h); the rest waits for the next loop pass.
	 */
	if (avail > c->batch)
		avail = c->batch;
	p = evbuffer_pullup(in, avail);
	if (!p)			/* nothing (or no memory to linearize): next pass */
		return;
	while (avail - off >= QKDSIM_HDR_LEN && n < SIM_BATCH) {
		uint8_t *h = p + off;
		uint32_t len = (uint32_t)h[4] << 24 | h[5] << 16 | h[6] << 8 | h[7];

		if (h[1] || h[2] || h[3] || len > QKDSIM_MAX_BLOCK ||
		    (h[0] != QKDSIM_BLOCK && h[0] != QKDSIM_STATUS) ||
		    (h[0] == QKDSIM_STATUS && len != 0) || (h[0] == QKDSIM_BLOCK && len == 0)) {
			sim_drop(c, "bad frame from the simulator");
			return;
		}
		if (avail - off < QKDSIM_HDR_LEN + len)
			break;
		if (h[0] == QKDSIM_STATUS) {
			if (n) {
				c->cb.blocks(c->arg, blk, n);
				n = 0;
			}
			set_up(c, be64(h + 8) != 0);
		} else {
			blk[n].id = be64(h + 8);
			blk[n].key = h + QKDSIM_HDR_LEN;
			blk[n].len = len;
			n++;
		}
		off += QKDSIM_HDR_LEN + len;
	}
	if (n)
		c->cb.blocks(c->arg, blk, n);
	/* wipe the consumed key bytes before they go back to the buffer pool */
	explicit_bzero(p, off);
	evbuffer_drain(in, off);
	c->batch = budget_next(c->batch, off, budget_now_us() - t0,
			       c->cb.budget_us ? c->cb.budget_us(c->arg) : 0, SIM_BATCH_MIN,
			       SIM_BATCH_BYTES);
	if (evbuffer_get_length(in) >= QKDSIM_HDR_LEN && off > 0)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void sim_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sim_client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		char hello[32];

		c->connected = 1;
		snprintf(hello, sizeof(hello), QKDSIM_HELLO "%c\n", c->nb.qkd_end);
		bufferevent_write(bev, hello, strlen(hello));
		log_info("link %s: connected to QKD simulator %s as end %c", c->nb.id,
			 c->nb.qkd_spec, c->nb.qkd_end);
		return;
	}
	if (what & BEV_EVENT_EOF)
		sim_drop(c, NULL);
	else
		sim_drop(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void sim_connect(struct sim_client *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (!strncmp(c->nb.qkd_spec, "unix:", 5)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", c->nb.qkd_spec + 5);
		len = sizeof(*sun);
	} else if (evutil_parse_sockaddr_port(c->nb.qkd_spec + 4, (struct sockaddr *)&ss, &len)) {
		log_warnx("link %s: bad QKD simulator address: `%s'", c->nb.id, c->nb.qkd_spec);
		return;
	}
	c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		sim_drop(c, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, sim_read_cb, NULL, sim_event_cb, c);
	/* intake is bulk work: the base's lowest priority, behind the key protocols */
	bufferevent_priority_set(c->bev, event_base_get_npriorities(c->base) - 1);
	/*
	 * Each batch costs the store one fsync: wait for a large batch (or the flush timer)
	 * rather than committing every few kilobytes the socket hands us.
	 */
	bufferevent_setwatermark(c->bev, EV_READ, SIM_BATCH_BYTES / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) < 0) {
		c->connected = 0;
		bufferevent_free(c->bev);
		c->bev = NULL;
		sim_drop(c, NULL);
	}
}

/* Blocks that did not fill a batch are still stored within SIM_FLUSH_MS. */
static void sim_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct sim_client *c = arg;

	if (c->bev && c->connected && evbuffer_get_length(bufferevent_get_input(c->bev)))
		sim_read_cb(c->bev, c);
}

static void sim_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	sim_connect(arg);
}

static struct qkd_source *sim_open(struct event_base *base, const struct kms_config *cf,
				   const struct kms_neighbour *nb, const struct qkd_callbacks *cb,
				   void *arg)
{
	struct sim_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->src.ops = qkd_backend_ops(QKD_BACKEND_SIM);
	c->base = base;
	c->nb = *nb;
	c->cb = *cb;
	c->arg = arg;
	c->batch = SIM_BATCH_BYTES;
	c->retry = evtimer_new(base, sim_retry_cb, c);
	c->flush = event_new(base, -1, EV_PERSIST, sim_flush_cb, c);
	if (c->flush)
		event_priority_set(c->flush, event_base_get_npriorities(base) - 1);
	if (!c->retry || !c->flush) {
		if (c->retry)
			event_free(c->retry);
		free(c);
		return NULL;
	}
	{
		struct timeval tv = { 0, SIM_FLUSH_MS * 1000 };

		event_add(c->flush, &tv);
	}
	sim_connect(c);
	return &c->src;
}

static void sim_close(struct qkd_source *src)
{
	struct sim_client *c = (struct sim_client *)src;

	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->retry);
	event_free(c->flush);
	free(c);
}

static void sim_pause(struct qkd_source *src, int paused)
{
	struct sim_client *c = (struct sim_client *)src;

	/* While paused the socket fills and the simulator stops feeding both ends. */
	c->paused = paused;
	if (!c->bev)
		return;
	if (paused)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void sim_describe(struct qkd_source *src, char *buf, size_t len)
{
	struct sim_client *c = (struct sim_client *)src;

	snprintf(buf, len, "qkd-sim %s end %c", c->nb.qkd_spec, c->nb.qkd_end);
}

static const struct qkd_source_ops sim_ops = {
	.name = "qkd-sim",
	.open = sim_open,
	.close = sim_close,
	.pause = sim_pause,
	.describe = sim_describe,
};

const struct qkd_source_ops *qkd_backend_ops(enum qkd_backend backend)
{
	switch (backend) {
	case QKD_BACKEND_SIM:
		return &sim_ops;
	case QKD_BACKEND_ETSI014:
		return &qkd_etsi014_ops;
	default:
		return NULL;
	}
}
