#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# kmsd's own ETSI GS QKD 014 KME (northbound, kms/nbkme.c) under bench/e14bench: two kmsd,
# quantum neighbours over qkdsimd at 16 Mbit/s (a high but realistic QKD rate; at memory
# speed key caching takes most of both loops: 220 pairs/s, p50 32 ms, 2026-12-07), each an ETSI 014 KME for one SAE;
# e14bench is the master SAE at kms-a and the slave SAE at kms-b. Unlike kmesimd (bench/e14.sh)
# every request crosses the peer channel (MSG_SAE) and commits to both stores (fsync) before
# it is answered. Prints the e14bench lines with "kme=kmsd" (256-bit keys, 1 and 64 a
# request, 8 loops) and appends them to OUT/e14.csv if it exists.
#   bench/nbkme.sh [OUT]     (E14_SECONDS: per run, default 5)   About 25 s.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/bench/results}
secs=${E14_SECONDS:-5}
bin=$top/build/bench/e14bench
QOTP_TOP=$top QOTP_BIN=${QOTP_BIN:-$top/build/kms}
make -s -C "$top/kms" >/dev/null || exit 1
[ -x "$bin" ] || { echo "nbkme.sh: $bin missing (bench/e14.sh builds it)" >&2; exit 1; }
. "$top/tests/integ/kms-lib.sh"

"$top/scripts/mkpki.sh" "$T/pki" 127.0.0.1 sae-a sae-b >/dev/null
PA=$(free_port); PB=$(free_port); KA=$(free_port); KB=$(free_port)
kme() {
	echo "etsi014-listen 127.0.0.1:$1 cert $T/pki/127.0.0.1.crt key $T/pki/127.0.0.1.key" \
		"ca $T/pki/ca.crt"
	echo "sae sae-a node kms-a"
	echo "sae sae-b node kms-b"
}
write_conf kms-a kms-b "$PA" "$PB" a "$(kme "$KA")"
write_conf kms-b kms-a "$PB" "$PA" b "$(kme "$KB")"
start_qkdsim -r 16000000
start_kmsd kms-a
start_kmsd kms-b
wait_for 30 '[ "$(link_field kms-a verified_total)" -ge 100 ]' ||
	{ echo "nbkme.sh: no verified key on the link" >&2; exit 1; }
rc=0
for args in "--number 1" "--number 64"; do
	# shellcheck disable=SC2086
	line=$("$bin" --kme-a "https://127.0.0.1:$KA" --kme-b "https://127.0.0.1:$KB" \
		--ca "$T/pki/ca.crt" --cert-a "$T/pki/sae-a.crt" --key-a "$T/pki/sae-a.key" \
		--cert-b "$T/pki/sae-b.crt" --key-b "$T/pki/sae-b.key" --master-sae sae-a \
		--slave-sae sae-b --size 256 --conns 8 --seconds "$secs" --server-pid "$PID_kmsa" \
		$args) || { rc=1; echo "nbkme.sh: e14bench $args failed: $line" >&2; continue; }
	echo "$line kme=kmsd"
done
kmsctl kms-a saes | sed 's/^/nbkme.sh: kms-a: /' >&2
exit $rc
