#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# ETSI GS QKD 014 key delivery over mutual TLS on loopback (issue target: >= 2000 pairs/s of
# 256-bit keys, >= 20 MB/s of key in 32 KiB keys). kmesimd serves KMEs A and B with every
# store always full (--rate 0); bench/e14bench, the master SAE at A and the slave SAE at B,
# runs independent loops of enc_keys at A + dec_keys at B on keep-alive connections,
# comparing the keys. Three runs:
#   256-bit keys, 1 a request      (pairs/s: keys delivered to both SAEs per second)
#   256-bit keys, 64 a request
#   32 KiB keys (262144 bits), 1 a request  (key_MBps: key bytes per second, each key once)
# prints the e14bench lines and writes them as OUT/e14.csv.
#   bench/e14.sh [OUT]     (OUT: default bench/results; E14_SECONDS: per run, default 5)
# About 20 s. Exit status 1 if a run failed (HTTP error, TLS failure, key mismatch).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/bench/results}
secs=${E14_SECONDS:-5}
bin=$top/build/bench/e14bench
mkdir -p "$out" "$top/build/bench"

# kmesimd, and e14bench on the codec objects kmesimd links (kms/kmesim.mk)
make -s -C "$top/kms" ../build/kms/kmesimd ../build/kms/etsi014.o ../build/kms/wipe.o \
	../build/kms/e14cli.o >/dev/null
pk="libevent libevent_openssl openssl jansson sqlite3"
# shellcheck disable=SC2046,SC2086
cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -D_GNU_SOURCE -I "$top/kms" $(pkg-config --cflags $pk) \
	-o "$bin" "$top/bench/e14bench.c" "$top/build/kms/etsi014.o" "$top/build/kms/wipe.o" \
	"$top/build/kms/e14cli.o" \
	$(pkg-config --libs $pk)

T=$(mktemp -d /tmp/e14bench.XXXXXX)
sim=
stop_sim() {
	if [ -n "$sim" ] && kill "$sim" 2>/dev/null; then
		wait "$sim" 2>/dev/null || true
	fi
	sim=
}
# shellcheck disable=SC2317
cleanup() {
	stop_sim
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$top/scripts/mkpki.sh" "$T/pki" 127.0.0.1 sae-a sae-b
# Port 0: kmesimd binds free ports itself and names them. A million keys a store: the
# key_ID table (2 x max-key-count + 1024 entries) never evicts within a run.
"$top/build/kms/kmesimd" -a 127.0.0.1:0 -b 127.0.0.1:0 --cert "$T/pki/127.0.0.1.crt" \
	--key "$T/pki/127.0.0.1.key" --ca "$T/pki/ca.crt" --rate 0 --max-key-count 1000000 \
	--max-keys-per-request 128 -l "$T/kmesimd.log" &
sim=$!
for _ in $(seq 100); do
	grep -q 'listening on A=' "$T/kmesimd.log" 2>/dev/null && break
	kill -0 "$sim" 2>/dev/null || break
	sleep 0.05
done
addr=$(sed -n 's/.*listening on A=\([^ ]*\) B=\([^ ]*\).*/\1 \2/p' "$T/kmesimd.log")
if [ -z "$addr" ]; then
	echo "e14.sh: kmesimd did not start:" >&2
	cat "$T/kmesimd.log" >&2
	exit 1
fi
read -r kme_a kme_b <<<"$addr"

run() {
	"$bin" --kme-a "https://$kme_a" --kme-b "https://$kme_b" --ca "$T/pki/ca.crt" \
		--cert-a "$T/pki/sae-a.crt" --key-a "$T/pki/sae-a.key" \
		--cert-b "$T/pki/sae-b.crt" --key-b "$T/pki/sae-b.key" \
		--master-sae sae-a --slave-sae sae-b --server-pid "$sim" "$@"
}
: >"$T/lines"
rc=0
# 8 loops; for 32 KiB keys 4 loops in 2 client processes: parsing a 44 KB JSON answer
# (jansson, base64) costs the SAE about twice what formatting it costs the KME, and one
# client process would be the bottleneck.
for args in "--size 256 --number 1 --conns 8 --seconds $secs" \
	"--size 256 --number 64 --conns 8 --seconds 3" \
	"--size 262144 --number 1 --conns 4 --procs 2 --seconds $secs"; do
	# shellcheck disable=SC2086
	if run $args | tee -a "$T/lines"; then :; else
		rc=1
		echo "e14.sh: e14bench $args failed" >&2
	fi
done
stop_sim
grep -E 'stats|error|warn' "$T/kmesimd.log" | sed 's/^/e14.sh: kmesimd: /' >&2 || true

python3 - "$T/lines" "$out/e14.csv" <<'PY'
import csv, sys
cols = ["size", "number", "conns", "procs", "seconds", "rounds", "pairs", "pairs_per_s",
        "key_MBps", "p50_ms", "p99_ms", "client_cpu", "server_cpu"]
rows = []
for line in open(sys.argv[1]):
    if line.startswith("e14bench:"):
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        rows.append([kv.get(c, "") for c in cols])
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["size_bits" if c == "size" else c for c in cols])
    w.writerows(rows)
PY
exit $rc
