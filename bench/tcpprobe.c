// SPDX-License-Identifier: GPL-2.0
/*
 * tcpprobe: the TCP traffic of make bench's datapath figures (bench/dp-compare.sh), one
 * small epoll program instead of a different tool per figure, so every variant (plain,
 * qotp, WireGuard, IPsec) is driven by the same code.
 *
 *   tcpprobe serve ADDR PORT
 *	server. A connection opens with one byte: 'S' (sink: 8-byte seed, 8-byte length,
 *	then that many bytes, checked against the seeded stream; answers "Y" + 8-byte count
 *	of bytes that arrived exact, or "N" at the first wrong byte) or 'E' (echo everything).
 *   tcpprobe flows ADDR PORT N BYTES [TIMEOUT]
 *	N concurrent connections, each uploading BYTES of its own seeded pseudo-random
 *	stream; prints "flows: n=N bytes=B seconds=S mbps=M exact=K" from the first connect
 *	to the last verdict. Exit 0 iff all N arrived exact.
 *   tcpprobe idle ADDR PORT N BYTES
 *	N connections that each upload BYTES and then stay open, idle; prints "idle: ready N"
 *	once every byte is acknowledged, then waits for SIGTERM/SIGINT.
 *   tcpprobe rr ADDR PORT COUNT SIZE
 *	one connection (TCP_NODELAY): COUNT round trips of a SIZE-byte request echoed back;
 *	prints "rr: n=COUNT min_us=.. median_us=.. p99_us=.. mean_us=..".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	65536

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "tcpprobe: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A byte stream from xorshift64*: both ends regenerate it from the seed. */
struct gen {
	uint64_t x;
	uint8_t w[8];
	int left;		/* unread bytes at the end of w */
};

static void gen_init(struct gen *g, uint64_t seed)
{
	g->x = seed * 0x9e3779b97f4a7c15ULL + 1;
	g->left = 0;
}

static void gen_fill(struct gen *g, uint8_t *p, size_t n)
{
	while (n && g->left) {
		*p++ = g->w[8 - g->left--];
		n--;
	}
	while (n >= 8) {
		uint64_t v;

		g->x ^= g->x >> 12;
		g->x ^= g->x << 25;
		g->x ^= g->x >> 27;
		v = g->x * 0x2545f4914f6cdd1dULL;
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v;

		g->x ^= g->x >> 12;
		g->x ^= g->x << 25;
		g->x ^= g->x >> 27;
		v = g->x * 0x2545f4914f6cdd1dULL;
		memcpy(g->w, &v, 8);
		g->left = 8;
		while (n--) {
			*p++ = g->w[8 - g->left--];
		}
	}
}

static void raise_nofile(void)
{
	struct rlimit r = { 65536, 65536 };

	if (setrlimit(RLIMIT_NOFILE, &r) && getrlimit(RLIMIT_NOFILE, &r) == 0) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

static int resolve(const char *addr, const char *port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai;
	int rc = getaddrinfo(addr, port, &hints, &ai);

	if (rc) {
		fprintf(stderr, "tcpprobe: bad address `%s' port `%s': %s\n", addr, port,
			gai_strerror(rc));
		exit(2);
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return ss->ss_family;
}

static void nonblock(int fd)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		die("fcntl");
}

/* ---- server ---- */

struct sconn {
	int fd;
	char mode;		/* 0 until the first byte */
	uint8_t hdr[16];
	int hdrlen;
	uint64_t want, got;
	int bad;
	struct gen g;
	uint8_t *echo;		/* echo: bytes read and not yet written back */
	size_t elen, eoff;
};

static void sclose(int ep, struct sconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->echo);
	free(c);
}

static __attribute__((noreturn)) void serve(const char *addr, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, ls, ep;
	static uint8_t buf[CHUNK], exp[CHUNK];
	struct epoll_event ev, evs[256];

	raise_nofile();
	ls = socket(resolve(addr, port, &ss, &sl), SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&ss, sl) || listen(ls, 4096))
		die("bind/listen");
	nonblock(ls);
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd;

				while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					if (!c)
						die("calloc");
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (c->mode == 'E' && c->elen > c->eoff) {
				r = write(c->fd, c->echo + c->eoff, c->elen - c->eoff);
				if (r < 0 && errno != EAGAIN) {
					sclose(ep, c);
					continue;
				}
				if (r > 0)
					c->eoff += r;
				if (c->eoff < c->elen)
					continue;
				c->elen = c->eoff = 0;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			r = read(c->fd, buf, sizeof(buf));
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				sclose(ep, c);
				continue;
			}
			size_t off = 0;

			if (!c->mode) {
				c->mode = buf[0];
				off = 1;
				if (c->mode != 'S' && c->mode != 'E') {
					sclose(ep, c);
					continue;
				}
			}
			if (c->mode == 'E') {
				c->echo = realloc(c->echo, r - off);
				if (!c->echo)
					die("realloc");
				memcpy(c->echo, buf + off, r - off);
				c->elen = r - off;
				c->eoff = 0;
				ssize_t w = write(c->fd, c->echo, c->elen);

				if (w > 0)
					c->eoff = w;
				if (c->eoff < c->elen) {
					ev.events = EPOLLOUT;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				} else {
					c->elen = c->eoff = 0;
				}
				continue;
			}
			while (c->hdrlen < 16 && off < (size_t)r)
				c->hdr[c->hdrlen++] = buf[off++];
			if (c->hdrlen < 16)
				continue;
			if (c->hdrlen == 16) {
				uint64_t seed;

				memcpy(&seed, c->hdr, 8);
				memcpy(&c->want, c->hdr + 8, 8);
				gen_init(&c->g, seed);
				c->hdrlen++;
			}
			size_t m = r - off;

			if (m > c->want - c->got)
				m = c->want - c->got;
			if (!c->bad) {
				gen_fill(&c->g, exp, m);
				if (memcmp(exp, buf + off, m))
					c->bad = 1;
			}
			c->got += m;
			if (c->got == c->want || c->bad) {
				uint8_t ans[9];

				ans[0] = c->bad ? 'N' : 'Y';
				memcpy(ans + 1, &c->got, 8);
				if (write(c->fd, ans, sizeof(ans)) != sizeof(ans))
					fprintf(stderr, "tcpprobe: short verdict write\n");
				if (c->bad)
					sclose(ep, c);
				else
					c->want = c->got = 0, c->hdrlen = 0, c->mode = 0;
			}
		}
	}
}

/* ---- clients ---- */

struct cconn {
	int fd;
	uint64_t seed, len, sent;
	int hdr_sent;		/* bytes of the 17-byte preamble written */
	uint8_t pre[17];
	struct gen g;
	uint8_t *pend;		/* generated, not yet written */
	size_t plen, poff;
	uint8_t ans[9];
	int alen;
	int done;		/* 1 exact, -1 wrong */
};

static int open_conns(const char *addr, const char *port, struct cconn *cs, int n,
		      uint64_t len, int ep)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fam = resolve(addr, port, &ss, &sl), one = 1;

	for (int i = 0; i < n; i++) {
		struct cconn *c = &cs[i];
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };

		c->fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (c->fd < 0)
			die("socket");
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c->fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)
			die("connect");
		c->seed = (uint64_t)getpid() << 20 | (uint64_t)i;
		c->len = len;
		c->pre[0] = 'S';
		memcpy(c->pre + 1, &c->seed, 8);
		memcpy(c->pre + 9, &c->len, 8);
		gen_init(&c->g, c->seed);
		c->pend = malloc(CHUNK);
		if (!c->pend)
			die("malloc");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev))
			die("epoll_ctl");
	}
	return 0;
}

/* Drive every connection until all have their verdict. */
static int drive(int n, int ep, double deadline)
{
	struct epoll_event evs[256];
	int left = n;

	while (left > 0) {
		int k = epoll_wait(ep, evs, 256, 1000);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("epoll_wait");
		if (now() > deadline) {
			fprintf(stderr, "tcpprobe: timed out with %d of %d connections open\n", left, n);
			return -1;
		}
		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;
			ssize_t r;

			if (c->done)
				continue;
			if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
				int e = 0;
				socklen_t el = sizeof(e);

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
				fprintf(stderr, "tcpprobe: connection failed: %s\n", strerror(e));
				return -1;
			}
			while (c->hdr_sent < 17) {
				r = write(c->fd, c->pre + c->hdr_sent, 17 - c->hdr_sent);
				if (r <= 0)
					break;
				c->hdr_sent += r;
			}
			while (c->hdr_sent == 17 && c->sent < c->len) {
				if (c->poff == c->plen) {
					c->plen = c->len - c->sent > CHUNK ? CHUNK : c->len - c->sent;
					gen_fill(&c->g, c->pend, c->plen);
					c->poff = 0;
				}
				r = write(c->fd, c->pend + c->poff, c->plen - c->poff);
				if (r <= 0)
					break;
				c->poff += r;
				c->sent += r;
			}
			if (c->sent == c->len && c->hdr_sent == 17) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (!(evs[i].events & EPOLLIN))
				continue;
			r = read(c->fd, c->ans + c->alen, sizeof(c->ans) - c->alen);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				fprintf(stderr, "tcpprobe: connection closed before its verdict\n");
				c->done = -1;
				left--;
				continue;
			}
			if (r > 0)
				c->alen += r;
			if (c->alen == 9) {
				uint64_t got;

				memcpy(&got, c->ans + 1, 8);
				c->done = c->ans[0] == 'Y' && got == c->len ? 1 : -1;
				left--;
			}
		}
	}
	return 0;
}

static uint64_t parse_u64(const char *what, const char *s, uint64_t min)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v < min) {
		fprintf(stderr, "tcpprobe: bad %s `%s'\n", what, s);
		exit(2);
	}
	return v;
}

/*
 * With QOTP_BENCH_CPUMARKS set (bench/dp-compare.sh, inside UML): appends "WHAT LABEL" to
 * that file (a host file through hostfs), fsyncs it, then sleeps 0.2 s while the host
 * samples the UML's CPU time (bench/dp-compare-cpu.py). Outside the timed interval.
 */
static void cpumark(const char *what)
{
	const char *path = getenv("QOTP_BENCH_CPUMARKS"), *label = getenv("QOTP_BENCH_CPULABEL");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, "%s %s\n", what, label ? label : "-");
	fflush(f);
	fsync(fileno(f));
	fclose(f);
	usleep(200000);
}

static int flows(const char *addr, const char *port, int n, uint64_t len, double timeout)
{
	struct cconn *cs = calloc(n, sizeof(*cs));
	int ep = epoll_create1(0), exact = 0, rc;
	double t0, t1;

	if (!cs || ep < 0)
		die("setup");
	raise_nofile();
	cpumark("start");
	t0 = now();
	open_conns(addr, port, cs, n, len, ep);
	rc = drive(n, ep, t0 + timeout);
	t1 = now();
	cpumark("end");
	for (int i = 0; i < n; i++) {
		exact += cs[i].done == 1;
		close(cs[i].fd);
		free(cs[i].pend);
	}
	printf("flows: n=%d bytes=%llu seconds=%.4f mbps=%.2f exact=%d\n", n,
	       (unsigned long long)len * n, t1 - t0, len * n * 8 / (t1 - t0) / 1e6, exact);
	free(cs);
	return rc == 0 && exact == n ? 0 : 1;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int idle(const char *addr, const char *port, int n, uint64_t len)
{
	struct cconn *cs = calloc(n, sizeof(*cs));
	int ep = epoll_create1(0), acked;

	if (!cs || ep < 0)
		die("setup");
	raise_nofile();
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	open_conns(addr, port, cs, n, len, ep);
	if (drive(n, ep, now() + 120))
		return 1;
	for (int i = 0; i < n; i++) {
		if (cs[i].done != 1) {
			fprintf(stderr, "tcpprobe: idle connection %d not exact\n", i);
			return 1;
		}
	}
	/* Idle means every byte acknowledged: nothing left in any send queue. */
	do {
		acked = 0;
		for (int i = 0; i < n; i++) {
			int q = 0;

			ioctl(cs[i].fd, SIOCOUTQ, &q);
			acked += q == 0;
		}
		if (acked < n)
			usleep(10000);
	} while (acked < n && !stop);
	printf("idle: ready %d\n", n);
	fflush(stdout);
	while (!stop)
		pause();
	for (int i = 0; i < n; i++)
		close(cs[i].fd);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int rr(const char *addr, const char *port, int count, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, fd;
	uint8_t *req = malloc(size + 1), *rsp = malloc(size);
	double *t = calloc(count, sizeof(double)), sum = 0;

	if (!req || !rsp || !t)
		die("malloc");
	fd = socket(resolve(addr, port, &ss, &sl), SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (write(fd, "E", 1) != 1)
		die("write");
	memset(req, 'r', size);
	/* A few unmeasured round trips first: connection setup and the first key spans. */
	for (int i = -10; i < count; i++) {
		double t0 = now();
		size_t got = 0;

		if (write(fd, req, size) != (ssize_t)size)
			die("write");
		while (got < size) {
			ssize_t r = read(fd, rsp + got, size - got);

			if (r <= 0)
				die("read");
			got += r;
		}
		if (memcmp(req, rsp, size)) {
			fprintf(stderr, "tcpprobe: echo differs\n");
			return 1;
		}
		if (i >= 0) {
			t[i] = (now() - t0) * 1e6;
			sum += t[i];
		}
	}
	close(fd);
	qsort(t, count, sizeof(double), cmp_double);
	printf("rr: n=%d min_us=%.1f median_us=%.1f p99_us=%.1f mean_us=%.1f\n", count, t[0],
	       t[count / 2], t[(int)(count * 0.99) < count ? (int)(count * 0.99) : count - 1],
	       sum / count);
	free(req);
	free(rsp);
	free(t);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tcpprobe serve ADDR PORT\n"
		   "       tcpprobe flows ADDR PORT N BYTES [TIMEOUT]\n"
		   "       tcpprobe idle ADDR PORT N BYTES\n"
		   "       tcpprobe rr ADDR PORT COUNT SIZE\n"
		   "TCP traffic for make bench (see the comment at the top of bench/tcpprobe.c).\n");
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "serve"))
		serve(argv[2], argv[3]);
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "flows"))
		return flows(argv[2], argv[3], (int)parse_u64("N", argv[4], 1),
			     parse_u64("BYTES", argv[5], 1),
			     argc == 7 ? (double)parse_u64("TIMEOUT", argv[6], 1) : 300);
	if (argc == 6 && !strcmp(argv[1], "idle"))
		return idle(argv[2], argv[3], (int)parse_u64("N", argv[4], 1),
			    parse_u64("BYTES", argv[5], 1));
	if (argc == 6 && !strcmp(argv[1], "rr"))
		return rr(argv[2], argv[3], (int)parse_u64("COUNT", argv[4], 1),
			  parse_u64("SIZE", argv[5], 1));
	usage(stderr);
	return 2;
}
