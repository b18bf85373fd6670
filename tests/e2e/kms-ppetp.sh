#!/usr/bin/env bash
# Key distribution of PPETP transfer keys: two gateways whose kmsd share no quantum link
# get their ring keys through a relay (the paper's star, Fig. 1, with A in the middle):
#
#  client ---- encC ========= mid ========= encS ---- server
#              kmsd kms-b     kmsd kms-a    kmsd kms-c
#                 \ end b   a / (relay)  \ a   end b /
#                  +- qkdsimd A-B -+      +- qkdsimd A-C -+
#              peer 2 = encS                     peer 1 = encC
#
# kms-b and kms-c are `remote`s of each other (a direct TLS session over mid, no quantum
# link) with qotp-peer: every ring block is a key that one of them transferred to the
# other through kms-a by key transfer + PPETP, then offered (source PPETP, ref = txid) and
# pushed into both kernels. The kernel's ring counters equal what each kmsd delivered and
# kms-a's relay counters moved; after kill -9 + restart of kms-c (rings full) the kernel
# never refuses an id, a byte-exact transfer on port 1935 crosses both gateways, and the
# blocks pushed before the kill are consumed in the store when the kernel releases them
# (the pushed-block map is persistent).
# About 4 to 4.5 min at load average ~3; more when the machine is busier:
# qotp-timeout: 720
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
SIZE=${QOTP_DIST_SIZE:-200000}
PPETP_WM=32768 PPETP_TARGET=131072
. "$(dirname "$0")/kms-ppetp.inc"
wait_for 60 settled || fail "offers and transfers settle"
bo=$(pair kms-b delivered_out_bytes); bi=$(pair kms-b delivered_in_bytes)
co=$(pair kms-c delivered_out_bytes); ci=$(pair kms-c delivered_in_bytes)
kbe=$(ring encC 2 encrypt pushed); kbd=$(ring encC 2 decrypt pushed)
kce=$(ring encS 1 encrypt pushed); kcd=$(ring encS 1 decrypt pushed)
note "kms-b out $bo in $bi; kms-c out $co in $ci; kernel encC $kbe/$kbd encS $kce/$kcd"
check "encC encrypt ring pushed = kms-b delivered out ($kbe)" test "$kbe" = "$bo"
check "encC decrypt ring pushed = kms-b delivered in ($kbd)" test "$kbd" = "$bi"
check "encS encrypt ring pushed = kms-c delivered out ($kce)" test "$kce" = "$co"
check "encS decrypt ring pushed = kms-c delivered in ($kcd)" test "$kcd" = "$ci"
check "b->c: what encC encrypts with, encS holds to decrypt" test "$kbe" = "$kcd"
check "c->b: what encS encrypts with, encC holds to decrypt" test "$kce" = "$kbd"
check "every ring byte came through a committed transfer (kms-b: $bo <= $(pp kms-b bytes_committed))" \
	test "$bo" -le "$(pp kms-b bytes_committed)" -a "$co" -le "$(pp kms-c bytes_committed)"

# kill -9 of kms-c with both rings full: restarted, it never makes the kernel refuse an id,
# the rings keep filling, and the data path works through both gateways.
eo=$(ring encS 1 encrypt last_id); ei=$(ring encS 1 decrypt last_id)
check "kill -9 kms-c" kill -9 "$(cat "$T/kms-c.pid")"
wait_for 10 bash -c "! ip netns exec $(nsname encS) ss -tlnH 'sport = :7000' | grep -q ."
sleep 1
b0=$(ring encC 2 encrypt pushed); c0=$(ring encS 1 encrypt pushed)
bg kmsc2 nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-c.conf"
check "restarted kms-c resumes distribution" wait_for 30 grep -q 'key distribution to qotp peer' "$T/kmsc2.log"
$H mkdata "$T/data" "$SIZE"
bg srv nsx server $HS serve 10.78.2.2 1935 "$T/data"
wait_port server 1935 || fail "server listens"
check "1935 upload byte-exact through both gateways" nsx client $H up 10.78.2.2 1935 "$T/data"
check "1935 download byte-exact through both gateways" nsx client $H down 10.78.2.2 1935 "$T/data"
check "encC encrypted bytes counted" test "$(stat encC 2 enc_bytes)" -ge "$SIZE"
check "encS decrypted bytes counted" test "$(stat encS 1 dec_bytes)" -ge "$SIZE"
more() { [ "$(ring encC 2 encrypt pushed)" -gt "$b0" ] && [ "$(ring encS 1 encrypt pushed)" -gt "$c0" ]; }
check "both encrypt rings refilled after the restart" wait_for 60 more
check "refilled past the first fill (LOW_WATERMARK refills: kms-b $(pair kms-b delivered_out_bytes) B)" \
	test "$(pair kms-b delivered_out_bytes)" -ge "$SIZE"
check "no id refused by the kernel after the restart" \
	bash -c "! grep -E 'push (encrypt|decrypt) id' '$T/kmsb.log' '$T/kmsc.log' '$T/kmsc2.log'"
same_last() {
	[ "$(ring encC 2 encrypt last_id)" = "$(ring encS 1 decrypt last_id)" ] &&
		[ "$(ring encS 1 encrypt last_id)" = "$(ring encC 2 decrypt last_id)" ]
}
check "same last ids across the pair after the restart" wait_for 30 same_last
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc
note "transfers: kms-b $(pp kms-b committed) committed, $(pp kms-b latency_ms_per_hop) ms per hop; kms-a relayed $(pp kms-a relayed)"

# Blocks pushed before the kill are released by the kernel afterwards: the restarted kms-c
# finds them in its persisted pushed-block map and consumes (wipes) their transfer keys.
# Once offers settle, every delivered transfer key is a block the kernel still holds.
q() { sqlite3 -cmd '.timeout 5000' "$T/kms-c.db" "$1"; }
check "pre-kill blocks released after the restart left no map entry (ids <= $eo / $ei)" \
	wait_for 60 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$T/kms-c.db' \
		'SELECT count(*) FROM dist_map WHERE (dir=0 AND ring_id<=$eo) OR (dir=1 AND ring_id<=$ei)')\" = 0 ]"
balanced() {
	settled && [ "$(q 'SELECT count(*) FROM xfer WHERE state=4')" = "$(q 'SELECT count(*) FROM dist_map')" ]
}
check "kms-c: delivered transfer keys = blocks in the kernel's rings ($(q 'SELECT count(*) FROM xfer WHERE state=4') / $(q 'SELECT count(*) FROM dist_map'))" \
	wait_for 30 balanced
check "kms-c: consumed transfer keys hold no bytes" \
	test "$(q 'SELECT count(*) FROM xfer WHERE state=5 AND key IS NOT NULL')" = 0

finish
