#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Link key from ETSI GS QKD 014 KMEs (Documentation/etsi014.md): no qkdsimd at all.
#
#   SAE sae-a = kmsd kms-a (master) <== TLS peer session ==> kmsd kms-b (slave) = SAE sae-b
#        | enc_keys                                                 | dec_keys
#      KME_A  <-------------- kmesimd: one KME pair -------------->  KME_B
#
# kms-a asks its KME for keys shared with sae-b, names their key_IDs to kms-b, which fetches
# them from its own KME; key caching then verifies the blocks as for any link. The KMEs'
# faults (401, 503, truncated JSON, keys withheld from the slave, the KMEs killed and
# restarted) cost key, never agreement: the two stores end with the same verified blocks.
. "$(dirname "$0")/kms-lib.sh"
[ -x "$QOTP_BIN/kmesimd" ] || { echo "[FAIL] $QOTP_BIN/kmesimd not built (make -C kms)"; exit 1; }

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" 127.0.0.1 sae-a sae-b >/dev/null
PA=$(free_port); PB=$(free_port); KA=$(free_port); KB=$(free_port)
BLOCK=4096

start_kmesim() {
	"$QOTP_BIN/kmesimd" -a "127.0.0.1:$KA" -b "127.0.0.1:$KB" --cert "$T/pki/127.0.0.1.crt" \
		--key "$T/pki/127.0.0.1.key" --ca "$T/pki/ca.crt" --rate 4000000 \
		--max-key-size 262144 -C "$T/kme.ctl" >>"$T/kmesimd.log" 2>&1 &
	KME_PID=$!
	PIDS+=("$KME_PID")
	wait_for 10 'grep -q "listening on" "$T/kmesimd.log"' ||
		fail "kmesimd started: $(tail -n 1 "$T/kmesimd.log")"
}
fault() { echo "fault $*" | socat - "UNIX-CONNECT:$T/kme.ctl"; }
# etsi NODE FIELD: one counter of the first link's ETSI 014 source
etsi() { kmsctl "$1" --json links 2>/dev/null | jq -r ".[0].etsi014.$2 | tostring"; }
sae_conf() {	# sae_conf NODE PEER LISTEN PEER_PORT KME_PORT SAE PEER_SAE
	NB_SOURCE="qkd-etsi014 kme sae $6 peer-sae $7" NB_EXTRA="etsi-block $BLOCK" \
		write_conf "$1" "$2" "$3" "$4" - \
		"etsi014-kme kme url https://127.0.0.1:$5 cert $T/pki/$6.crt key $T/pki/$6.key ca $T/pki/ca.crt"
}

start_kmesim
sae_conf kms-a kms-b "$PA" "$PB" "$KA" sae-a sae-b
sae_conf kms-b kms-a "$PB" "$PA" "$KB" sae-b sae-a
check "kmsd -n accepts the ETSI 014 configuration" "$QOTP_BIN/kmsd" -n -c "$T/kms-a.conf"
start_kmsd kms-a
start_kmsd kms-b

check "caching verifies key that came only from the KMEs" \
	wait_for 30 '[ "$(link_field kms-a verified_total)" -ge 20 ]'
check "kms-a is the master, kms-b the slave" \
	test "$(etsi kms-a master)/$(etsi kms-b master)" = true/false
check "verified blocks are $BLOCK bytes less the tag ($(sql kms-a "SELECT min(len), max(len) FROM blocks WHERE state = 2" | tr '|' ' '))" \
	test "$(sql kms-a "SELECT count(*) FROM blocks WHERE state = 2 AND len != $BLOCK - 64")" -eq 0
kmsctl kms-a links | grep -q "qkd: etsi014 https://127.0.0.1:$KA sae-a -> sae-b (master), up" ||
	fail "kmsctl links names the KME and the SAE pair: $(kmsctl kms-a links | grep qkd:)"

# The KME withholds keys from the slave: those blocks are discarded on both ends.
r0=$(etsi kms-a blocks_refused)
check "fault switch: withhold" test "$(fault a withhold 3)" = ok
check "a block whose keys the slave could not get is refused and wiped" \
	wait_for 15 "[ \"\$(etsi kms-a blocks_refused)\" -gt $r0 ]"
check "the slave logged the KME's refusal" grep -q "dec_keys: HTTP 400" "$T/kms-b.log"

# 503 at the slave's KME: retried, then refused; 401 and truncated JSON at the master's.
check "fault switch: 503 at KME_B" test "$(fault b 503)" = ok
check "the slave's KME answers 503" wait_for 10 'grep -q "dec_keys: HTTP 503" "$T/kms-b.log"'
r0=$(etsi kms-b blocks_refused)
check "the slave retries a 503 and then gives the block up" \
	wait_for 20 "[ \"\$(etsi kms-b blocks_refused)\" -gt $r0 ]"
fault b off >/dev/null
check "fault switch: 401 at KME_A" test "$(fault a 401)" = ok
check "a 401 shows in kmsctl with the KME's status" \
	wait_for 10 '[ "$(etsi kms-a last_http)" = 401 ]'
check "fault switch: truncated JSON at KME_A" test "$(fault a truncate)" = ok
check "a truncated answer is a parse error, logged" \
	wait_for 10 'grep -Eq "(status|enc_keys) answer: body is not JSON" "$T/kms-a.log"'
fault a off >/dev/null
v=$(link_field kms-a verified_total)
check "key flows again once the KMEs behave" \
	wait_for 20 "[ \"\$(link_field kms-a verified_total)\" -ge $((v + 10)) ]"

# Both KMEs die mid-run and come back (pending keys lost with them).
kill -9 "$KME_PID"
check "the link shows the KME down" wait_for 15 '[ "$(link_field kms-a qkd_up)" = false ]'
check "... with the reason ($(etsi kms-a last_error))" \
	wait_for 5 'etsi kms-a last_error | grep -q "connection refused, reset or closed"'
start_kmesim
v=$(link_field kms-a verified_total)
check "caching resumes after the KMEs restart" \
	wait_for 30 "[ \"\$(link_field kms-a verified_total)\" -ge $((v + 10)) ]"

# Agreement: stop intake at the source, let caching settle, compare the stores.
kill -9 "$KME_PID"
stores_agree 30
check "no key byte in either log" \
	bash -c "! grep -Eq '\"key\" *: *\"[A-Za-z0-9+/]{8}' '$T/kms-a.log' '$T/kms-b.log'"
finish
