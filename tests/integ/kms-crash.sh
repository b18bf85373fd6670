#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# kill -9 of either kmsd in the middle of caching rounds, then restart:
#
#   kmsd kms-a (leader) <== TLS ==> kmsd kms-b (follower)     qkdsimd at 8 Mbit/s
#        ^ kill -9, restart               ^ kill -9, restart   (three times each)
#
# No verified block may be lost (every block verified at a kill is still verified at the
# end, at both ends), and both stores must converge to the same verified blocks.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a "fresh-max-age 10"
write_conf kms-b kms-a "$PB" "$PA" b "fresh-max-age 10"
start_qkdsim -r 8000000 -b 2048
start_kmsd kms-a
start_kmsd kms-b
wait_for 15 '[ "$(link_field kms-a verified_total)" -gt 50 ]' || fail "caching did not start"

: >"$T/snap"
for i in 1 2 3; do
	for node in kms-b kms-a; do
		var=PID_${node//-/}
		before=$(link_field kms-a rounds 2>/dev/null || echo 0)
		# kill while rounds are flowing: wait for at least three new rounds first
		wait_for 10 "[ \"\$(link_field kms-a rounds 2>/dev/null || echo 0)\" -ge $((before + 3)) ]"
		kill -9 "${!var}"
		wait "${!var}" 2>/dev/null
		sql "$node" "SELECT id FROM blocks WHERE state=2" >>"$T/snap"
		start_kmsd "$node"
		check "round $i: $node restarted after kill -9 and the link is back" \
			wait_for 20 '[ "$(link_field kms-a connected)" = true ]'
	done
done
check "caching continues after the restarts" \
	wait_for 20 '[ "$(link_field kms-a verified_total)" -gt 200 ]'

kill -USR1 "$QKD_PID"
check "both stores settle (orphans expire after 10 s)" \
	wait_for 60 '[ "$(count_state kms-a 0,1)" -eq 0 ] && [ "$(count_state kms-b 0,1)" -eq 0 ]'
kill -TERM "$PID_kmsa" "$PID_kmsb"
wait "$PID_kmsa" "$PID_kmsb"

sql kms-a "SELECT id, hex(key) FROM blocks JOIN block_keys USING(link,id) WHERE state=2 ORDER BY id" >"$T/a.ver"
sql kms-b "SELECT id, hex(key) FROM blocks JOIN block_keys USING(link,id) WHERE state=2 ORDER BY id" >"$T/b.ver"
n=$(wc -l <"$T/a.ver")
check "both stores hold the same verified blocks, byte for byte ($n)" cmp -s "$T/a.ver" "$T/b.ver"
sort -u "$T/snap" >"$T/snap.ids"
cut -d'|' -f1 "$T/a.ver" | sort >"$T/a.ids"
lost=$(comm -23 "$T/snap.ids" "$T/a.ids" | wc -l)
check "no block verified before a kill was lost ($(wc -l <"$T/snap.ids") checked, $lost lost)" \
	test "$lost" -eq 0
check "no block is verified at one end and discarded at the other" test "$(
	sql kms-a "SELECT id FROM blocks WHERE state=6" | sort >"$T/a.disc"
	sql kms-b "SELECT id FROM blocks WHERE state=2" | sort | comm -12 - "$T/a.disc" | wc -l)" -eq 0
check "no round left a lock behind" test "$(count_state kms-a 1)/$(count_state kms-b 1)" = 0/0
finish
