#!/usr/bin/env bash
# Harsher TCP through two gateways: both directions at once over links that lose, reorder
# and duplicate both ways, under the TCP settings that squeeze the descriptor: SACK and
# timestamps on (SACK blocks then ride on data segments and fill the header), SACK and
# timestamps off, and a small MSS. Every transfer must arrive byte-exact, and no segment
# may be dropped for a reason other than one the counters name (drop_other stays 0):
# SACK blocks make room for the descriptor (sack_cut), a retransmission of bytes whose
# key is released goes on as a pure ACK (stale). Topology: dp-topo.inc (gateway mode),
# netem on the client's link and both middle links.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
SIZE=400000
export QOTP_BLOCK=32768
dp_keyed 16M
# Loss between the client and encC too: ACKs encC has seen (and released key for) may
# then never reach the client, whose retransmissions carry bytes with no key left.
for i in eth0 eth1; do
	nsx mid tc qdisc add dev $i root netem delay 2ms 1ms loss 4% duplicate 1% reorder 10% 50%
done
nsx encC tc qdisc add dev eth0 root netem delay 1ms loss 3%
nsx client tc qdisc add dev eth0 root netem delay 1ms loss 3%

$HS mkdata "$T/data" $SIZE
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"

# tcp_set SACK TS: both ends' settings.
tcp_set() {
	local n
	for n in client server; do
		nsx $n sysctl -qw net.ipv4.tcp_sack=$1 net.ipv4.tcp_timestamps=$2 net.ipv4.tcp_dsack=$1
	done
}

tcp_set 1 1
for a in 10.78.2.2 fd78:2::2; do
	for k in 1 2 3; do
		check "SACK + timestamps, both ways at once to $a, #$k, byte-exact" \
			nsx client $H both "$a" 1935 "$T/data"
	done
done
v=$(stat encC 2 sack_cut)
[ "$v" -gt 0 ] && ok "encC made room by leaving SACK blocks out ($v segments)" ||
	fail "no segment needed SACK blocks left out: the case was not exercised"
tcp_set 0 0
for a in 10.78.2.2 fd78:2::2; do
	check "no SACK, no timestamps, both ways to $a, byte-exact" nsx client $H both "$a" 1935 "$T/data"
done
tcp_set 1 1
nsx client ip route change default via 10.78.1.1 advmss 536
nsx client ip -6 route change default via fd78:1::1 advmss 536
nsx server ip route change default via 10.78.2.1 advmss 536
nsx server ip -6 route change default via fd78:2::1 advmss 536
for a in 10.78.2.2 fd78:2::2; do
	check "MSS 536, SACK + timestamps, both ways to $a, byte-exact" \
		nsx client $H both "$a" 1935 "$T/data"
done

for n in "encC 2" "encS 1"; do
	for c in drop_other drop_csum drop_bad_desc drop_no_desc drop_no_key drop_nomem; do
		v=$(stat $n $c)
		[ "$v" = 0 ] && ok "${n% *}: $c = 0" || fail "${n% *}: $c = $v"
	done
	echo "       ${n% *}: sack_cut $(stat $n sack_cut) stale $(stat $n stale) trimmed $(stat $n trimmed)"
done
finish
