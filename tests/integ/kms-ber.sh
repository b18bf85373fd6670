#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Bit errors on one end of the quantum link (an eavesdropper model):
#
#   kmsd kms-a <==== TLS ====> kmsd kms-b
#        \ end a                end b (bit error rate 1e-5) /
#         +------------------ qkdsimd (TCP) ----------------+
#
# Mismatched blocks must be found by the keyed-hash comparison, discarded at both ends
# (bytes wiped) and counted; only identical blocks may ever become verified.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
QKD_SPEC=tcp:127.0.0.1:$(free_port)	# the simulator over TCP here, UNIX sockets elsewhere
write_conf kms-a kms-b "$PA" "$PB" a
write_conf kms-b kms-a "$PB" "$PA" b
# 1e-5 per bit over 4096-byte blocks: about 28% of the blocks carry an error.
start_qkdsim -r 8000000 -b 4096 -e 0.00001 -E b
start_kmsd kms-a
start_kmsd kms-b

# At least 300 blocks judged before the rate is read: stopping at the 20th mismatch alone
# would bias the rate upwards (about 1 run in 400 would read 0.5 or more).
judged() {
	local m v
	m=$(link_field kms-a mismatched_total) && v=$(link_field kms-a verified_total) &&
		[ "$m" -ge 20 ] && [ $((m + v)) -ge 300 ]
}
check "mismatches are detected (20 blocks of 300 or more)" wait_for 60 judged
kill -USR1 "$QKD_PID"
check "rounds settle after the link stops" \
	wait_for 20 '[ "$(count_state kms-a 0,1)" -eq 0 ] && [ "$(count_state kms-b 0,1)" -eq 0 ]'
rate=$(link_field kms-a mismatch_rate)
kmsctl kms-b links >"$T/links.txt"
check "kmsctl shows the mismatch rate" grep -q "mismatch rate: [0-9.]*% ([1-9][0-9]* of" "$T/links.txt"
check "mismatch rate plausible for BER 1e-5 (got $rate, expect ~0.28)" \
	python3 -c "import sys; sys.exit(not 0.1 < float('$rate') < 0.5)"
kill -TERM "$PID_kmsa" "$PID_kmsb"
wait "$PID_kmsa" "$PID_kmsb"

stores_dump kms-a kms-b >"$T/a.dump"
stores_dump kms-b kms-a >"$T/b.dump"
check "both ends agree on every verdict and every verified byte" cmp -s "$T/a.dump" "$T/b.dump"
ma=$(sql kms-a "SELECT mismatched FROM counters"); mb=$(sql kms-b "SELECT mismatched FROM counters")
check "both ends counted the same mismatches ($ma/$mb)" test "$ma" = "$mb"
check "discarded blocks hold no key bytes at either end" \
	test "$(sql kms-a "SELECT count(*) FROM blocks JOIN block_keys USING(link,id) WHERE state=6")/$(sql kms-b "SELECT count(*) FROM blocks JOIN block_keys USING(link,id) WHERE state=6")" = 0/0
check "discarded blocks are as many as counted" \
	test "$(count_state kms-a 6)" = "$ma"
check "some blocks still verified" test "$(count_state kms-a 2)" -gt 0
finish
