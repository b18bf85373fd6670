// SPDX-License-Identifier: GPL-2.0
/*
 * kmsd.conf: one directive per line, whitespace separated words, '#' starts a comment.
 * Every error names file, line, what is wrong and quotes the offending value so an operator
 * can fix it without reading the source.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "nodeid.h"

_Static_assert(KMS_ID_MAX == KMS_NODE_ID_MAX, "node ids have one length bound");

#define MAX_WORDS 24
#define MAX_LINE 1024

struct parse_ctx {
	const char *file;
	unsigned line;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int perr(struct parse_ctx *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err && p->errlen && p->line)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->file, p->line, msg);
	else if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "%s: %s", p->file, msg);
	return -1;
}

void config_defaults(struct kms_config *cf)
{
	memset(cf, 0, sizeof(*cf));
	snprintf(cf->control, sizeof(cf->control), "/run/kmsd/kmsd.sock");
	cf->round_blocks = 64;
	cf->round_interval_ms = 200;
	cf->round_budget_ms = 0;
	cf->lock_timeout_ms = 10000;
	cf->min_block_age_ms = 500;
	cf->fresh_max_age_s = 600;
	cf->keepalive_s = 5;
	cf->reconnect_max_s = 30;
	cf->link_max_bytes = 1ULL << 30;
	cf->store_min_free = 64ULL << 20;
	cf->dist_block = 32768;
	cf->dist_low = 64 * 1024;
	cf->dist_target = 256 * 1024;
	cf->ppetp_block = 4000;
	cf->e14.max_connections = 256;
	cf->e14.max_keys = 128;
	cf->e14.key_size = 256;
	cf->e14.max_key_size = 8192;
	cf->e14.key_ttl_s = 600;
	cf->write_high_watermark = 1 << 20;
}

int config_valid_id(const char *s)
{
	return node_id_valid(s);
}

int config_valid_sae_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KMS_SAE_ID_MAX)
		return 0;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || strchr("/?#%", *s))
			return 0;
	return 1;
}

int config_split_addr(const char *addr, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = addr;
	size_t hl;
	char *end;
	unsigned long v;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (!rb || rb[1] != ':')
			return -1;
		h = addr + 1;
		hl = rb - h;
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -1;
		hl = colon - addr;
		if (memchr(addr, ':', hl))	/* bare IPv6 needs brackets */
			return -1;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)v;
	return 0;
}

static int set_str(struct parse_ctx *p, char *dst, size_t dstlen, const char *what,
		   const char *val)
{
	if (strlen(val) >= dstlen)
		return perr(p, "%s is too long: `%.64s'", what, val);
	strcpy(dst, val);
	return 0;
}

static int set_path(struct parse_ctx *p, char *dst, size_t dstlen, const char *what,
		    const char *val)
{
	if (val[0] != '/')
		return perr(p, "%s must be an absolute path: `%s'", what, val);
	return set_str(p, dst, dstlen, what, val);
}

static int set_uint(struct parse_ctx *p, uint64_t *dst, const char *what, const char *val,
		    uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	if (val[0] < '0' || val[0] > '9')
		return perr(p, "%s is not a number: `%s'", what, val);
	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno || *end)
		return perr(p, "%s is not a number: `%s'", what, val);
	if (v < min || v > max)
		return perr(p, "%s out of range [%llu, %llu]: `%s'", what,
			    (unsigned long long)min, (unsigned long long)max, val);
	*dst = v;
	return 0;
}

static int check_addr(struct parse_ctx *p, const char *what, const char *val)
{
	char host[KMS_ADDR_MAX];
	unsigned port;

	if (strlen(val) >= KMS_ADDR_MAX || config_split_addr(val, host, sizeof(host), &port))
		return perr(p, "%s is not host:port: `%.64s'", what, val);
	return 0;
}

static int check_qkd_spec(struct parse_ctx *p, const char *val)
{
	if (!strncmp(val, "unix:", 5)) {
		if (val[5] != '/')
			return perr(p, "qkd-sim socket must be an absolute path: `%s'", val);
		if (strlen(val) >= KMS_PATH_MAX)
			return perr(p, "qkd-sim socket path too long: `%.64s'", val);
		return 0;
	}
	if (!strncmp(val, "tcp:", 4))
		return check_addr(p, "qkd-sim address", val + 4);
	return perr(p, "qkd-sim source must be unix:/path or tcp:host:port: `%s'", val);
}

/* neighbour ID [address HOST:PORT] (qkd-sim SPEC end a|b | qkd-etsi014 KME sae ID peer-sae ID) */
static int parse_neighbour(struct parse_ctx *p, struct kms_config *cf, char **w, int nw)
{
	struct kms_neighbour *nb;
	int i;

	if (nw < 2)
		return perr(p, "neighbour needs an id: `%s'", w[0]);
	if (!config_valid_id(w[1]))
		return perr(p, "invalid neighbour id: `%.64s'", w[1]);
	if (config_find_neighbour(cf, w[1]))
		return perr(p, "duplicate neighbour: `%s'", w[1]);
	if (cf->n_nb >= KMS_MAX_NEIGHBOURS)
		return perr(p, "too many neighbours (max %d): `%s'", KMS_MAX_NEIGHBOURS, w[1]);
	nb = &cf->nb[cf->n_nb];
	memset(nb, 0, sizeof(*nb));
	strcpy(nb->id, w[1]);
	nb->line = p->line;
	nb->kme = -1;
	nb->etsi_block = 32768;
	for (i = 2; i < nw; i += 2) {
		if (i + 1 >= nw)
			return perr(p, "neighbour option needs a value: `%s'", w[i]);
		if (!strcmp(w[i], "address")) {
			if (check_addr(p, "neighbour address", w[i + 1]))
				return -1;
			strcpy(nb->address, w[i + 1]);
		} else if (!strcmp(w[i], "qkd-sim")) {
			if (check_qkd_spec(p, w[i + 1]))
				return -1;
			nb->qkd_backend = QKD_BACKEND_SIM;
			strcpy(nb->qkd_spec, w[i + 1]);
		} else if (!strcmp(w[i], "qkd-etsi014")) {
			if (!config_valid_id(w[i + 1]))
				return perr(p, "invalid etsi014-kme name: `%.64s'", w[i + 1]);
			nb->qkd_backend = QKD_BACKEND_ETSI014;
			strcpy(nb->qkd_kme, w[i + 1]);
		} else if (!strcmp(w[i], "sae") || !strcmp(w[i], "peer-sae")) {
			char *dst = w[i][0] == 's' ? nb->sae_id : nb->peer_sae_id;

			if (!config_valid_sae_id(w[i + 1]))
				return perr(p, "invalid SAE_ID for %s (1-%d printable characters, "
					    "none of /?#%%): `%.64s'", w[i], KMS_SAE_ID_MAX, w[i + 1]);
			strcpy(dst, w[i + 1]);
		} else if (!strcmp(w[i], "etsi-block")) {
			uint64_t v;

			/* key caching spends 64 bytes of every block */
			if (set_uint(p, &v, "etsi-block", w[i + 1], 128, 65536))
				return -1;
			nb->etsi_block = (uint32_t)v;
		} else if (!strcmp(w[i], "end")) {
			if (strcmp(w[i + 1], "a") && strcmp(w[i + 1], "b"))
				return perr(p, "end must be a or b: `%s'", w[i + 1]);
			nb->qkd_end = w[i + 1][0];
		} else if (!strcmp(w[i], "qotp-peer")) {
			uint64_t v;

			if (set_uint(p, &v, "qotp-peer", w[i + 1], 1, UINT32_MAX))
				return -1;
			nb->qotp_peer = (uint32_t)v;
		} else {
			return perr(p, "unknown neighbour option: `%s'", w[i]);
		}
	}
	if (nb->qkd_backend == QKD_BACKEND_NONE)
		return perr(p, "neighbour has no QKD link source (qkd-sim or qkd-etsi014): `%s'",
			    nb->id);
	if (nb->qkd_backend == QKD_BACKEND_SIM && nb->qkd_end == 0)
		return perr(p, "neighbour needs `end a' or `end b' for qkd-sim: `%s'", nb->id);
	if (nb->qkd_backend == QKD_BACKEND_ETSI014 || nb->qkd_kme[0]) {
		if (nb->qkd_spec[0] || nb->qkd_end)
			return perr(p, "neighbour has both qkd-sim and qkd-etsi014: `%s'", nb->id);
		if (!nb->sae_id[0] || !nb->peer_sae_id[0])
			return perr(p, "qkd-etsi014 needs `sae ID' and `peer-sae ID': `%s'", nb->id);
		if (!strcmp(nb->sae_id, nb->peer_sae_id))
			return perr(p, "sae and peer-sae are the same SAE: `%s'", nb->sae_id);
	} else if (nb->sae_id[0] || nb->peer_sae_id[0]) {
		return perr(p, "sae and peer-sae need qkd-etsi014: `%s'", nb->id);
	}
	cf->n_nb++;
	return 0;
}

/* https://HOST[:PORT] with nothing after it: the standard's paths start at /api/v1/keys/ */
static int parse_kme_url(struct parse_ctx *p, struct kms_kme *k, const char *val)
{
	char hp[KMS_ADDR_MAX + 8];
	size_t n;

	if (strncmp(val, "https://", 8))
		return perr(p, "etsi014-kme url must start with https://: `%.64s'", val);
	if (strlen(val) >= sizeof(k->url))
		return perr(p, "etsi014-kme url is too long: `%.64s'", val);
	strcpy(k->url, val);
	n = strlen(val + 8);
	if (n && val[8 + n - 1] == '/')
		n--;
	if (n == 0 || n >= KMS_ADDR_MAX || memchr(val + 8, '/', n) || memchr(val + 8, '@', n) ||
	    memchr(val + 8, '?', n))
		return perr(p, "etsi014-kme url must be https://HOST[:PORT] with no path: `%.64s'",
			    val);
	memcpy(hp, val + 8, n);
	hp[n] = '\0';
	/* no port: 443; a bracketed IPv6 literal keeps its port rule */
	if ((hp[0] == '[' && hp[n - 1] == ']') || (hp[0] != '[' && !strchr(hp, ':'))) {
		if (n + 4 >= sizeof(hp))
			return perr(p, "etsi014-kme url is too long: `%.64s'", val);
		strcat(hp, ":443");
	}
	if (config_split_addr(hp, k->host, sizeof(k->host), &k->port))
		return perr(p, "etsi014-kme url has no valid HOST[:PORT]: `%.64s'", val);
	return 0;
}

/* etsi014-kme NAME url https://HOST[:PORT] cert FILE key FILE ca FILE */
static int parse_kme(struct parse_ctx *p, struct kms_config *cf, char **w, int nw)
{
	struct kms_kme *k;

	if (nw < 2)
		return perr(p, "etsi014-kme needs a name: `%s'", w[0]);
	if (!config_valid_id(w[1]))
		return perr(p, "invalid etsi014-kme name: `%.64s'", w[1]);
	for (size_t i = 0; i < cf->n_kme; i++)
		if (!strcmp(cf->kme[i].name, w[1]))
			return perr(p, "duplicate etsi014-kme: `%s'", w[1]);
	if (cf->n_kme >= KMS_MAX_KMES)
		return perr(p, "too many etsi014-kme (max %d): `%s'", KMS_MAX_KMES, w[1]);
	k = &cf->kme[cf->n_kme];
	memset(k, 0, sizeof(*k));
	strcpy(k->name, w[1]);
	for (int i = 2; i < nw; i += 2) {
		if (i + 1 >= nw)
			return perr(p, "etsi014-kme option needs a value: `%s'", w[i]);
		if (!strcmp(w[i], "url")) {
			if (parse_kme_url(p, k, w[i + 1]))
				return -1;
		} else if (!strcmp(w[i], "cert")) {
			if (set_path(p, k->cert, sizeof(k->cert), "etsi014-kme cert", w[i + 1]))
				return -1;
		} else if (!strcmp(w[i], "key")) {
			if (set_path(p, k->key, sizeof(k->key), "etsi014-kme key", w[i + 1]))
				return -1;
		} else if (!strcmp(w[i], "ca")) {
			if (set_path(p, k->ca, sizeof(k->ca), "etsi014-kme ca", w[i + 1]))
				return -1;
		} else {
			return perr(p, "unknown etsi014-kme option: `%s'", w[i]);
		}
	}
	if (!k->url[0] || !k->cert[0] || !k->key[0] || !k->ca[0])
		return perr(p, "etsi014-kme needs url, cert, key and ca: `%s'", k->name);
	cf->n_kme++;
	return 0;
}

/*
 * etsi014-listen HOST:PORT cert FILE key FILE ca FILE [kme-id ID] [max-connections N]
 * [max-keys N] [key-size BITS] [max-key-size BITS] [key-ttl S]
 */
static int parse_e14_listen(struct parse_ctx *p, struct kms_config *cf, char **w, int nw)
{
	struct kms_e14_listen *e = &cf->e14;
	uint64_t v;

	if (e->listen[0])
		return perr(p, "duplicate etsi014-listen: `%s'", nw > 1 ? w[1] : w[0]);
	if (nw < 2)
		return perr(p, "etsi014-listen needs HOST:PORT: `%s'", w[0]);
	if (check_addr(p, "etsi014-listen address", w[1]))
		return -1;
	strcpy(e->listen, w[1]);
	for (int i = 2; i < nw; i += 2) {
		const char *o = w[i], *val;

		if (i + 1 >= nw)
			return perr(p, "etsi014-listen option needs a value: `%s'", o);
		val = w[i + 1];
		if (!strcmp(o, "cert")) {
			if (set_path(p, e->cert, sizeof(e->cert), "etsi014-listen cert", val))
				return -1;
		} else if (!strcmp(o, "key")) {
			if (set_path(p, e->key, sizeof(e->key), "etsi014-listen key", val))
				return -1;
		} else if (!strcmp(o, "ca")) {
			if (set_path(p, e->ca, sizeof(e->ca), "etsi014-listen ca", val))
				return -1;
		} else if (!strcmp(o, "kme-id")) {
			if (!config_valid_id(val))
				return perr(p, "invalid etsi014-listen kme-id: `%.64s'", val);
			strcpy(e->kme_id, val);
		} else if (!strcmp(o, "max-connections")) {
			if (set_uint(p, &v, "max-connections", val, 1, 4096))
				return -1;
			e->max_connections = (unsigned)v;
		} else if (!strcmp(o, "max-keys")) {
			if (set_uint(p, &v, "max-keys", val, 1, 1024))
				return -1;
			e->max_keys = (unsigned)v;
		} else if (!strcmp(o, "key-size") || !strcmp(o, "max-key-size")) {
			if (set_uint(p, &v, o, val, 64, 65536))
				return -1;
			if (v % 8)
				return perr(p, "%s must be a multiple of 8 bits: `%s'", o, val);
			*(o[0] == 'k' ? &e->key_size : &e->max_key_size) = (unsigned)v;
		} else if (!strcmp(o, "key-ttl")) {
			if (set_uint(p, &v, "key-ttl", val, 10, 86400 * 30))
				return -1;
			e->key_ttl_s = (unsigned)v;
		} else {
			return perr(p, "unknown etsi014-listen option: `%s'", o);
		}
	}
	if (!e->cert[0] || !e->key[0] || !e->ca[0])
		return perr(p, "etsi014-listen needs cert, key and ca: `%s'", e->listen);
	if (e->key_size > e->max_key_size)
		return perr(p, "etsi014-listen key-size exceeds max-key-size: `%u'", e->key_size);
	return 0;
}

/* sae SAE_ID node NODE [cn CN] */
static int parse_sae(struct parse_ctx *p, struct kms_config *cf, char **w, int nw)
{
	struct kms_sae *a;

	if (nw < 2)
		return perr(p, "sae needs an SAE_ID: `%s'", w[0]);
	if (!config_valid_sae_id(w[1]))
		return perr(p, "invalid SAE_ID: `%.64s'", w[1]);
	if (config_find_sae(cf, w[1]))
		return perr(p, "duplicate sae: `%s'", w[1]);
	if (cf->n_sae >= KMS_MAX_SAES)
		return perr(p, "too many sae lines (max %d): `%s'", KMS_MAX_SAES, w[1]);
	a = &cf->sae[cf->n_sae];
	memset(a, 0, sizeof(*a));
	strcpy(a->id, w[1]);
	a->line = p->line;
	for (int i = 2; i < nw; i += 2) {
		if (i + 1 >= nw)
			return perr(p, "sae option needs a value: `%s'", w[i]);
		if (!strcmp(w[i], "node")) {
			if (!config_valid_id(w[i + 1]))
				return perr(p, "invalid sae node id: `%.64s'", w[i + 1]);
			strcpy(a->node, w[i + 1]);
		} else if (!strcmp(w[i], "cn")) {
			if (!config_valid_sae_id(w[i + 1]))
				return perr(p, "invalid sae cn: `%.64s'", w[i + 1]);
			strcpy(a->cn, w[i + 1]);
		} else {
			return perr(p, "unknown sae option: `%s'", w[i]);
		}
	}
	if (!a->node[0])
		return perr(p, "sae needs a node: `%s'", a->id);
	if (!a->cn[0])
		strcpy(a->cn, a->id);
	for (size_t i = 0; i < cf->n_sae; i++)
		if (!strcmp(cf->sae[i].cn, a->cn) && !strcmp(cf->sae[i].node, a->node))
			return perr(p, "two SAEs of node %s with the same certificate cn: `%s'",
				    a->node, a->cn);
	cf->n_sae++;
	return 0;
}

/* remote ID [address HOST:PORT] [qotp-peer N] */
static int parse_remote(struct parse_ctx *p, struct kms_config *cf, char **w, int nw)
{
	struct kms_remote *rm;

	if (nw < 2)
		return perr(p, "remote needs an id: `%s'", w[0]);
	if (!config_valid_id(w[1]))
		return perr(p, "invalid remote id: `%.64s'", w[1]);
	if (config_find_remote(cf, w[1]))
		return perr(p, "duplicate remote: `%s'", w[1]);
	if (cf->n_rm >= KMS_MAX_REMOTES)
		return perr(p, "too many remotes (max %d): `%s'", KMS_MAX_REMOTES, w[1]);
	rm = &cf->rm[cf->n_rm];
	memset(rm, 0, sizeof(*rm));
	strcpy(rm->id, w[1]);
	for (int i = 2; i < nw; i += 2) {
		if (i + 1 >= nw)
			return perr(p, "remote option needs a value: `%s'", w[i]);
		if (!strcmp(w[i], "address")) {
			if (check_addr(p, "remote address", w[i + 1]))
				return -1;
			strcpy(rm->address, w[i + 1]);
		} else if (!strcmp(w[i], "qotp-peer")) {
			uint64_t v;

			if (set_uint(p, &v, "qotp-peer", w[i + 1], 1, UINT32_MAX))
				return -1;
			rm->qotp_peer = (uint32_t)v;
		} else {
			return perr(p, "unknown remote option: `%s'", w[i]);
		}
	}
	cf->n_rm++;
	return 0;
}

static int parse_line(struct parse_ctx *p, struct kms_config *cf, char *line)
{
	char *w[MAX_WORDS];
	int nw = 0;
	char *s = line, *hash;
	uint64_t v;
	int rc = 0;

	hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (!*s)
			break;
		if (nw == MAX_WORDS)
			return perr(p, "too many words on line: `%.32s'", s);
		w[nw++] = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\r')
			s++;
		if (*s)
			*s++ = '\0';
	}
	if (nw == 0)
		return 0;
	for (int i = 0; i < nw; i++)
		for (const char *c = w[i]; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
				return perr(p, "control character in word: `%.32s'", w[i]);

	if (!strcmp(w[0], "neighbour") || !strcmp(w[0], "neighbor"))
		return parse_neighbour(p, cf, w, nw);
	if (!strcmp(w[0], "remote"))
		return parse_remote(p, cf, w, nw);
	if (!strcmp(w[0], "etsi014-kme"))
		return parse_kme(p, cf, w, nw);
	if (!strcmp(w[0], "etsi014-listen"))
		return parse_e14_listen(p, cf, w, nw);
	if (!strcmp(w[0], "sae"))
		return parse_sae(p, cf, w, nw);
	if (nw != 2)
		return perr(p, "directive takes exactly one value: `%s'", w[0]);

	if (!strcmp(w[0], "node")) {
		if (!config_valid_id(w[1]))
			return perr(p, "invalid node id: `%.64s'", w[1]);
		strcpy(cf->node_id, w[1]);
	} else if (!strcmp(w[0], "listen")) {
		if (check_addr(p, "listen address", w[1]))
			return -1;
		strcpy(cf->listen, w[1]);
	} else if (!strcmp(w[0], "tls-cert")) {
		rc = set_path(p, cf->tls_cert, sizeof(cf->tls_cert), "tls-cert", w[1]);
	} else if (!strcmp(w[0], "tls-key")) {
		rc = set_path(p, cf->tls_key, sizeof(cf->tls_key), "tls-key", w[1]);
	} else if (!strcmp(w[0], "tls-ca")) {
		rc = set_path(p, cf->tls_ca, sizeof(cf->tls_ca), "tls-ca", w[1]);
	} else if (!strcmp(w[0], "store")) {
		rc = set_path(p, cf->store, sizeof(cf->store), "store", w[1]);
	} else if (!strcmp(w[0], "control")) {
		rc = set_path(p, cf->control, sizeof(cf->control), "control", w[1]);
	} else if (!strcmp(w[0], "pidfile")) {
		rc = set_path(p, cf->pidfile, sizeof(cf->pidfile), "pidfile", w[1]);
	} else if (!strcmp(w[0], "round-blocks")) {
		if (!(rc = set_uint(p, &v, "round-blocks", w[1], 1, 1024)))
			cf->round_blocks = v;
	} else if (!strcmp(w[0], "round-budget-ms")) {
		if (!(rc = set_uint(p, &v, "round-budget-ms", w[1], 0, 10000)))
			cf->round_budget_ms = v;
	} else if (!strcmp(w[0], "round-interval-ms")) {
		if (!(rc = set_uint(p, &v, "round-interval-ms", w[1], 1, 60000)))
			cf->round_interval_ms = v;
	} else if (!strcmp(w[0], "lock-timeout-ms")) {
		if (!(rc = set_uint(p, &v, "lock-timeout-ms", w[1], 100, 3600000)))
			cf->lock_timeout_ms = v;
	} else if (!strcmp(w[0], "min-block-age-ms")) {
		if (!(rc = set_uint(p, &v, "min-block-age-ms", w[1], 0, 600000)))
			cf->min_block_age_ms = v;
	} else if (!strcmp(w[0], "fresh-max-age")) {
		if (!(rc = set_uint(p, &v, "fresh-max-age", w[1], 10, 86400 * 30)))
			cf->fresh_max_age_s = v;
	} else if (!strcmp(w[0], "keepalive")) {
		if (!(rc = set_uint(p, &v, "keepalive", w[1], 1, 3600)))
			cf->keepalive_s = v;
	} else if (!strcmp(w[0], "reconnect-max")) {
		if (!(rc = set_uint(p, &v, "reconnect-max", w[1], 1, 3600)))
			cf->reconnect_max_s = v;
	} else if (!strcmp(w[0], "dist-block")) {
		if (!(rc = set_uint(p, &v, "dist-block", w[1], 16, 32768)))
			cf->dist_block = (uint32_t)v;
	} else if (!strcmp(w[0], "dist-low-watermark")) {
		if (!(rc = set_uint(p, &v, "dist-low-watermark", w[1], 16, 1ULL << 30)))
			cf->dist_low = v;
	} else if (!strcmp(w[0], "dist-target")) {
		if (!(rc = set_uint(p, &v, "dist-target", w[1], 16, 1ULL << 32)))
			cf->dist_target = v;
	} else if (!strcmp(w[0], "ppetp-block")) {
		if (!(rc = set_uint(p, &v, "ppetp-block", w[1], 16, 32768)))
			cf->ppetp_block = (uint32_t)v;
	} else if (!strcmp(w[0], "link-max-bytes")) {
		if (!(rc = set_uint(p, &v, "link-max-bytes", w[1], 4096, 1ULL << 40)))
			cf->link_max_bytes = v;
	} else if (!strcmp(w[0], "store-min-free")) {
		if (!(rc = set_uint(p, &v, "store-min-free", w[1], 0, 1ULL << 40)))
			cf->store_min_free = v;
	} else if (!strcmp(w[0], "write-high-watermark")) {
		if (!(rc = set_uint(p, &v, "write-high-watermark", w[1], 65536, 1ULL << 30)))
			cf->write_high_watermark = v;
	} else {
		return perr(p, "unknown directive: `%s'", w[0]);
	}
	return rc;
}

int config_parse(struct kms_config *cf, const char *filename, const char *text, size_t len,
		 char *err, size_t errlen)
{
	struct parse_ctx p = { filename, 0, err, errlen };
	char line[MAX_LINE + 1];
	size_t pos = 0;

	config_defaults(cf);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;

		p.line++;
		if (ll > MAX_LINE)
			return perr(&p, "line longer than %d bytes: `%.32s'", MAX_LINE, text + pos);
		if (memchr(text + pos, '\0', ll))
			return perr(&p, "NUL byte in line: `%s'", "\\0");
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		if (parse_line(&p, cf, line))
			return -1;
		pos += ll + (nl ? 1 : 0);
	}
	p.line = 0;
	if (!cf->node_id[0])
		return perr(&p, "missing required directive: `%s'", "node");
	if (!cf->listen[0])
		return perr(&p, "missing required directive: `%s'", "listen");
	if (!cf->tls_cert[0] || !cf->tls_key[0] || !cf->tls_ca[0])
		return perr(&p, "missing required directive: `%s'", "tls-cert, tls-key and tls-ca");
	if (!cf->store[0])
		return perr(&p, "missing required directive: `%s'", "store");
	if (config_find_neighbour(cf, cf->node_id))
		return perr(&p, "node is its own neighbour: `%s'", cf->node_id);
	if (cf->dist_target <= cf->dist_low)
		return perr(&p, "dist-target must exceed dist-low-watermark: `%llu'",
			    (unsigned long long)cf->dist_target);
	for (size_t i = 0; i < cf->n_nb; i++)
		for (size_t j = 0; j < i; j++)
			if (cf->nb[i].qotp_peer && cf->nb[i].qotp_peer == cf->nb[j].qotp_peer)
				return perr(&p, "two neighbours with the same qotp-peer: `%s'",
					    cf->nb[i].id);
	for (size_t i = 0; i < cf->n_nb; i++) {
		struct kms_neighbour *nb = &cf->nb[i];

		if (nb->qkd_backend != QKD_BACKEND_ETSI014)
			continue;
		for (size_t j = 0; j < cf->n_kme; j++)
			if (!strcmp(cf->kme[j].name, nb->qkd_kme))
				nb->kme = (int)j;
		p.line = nb->line;
		if (nb->kme < 0)
			return perr(&p, "qkd-etsi014 names no etsi014-kme of this file: `%s'",
				    nb->qkd_kme);
		for (size_t j = 0; j < i; j++)
			if (cf->nb[j].qkd_backend == QKD_BACKEND_ETSI014 &&
			    cf->nb[j].kme == nb->kme && !strcmp(cf->nb[j].sae_id, nb->sae_id) &&
			    !strcmp(cf->nb[j].peer_sae_id, nb->peer_sae_id))
				return perr(&p, "two neighbours draw key for the same SAE pair at "
					    "KME %s: `%s'", nb->qkd_kme, nb->peer_sae_id);
		p.line = 0;
	}
	/* only parse errors need it; a reload compares neighbours byte for byte */
	for (size_t i = 0; i < cf->n_nb; i++)
		cf->nb[i].line = 0;
	for (size_t i = 0; i < cf->n_rm; i++) {
		const struct kms_remote *r = &cf->rm[i];

		if (!strcmp(r->id, cf->node_id))
			return perr(&p, "node is its own remote: `%s'", r->id);
		if (config_find_neighbour(cf, r->id))
			return perr(&p, "remote is also a neighbour (a quantum-link neighbour "
				    "needs no remote entry): `%s'", r->id);
		if (!r->qotp_peer)
			continue;
		for (size_t j = 0; j < cf->n_nb; j++)
			if (cf->nb[j].qotp_peer == r->qotp_peer)
				return perr(&p, "remote has the qotp-peer of neighbour %s: `%s'",
					    cf->nb[j].id, r->id);
		for (size_t j = 0; j < i; j++)
			if (cf->rm[j].qotp_peer == r->qotp_peer)
				return perr(&p, "two remotes with the same qotp-peer: `%s'", r->id);
	}
	for (size_t i = 0; i < cf->n_sae; i++) {
		const char *n = cf->sae[i].node;

		p.line = cf->sae[i].line;
		if (strcmp(n, cf->node_id) && !config_find_neighbour(cf, n) &&
		    !config_find_remote(cf, n))
			return perr(&p, "sae %s: its node is neither this node nor a neighbour or "
				    "remote: `%s'", cf->sae[i].id, n);
	}
	p.line = 0;
	if (cf->e14.listen[0] && !cf->e14.kme_id[0])
		strcpy(cf->e14.kme_id, cf->node_id);
	return 0;
}

const struct kms_sae *config_find_sae(const struct kms_config *cf, const char *id)
{
	for (size_t i = 0; i < cf->n_sae; i++)
		if (!strcmp(cf->sae[i].id, id))
			return &cf->sae[i];
	return NULL;
}

int config_load(struct kms_config *cf, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	int rc;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(1 << 20);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, 1 << 20, f);
	if (ferror(f) || n == 1 << 20) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		rc = -1;
	} else {
		rc = config_parse(cf, path, buf, n, err, errlen);
	}
	free(buf);
	fclose(f);
	return rc;
}

const struct kms_neighbour *config_find_neighbour(const struct kms_config *cf, const char *id)
{
	for (size_t i = 0; i < cf->n_nb; i++)
		if (!strcmp(cf->nb[i].id, id))
			return &cf->nb[i];
	return NULL;
}

const struct kms_remote *config_find_remote(const struct kms_config *cf, const char *id)
{
	for (size_t i = 0; i < cf->n_rm; i++)
		if (!strcmp(cf->rm[i].id, id))
			return &cf->rm[i];
	return NULL;
}
