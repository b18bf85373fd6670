#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Encryptor hosts apart from the key managers (Documentation/deploy.md, layout 2), on
# loopback: on each encryptor host a kmsd in the agent role -- no quantum link, one
# `qkd-etsi014` neighbour: the other encryptor's agent -- draws key from its site's key
# manager over ETSI GS QKD 014; the key managers are kmsd too, and share no quantum link:
#
#   agent enc-a <=== peer session (TLS) ===> agent enc-c       (the agents' link)
#       | ETSI 014 (SAE enc-a)                  | ETSI 014 (SAE enc-c)
#     kms-a ==== kms-b (relay) ==== kms-c                       (==== qkdsimd)
#       + - - - - - - - remote - - - - - +
#
# enc-a (the smaller id) is the master: enc_keys at kms-a, which cuts the keys from PPETP
# transfer keys to kms-c made through the relay kms-b, and tells kms-c where they lie;
# enc-c fetches them with dec_keys at kms-c. The agents' key caching then verifies every
# block: both agents end with the same verified key byte for byte. The slave's key manager
# stopped and restarted costs key, never agreement.
. "$(dirname "$0")/kms-lib.sh"

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" 127.0.0.1 enc-a enc-c >/dev/null
PA=$(free_port); PB=$(free_port); PC=$(free_port); EA=$(free_port); EC=$(free_port)
KA=$(free_port); KC=$(free_port)
nb() { echo "neighbour $1 address 127.0.0.1:$2 qkd-sim unix:$T/$3.sock end $4"; }
kme() {
	echo "etsi014-listen 127.0.0.1:$1 cert $T/pki/127.0.0.1.crt key $T/pki/127.0.0.1.key" \
		"ca $T/pki/ca.crt max-key-size 32000"
	echo "sae enc-a node kms-a"
	echo "sae enc-c node kms-c"
}
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a \
	"remote kms-c address 127.0.0.1:$PC" "$(kme "$KA")"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b "$(nb kms-c "$PC" qkd-bc a)"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b \
	"remote kms-a address 127.0.0.1:$PA" "$(kme "$KC")"
# agent NODE PEER LISTEN PEER_PORT KME_PORT
agent() {
	NB_SOURCE="qkd-etsi014 site sae $1 peer-sae $2" NB_EXTRA="etsi-block 4000" \
		write_conf "$1" "$2" "$3" "$4" - "link-max-bytes 1048576" \
		"etsi014-kme site url https://127.0.0.1:$5 cert $T/pki/$1.crt key $T/pki/$1.key ca $T/pki/ca.crt"
}
agent enc-a enc-c "$EA" "$EC" "$KA"
agent enc-c enc-a "$EC" "$EA" "$KC"
check "kmsd -n accepts an agent's configuration" "$QOTP_BIN/kmsd" -n -c "$T/enc-a.conf"
for q in qkd-ab qkd-bc; do start_qkdsim_named "$q"; done
for n in kms-a kms-b kms-c enc-a enc-c; do start_kmsd "$n"; done

etsi() { kmsctl "$1" --json links 2>/dev/null | jq -r ".[0].etsi014.$2 | tostring"; }
node_field() {	# node_field KME NODE FIELD: kmsctl saes, per peer node
	kmsctl "$1" --json saes 2>/dev/null | jq -r ".nodes[] | select(.node == \"$2\") | .$3"
}
check "the agents' link verifies key that came only through the key managers" \
	wait_for 60 '[ "$(link_field enc-a verified_total)" -ge 20 ]'
check "enc-a is the master, enc-c the slave" \
	test "$(etsi enc-a master)/$(etsi enc-c master)" = true/false
check "kms-a cut the keys from transfer keys it made to kms-c (transfers: $(node_field kms-a kms-c xfer_started))" \
	eval '[ "$(node_field kms-a kms-c xfer_started)" -ge 1 ] && [ "$(node_field kms-a kms-c delivered)" -ge 20 ]'
relayed() { kmsctl kms-b --json status 2>/dev/null | jq -r '.. | .relayed? // empty' | head -1; }
check "kms-b relayed them (PPETP relayed: $(relayed))" test "$(relayed)" -ge 1

# The slave's key manager goes away: enc_keys still succeed at kms-a, but kms-a cannot tell
# kms-c (503) or enc-c cannot fetch: nothing is stored on either agent meanwhile.
v0=$(link_field enc-c verified_total)
kill "$PID_kmsc"; wait "$PID_kmsc" 2>/dev/null
s0=$(etsi enc-c blocks_stored)
check "enc-a logs kms-a's 503: the slave's key manager is unreachable" \
	wait_for 20 'grep -q "HTTP 503: the slave SAE.s node is unreachable" "$T/enc-a.log"'
s1=$(etsi enc-c blocks_stored)
check "meanwhile enc-c stored no new block ($s0 -> $s1; one may have been in flight)" \
	test "$s1" -le $((s0 + 1))
start_kmsd kms-c
check "kms-c back: the agents' link verifies key again" \
	wait_for 60 "[ \"\$(link_field enc-c verified_total)\" -ge $((v0 + 10)) ]"
check "the agents' stores settle" \
	wait_for 30 '[ "$(count_state enc-a 0,1)" -eq 0 ] && [ "$(count_state enc-c 0,1)" -eq 0 ]'
kill -TERM "$PID_enca" "$PID_encc"
wait "$PID_enca" "$PID_encc"
stores_dump enc-a enc-c >"$T/a.dump"
stores_dump enc-c enc-a >"$T/c.dump"
check "the agents hold the same verified blocks, byte for byte ($(wc -l <"$T/a.dump"))" \
	eval '[ -s "$T/a.dump" ] && cmp -s "$T/a.dump" "$T/c.dump"'
check "no key byte in any log (the agents' verified blocks)" \
	eval '! sql enc-a "SELECT hex(k.key) FROM block_keys AS k LIMIT 20" | cut -c1-32 | grep -qiFf - "$T"/*.log'
finish
