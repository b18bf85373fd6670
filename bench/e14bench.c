// SPDX-License-Identifier: GPL-2.0
/*
 * ETSI GS QKD 014 key delivery over mutual TLS (issue target: >= 2000 key pairs/s of 256-bit
 * keys, >= 20 MB/s of key in 32 KiB keys). A pair of SAEs against a pair of KMEs (kmesimd):
 * C independent loops, each on its own keep-alive HTTPS connections to KME A (as the master
 * SAE) and KME B (as the slave SAE), each round: POST enc_keys at A for N keys of BITS bits,
 * POST dec_keys at B for their key_IDs, the keys compared byte for byte.
 *
 *   e14bench --kme-a URL --kme-b URL --cert-a F --key-a F --cert-b F --key-b F --ca F
 *            --master-sae ID --slave-sae ID [--size BITS] [--number N] [--conns C]
 *            [--procs P] [--seconds S] [--warmup S] [--server-pid PID]
 *
 * The C loops run in P client processes (default 1; more when one client process cannot
 * keep the KMEs busy, as with 32 KiB keys, whose JSON and base64 cost the client more than
 * the server). Counts the rounds that end within S seconds after a warm-up (connections and
 * TLS handshakes happen in it), and prints one line:
 *   e14bench: size=BITS number=N conns=C procs=P seconds=S rounds=R pairs=K pairs_per_s=X
 *             key_MBps=Y p50_ms=A p99_ms=B client_cpu=U server_cpu=V
 * pairs: keys delivered to both SAEs and found equal; key_MBps: their bytes (each key
 * counted once) per second, 1 MB = 10^6 bytes; p50/p99: one round (enc_keys + dec_keys);
 * client_cpu / server_cpu: CPU seconds per second of the client processes / of --server-pid
 * (kmesimd; left out without it) over the measured window. Exit status 1, with the reason,
 * on any HTTP status other than 200, a TLS or connection failure, an answer that does not
 * parse, or a key that differs; 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "e14cli.h"
#include "etsi014.h"
#include "wipe.h"

#define MAX_CONNS 256
#define HTTP_TIMEOUT_S 10

enum { KME_A, KME_B };

struct kme {
	const char *name;		/* "KME A" */
	const char *url;
	char host[256];
	unsigned port;
	char hosthdr[300];		/* Host: header */
	char path[512];			/* of its one call: .../enc_keys or .../dec_keys */
	SSL_CTX *ctx;
};

struct loop {
	int idx;
	struct evhttp_connection *conn[2];
	struct bufferevent *bev[2];
	int dead[2];
	int nodelay[2];			/* TCP_NODELAY set on that connection's socket */
	enum evhttp_request_error err;	/* of the request in flight */
	int side;			/* KME_A: enc_keys in flight, KME_B: dec_keys */
	double t0;			/* round start */
	struct e14_key_container enc;	/* this round's keys, as KME A gave them */
};

static struct {
	struct event_base *base;
	struct kme kme[2];
	struct loop *loops;
	const char *master, *slave;
	uint32_t size, number;
	unsigned conns;			/* loops in all */
	unsigned procs;			/* client processes, the loops shared among them */
	unsigned proc, nloops;		/* in a child: which, and its loops */
	double seconds, warmup;
	long server_pid;
	char *enc_body;			/* the Key request, the same every round */
	size_t enc_len;
	int rc, measuring, stopping;
	double t_meas0, t_meas1;
	double cpu0, srv0, cpu1, srv1;
	uint64_t rounds, pairs;
	double *lat;			/* ms, of the rounds counted */
	size_t nlat, caplat;
} g;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of pid in seconds (all its threads), or -1 */
static double proc_cpu(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after "pid (comm)": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void stop(void)
{
	g.stopping = 1;
	event_base_loopbreak(g.base);
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal(const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (g.stopping)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one write: other client processes may be writing theirs */
	fprintf(stderr, "e14bench: %s\n", msg);
	g.rc = 1;
	stop();
}

/* ---- HTTPS client (as kms/qkd_etsi.c) ---- */

static SSL_CTX *client_ctx(const char *cert, const char *key, const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *what = NULL;

	if (!ctx) {
		fprintf(stderr, "e14bench: out of memory\n");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		what = "cannot load the certificate";
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		what = "cannot load the key";
	else if (SSL_CTX_check_private_key(ctx) != 1)
		what = "the key does not match the certificate";
	else if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		what = "cannot load the CA";
	if (!what)
		return ctx;
	fprintf(stderr, "e14bench: %s (cert %s, key %s, ca %s)\n", what, cert, key, ca);
	SSL_CTX_free(ctx);
	return NULL;
}

static void conn_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct loop *l = arg;

	for (int i = 0; i < 2; i++)
		if (l->conn[i] == conn)
			l->dead[i] = 1;
}

/*
 * No Nagle: a request or answer goes out as several TLS records (libevent writes each
 * buffer chain apart), and the last would wait for the ACK of the first, which the peer
 * delays (40 ms on Linux). evhttp creates the socket when it connects, so this is set
 * once the connection carried its first request (the warm-up's).
 */
static void set_nodelay(struct loop *l, int side)
{
	evutil_socket_t fd = l->bev[side] ? bufferevent_getfd(l->bev[side]) : -1;
	int one = 1;

	if (l->nodelay[side] || fd < 0)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		perror("e14bench: TCP_NODELAY");
	l->nodelay[side] = 1;
}

static struct evhttp_connection *get_conn(struct loop *l, int side)
{
	struct kme *k = &g.kme[side];
	struct bufferevent *bev;
	SSL *ssl;

	if (l->conn[side] && !l->dead[side]) {
		set_nodelay(l, side);
		return l->conn[side];
	}
	if (l->conn[side]) {
		/* a keep-alive connection that closed: a benchmark does not reconnect */
		fatal("loop %d: %s closed the connection", l->idx, k->name);
		return NULL;
	}
	ssl = SSL_new(k->ctx);
	if (!ssl)
		return NULL;
	/* the KME's certificate must name the host of its URL: an IP address or a DNS name */
	if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), k->host) &&
	    (!SSL_set1_host(ssl, k->host) || !SSL_set_tlsext_host_name(ssl, k->host))) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(g.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	l->conn[side] = evhttp_connection_base_bufferevent_new(g.base, NULL, bev, k->host,
							       (unsigned short)k->port);
	if (!l->conn[side]) {
		bufferevent_free(bev);
		return NULL;
	}
	l->bev[side] = bev;
	l->dead[side] = 0;
	evhttp_connection_set_timeout(l->conn[side], HTTP_TIMEOUT_S);
	evhttp_connection_set_retries(l->conn[side], 0);
	evhttp_connection_set_max_body_size(l->conn[side], E14_MAX_BODY);
	evhttp_connection_set_closecb(l->conn[side], conn_close_cb, l);
	return l->conn[side];
}

/* Ends a connection with a TLS close_notify, so the KME sees an orderly close. */
static void close_conn(struct loop *l, int side)
{
	SSL *ssl = l->bev[side] ? bufferevent_openssl_get_ssl(l->bev[side]) : NULL;

	if (!l->conn[side])
		return;
	if (ssl && !l->dead[side] && bufferevent_getfd(l->bev[side]) >= 0)
		SSL_shutdown(ssl);	/* a non-blocking socket: at best effort */
	evhttp_connection_free(l->conn[side]);
	l->conn[side] = NULL;
	l->bev[side] = NULL;
}

static void request_error(enum evhttp_request_error e, void *arg)
{
	struct loop *l = arg;

	l->err = e;
}

static void request_done(struct evhttp_request *req, void *arg);

/* POSTs body (wiped by the caller) to KME side's path on loop l's connection. */
static void post(struct loop *l, int side, const char *body, size_t blen)
{
	struct kme *k = &g.kme[side];
	struct evhttp_connection *conn = get_conn(l, side);
	struct evhttp_request *req;
	struct evkeyvalq *h;

	if (!conn) {
		fatal("loop %d: cannot set up a TLS connection to %s (%s)", l->idx, k->name,
		      k->url);
		return;
	}
	req = evhttp_request_new(request_done, l);
	if (!req) {
		fatal("out of memory");
		return;
	}
	evhttp_request_set_error_cb(req, request_error);
	l->err = EVREQ_HTTP_BUFFER_ERROR;	/* what a refused connect reports */
	l->side = side;
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", k->hosthdr);
	evhttp_add_header(h, "Accept", "application/json");
	evhttp_add_header(h, "Content-Type", "application/json");
	if (evbuffer_add(evhttp_request_get_output_buffer(req), body, blen)) {
		evhttp_request_free(req);
		fatal("out of memory");
		return;
	}
	if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, k->path))
		fatal("loop %d: cannot send POST %s to %s", l->idx, k->path, k->name);
}

/* ---- the rounds ---- */

static void round_start(struct loop *l)
{
	l->t0 = mono();
	post(l, KME_A, g.enc_body, g.enc_len);
}

static void enc_answer(struct loop *l, const char *body, size_t len)
{
	size_t klen = g.size / 8, i;
	char (*ids)[E14_UUID_LEN + 1];
	char err[200], *text;
	size_t tlen;

	if (e14_parse_key_container(body, len, g.number, &l->enc, err, sizeof(err))) {
		fatal("loop %d: enc_keys answer from KME A: %s", l->idx, err);
		return;
	}
	for (i = 0; i < l->enc.n; i++)
		if (l->enc.keys[i].len != klen)
			break;
	if (l->enc.n != g.number || i < l->enc.n) {
		fatal("loop %d: enc_keys answered %zu keys (key %zu: %zu bytes), asked for %u of "
		      "%zu bytes", l->idx, l->enc.n, i, i < l->enc.n ? l->enc.keys[i].len : klen,
		      g.number, klen);
		return;
	}
	ids = calloc(l->enc.n, sizeof(*ids));
	if (!ids) {
		fatal("out of memory");
		return;
	}
	for (i = 0; i < l->enc.n; i++)
		memcpy(ids[i], l->enc.keys[i].key_id, sizeof(ids[i]));
	text = e14_format_key_ids((const char (*)[E14_UUID_LEN + 1])ids, l->enc.n, &tlen);
	free(ids);
	if (!text) {
		fatal("out of memory");
		return;
	}
	post(l, KME_B, text, tlen);
	e14_text_free(text);
}

static void count_round(struct loop *l, double t)
{
	if (!g.measuring)
		return;
	g.rounds++;
	g.pairs += l->enc.n;
	if (g.nlat == g.caplat) {
		size_t n = g.caplat ? 2 * g.caplat : 65536;
		double *p = realloc(g.lat, n * sizeof(*p));

		if (!p) {
			fatal("out of memory");
			return;
		}
		g.lat = p;
		g.caplat = n;
	}
	g.lat[g.nlat++] = (t - l->t0) * 1e3;
}

static void dec_answer(struct loop *l, const char *body, size_t len)
{
	struct e14_key_container dec = { 0 };
	char err[200];
	size_t i, j;

	if (e14_parse_key_container(body, len, g.number, &dec, err, sizeof(err))) {
		fatal("loop %d: dec_keys answer from KME B: %s", l->idx, err);
		return;
	}
	if (dec.n != l->enc.n) {
		fatal("loop %d: dec_keys answered %zu keys for %zu key_IDs", l->idx, dec.n,
		      l->enc.n);
		goto out;
	}
	for (i = 0; i < l->enc.n; i++) {
		const struct e14_key *a = &l->enc.keys[i], *b = NULL;

		/* the same order as asked, normally */
		if (!strcasecmp(dec.keys[i].key_id, a->key_id))
			b = &dec.keys[i];
		for (j = 0; !b && j < dec.n; j++)
			if (!strcasecmp(dec.keys[j].key_id, a->key_id))
				b = &dec.keys[j];
		if (!b) {
			fatal("loop %d: dec_keys answer lacks key_ID %s", l->idx, a->key_id);
			goto out;
		}
		if (b->len != a->len || memcmp(b->key, a->key, a->len)) {
			fatal("loop %d: MISMATCH: key %s differs between KME A (%zu bytes) and "
			      "KME B (%zu bytes)", l->idx, a->key_id, a->len, b->len);
			goto out;
		}
	}
	count_round(l, mono());
out:
	e14_key_container_free(&dec);
}

static void request_done(struct evhttp_request *req, void *arg)
{
	struct loop *l = arg;
	int side = l->side;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
	size_t len = in ? evbuffer_get_length(in) : 0;
	char *body = len ? (char *)evbuffer_pullup(in, -1) : (char *)"";
	const char *call = side == KME_A ? "enc_keys" : "dec_keys";

	if (g.stopping)
		goto out;
	if (code == 0) {
		char why[200];

		e14cli_reason(l->bev[l->side], l->err, why, sizeof(why));
		fatal("loop %d: %s at %s (%s): %s", l->idx, call, g.kme[side].name,
		      g.kme[side].url, why);
	} else if (code != 200) {
		char msg[200];

		if (e14_parse_error(body, len, msg, sizeof(msg)))
			snprintf(msg, sizeof(msg), "(no Error body)");
		fatal("loop %d: %s at %s: HTTP %d: %s", l->idx, call, g.kme[side].name, code,
		      msg);
	} else if (side == KME_A) {
		enc_answer(l, body, len);
	} else {
		dec_answer(l, body, len);
		e14_key_container_free(&l->enc);
		if (!g.stopping)
			round_start(l);
	}
out:
	if (len)
		explicit_bzero(body, len);
	if (in)
		evbuffer_drain(in, len);
}

/* ---- the clock ---- */

static void window_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	if (!arg) {		/* warm-up over */
		g.measuring = 1;
		g.t_meas0 = mono();
		g.cpu0 = self_cpu();
		g.srv0 = g.proc == 0 ? proc_cpu(g.server_pid) : -1;
		return;
	}
	g.t_meas1 = mono();
	g.cpu1 = self_cpu();
	g.srv1 = g.proc == 0 ? proc_cpu(g.server_pid) : -1;
	g.measuring = 0;
	stop();
}

/* ---- setup ---- */

static int parse_url(struct kme *k, const char *peer_sae, const char *call)
{
	struct evhttp_uri *u = evhttp_uri_parse(k->url);
	const char *host, *path;
	size_t plen;
	int port;

	if (!u || !evhttp_uri_get_scheme(u) || strcasecmp(evhttp_uri_get_scheme(u), "https") ||
	    !(host = evhttp_uri_get_host(u)) || !*host) {
		fprintf(stderr, "e14bench: %s: not an https://HOST[:PORT][/PREFIX] URL\n",
			k->url);
		if (u)
			evhttp_uri_free(u);
		return -1;
	}
	port = evhttp_uri_get_port(u);
	k->port = port > 0 ? (unsigned)port : 443;
	/* evhttp gives an IPv6 host in brackets */
	if (host[0] == '[') {
		snprintf(k->host, sizeof(k->host), "%.*s", (int)strlen(host) - 2, host + 1);
		snprintf(k->hosthdr, sizeof(k->hosthdr), "%s:%u", host, k->port);
	} else {
		snprintf(k->host, sizeof(k->host), "%s", host);
		snprintf(k->hosthdr, sizeof(k->hosthdr), "%s:%u", host, k->port);
	}
	path = evhttp_uri_get_path(u);
	plen = path ? strlen(path) : 0;
	while (plen && path[plen - 1] == '/')
		plen--;
	snprintf(k->path, sizeof(k->path), "%.*s/api/v1/keys/%s/%s", (int)plen,
		 plen ? path : "", peer_sae, call);
	evhttp_uri_free(u);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: e14bench --kme-a URL --kme-b URL --cert-a FILE --key-a FILE\n"
		"                --cert-b FILE --key-b FILE --ca FILE --master-sae ID\n"
		"                --slave-sae ID [--size BITS] [--number N] [--conns C]\n"
		"                [--procs P] [--seconds S] [--warmup S] [--server-pid PID]\n"
		"ETSI GS QKD 014 key delivery benchmark: C loops of enc_keys at KME A (as the\n"
		"master SAE) then dec_keys at KME B (as the slave SAE), keys compared.\n"
		"  --kme-a, --kme-b URL      https://HOST:PORT of the two KMEs\n"
		"  --cert-a, --key-a FILE    the master SAE's client certificate and key (PEM)\n"
		"  --cert-b, --key-b FILE    the slave SAE's\n"
		"  --ca FILE                 CA of the KMEs' server certificates (PEM)\n"
		"  --master-sae, --slave-sae ID  the SAE_IDs (the CNs of those certificates)\n"
		"  --size BITS               key size (default 256)\n"
		"  --number N                keys per request (default 1)\n"
		"  --conns C                 loops, each with one connection to each KME\n"
		"                            (default 8, at most %d)\n"
		"  --procs P                 client processes sharing the C loops (default 1)\n"
		"  --seconds S               measured time (default 5)\n"
		"  --warmup S                before it, not counted (default 1)\n"
		"  --server-pid PID          also report this process's CPU use (kmesimd)\n"
		"Prints: e14bench: size= number= conns= procs= seconds= rounds= pairs=\n"
		"pairs_per_s= key_MBps= p50_ms= p99_ms= client_cpu= server_cpu= (CPU seconds\n"
		"per second; pairs: keys delivered to both SAEs and equal, MB = 10^6 bytes).\n"
		"Exit status 1 on an HTTP error, a TLS or connection failure or a key mismatch.\n",
		MAX_CONNS);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *lat, size_t n, double p)
{
	return n ? lat[(size_t)(p * (double)(n - 1) + 0.5)] : 0;
}

static double num_arg(const char *opt, const char *v, double min, double max)
{
	char *end;
	double x = strtod(v, &end);

	if (!*v || *end || !(x >= min && x <= max)) {
		fprintf(stderr, "e14bench: %s: `%s' is not a number in %g..%g\n", opt, v, min,
			max);
		exit(2);
	}
	return x;
}

/* What a client process reports to the parent: this, then nlat doubles (ms). */
struct result {
	uint64_t rounds, pairs, nlat;
	double dt, cpu, srv;		/* srv < 0: not measured */
};

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One client process: its share of the loops, until the end of the window. 0 or 1. */
static int run_client(unsigned proc, int fd)
{
	struct event *ev_warm = NULL, *ev_end = NULL;
	struct result r;
	struct timeval tv;
	unsigned i;

	g.proc = proc;
	g.nloops = g.conns / g.procs + (proc < g.conns % g.procs);
	g.base = event_base_new();
	g.loops = calloc(g.nloops, sizeof(*g.loops));
	if (g.base) {
		ev_warm = evtimer_new(g.base, window_cb, NULL);
		ev_end = evtimer_new(g.base, window_cb, &g);
	}
	if (!g.loops || !ev_warm || !ev_end) {
		fprintf(stderr, "e14bench: out of memory\n");
		g.rc = 1;
		goto out;
	}
	tv.tv_sec = (time_t)g.warmup;
	tv.tv_usec = (suseconds_t)((g.warmup - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev_warm, &tv);
	tv.tv_sec = (time_t)(g.warmup + g.seconds);
	tv.tv_usec = (suseconds_t)((g.warmup + g.seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev_end, &tv);
	for (i = 0; i < g.nloops && !g.stopping; i++) {
		/* loop numbers as in the messages: over all processes */
		g.loops[i].idx = (int)(proc + i * g.procs);
		round_start(&g.loops[i]);
	}
	if (!g.stopping)
		event_base_dispatch(g.base);
	if (g.rc)
		goto out;
	memset(&r, 0, sizeof(r));
	r.rounds = g.rounds;
	r.pairs = g.pairs;
	r.nlat = g.nlat;
	r.dt = g.t_meas1 - g.t_meas0;
	r.cpu = g.cpu1 - g.cpu0;
	r.srv = g.srv0 >= 0 && g.srv1 >= 0 ? g.srv1 - g.srv0 : -1;
	if (write_all(fd, &r, sizeof(r)) || write_all(fd, g.lat, g.nlat * sizeof(*g.lat))) {
		perror("e14bench: writing the result");
		g.rc = 1;
	}
out:
	for (i = 0; g.loops && i < g.nloops; i++) {
		for (int s = 0; s < 2; s++)
			close_conn(&g.loops[i], s);
		e14_key_container_free(&g.loops[i].enc);
	}
	free(g.loops);
	free(g.lat);
	if (ev_warm)
		event_free(ev_warm);
	if (ev_end)
		event_free(ev_end);
	if (g.base)
		event_base_free(g.base);
	return g.rc;
}

/* Reads a child's whole report: 0, or -1 if it sent none (it failed, and said why). */
static int read_result(int fd, struct result *r, double **lat, size_t *nlat, size_t *cap)
{
	char *buf = NULL;
	size_t len = 0, bcap = 0, need;
	int rc = -1;

	for (;;) {
		ssize_t n;

		if (len == bcap) {
			char *p = realloc(buf, bcap = bcap ? 2 * bcap : 65536);

			if (!p)
				goto out;
			buf = p;
		}
		n = read(fd, buf + len, bcap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len < sizeof(*r))
		goto out;
	memcpy(r, buf, sizeof(*r));
	need = sizeof(*r) + r->nlat * sizeof(double);
	if (len != need)
		goto out;
	if (*nlat + r->nlat > *cap) {
		size_t c = *nlat + r->nlat;
		double *p = realloc(*lat, (c ? c : 1) * sizeof(*p));

		if (!p)
			goto out;
		*lat = p;
		*cap = c;
	}
	memcpy(*lat + *nlat, buf + sizeof(*r), r->nlat * sizeof(double));
	*nlat += r->nlat;
	rc = 0;
out:
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kme-a", required_argument, NULL, 'A' },
		{ "kme-b", required_argument, NULL, 'B' },
		{ "cert-a", required_argument, NULL, 'c' },
		{ "key-a", required_argument, NULL, 'k' },
		{ "cert-b", required_argument, NULL, 'C' },
		{ "key-b", required_argument, NULL, 'K' },
		{ "ca", required_argument, NULL, 'a' },
		{ "master-sae", required_argument, NULL, 'm' },
		{ "slave-sae", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'z' },
		{ "number", required_argument, NULL, 'n' },
		{ "conns", required_argument, NULL, 'j' },
		{ "procs", required_argument, NULL, 'P' },
		{ "seconds", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "server-pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cert_a = NULL, *key_a = NULL, *cert_b = NULL, *key_b = NULL, *ca = NULL;
	struct e14_key_request kr;
	pid_t pids[MAX_CONNS];
	int fds[MAX_CONNS];
	struct result sum, r;
	double *lat = NULL;
	size_t nlat = 0, cap = 0;
	unsigned i, started = 0, failed = 0, srv_ok = 0;
	int o, rc = 0, st;

	g.size = 256;
	g.number = 1;
	g.conns = 8;
	g.procs = 1;
	g.seconds = 5;
	g.warmup = 1;
	g.kme[KME_A].name = "KME A";
	g.kme[KME_B].name = "KME B";
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'A': g.kme[KME_A].url = optarg; break;
		case 'B': g.kme[KME_B].url = optarg; break;
		case 'c': cert_a = optarg; break;
		case 'k': key_a = optarg; break;
		case 'C': cert_b = optarg; break;
		case 'K': key_b = optarg; break;
		case 'a': ca = optarg; break;
		case 'm': g.master = optarg; break;
		case 's': g.slave = optarg; break;
		case 'z': g.size = (uint32_t)num_arg("--size", optarg, 8, E14_MAX_KEY_BITS); break;
		case 'n': g.number = (uint32_t)num_arg("--number", optarg, 1, E14_MAX_KEYS); break;
		case 'j': g.conns = (unsigned)num_arg("--conns", optarg, 1, MAX_CONNS); break;
		case 'P': g.procs = (unsigned)num_arg("--procs", optarg, 1, MAX_CONNS); break;
		case 't': g.seconds = num_arg("--seconds", optarg, 0.1, 3600); break;
		case 'w': g.warmup = num_arg("--warmup", optarg, 0, 600); break;
		case 'p': g.server_pid = (long)num_arg("--server-pid", optarg, 1, 1e9); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !g.kme[KME_A].url || !g.kme[KME_B].url || !cert_a || !key_a ||
	    !cert_b || !key_b || !ca || !g.master || !g.slave) {
		usage(stderr);
		return 2;
	}
	if (g.size % 8 || g.procs > g.conns || !e14_id_valid(g.master) ||
	    !e14_id_valid(g.slave)) {
		fprintf(stderr, "e14bench: --size must be a multiple of 8, --procs at most "
			"--conns, the SAE_IDs valid\n");
		return 2;
	}
	/*
	 * The client's own overhead, kept low: 44 KB answers come and go each round, and
	 * glibc would give the top of the heap back to the kernel (brk) after each.
	 */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	/* key bytes pass through libevent's and OpenSSL's buffers: wipe them on free */
	if (wipe_alloc_init()) {
		fprintf(stderr, "e14bench: cannot set the wiping allocator\n");
		return 1;
	}
	e14_init();
	if (parse_url(&g.kme[KME_A], g.slave, "enc_keys") ||
	    parse_url(&g.kme[KME_B], g.master, "dec_keys"))
		return 2;
	g.kme[KME_A].ctx = client_ctx(cert_a, key_a, ca);
	g.kme[KME_B].ctx = client_ctx(cert_b, key_b, ca);
	memset(&kr, 0, sizeof(kr));
	kr.number = g.number;
	kr.size = g.size;
	g.enc_body = e14_format_key_request(&kr, &g.enc_len);
	if (!g.kme[KME_A].ctx || !g.kme[KME_B].ctx || !g.enc_body) {
		if (!g.enc_body)
			fprintf(stderr, "e14bench: out of memory\n");
		rc = 1;
		goto out;
	}
	fflush(NULL);
	for (i = 0; i < g.procs; i++) {
		int p[2];

		if (pipe(p)) {
			perror("e14bench: pipe");
			rc = 1;
			break;
		}
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("e14bench: fork");
			close(p[0]);
			close(p[1]);
			rc = 1;
			break;
		}
		if (pids[i] == 0) {
			for (unsigned j = 0; j < i; j++)
				close(fds[j]);
			close(p[0]);
			o = run_client(i, p[1]);
			close(p[1]);
			_exit(o);
		}
		close(p[1]);
		fds[i] = p[0];
		started++;
	}
	memset(&sum, 0, sizeof(sum));
	for (i = 0; i < started; i++) {
		if (rc || read_result(fds[i], &r, &lat, &nlat, &cap)) {
			/* it said why; the others would only run out their time */
			if (!rc)
				for (unsigned j = i + 1; j < started; j++)
					kill(pids[j], SIGTERM);
			rc = 1;
		} else {
			sum.rounds += r.rounds;
			sum.pairs += r.pairs;
			sum.dt += r.dt / g.procs;
			sum.cpu += r.cpu;
			if (r.srv >= 0) {
				sum.srv += r.srv;
				srv_ok = 1;
			}
		}
		close(fds[i]);
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	if (rc || failed) {
		rc = 1;
		goto out;
	}
	if (sum.dt <= 0 || !sum.rounds) {
		fprintf(stderr, "e14bench: no round completed in the measured window\n");
		rc = 1;
		goto out;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	printf("e14bench: size=%u number=%u conns=%u procs=%u seconds=%.2f rounds=%llu "
	       "pairs=%llu pairs_per_s=%.1f key_MBps=%.2f p50_ms=%.2f p99_ms=%.2f "
	       "client_cpu=%.2f", g.size, g.number, g.conns, g.procs, sum.dt,
	       (unsigned long long)sum.rounds, (unsigned long long)sum.pairs,
	       (double)sum.pairs / sum.dt, (double)sum.pairs * (g.size / 8) / sum.dt / 1e6,
	       pct(lat, nlat, 0.50), pct(lat, nlat, 0.99), sum.cpu / sum.dt);
	if (srv_ok)
		printf(" server_cpu=%.2f", sum.srv / sum.dt);
	printf("\n");
out:
	free(lat);
	if (g.enc_body)
		e14_text_free(g.enc_body);
	for (i = 0; i < 2; i++)
		if (g.kme[i].ctx)
			SSL_CTX_free(g.kme[i].ctx);
	return rc;
}
