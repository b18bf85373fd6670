#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Hostile input to the qotp generic netlink family (control plane only, no traffic).
#
#   netns "mal": a peer and two key rings in a known state, then one malformed request per
#                case (wrong types and lengths, unknown attributes and flag bits, absurd
#                sizes, missing attributes, reused ids): each must be refused with an errno
#                and an extack message, and the state read back must not change.
#   netns "fuzz": random and mutated requests for QOTP_FUZZ_SECONDS (default 30), from the
#                seed QOTP_FUZZ_SEED (default 1; only QOTP_* variables reach the script
#                inside UML).
#   Then both namespaces are deleted with keys still in their rings, the module is
#   unloaded, and kmemleak must hold nothing of qotp. KASAN, lockdep and WARN reports
#   fail the run through scripts/uml-run.sh.
. "$(dirname "$0")/../lib.sh"

genl=$QOTP_TOP/tests/e2e/ctl-genl.py
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }

ns_new mal >/dev/null
ns_new fuzz >/dev/null

report() {
	local line
	while IFS= read -r line; do
		case "$line" in
		PASS\ *) ok "${line#PASS }" ;;
		FAIL\ *) fail "${line#FAIL }" ;;
		*) note "$line" ;;
		esac
	done
}

# Process substitution, not a pipe: report must count in this shell.
report < <(nsx mal python3 "$genl" malformed 2>&1)
report < <(nsx fuzz python3 "$genl" fuzz "${QOTP_FUZZ_SECONDS:-30}" 2>&1)

# Namespaces go with keys in their rings; then the module with the init netns's state.
ip netns del "$(nsname mal)" && ip netns del "$(nsname fuzz)"
__ns=()
check "rmmod qotp with state left" rmmod qotp
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
