// SPDX-License-Identifier: GPL-2.0
/*
 * kmsd: the key management daemon. Per neighbour it reads raw key blocks from the QKD
 * source of the shared quantum link into the store, and runs key caching with the
 * neighbour's kmsd over the TLS peer channel so both stores end up with the same verified
 * blocks. See Documentation/kms.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "kdist.h"
#include "kmsd.h"
#include "log.h"
#include "nbkme.h"
#include "wipe.h"

static const char *default_conf = "/etc/kmsd/kmsd.conf";

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Group commit (store.h): the store operations of one event-loop pass share a transaction,
 * committed (one fsync) by sync_cb, which runs at KMSD_PRIO_SYNC as soon as the callbacks
 * that were ready in the pass have run. Until then every peer message and transfer answer
 * is held (peer_send, ctl_xfer_done): nothing leaves before the state it depends on is on
 * disk, the rule the kill -9 guarantees rest on (Documentation/kms.md, "Group commit").
 */
static void sync_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct kmsd *d = arg;

	store_group_commit(d->st);
}

void kmsd_sync(struct kmsd *d)
{
	store_group_commit(d->st);
}

static void group_opened(void *arg)
{
	struct kmsd *d = arg;

	event_active(d->sync_ev, EV_TIMEOUT, 0);
}

static void group_done(void *arg, int ok, uint64_t ops)
{
	struct kmsd *d = arg;

	/*
	 * The group's operations (hop keys taken, transfer keys stored, ...) never happened on
	 * disk but did in memory: the only state that agrees with the store again is a fresh
	 * start from it, the same recovery as after kill -9. Nothing held was sent.
	 */
	if (!ok)
		fatalx("store: cannot commit %llu operations: %s; exiting (nothing that depended "
		       "on them left kmsd; a restart recovers from the last commit)",
		       (unsigned long long)ops, store_errmsg(d->st));
	d->groups++;
	d->group_ops += ops;
	if (d->group_ppetp && d->failpoint == FP_PPETP_AFTER_COMMIT) {
		log_warnx("KMSD_FAILPOINT: killed after a group's commit, its PPETP message "
			  "held");
		raise(SIGKILL);
	}
	d->group_ppetp = 0;
	peer_release_held(d);
	ctl_release_held(d);
	nb_release_held(d);
}

static struct cache_params params_of(const struct kms_config *cf)
{
	struct cache_params p = {
		.round_blocks = cf->round_blocks,
		.round_budget_us = cf->round_budget_ms * 1000,
		.min_block_age_ms = cf->min_block_age_ms,
		.lock_timeout_ms = cf->lock_timeout_ms,
		.fresh_max_age_ms = (int64_t)cf->fresh_max_age_s * 1000,
	};

	return p;
}

static int qkd_blocks_cb(void *arg, const struct qkd_block *b, size_t n)
{
	struct link *l = arg;
	int64_t now = now_ms();
	size_t i;
	int rc = 0, dup = 0;

	if (store_begin(l->d->st) < 0) {
		log_warnx("link %s: store: %s; %zu QKD blocks lost", l->nb.id,
			  store_errmsg(l->d->st), n);
		return -1;
	}
	for (i = 0; i < n && rc >= 0; i++) {
		rc = store_add_fresh(l->d->st, l->nb.id, b[i].id, b[i].key, b[i].len, now);
		if (rc == 0)
			l->qkd_bytes += b[i].len;
		if (rc == 1) {
			dup = 1;
			l->qkd_dup++;
			log_warnx("link %s: QKD block %llu seen before, ignored", l->nb.id,
				  (unsigned long long)b[i].id);
		}
	}
	if (rc < 0 || store_commit(l->d->st) < 0) {
		if (rc < 0)
			store_rollback(l->d->st);
		log_warnx("link %s: storing QKD blocks: %s; %zu blocks lost", l->nb.id,
			  store_errmsg(l->d->st), n);
		return -1;
	}
	l->qkd_blocks += n;
	return dup;
}

static void qkd_status_cb(void *arg, int up)
{
	struct link *l = arg;

	l->qkd_up = up;
	log_info("link %s: QKD link %s", l->nb.id, up ? "up" : "down");
}

static unsigned qkd_budget_cb(void *arg)
{
	struct link *l = arg;

	return l->d->cf.round_budget_ms * 1000;
}

static int qkd_send_cb(void *arg, const struct msg *m)
{
	struct link *l = arg;

	return l->peer && l->peer->hello_rx ? peer_send(l->peer, m) : -1;
}

static void round_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct link *l = arg;
	struct peer *p = l->peer;
	struct timeval tv = { l->d->cf.round_interval_ms / 1000,
			      (l->d->cf.round_interval_ms % 1000) * 1000 };

	if (p && p->hello_rx && l->cache.leader && !l->cache.txid &&
	    evbuffer_get_length(bufferevent_get_output(p->bev)) < l->d->cf.write_high_watermark) {
		int rc = cache_round_start(&l->cache, now_ms(), p->out);

		if (rc == 1)
			peer_send(p, p->out);
	}
	event_add(l->round_ev, &tv);
}

static void reconnect_cb(evutil_socket_t fd, short ev, void *arg)
{
	peer_dial(arg);
}

static void rate_sample(struct link *l, uint64_t ms)
{
	struct rate_sample *r = &l->rs[l->rs_next];
	uint64_t v;

	if (store_link_verified_total(l->d->st, l->nb.id, &v))
		return;
	r->ms = (int64_t)ms;
	r->qkd_bytes = l->qkd_bytes;
	r->verified_blocks = v;
	r->used_bytes = l->used_bytes;
	l->rs_next = (l->rs_next + 1) % RATE_SAMPLES;
	if (l->rs_n < RATE_SAMPLES)
		l->rs_n++;
}

/*
 * Bytes free for kmsd on the file system of its store, or -1 if that cannot be read. QKD
 * intake is what fills a store; below store-min-free it pauses on every link, so that the
 * protocols' own transactions keep room: on a full file system every commit fails with
 * "No space left on device", verdicts, transfers and distribution included (seen in a test
 * whose eight link stores filled a tmpfs).
 */
static int64_t store_free_bytes(const struct kmsd *d)
{
	char dir[sizeof(d->cf.store)];
	struct statvfs sv;
	char *slash;

	memcpy(dir, d->cf.store, sizeof(dir));
	dir[sizeof(dir) - 1] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0';	/* "/x.db" -> "/", "a/b.db" -> "a" */
	if (statvfs(dir, &sv))
		return -1;
	return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/*
 * The link's live bytes, after making room when one direction's key fills the store alone.
 * The verified blocks serve the two directions of the pair by id parity. When only one
 * direction draws on them (a one-way RTMP publish: the other side sends acknowledgements,
 * no payload), the idle parity grows by what the busy one uses, and at link-max-bytes the
 * intake would pause with the busy parity empty: its ring starves for good. So while the
 * store is full and one parity is nearly empty (under an eighth of the limit) while the
 * other holds more than a quarter, the oldest blocks of the other make way, down to an
 * eighth below the limit (so that the intake resumes; it pauses, as before, whenever the
 * store is full) but never below a quarter of the limit (what an idle direction keeps for
 * when it wakes up). Two directions that both draw, unevenly, never trigger it: at 1/2
 * instead of 1/8, kms-ring's relays dropped 5 MB every few seconds, half their key.
 */
static int64_t link_make_room(struct kmsd *d, struct link *l)
{
	uint64_t cap = d->cf.link_max_bytes, live, need;
	int64_t unv, par[2], freed, n;
	int idle;

	if (store_link_live_split(d->st, l->nb.id, &unv, par))
		return -1;
	live = (uint64_t)(unv + par[0] + par[1]);
	idle = par[0] > par[1] ? 0 : 1;
	if (live < cap || (uint64_t)par[!idle] >= cap / 8 || (uint64_t)par[idle] <= cap / 4)
		return (int64_t)live;
	need = live - cap + cap / 8;
	if (need > (uint64_t)par[idle] - cap / 4)
		need = (uint64_t)par[idle] - cap / 4;
	for (freed = 0; (uint64_t)freed < need; freed += n) {
		n = store_discard_surplus(d->st, l->nb.id, idle, need - (uint64_t)freed);
		if (n <= 0)
			break;
	}
	if (freed > 0) {
		l->surplus_bytes += (uint64_t)freed;
		log_info("link %s: %lld bytes of %s blocks dropped for room: the store is at "
			 "link-max-bytes and only the %s blocks' direction uses key (%lld bytes "
			 "of those held)", l->nb.id, (long long)freed, idle ? "odd" : "even",
			 idle ? "even" : "odd", (long long)par[!idle]);
		live -= (uint64_t)freed;
	}
	return (int64_t)live;
}

static void tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct kmsd *d = arg;
	int64_t now = now_ms();
	int64_t avail = d->cf.store_min_free ? store_free_bytes(d) : -1;
	int low = avail >= 0 && (uint64_t)avail < d->cf.store_min_free;

	for (size_t i = 0; i < d->n_links; i++) {
		struct link *l = &d->links[i];
		int64_t live;
		int full, pause;

		cache_tick(&l->cache, now);
		rate_sample(l, mono_ms());
		live = link_make_room(d, l);
		if (live < 0)
			continue;
		full = (uint64_t)live >= d->cf.link_max_bytes;
		pause = full || low;
		if (pause != l->qkd_paused && l->qkd) {
			if (full)
				log_info("link %s: store reached link-max-bytes, QKD intake paused",
					 l->nb.id);
			else if (low)
				log_info("link %s: %lld MiB free for the store, below store-min-free "
					 "(%llu MiB), QKD intake paused", l->nb.id,
					 (long long)(avail >> 20),
					 (unsigned long long)(d->cf.store_min_free >> 20));
			else
				log_info("link %s: store below link-max-bytes and store-min-free, QKD "
					 "intake resumed", l->nb.id);
			l->qkd->ops->pause(l->qkd, pause);
			l->qkd_paused = pause;
		}
	}
	routing_tick(d);
	kd_tick(d);
	nb_tick(d);
}

static void reload(struct kmsd *d)
{
	struct kms_config *nc = malloc(sizeof(*nc));
	char err[512];
	SSL_CTX *srv = d->ssl_srv, *cli = d->ssl_cli;

	if (!nc || config_load(nc, d->conf_path, err, sizeof(err))) {
		log_warnx("reload refused: %s", nc ? err : "out of memory");
		free(nc);
		return;
	}
	if (strcmp(nc->node_id, d->cf.node_id) || strcmp(nc->listen, d->cf.listen) ||
	    strcmp(nc->store, d->cf.store) || strcmp(nc->control, d->cf.control) ||
	    nc->n_nb != d->cf.n_nb || memcmp(nc->nb, d->cf.nb, sizeof(nc->nb[0]) * nc->n_nb) ||
	    nc->n_rm != d->cf.n_rm || memcmp(nc->rm, d->cf.rm, sizeof(nc->rm[0]) * nc->n_rm) ||
	    nc->n_kme != d->cf.n_kme || memcmp(nc->kme, d->cf.kme, sizeof(nc->kme[0]) * nc->n_kme))
		log_warnx("reload: node, listen, store, control, neighbour, remote and "
			  "etsi014-kme changes need a restart; applying tunables and the peer "
			  "TLS files only");
	/* Distribution's sizes are fixed into its pairs at start: say so, not apply half. */
	if (nc->dist_block != d->cf.dist_block || nc->dist_low != d->cf.dist_low ||
	    nc->dist_target != d->cf.dist_target || nc->ppetp_block != d->cf.ppetp_block)
		log_warnx("reload: dist-block, dist-low-watermark, dist-target and ppetp-block "
			  "changes need a restart; keeping the running values");
	memcpy(d->cf.tls_cert, nc->tls_cert, sizeof(nc->tls_cert));
	memcpy(d->cf.tls_key, nc->tls_key, sizeof(nc->tls_key));
	memcpy(d->cf.tls_ca, nc->tls_ca, sizeof(nc->tls_ca));
	if (peer_tls_init(d, err, sizeof(err))) {
		log_warnx("reload: %s; keeping the old TLS setup", err);
		SSL_CTX_free(d->ssl_srv);
		SSL_CTX_free(d->ssl_cli);
		d->ssl_srv = srv;
		d->ssl_cli = cli;
	} else {
		SSL_CTX_free(srv);	/* live connections hold their own references */
		SSL_CTX_free(cli);
	}
	d->cf.round_blocks = nc->round_blocks;
	d->cf.round_interval_ms = nc->round_interval_ms;
	d->cf.round_budget_ms = nc->round_budget_ms;
	d->cf.lock_timeout_ms = nc->lock_timeout_ms;
	d->cf.min_block_age_ms = nc->min_block_age_ms;
	d->cf.fresh_max_age_s = nc->fresh_max_age_s;
	d->cf.keepalive_s = nc->keepalive_s;
	d->cf.reconnect_max_s = nc->reconnect_max_s;
	d->cf.link_max_bytes = nc->link_max_bytes;
	d->cf.store_min_free = nc->store_min_free;
	d->cf.write_high_watermark = nc->write_high_watermark;
	/* which SAE lives where: read per request, so it can change now */
	memcpy(d->cf.sae, nc->sae, sizeof(nc->sae));
	d->cf.n_sae = nc->n_sae;
	if (memcmp(&nc->e14, &d->cf.e14, sizeof(nc->e14)))
		log_warnx("reload: etsi014-listen changes need a restart; keeping the running "
			  "KME");
	for (size_t i = 0; i < d->n_links; i++)
		d->links[i].cache.prm = params_of(&d->cf);
	free(nc);
	log_info("configuration reloaded");
}

static void signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct kmsd *d = arg;

	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	log_info("exiting on signal %d", (int)sig);
	event_base_loopexit(d->base, NULL);
}

static int links_init(struct kmsd *d)
{
	struct cache_params prm = params_of(&d->cf);
	static const struct qkd_callbacks cb = {
		qkd_blocks_cb, qkd_status_cb, qkd_budget_cb, qkd_send_cb,
	};

	for (size_t i = 0; i < d->cf.n_nb; i++) {
		struct link *l = &d->links[i];
		uint64_t txid;

		l->d = d;
		l->quantum = 1;
		l->nb = d->cf.nb[i];
		/* random first txid: a restarted leader never reuses a round id the peer saw */
		if (RAND_bytes((uint8_t *)&txid, sizeof(txid)) != 1)
			return -1;
		cache_link_init(&l->cache, d->st, d->cf.node_id, l->nb.id, &prm, txid >> 1 | 1);
		l->round_ev = evtimer_new(d->base, round_cb, l);
		l->reconnect_ev = evtimer_new(d->base, reconnect_cb, l);
		if (!l->round_ev || !l->reconnect_ev ||
		    event_priority_set(l->round_ev, KMSD_PRIO_BULK))
			return -1;
		l->qkd = qkd_backend_ops(l->nb.qkd_backend)->open(d->base, &d->cf, &l->nb, &cb, l);
		if (!l->qkd)
			return -1;
		d->n_links++;
		if (l->cache.leader && l->nb.address[0])
			peer_dial(l);
		event_active(l->round_ev, 0, 0);
	}
	return 0;
}

/* Remotes: sessions for end-to-end PPETP messages only (no QKD source, no caching). */
static int remotes_init(struct kmsd *d)
{
	for (size_t i = 0; i < d->cf.n_rm; i++) {
		struct link *l = &d->remotes[i];

		memset(l, 0, sizeof(*l));
		l->d = d;
		snprintf(l->nb.id, sizeof(l->nb.id), "%s", d->cf.rm[i].id);
		snprintf(l->nb.address, sizeof(l->nb.address), "%s", d->cf.rm[i].address);
		l->nb.qotp_peer = d->cf.rm[i].qotp_peer;
		l->reconnect_ev = evtimer_new(d->base, reconnect_cb, l);
		if (!l->reconnect_ev)
			return -1;
		d->n_remotes++;
		if (strcmp(d->cf.node_id, l->nb.id) < 0 && l->nb.address[0])
			peer_dial(l);
	}
	return 0;
}

struct link *kmsd_find_link(struct kmsd *d, const char *id)
{
	for (size_t i = 0; i < d->n_links; i++)
		if (!strcmp(d->links[i].nb.id, id))
			return &d->links[i];
	for (size_t i = 0; i < d->n_remotes; i++)
		if (!strcmp(d->remotes[i].nb.id, id))
			return &d->remotes[i];
	return NULL;
}

static void links_free(struct kmsd *d)
{
	for (size_t i = 0; i < d->n_remotes; i++)
		event_free(d->remotes[i].reconnect_ev);
	d->n_remotes = 0;
	for (size_t i = 0; i < d->n_links; i++) {
		struct link *l = &d->links[i];

		l->qkd->ops->close(l->qkd);
		event_free(l->round_ev);
		event_free(l->reconnect_ev);
	}
	d->n_links = 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kmsd [-f] [-v] [-c file] [-n]\n"
		"Key management daemon: caches QKD key over authenticated peer channels.\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -n, --check-config   check the configuration and TLS files, then exit\n"
		"  -f, --foreground     stay in the foreground and log to stderr\n"
		"  -v, --verbose        debug logging\n"
		"  -h, --help           this help\n"
		"Signals: SIGTERM/SIGINT exit cleanly, SIGHUP reloads tunables and TLS files.\n",
		default_conf);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	static struct kmsd d;
	struct event *sigev[3];
	struct timeval tv = { 1, 0 };
	int c, fg = 0, check = 0, verbosity = LOG_LVL_INFO;
	char err[512];
	FILE *pf;

	/* before any library allocates: key bytes must not linger in freed heap memory */
	if (wipe_alloc_init())
		fatalx("cannot install the wiping allocator");
	d.conf_path = default_conf;
	while ((c = getopt_long(argc, argv, "c:nfvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': d.conf_path = optarg; break;
		case 'n': check = 1; break;
		case 'f': fg = 1; break;
		case 'v': verbosity = LOG_LVL_DEBUG; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("kmsd", 0, verbosity);
	if (config_load(&d.cf, d.conf_path, err, sizeof(err)))
		fatalx("%s", err);
	if (peer_tls_init(&d, err, sizeof(err)))
		fatalx("%s", err);
	for (size_t i = 0; i < d.cf.n_kme; i++)
		if (qkd_etsi014_check(&d.cf.kme[i], err, sizeof(err)))
			fatalx("etsi014-kme %s: %s", d.cf.kme[i].name, err);
	if (d.cf.e14.listen[0] && nb_check(&d.cf.e14, err, sizeof(err)))
		fatalx("etsi014-listen %s: %s", d.cf.e14.listen, err);
	if (check) {
		printf("%s: configuration OK (node %s, %zu neighbours, %zu remotes)\n",
		       d.conf_path, d.cf.node_id, d.cf.n_nb, d.cf.n_rm);
		return 0;
	}
	log_init("kmsd", !fg, verbosity);
	log_route_libevent();
	signal(SIGPIPE, SIG_IGN);
	umask(0077);
	/* Key bytes pass through this process: never into a core dump. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		log_warn("prctl(PR_SET_DUMPABLE)");
	if (!fg && daemon(0, 0))
		fatal("daemon");
	d.started = time(NULL);
	{
		const char *fp = getenv("KMSD_FAILPOINT");

		if (fp && !strcmp(fp, "ppetp-before-commit"))
			d.failpoint = FP_PPETP_BEFORE_COMMIT;
		else if (fp && !strcmp(fp, "ppetp-after-commit"))
			d.failpoint = FP_PPETP_AFTER_COMMIT;
		else if (fp && *fp)
			fatalx("KMSD_FAILPOINT: unknown crash point `%s'", fp);
	}
	d.st = store_open(d.cf.store, err, sizeof(err));
	if (!d.st)
		fatalx("store: %s", err);
	if (store_recover(d.st))
		fatalx("store recovery: %s", store_errmsg(d.st));
	d.base = event_base_new();
	if (!d.base || event_base_priority_init(d.base, KMSD_NPRIO))
		fatalx("event_base_new failed");
	/* events are created at the middle priority, KMSD_PRIO_PROTO, unless set otherwise */
	d.sync_ev = event_new(d.base, -1, 0, sync_cb, &d);
	if (!d.sync_ev || event_priority_set(d.sync_ev, KMSD_PRIO_SYNC))
		fatalx("event_new failed");
	store_group_enable(d.st, group_opened, group_done, &d);
	if (peer_listen(&d) || ctl_listen(&d))
		fatalx("cannot listen, exiting");
	if (d.cf.pidfile[0]) {
		pf = fopen(d.cf.pidfile, "w");
		if (!pf || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf))
			fatal("pidfile %s", d.cf.pidfile);
	}
	for (int i = 0; i < 3; i++) {
		sigev[i] = evsignal_new(d.base, sigs[i], signal_cb, &d);
		evsignal_add(sigev[i], NULL);
	}
	if (routing_init(&d))
		fatalx("cannot set up routing");
	if (links_init(&d) || remotes_init(&d))
		fatalx("cannot set up links");
	if (xfer_init(&d))
		fatalx("cannot set up key transfer");
	if (kd_init(&d))
		fatalx("cannot set up key distribution");
	if (nb_init(&d))
		fatalx("cannot set up the ETSI 014 KME (etsi014-listen)");
	d.tick_ev = event_new(d.base, -1, EV_PERSIST, tick_cb, &d);
	event_add(d.tick_ev, &tv);
	log_info("node %s listening on %s, %zu neighbours, %zu remotes, store %s", d.cf.node_id,
		 d.cf.listen, d.n_links, d.n_remotes, d.cf.store);

	event_base_dispatch(d.base);

	/* Reverse order. Closing peers releases the locks of a round in flight. */
	d.stopping = 1;
	kmsd_sync(&d);
	peer_shutdown(&d);
	ctl_close(&d);
	nb_free(&d);
	kd_free(&d);
	xfer_free(&d);
	links_free(&d);
	routing_free(&d);
	event_free(d.tick_ev);
	for (int i = 0; i < 3; i++)
		event_free(sigev[i]);
	store_close(d.st);		/* commits a group the shutdown opened; nothing is held */
	event_free(d.sync_ev);
	SSL_CTX_free(d.ssl_srv);
	SSL_CTX_free(d.ssl_cli);
	event_base_free(d.base);
	if (d.cf.pidfile[0])
		unlink(d.cf.pidfile);
	log_info("stopped");
	return 0;
}
