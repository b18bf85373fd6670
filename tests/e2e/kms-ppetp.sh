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
kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" --json "${@:2}"; }

dp_topo

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-a kms-b kms-c >/dev/null || fail "test PKI"
# conf NODE MYADDR LINES...
conf() {
	local n=$1 a=$2; shift 2
	{
		cat <<EOF
node $n
listen $a:7000
tls-cert $T/pki/$n.crt
tls-key $T/pki/$n.key
tls-ca $T/pki/ca.crt
store $T/$n.db
control $T/$n.sock
pidfile $T/$n.pid
min-block-age-ms 100
round-interval-ms 50
keepalive 3
reconnect-max 1
dist-low-watermark 32768
dist-target 131072
ppetp-block 32000
EOF
		printf '%s\n' "$@"
	} >"$T/$n.conf"
}
conf kms-a 10.78.0.2 \
	"neighbour kms-b address 10.78.0.1:7000 qkd-sim unix:$T/qkd-ab.sock end a" \
	"neighbour kms-c address 10.78.9.1:7000 qkd-sim unix:$T/qkd-ac.sock end a"
conf kms-b 10.78.0.1 "neighbour kms-a qkd-sim unix:$T/qkd-ab.sock end b" \
	"remote kms-c address 10.78.9.1:7000 qotp-peer 2"
conf kms-c 10.78.9.1 "neighbour kms-a qkd-sim unix:$T/qkd-ac.sock end b" \
	"remote kms-b qotp-peer 1"
# 32 KiB QKD blocks: one transfer (one link block per hop) carries a 32000-byte ring block.
bg qab "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd-ab.sock" -r 16000000 -b 32768
bg qac "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd-ac.sock" -r 16000000 -b 32768
wait_for 10 bash -c "grep -q 'listening on' '$T/qab.log' && grep -q 'listening on' '$T/qac.log'" ||
	fail "qkdsimd listens"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
check "encC: gateway mode on 1935" nsx encC "$qotpctl" set ports 1935 mode gateway low-watermark 32768
check "encS: gateway mode on 1935" nsx encS "$qotpctl" set ports 1935 mode gateway low-watermark 32768
check "encC: peer 2" nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64
check "encS: peer 1" nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64
bg kmsa nsx mid "$QOTP_BIN/kmsd" -f -v -c "$T/kms-a.conf"
bg kmsb nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-b.conf"
bg kmsc nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-c.conf"

# pair NODE FIELD: from `kmsctl pairs` (one pair each)
pair() { kmsctl "$1" pairs | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pairs'][0]['$2'])"; }
# pp NODE FIELD: PPETP counter from `kmsctl status`
pp() { kmsctl "$1" status | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['ppetp']['$2'])"; }
# ring NS PEER DIR FIELD
ring() {
	nsx "$1" "$qotpctl" show --json | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(p["rings"][sys.argv[2]].get(sys.argv[3], 0) for p in d["peers"] if p["id"] == int(sys.argv[1])))' "$2" "$3" "$4"
}
filled() { [ "$(ring encC 2 encrypt avail)" -ge 32768 ] && [ "$(ring encS 1 encrypt avail)" -ge 32768 ]; }

check "kms-b and kms-c distribute PPETP transfer keys" wait_for 30 bash -c \
	"grep -q 'key distribution to qotp peer 2 from PPETP transfer keys' '$T/kmsb.log' &&
	 grep -q 'key distribution to qotp peer 1 from PPETP transfer keys' '$T/kmsc.log'"
check "kmsctl pairs says via ppetp" test "$(pair kms-b via) $(pair kms-c via)" = "ppetp ppetp"
check "rings fill from kmsd through the relay (>= 32 KiB each way)" wait_for 120 filled
note "encC encrypt $(ring encC 2 encrypt avail) B, encS encrypt $(ring encS 1 encrypt avail) B"
check "kms-a relayed for both ($(pp kms-a relayed) relays, $(pp kms-a relayed_bytes) B)" \
	test "$(pp kms-a relayed)" -ge 2
check "kms-a holds no transfer key and no pair" bash -c \
	"[ \"\$($QOTP_BIN/kmsctl -s $T/kms-a.sock --json transfers)\" = '{\"node\":\"kms-a\",\"keys\":[]}' ]"

settled() {
	[ "$(pair kms-b inflight)" = 0 ] && [ "$(pair kms-c inflight)" = 0 ] &&
		[ "$(pair kms-b xfer_inflight)" = 0 ] && [ "$(pair kms-c xfer_inflight)" = 0 ]
}
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
for n in "encC 2" "encS 1"; do
	for c in drop_csum drop_bad_desc drop_no_desc; do
		v=$(stat $n $c)
		[ "$v" = 0 ] && ok "${n% *}: $c = 0" || fail "${n% *}: $c = $v"
	done
done
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
