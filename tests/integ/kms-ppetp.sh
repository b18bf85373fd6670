#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Key transfer + PPETP relay between two kmsd that share no quantum link, on loopback:
#
#   kms-a ==== kms-b          ==== quantum link (qkdsimd) + neighbour peer session
#     ||         ||           A - - C: `remote` peer session (TLS, no quantum link)
#   kms-d ==== kms-c
#
# A and C are remotes of each other: C1/ACK/CONFIRM/DONE/ABORT travel over their own
# session, k_AX is relayed hop by hop through B or D (whichever routing picked, M; the other
# is O). Checks: `kmsctl transfer` commits a key both ends hold with the same fingerprint
# and txid; the relay's counters moved and the other's did not; each hop consumed exactly
# one link block at both of its ends, the same block id; kill -9 of the relay M (stopped
# before it could forward) mid-transfer commits nothing of that attempt anywhere and the
# automatic retry goes through O; a transfer to an unknown node fails at once.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port); PC=$(free_port); PD=$(free_port)
nb() { echo "neighbour $1 address 127.0.0.1:$2 qkd-sim unix:$T/$3.sock end $4"; }
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a "$(nb kms-d "$PD" qkd-ad a)" \
	"remote kms-c address 127.0.0.1:$PC"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b "$(nb kms-c "$PC" qkd-bc a)"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b "$(nb kms-d "$PD" qkd-cd a)" \
	"remote kms-a address 127.0.0.1:$PA"
QKD_SPEC=unix:$T/qkd-cd.sock write_conf kms-d kms-c "$PD" "$PC" b "$(nb kms-a "$PA" qkd-ad b)"
for q in qkd-ab qkd-bc qkd-cd qkd-ad; do start_qkdsim_named "$q"; done
for n in a b c d; do start_kmsd "kms-$n"; done

# st NODE EXPR: a value from `kmsctl --json status` (s = the object)
st() {
	kmsctl "$1" --json status 2>/dev/null |
		python3 -c "import json, sys; s = json.load(sys.stdin); print($2)"
}
# consumed NODE LINK: link blocks in state consumed (from `kmsctl --json keys`)
consumed() {
	kmsctl "$1" --json keys 2>/dev/null | python3 -c "
import json, sys
print(next(l['consumed']['blocks'] for l in json.load(sys.stdin) if l['link'] == '$2'))"
}
# used_ids NODE LINK: ids of the consumed link blocks, one line
used_ids() { sql "$1" "SELECT id FROM blocks WHERE link='$2' AND state=5 ORDER BY id" | tr '\n' ' '; }
# keys NODE: "peer src txid state bytes fingerprint" of every transfer key
keys() {
	kmsctl "$1" --json transfers 2>/dev/null | python3 -c '
import json, sys
for k in json.load(sys.stdin)["keys"]:
    print(k["peer"], k["src"], k["txid"], k["state"], k["bytes"], k["fingerprint"])'
}
verified_everywhere() {
	local n l
	for n in a b c d; do
		for l in $(kmsctl kms-$n --json links | python3 -c '
import json, sys
print(" ".join(str(l["verified_blocks"]) for l in json.load(sys.stdin)))'); do
			[ "$l" -ge 8 ] || return 1
		done
	done
}

check "every node reaches the other three" \
	wait_for 20 '[ "$(st kms-a "s[\"routes_reachable\"]")" = 3 ] &&
		     [ "$(st kms-c "s[\"routes_reachable\"]")" = 3 ]'
check "A and C hold their remote session (no quantum link)" \
	wait_for 10 '[ "$(st kms-a "s[\"remotes_up\"]")" = 1 ] &&
		     [ "$(st kms-c "s[\"remotes_up\"]")" = 1 ]'
check "every link has verified key at both ends" wait_for 20 verified_everywhere

r=$(route_of kms-a kms-c)
case "$r" in
"kms-b 2 via") M=kms-b; O=kms-d ;;
"kms-d 2 via") M=kms-d; O=kms-b ;;
*) M=; O= ;;
esac
check "A reaches C at metric 2 via B or D ($r)" test -n "$M"
[ -n "$M" ] || finish

# The link rates of `kmsctl keys` come from one-second samples, the first two a second or two
# after kmsd starts; the transfer must come after them, or its hop's key use falls before
# the window the rate check below reads (it did once the polls above got fast).
check "A's link to $M has a rate window" wait_for 10 \
	'[ "$(kmsctl kms-a --json keys | jq -r ".[] | select(.link == \"$M\") | .rates.window_s")" != 0 ]'

# 1. One transfer A -> C through M.
out=$(kmsctl kms-a --json transfer kms-c 4000)
rc=$?
check "kmsctl transfer kms-c 4000 commits (exit $rc)" test "$rc" = 0
txid=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["txid"])' 2>/dev/null)
fp=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["fingerprint"])' 2>/dev/null)
ms=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["ms"])' 2>/dev/null)
echo "# transfer A -> C over 2 hops: $ms ms from the request to the commit at A"
# rate NODE LINK FIELD: from `kmsctl --json keys` (rates over the last 10 s)
rate() {
	kmsctl "$1" --json keys 2>/dev/null |
		jq -r ".[] | select(.link == \"$2\") | .rates.$3"
}
rates_ok() {
	local u q
	u=$(rate kms-a "$M" used_bytes_per_s) && q=$(rate kms-a "$M" qkd_bytes_per_s) &&
		jq -en "$u > 0 and $q > 0" >/dev/null
}
check "kmsctl keys: A's link to $M shows QKD intake and the hop's key use as rates" \
	wait_for 5 rates_ok
check "kmsctl keys: no key use on A's link to $O" test "$(rate kms-a $O used_bytes_per_s)" = 0
check "A holds the key as source: $(keys kms-a | tr '\n' ';')" \
	test "$(keys kms-a)" = "kms-c kms-a $txid verified 4000 $fp"
check "C holds the same key (same txid and fingerprint)" \
	wait_for 5 '[ "$(keys kms-c)" = "kms-a kms-a $txid verified 4000 $fp" ]'
check "A counts 1 started, 1 committed, 0 failed; C 1 received" \
	test "$(st kms-a 's["ppetp"]["started"], s["ppetp"]["committed"], s["ppetp"]["failed"]')
$(st kms-c 's["ppetp"]["received"]')" = "1 1 0
1"
check "relay $M counted 1 relay of 4000 bytes, $O none" \
	test "$(st $M 's["ppetp"]["relayed"], s["ppetp"]["relayed_bytes"]')
$(st $O 's["ppetp"]["relayed"]')" = "1 4000
0"
check "A reports per-hop latency over 2 hops" \
	test "$(st kms-a 's["ppetp"]["hops_total"], s["ppetp"]["latency_ms_per_hop"] >= 0')" = "2 True"
check "hop A-$M: one link block consumed at each end, the same one" \
	test "$(consumed kms-a $M) $(consumed $M kms-a)" = "1 1" -a \
	     "$(used_ids kms-a $M)" = "$(used_ids $M kms-a)"
check "hop $M-C: one link block consumed at each end, the same one" \
	test "$(consumed $M kms-c) $(consumed kms-c $M)" = "1 1" -a \
	     "$(used_ids $M kms-c)" = "$(used_ids kms-c $M)"
check "links through $O untouched" \
	test "$(consumed kms-a $O) $(consumed kms-c $O) $(consumed $O kms-a) $(consumed $O kms-c)" = "0 0 0 0"
check "no transfer key at the relays" test -z "$(keys kms-b)$(keys kms-d)"

# 2. Unknown destination: refused at once, nothing taken.
out=$(kmsctl kms-a transfer kms-x 100 2>&1)
rc=$?
check "transfer to an unknown node fails at once (exit $rc: $out)" \
	test "$rc" = 1 -a "$(consumed kms-a $M)" = 1

# 3. The relay dies mid-transfer: stopped before it forwards, then killed.
pid_var=PID_${M//-/}
kill -STOP "${!pid_var}"
kmsctl kms-a --json transfer kms-c 2048 >"$T/t2.out" 2>&1 &
tpid=$!
check "the transfer started (through the stopped relay)" \
	wait_for 30 '[ "$(st kms-a "s[\"ppetp\"][\"started\"]")" = 2 ]'
check "C holds nothing of the stalled attempt" test "$(keys kms-c | wc -l)" = 1
kill -9 "${!pid_var}"
t0=$(date +%s%N)
wait "$tpid"
rc=$?
check "the transfer commits anyway, in $(ms_since "$t0") ms after the kill (exit $rc)" test "$rc" = 0
txid2=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["txid"])' "$T/t2.out" 2>/dev/null)
check "A counts the failed attempt and 2 commits" \
	test "$(st kms-a 's["ppetp"]["attempts_failed"], s["ppetp"]["committed"], s["ppetp"]["failed"]')" = "1 2 0"
check "the retry went through $O" test "$(st $O 's["ppetp"]["relayed"]')" = 1
check "A and C hold exactly the same two keys, the second with the retry's txid" \
	test "$(keys kms-a | cut -d' ' -f2- | sort)" = "$(keys kms-c | cut -d' ' -f2- | sort)" -a \
	     "$(keys kms-a | wc -l)" = 2 -a \
	     -n "$(keys kms-a | grep " $txid2 verified 2048 ")"
check "hops through $O consumed one block at each end" \
	test "$(consumed kms-a $O) $(consumed $O kms-a) $(consumed $O kms-c) $(consumed kms-c $O)" = "1 1 1 1" -a \
	     "$(used_ids kms-a $O)" = "$(used_ids $O kms-a)" -a "$(used_ids $O kms-c)" = "$(used_ids kms-c $O)"
check "the aborted attempt took one block on A-$M only; C took nothing from $M" \
	test "$(consumed kms-a $M) $(consumed kms-c $M)" = "2 1"

# 4. The relay comes back: its store never gives the dead attempt's block to anything.
start_kmsd "$M"
check "$M back: routes converge" wait_for 20 '[ "$(st $M "s[\"routes_reachable\"]")" = 3 ]'
check "$M consumed nothing on restart" test "$(consumed $M kms-a) $(consumed $M kms-c)" = "1 1"
kill -TERM "$PID_kmsa" "$PID_kmsb" "$PID_kmsc" "$PID_kmsd"
check "all four exit cleanly" wait "$PID_kmsa" "$PID_kmsb" "$PID_kmsc" "$PID_kmsd"
finish
