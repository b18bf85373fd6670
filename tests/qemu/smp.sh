#!/usr/bin/env bash
# Inside QEMU on the x86_64 debug kernel (SMP, PREEMPT, KASAN, lockdep, atomic-sleep
# checks, kmemleak; scripts/qemu-run.sh, 2 CPUs): qotp's KUnit suites, then the datapath
# scripts that put the most CPUs into qotp's softirq paths at once, one after another in
# this one boot (a boot of this kernel under TCG costs half a minute). make check runs the
# first and the fourth (tests/run.sh; ~9 min under TCG), QOTP_QEMU_FULL=1 all five:
#   dp-parallel   18 connections at once, v4 + v6, both ways, harsh netem, over the virtio-net NIC pair
#                 with its offloads (QOTP_DP_NICS=1), GSO packets with gso_segs 0
#   dp-gateway    byte-exact both ways v4 + v6 over lossy, reordering, duplicating veths
#   dp-harsh      harsher netem, SACK/timestamps on and off, small MSS
#   dp-teardown   rmmod under live flows, netns deletion under traffic
#   dp-starve     key starvation and refill
# Each result line is prefixed with the script's name; a KUnit case is "kunit: SUITE: CASE".
# A kernel report involving qotp fails the whole run (scripts/qemu-run.sh, status 125).
set -u
top=${QOTP_TOP:?}
rc=0
prefix() { sed -u "s/^\[\( OK \|FAIL\|SKIP\)\] /[\1] $1: /"; }

# KUnit: its KTAP turned into result lines (the cases, not the parameters of a case).
ktap=$(mktemp)
bash "$top/tests/uml/kunit.sh" >"$ktap" 2>&1 || { echo "[FAIL] kunit: load, run or unload failed"; rc=1; }
awk '
	{ sub(/^KTAP: /, "") }
	/^    # Subtest: / { suite = substr($0, 16); next }
	/^    ok .*# SKIP/ { $1 = $2 = ""; print "[SKIP] kunit: " suite ": " substr($0, 3); next }
	/^    ok / { $1 = $2 = ""; print "[ OK ] kunit: " suite ": " substr($0, 3); n++; next }
	/^    not ok / { $1 = $2 = $3 = ""; print "[FAIL] kunit: " suite ": " substr($0, 4); n++; next }
	END { if (!n) print "[FAIL] kunit: no KUnit case ran" }' "$ktap"
grep -v '^KTAP: ' "$ktap" | sed 's/^/       kunit | /' | tail -5
rm -f "$ktap"

# QOTP_SMP_SCRIPTS: the scripts to run (names in tests/qemu/ or tests/e2e/; NAME+nics runs it with
# QOTP_DP_NICS=1), default all five above.
for t in ${QOTP_SMP_SCRIPTS:-dp-parallel+nics dp-gateway dp-harsh dp-teardown dp-starve}; do
	name=${t%+nics}
	nics=0
	[ "$name" = "$t" ] || nics=1
	echo "== $name ($(cut -d' ' -f1 /proc/uptime) s after boot)"
	script=$top/tests/qemu/$name.sh
	[ -f "$script" ] || script=$top/tests/e2e/$name.sh
	QOTP_DP_NICS=$nics bash "$script" 2>&1 | prefix "$name"
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
	# A script that died early may leave its module loaded: the next one inserts its own.
	grep -q '^qotp ' /proc/modules && rmmod qotp
	# The NICs come back from a deleted netns under the names it gave them (eth0, eth1),
	# which the next script's veths would collide with: wait for both, name them back.
	for _ in $(seq 60); do
		[ "$(grep -lE '^52:54:00:71:00:0[12]$' /sys/class/net/*/address 2>/dev/null | wc -l)" = 2 ] && break
		sleep 0.5
	done
	for d in /sys/class/net/*; do
		case "$(cat "$d/address" 2>/dev/null)" in
		52:54:00:71:00:0[12]) a=$(cat "$d/address"); n=vnic${a##*:0}
			[ "${d##*/}" = "$n" ] || ip link set "${d##*/}" name "$n" ;;
		esac
	done
done
exit $rc
