// SPDX-License-Identifier: GPL-2.0
/*
 * qotpctl: show and change the qotp kernel state of the current network namespace.
 *
 * A static subcommand table in the wireguard-tools style. Key bytes are only ever read from
 * a file or standard input, never from the command line, and every buffer that held them
 * is wiped with explicit_bzero() before it is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <linux/qotp.h>

#include "nlclient.h"
#include "qotpctl_args.h"

#define PROG "qotpctl"
/* A nested attribute's length is 16 bits: QOTP_A_PUSH_BLOCKS must stay under 64 KiB. */
#define MAX_BLOCKS_NEST 65000
#define DEFAULT_BLOCK_SIZE 4096

static struct nlc nl;

static const char *const stat_names[] = {
	[QOTP_STAT_ENC_SEGS] = "enc_segs",
	[QOTP_STAT_ENC_BYTES] = "enc_bytes",
	[QOTP_STAT_DEC_SEGS] = "dec_segs",
	[QOTP_STAT_DEC_BYTES] = "dec_bytes",
	[QOTP_STAT_KEY_USED] = "key_used",
	[QOTP_STAT_DROP_NO_KEY] = "drop_no_key",
	[QOTP_STAT_DROP_NO_DESC] = "drop_no_desc",
	[QOTP_STAT_DROP_BAD_DESC] = "drop_bad_desc",
	[QOTP_STAT_DROP_CSUM] = "drop_csum",
	[QOTP_STAT_DROP_NOMEM] = "drop_nomem",
	[QOTP_STAT_DROP_OTHER] = "drop_other",
	[QOTP_STAT_FLOWS_CREATED] = "flows_created",
	[QOTP_STAT_FLOWS_ACTIVE] = "flows_active",
	[QOTP_STAT_STALE] = "stale",
	[QOTP_STAT_TRIMMED] = "trimmed",
	[QOTP_STAT_SACK_CUT] = "sack_cut",
};

static int open_family(void)
{
	int err = nlc_open(&nl);

	if (err == -ENOENT) {
		fprintf(stderr, "%s: the qotp module is not loaded\n", PROG);
		return -1;
	}
	if (err) {
		fprintf(stderr, "%s: cannot open a generic netlink socket: %s\n", PROG,
			strerror(-err));
		return -1;
	}
	return 0;
}

static int kernel_error(const char *what, int err)
{
	char buf[400];

	fprintf(stderr, "%s: %s: %s\n", PROG, what, nlc_strerror(&nl, err, buf, sizeof(buf)));
	return 1;
}

/* ---- argument parsing ---- */

static bool parse_peer_id(const char *s, uint32_t *id)
{
	if (!qotpctl_parse_u32(s, id) || !*id) {
		fprintf(stderr, "%s: peer id must be a number from 1 to 4294967295: `%s'\n", PROG,
			s ? s : "");
		return false;
	}
	return true;
}

static int parse_dir(const char *s)
{
	int dir = qotpctl_parse_dir(s);

	if (dir < 0)
		fprintf(stderr, "%s: direction must be `encrypt' or `decrypt': `%s'\n", PROG, s);
	return dir;
}

static const char *dir_name(int dir)
{
	return dir == QOTP_DIR_ENCRYPT ? "encrypt" : dir == QOTP_DIR_DECRYPT ? "decrypt" : "both";
}

static bool parse_cidr(const char *s, struct qotpctl_cidr *c)
{
	int err = qotpctl_parse_cidr(s, c);

	if (err == -EDOM)
		fprintf(stderr, "%s: prefix has host bits set: `%s'\n", PROG, s);
	else if (err)
		fprintf(stderr, "%s: not an IPv4 or IPv6 prefix (ADDR/LEN): `%s'\n", PROG, s);
	return !err;
}

/* ---- show ---- */

struct ring_view {
	bool present, has_last;
	uint32_t blocks;
	uint64_t avail, reserved, pushed, consumed, wasted, refused, last_id;
};

struct peer_view {
	uint32_t id;
	int nprefix;
	struct qotpctl_cidr prefix[64];
	struct ring_view ring[2];
	uint64_t stats[__QOTP_STAT_LAST];
};

struct show_ctx {
	bool json;
	int npeers;
	uint32_t ports[QOTP_MAX_PORTS];
	int nports;
	uint32_t mode, max_flows;
	uint64_t ring_max, low_wm;
	struct peer_view *want;		/* single-peer query (push) */
};

static uint64_t get_u64(struct nlattr *a)
{
	return a && nla_len(a) >= 8 ? nla_get_u64(a) : 0;
}

static uint32_t get_u32(struct nlattr *a)
{
	return a && nla_len(a) >= 4 ? nla_get_u32(a) : 0;
}

static void parse_peer(struct nlattr **tb, struct peer_view *p)
{
	struct nlattr *a, *b;
	int rem, rem2;

	memset(p, 0, sizeof(*p));
	p->id = get_u32(tb[QOTP_A_PEER_ID]);
	if (tb[QOTP_A_PEER_PREFIXES]) {
		nla_for_each_nested(a, tb[QOTP_A_PEER_PREFIXES], rem) {
			struct nlattr *pt[QOTP_A_PREFIX_MAX + 1];
			struct qotpctl_cidr *c;

			if (p->nprefix == 64 || nla_parse_nested(pt, QOTP_A_PREFIX_MAX, a, NULL))
				continue;
			if (!pt[QOTP_A_PREFIX_FAMILY] || !pt[QOTP_A_PREFIX_ADDR] ||
			    !pt[QOTP_A_PREFIX_LEN] || nla_len(pt[QOTP_A_PREFIX_ADDR]) > 16)
				continue;
			c = &p->prefix[p->nprefix++];
			c->family = nla_get_u16(pt[QOTP_A_PREFIX_FAMILY]);
			c->len = nla_get_u8(pt[QOTP_A_PREFIX_LEN]);
			memcpy(c->addr, nla_data(pt[QOTP_A_PREFIX_ADDR]),
			       nla_len(pt[QOTP_A_PREFIX_ADDR]));
		}
	}
	if (tb[QOTP_A_PEER_RINGS]) {
		nla_for_each_nested(a, tb[QOTP_A_PEER_RINGS], rem) {
			struct nlattr *rt[QOTP_A_RING_MAX + 1];
			struct ring_view *r;
			uint8_t dir;

			if (nla_parse_nested(rt, QOTP_A_RING_MAX, a, NULL) || !rt[QOTP_A_RING_DIR])
				continue;
			dir = nla_get_u8(rt[QOTP_A_RING_DIR]);
			if (dir > QOTP_DIR_MAX)
				continue;
			r = &p->ring[dir];
			r->present = true;
			r->blocks = get_u32(rt[QOTP_A_RING_BLOCKS]);
			r->avail = get_u64(rt[QOTP_A_RING_AVAIL]);
			r->reserved = get_u64(rt[QOTP_A_RING_RESERVED]);
			r->pushed = get_u64(rt[QOTP_A_RING_PUSHED]);
			r->consumed = get_u64(rt[QOTP_A_RING_CONSUMED]);
			r->wasted = get_u64(rt[QOTP_A_RING_WASTED]);
			r->refused = get_u64(rt[QOTP_A_RING_REFUSED]);
			r->has_last = rt[QOTP_A_RING_LAST_ID] != NULL;
			r->last_id = get_u64(rt[QOTP_A_RING_LAST_ID]);
		}
	}
	if (tb[QOTP_A_PEER_STATS]) {
		nla_for_each_nested(b, tb[QOTP_A_PEER_STATS], rem2) {
			int t = nla_type(b);

			if (t >= 1 && t <= __QOTP_STAT_LAST && nla_len(b) == 8)
				p->stats[t - 1] = get_u64(b);
		}
	}
}

static const char *cidr_str(const struct qotpctl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family == AF_INET ? AF_INET : AF_INET6, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->len);
	return buf;
}

static const char *mode_str(uint32_t mode)
{
	switch (mode) {
	case 0: return "off";
	case QOTP_MODE_GATEWAY: return "gateway";
	case QOTP_MODE_ENDPOINT: return "endpoint";
	case QOTP_MODE_ALL: return "both";
	default: return "unknown";
	}
}

static void print_peer(const struct show_ctx *s, const struct peer_view *p)
{
	char buf[80];
	int i, d;

	if (s->json) {
		printf("%s{\"id\":%" PRIu32 ",\"prefixes\":[", s->npeers ? "," : "", p->id);
		for (i = 0; i < p->nprefix; i++)
			printf("%s\"%s\"", i ? "," : "", cidr_str(&p->prefix[i], buf, sizeof(buf)));
		printf("],\"rings\":{");
		for (d = 0; d < 2; d++) {
			const struct ring_view *r = &p->ring[d];

			printf("%s\"%s\":{\"blocks\":%" PRIu32 ",\"avail\":%" PRIu64
			       ",\"reserved\":%" PRIu64 ",\"pushed\":%" PRIu64 ",\"consumed\":%" PRIu64
			       ",\"wasted\":%" PRIu64 ",\"refused\":%" PRIu64, d ? "," : "",
			       dir_name(d), r->blocks, r->avail, r->reserved, r->pushed, r->consumed,
			       r->wasted, r->refused);
			if (r->has_last)
				printf(",\"last_id\":%" PRIu64, r->last_id);
			printf("}");
		}
		printf("},\"stats\":{");
		for (i = 0; i < __QOTP_STAT_LAST; i++)
			printf("%s\"%s\":%" PRIu64, i ? "," : "", stat_names[i], p->stats[i]);
		printf("}}");
		return;
	}
	printf("\npeer %" PRIu32 "\n  prefixes:", p->id);
	for (i = 0; i < p->nprefix; i++)
		printf("%s %s", i ? "," : "", cidr_str(&p->prefix[i], buf, sizeof(buf)));
	printf("%s\n", p->nprefix ? "" : " (none)");
	for (d = 0; d < 2; d++) {
		const struct ring_view *r = &p->ring[d];

		printf("  %s ring: %" PRIu64 " B available in %" PRIu32 " blocks, %" PRIu64
		       " B reserved; pushed %" PRIu64 " B, consumed %" PRIu64 " B, wasted %" PRIu64
		       " B, %" PRIu64 " pushes refused", dir_name(d), r->avail, r->blocks, r->reserved,
		       r->pushed, r->consumed, r->wasted, r->refused);
		if (r->has_last)
			printf(", last id %" PRIu64, r->last_id);
		printf("\n");
	}
	printf("  traffic: %" PRIu64 " segments / %" PRIu64 " B encrypted, %" PRIu64
	       " segments / %" PRIu64 " B decrypted, %" PRIu64 " flows active\n",
	       p->stats[QOTP_STAT_ENC_SEGS], p->stats[QOTP_STAT_ENC_BYTES],
	       p->stats[QOTP_STAT_DEC_SEGS], p->stats[QOTP_STAT_DEC_BYTES],
	       p->stats[QOTP_STAT_FLOWS_ACTIVE]);
	printf("  drops: no key %" PRIu64 ", no descriptor %" PRIu64 ", bad descriptor %" PRIu64
	       ", checksum %" PRIu64 ", no memory %" PRIu64 ", other %" PRIu64 "\n",
	       p->stats[QOTP_STAT_DROP_NO_KEY], p->stats[QOTP_STAT_DROP_NO_DESC],
	       p->stats[QOTP_STAT_DROP_BAD_DESC], p->stats[QOTP_STAT_DROP_CSUM],
	       p->stats[QOTP_STAT_DROP_NOMEM], p->stats[QOTP_STAT_DROP_OTHER]);
}

static int peer_cb(struct nl_msg *msg, void *arg)
{
	struct show_ctx *s = arg;
	struct nlattr *tb[QOTP_A_MAX + 1];
	struct peer_view p;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, QOTP_A_MAX, NULL) || !tb[QOTP_A_PEER_ID])
		return 0;
	parse_peer(tb, &p);
	if (s->want) {
		*s->want = p;
		return 0;
	}
	print_peer(s, &p);
	s->npeers++;
	return 0;
}

static int config_cb(struct nl_msg *msg, void *arg)
{
	struct show_ctx *s = arg;
	struct nlattr *tb[QOTP_A_MAX + 1], *a;
	int rem;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, QOTP_A_MAX, NULL))
		return -EINVAL;
	if (tb[QOTP_A_CFG_PORTS])
		nla_for_each_nested(a, tb[QOTP_A_CFG_PORTS], rem)
			if (s->nports < QOTP_MAX_PORTS && nla_len(a) == 2)
				s->ports[s->nports++] = nla_get_u16(a);
	s->mode = get_u32(tb[QOTP_A_CFG_MODE]);
	s->max_flows = get_u32(tb[QOTP_A_CFG_MAX_FLOWS]);
	s->ring_max = get_u64(tb[QOTP_A_CFG_RING_MAX_BYTES]);
	s->low_wm = get_u64(tb[QOTP_A_CFG_LOW_WATERMARK]);
	return 0;
}

static int show_main(int argc, char **argv)
{
	struct show_ctx s = { 0 };
	struct nl_msg *msg;
	int err, i;

	if (argc == 2 && !strcmp(argv[1], "--json"))
		s.json = true;
	else if (argc != 1) {
		fprintf(stderr, "Usage: %s show [--json]\n", PROG);
		return 1;
	}
	if (open_family())
		return 1;
	msg = nlc_msg(&nl, QOTP_CMD_GET_CONFIG, 0, 0);
	if (!msg)
		return kernel_error("show", -ENOMEM);
	err = nlc_request(&nl, msg, config_cb, &s);
	if (err)
		return kernel_error("cannot read the configuration", err);
	if (s.json) {
		printf("{\"config\":{\"mode\":\"%s\",\"ports\":[", mode_str(s.mode));
		for (i = 0; i < s.nports; i++)
			printf("%s%" PRIu32, i ? "," : "", s.ports[i]);
		printf("],\"ring_max_bytes\":%" PRIu64 ",\"low_watermark\":%" PRIu64
		       ",\"max_flows\":%" PRIu32 "},\"peers\":[", s.ring_max, s.low_wm, s.max_flows);
	} else {
		printf("qotp: mode %s, ports", mode_str(s.mode));
		for (i = 0; i < s.nports; i++)
			printf("%s%" PRIu32, i ? "," : " ", s.ports[i]);
		printf("%s, ring-max %" PRIu64 " B, low-watermark %" PRIu64 " B, max-flows %" PRIu32
		       "\n", s.nports ? "" : " none", s.ring_max, s.low_wm, s.max_flows);
	}
	msg = nlc_msg(&nl, QOTP_CMD_GET_PEER, NLM_F_DUMP, 0);
	if (!msg)
		return kernel_error("show", -ENOMEM);
	err = nlc_request(&nl, msg, peer_cb, &s);
	if (s.json)
		printf("]}\n");
	if (err)
		return kernel_error("cannot list the peers", err);
	return 0;
}

/* ---- set ---- */

static int set_main(int argc, char **argv)
{
	struct nl_msg *msg;
	int i, err;

	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "Usage: %s set [ports PORT[,PORT...]] [mode gateway|endpoint|both|off]\n"
			"       [ring-max BYTES] [low-watermark BYTES] [max-flows N]\n", PROG);
		return 1;
	}
	if (open_family())
		return 1;
	msg = nlc_msg(&nl, QOTP_CMD_SET_CONFIG, 0, 256);
	if (!msg)
		return kernel_error("set", -ENOMEM);
	for (i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		uint64_t n;

		if (!strcmp(k, "ports")) {
			struct nlattr *nest = nla_nest_start(msg, QOTP_A_CFG_PORTS | NLA_F_NESTED);
			char *dup = strdup(v), *tok, *save = NULL;
			uint32_t port;

			if (!dup)
				goto nomem;
			for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (!qotpctl_parse_u32(tok, &port) || !port || port > 65535) {
					fprintf(stderr, "%s: not a TCP port (1-65535): `%s'\n", PROG, tok);
					free(dup);
					goto fail;
				}
				nla_put_u16(msg, 0, (uint16_t)port);
			}
			free(dup);
			nla_nest_end(msg, nest);
		} else if (!strcmp(k, "mode")) {
			uint32_t mode;

			if (!strcmp(v, "gateway"))
				mode = QOTP_MODE_GATEWAY;
			else if (!strcmp(v, "endpoint"))
				mode = QOTP_MODE_ENDPOINT;
			else if (!strcmp(v, "both"))
				mode = QOTP_MODE_ALL;
			else if (!strcmp(v, "off"))
				mode = 0;
			else {
				fprintf(stderr, "%s: mode must be gateway, endpoint, both or off: `%s'\n",
					PROG, v);
				goto fail;
			}
			nla_put_u32(msg, QOTP_A_CFG_MODE, mode);
		} else if (!strcmp(k, "ring-max") || !strcmp(k, "low-watermark")) {
			if (!qotpctl_parse_u64(v, &n, true)) {
				fprintf(stderr, "%s: %s must be a byte count (suffix K, M or G allowed): `%s'\n",
					PROG, k, v);
				goto fail;
			}
			nla_put_u64(msg, k[0] == 'r' ? QOTP_A_CFG_RING_MAX_BYTES :
				    QOTP_A_CFG_LOW_WATERMARK, n);
		} else if (!strcmp(k, "max-flows")) {
			uint32_t f;

			if (!qotpctl_parse_u32(v, &f)) {
				fprintf(stderr, "%s: max-flows must be a number: `%s'\n", PROG, v);
				goto fail;
			}
			nla_put_u32(msg, QOTP_A_CFG_MAX_FLOWS, f);
		} else {
			fprintf(stderr, "%s: unknown setting `%s' (ports, mode, ring-max, low-watermark, max-flows)\n",
				PROG, k);
			goto fail;
		}
	}
	err = nlc_request(&nl, msg, NULL, NULL);
	return err ? kernel_error("set", err) : 0;
nomem:
	fprintf(stderr, "%s: out of memory\n", PROG);
fail:
	nlmsg_free(msg);
	return 1;
}

/* ---- peer ---- */

/* Appends the prefixes of one "CIDR[,CIDR...]" or "none" argument; -EINVAL was reported. */
static int put_prefixes(struct nl_msg *msg, const char *arg)
{
	char *dup, *tok, *save = NULL;

	if (!strcmp(arg, "none"))
		return 0;
	dup = strdup(arg);
	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct qotpctl_cidr c;
		struct nlattr *e;

		if (!parse_cidr(tok, &c)) {
			free(dup);
			return -EINVAL;
		}
		e = nla_nest_start(msg, NLA_F_NESTED);
		nla_put_u16(msg, QOTP_A_PREFIX_FAMILY, c.family);
		nla_put(msg, QOTP_A_PREFIX_ADDR, c.family == AF_INET ? 4 : 16, c.addr);
		nla_put_u8(msg, QOTP_A_PREFIX_LEN, c.len);
		nla_nest_end(msg, e);
	}
	free(dup);
	return 0;
}

static int peer_main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	uint32_t id;
	struct nl_msg *msg;
	int err, cmd, i;

	if (!strcmp(sub, "del") && argc == 3) {
		cmd = QOTP_CMD_DEL_PEER;
	} else if ((!strcmp(sub, "add") || !strcmp(sub, "set")) && argc >= 3 && argc % 2 == 1) {
		/* "prefix LIST" may be repeated: prefix 10.0.0.0/8 prefix fd00::/8 */
		cmd = sub[0] == 'a' ? QOTP_CMD_ADD_PEER : QOTP_CMD_SET_PEER;
		for (i = 3; i < argc; i += 2) {
			if (strcmp(argv[i], "prefix")) {
				fprintf(stderr, "%s: expected `prefix', got `%s'\n", PROG, argv[i]);
				return 1;
			}
			if (!strcmp(argv[i + 1], "none") && argc != 5) {
				fprintf(stderr, "%s: `prefix none' cannot be combined with prefixes\n",
					PROG);
				return 1;
			}
		}
	} else {
		fprintf(stderr, "Usage: %s peer add|set ID [prefix CIDR[,CIDR...]|none]...\n"
			"       %s peer del ID\n", PROG, PROG);
		return 1;
	}
	if (!parse_peer_id(argv[2], &id))
		return 1;
	if (open_family())
		return 1;
	msg = nlc_msg(&nl, cmd, 0, 64 * 40);
	if (!msg)
		return kernel_error("peer", -ENOMEM);
	nla_put_u32(msg, QOTP_A_PEER_ID, id);
	if (argc >= 5) {
		struct nlattr *list = nla_nest_start(msg, QOTP_A_PEER_PREFIXES | NLA_F_NESTED);

		for (i = 4; i < argc; i += 2) {
			err = put_prefixes(msg, argv[i]);
			if (err) {
				nlmsg_free(msg);
				return err == -ENOMEM ? kernel_error("peer", err) : 1;
			}
		}
		nla_nest_end(msg, list);
	}
	err = nlc_request(&nl, msg, NULL, NULL);
	if (err) {
		char what[64];

		snprintf(what, sizeof(what), "peer %s %" PRIu32, sub, id);
		return kernel_error(what, err);
	}
	return 0;
}

/* ---- push ---- */

/* Reads up to @len bytes, short only at end of input. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int push_main(int argc, char **argv)
{
	uint64_t first_id = 0, block_size = DEFAULT_BLOCK_SIZE, id, total = 0;
	bool have_first = false;
	const char *file;
	struct peer_view pv;
	uint32_t peer, per_msg;
	uint8_t *buf = NULL;
	int dir, fd, i, rc = 1, err;

	if (argc < 4) {
usage:
		fprintf(stderr, "Usage: %s push PEER encrypt|decrypt FILE|- [--first-id N] [--block-size N]\n"
			"Key bytes are read from FILE, or from standard input for `-'.\n", PROG);
		return 1;
	}
	if (!parse_peer_id(argv[1], &peer))
		return 1;
	dir = parse_dir(argv[2]);
	if (dir < 0)
		return 1;
	file = argv[3];
	for (i = 4; i < argc; i += 2) {
		if (i + 1 >= argc)
			goto usage;
		if (!strcmp(argv[i], "--first-id")) {
			if (!qotpctl_parse_u64(argv[i + 1], &first_id, false)) {
				fprintf(stderr, "%s: --first-id must be a number: `%s'\n", PROG, argv[i + 1]);
				return 1;
			}
			have_first = true;
		} else if (!strcmp(argv[i], "--block-size")) {
			if (!qotpctl_parse_u64(argv[i + 1], &block_size, true) || !block_size ||
			    block_size > QOTP_MAX_BLOCK_LEN) {
				fprintf(stderr, "%s: --block-size must be 1 to %d: `%s'\n", PROG,
					QOTP_MAX_BLOCK_LEN, argv[i + 1]);
				return 1;
			}
		} else {
			fprintf(stderr, "%s: unknown option `%s'\n", PROG, argv[i]);
			goto usage;
		}
	}
	if (open_family())
		return 1;

	if (!have_first) {
		/* Continue after the highest id the ring ever accepted. */
		struct show_ctx s = { .want = &pv };
		struct nl_msg *q = nlc_msg(&nl, QOTP_CMD_GET_PEER, 0, 16);

		memset(&pv, 0, sizeof(pv));
		if (!q)
			return kernel_error("push", -ENOMEM);
		nla_put_u32(q, QOTP_A_PEER_ID, peer);
		err = nlc_request(&nl, q, peer_cb, &s);
		if (err) {
			char what[64];

			snprintf(what, sizeof(what), "push to peer %" PRIu32, peer);
			return kernel_error(what, err);
		}
		first_id = pv.ring[dir].has_last ? pv.ring[dir].last_id + 1 : 1;
		if (pv.ring[dir].has_last && pv.ring[dir].last_id == UINT64_MAX) {
			fprintf(stderr, "%s: the %s ring of peer %" PRIu32 " has used every block id\n",
				PROG, dir_name(dir), peer);
			return 1;
		}
	}

	if (!strcmp(file, "-")) {
		fd = STDIN_FILENO;
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "%s: cannot open key file `%s': %s\n", PROG, file, strerror(errno));
			return 1;
		}
	}
	per_msg = (uint32_t)(MAX_BLOCKS_NEST / (block_size + 32));
	if (per_msg < 1)
		per_msg = 1;
	if (per_msg > QOTP_MAX_PUSH_BLOCKS)
		per_msg = QOTP_MAX_PUSH_BLOCKS;
	buf = malloc(block_size);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		goto out;
	}

	id = first_id;
	for (;;) {
		struct nl_msg *msg = nlc_msg(&nl, QOTP_CMD_PUSH_KEYS, 0,
					     per_msg * (block_size + 32) + 64);
		struct nlattr *blocks;
		uint64_t msg_first = id, msg_bytes = 0;
		uint32_t n = 0;
		bool eof = false;

		if (!msg) {
			fprintf(stderr, "%s: out of memory\n", PROG);
			goto out;
		}
		nla_put_u32(msg, QOTP_A_PUSH_PEER, peer);
		nla_put_u8(msg, QOTP_A_PUSH_DIR, (uint8_t)dir);
		blocks = nla_nest_start(msg, QOTP_A_PUSH_BLOCKS | NLA_F_NESTED);
		while (n < per_msg) {
			ssize_t got = read_full(fd, buf, block_size);
			struct nlattr *b;

			if (got < 0) {
				fprintf(stderr, "%s: reading key bytes from `%s': %s\n", PROG, file,
					strerror(errno));
				explicit_bzero(nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len);
				nlmsg_free(msg);
				goto out;
			}
			if (got == 0) {
				eof = true;
				break;
			}
			b = nla_nest_start(msg, NLA_F_NESTED);
			nla_put_u64(msg, QOTP_A_BLOCK_ID, id);
			nla_put(msg, QOTP_A_BLOCK_DATA, (int)got, buf);
			nla_nest_end(msg, b);
			explicit_bzero(buf, (size_t)got);
			msg_bytes += (uint64_t)got;
			n++;
			if (id == UINT64_MAX) {
				eof = true;
				break;
			}
			id++;
			if ((size_t)got < block_size) {
				eof = true;
				break;
			}
		}
		nla_nest_end(msg, blocks);
		if (!n) {
			nlmsg_free(msg);
			break;
		}
		err = nlc_request(&nl, msg, NULL, NULL);	/* wipes msg */
		if (err) {
			char what[128];

			snprintf(what, sizeof(what),
				 "push of blocks %" PRIu64 "..%" PRIu64 " to peer %" PRIu32 " %s",
				 msg_first, msg_first + n - 1, peer, dir_name(dir));
			kernel_error(what, err);
			if (total)
				fprintf(stderr, "%s: %" PRIu64 " bytes in blocks %" PRIu64 "..%" PRIu64
					" were accepted before\n", PROG, total, first_id, msg_first - 1);
			goto out;
		}
		total += msg_bytes;
		if (eof)
			break;
	}
	if (!total) {
		fprintf(stderr, "%s: no key bytes in `%s'\n", PROG, file);
		goto out;
	}
	printf("pushed %" PRIu64 " bytes as blocks %" PRIu64 "..%" PRIu64 " to peer %" PRIu32 " %s\n",
	       total, first_id, id - (id == UINT64_MAX && total ? 0 : 1), peer, dir_name(dir));
	rc = 0;
out:
	if (buf) {
		explicit_bzero(buf, block_size);
		free(buf);
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

/* ---- flush ---- */

static int flush_main(int argc, char **argv)
{
	struct nl_msg *msg;
	uint32_t peer = 0;
	int dir = -1, err;

	if (argc > 3 || (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
		fprintf(stderr, "Usage: %s flush [PEER [encrypt|decrypt]]\n"
			"Wipes the key blocks of one peer, one ring, or every peer.\n", PROG);
		return argc > 3;
	}
	if (argc > 1 && !parse_peer_id(argv[1], &peer))
		return 1;
	if (argc > 2 && (dir = parse_dir(argv[2])) < 0)
		return 1;
	if (open_family())
		return 1;
	msg = nlc_msg(&nl, QOTP_CMD_FLUSH, 0, 16);
	if (!msg)
		return kernel_error("flush", -ENOMEM);
	if (peer)
		nla_put_u32(msg, QOTP_A_FLUSH_PEER, peer);
	if (dir >= 0)
		nla_put_u8(msg, QOTP_A_FLUSH_DIR, (uint8_t)dir);
	err = nlc_request(&nl, msg, NULL, NULL);
	return err ? kernel_error("flush", err) : 0;
}

/* ---- monitor ---- */

static bool monitor_json;

static int event_cb(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *tb[QOTP_A_MAX + 1], *a;
	const char *name;
	int rem, n = 0;

	if (nlmsg_hdr(msg)->nlmsg_type != nl.family ||
	    genlmsg_parse(nlmsg_hdr(msg), 0, tb, QOTP_A_MAX, NULL))
		return NL_SKIP;
	switch (g->cmd) {
	case QOTP_CMD_EVENT_LOW_WATERMARK: name = "low-watermark"; break;
	case QOTP_CMD_EVENT_KEY_EMPTY: name = "key-empty"; break;
	case QOTP_CMD_EVENT_RELEASED: name = "released"; break;
	case QOTP_CMD_EVENT_FLUSHED: name = "flushed"; break;
	default: return NL_SKIP;
	}
	if (monitor_json) {
		printf("{\"event\":\"%s\"", name);
		if (tb[QOTP_A_EVT_PEER])
			printf(",\"peer\":%" PRIu32, get_u32(tb[QOTP_A_EVT_PEER]));
		if (tb[QOTP_A_EVT_DIR])
			printf(",\"dir\":\"%s\"", dir_name(nla_get_u8(tb[QOTP_A_EVT_DIR])));
		if (tb[QOTP_A_EVT_AVAIL])
			printf(",\"avail\":%" PRIu64, get_u64(tb[QOTP_A_EVT_AVAIL]));
		if (tb[QOTP_A_EVT_DROPS])
			printf(",\"drops\":%" PRIu64, get_u64(tb[QOTP_A_EVT_DROPS]));
		if (tb[QOTP_A_EVT_BLOCK_IDS]) {
			printf(",\"block_ids\":[");
			nla_for_each_nested(a, tb[QOTP_A_EVT_BLOCK_IDS], rem)
				if (nla_type(a) == 0 && nla_len(a) == 8)	/* not padding */
					printf("%s%" PRIu64, n++ ? "," : "", get_u64(a));
			printf("]");
		}
		if (tb[QOTP_A_EVT_CONSUMED])
			printf(",\"consumed\":%" PRIu64, get_u64(tb[QOTP_A_EVT_CONSUMED]));
		printf("}\n");
		return NL_OK;
	}
	printf("%s", name);
	if (tb[QOTP_A_EVT_PEER])
		printf(" peer %" PRIu32, get_u32(tb[QOTP_A_EVT_PEER]));
	else
		printf(" peer all");
	printf(" %s", tb[QOTP_A_EVT_DIR] ? dir_name(nla_get_u8(tb[QOTP_A_EVT_DIR])) : "both");
	if (tb[QOTP_A_EVT_AVAIL])
		printf(" avail %" PRIu64, get_u64(tb[QOTP_A_EVT_AVAIL]));
	if (tb[QOTP_A_EVT_DROPS])
		printf(" drops %" PRIu64, get_u64(tb[QOTP_A_EVT_DROPS]));
	if (tb[QOTP_A_EVT_BLOCK_IDS]) {
		printf(" ids");
		nla_for_each_nested(a, tb[QOTP_A_EVT_BLOCK_IDS], rem)
			if (nla_type(a) == 0 && nla_len(a) == 8)
				printf("%s%" PRIu64, n++ ? "," : " ", get_u64(a));
	}
	if (tb[QOTP_A_EVT_CONSUMED])
		printf(" consumed %" PRIu64, get_u64(tb[QOTP_A_EVT_CONSUMED]));
	printf("\n");
	return NL_OK;
}

static int monitor_main(int argc, char **argv)
{
	int err;

	if (argc == 2 && !strcmp(argv[1], "--json"))
		monitor_json = true;
	else if (argc != 1) {
		fprintf(stderr, "Usage: %s monitor [--json]\nPrints kernel events until interrupted.\n",
			PROG);
		return 1;
	}
	if (open_family())
		return 1;
	err = nlc_subscribe(&nl);
	if (err) {
		fprintf(stderr, "%s: cannot join the events group: %s\n", PROG, strerror(-err));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	nl_socket_modify_cb(nl.sk, NL_CB_VALID, NL_CB_CUSTOM, event_cb, NULL);
	for (;;) {
		err = nl_recvmsgs_default(nl.sk);
		if (err < 0 && err != -NLE_INTR && err != -NLE_AGAIN) {
			fprintf(stderr, "%s: monitor: %s\n", PROG, nl_geterror(err));
			return 1;
		}
	}
}

/* ---- main ---- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
	const char *args;
} subcommands[] = {
	{ "show", show_main, "Shows the configuration, peers, key rings and counters",
	  "[--json]" },
	{ "set", set_main, "Changes the configuration of this network namespace",
	  "[ports PORT[,PORT...]] [mode gateway|endpoint|both|off] [ring-max BYTES]\n"
	  "\t[low-watermark BYTES] [max-flows N]" },
	{ "peer", peer_main, "Adds, changes or deletes a peer",
	  "add|set ID [prefix CIDR[,CIDR...]|none]...  |  peer del ID" },
	{ "push", push_main, "Pushes key blocks read from a file or stdin into a ring",
	  "PEER encrypt|decrypt FILE|- [--first-id N] [--block-size N]" },
	{ "flush", flush_main, "Wipes the key blocks of a peer, a ring, or everything",
	  "[PEER [encrypt|decrypt]]" },
	{ "monitor", monitor_main, "Prints key ring events as they happen", "[--json]" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: %s <command> [<args>]\n\nCommands:\n", PROG);
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
	fprintf(f, "\n`%s <command> --help' shows the arguments of a command.\n", PROG);
}

int main(int argc, char **argv)
{
	size_t i;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(argv[1], subcommands[i].name))
			continue;
		if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
			printf("Usage: %s %s %s\n%s.\n", PROG, subcommands[i].name,
			       subcommands[i].args, subcommands[i].help);
			return 0;
		}
		rc = subcommands[i].fn(argc - 1, argv + 1);
		nlc_close(&nl);
		return rc;
	}
	fprintf(stderr, "%s: unknown command `%s'\n", PROG, argv[1]);
	usage(stderr);
	return 1;
}
