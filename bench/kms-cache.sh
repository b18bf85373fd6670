#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Verified key throughput of one link on loopback: qkdsimd at memory speed (rate 0) feeding
# two kmsd that run key caching over TLS; prints MB of verified key per second (the bytes
# that become usable key, after the 64 bytes per block spent on the tag). Every block is
# committed with fsync (synchronous=FULL) at both ends, so the figure depends on the disk.
#   bench/kms-cache.sh [seconds] [block-size] [round-blocks]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
bs=${2:-4096}
rb=${3:-256}
QOTP_TOP=$top QOTP_BIN=${QOTP_BIN:-$top/build/kms}
make -s -C "$top/kms" >/dev/null
. "$top/tests/integ/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a "round-blocks $rb" "min-block-age-ms 0" "round-interval-ms 10"
write_conf kms-b kms-a "$PB" "$PA" b "round-blocks $rb" "min-block-age-ms 0" "round-interval-ms 10"
start_qkdsim -r 0 -b "$bs"
start_kmsd kms-a
start_kmsd kms-b
wait_for 20 '[ "$(link_field kms-a connected)" = true ]' || { fail "link did not come up"; exit 1; }
sleep 1		# warm-up: the first rounds include connection setup
b0=$(link_field kms-a verified_total)
t0=$(date +%s.%N)
sleep "$secs"
b1=$(link_field kms-a verified_total)
t1=$(date +%s.%N)
kmsctl kms-a links
python3 - "$b0" "$b1" "$t0" "$t1" "$bs" "$rb" <<'PY'
import sys
b0, b1 = int(sys.argv[1]), int(sys.argv[2])
t0, t1, bs, rb = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
dt = t1 - t0
n = b1 - b0
key = n * (bs - 64)
print(f"kms-cache: {n} blocks of {bs} B verified in {dt:.1f} s, rounds of {rb} blocks")
print(f"kms-cache: verified key throughput {key / dt / 1e6:.2f} MB/s ({n / dt:.0f} blocks/s)")
PY
