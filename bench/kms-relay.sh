#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key transfer + PPETP relay throughput through 1, 2 and 3 trusted hops, on loopback:
#
#   kms-a ==== kms-b ==== kms-c ==== kms-d ==== kms-x      ==== quantum link (qkdsimd)
#     \- - - - - remote sessions (TLS) to c, d, x - - - -/
#
# A transfers BYTES of fresh key to C (relayed by B), D (B, C) and X (B, C, D), one
# transfer after the other for SECONDS per destination, destinations alternated in rounds
# so load on the shared machine hits them alike. Every transfer consumes one verified link
# block on every hop; qkdsimd runs at memory speed, so the figure is the key plane's own
# (TLS round trips, store commits with fsync, relay hops), not the QKD rate.
#   bench/kms-relay.sh [seconds] [bytes]
# prints "relay: hops H transfers N key_bytes_per_s R ms_median M" per hop count.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-6}
len=${2:-32768}
QOTP_TOP=$top QOTP_BIN=${QOTP_BIN:-$top/build/kms}
make -s -C "$top/kms" >/dev/null || exit 1
. "$top/tests/integ/kms-lib.sh"

PA=$(free_port); PB=$(free_port); PC=$(free_port); PD=$(free_port); PX=$(free_port)
nb() { echo "neighbour $1 address 127.0.0.1:$2 qkd-sim unix:$T/$3.sock end $4"; }
rem() { echo "remote $1 address 127.0.0.1:$2"; }
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a "$(rem kms-c "$PC")" \
	"$(rem kms-d "$PD")" "$(rem kms-x "$PX")"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b "$(nb kms-c "$PC" qkd-bc a)"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b "$(nb kms-d "$PD" qkd-cd a)" "$(rem kms-a "$PA")"
QKD_SPEC=unix:$T/qkd-cd.sock write_conf kms-d kms-c "$PD" "$PC" b "$(nb kms-x "$PX" qkd-dx a)" "$(rem kms-a "$PA")"
QKD_SPEC=unix:$T/qkd-dx.sock write_conf kms-x kms-d "$PX" "$PD" b "$(rem kms-a "$PA")"
# Blocks just large enough for one transfer (64 bytes of each go to the verification tag).
for q in qkd-ab qkd-bc qkd-cd qkd-dx; do start_qkdsim_named "$q" -r 0 -b $((len + 64)); done
for n in a b c d x; do start_kmsd "kms-$n"; done

st() { kmsctl "$1" --json status 2>/dev/null | python3 -c "import json, sys; s = json.load(sys.stdin); print($2)"; }
wait_for 30 '[ "$(st kms-a "s[\"routes_reachable\"]")" = 4 ] && [ "$(st kms-a "s[\"remotes_up\"]")" = 3 ]' ||
	{ echo "relay: the chain did not come up" >&2; exit 1; }
sleep 2		# some verified key on every link before the first transfer

declare -A n ok_ms
for d in kms-c kms-d kms-x; do n[$d]=0; ok_ms[$d]=; done
fails=0
for round in 1 2 3; do
	for d in kms-c kms-d kms-x; do
		end=$((SECONDS + secs / 3 + 1))
		while [ $SECONDS -lt $end ]; do
			out=$(kmsctl kms-a --json transfer "$d" "$len" 2>&1) || {
				fails=$((fails + 1))
				# No verified block yet on some hop: caching refills at its own pace.
				sleep 0.05
				continue
			}
			ms=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["ms"])' "$out") || continue
			n[$d]=$((n[$d] + 1))
			ok_ms[$d]+="$ms "
		done
	done
done
hops=0
for d in kms-c kms-d kms-x; do
	hops=$((hops + 1))
	python3 - "$hops" "$len" "${n[$d]}" "${ok_ms[$d]}" <<'PY'
import statistics, sys
hops, ln, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ms = [int(x) for x in sys.argv[4].split()]
if not ms:
    print("relay: hops %d transfers 0" % hops)
    sys.exit(0)
# Throughput from the transfers' own durations (request to commit at A), back to back.
print("relay: hops %d transfers %d key_bytes_per_s %.0f ms_median %.1f ms_p90 %.1f" % (
    hops, n, n * ln / (sum(ms) / 1000.0) if sum(ms) else 0, statistics.median(ms),
    sorted(ms)[int(len(ms) * 0.9)]))
PY
done
echo "relay: $fails refused attempts (no verified link block ready on a hop; retried)"
st kms-a 's["ppetp"]' | sed 's/^/relay: kms-a ppetp /'
