// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the kmsd.conf parser: a full file, and exact error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static struct kms_config cf;
static char err[512];

#define BASE "node kms-a\nlisten 127.0.0.1:7000\ntls-cert /p/a.crt\ntls-key /p/a.key\n" \
	"tls-ca /p/ca.crt\nstore /var/lib/kmsd/a.db\n"

static int parse(const char *text)
{
	err[0] = '\0';
	return config_parse(&cf, "t.conf", text, strlen(text), err, sizeof(err));
}

static void test_full(void **state)
{
	const char *t = "# kmsd test\n" BASE
		"control /run/k.sock   # trailing comment\n"
		"round-blocks 128\n\tround-interval-ms 50\nlock-timeout-ms 2000\nround-budget-ms 7\n"
		"keepalive 2\nlink-max-bytes 1048576\nstore-min-free 0\n"
		"dist-block 1024\ndist-low-watermark 8192\ndist-target 65536\n"
		"neighbour kms-b address 127.0.0.1:7001 qkd-sim unix:/run/ab.sock end a"
		" qotp-peer 7\n"
		"neighbor kms-c qkd-sim tcp:[::1]:9000 end b\n";

	assert_int_equal(parse(t), 0);
	assert_string_equal(cf.node_id, "kms-a");
	assert_string_equal(cf.listen, "127.0.0.1:7000");
	assert_string_equal(cf.store, "/var/lib/kmsd/a.db");
	assert_string_equal(cf.control, "/run/k.sock");
	assert_int_equal(cf.round_blocks, 128);
	assert_int_equal(cf.round_interval_ms, 50);
	assert_int_equal(cf.round_budget_ms, 7);
	assert_int_equal(cf.lock_timeout_ms, 2000);
	assert_int_equal(cf.keepalive_s, 2);
	assert_true(cf.link_max_bytes == 1048576);
	assert_true(cf.store_min_free == 0);
	assert_int_equal(cf.n_nb, 2);
	assert_string_equal(cf.nb[0].id, "kms-b");
	assert_string_equal(cf.nb[0].address, "127.0.0.1:7001");
	assert_int_equal(cf.nb[0].qkd_backend, QKD_BACKEND_SIM);
	assert_string_equal(cf.nb[0].qkd_spec, "unix:/run/ab.sock");
	assert_int_equal(cf.nb[0].qkd_end, 'a');
	assert_string_equal(cf.nb[1].address, "");
	assert_int_equal(cf.nb[1].qkd_end, 'b');
	assert_int_equal(cf.nb[0].qotp_peer, 7);
	assert_int_equal(cf.nb[1].qotp_peer, 0);
	assert_int_equal(cf.dist_block, 1024);
	assert_true(cf.dist_low == 8192);
	assert_true(cf.dist_target == 65536);
	assert_ptr_equal(config_find_neighbour(&cf, "kms-c"), &cf.nb[1]);
	assert_null(config_find_neighbour(&cf, "kms-d"));
}

static void test_defaults(void **state)
{
	assert_int_equal(parse(BASE), 0);
	assert_int_equal(cf.round_blocks, 64);
	assert_int_equal(cf.round_budget_ms, 0);
	assert_int_equal(cf.n_nb, 0);
	assert_string_equal(cf.control, "/run/kmsd/kmsd.sock");
}

static void test_errors(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ BASE "frobnicate 1\n", "t.conf:7: unknown directive: `frobnicate'" },
		{ "node kms a\n", "t.conf:1: directive takes exactly one value: `node'" },
		{ "node kms/a\n", "t.conf:1: invalid node id: `kms/a'" },
		{ "listen 127.0.0.1:70000\n", "t.conf:1: listen address is not host:port: `127.0.0.1:70000'" },
		{ "listen ::1:7000\n", "t.conf:1: listen address is not host:port: `::1:7000'" },
		{ "\n\nstore db.sqlite\n", "t.conf:3: store must be an absolute path: `db.sqlite'" },
		{ "round-blocks 0\n", "t.conf:1: round-blocks out of range [1, 1024]: `0'" },
		{ "round-budget-ms 10001\n",
		  "t.conf:1: round-budget-ms out of range [0, 10000]: `10001'" },
		{ "round-blocks 12x\n", "t.conf:1: round-blocks is not a number: `12x'" },
		{ "round-blocks -1\n", "t.conf:1: round-blocks is not a number: `-1'" },
		{ "keepalive 99999999999999999999999\n", "t.conf:1: keepalive is not a number: `99999999999999999999999'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end a\nneighbour kms-b qkd-sim unix:/s end b\n",
		  "t.conf:8: duplicate neighbour: `kms-b'" },
		{ BASE "neighbour kms-b address 1.2.3.4:5\n",
		  "t.conf:7: neighbour has no QKD link source (qkd-sim or qkd-etsi014): `kms-b'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s\n",
		  "t.conf:7: neighbour needs `end a' or `end b' for qkd-sim: `kms-b'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end c\n", "t.conf:7: end must be a or b: `c'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end a qotp-peer 0\n",
		  "t.conf:7: qotp-peer out of range [1, 4294967295]: `0'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end a qotp-peer 3\n"
		  "neighbour kms-c qkd-sim unix:/s end a qotp-peer 3\n",
		  "t.conf: two neighbours with the same qotp-peer: `kms-c'" },
		{ BASE "dist-low-watermark 4096\ndist-target 4096\n",
		  "t.conf: dist-target must exceed dist-low-watermark: `4096'" },
		{ BASE "neighbour kms-b qkd-sim file:/s end a\n",
		  "t.conf:7: qkd-sim source must be unix:/path or tcp:host:port: `file:/s'" },
		{ BASE "neighbour kms-b colour blue\n", "t.conf:7: unknown neighbour option: `colour'" },
		{ BASE "neighbour kms-b address\n", "t.conf:7: neighbour option needs a value: `address'" },
		{ BASE "neighbour kms-a qkd-sim unix:/s end a\n", "t.conf: node is its own neighbour: `kms-a'" },
		{ "listen 127.0.0.1:1\n", "t.conf: missing required directive: `node'" },
		{ "node x\nlisten 127.0.0.1:1\ntls-cert /c\n",
		  "t.conf: missing required directive: `tls-cert, tls-key and tls-ca'" },
		{ "node x\x01y\n", "t.conf:1: control character in word: `x\x01y'" },
		{ BASE "remote\n", "t.conf:7: remote needs an id: `remote'" },
		{ BASE "remote kms/c\n", "t.conf:7: invalid remote id: `kms/c'" },
		{ BASE "remote kms-c\nremote kms-c\n", "t.conf:8: duplicate remote: `kms-c'" },
		{ BASE "remote kms-c address 1.2.3.4\n",
		  "t.conf:7: remote address is not host:port: `1.2.3.4'" },
		{ BASE "remote kms-c qkd-sim unix:/s\n", "t.conf:7: unknown remote option: `qkd-sim'" },
		{ BASE "remote kms-c qotp-peer\n", "t.conf:7: remote option needs a value: `qotp-peer'" },
		{ BASE "remote kms-a\n", "t.conf: node is its own remote: `kms-a'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end a\nremote kms-b\n",
		  "t.conf: remote is also a neighbour (a quantum-link neighbour needs no remote entry): `kms-b'" },
		{ BASE "neighbour kms-b qkd-sim unix:/s end a qotp-peer 4\nremote kms-c qotp-peer 4\n",
		  "t.conf: remote has the qotp-peer of neighbour kms-b: `kms-c'" },
		{ BASE "remote kms-c qotp-peer 4\nremote kms-d qotp-peer 4\n",
		  "t.conf: two remotes with the same qotp-peer: `kms-d'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text), -1);
		assert_string_equal(err, cases[i].msg);
	}
}

#define KME "etsi014-kme site-a url https://kme-a.example:8443 cert /p/sae.crt key /p/sae.key" \
	" ca /p/kme-ca.crt\n"

/* link key from an ETSI GS QKD 014 KME: the KME profile, the neighbour's SAE pair */
static void test_etsi014(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ BASE "etsi014-kme site-a url http://k:1 cert /c key /k ca /a\n",
		  "t.conf:7: etsi014-kme url must start with https://: `http://k:1'" },
		{ BASE "etsi014-kme site-a url https://k:1/api cert /c key /k ca /a\n",
		  "t.conf:7: etsi014-kme url must be https://HOST[:PORT] with no path: "
		  "`https://k:1/api'" },
		{ BASE "etsi014-kme site-a url https://k:99999 cert /c key /k ca /a\n",
		  "t.conf:7: etsi014-kme url has no valid HOST[:PORT]: `https://k:99999'" },
		{ BASE "etsi014-kme site-a url https://k cert c key /k ca /a\n",
		  "t.conf:7: etsi014-kme cert must be an absolute path: `c'" },
		{ BASE "etsi014-kme site-a url https://k cert /c key /k\n",
		  "t.conf:7: etsi014-kme needs url, cert, key and ca: `site-a'" },
		{ BASE "etsi014-kme site-a url https://k cert /c key /k ca /a pin 1\n",
		  "t.conf:7: unknown etsi014-kme option: `pin'" },
		{ BASE KME KME, "t.conf:8: duplicate etsi014-kme: `site-a'" },
		{ BASE "etsi014-kme\n", "t.conf:7: etsi014-kme needs a name: `etsi014-kme'" },
		{ BASE "neighbour kms-b qkd-etsi014 site-b sae A peer-sae B\n" KME,
		  "t.conf:7: qkd-etsi014 names no etsi014-kme of this file: `site-b'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A\n",
		  "t.conf:8: qkd-etsi014 needs `sae ID' and `peer-sae ID': `kms-b'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A peer-sae A\n",
		  "t.conf:8: sae and peer-sae are the same SAE: `A'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A/1 peer-sae B\n",
		  "t.conf:8: invalid SAE_ID for sae (1-127 printable characters, none of /?#%): "
		  "`A/1'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A peer-sae B end a\n",
		  "t.conf:8: neighbour has both qkd-sim and qkd-etsi014: `kms-b'" },
		{ BASE KME "neighbour kms-b qkd-sim unix:/s end a qkd-etsi014 site-a sae A "
		  "peer-sae B\n", "t.conf:8: neighbour has both qkd-sim and qkd-etsi014: `kms-b'" },
		{ BASE KME "neighbour kms-b qkd-sim unix:/s end a sae A\n",
		  "t.conf:8: sae and peer-sae need qkd-etsi014: `kms-b'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A peer-sae B etsi-block 8\n",
		  "t.conf:8: etsi-block out of range [128, 65536]: `8'" },
		{ BASE KME "neighbour kms-b qkd-etsi014 site-a sae A peer-sae B\n"
		  "neighbour kms-c qkd-etsi014 site-a sae A peer-sae B\n",
		  "t.conf:9: two neighbours draw key for the same SAE pair at KME site-a: `B'" },
	};

	assert_int_equal(parse(BASE "neighbour kms-b address 127.0.0.1:7001 qkd-etsi014 site-a "
			       "sae SAE_A peer-sae SAE_B etsi-block 4096\n" KME
			       "etsi014-kme v6 url https://[::1]/ cert /c key /k ca /a\n"
			       "neighbour kms-c qkd-etsi014 v6 sae A peer-sae C\n"), 0);
	assert_int_equal(cf.n_kme, 2);
	assert_string_equal(cf.kme[0].name, "site-a");
	assert_string_equal(cf.kme[0].host, "kme-a.example");
	assert_int_equal(cf.kme[0].port, 8443);
	assert_string_equal(cf.kme[0].cert, "/p/sae.crt");
	assert_string_equal(cf.kme[0].key, "/p/sae.key");
	assert_string_equal(cf.kme[0].ca, "/p/kme-ca.crt");
	assert_string_equal(cf.kme[1].host, "::1");
	assert_int_equal(cf.kme[1].port, 443);
	assert_int_equal(cf.nb[0].qkd_backend, QKD_BACKEND_ETSI014);
	assert_int_equal(cf.nb[0].kme, 0);
	assert_string_equal(cf.nb[0].sae_id, "SAE_A");
	assert_string_equal(cf.nb[0].peer_sae_id, "SAE_B");
	assert_int_equal(cf.nb[0].etsi_block, 4096);
	assert_int_equal(cf.nb[1].kme, 1);
	assert_int_equal(cf.nb[1].etsi_block, 32768);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text), -1);
		assert_string_equal(err, cases[i].msg);
	}
	assert_true(config_valid_sae_id("SAE_001"));
	assert_true(config_valid_sae_id("~!$&'()*+,;=:@"));
	assert_false(config_valid_sae_id(""));
	assert_false(config_valid_sae_id("a b"));
	assert_false(config_valid_sae_id("a?b"));
	assert_false(config_valid_sae_id("a#b"));
	assert_false(config_valid_sae_id("a%b"));
	assert_false(config_valid_sae_id("\x7f"));
}

#define E14 "etsi014-listen 127.0.0.1:8443 cert /p/kme.crt key /p/kme.key ca /p/sae-ca.crt\n"
#define NBS "neighbour kms-b qkd-sim unix:/s end a\nremote kms-c\n"

/* kmsd as an ETSI 014 KME for SAEs: etsi014-listen and sae lines, and their errors */
static void test_etsi014_listen(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ BASE E14 E14, "t.conf:8: duplicate etsi014-listen: `127.0.0.1:8443'" },
		{ BASE "etsi014-listen\n",
		  "t.conf:7: etsi014-listen needs HOST:PORT: `etsi014-listen'" },
		{ BASE "etsi014-listen 127.0.0.1 cert /c key /k ca /a\n",
		  "t.conf:7: etsi014-listen address is not host:port: `127.0.0.1'" },
		{ BASE "etsi014-listen h:1 key /k ca /a\n",
		  "t.conf:7: etsi014-listen needs cert, key and ca: `h:1'" },
		{ BASE "etsi014-listen h:1 cert /c ca /a\n",
		  "t.conf:7: etsi014-listen needs cert, key and ca: `h:1'" },
		{ BASE "etsi014-listen h:1 cert /c key /k\n",
		  "t.conf:7: etsi014-listen needs cert, key and ca: `h:1'" },
		{ BASE "etsi014-listen h:1\n",
		  "t.conf:7: etsi014-listen needs cert, key and ca: `h:1'" },
		{ BASE "etsi014-listen h:1 cert c key /k ca /a\n",
		  "t.conf:7: etsi014-listen cert must be an absolute path: `c'" },
		{ BASE "etsi014-listen h:1 cert /c key k ca /a\n",
		  "t.conf:7: etsi014-listen key must be an absolute path: `k'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca a\n",
		  "t.conf:7: etsi014-listen ca must be an absolute path: `a'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a port 2\n",
		  "t.conf:7: unknown etsi014-listen option: `port'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a key-ttl\n",
		  "t.conf:7: etsi014-listen option needs a value: `key-ttl'" },
		{ BASE "etsi014-listen h:1 cert\n",
		  "t.conf:7: etsi014-listen option needs a value: `cert'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a key-size 100\n",
		  "t.conf:7: key-size must be a multiple of 8 bits: `100'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-key-size 1004\n",
		  "t.conf:7: max-key-size must be a multiple of 8 bits: `1004'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a key-size 56\n",
		  "t.conf:7: key-size out of range [64, 65536]: `56'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-key-size 65544\n",
		  "t.conf:7: max-key-size out of range [64, 65536]: `65544'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a key-size 16384\n",
		  "t.conf:7: etsi014-listen key-size exceeds max-key-size: `16384'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-key-size 128 key-size 256\n",
		  "t.conf:7: etsi014-listen key-size exceeds max-key-size: `256'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-keys 0\n",
		  "t.conf:7: max-keys out of range [1, 1024]: `0'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-keys 1025\n",
		  "t.conf:7: max-keys out of range [1, 1024]: `1025'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-keys 1k\n",
		  "t.conf:7: max-keys is not a number: `1k'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a max-connections 4097\n",
		  "t.conf:7: max-connections out of range [1, 4096]: `4097'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a key-ttl 9\n",
		  "t.conf:7: key-ttl out of range [10, 2592000]: `9'" },
		{ BASE "etsi014-listen h:1 cert /c key /k ca /a kme-id kme/a\n",
		  "t.conf:7: invalid etsi014-listen kme-id: `kme/a'" },
		{ BASE "sae\n", "t.conf:7: sae needs an SAE_ID: `sae'" },
		{ BASE "sae SAE/1 node kms-a\n", "t.conf:7: invalid SAE_ID: `SAE/1'" },
		{ BASE "sae a?b node kms-a\n", "t.conf:7: invalid SAE_ID: `a?b'" },
		{ BASE "sae A node kms-a\nsae B node kms-a\nsae A node kms-a\n",
		  "t.conf:9: duplicate sae: `A'" },
		{ BASE "sae A\n", "t.conf:7: sae needs a node: `A'" },
		{ BASE "sae A cn a.example\n", "t.conf:7: sae needs a node: `A'" },
		{ BASE "sae A node\n", "t.conf:7: sae option needs a value: `node'" },
		{ BASE "sae A node kms/b\n", "t.conf:7: invalid sae node id: `kms/b'" },
		{ BASE "sae A node kms-a cn a%2f\n", "t.conf:7: invalid sae cn: `a%2f'" },
		{ BASE "sae A node kms-a colour blue\n", "t.conf:7: unknown sae option: `colour'" },
		{ BASE NBS "sae A node kms-d\n",
		  "t.conf:9: sae A: its node is neither this node nor a neighbour or remote: "
		  "`kms-d'" },
		{ BASE NBS "sae A node kms-a cn X\nsae B node kms-b\nsae C node kms-a cn X\n",
		  "t.conf:11: two SAEs of node kms-a with the same certificate cn: `X'" },
		{ BASE NBS "sae A node kms-c\nsae B node kms-c cn A\n",
		  "t.conf:10: two SAEs of node kms-c with the same certificate cn: `A'" },
	};
	static char text[16384];
	char id[KMS_SAE_ID_MAX + 2];
	size_t n;

	/* everything given; a line of 20 words */
	assert_int_equal(parse(BASE NBS "etsi014-listen [::1]:8443 cert /p/kme.crt key /p/kme.key "
			       "ca /p/sae-ca.crt kme-id KME_A max-connections 16 max-keys 64 "
			       "key-size 512 max-key-size 4096 key-ttl 30\n"
			       "sae SAE_A node kms-a cn sae-a.example\nsae SAE_B node kms-b\n"
			       "sae SAE_C cn sae-a.example node kms-c\n"), 0);
	assert_string_equal(cf.e14.listen, "[::1]:8443");
	assert_string_equal(cf.e14.cert, "/p/kme.crt");
	assert_string_equal(cf.e14.key, "/p/kme.key");
	assert_string_equal(cf.e14.ca, "/p/sae-ca.crt");
	assert_string_equal(cf.e14.kme_id, "KME_A");
	assert_int_equal(cf.e14.max_connections, 16);
	assert_int_equal(cf.e14.max_keys, 64);
	assert_int_equal(cf.e14.key_size, 512);
	assert_int_equal(cf.e14.max_key_size, 4096);
	assert_int_equal(cf.e14.key_ttl_s, 30);
	assert_int_equal(cf.n_sae, 3);
	assert_string_equal(cf.sae[0].id, "SAE_A");
	assert_string_equal(cf.sae[0].node, "kms-a");
	assert_string_equal(cf.sae[0].cn, "sae-a.example");
	assert_string_equal(cf.sae[1].node, "kms-b");
	assert_string_equal(cf.sae[1].cn, "SAE_B");	/* the SAE_ID by default */
	assert_string_equal(cf.sae[2].node, "kms-c");
	assert_string_equal(cf.sae[2].cn, "sae-a.example");	/* another node: no clash */
	assert_ptr_equal(config_find_sae(&cf, "SAE_C"), &cf.sae[2]);
	assert_ptr_equal(config_find_sae(&cf, "SAE_A"), &cf.sae[0]);
	assert_null(config_find_sae(&cf, "SAE_D"));
	assert_null(config_find_sae(&cf, "sae_a"));
	/* the defaults; the KME_ID is the node id */
	assert_int_equal(parse(BASE E14), 0);
	assert_string_equal(cf.e14.listen, "127.0.0.1:8443");
	assert_string_equal(cf.e14.kme_id, "kms-a");
	assert_int_equal(cf.e14.max_connections, 256);
	assert_int_equal(cf.e14.max_keys, 128);
	assert_int_equal(cf.e14.key_size, 256);
	assert_int_equal(cf.e14.max_key_size, 8192);
	assert_int_equal(cf.e14.key_ttl_s, 600);
	assert_int_equal(cf.n_sae, 0);
	/* off without the line; an SAE of this node alone needs no neighbour */
	assert_int_equal(parse(BASE "sae A node kms-a\n"), 0);
	assert_string_equal(cf.e14.listen, "");
	assert_string_equal(cf.e14.kme_id, "");
	assert_int_equal(cf.n_sae, 1);
	/* the bounds of each number */
	assert_int_equal(parse(BASE "etsi014-listen h:1 cert /c key /k ca /a max-connections 1 "
			       "max-keys 1024 key-size 64 max-key-size 65536 "
			       "key-ttl 2592000\n"), 0);
	assert_int_equal(cf.e14.max_connections, 1);
	assert_int_equal(cf.e14.max_keys, 1024);
	assert_int_equal(cf.e14.key_size, 64);
	assert_int_equal(cf.e14.max_key_size, 65536);
	assert_int_equal(cf.e14.key_ttl_s, 2592000);
	assert_int_equal(parse(BASE "etsi014-listen h:1 cert /c key /k ca /a key-size 8192\n"), 0);
	/* 24 words on a line are read; a 25th is refused */
#define W24 "etsi014-listen h:1 cert /c key /k ca /a max-keys 1 max-keys 2 max-keys 3 " \
	"max-keys 4 max-keys 5 max-keys 6 max-keys 7 max-keys 8"
	assert_int_equal(parse(BASE W24 "\n"), 0);
	assert_int_equal(cf.e14.max_keys, 8);
	assert_int_equal(parse(BASE W24 " key-ttl 60\n"), -1);
#undef W24
	assert_string_equal(err, "t.conf:7: too many words on line: `key-ttl 60'");
	/* an SAE_ID of 127 characters, not 128 (the error shows its first 64) */
	memset(id, 'S', sizeof(id));
	id[KMS_SAE_ID_MAX] = '\0';
	snprintf(text, sizeof(text), BASE "sae %s node kms-a\n", id);
	assert_int_equal(parse(text), 0);
	assert_string_equal(cf.sae[0].id, id);
	assert_string_equal(cf.sae[0].cn, id);
	id[KMS_SAE_ID_MAX] = 'S';
	id[KMS_SAE_ID_MAX + 1] = '\0';
	snprintf(text, sizeof(text), BASE "sae %s node kms-a\n", id);
	assert_int_equal(parse(text), -1);
	assert_string_equal(err, "t.conf:7: invalid SAE_ID: "
			    "`SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS'");
	/* at most KMS_MAX_SAES */
	n = (size_t)snprintf(text, sizeof(text), BASE);
	for (int i = 0; i < KMS_MAX_SAES; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "sae S%d node kms-a\n", i);
	assert_int_equal(parse(text), 0);
	assert_int_equal(cf.n_sae, KMS_MAX_SAES);
	snprintf(text + n, sizeof(text) - n, "sae S%d node kms-a\n", KMS_MAX_SAES);
	assert_int_equal(parse(text), -1);
	assert_string_equal(err, "t.conf:135: too many sae lines (max 128): `S128'");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text), -1);
		assert_string_equal(err, cases[i].msg);
	}
}

static void test_remote(void **state)
{
	assert_int_equal(parse(BASE "neighbour kms-b qkd-sim unix:/s end a qotp-peer 1\n"
			       "remote kms-c address [::1]:7003 qotp-peer 2\nremote kms-d\n"), 0);
	assert_int_equal(cf.n_rm, 2);
	assert_string_equal(cf.rm[0].id, "kms-c");
	assert_string_equal(cf.rm[0].address, "[::1]:7003");
	assert_int_equal(cf.rm[0].qotp_peer, 2);
	assert_string_equal(cf.rm[1].address, "");
	assert_int_equal(cf.rm[1].qotp_peer, 0);
	assert_ptr_equal(config_find_remote(&cf, "kms-d"), &cf.rm[1]);
	assert_null(config_find_remote(&cf, "kms-b"));
	assert_int_equal(cf.ppetp_block, 4000);
	assert_int_equal(parse(BASE "ppetp-block 16\n"), 0);
	assert_int_equal(cf.ppetp_block, 16);
	assert_int_equal(parse(BASE "ppetp-block 32769\n"), -1);
	assert_string_equal(err, "t.conf:7: ppetp-block out of range [16, 32768]: `32769'");
}

static void test_limits(void **state)
{
	static char big[4096];

	memset(big, 'x', 2000);
	memcpy(big, "node ", 5);
	big[2000] = '\n';
	assert_int_equal(parse(big), -1);
	assert_non_null(strstr(err, "t.conf:1: line longer than 1024 bytes"));
	assert_int_equal(config_parse(&cf, "t.conf", "node a\0b\n", 9, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:1: NUL byte in line: `\\0'");
	/* no trailing newline is fine */
	assert_int_equal(parse(BASE "keepalive 3"), 0);
	assert_int_equal(cf.keepalive_s, 3);
}

static void test_split_addr(void **state)
{
	char host[64];
	unsigned port;

	assert_int_equal(config_split_addr("[::1]:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 80);
	assert_int_equal(config_split_addr("h:65535", host, sizeof(host), &port), 0);
	assert_int_equal(config_split_addr("h:0", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_addr(":80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_addr("h:", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_addr("h:+80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_addr("[::1]80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_addr("h", host, sizeof(host), &port), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_remote),
		cmocka_unit_test(test_etsi014),
		cmocka_unit_test(test_etsi014_listen),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_split_addr),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
