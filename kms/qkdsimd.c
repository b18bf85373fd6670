// SPDX-License-Identifier: GPL-2.0
/*
 * qkdsimd: simulates one QKD link. Both link ends (kmsd instances) connect and receive the
 * same random blocks with the same ids at the configured key rate, while both are connected
 * and the link is up, like a real QKD pair that only distils key when both sides run.
 * Optional bit errors on one end model an eavesdropper (or a noisy channel): the key caching
 * protocol must catch and discard those blocks.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/rand.h>

#include "log.h"
#include "wipe.h"
#include "qkdsim.h"

#define OUT_HIGH (4u << 20)	/* an end that does not read is not fed beyond this */

struct sim {
	struct event_base *base;
	struct evconnlistener *lis;
	struct bufferevent *end[2];
	struct event *tick, *sig[4];
	uint64_t rate_bps;		/* 0 = as fast as both ends read */
	unsigned block_size;
	double ber;
	int ber_end;			/* 0 = a, 1 = b */
	int up;
	uint64_t next_id;
	double credit;			/* bytes we may generate */
	struct timespec last;
	uint64_t blocks, bytes, flipped;
	uint64_t rng;			/* xorshift state: error positions need not be secret */
	uint64_t next_err;		/* bits until the next injected error */
	const char *sockpath;
};

static uint64_t rng_next(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static uint64_t err_gap(struct sim *s)
{
	double u = ((rng_next(s) >> 11) + 1) * (1.0 / 9007199254740993.0);

	return (uint64_t)floor(log(u) / log1p(-s->ber));
}

static void put_hdr(uint8_t *h, uint8_t type, uint32_t len, uint64_t val)
{
	memset(h, 0, QKDSIM_HDR_LEN);
	h[0] = type;
	for (int i = 0; i < 4; i++)
		h[4 + i] = len >> (24 - 8 * i);
	for (int i = 0; i < 8; i++)
		h[8 + i] = val >> (56 - 8 * i);
}

static void send_status(struct sim *s, struct bufferevent *bev)
{
	uint8_t h[QKDSIM_HDR_LEN];

	put_hdr(h, QKDSIM_STATUS, 0, s->up && s->end[0] && s->end[1]);
	bufferevent_write(bev, h, sizeof(h));
}

static void broadcast_status(struct sim *s)
{
	for (int i = 0; i < 2; i++)
		if (s->end[i])
			send_status(s, s->end[i]);
}

static void inject_errors(struct sim *s, uint8_t *blk, size_t len)
{
	uint64_t bits = (uint64_t)len * 8, pos = 0;

	if (s->ber <= 0)
		return;
	while (pos + s->next_err < bits) {
		pos += s->next_err;
		blk[pos / 8] ^= 1 << (pos % 8);
		s->flipped++;
		pos++;
		s->next_err = err_gap(s);
	}
	s->next_err -= bits - pos;
}

static int generate(struct sim *s)
{
	uint8_t h[QKDSIM_HDR_LEN];
	uint8_t blk[QKDSIM_MAX_BLOCK];

	if (RAND_bytes(blk, s->block_size) != 1) {
		log_warnx("RAND_bytes failed");
		return -1;
	}
	put_hdr(h, QKDSIM_BLOCK, s->block_size, s->next_id);
	for (int i = 0; i < 2; i++) {
		if (i == s->ber_end)
			inject_errors(s, blk, s->block_size);
		bufferevent_write(s->end[i], h, sizeof(h));
		bufferevent_write(s->end[i], blk, s->block_size);
	}
	explicit_bzero(blk, s->block_size);
	s->next_id++;
	s->blocks++;
	s->bytes += s->block_size;
	return 0;
}

static int room(struct sim *s)
{
	for (int i = 0; i < 2; i++)
		if (!s->end[i] || evbuffer_get_length(bufferevent_get_output(s->end[i])) >= OUT_HIGH)
			return 0;
	return 1;
}

static void tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct sim *s = arg;
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (now.tv_sec - s->last.tv_sec) + (now.tv_nsec - s->last.tv_nsec) / 1e9;
	s->last = now;
	if (!s->up || !s->end[0] || !s->end[1]) {
		s->credit = 0;
		return;
	}
	if (s->rate_bps == 0) {
		while (room(s))
			if (generate(s))
				return;
		return;
	}
	s->credit += dt * (double)s->rate_bps / 8;
	while (s->credit >= s->block_size) {
		/* A receiver that falls behind loses key, as with a real device's full buffer. */
		if (room(s) && generate(s))
			return;
		s->credit -= s->block_size;
	}
}

static void drop_end(struct sim *s, int i, const char *why)
{
	log_info("end %c disconnected: %s", 'a' + i, why);
	bufferevent_free(s->end[i]);
	s->end[i] = NULL;
	broadcast_status(s);
}

static int end_of(struct sim *s, struct bufferevent *bev)
{
	for (int i = 0; i < 2; i++)
		if (s->end[i] == bev)
			return i;
	return -1;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sim *s = arg;
	int i = end_of(s, bev);

	if (i >= 0)
		drop_end(s, i, what & BEV_EVENT_EOF ? "closed" : evutil_socket_error_to_string(
				 EVUTIL_SOCKET_ERROR()));
	else
		bufferevent_free(bev);
}

static void end_read_cb(struct bufferevent *bev, void *arg)
{
	/* Ends send nothing after their hello; anything else is a protocol error. */
	struct sim *s = arg;

	drop_end(s, end_of(s, bev), "unexpected data from the end");
}

static void hello_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	int i;

	if (!line) {
		if (evbuffer_get_length(in) > 64) {
			log_warnx("refusing client: no hello line");
			bufferevent_free(bev);
		}
		return;
	}
	if (strncmp(line, QKDSIM_HELLO, strlen(QKDSIM_HELLO)) ||
	    (strcmp(line + strlen(QKDSIM_HELLO), "a") && strcmp(line + strlen(QKDSIM_HELLO), "b"))) {
		log_warnx("refusing client: bad hello `%.40s'", line);
		free(line);
		bufferevent_free(bev);
		return;
	}
	i = line[strlen(QKDSIM_HELLO)] - 'a';
	free(line);
	if (s->end[i])
		drop_end(s, i, "replaced by a new connection");
	s->end[i] = bev;
	bufferevent_setcb(bev, end_read_cb, NULL, conn_event_cb, s);
	log_info("end %c connected", 'a' + i);
	broadcast_status(s);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct sim *s = arg;
	struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, hello_read_cb, NULL, conn_event_cb, s);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct sim *s = arg;

	switch (sig) {
	case SIGUSR1:
	case SIGUSR2:
		s->up = sig == SIGUSR2;
		log_info("link switched %s", s->up ? "up" : "down");
		broadcast_status(s);
		break;
	default:
		log_info("exiting on signal %d", (int)sig);
		event_base_loopexit(s->base, NULL);
		break;
	}
}

static int listen_on(struct sim *s, const char *spec)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE;

	memset(&ss, 0, sizeof(ss));
	if (!strncmp(spec, "unix:", 5)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		if (strlen(spec + 5) >= sizeof(sun->sun_path))
			fatalx("socket path too long: `%s'", spec + 5);
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, spec + 5);
		unlink(sun->sun_path);
		len = sizeof(*sun);
		s->sockpath = spec + 5;
	} else if (!strncmp(spec, "tcp:", 4)) {
		if (evutil_parse_sockaddr_port(spec + 4, (struct sockaddr *)&ss, &len))
			fatalx("bad listen address: `%s'", spec);
	} else {
		fatalx("listen address must be unix:/path or tcp:host:port: `%s'", spec);
	}
	s->lis = evconnlistener_new_bind(s->base, accept_cb, s, flags, 8, (struct sockaddr *)&ss,
					 len);
	if (!s->lis)
		fatal("listen on %s", spec);
	if (s->sockpath && chmod(s->sockpath, 0600))
		fatal("chmod %s", s->sockpath);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qkdsimd [-f] [-v] -l unix:/path|tcp:host:port [-r bits/s] [-b bytes]\n"
		"               [-e bit-error-rate] [-E a|b] [--down] [-p pidfile]\n"
		"Simulates one QKD link: both ends connect and get the same random key blocks.\n"
		"  -l, --listen ADDR      where the two link ends connect\n"
		"  -r, --rate BITS        key rate in bit/s (default 1000000, 0 = unlimited)\n"
		"  -b, --block-size N     key block size in bytes (default 4096, 65..65536)\n"
		"  -e, --ber P            bit error probability injected on one end (default 0)\n"
		"  -E, --ber-end a|b      which end gets the errors (default b)\n"
		"      --down             start with the link down (SIGUSR2 brings it up)\n"
		"  -p, --pidfile FILE     write the pid here\n"
		"  -f, --foreground       log to stderr and stay in the foreground\n"
		"  -v, --verbose          more log output\n"
		"Signals: SIGUSR1 link down, SIGUSR2 link up, SIGTERM/SIGINT exit.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'r' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "ber", required_argument, NULL, 'e' },
		{ "ber-end", required_argument, NULL, 'E' },
		{ "down", no_argument, NULL, 'D' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int sigs[] = { SIGINT, SIGTERM, SIGUSR1, SIGUSR2 };
	struct sim s = { .rate_bps = 1000000, .block_size = 4096, .ber_end = 1, .up = 1 };
	const char *listen_spec = NULL, *pidfile = NULL;
	int c, fg = 0, verbose = LOG_LVL_INFO;
	struct timeval tv = { 0, 10000 };
	char *end;

	/* before any library allocates: key bytes must not linger in freed heap memory */
	if (wipe_alloc_init())
		fatalx("cannot install the wiping allocator");
	while ((c = getopt_long(argc, argv, "l:r:b:e:E:p:fvh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_spec = optarg; break;
		case 'r':
			errno = 0;
			s.rate_bps = strtoull(optarg, &end, 10);
			if (errno || *end || optarg[0] == '-')
				fatalx("rate is not a number of bits per second: `%s'", optarg);
			break;
		case 'b':
			s.block_size = strtoul(optarg, &end, 10);
			if (*end || s.block_size <= 64 || s.block_size > QKDSIM_MAX_BLOCK)
				fatalx("block size must be 65..65536: `%s'", optarg);
			break;
		case 'e':
			s.ber = strtod(optarg, &end);
			if (*end || !(s.ber >= 0 && s.ber < 1))
				fatalx("bit error rate must be in [0, 1): `%s'", optarg);
			break;
		case 'E':
			if (strcmp(optarg, "a") && strcmp(optarg, "b"))
				fatalx("ber-end must be a or b: `%s'", optarg);
			s.ber_end = optarg[0] - 'a';
			break;
		case 'D': s.up = 0; break;
		case 'p': pidfile = optarg; break;
		case 'f': fg = 1; break;
		case 'v': verbose = LOG_LVL_DEBUG; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_spec || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("qkdsimd", !fg, verbose);
	log_route_libevent();
	signal(SIGPIPE, SIG_IGN);
	if (!fg && daemon(0, 0))
		fatal("daemon");
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f))
			fatal("pidfile %s", pidfile);
	}
	/* Block ids: seconds since the epoch in the top bits, so a restarted simulator never
	 * repeats an id (kmsd refuses repeated ids anyway). */
	s.next_id = (uint64_t)time(NULL) << 24;
	if (RAND_bytes((uint8_t *)&s.rng, sizeof(s.rng)) != 1)
		fatalx("RAND_bytes failed");
	s.rng |= 1;
	if (s.ber > 0)
		s.next_err = err_gap(&s);
	s.base = event_base_new();
	if (!s.base)
		fatalx("event_base_new failed");
	listen_on(&s, listen_spec);
	for (int i = 0; i < 4; i++) {
		s.sig[i] = evsignal_new(s.base, sigs[i], signal_cb, &s);
		evsignal_add(s.sig[i], NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &s.last);
	s.tick = event_new(s.base, -1, EV_PERSIST, tick_cb, &s);
	event_add(s.tick, &tv);
	log_info("listening on %s, rate %llu bit/s, blocks of %u bytes, ber %g on end %c%s",
		 listen_spec, (unsigned long long)s.rate_bps, s.block_size, s.ber, 'a' + s.ber_end,
		 s.up ? "" : ", link down");
	event_base_dispatch(s.base);

	log_info("sent %llu blocks (%llu bytes), %llu bits flipped", (unsigned long long)s.blocks,
		 (unsigned long long)s.bytes, (unsigned long long)s.flipped);
	for (int i = 0; i < 2; i++)
		if (s.end[i])
			bufferevent_free(s.end[i]);
	event_free(s.tick);
	for (int i = 0; i < 4; i++)
		event_free(s.sig[i]);
	evconnlistener_free(s.lis);
	event_base_free(s.base);
	if (s.sockpath)
		unlink(s.sockpath);
	if (pidfile)
		unlink(pidfile);
	return 0;
}
