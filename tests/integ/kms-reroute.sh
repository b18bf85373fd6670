#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key routing around a failure: four kmsd in a ring, four simulated quantum links.
#
#   kms-a ==== kms-b
#     ||         ||
#   kms-d ==== kms-c
#
# A reaches C at metric 2 through B or D (equal cost: whichever advertised C first; ties
# keep the current next hop). When that next hop M dies, A must route to C through the
# other one, O, at once (it keeps every neighbour's vector), still metric 2, and M must show
# unreachable everywhere; when M comes back, its direct routes return, O reaches it at
# metric 2, and A's route to C stays on O (an equal-cost route is not flapped back).
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port); PC=$(free_port); PD=$(free_port)
nb() { echo "neighbour $1 address 127.0.0.1:$2 qkd-sim unix:$T/$3.sock end $4"; }
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a "$(nb kms-d "$PD" qkd-ad a)"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b "$(nb kms-c "$PC" qkd-bc a)"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b "$(nb kms-d "$PD" qkd-cd a)"
QKD_SPEC=unix:$T/qkd-cd.sock write_conf kms-d kms-c "$PD" "$PC" b "$(nb kms-a "$PA" qkd-ad b)"
for q in qkd-ab qkd-bc qkd-cd qkd-ad; do start_qkdsim_named "$q"; done
for n in a b c d; do start_kmsd "kms-$n"; done

reachable() {
	kmsctl "$1" --json status 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["routes_reachable"])'
}
all_reach_three() {
	local n
	for n in a b c d; do [ "$(reachable kms-$n)" = 3 ] || return 1; done
}
check "every node reaches the other three" wait_for 15 all_reach_three
r=$(route_of kms-a kms-c)
case "$r" in
"kms-b 2 via") M=kms-b; O=kms-d ;;
"kms-d 2 via") M=kms-d; O=kms-b ;;
*) M=; O= ;;
esac
check "A reaches C at metric 2 via B or D ($r)" test -n "$M"
[ -n "$M" ] || finish
pid_var=PID_${M//-/}

t0=$(date +%s%N)
kill -9 "${!pid_var}"
if wait_for 10 '[ "$(route_of kms-a kms-c)" = "$O 2 via" ]'; then
	ok "A reroutes C via $O after $M dies, in $(ms_since "$t0") ms"
else
	fail "A reroutes C via $O after $M dies (now: $(route_of kms-a kms-c))"
fi
check "A, C and $O report $M unreachable" \
	wait_for 5 '[ "$(route_of kms-a $M)" = "- 16 unreachable" ] &&
		    [ "$(route_of kms-c $M)" = "- 16 unreachable" ] &&
		    [ "$(route_of $O $M)" = "- 16 unreachable" ]'
check "C reroutes A via $O" test "$(route_of kms-c kms-a)" = "$O 2 via"

start_kmsd "$M"
t0=$(date +%s%N)
if wait_for 15 '[ "$(route_of kms-a $M)" = "$M 1 direct" ] &&
		[ "$(route_of kms-c $M)" = "$M 1 direct" ] &&
		case "$(route_of $O $M)" in "kms-a 2 via"|"kms-c 2 via") ;; *) false;; esac'; then
	ok "$M comes back: direct from A and C, metric 2 from $O, in $(ms_since "$t0") ms"
else
	fail "$M comes back (A: $(route_of kms-a $M), C: $(route_of kms-c $M), $O: $(route_of $O $M))"
fi
check "A keeps its equal-cost route to C through $O (no flap back)" \
	test "$(route_of kms-a kms-c)" = "$O 2 via"
kill -TERM "$PID_kmsa" "$PID_kmsb" "$PID_kmsc" "$PID_kmsd"
check "all four exit cleanly" wait "$PID_kmsa" "$PID_kmsb" "$PID_kmsc" "$PID_kmsd"
finish
