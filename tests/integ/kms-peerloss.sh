#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A peer that vanishes mid-operation (SIGSTOP: no FIN, no RST, just silence):
#
#   kmsd kms-a (leader) <== TLS ==> kmsd kms-b   <-- SIGSTOP, later SIGCONT
#          \________ qkdsimd ________/
#
# The leader must notice through the keepalive, release the locks of its round, show the
# link down with the reason, and reconnect once the peer is back; the stores still agree.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a
write_conf kms-b kms-a "$PB" "$PA" b
start_qkdsim -r 8000000
start_kmsd kms-a
start_kmsd kms-b
check "caching runs" wait_for 30 '[ "$(link_field kms-a verified_total)" -ge 50 ]'

kill -STOP "$PID_kmsb"
check "leader drops the silent peer after 3 keepalive intervals" \
	wait_for 15 'grep -q "closing: keepalive timeout" "$T/kms-a.log"'
check "kmsctl shows the link down with the reason" \
	wait_for 5 'kmsctl kms-a links | grep -q "peer: down, last error: keepalive timeout"'
check "no block stays locked at the leader" test "$(count_state kms-a 1)" -eq 0
kill -CONT "$PID_kmsb"
check "the link comes back after the peer resumes" \
	wait_for 20 '[ "$(link_field kms-a connected)" = true ] && [ "$(link_field kms-a connects)" -ge 2 ]'
v=$(link_field kms-a verified_total)
check "caching resumes" wait_for 20 "[ \"\$(link_field kms-a verified_total)\" -gt $v ]"

kill -USR1 "$QKD_PID"
stores_agree 20
finish
