#!/usr/bin/env bash
# scripts/kreports.py decides which kernel reports fail a UML run. Synthetic logs in the
# shape UML 6.1 prints them: the base kernel's own RCU warning must pass, a report naming
# qotp must fail, any other report once the test has started must fail too, and module
# output logged right after a base report must not be mistaken for part of it.
. "$(dirname "$0")/../lib.sh"
kr="python3 $QOTP_TOP/scripts/kreports.py"

rcu() {
	cat <<'EOL'
[    1.220000] WARNING: suspicious RCU usage
[    1.220000] 6.1.192 #1 Not tainted
[    1.220000] -----------------------------
[    1.220000] lib/maple_tree.c:860 suspicious rcu_dereference_check() usage!
[    1.220000] no locks held by init.sh/53.
[    1.220000] Call Trace:
[    1.220000]  [<600403d1>] ? dump_trace+0x0/0x217
[    1.220000]  [<6003b9ac>] show_stack+0x1fc/0x21e
[    1.220000]  [<600395d8>] fork_handler+0x64/0x140

EOL
}
kasan() {
	cat <<'EOL'
[    5.000000] BUG: KASAN: use-after-free in qotp_ring_release+0x10/0x20 [qotp]
[    5.000000] Read of size 8 at addr 000000006d1f2e40 by task ksoftirqd/0/9
[    5.000000] Call Trace:
[    5.000000]  [<6003b9ac>] show_stack+0x1fc/0x21e
[    5.000000]  [<70001234>] qotp_ring_release+0x10/0x20 [qotp]

EOL
}
refcount() {
	cat <<'EOL'
[    6.000000] refcount_t: underflow; use-after-free.
[    6.000000] WARNING: CPU: 0 PID: 9 at lib/refcount.c:28 refcount_warn_saturate+0x13c/0x174
[    6.000000] Call Trace:
[    6.000000]  [<6003b9ac>] refcount_warn_saturate+0x13c/0x174
[    6.000000]  [<60712345>] tcp_wfree+0x80/0x120

EOL
}
# UML's signal-driven IRQ code tripping lockdep (seen in a kms-faults-starve run, 2026-11-27);
# $1 adds a frame line inside the block.
umlirq() {
	cat <<EOL
[    7.000000] ------------[ cut here ]------------
[    7.000000] WARNING: CPU: 0 PID: 108 at kernel/locking/lockdep.c:4381 lockdep_hardirqs_on_prepare+0x1d9/0x369
[    7.000000] DEBUG_LOCKS_WARN_ON(lockdep_hardirq_context())
[    7.000000] Modules linked in: qotp(O)
[    7.000000] Workqueue: events bpf_prog_free_deferred
[    7.000000] Received SIGSEGV in SIGSEGV handler, aborting stack trace!
${1:+[    7.000000] $1
}[    7.000000] irq event stamp: 301116
[    7.000000] hardirqs last  enabled at (301115): [<000000006003b455>] unblock_signals_trace+0x66/0x88
[    7.000000] hardirqs last disabled at (301116): [<000000006003b3d9>] block_signals_trace+0x72/0x88
[    7.000000] ---[ end trace 0000000000000000 ]---

EOL
}
start() { echo "[    1.500000] qotp-uml: init ready, running test"; }
rcu >"$T/base.log"
{ rcu; start; refcount; } >"$T/refcount-test.log"
{ refcount; rcu; start; } >"$T/refcount-boot.log"
{ rcu; start; rcu; } >"$T/rcu-test.log"
{ rcu; start; umlirq; } >"$T/umlirq-test.log"
{ rcu; start; umlirq " [<70001234>] qotp_xor_skb+0x10/0x20 [qotp]"; } >"$T/umlirq-qotp.log"
{ rcu; start; umlirq | grep -v signals_trace; } >"$T/lockdep-other.log"
{ rcu; echo "[    2.000000] qotp: loaded"; echo "[    2.100000]     ok 1 qotp_keyring"; } >"$T/after.log"
{ rcu; kasan; } >"$T/bad.log"
dumpstart() { echo "[  420.000000] qotp-uml: timed out, state dump follows"; }
{ rcu; start; dumpstart; refcount; } >"$T/dump.log"
{ rcu; start; refcount; dumpstart; } >"$T/dump-after.log"
printf 'unreferenced object 0x000000006d1f2e40 (size 64):\n  backtrace:\n    [<000000001>] 0xffffffffa0001234\n    [<000000002>] 0xffffffffa0005678\n' >"$T/leak-unloaded"
printf 'unreferenced object 0x000000006d1f2e40 (size 64):\n  backtrace:\n    [<000000001>] kmalloc_trace+0x26/0x60\n    [<000000002>] qotp_peer_add+0x60/0x200 [qotp]\n' >"$T/leak-qotp"
printf 'unreferenced object 0x000000006d1f2e40 (size 64):\n  backtrace:\n    [<000000001>] kmalloc_trace+0x26/0x60\n    [<000000002>] setup_arch+0x60/0x200\n' >"$T/leak-base"

check "base-kernel RCU warning alone passes" $kr "$T/base.log"
check "module output after a base report is not part of it" $kr "$T/after.log"
if $kr "$T/bad.log" 2>/dev/null; then fail "KASAN report naming qotp was not caught"; else ok "KASAN report naming qotp fails the run"; fi
if $kr "$T/refcount-test.log" 2>/dev/null; then fail "refcount underflow during the test (no qotp frame) not caught"; else ok "any report during the test fails the run, qotp frame or not"; fi
check "a report before the test starts (boot) without qotp is a note" $kr "$T/refcount-boot.log"
check "the base kernel's known RCU warning during the test is a note" $kr "$T/rcu-test.log"
check "UML's known lockdep hardirq warning from its signal code is a note" $kr "$T/umlirq-test.log"
if $kr "$T/umlirq-qotp.log" 2>/dev/null; then fail "UML lockdep warning naming qotp not caught"; else ok "the same lockdep warning naming qotp fails the run"; fi
if $kr "$T/lockdep-other.log" 2>/dev/null; then fail "hardirq-context lockdep warning outside UML's signal code not caught"; else ok "the same lockdep warning without UML's signal frames fails the run"; fi
if $kr "$T/base.log" "$T/leak-qotp" 2>/dev/null; then fail "kmemleak object from qotp not caught"; else ok "kmemleak object allocated by qotp fails the run"; fi
if $kr "$T/base.log" "$T/leak-unloaded" 2>/dev/null; then fail "leak from an unloaded module not caught"; else ok "kmemleak object with only unresolved frames (unloaded module) fails the run"; fi
check "kmemleak object of the base kernel passes" $kr "$T/base.log" "$T/leak-base"
check "reports of a timed-out run's state dump are not read" $kr "$T/dump.log"
if $kr "$T/dump-after.log" 2>/dev/null; then fail "report before a state dump not caught"; else ok "a report logged before the state dump still fails the run"; fi
finish
