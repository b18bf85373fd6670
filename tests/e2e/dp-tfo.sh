#!/usr/bin/env bash
# TCP Fast Open through two gateways (dp-topo.inc), IPv4 and IPv6. With TFO on at the
# client and the server, every connection after the first carries data in its SYN. That
# data cannot be encrypted before the handshake proves the peer: encC sends the SYN on
# without it (counted trimmed), the server acknowledges the SYN alone and the client sends
# the data again at once. Checks: every upload arrives exact, the client really sent SYN
# data (encC trimmed some), no SYN was retransmitted (dropping the SYN instead would cost
# the client a retransmission timeout per connection, seen as TcpExtTCPSynRetrans), and
# no plaintext crossed the middle link.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
dp_keyed 4M
for n in client server; do
	check "$n: TCP Fast Open on (client and server)" nsx $n sysctl -qw net.ipv4.tcp_fastopen=3
done
$HS mkdata "$T/data" 20000
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"

bg cap nsx mid $HS capture eth0 "$T/mid.raw"
wait_for 10 grep -q capturing "$T/cap.log" || fail "capture on mid starts"

synretrans() { nsx client nstat -asz TcpExtTCPSynRetrans | awk '$1 == "TcpExtTCPSynRetrans" { print $2 }'; }
s0=$(synretrans)
check "4 uploads over IPv4, each a new TFO connection, all exact" nsx client $H tfo 10.78.2.2 1935 "$T/data" 4
check "4 uploads over IPv6, each a new TFO connection, all exact" nsx client $H tfo fd78:2::2 1935 "$T/data" 4
t=$(stat encC 2 trimmed)
check "the client sent data in SYNs and encC cut it off ($t SYNs; 6 expected)" test "$t" -ge 2
s1=$(synretrans)
check "no SYN retransmitted (TcpExtTCPSynRetrans $s0 -> $s1)" test "$s1" = "$s0"
kill "$PID_cap"
# The data (a plaintext marker every 1000 bytes) must cross mid only encrypted, SYNs too.
if $HS grep "$T/mid.raw" 1935; then fail "plaintext on the middle link"; else
	ok "no plaintext on the middle link (SYN data never forwarded in clear)"; fi
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc drop_no_key drop_other
finish
