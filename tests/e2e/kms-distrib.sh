#!/usr/bin/env bash
# Key distribution kmsd -> kernel over a direct quantum link, two gateways (dp-topo.inc):
#
#  client ---- encC ====== mid ====== encS ---- server
#              kmsd kms-c <== TLS over mid ==> kmsd kms-s
#                 \ end a                    end b /
#                  +-------- qkdsimd (unix) ------+
#              peer 2 = encS                 peer 1 = encC
#
# No qotpctl push: each kmsd fills the encrypt ring of its encryptor and the decrypt ring
# of the other's with the same blocks and ids, from verified link key. A byte-exact
# transfer on port 1935 crosses both gateways, and the kernel's ring counters equal what
# each kmsd says it delivered.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
SIZE=${QOTP_DIST_SIZE:-800000}
kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" --json pairs; }

dp_topo

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-c kms-s >/dev/null || fail "test PKI"
# conf NODE PEER MYADDR PEERADDR END QOTP_PEER
conf() {
	kms_conf "$1" "$3" "keepalive 3" "dist-low-watermark 131072" "dist-target 524288" \
		"neighbour $2 address $4:7000 qkd-sim unix:$T/qkd.sock end $5 qotp-peer $6"
}
conf kms-c kms-s 10.78.0.1 10.78.9.1 a 2
conf kms-s kms-c 10.78.9.1 10.78.0.1 b 1
bg qkd "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd.sock" -r 16000000 -b 4096
wait_for 10 grep -q "listening on" "$T/qkd.log" || fail "qkdsimd listens"
bg kmsc nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-c.conf"
bg kmss nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-s.conf"

# kmsd starts before the module exists: it keeps running and retries.
check "kmsd without the module says so and keeps running" wait_for 20 bash -c \
	"grep -q 'the qotp module is not loaded; retrying' '$T/kmsc.log' && kill -0 $PID_kmsc"
check "kmsctl pairs: module not loaded" bash -c \
	"$QOTP_BIN/kmsctl -s $T/kms-c.sock pairs | grep -q '^kernel: module not loaded'"
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
check "encC: gateway mode on 1935" nsx encC "$qotpctl" set ports 1935 mode gateway low-watermark 131072
check "encS: gateway mode on 1935" nsx encS "$qotpctl" set ports 1935 mode gateway low-watermark 131072
check "encC: peer 2" nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64
check "encS: peer 1" nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64
# pair NODE FIELD
pair() { kmsctl "$1" | jq -r --arg f "$2" '.pairs[0][$f]'; }
filled() { [ "$(ring encC 2 encrypt avail)" -ge 131072 ] && [ "$(ring encS 1 encrypt avail)" -ge 131072 ]; }

check "both kmsd connect to the kernel" wait_for 20 bash -c \
	"grep -q 'key distribution to qotp peer' '$T/kmsc.log' && grep -q 'key distribution to qotp peer' '$T/kmss.log'"
check "rings fill from kmsd (>= 128 KiB each way)" wait_for 60 filled
note "encC encrypt $(ring encC 2 encrypt avail) B, encS encrypt $(ring encS 1 encrypt avail) B"

$H mkdata "$T/data" "$SIZE"
bg srv nsx server $HS serve 10.78.2.2 1935 "$T/data"
wait_port server 1935 || fail "server listens"
check "1935 upload byte-exact through both gateways" nsx client $H up 10.78.2.2 1935 "$T/data"
check "1935 download byte-exact through both gateways" nsx client $H down 10.78.2.2 1935 "$T/data"
check "encC encrypted bytes counted" test "$(stat encC 2 enc_bytes)" -ge "$SIZE"
check "encS decrypted bytes counted" test "$(stat encS 1 dec_bytes)" -ge "$SIZE"

# Compare the kernel with kmsd once refills settle (no offer in flight). No offer in flight
# is not the end of refilling (a ring still below its target gets more once caching
# verifies more), and the values are read one at a time: take snapshots until one is
# consistent, for up to 60 s; the checks below then report the last one.
settled() { [ "$(pair kms-c inflight)" = 0 ] && [ "$(pair kms-s inflight)" = 0 ]; }
snapshot() {
	co=$(pair kms-c delivered_out_bytes); ci=$(pair kms-c delivered_in_bytes)
	so=$(pair kms-s delivered_out_bytes); si=$(pair kms-s delivered_in_bytes)
	kce=$(ring encC 2 encrypt pushed); kcd=$(ring encC 2 decrypt pushed)
	kse=$(ring encS 1 encrypt pushed); ksd=$(ring encS 1 decrypt pushed)
	settled && [ "$kce" = "$co" ] && [ "$kcd" = "$ci" ] && [ "$kse" = "$so" ] && [ "$ksd" = "$si" ] &&
		[ "$kce" = "$ksd" ] && [ "$kse" = "$kcd" ] &&
		[ "$(ring encC 2 encrypt last_id)" = "$(ring encS 1 decrypt last_id)" ]
}
check "offers settle" wait_for 20 settled
wait_for 60 snapshot
note "kms-c out $co in $ci; kms-s out $so in $si; kernel encC $kce/$kcd encS $kse/$ksd"
check "encC encrypt ring pushed = kms-c delivered out ($kce)" test "$kce" = "$co"
check "encC decrypt ring pushed = kms-c delivered in ($kcd)" test "$kcd" = "$ci"
check "encS encrypt ring pushed = kms-s delivered out ($kse)" test "$kse" = "$so"
check "encS decrypt ring pushed = kms-s delivered in ($ksd)" test "$ksd" = "$si"
check "c->s: what encC encrypts with, encS holds to decrypt" test "$kce" = "$ksd"
check "s->c: what encS encrypts with, encC holds to decrypt" test "$kse" = "$kcd"
check "last ids agree (encC encrypt / encS decrypt)" test \
	"$(ring encC 2 encrypt last_id)" = "$(ring encS 1 decrypt last_id)"
check "refilled past the first target (LOW_WATERMARK refills)" test "$co" -gt 524288
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc
check "no push refused by the kernel" \
	bash -c "! grep -E 'push (encrypt|decrypt) id' '$T/kmsc.log' '$T/kmss.log'"

# kill -9 of one kmsd: restarted, it starts above every id it ever used or the kernel
# holds, so the kernel never refuses an id, and the rings keep filling.
# (bg's pid is the subshell around `ip netns exec`: kill kmsd itself, by its pidfile)
check "kill -9 kms-s" kill -9 "$(cat "$T/kms-s.pid")"
wait_for 10 bash -c "! ip netns exec $(nsname encS) ss -tlnH 'sport = :7000' | grep -q ."
sleep 1
co0=$(ring encC 2 encrypt pushed); so0=$(ring encS 1 encrypt pushed)
bg kmss2 nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-s.conf"
check "restarted kms-s resumes distribution" wait_for 30 grep -q 'key distribution to qotp peer' "$T/kmss2.log"
check "1935 upload byte-exact after the restart" nsx client $H up 10.78.2.2 1935 "$T/data"
check "1935 download byte-exact after the restart" nsx client $H down 10.78.2.2 1935 "$T/data"
more() { [ "$(ring encC 2 encrypt pushed)" -gt "$co0" ] && [ "$(ring encS 1 encrypt pushed)" -gt "$so0" ]; }
check "both encrypt rings refilled after the restart" wait_for 30 more
check "no id refused by the kernel after the restart" \
	bash -c "! grep -E 'push (encrypt|decrypt) id' '$T/kmsc.log' '$T/kmss2.log'"
same_last() {
	[ "$(ring encC 2 encrypt last_id)" = "$(ring encS 1 decrypt last_id)" ] &&
		[ "$(ring encS 1 encrypt last_id)" = "$(ring encC 2 decrypt last_id)" ]
}
check "same last ids across the pair after the restart" wait_for 20 same_last
finish
