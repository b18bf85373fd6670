#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key transfer + PPETP relay throughput through 1, 2 and 3 trusted hops, on loopback:
#
#   kms-a ==== kms-b ==== kms-c ==== kms-d ==== kms-x      ==== quantum link (qkdsimd)
#     \- - - - - remote sessions (TLS) to c, d, x - - - -/
#
# A transfers BYTES of fresh key to C (relayed by B), D (B, C) and X (B, C, D). Every
# transfer consumes one verified link block on every hop; qkdsimd runs at memory speed, so
# every kmsd is also busy with key caching and intake all along (the "full caching load" of
# the figures) and the figure is the key plane's own (TLS round trips, store commits with
# fsync, relay hops), not the QKD rate. Three measurements, each destination alternated in
# rounds so load on the shared machine hits them alike:
#   - link: verified key of the link A-B per second while nothing is transferred (3 s);
#   - latency: one transfer after the other, SECONDS per destination in all;
#   - rate: PARALLEL transfers in flight at once (one kmsctl loop each), SECONDS per
#     destination in all; key bytes committed at A per second of wall time.
#   [KMS_RELAY_QKD_RATE=bit/s] bench/kms-relay.sh [seconds] [bytes] [parallel]
# (KMS_RELAY_QKD_RATE: every link's QKD rate instead of memory speed, for the case of a
# realistic QKD rate, where caching is not the load)
# prints "relay: link key_bytes_per_s R", then per hop count
# "relay: hops H transfers N ms_median M ms_p90 P" and
# "relay: hops H parallel K transfers N key_bytes_per_s R".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-6}
len=${2:-32768}
par=${3:-8}
rate=${KMS_RELAY_QKD_RATE:-0}	# bit/s of every link's qkdsimd; 0: memory speed
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
for q in qkd-ab qkd-bc qkd-cd qkd-dx; do start_qkdsim_named "$q" -r "$rate" -b $((len + 64)); done
for n in a b c d x; do start_kmsd "kms-$n"; done

st() { kmsctl "$1" --json status 2>/dev/null | jq -r "$2"; }
wait_for 30 '[ "$(st kms-a .routes_reachable)" = 4 ] && [ "$(st kms-a .remotes_up)" = 3 ]' ||
	{ echo "relay: the chain did not come up" >&2; exit 1; }
sleep 2		# some verified key on every link before the first transfer

# link: verified key bytes per second on A-B (each block holds len key bytes after its tag)
v0=$(link_field kms-a verified_total); t0=$(date +%s%N)
sleep 3
v1=$(link_field kms-a verified_total); t1=$(date +%s%N)
echo "relay: link key_bytes_per_s $(( (v1 - v0) * len * 1000000000 / (t1 - t0) ))"

# one transfer at a time until second $2 (SECONDS); appends each one's ms to file $3
loop() {
	local out
	while [ $SECONDS -lt "$2" ]; do
		out=$(kmsctl kms-a --json transfer "$1" "$len" 2>&1)
		if [[ $out =~ \"ms\":([0-9]+) ]]; then
			echo "${BASH_REMATCH[1]}" >>"$3"
		else
			# no verified block yet on some hop: caching refills at its own pace
			echo x >>"$3.refused"
			sleep 0.05
		fi
	done
}
dsts=(kms-c kms-d kms-x)
for round in 1 2 3; do
	for d in "${dsts[@]}"; do
		loop "$d" $((SECONDS + secs / 3 + 1)) "$T/lat-$d"
	done
done
for round in 1 2 3; do
	for d in "${dsts[@]}"; do
		end=$((SECONDS + secs / 3 + 1)); s=$(date +%s%N)
		pids=()
		for ((i = 0; i < par; i++)); do
			loop "$d" "$end" "$T/par-$d" &
			pids+=($!)
		done
		wait "${pids[@]}"	# not a bare wait: the kmsd are our children too
		echo $(( ($(date +%s%N) - s) / 1000000 )) >>"$T/wall-$d"
	done
done
hops=0 fails=0
for d in "${dsts[@]}"; do
	hops=$((hops + 1))
	touch "$T/lat-$d" "$T/par-$d" "$T/wall-$d"
	sort -n "$T/lat-$d" | awk -v h=$hops '{ v[NR] = $1 } END {
		if (!NR) { print "relay: hops " h " transfers 0"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = int(NR * 0.9) + 1; if (p > NR) p = NR
		printf "relay: hops %d transfers %d ms_median %.1f ms_p90 %.1f\n", h, NR, m, v[p] }'
	n=$(wc -l <"$T/par-$d"); wall=$(awk '{ s += $1 } END { print s + 0 }' "$T/wall-$d")
	echo "relay: hops $hops parallel $par transfers $n key_bytes_per_s $((wall ? n * len * 1000 / wall : 0))"
	fails=$((fails + $(cat "$T"/*-"$d".refused 2>/dev/null | wc -l)))
done
echo "relay: $fails refused attempts (no verified link block ready on a hop; retried)"
st kms-a .ppetp | jq -c . | sed 's/^/relay: kms-a ppetp /'
