#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The qotp control plane end to end, through qotpctl, in two network namespaces.
#
#   netns a                          netns b                  (no links: control plane only)
#   peer 1: 10.1.0.0/16, fd01::/48   peer 1: 10.2.0.0/16
#   encrypt ring: 5000 B (2 blocks)  decrypt ring: 70000 B (3 blocks of up to 32 KiB)
#
# Checks: each netns reads back only its own peers, rings and config (isolation); a
# process without CAP_NET_ADMIN can read but not change anything, nor join the event
# group, while root of a user namespace owning its netns can; events (flushed, released,
# low watermark) reach the monitor of their netns only; deleting a netns and unloading
# the module with keys in the rings leave nothing behind (kmemleak; KASAN, lockdep and
# WARN reports fail the run through scripts/uml-run.sh).
. "$(dirname "$0")/../lib.sh"

C=$QOTP_BIN/qotpctl
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
ns_new a >/dev/null
ns_new b >/dev/null

# jget NS EXPR: evaluate a Python expression over `qotpctl show --json` in NS (as `d`).
jget() {
	nsx "$1" "$C" show --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}
# expect NAME NS EXPR WANT
expect() {
	local got
	got=$(jget "$2" "$3" 2>&1)
	if [ "$got" = "$4" ]; then ok "$1"; else fail "$1: got '$got', want '$4'"; fi
}
unpriv() {
	local ns=$1
	shift
	nsx "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		--bounding-set=-all "$@"
}
# The unprivileged user runs its own copy of qotpctl: the checkout may lie where it cannot
# go (from a clone in /root, mode 0700, both checks that start qotpctl through another
# program failed with "Permission denied" instead of testing the module).
CU=$(mktemp -d /tmp/qotp-unpriv.XXXXXX) && chmod 755 "$CU" && install -m 755 "$C" "$CU/qotpctl" ||
	fail "a copy of qotpctl the unprivileged user can run"
CU=$CU/qotpctl

head -c 5000 /dev/urandom >"$T/k5"
head -c 70000 /dev/urandom >"$T/k70"

check "a: add peer 1" nsx a "$C" peer add 1 prefix 10.1.0.0/16,fd01::/48
check "b: add peer 1 (same id in another netns)" nsx b "$C" peer add 1 prefix 10.2.0.0/16
check "a: push 5000 key bytes to the encrypt ring" nsx a "$C" push 1 encrypt "$T/k5"
check "b: push 70000 key bytes from stdin to the decrypt ring" \
	bash -c "ip netns exec $(nsname b) $C push 1 decrypt - --block-size 32K <$T/k70"

# --- isolation: each netns sees its own state only
expect "a: encrypt ring holds 5000 B in 2 blocks" a \
	'(d["peers"][0]["rings"]["encrypt"]["pushed"], d["peers"][0]["rings"]["encrypt"]["blocks"], d["peers"][0]["rings"]["encrypt"]["avail"])' \
	"(5000, 2, 5000)"
expect "a: decrypt ring untouched" a 'd["peers"][0]["rings"]["decrypt"]["pushed"]' 0
expect "a: prefixes read back" a 'd["peers"][0]["prefixes"]' "['10.1.0.0/16', 'fd01::/48']"
expect "b: decrypt ring holds 70000 B in 3 blocks, last id 3" b \
	'(d["peers"][0]["rings"]["decrypt"]["pushed"], d["peers"][0]["rings"]["decrypt"]["blocks"], d["peers"][0]["rings"]["decrypt"]["last_id"])' \
	"(70000, 3, 3)"
expect "b: encrypt ring untouched" b 'd["peers"][0]["rings"]["encrypt"]["pushed"]' 0
expect "b: its own prefixes only" b 'd["peers"][0]["prefixes"]' "['10.2.0.0/16']"
if [ "$("$C" show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))')" = 0 ]; then
	ok "init netns: no peers"
else
	fail "init netns sees peers of other namespaces"
fi
check "a: set mode, ports and ring sizes" nsx a "$C" set mode endpoint ports 1935,8443 \
	ring-max 1M low-watermark 64K max-flows 100
expect "a: config read back" a \
	'(d["config"]["mode"], d["config"]["ports"], d["config"]["ring_max_bytes"], d["config"]["low_watermark"], d["config"]["max_flows"])' \
	"('endpoint', [1935, 8443], 1048576, 65536, 100)"
expect "b: config keeps its defaults" b \
	'(d["config"]["mode"], d["config"]["ports"], d["config"]["ring_max_bytes"])' \
	"('off', [1935], 16777216)"
expect "a: next push continues after the highest id" a \
	'd["peers"][0]["rings"]["encrypt"]["last_id"]' 2

# --- permissions: CAP_NET_ADMIN in the netns's user namespace
before=$(nsx a "$C" show --json)
for args in "peer add 9" "peer del 1" "set mode gateway" "flush" "flush 1 encrypt" \
	"push 1 encrypt -"; do
	out=$(unpriv a "$CU" $args <"$T/k5" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [[ "$out" == *"Operation not permitted"* ]]; then
		ok "unprivileged '$args' refused"
	else
		fail "unprivileged '$args': rc $rc, '$out'"
	fi
done
check "unprivileged show is allowed" unpriv a "$CU" show
after=$(nsx a "$C" show --json)
if [ "$before" = "$after" ]; then ok "state unchanged by refused requests"; else
	fail "state changed by refused requests"; fi
if out=$(unpriv a timeout 30 "$CU" monitor 2>&1); then
	fail "unprivileged monitor joined the events group"
elif [[ "$out" == *"cannot join"* ]]; then
	ok "unprivileged monitor cannot join the events group"
else
	fail "unprivileged monitor: '$out'"
fi
if unpriv a unshare --user --map-root-user --net true 2>/dev/null; then
	out=$(unpriv a unshare --user --map-root-user --net \
		sh -c "$CU peer add 5 prefix 10.5.0.0/16 && $CU show --json" 2>&1)
	if [[ "$out" == *'"id":5'* ]]; then
		ok "root of a user namespace configures its own netns"
	else
		fail "user namespace owner refused: '$out'"
	fi
	expect "a: unaffected by the user namespace's peer" a 'len(d["peers"])' 1
else
	skip "unprivileged user namespaces disabled"
fi

# --- events reach the monitor of their netns only
bg mon_a nsx a "$C" monitor --json
bg mon_b nsx b "$C" monitor --json
# The monitors subscribe asynchronously: flush an empty ring until its event shows.
if wait_for 15 bash -c "ip netns exec $(nsname a) $C flush 1 decrypt; grep -q flushed $T/mon_a.log"; then
	ok "a: monitor receives FLUSHED"
else
	fail "a: monitor never received an event"
fi
wait_for 15 bash -c "ip netns exec $(nsname b) $C flush 1 encrypt; grep -q flushed $T/mon_b.log" ||
	fail "b: monitor never received an event"
check "a: flush the encrypt ring" nsx a "$C" flush 1 encrypt
if wait_for 10 grep -q '"event":"released","peer":1,"dir":"encrypt","block_ids":\[1,2\],"consumed":0' "$T/mon_a.log"; then
	ok "a: RELEASED names blocks 1 and 2, nothing consumed"
else
	fail "a: no RELEASED event for blocks 1,2"; sed 's/^/       | /' "$T/mon_a.log"
fi
expect "a: encrypt ring empty, wasted 5000, last id kept" a \
	'(d["peers"][0]["rings"]["encrypt"]["blocks"], d["peers"][0]["rings"]["encrypt"]["wasted"], d["peers"][0]["rings"]["encrypt"]["last_id"])' \
	"(0, 5000, 2)"
out=$(nsx a "$C" push 1 encrypt "$T/k5" --first-id 2 2>&1)
if [ $? -ne 0 ] && [[ "$out" == *"highest id"* ]]; then
	ok "a: id 2 refused after the flush"
else
	fail "a: reused id after flush: '$out'"
fi
check "a: low watermark above the (empty) rings" nsx a "$C" set low-watermark 128K
if wait_for 10 grep -q '"event":"low-watermark","peer":1,"dir":"encrypt","avail":0' "$T/mon_a.log"; then
	ok "a: LOW_WATERMARK for the empty encrypt ring"
else
	fail "a: no LOW_WATERMARK event"
fi
if grep -q '"dir":"decrypt"' "$T/mon_b.log" || grep -q released "$T/mon_b.log" ||
	grep -q low-watermark "$T/mon_b.log"; then
	fail "b: saw events of netns a"; sed 's/^/       | /' "$T/mon_b.log"
else
	ok "b: no events of netns a"
fi
kill "$PID_mon_a" "$PID_mon_b" 2>/dev/null

# --- teardown with keys held: netns deletion, then rmmod with keys in the init netns
check "b: fill the decrypt ring with 1 MiB more" bash -c \
	"head -c 1048576 /dev/urandom | ip netns exec $(nsname b) $C push 1 decrypt - --block-size 32K"
ip netns del "$(nsname b)"
check "init: a peer with keys" bash -c "$C peer add 7 prefix 192.0.2.0/24 &&
	head -c 65536 /dev/urandom | $C push 7 encrypt -"
ip netns del "$(nsname a)"
check "rmmod qotp with keys in the rings" rmmod qotp
if out=$("$C" show 2>&1); then fail "show after rmmod succeeded"; elif
	[[ "$out" == *"module is not loaded"* ]]; then ok "qotpctl: module not loaded"; else
	fail "qotpctl after rmmod: '$out'"; fi
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	if grep -q qotp /sys/kernel/debug/kmemleak; then
		fail "kmemleak reports qotp objects"
		grep -A12 qotp /sys/kernel/debug/kmemleak | head -40 | sed 's/^/       | /'
	else
		ok "kmemleak holds nothing of qotp"
	fi
else
	skip "kmemleak not available"
fi
finish
