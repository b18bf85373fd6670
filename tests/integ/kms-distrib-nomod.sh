#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key distribution configured (qotp-peer) on a host where the qotp module is not loaded:
# kmsd keeps running and caching, retries the kernel, `kmsctl pairs` says why nothing is
# delivered, and no verified block is taken out of the store for distribution.
. "$(dirname "$0")/kms-lib.sh"

if [ -d /sys/module/qotp ]; then
	echo "[SKIP] the qotp module is loaded on this host"
	exit 0
fi
PA=$(free_port); PB=$(free_port)
NB_EXTRA="qotp-peer 7" write_conf kms-a kms-b "$PA" "$PB" a "dist-low-watermark 8192" \
	"dist-target 65536"
NB_EXTRA="qotp-peer 9" write_conf kms-b kms-a "$PB" "$PA" b
check "kmsd --check-config accepts qotp-peer" "$QOTP_BIN/kmsd" -n -c "$T/kms-a.conf"

start_qkdsim -r 4000000 -b 4096
start_kmsd kms-a
start_kmsd kms-b
check "peer channel comes up" wait_for 15 '[ "$(link_field kms-a connected)" = true ]'
check "verified key accumulates (50 blocks)" wait_for 60 '[ "$(link_field kms-a verified_total)" -ge 50 ]'
check "kmsd logs the missing module" grep -q "the qotp module is not loaded; retrying" "$T/kms-a.log"
kmsctl kms-a pairs >"$T/pairs.txt"
check "kmsctl pairs: kernel module not loaded" grep -q "^kernel: module not loaded" "$T/pairs.txt"
check "kmsctl pairs: the pair waits" grep -q "^pair kms-b (qotp peer 7): waiting, peer up" "$T/pairs.txt"
j=$(kmsctl kms-b --json pairs)
check "kmsctl --json pairs is JSON with the pair" python3 -c '
import json, sys
v = json.loads(sys.argv[1])
p = v["pairs"][0]
assert v["kernel"] == "module not loaded", v
assert p["neighbour"] == "kms-a" and p["qotp_peer"] == 9 and p["active"] is False, p
assert p["delivered_out_bytes"] == 0 and p["delivered_in_bytes"] == 0, p' "$j"
sleep 3
check "nothing delivered from either store" test "$(count_state kms-a 4,5)/$(count_state kms-b 4,5)" = 0/0
check "logged once, not every retry" test "$(grep -c 'qotp module is not loaded' "$T/kms-a.log")" -eq 1
kill -TERM "$PID_kmsa" "$PID_kmsb"
wait "$PID_kmsa"; ra=$?
wait "$PID_kmsb"; rb=$?
check "both kmsd exit 0 on SIGTERM" test "$ra/$rb" = 0/0
finish
