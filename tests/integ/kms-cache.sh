#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key caching over one simulated quantum link, on loopback:
#
#   kmsd kms-a (leader) <==== TLS 1.3, mutual certificates ====> kmsd kms-b (follower)
#         \  end a                                               end b  /
#          +------------------------ qkdsimd -----------------------+
#
# Both stores must end up holding exactly the same verified blocks with the same bytes.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a "pidfile $T/kms-a.pid"
write_conf kms-b kms-a "$PB" "$PA" b

check "kmsd --check-config accepts the config" "$QOTP_BIN/kmsd" -n -c "$T/kms-a.conf"
echo "listen 127.0.0.1:99999" >>"$T/bad.conf"
out=$("$QOTP_BIN/kmsd" -n -c "$T/bad.conf" 2>&1)
check "kmsd --check-config names file, line and value" \
	grep -q "bad.conf:1: listen address is not host:port: \`127.0.0.1:99999'" <<<"$out"

start_qkdsim -r 4000000 -b 4096
start_kmsd kms-a
start_kmsd kms-b

# kmsd writes the pidfile just after it opens its control socket (what start_kmsd waits for)
check "pidfile holds the daemon's pid" wait_for 5 '[ "$(cat "$T/kms-a.pid" 2>/dev/null)" = "$PID_kmsa" ]'
check "control socket is mode 0600" test "$(stat -c %a "$T/kms-a.sock")" = 600
check "peer channel comes up" wait_for 15 '[ "$(link_field kms-a connected)" = true ]'
check "kms-a leads, kms-b follows" test "$(link_field kms-a role)/$(link_field kms-b role)" = leader/follower
check "verified key accumulates (200 blocks)" wait_for 60 '[ "$(link_field kms-a verified_total)" -ge 200 ]'
grep -q "TLS 1.3 established" "$T/kms-a.log"; check "TLS 1.3 logged" test $? -eq 0

# Stop the quantum link, let the last rounds finish, then stop both daemons cleanly.
kill -USR1 "$QKD_PID"
check "all fresh blocks verified after the link stops" \
	wait_for 20 '[ "$(count_state kms-a 0,1)" -eq 0 ] && [ "$(count_state kms-b 0,1)" -eq 0 ]'
kmsctl kms-a links >"$T/links.txt"
check "kmsctl links shows the link" grep -q "^link kms-b" "$T/links.txt"
check "kmsctl --json keys is JSON" python3 -c "import json,sys; json.loads(sys.argv[1])" "$(kmsctl kms-a --json keys)"
# SIGHUP: a broken file is refused with its line, a good one applied, the link stays up
cp "$T/kms-a.conf" "$T/kms-a.conf.good"
echo "round-blocks many" >>"$T/kms-a.conf"
kill -HUP "$PID_kmsa"
check "SIGHUP with a bad file is refused with file and line" \
	wait_for 10 'grep -q "reload refused: .*kms-a.conf:[0-9]*: round-blocks is not a number: \`many'"'"'" "$T/kms-a.log"'
cp "$T/kms-a.conf.good" "$T/kms-a.conf"
echo "round-blocks 32" >>"$T/kms-a.conf"
kill -HUP "$PID_kmsa"
check "SIGHUP with a good file reloads" wait_for 10 'grep -q "configuration reloaded" "$T/kms-a.log"'
check "link still up after reloads" test "$(link_field kms-a connected)" = true
kill -TERM "$PID_kmsa" "$PID_kmsb"
wait "$PID_kmsa"; ra=$?
wait "$PID_kmsb"; rb=$?
check "both kmsd exit 0 on SIGTERM" test "$ra/$rb" = 0/0
check "pidfile and control socket removed on exit" test ! -e "$T/kms-a.pid" -a ! -e "$T/kms-a.sock"

stores_dump kms-a kms-b >"$T/a.dump"
stores_dump kms-b kms-a >"$T/b.dump"
n=$(wc -l <"$T/a.dump")
check "both stores hold the same verified blocks, byte for byte ($n blocks)" \
	cmp -s "$T/a.dump" "$T/b.dump"
check "at least 200 verified blocks" test "$n" -ge 200
check "verified blocks hold 4096-64 key bytes (the tag material is not key)" \
	test "$(sql kms-a "SELECT DISTINCT len FROM blocks WHERE state=2")" = 4032
check "the tag material of every verified block is wiped (zeroed) in both stores" \
	test "$(sql kms-a "SELECT count(*) FROM blocks JOIN block_keys USING(link,id) WHERE state=2 AND substr(key,1,64)!=zeroblob(64)")/$(sql kms-b "SELECT count(*) FROM blocks JOIN block_keys USING(link,id) WHERE state=2 AND substr(key,1,64)!=zeroblob(64)")" = 0/0
check "no mismatches without bit errors" \
	test "$(sql kms-a "SELECT mismatched FROM counters")/$(sql kms-b "SELECT mismatched FROM counters")" = 0/0
check "verified keys are not all alike (random source)" \
	test "$(sql kms-a "SELECT count(DISTINCT key) FROM blocks JOIN block_keys USING(link,id) WHERE state=2")" -eq "$n"
check "store runs in WAL mode" test "$(sql kms-a 'PRAGMA journal_mode')" = wal
finish
