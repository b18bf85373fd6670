#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key routing between three kmsd in a line, two simulated quantum links:
#
#   kms-a <== qkdsimd 1 ==> kms-b <== qkdsimd 2 ==> kms-c
#
# A and C share no link: each must learn the other through B with metric 2. When B's peer
# session to C ends (C killed: the kernel resets the TCP connection; C stopped: B's keepalive
# notices 3 intervals later) A must report C unreachable; the time from the fault to A's
# table saying so is printed as the convergence time. When C comes back, so does the route.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port); PC=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a
write_conf kms-b kms-a "$PB" "$PA" b \
	"neighbour kms-c address 127.0.0.1:$PC qkd-sim unix:$T/qkd2.sock end a"
QKD_SPEC=unix:$T/qkd2.sock write_conf kms-c kms-b "$PC" "$PB" b
start_qkdsim
"$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd2.sock" >>"$T/qkdsimd2.log" 2>&1 &
PIDS+=("$!")
wait_for 5 'grep -q "listening on" "$T/qkdsimd2.log"'
start_kmsd kms-a
start_kmsd kms-b
start_kmsd kms-c

check "A learns C via B with metric 2" \
	wait_for 15 '[ "$(route_of kms-a kms-c)" = "kms-b 2 via" ]'
check "C learns A via B with metric 2" \
	wait_for 5 '[ "$(route_of kms-c kms-a)" = "kms-b 2 via" ]'
check "B reaches both directly with metric 1" \
	wait_for 5 '[ "$(route_of kms-b kms-a)" = "kms-a 1 direct" ] &&
		    [ "$(route_of kms-b kms-c)" = "kms-c 1 direct" ]'
check "routes --json agrees" \
	test "$(kmsctl kms-a --json routes | python3 -c '
import json, sys
r = {e["dest"]: e for e in json.load(sys.stdin)["routes"]}
c = r["kms-c"]
print(c["next_hop"], c["metric"], c["status"], len(r))')" = "kms-b 2 via 2"
check "status counts adverts and reachable routes" \
	test "$(kmsctl kms-a --json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["routes_reachable"], s["route_adverts_tx"] > 0, s["route_adverts_rx"] > 0,
      s["route_adverts_bad"])')" = "2 True True 0"

# Fault 1: C dies. B's session to C ends at once; a triggered update tells A.
t0=$(date +%s%N)
kill -9 "$PID_kmsc"
if wait_for 10 '[ "$(route_of kms-a kms-c)" = "- 16 unreachable" ]'; then
	ok "A reports C unreachable after C is killed, in $(ms_since "$t0") ms"
else
	fail "A reports C unreachable after C is killed (now: $(route_of kms-a kms-c))"
fi
check "B reports C unreachable too" test "$(route_of kms-b kms-c)" = "- 16 unreachable"
check "A still reaches B" test "$(route_of kms-a kms-b)" = "kms-b 1 direct"

start_kmsd kms-c
t0=$(date +%s%N)
if wait_for 15 '[ "$(route_of kms-a kms-c)" = "kms-b 2 via" ]'; then
	ok "A learns C again after C restarts, in $(ms_since "$t0") ms"
else
	fail "A learns C again after C restarts (now: $(route_of kms-a kms-c))"
fi

# Fault 2: C goes silent (no FIN, no RST). B's keepalive (1 s, dead after 3) ends the session.
t0=$(date +%s%N)
kill -STOP "$PID_kmsc"
if wait_for 15 '[ "$(route_of kms-a kms-c)" = "- 16 unreachable" ]'; then
	ok "A reports a silent C unreachable in $(ms_since "$t0") ms (keepalive 1 s x 3)"
else
	fail "A reports a silent C unreachable (now: $(route_of kms-a kms-c))"
fi
kill -CONT "$PID_kmsc"
check "the route comes back once C resumes" \
	wait_for 15 '[ "$(route_of kms-a kms-c)" = "kms-b 2 via" ]'

check "no peer closed a session over a route advert" \
	bash -c "! grep -h 'route advert' '$T'/kms-[abc].log | grep -q 'closing\|refused\|claims'"
kill -TERM "$PID_kmsa" "$PID_kmsb" "$PID_kmsc"
check "all three exit cleanly" wait "$PID_kmsa" "$PID_kmsb" "$PID_kmsc"
finish
