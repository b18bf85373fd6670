#!/usr/bin/env bash
# Path MTU below the hosts' link MTU behind the encryptors: the middle router answers the
# (encrypted, option-carrying) segments with ICMP "fragmentation needed" / "packet too big";
# qotp lowers the MTU in them by the option space so the client's next segments fit once
# encrypted. Uploads, IPv4 and IPv6, must complete byte-exact. Topology: dp-topo.inc with
# MTU 1400 on the mid - encS link.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
nsx mid ip link set eth1 mtu 1400
nsx encS ip link set eth1 mtu 1400
export QOTP_BLOCK=32768
head -c 4M /dev/urandom >"$T/c2s.key"
head -c 4M /dev/urandom >"$T/s2c.key"
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
$HS mkdata "$T/data" 1000000
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"
for a in 10.78.2.2 fd78:2::2; do
	check "upload to $a over a 1400-byte path, byte-exact" \
		nsx client timeout 60 /usr/bin/python3 "$QOTP_TOP/tests/e2e/dp-helpers.py" up "$a" 1935 "$T/data" 30
done
pm=$(nsx client ip route get 10.78.2.2 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
note "client's cached path MTU toward the server: ${pm:-none}"
[ "${pm:-0}" -le 1372 ] && [ "${pm:-0}" -gt 0 ] && ok "client learnt a path MTU that fits the option (${pm})" ||
	fail "client path MTU ${pm:-none}, expected <= 1372"
finish
