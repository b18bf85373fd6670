#!/usr/bin/env bash
# Byte-exact transfers through two qotp encryptors in gateway mode, over a lossy, reordering,
# duplicating middle link, IPv4 and IPv6; an eavesdropper on that link; and the traffic qotp
# must leave alone.
#
#  client ---- encC ====== mid ====== encS ---- server
#  10.78.1.2   .1  10.78.0.1  .2|       10.78.9.1  10.78.2.1  10.78.2.2  :1935 :1936
#  fd78:1::2       fd78::1    fd78::2|fd78:9::2  fd78:9::1  fd78:2::1  fd78:2::2
#                             |
#                           other 10.78.5.2 / fd78:5::2 :1935 (no peer behind it)
#  netem on both mid links: loss 5 %, reorder, duplicate, delay.
#  encC: peer 2 = encS (10.78.2.0/24, fd78:2::/64); encS: peer 1 = encC (10.78.1.0/24, fd78:1::/64)
#
# Keys: two random files (client->server, server->client) pushed to both ends, as kmsd would.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"	# blk, blocks_are, stat (its own topology is below)
qotpctl=$QOTP_BIN/qotpctl
H="timeout 150 /usr/bin/python3 $QOTP_TOP/tests/e2e/dp-helpers.py"
HS="/usr/bin/python3 $QOTP_TOP/tests/e2e/dp-helpers.py"
SIZE=${QOTP_DP_SIZE:-1000000}

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }

for n in client encC mid encS server other; do ns_new $n >/dev/null; done
link client eth0 encC eth0
link encC eth1 mid eth0
link mid eth1 encS eth1
link encS eth0 server eth0
link mid eth2 other eth0
addr client eth0 10.78.1.2/24; addr client eth0 fd78:1::2/64
addr encC eth0 10.78.1.1/24;   addr encC eth0 fd78:1::1/64
addr encC eth1 10.78.0.1/24;   addr encC eth1 fd78::1/64
addr mid eth0 10.78.0.2/24;    addr mid eth0 fd78::2/64
addr mid eth1 10.78.9.2/24;    addr mid eth1 fd78:9::2/64
addr mid eth2 10.78.5.1/24;    addr mid eth2 fd78:5::1/64
addr other eth0 10.78.5.2/24;  addr other eth0 fd78:5::2/64
addr encS eth1 10.78.9.1/24;   addr encS eth1 fd78:9::1/64
addr encS eth0 10.78.2.1/24;   addr encS eth0 fd78:2::1/64
addr server eth0 10.78.2.2/24; addr server eth0 fd78:2::2/64
for v in "" -6; do
	nsx client ip $v route add default via "$([ "$v" ] && echo fd78:1::1 || echo 10.78.1.1)"
	nsx encC ip $v route add default via "$([ "$v" ] && echo fd78::2 || echo 10.78.0.2)"
	nsx encS ip $v route add default via "$([ "$v" ] && echo fd78:9::2 || echo 10.78.9.2)"
	nsx server ip $v route add default via "$([ "$v" ] && echo fd78:2::1 || echo 10.78.2.1)"
	nsx other ip $v route add default via "$([ "$v" ] && echo fd78:5::1 || echo 10.78.5.1)"
done
nsx mid ip route add 10.78.1.0/24 via 10.78.0.1
nsx mid ip route add 10.78.2.0/24 via 10.78.9.1
nsx mid ip -6 route add fd78:1::/64 via fd78::1
nsx mid ip -6 route add fd78:2::/64 via fd78:9::1
for n in encC mid encS; do forwarding $n; done
for i in eth0 eth1; do
	nsx mid tc qdisc add dev $i root netem delay 2ms 1ms loss 5% duplicate 2% reorder 10% 50%
done

head -c 8M /dev/urandom >"$T/c2s.key"
head -c 8M /dev/urandom >"$T/s2c.key"
export QOTP_BLOCK=32768
check "encC: gateway mode on 1935" nsx encC "$qotpctl" set ports 1935 mode gateway
check "encS: gateway mode on 1935" nsx encS "$qotpctl" set ports 1935 mode gateway
check "encC: peer 2" nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64
check "encS: peer 1" nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64
check "encC: push rings" bash -c "ip netns exec $(nsname encC) $qotpctl push 2 encrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname encC) $qotpctl push 2 decrypt $T/s2c.key $(blk)"
check "encS: push rings" bash -c "ip netns exec $(nsname encS) $qotpctl push 1 decrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 encrypt $T/s2c.key $(blk)"
blocks_are "encC 2" "encS 1"

$H mkdata "$T/data" "$SIZE"
for a in 10.78.2.2 fd78:2::2; do
	bg "srv_${a//[:.]/_}_1935" nsx server $HS serve "$a" 1935 "$T/data"
	bg "srv_${a//[:.]/_}_1936" nsx server $HS serve "$a" 1936 "$T/data"
done
bg oth4 nsx other $HS serve 10.78.5.2 1935 "$T/data"
bg oth6 nsx other $HS serve fd78:5::2 1935 "$T/data"
wait_port server 1935 && wait_port server 1936 && wait_port other 1935 || fail "servers listen"

bg cap1 nsx mid $HS capture eth0 "$T/mid1.raw"
wait_for 10 grep -q capturing "$T/cap1.log" || fail "capture starts"

# 1. The protected port, both directions, both families, through loss/reorder/duplication.
for a in 10.78.2.2 fd78:2::2; do
	check "1935 upload to $a byte-exact" nsx client $H up "$a" 1935 "$T/data"
	check "1935 download from $a byte-exact" nsx client $H down "$a" 1935 "$T/data"
done
kill "$PID_cap1"
if $H grep "$T/mid1.raw"; then
	fail "no plaintext marker on the middle link (1935)"
else
	ok "no plaintext marker on the middle link (1935)"
fi
# Every data segment on 1935 carries a descriptor, and runs go on into the next block
# (F_STRIDE, wire-format.md): with 32 KiB blocks and a single flow per direction, a segment
# or TSO packet crossing a block boundary has one run with a stride, not two runs.
read -r _ nseg _ nopt _ nstride _ biggest <<<"$($HS descs "$T/mid1.raw" 1935)"
[ "${nseg:-0}" -gt 0 ] && [ "$nopt" = "$nseg" ] && ok "every data segment on 1935 has a descriptor ($nseg)" ||
	fail "data segments on 1935: ${nseg:-?}, with a descriptor: ${nopt:-?}"
[ "${nstride:-0}" -gt 0 ] && ok "runs go on into the next block: $nstride segments, up to $biggest bytes" ||
	fail "no segment with a stride (F_STRIDE) among ${nopt:-?}"
[ "$(stat encC 2 enc_bytes)" -ge $((2 * SIZE)) ] && ok "encC counted its encrypted bytes" ||
	fail "encC enc_bytes $(stat encC 2 enc_bytes) < $((2 * SIZE))"
[ "$(stat encS 1 dec_bytes)" -ge $((2 * SIZE)) ] && ok "encS counted its decrypted bytes" ||
	fail "encS dec_bytes $(stat encS 1 dec_bytes) < $((2 * SIZE))"
for n in "encC 2" "encS 1"; do
	for c in drop_csum drop_bad_desc drop_no_desc drop_no_key; do
		v=$(stat $n $c)
		[ "$v" = 0 ] && ok "${n% *}: $c = 0" || fail "${n% *}: $c = $v"
	done
done

# 2. What qotp must not touch: another port to the same server, the protected port to a
#    host behind no peer. The marker must show on the wire (the detector works) and the
#    counters must not move.
segs0=$(( $(stat encC 2 enc_segs) + $(stat encC 2 dec_segs) ))
bg cap2 nsx mid $HS capture eth0 "$T/mid2.raw"
wait_for 10 grep -q capturing "$T/cap2.log" || fail "capture 2 starts"
check "1936 upload byte-exact" nsx client $H up 10.78.2.2 1936 "$T/data"
check "1936 v6 download byte-exact" nsx client $H down fd78:2::2 1936 "$T/data"
check "1935 to a non-peer host (v4) byte-exact" nsx client $H up 10.78.5.2 1935 "$T/data"
check "1935 to a non-peer host (v6) byte-exact" nsx client $H down fd78:5::2 1935 "$T/data"
kill "$PID_cap2"
$H grep "$T/mid2.raw" && ok "unprotected traffic crosses in clear (detector works)" ||
	fail "marker not seen on unprotected traffic"
segs1=$(( $(stat encC 2 enc_segs) + $(stat encC 2 dec_segs) ))
[ "$segs0" = "$segs1" ] && ok "qotp touched none of it" || fail "qotp counters moved: $segs0 -> $segs1"

finish
