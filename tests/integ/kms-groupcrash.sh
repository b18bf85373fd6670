#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Group commit and kill -9 (Documentation/kms.md, "Group commit"): a relay dies with a PPETP
# RELAY held for its group's commit, once before the commit and once after it, and no hop
# key is ever used for two messages:
#
#   kms-a ==== kms-b ==== kms-c      ==== quantum link (qkdsimd); A - - C remote session
#
# B runs with KMSD_FAILPOINT (a crash point for tests: kill -9 of itself the first time a
# PPETP message waits for a group's commit, before or after that commit). Each time:
#   - the RELAY B took its hop key for never reached C (C never took that block);
#   - before the commit: B's store does not hold the take (the block is still verified at
#     B: the take never happened, and its bytes never left B);
#   - after the commit: B's store holds the block as consumed, and B never sends with it
#     again after its restart;
#   - after B's restart, transfers through it commit with the same fingerprint at A and C,
#     and C never takes one block of the link twice.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port); PC=$(free_port)
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a \
	"remote kms-c address 127.0.0.1:$PC"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b \
	"neighbour kms-c address 127.0.0.1:$PC qkd-sim unix:$T/qkd-bc.sock end a"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b \
	"remote kms-a address 127.0.0.1:$PA"
for q in qkd-ab qkd-bc; do start_qkdsim_named "$q"; done
start_kmsd kms-a
start_kmsd kms-c

st() { kmsctl "$1" --json status 2>/dev/null | jq -r "$2"; }
verified() { kmsctl "$1" --json links 2>/dev/null | jq -e "all(.[]; .verified_blocks >= 4)" >/dev/null; }
# sent_ids / recv_ids: hop key blocks B took to send toward C, C took from B (log order)
sent_ids() { sed -n 's/.*link kms-c: hop key block \([0-9]*\) taken to send.*/\1/p' "$T/kms-b.log"; }
recv_ids() { sed -n 's/.*link kms-b: hop key block \([0-9]*\) taken to receive.*/\1/p' "$T/kms-c.log"; }
state_at_b() { sql kms-b "SELECT state FROM blocks WHERE link='kms-c' AND id=$1"; }
up() {
	[ "$(st kms-a .routes_reachable)" = 2 ] && [ "$(st kms-a .remotes_up)" = 1 ] &&
		verified kms-a && verified kms-b && verified kms-c
}
fps() { kmsctl "$1" --json transfers 2>/dev/null | jq -r '.keys[] | "\(.txid) \(.fingerprint)"' | sort; }

# crash POINT: B runs with the crash point, A starts a transfer through it, B dies at it
crash() {
	KMSD_FAILPOINT=$1 start_kmsd kms-b
	check "$1: chain up, verified key on every link" wait_for 60 up
	n_sent=$(sent_ids | wc -l)
	kmsctl kms-a --json transfer kms-c 2000 >"$T/$1.out" 2>&1 &
	tpid=$!
	check "$1: B killed itself at the crash point" \
		wait_for 30 "grep -q 'KMSD_FAILPOINT: killed' '$T/kms-b.log'"
	wait "$PID_kmsb" 2>/dev/null	# reaped: its store is as SIGKILL left it
	X=$(sent_ids | sed -n "$((n_sent + 1))p")
	check "$1: B had taken a hop key toward C ($X)" test -n "$X"
	check "$1: C never took that block (the RELAY never left B)" \
		test -z "$X" -o "$(recv_ids | grep -cx "${X:-none}")" = 0
	wait "$tpid"		# A gives up: no route to C without B
	sed -i '/KMSD_FAILPOINT: killed/d' "$T/kms-b.log"
}

crash ppetp-before-commit
check "before the commit: B's take of block $X is not on disk (still verified)" \
	test "$(state_at_b "${X:-0}")" = 2
X1=$X

start_kmsd kms-b
check "B restarted: chain up" wait_for 60 up
out=$(kmsctl kms-a --json transfer kms-c 2000)
check "a transfer through the restarted B commits ($out)" \
	test "$(echo "$out" | jq -r .bytes 2>/dev/null)" = 2000
kill -9 "$PID_kmsb"
wait "$PID_kmsb" 2>/dev/null

crash ppetp-after-commit
check "after the commit: B's take of block $X is on disk (consumed)" \
	test "$(state_at_b "${X:-0}")" = 5

start_kmsd kms-b
check "B restarted again: chain up" wait_for 60 up
for i in 1 2 3; do
	out=$(kmsctl kms-a --json transfer kms-c 2000)
	check "transfer $i after the restart commits ($out)" \
		test "$(echo "$out" | jq -r .bytes 2>/dev/null)" = 2000
done
check "B never sent with block $X again (taken to send once)" \
	test "$(sent_ids | grep -cx "${X:-none}")" = 1
check "C never took a block of the link twice ($(recv_ids | wc -l) taken)" \
	test -z "$(recv_ids | sort | uniq -d)"
check "no block is on disk as used at C but unused at B" \
	test -z "$(for id in $(recv_ids); do [ "$(state_at_b "$id")" = 5 ] || echo "$id"; done)"
check "every key committed at C is at A with the same fingerprint" \
	test -n "$(fps kms-c)" -a "$(fps kms-c)" = "$(fps kms-a | grep -F -f <(fps kms-c | cut -d' ' -f1))"
echo "# hop keys toward C lost to the crashes: $X1 (never used), $X (consumed at B only)"
finish
