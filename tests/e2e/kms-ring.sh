#!/usr/bin/env bash
# An RTMP stream between two sites that share no quantum link, in a ring of four sites,
# while a quantum link on the path its keys take is cut:
#
#              quantum links (qkdsimd):  A==B, B==C, C==D, D==A
#
#   client --- encA ---+                    +--- encC --- server
#   ffmpeg     kms-a   |   10.80.N.0/24     |    kms-c    nginx-rtmp :1935
#   10.81.0.2          +------ inet --------+             10.83.0.2
#              encB ---+  (tshark on eA,    +--- encD
#              kms-b       encA's link)          kms-d
#
# Every site is an encryptor netns running its kmsd; "inet" routes between them and carries
# the peer sessions and the ciphertext. kms-a and kms-c are `remote`s with qotp-peer: all
# ring keys of the pair encA <-> encC are PPETP transfer keys relayed by B or D. D starts
# only once A and C route to each other via B (ties keep the current next hop), so the
# keys' path is A-B-C. Mid-stream A's link to its next hop toward C, M (B; D if a session
# dropped since), is cut: its qkdsimd goes down (SIGUSR1) and inet resets every TCP segment
# between encA and M (the peer session that carries the link's key caching, routes and
# relays). Checks: A and C route to each other via the other relay O, metric 2, and M
# knows its link to A is down, within 60 s (the time is printed; M learns of
# the cut when it next sends to A: at worst its next keepalive, 10 s); from then on M relays
# nothing and O relays the pair's keys (a transfer asked for after the cut goes through
# O, and the stream after the cut outlives the stock encA's ring held at the cut: it runs
# on keys delivered since); every packet played back from behind encA equals
# the source (a 40 s 160x120 clip); tshark on inet dissects no RTMP and finds no plaintext
# marker; the kernel rings' pushed counters equal what kms-a and kms-c delivered, and each
# decrypt ring holds what the other side's encrypt ring holds (more only by offers that
# expired at the encryptor: an ACCEPT delayed by the cut); no id refused, no checksum or
# descriptor drops. (A PPETP attempt
# that times out is retried avoiding its first hop, so under load some keys may go
# through O before the cut too: the checks do not forbid it.)
# Measured 2026-11-27 with 3 to 5 other UML runs on the 2 shared cores (load average
# 5-12): 11 to 15 min, its stores then filling the UML's tmpfs; since they are capped
# (kms_conf) 5 to 10 min with one or two other UMLs beside it. Own limit, for busy machines:
# qotp-timeout: 1200
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
LIVE_CLIENT=client LIVE_SERVER=server LIVE_URL=rtmp://10.83.0.2/live LIVE_WIRE=inet
. "$(dirname "$0")/kms-stream.inc"
# 40 s: the stream must outlast routing's convergence after the cut (20 to 30 s on a
# busy machine: M learns of it at its next keepalive) and still need keys after it. An 18 s
# clip did while starved stores slowed its start; once they no longer filled the tmpfs it
# ended 5 s after the cut, D had nothing left to relay and "D relayed since the cut" failed.
SECS=40
WM=32768
# qkdsimd bit/s per link. 2 Mbit/s (250 KB/s, about 2.5 times the link key the stream's
# transfers take on each hop) starved the relays: with a loaded UML, caching verified too
# little key per round, hops rejected transfers (57 at kms-a), attempts timed out and encA
# dropped the publisher's first segments until the player gave up (0 packets played).
RATE=8000000
kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" --json "${@:2}"; }

# --- sites: encX eth1 = 10.80.N.1 <-> inet eX = 10.80.N.254 (A 1, B 2, C 3, D 4)
for n in client encA encB encC encD inet server; do ns_new $n >/dev/null; done
i=1
for s in A B C D; do
	link enc$s eth1 inet e$s
	addr enc$s eth1 10.80.$i.1/24
	addr inet e$s 10.80.$i.254/24
	nsx enc$s ip route add default via 10.80.$i.254
	i=$((i + 1))
done
link client eth0 encA eth0
link encC eth0 server eth0
addr client eth0 10.81.0.2/24; addr encA eth0 10.81.0.1/24
addr server eth0 10.83.0.2/24; addr encC eth0 10.83.0.1/24
nsx client ip route add default via 10.81.0.1
nsx server ip route add default via 10.83.0.1
nsx inet ip route add 10.81.0.0/24 via 10.80.1.1
nsx inet ip route add 10.83.0.0/24 via 10.80.3.1
for n in encA encC inet; do forwarding $n; done

# --- kmsd: conf NODE N LINES... keepalive 10 (kmsd's default): with 3, a UML starved of
# CPU by a loaded host missed three keepalives and dropped sessions, which moved routes
# and stalled offers. The cut does not wait for it: inet answers with resets.
"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-a kms-b kms-c kms-d >/dev/null || fail "test PKI"
conf() {
	local n=$1 a=10.80.$2.1; shift 2
	kms_conf "$n" "$a" "keepalive 10" "dist-low-watermark $WM" "dist-target 131072" \
		"ppetp-block 32000" "$@"
}
q() { echo "qkd-sim unix:$T/qkd-$1.sock end $2"; }
conf kms-a 1 "neighbour kms-b address 10.80.2.1:7000 $(q ab a)" \
	"neighbour kms-d address 10.80.4.1:7000 $(q ad a)" "remote kms-c address 10.80.3.1:7000 qotp-peer 3"
conf kms-b 2 "neighbour kms-a $(q ab b)" "neighbour kms-c address 10.80.3.1:7000 $(q bc a)"
conf kms-c 3 "neighbour kms-b $(q bc b)" "neighbour kms-d address 10.80.4.1:7000 $(q cd a)" \
	"remote kms-a qotp-peer 1"
conf kms-d 4 "neighbour kms-c $(q cd b)" "neighbour kms-a $(q ad b)"
# 32 KiB QKD blocks: one transfer (one link block per hop) carries a 32000-byte ring block.
for l in ab bc cd ad; do bg qkd$l "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd-$l.sock" -r $RATE -b 32768; done
wait_for 30 bash -c "grep -q 'listening on' $T/qkdab.log && grep -q 'listening on' $T/qkdbc.log &&
	grep -q 'listening on' $T/qkdcd.log && grep -q 'listening on' $T/qkdad.log" || fail "qkdsimd listens"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
check "encA: gateway mode on 1935, peer 3 = encC" bash -c "
	ip netns exec $(nsname encA) $qotpctl set ports 1935 mode gateway low-watermark $WM &&
	ip netns exec $(nsname encA) $qotpctl peer add 3 prefix 10.83.0.0/24"
check "encC: gateway mode on 1935, peer 1 = encA" bash -c "
	ip netns exec $(nsname encC) $qotpctl set ports 1935 mode gateway low-watermark $WM &&
	ip netns exec $(nsname encC) $qotpctl peer add 1 prefix 10.81.0.0/24"
# 160x120: about 47 KB/s, half the key the 320x240 clip needs, so that four kmsd relaying
# it keep up inside a UML that shares two cores with other work.
live_clip $SECS 160x120
# The eavesdropper keeps port 1935 only: the peer sessions' PPETP traffic (about 4 times
# the stream's bytes) would make each tshark pass over the capture minutes long in UML.
# Started before kmsd, while UML is idle (even dumpcap starts slowly under load).
capture_start inet eA "$T/wire.pcapng" "tcp port 1935" && ok "dumpcap on inet, encA's link, port 1935 (eavesdropper)" ||
	fail "dumpcap on inet"
rtmp_up && ok "nginx-rtmp listens behind encC" || fail "nginx-rtmp listens behind encC"

# --- readers
# route_of NODE DEST: "next_hop metric status" from `kmsctl routes`
route_of() {
	"$QOTP_BIN/kmsctl" -s "$T/$1.sock" routes 2>/dev/null |
		awk -v d="$2" '/^neighbours:/ { exit } $1 == d { print $2, $3, $4 }'
}
# pair NODE FIELD: from `kmsctl pairs` (one pair each); pp NODE FIELD: a PPETP counter
pair() { kmsctl "$1" pairs | jq -r --arg f "$2" '.pairs[0][$f]'; }
pp() { kmsctl "$1" status | jq -r --arg f "$2" '.ppetp[$f]'; }
us() { echo "${EPOCHREALTIME/./}"; }
# changed_us NODE DEST: when NODE's route to DEST last changed, by kmsd's own clock (its
# `changed_ms_ago` taken from the time kmsctl answered), in microseconds since the epoch
changed_us() {
	local ago
	ago=$(kmsctl "$1" routes | jq --arg d "$2" 'first(.routes[] | select(.dest == $d) | .changed_ms_ago)')
	echo $(($(us) - ago * 1000))
}

# --- A, B, C first: A and C route to each other via B; then D
for n in a b c; do bg kms$n nsx enc${n^^} "$QOTP_BIN/kmsd" -f -v -c "$T/kms-$n.conf"; done
via_b() { [ "$(route_of kms-a kms-c)" = "kms-b 2 via" ] && [ "$(route_of kms-c kms-a)" = "kms-b 2 via" ]; }
check "A and C route to each other via B (metric 2)" until_s 60 via_b
bg kmsd nsx encD "$QOTP_BIN/kmsd" -f -v -c "$T/kms-d.conf"
d_up() { [ "$(route_of kms-a kms-d)" = "kms-d 1 direct" ] && [ "$(route_of kms-c kms-d)" = "kms-d 1 direct" ]; }
check "D joins: direct neighbour of A and C" until_s 60 d_up
check "A and C keep their equal-cost routes via B" via_b
filled() { [ "$(ring encA 3 encrypt avail)" -ge $WM ] && [ "$(ring encC 1 encrypt avail)" -ge $WM ]; }
check "rings fill from kmsd through the relay (>= 32 KiB each way)" until_s 120 filled
check "kmsctl pairs says via ppetp" test "$(pair kms-a via) $(pair kms-c via)" = "ppetp ppetp"
# Only a retry (an attempt that timed out, retried avoiding its first hop) may go via D.
retries=$(( $(pp kms-a attempts_failed) + $(pp kms-c attempts_failed) ))
check "B relayed the first keys ($(pp kms-b relayed)), D only retries ($(pp kms-d relayed) <= $retries)" \
	test "$(pp kms-b relayed)" -ge 2 -a "$(pp kms-d relayed)" -le "$retries"

# --- the stream, and the cut of A's link to its next hop toward C in its middle
play 1 && ok "player connected from behind encA" || fail "player connected"
publish 1
enc() { stat encA 3 enc_bytes; }
flowing() { [ "$(enc)" -ge 100000 ]; }
check "the stream flows (100 KB encrypted at encA)" until_s 60 flowing
# The link cut is A's to its next hop toward C, M (B, unless a session dropped under load
# since and routing moved to D: equal cost, no flap back); O is the other relay.
case "$(route_of kms-a kms-c)" in
"kms-d 2 via") M=d O=b ;;
*) M=b O=d ;;
esac
MM=${M^^} OO=${O^^}
mip=10.80.2.1 qm=ab
[ $M = d ] && mip=10.80.4.1 qm=ad
check "A routes to C via $MM (metric 2) at the cut" test "$(route_of kms-a kms-c)" = "kms-$M 2 via"
cat >"$T/cut.nft" <<EOF
table inet ringcut {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip saddr 10.80.1.1 ip daddr $mip meta l4proto tcp counter reject with tcp reset
		ip saddr $mip ip daddr 10.80.1.1 meta l4proto tcp counter reject with tcp reset
	}
}
EOF
# encA's bytes encrypted, ring stock and bytes pushed at the cut: one reading of the kernel
# (the stream goes on between two readings, and each takes seconds in a loaded UML).
read -r e_cut a_cut p_cut < <(nsx encA "$qotpctl" show --json |
	jq -r '.peers[] | select(.id == 3) | "\(.stats.enc_bytes // 0) \(.rings.encrypt.avail // 0) \(.rings.encrypt.pushed // 0)"')
t0=$(us)
kill -USR1 "$(eval echo "\$PID_qkd$qm")"
m_cut=$(pp kms-$M relayed); o_cut=$(pp kms-$O relayed)
check "cut A==$MM: qkdsimd A-$MM down, inet resets A-$MM sessions" nsx inet nft -f "$T/cut.nft"
converged() {
	[ "$(route_of kms-a kms-c)" = "kms-$O 2 via" ] && [ "$(route_of kms-c kms-a)" = "kms-$O 2 via" ] &&
		[ "$(route_of kms-$M kms-a)" != "kms-a 1 direct" ]
}
if until_s 60 converged; then
	seen=$((($(us) - t0) / 1000))
	last=$(printf '%s\n' "$(changed_us kms-a kms-c)" "$(changed_us kms-c kms-a)" "$(changed_us kms-$M kms-a)" | sort -n | tail -1)
	ok "routing converged $(((last - t0) / 1000)) ms after the cut (kmsd's change times; polls saw it at $seen ms): A and C via $OO, $MM's link to A down"
else
	fail "routing did not converge in 60 s (A->C: $(route_of kms-a kms-c), C->A: $(route_of kms-c kms-a), $MM->A: $(route_of kms-$M kms-a))"
fi
m1=$(pp kms-$M relayed); o1=$(pp kms-$O relayed)
note "at convergence: encA had encrypted $(($(enc) - e_cut)) B since the cut; relays $MM $m_cut -> $m1, $OO $o_cut -> $o1; inet reset $(nsx inet nft list table inet ringcut | grep -o 'packets [0-9]*' | tr '\n' ' ')"
# Keys went the other way: O relayed since the cut (attempts that failed through M are
# retried avoiding it, even before routing converged), and a transfer A -> C asked for
# now commits through O alone.
o_moved() { [ "$(pp kms-$O relayed)" -gt "$o_cut" ]; }
until_s 30 o_moved
check "$OO relayed since the cut ($o_cut -> $(pp kms-$O relayed))" test "$(pp kms-$O relayed)" -gt "$o_cut"
o2=$(pp kms-$O relayed); m2=$(pp kms-$M relayed)
check "kmsctl transfer kms-c 32000 from A commits after the cut" \
	timeout 90 "$QOTP_BIN/kmsctl" -s "$T/kms-a.sock" transfer kms-c 32000
check "that transfer went through $OO ($o2 -> $(pp kms-$O relayed)), not $MM ($m2 -> $(pp kms-$M relayed))" \
	test "$(pp kms-$O relayed)" -gt "$o2" -a "$(pp kms-$M relayed)" = "$m2"
published 1 150; rc=$?
check "publisher finishes (exit $rc)" test "$rc" = 0
f0=$__failed
played 1 "across the cut"
if [ "$__failed" -gt "$f0" ]; then
	note "encA encrypt ring: avail $(ring encA 3 encrypt avail), no-key drops $(stat encA 3 drop_no_key); encC encrypt ring: avail $(ring encC 1 encrypt avail), no-key drops $(stat encC 1 drop_no_key)"
	note "kms-a pair: $(kmsctl kms-a pairs | tr -d '\n' | cut -c1-400)"
	note "kms-c pair: $(kmsctl kms-c pairs | tr -d '\n' | cut -c1-400)"
	note "kms-a ppetp: $(kmsctl kms-a status | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppetp"])')"
	note "kms-c ppetp: $(kmsctl kms-c status | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppetp"])')"
	grep -hiE 'fail|abort|nack|error' "$T/kmsa.log" "$T/kmsc.log" | tail -20 | sed 's/^/       | /'
fi
capture_stop "$T/wire.pcapng" && ok "dumpcap stopped, capture complete" || fail "dumpcap stopped, capture complete"
wire_clean "$T/wire.pcapng" "A-C stream"
check "$MM relayed nothing after the cut ($m1 -> $(pp kms-$M relayed)); $OO relayed $(pp kms-$O relayed)" \
	test "$(pp kms-$M relayed)" = "$m1"
# The stream outlived the ring's stock at the cut: it ran on keys delivered after the cut.
# (How much of the stream is left at the cut depends on the load; dist-target 128 KiB
# keeps the stock well below the clip's 570 KB.)
e_after=$(($(enc) - e_cut)) p_after=$(($(ring encA 3 encrypt pushed) - p_cut))
check "encA encrypted $e_after B after the cut, more than its ring held then ($a_cut B), on $p_after B of keys pushed since" \
	test "$e_after" -gt "$a_cut" -a "$p_after" -gt 0
note "kms-a: $(pp kms-a committed) transfers, $(pp kms-a attempts_failed) attempts failed, $(pp kms-a failed) failed; kms-c: $(pp kms-c committed), $(pp kms-c attempts_failed), $(pp kms-c failed)"

# --- kernel and kmsd agree
settled() {
	[ "$(pair kms-a inflight)" = 0 ] && [ "$(pair kms-c inflight)" = 0 ] &&
		[ "$(pair kms-a xfer_inflight)" = 0 ] && [ "$(pair kms-c xfer_inflight)" = 0 ]
}
# covered ENC DEC EXPIRED: a decrypt ring holds all its encrypt ring holds, and more only
# by blocks of offers that expired at the encryptor (at most ppetp-block, 32000 B, each).
# The cut can delay an ACCEPT past the offer's 10 s: the encryptor then burns the block
# it never pushed, while the decryptor already holds it (unused, wiped at flush).
covered() { [ "$2" -ge "$1" ] && [ $(($2 - $1)) -le $(($3 * 32000)) ]; }
agree() {
	settled && [ "$(ring encA 3 encrypt pushed)" = "$(pair kms-a delivered_out_bytes)" ] &&
		[ "$(ring encA 3 decrypt pushed)" = "$(pair kms-a delivered_in_bytes)" ] &&
		[ "$(ring encC 1 encrypt pushed)" = "$(pair kms-c delivered_out_bytes)" ] &&
		[ "$(ring encC 1 decrypt pushed)" = "$(pair kms-c delivered_in_bytes)" ] &&
		covered "$(ring encA 3 encrypt pushed)" "$(ring encC 1 decrypt pushed)" "$(pair kms-a expired)" &&
		covered "$(ring encC 1 encrypt pushed)" "$(ring encA 3 decrypt pushed)" "$(pair kms-c expired)"
}
counts() {
	echo "encA encrypt/decrypt pushed $(ring encA 3 encrypt pushed)/$(ring encA 3 decrypt pushed), encC $(ring encC 1 encrypt pushed)/$(ring encC 1 decrypt pushed); kms-a out/in $(pair kms-a delivered_out_bytes)/$(pair kms-a delivered_in_bytes) inflight $(pair kms-a inflight) xfer $(pair kms-a xfer_inflight) expired $(pair kms-a expired); kms-c out/in $(pair kms-c delivered_out_bytes)/$(pair kms-c delivered_in_bytes) inflight $(pair kms-c inflight) xfer $(pair kms-c xfer_inflight) expired $(pair kms-c expired)"
}
if until_s 60 agree; then
	ok "kernel rings = kms-a's and kms-c's delivered counts; each decrypt ring holds its encrypt ring's blocks (plus expired offers only)"
else
	fail "kernel rings = kms-a's and kms-c's delivered counts; each decrypt ring holds its encrypt ring's blocks (plus expired offers only)"
fi
note "$(counts)"
note "encA encrypt pushed $(ring encA 3 encrypt pushed) B, kms-a delivered out $(pair kms-a delivered_out_bytes) B; encC encrypt pushed $(ring encC 1 encrypt pushed) B"
for r in "encA 3 encrypt" "encA 3 decrypt" "encC 1 encrypt" "encC 1 decrypt"; do
	v=$(ring $r refused)
	[ "$v" = 0 ] && ok "${r}: no block id refused" || fail "${r}: $v pushes refused"
done
counters_zero "encA 3" "encC 1" -- drop_csum drop_bad_desc drop_no_desc
note "no-key drops: encA $(stat encA 3 drop_no_key), encC $(stat encC 1 drop_no_key)"
finish
