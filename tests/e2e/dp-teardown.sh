#!/usr/bin/env bash
# Teardown with live flows: rmmod while streams are being encrypted and decrypted, then
# (module loaded again) deleting an encryptor's netns under traffic. What is checked is
# that it is clean: rmmod succeeds, the kernel log has no report involving qotp (uml-run
# fails the run otherwise, kmemleak included). Topology: dp-topo.inc.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

export QOTP_BLOCK=32768
head -c 8M /dev/urandom >"$T/c2s.key"
head -c 8M /dev/urandom >"$T/s2c.key"

configure() {
	nsx encC "$qotpctl" set ports 1935 mode gateway &&
		nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64 &&
		nsx encS "$qotpctl" set ports 1935 mode gateway &&
		nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64 &&
		push encC 2 encrypt "$T/c2s.key" && push encC 2 decrypt "$T/s2c.key" &&
		push encS 1 decrypt "$T/c2s.key" && push encS 1 encrypt "$T/s2c.key"
}

# streams TAG: four long transfers, both directions, both families, in the background.
streams() {
	bg "up4_$1" nsx client $H up 10.78.2.2 1935 "$T/data" 100
	bg "down4_$1" nsx client $H down 10.78.2.2 1935 "$T/data" 100
	bg "up6_$1" nsx client $H up fd78:2::2 1935 "$T/data" 100
	bg "down6_$1" nsx client $H down fd78:2::2 1935 "$T/data" 100
}

flowing() {
	[ "$(stat encC 2 enc_bytes)" -gt 200000 ] && [ "$(stat encC 2 dec_bytes)" -gt 200000 ]
}

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
check "both encryptors configured" configure
blocks_are "encC 2" "encS 1"
$HS mkdata "$T/data" 3000000
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"

streams a
until_s 60 flowing && ok "streams flowing through qotp" || fail "streams never got going"
v=$(stat encC 2 flows_active)
[ "$v" -ge 1 ] && ok "encC holds live flows ($v)" || fail "encC flows_active = $v"
check "rmmod qotp under traffic" rmmod qotp
! grep -q '^qotp ' /proc/modules && ok "module gone" || fail "module still listed"
kill "$PID_up4_a" "$PID_down4_a" "$PID_up6_a" "$PID_down6_a" 2>/dev/null

check "insmod qotp again" insmod "$QOTP_KMOD/qotp.ko"
check "both encryptors configured again" configure
blocks_are "encC 2" "encS 1"
streams b
until_s 60 flowing && ok "streams flowing again" || fail "streams did not restart"
check "delete encS netns with live flows" ip netns del "$(nsname encS)"
v=$(stat encC 2 flows_active)
note "encC still holds $v flows toward the deleted peer"
check "delete encC netns with live flows" ip netns del "$(nsname encC)"
check "rmmod qotp with no netns left using it" rmmod qotp
finish
