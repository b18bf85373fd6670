#!/usr/bin/env bash
# The nftables kill switch (scripts/killswitch.nft) on the client-side encryptor: without
# qotp loaded no data segment on port 1935 toward the peer's prefixes leaves (no plaintext on
# the middle link), other ports still pass; with qotp loaded and keyed, the encrypted stream
# passes the switch byte-exact. Topology: dp-topo.inc.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

dp_topo
check "kill switch loads" nsx encC nft -f "$QOTP_TOP/scripts/killswitch.nft"
check "peer prefixes added" bash -c "
	ip netns exec $(nsname encC) nft add element inet qotp_killswitch peers4 '{ 10.78.2.0/24 }' &&
	ip netns exec $(nsname encC) nft add element inet qotp_killswitch peers6 '{ fd78:2::/64 }'"
$HS mkdata "$T/data" 300000
for a in 10.78.2.2 fd78:2::2; do
	bg "s1935_${a//[:.]/_}" nsx server $HS serve "$a" 1935 "$T/data"
	bg "s1936_${a//[:.]/_}" nsx server $HS serve "$a" 1936 "$T/data"
done
wait_port server 1935 && wait_port server 1936 || fail "servers listen"
bg cap nsx mid $HS capture eth0 "$T/mid.raw"
wait_for 10 grep -q capturing "$T/cap.log" || fail "capture starts"

# 1. qotp not loaded.
for a in 10.78.2.2 fd78:2::2; do
	if nsx client timeout 15 /usr/bin/python3 "$QOTP_TOP/tests/e2e/dp-helpers.py" up "$a" 1935 "$T/data" 10 \
		>/dev/null 2>&1; then
		fail "1935 to $a got through without qotp"
	else
		ok "1935 to $a blocked without qotp"
	fi
	check "1936 to $a passes" nsx client $H up "$a" 1936 "$T/data"
done
kill "$PID_cap"
# The 1936 transfers put the marker on the wire; look at port 1935 payloads only.
if $HS grep "$T/mid.raw" 1935; then fail "1935 plaintext on the middle link"; else
	ok "no 1935 plaintext on the middle link"; fi
$HS grep "$T/mid.raw" 1936 && ok "1936 plaintext seen (the detector works)" ||
	fail "1936 plaintext not seen"
v=$(nsx encC nft list chain inet qotp_killswitch guard | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
[ "${v:-0}" -gt 0 ] && ok "kill switch counted $v dropped segments" || fail "kill switch counter ${v:-?}"

# 2. qotp loaded and keyed: ciphertext passes the switch.
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
export QOTP_BLOCK=32768
head -c 2M /dev/urandom >"$T/c2s.key"
head -c 2M /dev/urandom >"$T/s2c.key"
check "encryptors configured" bash -c "
	ip netns exec $(nsname encC) $qotpctl set ports 1935 mode gateway &&
	ip netns exec $(nsname encC) $qotpctl peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64 &&
	ip netns exec $(nsname encS) $qotpctl set ports 1935 mode gateway &&
	ip netns exec $(nsname encS) $qotpctl peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64 &&
	ip netns exec $(nsname encC) $qotpctl push 2 encrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname encC) $qotpctl push 2 decrypt $T/s2c.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 decrypt $T/c2s.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 encrypt $T/s2c.key $(blk)"
blocks_are "encC 2" "encS 1"
for a in 10.78.2.2 fd78:2::2; do
	check "1935 to $a byte-exact through qotp and the kill switch" nsx client $H up "$a" 1935 "$T/data"
done
finish
