#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# At most once, across kill -9: a process takes verified blocks from the store two at a
# time and records each use; we SIGKILL it at random moments and restart it until the
# store is empty. No block may be used twice, and every block must end up either used or
# (at most the few taken right before a kill) delivered-but-unused: never handed out again.
. "$(dirname "$0")/kms-lib.sh"

TORTURE=$QOTP_BIN/store_torture
[ -x "$TORTURE" ] || { fail "$TORTURE not built"; finish; }
N=3000
check "populate $N verified blocks" "$TORTURE" "$T/s.db" populate $N

kills=0
while :; do
	"$TORTURE" "$T/s.db" take "$T/used.log" &
	pid=$!
	sleep "0.0$((RANDOM % 9 + 1))"
	# After 100 kills (each run takes a few blocks on a slow disk), let one run finish.
	if [ "$kills" -lt 100 ] && kill -9 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		kills=$((kills + 1))
	else
		wait "$pid"; rc=$?
		[ "$rc" -eq 0 ] || fail "taker exited with status $rc"
		break
	fi
done
used=$(wc -l <"$T/used.log")
dup=$(sort "$T/used.log" | uniq -d | wc -l)
check "taker killed $kills times mid-run" test "$kills" -ge 3
check "no block used twice ($used uses)" test "$dup" -eq 0
check "no block left verified" test "$(sql s "SELECT count(*) FROM blocks WHERE state=2")" -eq 0
check "every used block is recorded delivered" test "$(
	sort "$T/used.log" >"$T/used.sorted"
	sql s "SELECT id FROM blocks WHERE state=4 ORDER BY id" | sort | comm -23 "$T/used.sorted" - | wc -l)" -eq 0
lost=$((N - used))
check "blocks lost to kills ($lost) at most 2 per kill" test "$lost" -le $((2 * kills))
finish
