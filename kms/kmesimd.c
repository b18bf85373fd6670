// SPDX-License-Identifier: GPL-2.0
/*
 * kmesimd: a pair of ETSI GS QKD 014 KMEs, A and B, at the two ends of a simulated QKD link,
 * for tests. An SAE is its client certificate's subject CN and belongs to the KME it talks
 * to. enc_keys at one KME hands its caller (the master) fresh random keys and leaves them
 * pending for the slave at the other KME, where dec_keys hands each out once. Every ordered
 * SAE pair has its own key budget, refilled at --rate. A control socket switches faults on
 * and off (503, 401, slow answers, truncated bodies, withheld keys) and reads counters.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/rand.h>

#include "e14srv.h"
#include "etsi014.h"
#include "log.h"
#include "wipe.h"

#define NBUCKETS 65536u		/* key_ID hash table */
#define MAX_PAIRS 10000
#define CTL_LINE_MAX 1024

enum kstate { K_PENDING, K_DELIVERED, K_EXPIRED };

struct sim;

struct kme {
	struct sim *sim;
	int idx;			/* 0 = A, 1 = B */
	char id[E14_ID_MAX + 1];
	const char *listen;
	struct e14srv *srv;
	/* faults */
	int fault_status;		/* 0, 401 or 503 */
	unsigned slow_ms;
	int truncate;
	uint64_t withhold;
	/* counters: issued, withheld, expired and pending count where the keys were issued,
	 * delivered where they were handed to the slave */
	uint64_t issued, delivered, withheld, expired, pending;
};

/* The key budget of one ordered pair of SAEs (master -> slave). */
struct pair {
	struct pair *next;
	char master[E14_ID_MAX + 1];
	char slave[E14_ID_MAX + 1];
	double bits;			/* available */
	double last;			/* when last refilled */
};

/* A key issued by enc_keys, pending for its slave; after that a tombstone (no bytes). */
struct skey {
	struct skey *hnext;		/* hash chain */
	struct skey *prev, *next;	/* issue order */
	struct pair *pair;
	uint8_t *key;
	size_t len;
	double t;			/* issued */
	int kme;			/* issued at */
	enum kstate state;
	char id[E14_UUID_LEN + 1];
};

/* An API call held back by the slow fault. */
struct call {
	struct call *prev, *next;
	struct kme *k;
	struct e14_req *rq;
	struct event *ev;
	char a[E14_ID_MAX + 1], b[E14_ID_MAX + 1];
	struct e14_key_request kr;
	size_t nids;
	char (*ids)[E14_UUID_LEN + 1];
};

struct ctlc {
	struct ctlc *prev, *next;
	struct sim *s;
	struct bufferevent *bev;
};

struct sim {
	struct event_base *base;
	struct kme kme[2];
	struct event *gc, *sig[2];
	struct evconnlistener *ctl;
	const char *ctl_path;
	struct ctlc *ctls;
	struct call *calls;
	struct pair *pairs;
	size_t npairs;
	struct skey **tab;
	struct skey *head, *tail;	/* issue order */
	struct skey *cursor;		/* first entry not yet checked for expiry */
	size_t nentries, max_entries;
	/* settings */
	const char *cert, *key, *ca;
	double rate;			/* bit/s per pair; 0: always full */
	int start_empty;
	uint32_t key_size, min_size, max_size, max_count, max_per_req;
	unsigned ttl, max_conns, idle_s;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 3, 4)))
answer_error(struct e14_req *rq, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e14_req_error(rq, code, msg, NULL, NULL, 0);
}

/* ---- key budgets ---- */

static double cap_bits(const struct sim *s)
{
	return (double)s->max_count * s->key_size;
}

static void pair_refill(struct sim *s, struct pair *p)
{
	double t = now();

	if (s->rate <= 0)
		p->bits = cap_bits(s);
	else
		p->bits += (t - p->last) * s->rate;
	if (p->bits > cap_bits(s))
		p->bits = cap_bits(s);
	p->last = t;
}

static struct pair *pair_get(struct sim *s, const char *master, const char *slave)
{
	struct pair *p;

	for (p = s->pairs; p; p = p->next) {
		if (!strcmp(p->master, master) && !strcmp(p->slave, slave)) {
			pair_refill(s, p);
			return p;
		}
	}
	if (s->npairs >= MAX_PAIRS || !(p = calloc(1, sizeof(*p))))
		return NULL;
	strcpy(p->master, master);
	strcpy(p->slave, slave);
	p->bits = s->start_empty ? 0 : cap_bits(s);
	p->last = now();
	pair_refill(s, p);
	p->next = s->pairs;
	s->pairs = p;
	s->npairs++;
	return p;
}

/* ---- the keys ---- */

static unsigned bucket(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h & (NBUCKETS - 1);
}

static struct skey *key_find(struct sim *s, const char *id)
{
	struct skey *e;

	for (e = s->tab[bucket(id)]; e; e = e->hnext)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

static void key_wipe(struct skey *e)
{
	if (e->key) {
		explicit_bzero(e->key, e->len);
		free(e->key);
		e->key = NULL;
	}
}

static void key_expire(struct sim *s, struct skey *e)
{
	key_wipe(e);
	e->state = K_EXPIRED;
	s->kme[e->kme].expired++;
	s->kme[e->kme].pending--;
	log_debug("key %s (%s -> %s) expired", e->id, e->pair->master, e->pair->slave);
}

static void key_remove(struct sim *s, struct skey *e)
{
	struct skey **pp = &s->tab[bucket(e->id)];

	if (e->state == K_PENDING)
		key_expire(s, e);
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (s->cursor == e)
		s->cursor = e->next;
	if (e->prev)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		s->tail = e->prev;
	s->nentries--;
	explicit_bzero(e, sizeof(*e));
	free(e);
}

/* Takes over key (heap, len bytes). 0, or -1 if out of memory (key wiped then). */
static int key_add(struct sim *s, struct kme *k, struct pair *p, const char *id, uint8_t *key,
		   size_t len)
{
	struct skey *e = calloc(1, sizeof(*e));
	unsigned b;

	if (!e) {
		explicit_bzero(key, len);
		free(key);
		return -1;
	}
	while (s->nentries >= s->max_entries && s->head)
		key_remove(s, s->head);
	strcpy(e->id, id);
	e->pair = p;
	e->key = key;
	e->len = len;
	e->t = now();
	e->kme = k->idx;
	e->state = K_PENDING;
	b = bucket(id);
	e->hnext = s->tab[b];
	s->tab[b] = e;
	e->prev = s->tail;
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	if (!s->cursor)
		s->cursor = e;
	s->nentries++;
	k->pending++;
	return 0;
}

/* Pending keys older than the TTL are wiped; tombstones are kept one TTL more. */
static void gc_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct sim *s = arg;
	double t = now();
	struct skey *e;

	while (s->head && t - s->head->t > 2.0 * s->ttl)
		key_remove(s, s->head);
	for (e = s->cursor; e && t - e->t > s->ttl; e = e->next)
		if (e->state == K_PENDING)
			key_expire(s, e);
	s->cursor = e;
}

/* ---- the API ---- */

static void ok_keys(struct kme *k, struct e14_req *rq, const struct e14_key *keys, size_t n)
{
	if (k->truncate)
		e14_req_truncate(rq);
	e14_req_keys(rq, keys, n);
}

static void api_status(struct kme *k, struct e14_req *rq, const char *master,
		       const char *slave)
{
	struct sim *s = k->sim;
	struct e14_status st;
	struct pair *p;
	double n;

	if (!strcmp(master, slave)) {
		answer_error(rq, 400, "slave_SAE_ID %s is the caller itself", slave);
		return;
	}
	p = pair_get(s, master, slave);
	if (!p) {
		answer_error(rq, 503, "too many SAE pairs (at most %d)", MAX_PAIRS);
		return;
	}
	memset(&st, 0, sizeof(st));
	strcpy(st.source_kme_id, k->id);
	strcpy(st.target_kme_id, s->kme[!k->idx].id);
	strcpy(st.master_sae_id, master);
	strcpy(st.slave_sae_id, slave);
	st.key_size = s->key_size;
	n = p->bits / s->key_size;
	st.stored_key_count = n > s->max_count ? s->max_count : (uint32_t)n;
	st.max_key_count = s->max_count;
	st.max_key_per_request = s->max_per_req;
	st.max_key_size = s->max_size;
	st.min_key_size = s->min_size;
	st.max_sae_id_count = 0;
	if (k->truncate)
		e14_req_truncate(rq);
	e14_req_status(rq, &st);
}

static void api_enc_keys(struct kme *k, struct e14_req *rq, const char *master,
			 const char *slave, const struct e14_key_request *kr)
{
	struct sim *s = k->sim;
	uint32_t number = kr->number ? kr->number : 1, size = kr->size ? kr->size : s->key_size;
	size_t i, len = size / 8;
	struct e14_key *keys;
	struct pair *p;
	double need;

	if (kr->n_additional) {
		answer_error(rq, 400, "additional_slave_SAE_IDs: not supported "
			     "(max_SAE_ID_count is 0)");
		return;
	}
	if (!strcmp(master, slave)) {
		answer_error(rq, 400, "slave_SAE_ID %s is the caller itself", slave);
		return;
	}
	if (size < s->min_size || size > s->max_size) {
		answer_error(rq, 400, "size: %u bits is outside min_key_size..max_key_size "
			     "(%u..%u)", size, s->min_size, s->max_size);
		return;
	}
	if (size % 8) {
		answer_error(rq, 400, "size: %u bits is not a multiple of 8", size);
		return;
	}
	if (number > s->max_per_req) {
		answer_error(rq, 400, "number: %u is more than max_key_per_request (%u)", number,
			     s->max_per_req);
		return;
	}
	p = pair_get(s, master, slave);
	if (!p) {
		answer_error(rq, 503, "too many SAE pairs (at most %d)", MAX_PAIRS);
		return;
	}
	need = (double)number * size;
	if (p->bits < need) {
		answer_error(rq, 503, "not enough key for %s -> %s: %u keys of %u bits asked, "
			     "%.0f bits available", master, slave, number, size, p->bits);
		return;
	}
	keys = calloc(number, sizeof(*keys));
	if (!keys) {
		answer_error(rq, 503, "out of memory");
		return;
	}
	for (i = 0; i < number; i++) {
		keys[i].len = len;
		keys[i].key = malloc(len);
		if (!keys[i].key || RAND_bytes(keys[i].key, (int)len) != 1 ||
		    e14_uuid_generate(keys[i].key_id))
			break;
	}
	if (i < number) {
		answer_error(rq, 503, "cannot generate keys (out of memory or RNG failure)");
		number = i + 1;		/* wipe what we made */
		goto out;
	}
	p->bits -= need;
	k->issued += number;
	/* the answer first: recording may evict old entries, never these. From here on
	 * master and slave may be gone with rq: the pair has them. */
	ok_keys(k, rq, keys, number);
	for (i = 0; i < number; i++) {
		if (k->withhold) {
			k->withhold--;
			k->withheld++;
			log_info("%s: withholding key %s (%s -> %s): fault injected", k->id,
				 keys[i].key_id, p->master, p->slave);
			continue;
		}
		if (key_add(s, k, p, keys[i].key_id, keys[i].key, len) == 0)
			keys[i].key = NULL;	/* the table has it now */
		else
			log_warnx("%s: out of memory: key %s lost", k->id, keys[i].key_id);
	}
out:
	for (i = 0; i < number; i++) {
		if (keys[i].key) {
			explicit_bzero(keys[i].key, len);
			free(keys[i].key);
		}
	}
	explicit_bzero(keys, number * sizeof(*keys));
	free(keys);
}

/* Why the caller may not have e, or NULL. */
static const char *refusal(struct kme *k, const struct skey *e, const char *slave,
			   const char *master, char *buf, size_t len)
{
	if (!e)
		return "unknown";
	if (e->kme == k->idx) {
		snprintf(buf, len, "issued at this KME (%s), for the slave at %s", k->id,
			 k->sim->kme[!k->idx].id);
		return buf;
	}
	if (strcmp(e->pair->slave, slave)) {
		snprintf(buf, len, "not issued for SAE %s", slave);
		return buf;
	}
	if (strcmp(e->pair->master, master)) {
		snprintf(buf, len, "not issued by master SAE %s", master);
		return buf;
	}
	if (e->state == K_DELIVERED)
		return "already delivered";
	if (e->state == K_EXPIRED) {
		snprintf(buf, len, "expired (not fetched within %u s)", k->sim->ttl);
		return buf;
	}
	return NULL;
}

static void api_dec_keys(struct kme *k, struct e14_req *rq, const char *slave,
			 const char *master, const char (*ids)[E14_UUID_LEN + 1], size_t n)
{
	struct sim *s = k->sim;
	struct skey **ents;
	struct e14_key *keys;
	const char *why;
	char buf[2 * E14_ID_MAX + 64];
	size_t i;

	ents = calloc(n, sizeof(*ents));
	keys = calloc(n, sizeof(*keys));
	if (!ents || !keys) {
		free(ents);
		free(keys);
		answer_error(rq, 503, "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		ents[i] = key_find(s, ids[i]);
		why = refusal(k, ents[i], slave, master, buf, sizeof(buf));
		if (why) {
			answer_error(rq, 400, "key_ID %s: %s", ids[i], why);
			goto out;
		}
		memcpy(keys[i].key_id, ents[i]->id, sizeof(keys[i].key_id));
		keys[i].key = ents[i]->key;
		keys[i].len = ents[i]->len;
	}
	ok_keys(k, rq, keys, n);
	for (i = 0; i < n; i++) {
		key_wipe(ents[i]);
		ents[i]->state = K_DELIVERED;
		s->kme[ents[i]->kme].pending--;
	}
	k->delivered += n;
out:
	explicit_bzero(keys, n * sizeof(*keys));
	free(keys);
	free(ents);
}

/* One API call, now: faults first. */
static void run(struct kme *k, struct e14_req *rq, const char *a, const char *b,
		const struct e14_key_request *kr, const char (*ids)[E14_UUID_LEN + 1], size_t n)
{
	if (k->fault_status == 503) {
		answer_error(rq, 503, "%s unavailable (fault injected)", k->id);
		return;
	}
	if (k->fault_status == 401) {
		answer_error(rq, 401, "%s refuses SAE %s (fault injected)", k->id, e14_req_sae(rq));
		return;
	}
	switch (e14_req_method(rq)) {
	case E14_STATUS:
		api_status(k, rq, a, b);
		break;
	case E14_ENC_KEYS:
		api_enc_keys(k, rq, a, b, kr);
		break;
	case E14_DEC_KEYS:
		api_dec_keys(k, rq, a, b, ids, n);
		break;
	}
}

static void call_free(struct sim *s, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	event_free(c->ev);
	free(c->ids);
	free(c);
}

static void call_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct call *c = arg;

	e14_req_set_data(c->rq, NULL);
	run(c->k, c->rq, c->a, c->b, &c->kr, (const char (*)[E14_UUID_LEN + 1])c->ids, c->nids);
	call_free(c->k->sim, c);
}

/* Every API call: at once, or after the slow fault's delay. */
static void api(struct kme *k, struct e14_req *rq, const char *a, const char *b,
		const struct e14_key_request *kr, const struct e14_key_ids *ids)
{
	struct sim *s = k->sim;
	struct timeval tv;
	struct call *c;

	if (!k->slow_ms) {
		run(k, rq, a, b, kr, ids ? (const char (*)[E14_UUID_LEN + 1])ids->ids : NULL,
		    ids ? ids->n : 0);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || (ids && !(c->ids = calloc(ids->n, sizeof(*c->ids)))) ||
	    !(c->ev = evtimer_new(s->base, call_cb, c))) {
		if (c)
			free(c->ids);
		free(c);
		answer_error(rq, 503, "out of memory");
		return;
	}
	c->k = k;
	c->rq = rq;
	strcpy(c->a, a);
	strcpy(c->b, b);
	if (kr)
		c->kr = *kr;
	if (ids) {
		memcpy(c->ids, ids->ids, ids->n * sizeof(*c->ids));
		c->nids = ids->n;
	}
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	e14_req_set_data(rq, c);
	tv.tv_sec = k->slow_ms / 1000;
	tv.tv_usec = (k->slow_ms % 1000) * 1000;
	evtimer_add(c->ev, &tv);
}

static int op_identify(void *arg, X509 *cert, const char *cn, char sae_id[E14_ID_MAX + 1])
{
	if (!cn || !e14_id_valid(cn))
		return -1;
	strcpy(sae_id, cn);
	return 0;
}

static void op_status(void *arg, struct e14_req *rq, const char *master, const char *slave)
{
	api(arg, rq, master, slave, NULL, NULL);
}

static void op_enc_keys(void *arg, struct e14_req *rq, const char *master, const char *slave,
			const struct e14_key_request *kr)
{
	api(arg, rq, master, slave, kr, NULL);
}

static void op_dec_keys(void *arg, struct e14_req *rq, const char *slave, const char *master,
			const struct e14_key_ids *ids)
{
	api(arg, rq, slave, master, NULL, ids);
}

static void op_cancel(void *arg, struct e14_req *rq)
{
	struct kme *k = arg;
	struct call *c = e14_req_data(rq);

	if (c)
		call_free(k->sim, c);
}

static const struct e14srv_ops ops = {
	.identify = op_identify,
	.status = op_status,
	.enc_keys = op_enc_keys,
	.dec_keys = op_dec_keys,
	.cancel = op_cancel,
};

/* ---- the control socket ---- */

static void stats_line(struct sim *s, char *out, size_t len)
{
	size_t o = 0;
	int i;

	for (i = 0; i < 2 && o < len; i++) {
		struct kme *k = &s->kme[i];
		struct e14srv_stats st;

		e14srv_get_stats(k->srv, &st);
		o += snprintf(out + o, len - o,
			      "%s%c issued=%llu delivered=%llu withheld=%llu expired=%llu "
			      "pending=%llu requests=%llu keys_out=%llu s200=%llu s400=%llu "
			      "s401=%llu s404=%llu s405=%llu s503=%llu other=%llu canceled=%llu "
			      "conns=%u refused=%llu", i ? "; " : "", 'A' + i,
			      (unsigned long long)k->issued, (unsigned long long)k->delivered,
			      (unsigned long long)k->withheld, (unsigned long long)k->expired,
			      (unsigned long long)k->pending,
			      (unsigned long long)st.total.requests,
			      (unsigned long long)st.total.keys_out,
			      (unsigned long long)st.total.s200, (unsigned long long)st.total.s400,
			      (unsigned long long)st.total.s401, (unsigned long long)st.total.s404,
			      (unsigned long long)st.total.s405, (unsigned long long)st.total.s503,
			      (unsigned long long)st.total.s_other,
			      (unsigned long long)st.total.canceled, st.conns_open,
			      (unsigned long long)st.conns_refused);
	}
}

static int parse_num(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!v || !*v || *v == '-' || *v == '+')
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

/* One control command; the reply (without newline) into out. */
static void ctl_command(struct sim *s, char *line, char *out, size_t len)
{
	char *save = NULL, *cmd = strtok_r(line, " \t", &save);
	char *who = strtok_r(NULL, " \t", &save), *what = strtok_r(NULL, " \t", &save);
	char *val = strtok_r(NULL, " \t", &save), *extra = strtok_r(NULL, " \t", &save);
	unsigned long long n = 0;
	int lo, hi, i;

	if (!cmd) {
		snprintf(out, len, "error: empty command");
		return;
	}
	if (!strcmp(cmd, "stats") && !who) {
		stats_line(s, out, len);
		return;
	}
	if (strcmp(cmd, "fault")) {
		snprintf(out, len, "error: unknown command `%.40s' (fault, stats)", cmd);
		return;
	}
	if (!who || !strcmp(who, "both")) {
		lo = 0;
		hi = 1;
	} else if (!strcmp(who, "a") || !strcmp(who, "b")) {
		lo = hi = who[0] - 'a';
	} else {
		snprintf(out, len, "error: fault: which KME: a, b or both, not `%.40s'", who);
		return;
	}
	if (!what) {
		snprintf(out, len, "error: fault %s: 503, 401, slow MS, truncate, withhold N "
			 "or off", who);
		return;
	}
	if (extra || (val && strcmp(what, "slow") && strcmp(what, "withhold"))) {
		snprintf(out, len, "error: fault %s %s: too many arguments", who, what);
		return;
	}
	if ((!strcmp(what, "slow") && parse_num(val, 3600000, &n)) ||
	    (!strcmp(what, "withhold") && parse_num(val, UINT32_MAX, &n))) {
		snprintf(out, len, "error: fault %s %s: not a number%s: `%.40s'", who, what,
			 what[0] == 's' ? " of milliseconds (0..3600000)" : "", val ? val : "");
		return;
	}
	if (strcmp(what, "503") && strcmp(what, "401") && strcmp(what, "slow") &&
	    strcmp(what, "truncate") && strcmp(what, "withhold") && strcmp(what, "off")) {
		snprintf(out, len, "error: fault %s: unknown fault `%.40s' (503, 401, slow MS, "
			 "truncate, withhold N, off)", who, what);
		return;
	}
	/* one fault at a time: each command replaces the KME's previous one */
	for (i = lo; i <= hi; i++) {
		struct kme *k = &s->kme[i];

		k->fault_status = 0;
		k->slow_ms = 0;
		k->truncate = 0;
		k->withhold = 0;
		if (!strcmp(what, "503") || !strcmp(what, "401"))
			k->fault_status = atoi(what);
		else if (!strcmp(what, "slow"))
			k->slow_ms = (unsigned)n;
		else if (!strcmp(what, "truncate"))
			k->truncate = 1;
		else if (!strcmp(what, "withhold"))
			k->withhold = n;
		log_info("%s: fault %s%s%s", k->id, what, val ? " " : "", val ? val : "");
	}
	snprintf(out, len, "ok");
}

static void ctl_close(struct ctlc *c)
{
	struct sim *s = c->s;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->ctls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);
	free(c);
}

static void ctl_drained_cb(struct bufferevent *bev, void *arg)
{
	ctl_close(arg);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctlc *c = arg;

	/* the client may send its last command and close at once: answer it first */
	if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_output(bev))) {
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, ctl_drained_cb, NULL, c);
		return;
	}
	ctl_close(c);
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctlc *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char reply[1024], *line;
	size_t n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_ANY))) {
		ctl_command(c->s, line, reply, sizeof(reply));
		free(line);
		bufferevent_write(bev, reply, strlen(reply));
		bufferevent_write(bev, "\n", 1);
	}
	if (evbuffer_get_length(in) > CTL_LINE_MAX) {
		log_warnx("control: line longer than %d bytes, closing", CTL_LINE_MAX);
		ctl_close(c);
	}
}

static void ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	struct sim *s = arg;
	struct ctlc *c = calloc(1, sizeof(*c));

	if (!c || !(c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		free(c);
		evutil_closesocket(fd);
		return;
	}
	c->s = s;
	c->next = s->ctls;
	if (s->ctls)
		s->ctls->prev = c;
	s->ctls = c;
	bufferevent_setcb(c->bev, ctl_read_cb, NULL, ctl_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void ctl_listen(struct sim *s, const char *path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("--control: socket path too long: `%s'", path);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	unlink(path);
	s->ctl = evconnlistener_new_bind(s->base, ctl_accept_cb, s, LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_CLOSE_ON_EXEC, 8, (struct sockaddr *)&sun,
					 sizeof(sun));
	if (!s->ctl)
		fatal("--control: listen on `%s'", path);
	s->ctl_path = path;
	if (chmod(path, 0600))
		fatal("chmod %s", path);
}

/* ---- main ---- */

static void signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct sim *s = arg;

	log_info("exiting on signal %d", (int)sig);
	event_base_loopexit(s->base, NULL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kmesimd -a HOST:PORT -b HOST:PORT --cert FILE --key FILE --ca FILE\n"
		"               [--id-a ID] [--id-b ID] [--rate BITS] [--key-size BITS]\n"
		"               [--min-key-size BITS] [--max-key-size BITS] [--max-key-count N]\n"
		"               [--max-keys-per-request N] [--key-ttl S] [--max-connections N]\n"
		"               [--idle-timeout S] [--start-empty] [-C PATH] [-l FILE] [-f] [-v]\n"
		"Simulates two ETSI GS QKD 014 KMEs, A and B, sharing keys over a QKD link.\n"
		"  -a, --kme-a HOST:PORT        where KME A listens (HTTPS, IPv6 as [addr]:port)\n"
		"  -b, --kme-b HOST:PORT        where KME B listens\n"
		"      --id-a, --id-b ID        KME_IDs (default KME_A, KME_B)\n"
		"      --cert FILE, --key FILE  server certificate and key of both KMEs (PEM)\n"
		"      --ca FILE                CA of the SAE client certificates (PEM)\n"
		"      --rate BITS              key rate per ordered SAE pair, bit/s (default\n"
		"                               1000000; 0: the store is always full)\n"
		"      --key-size BITS          default key size (default 256)\n"
		"      --min-key-size BITS      (default 64)\n"
		"      --max-key-size BITS      (default 262144)\n"
		"      --max-key-count N        keys a pair's store holds (default 100000)\n"
		"      --max-keys-per-request N (default 128, at most %d)\n"
		"      --key-ttl SECONDS        pending keys not fetched are wiped after this\n"
		"                               (default 300)\n"
		"      --max-connections N      TLS connections per KME (default %d)\n"
		"      --idle-timeout SECONDS   close connections idle this long (default %d)\n"
		"      --start-empty            pair stores start empty, not full\n"
		"  -C, --control PATH           UNIX socket for fault switches and stats\n"
		"  -l, --log FILE               log here instead of standard error\n"
		"  -f, --foreground             accepted; kmesimd always stays in the foreground\n"
		"  -v, --verbose                debug logging (every request)\n"
		"Control commands (one a line): fault a|b|both 503|401|truncate|off,\n"
		"fault a|b|both slow MS, fault a|b|both withhold N, stats.\n",
		E14_MAX_KEYS, E14SRV_MAX_CONNECTIONS, E14SRV_IDLE_TIMEOUT_S);
}

static uint32_t opt_u32(const char *opt, const char *v, uint32_t min, uint32_t max)
{
	unsigned long long n;

	if (parse_num(v, max, &n) || n < min)
		fatalx("%s: not a number in %u..%u: `%s'", opt, min, max, v);
	return (uint32_t)n;
}

int main(int argc, char **argv)
{
	enum { O_ID_A = 256, O_ID_B, O_CERT, O_KEY, O_CA, O_RATE, O_KSIZE, O_MIN, O_MAX,
	       O_COUNT, O_PERREQ, O_TTL, O_CONNS, O_IDLE, O_EMPTY };
	static const struct option opts[] = {
		{ "kme-a", required_argument, NULL, 'a' },
		{ "kme-b", required_argument, NULL, 'b' },
		{ "id-a", required_argument, NULL, O_ID_A },
		{ "id-b", required_argument, NULL, O_ID_B },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "ca", required_argument, NULL, O_CA },
		{ "rate", required_argument, NULL, O_RATE },
		{ "key-size", required_argument, NULL, O_KSIZE },
		{ "min-key-size", required_argument, NULL, O_MIN },
		{ "max-key-size", required_argument, NULL, O_MAX },
		{ "max-key-count", required_argument, NULL, O_COUNT },
		{ "max-keys-per-request", required_argument, NULL, O_PERREQ },
		{ "key-ttl", required_argument, NULL, O_TTL },
		{ "max-connections", required_argument, NULL, O_CONNS },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "start-empty", no_argument, NULL, O_EMPTY },
		{ "control", required_argument, NULL, 'C' },
		{ "log", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int sigs[] = { SIGINT, SIGTERM };
	static struct sim sim = {
		.rate = 1000000, .key_size = 256, .min_size = 64, .max_size = 262144,
		.max_count = 100000, .max_per_req = 128, .ttl = 300,
		.max_conns = E14SRV_MAX_CONNECTIONS, .idle_s = E14SRV_IDLE_TIMEOUT_S,
	};
	struct sim *s = &sim;
	const char *ctl_path = NULL, *logfile = NULL;
	unsigned long long n;
	struct timeval tv = { 1, 0 };
	int c, i, verbose = LOG_LVL_INFO;
	char err[512];

	/* before any library allocates: key bytes must not linger in freed heap memory */
	if (wipe_alloc_init())
		fatalx("cannot install the wiping allocator");
	e14_init();
	log_init("kmesimd", 0, LOG_LVL_INFO);
	strcpy(s->kme[0].id, "KME_A");
	strcpy(s->kme[1].id, "KME_B");
	while ((c = getopt_long(argc, argv, "a:b:C:l:fvh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': s->kme[0].listen = optarg; break;
		case 'b': s->kme[1].listen = optarg; break;
		case O_ID_A:
		case O_ID_B:
			if (!e14_id_valid(optarg))
				fatalx("--id-%c: not a valid KME_ID (1..%d printable characters, "
				       "none of /?#%%): `%s'", c == O_ID_A ? 'a' : 'b', E14_ID_MAX,
				       optarg);
			strcpy(s->kme[c - O_ID_A].id, optarg);
			break;
		case O_CERT: s->cert = optarg; break;
		case O_KEY: s->key = optarg; break;
		case O_CA: s->ca = optarg; break;
		case O_RATE:
			if (parse_num(optarg, 1ull << 50, &n))
				fatalx("--rate: not a number of bits per second: `%s'", optarg);
			s->rate = (double)n;
			break;
		case O_KSIZE:
			s->key_size = opt_u32("--key-size", optarg, 8, E14_MAX_KEY_BITS);
			break;
		case O_MIN:
			s->min_size = opt_u32("--min-key-size", optarg, 8, E14_MAX_KEY_BITS);
			break;
		case O_MAX:
			s->max_size = opt_u32("--max-key-size", optarg, 8, E14_MAX_KEY_BITS);
			break;
		case O_COUNT:
			s->max_count = opt_u32("--max-key-count", optarg, 1, 100000000);
			break;
		case O_PERREQ:
			s->max_per_req = opt_u32("--max-keys-per-request", optarg, 1,
						 E14_MAX_KEYS);
			break;
		case O_TTL:
			s->ttl = opt_u32("--key-ttl", optarg, 1, 86400 * 365);
			break;
		case O_CONNS:
			s->max_conns = opt_u32("--max-connections", optarg, 1, 1000000);
			break;
		case O_IDLE:
			s->idle_s = opt_u32("--idle-timeout", optarg, 1, 86400);
			break;
		case O_EMPTY: s->start_empty = 1; break;
		case 'C': ctl_path = optarg; break;
		case 'l': logfile = optarg; break;
		case 'f': break;
		case 'v': verbose = LOG_LVL_DEBUG; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kmesimd: unexpected argument `%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!s->kme[0].listen || !s->kme[1].listen || !s->cert || !s->key || !s->ca) {
		fprintf(stderr, "kmesimd: -a, -b, --cert, --key and --ca are required\n");
		usage(stderr);
		return 2;
	}
	if (s->key_size % 8 || s->min_size % 8 || s->max_size % 8)
		fatalx("--key-size, --min-key-size, --max-key-size: multiples of 8 bits, not "
		       "%u, %u, %u", s->key_size, s->min_size, s->max_size);
	if (s->min_size > s->key_size || s->key_size > s->max_size)
		fatalx("--key-size %u is not in --min-key-size..--max-key-size (%u..%u)",
		       s->key_size, s->min_size, s->max_size);
	if (!strcmp(s->kme[0].id, s->kme[1].id))
		fatalx("--id-a and --id-b are the same: `%s'", s->kme[0].id);
	if (logfile && !freopen(logfile, "a", stderr))
		fatal("-l: cannot open `%s'", logfile);
	setvbuf(stderr, NULL, _IOLBF, 0);
	log_init("kmesimd", 0, verbose);
	log_route_libevent();
	signal(SIGPIPE, SIG_IGN);

	s->max_entries = 2 * (size_t)s->max_count + 1024;
	s->tab = calloc(NBUCKETS, sizeof(*s->tab));
	s->base = event_base_new();
	if (!s->tab || !s->base)
		fatalx("out of memory");
	for (i = 0; i < 2; i++) {
		struct e14srv_config cf = {
			.listen = s->kme[i].listen, .cert = s->cert, .key = s->key, .ca = s->ca,
			.kme_id = s->kme[i].id, .max_connections = s->max_conns,
			.max_keys_per_request = s->max_per_req, .idle_timeout_s = s->idle_s,
		};

		s->kme[i].sim = s;
		s->kme[i].idx = i;
		s->kme[i].srv = e14srv_new(s->base, &cf, &ops, &s->kme[i], err, sizeof(err));
		if (!s->kme[i].srv)
			fatalx("-%c: %s", 'a' + i, err);
	}
	if (ctl_path)
		ctl_listen(s, ctl_path);
	for (i = 0; i < 2; i++) {
		s->sig[i] = evsignal_new(s->base, sigs[i], signal_cb, s);
		evsignal_add(s->sig[i], NULL);
	}
	s->gc = event_new(s->base, -1, EV_PERSIST, gc_cb, s);
	event_add(s->gc, &tv);
	log_info("rate %.0f bit/s per SAE pair, keys of %u bits (%u..%u), %u keys a store, "
		 "%u a request, ttl %u s", s->rate, s->key_size, s->min_size, s->max_size,
		 s->max_count, s->max_per_req, s->ttl);
	fprintf(stderr, "kmesimd: listening on A=%s B=%s\n", e14srv_address(s->kme[0].srv),
		e14srv_address(s->kme[1].srv));
	event_base_dispatch(s->base);

	for (i = 0; i < 2; i++) {
		char line[1024];

		if (i == 0) {
			stats_line(s, line, sizeof(line));
			log_info("stats: %s", line);
		}
		e14srv_free(s->kme[i].srv);	/* cancels the calls held back */
	}
	while (s->ctls)
		ctl_close(s->ctls);
	if (s->ctl) {
		evconnlistener_free(s->ctl);
		unlink(s->ctl_path);
	}
	while (s->head)
		key_remove(s, s->head);
	while (s->pairs) {
		struct pair *p = s->pairs;

		s->pairs = p->next;
		free(p);
	}
	free(s->tab);
	event_free(s->gc);
	for (i = 0; i < 2; i++)
		event_free(s->sig[i]);
	event_base_free(s->base);
	return 0;
}
