#!/usr/bin/env bash
# Endpoint mode: the client host is its own encryptor (LOCAL_OUT / LOCAL_IN hooks, the
# local TCP stack's TSO super-packets), talking to a gateway-mode encryptor in front of the
# server. Byte-exact both ways, IPv4 and IPv6; no plaintext on the middle link.
#
#  client (endpoint qotp) ====== mid ====== encS (gateway qotp) ---- server
#  10.78.0.1 / fd78::1                      peer 1 = 10.78.0.1/32, fd78::1/128
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo endpoint
export QOTP_BLOCK=32768
head -c 6M /dev/urandom >"$T/c2s.key"
head -c 6M /dev/urandom >"$T/s2c.key"
check "client: endpoint mode, peer 2" bash -c "
	ip netns exec $(nsname client) $qotpctl set ports 1935 mode endpoint &&
	ip netns exec $(nsname client) $qotpctl peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64"
check "encS: gateway mode, peer 1" bash -c "
	ip netns exec $(nsname encS) $qotpctl set ports 1935 mode gateway &&
	ip netns exec $(nsname encS) $qotpctl peer add 1 prefix 10.78.0.1/32 prefix fd78::1/128"
check "rings pushed" bash -c "
	ip netns exec $(nsname client) $qotpctl push 2 encrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname client) $qotpctl push 2 decrypt $T/s2c.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 decrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 encrypt $T/s2c.key $(blk)"
blocks_are "client 2" "encS 1"

SIZE=2000000
$HS mkdata "$T/data" $SIZE
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"
bg cap nsx mid $HS capture eth0 "$T/mid.raw"
wait_for 10 grep -q capturing "$T/cap.log" || fail "capture starts"
for a in 10.78.2.2 fd78:2::2; do
	check "upload to $a byte-exact" nsx client $H up "$a" 1935 "$T/data"
	check "download from $a byte-exact" nsx client $H down "$a" 1935 "$T/data"
done
kill "$PID_cap"
if $HS grep "$T/mid.raw"; then fail "plaintext on the middle link"; else
	ok "no plaintext on the middle link"; fi
v=$(stat client 2 enc_bytes)
[ "$v" -ge $((2 * SIZE)) ] && ok "client encrypted in LOCAL_OUT ($v bytes)" || fail "client enc_bytes $v"
v=$(stat client 2 dec_bytes)
[ "$v" -ge $((2 * SIZE)) ] && ok "client decrypted in LOCAL_IN ($v bytes)" || fail "client dec_bytes $v"
for c in drop_csum drop_bad_desc drop_no_desc drop_no_key; do
	v=$(( $(stat client 2 $c) + $(stat encS 1 $c) ))
	[ "$v" = 0 ] && ok "$c = 0 at both ends" || fail "$c = $v"
done
finish
