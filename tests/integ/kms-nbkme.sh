#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# kmsd as an ETSI GS QKD 014 KME for applications (Documentation/etsi014.md, "Northbound"),
# on loopback, with curl as the SAEs:
#
#   sae-a -> KME kms-a ==== kms-b ==== kms-c <- KME <- sae-c, sae-x
#                 |          KME <- sae-b    |       (==== quantum link, qkdsimd)
#                 + - - - - - remote - - - - +
#
# sae-a (master) gets keys for sae-b (a quantum neighbour's SAE: cut from link blocks) and
# for sae-c (one relay away: cut from PPETP transfer keys made on demand); the slaves fetch
# the same keys with dec_keys at their own node. Refused: a certificate of no configured SAE
# (401), a third SAE of the slave's node, the wrong master, a second fetch, an unknown key_ID,
# bad sizes and numbers (400), a slave at the KME's own node; 100 concurrent clients; the
# keys a slave's node holds survive its restart; kmsctl shows counts, never key bytes.
. "$(dirname "$0")/kms-lib.sh"
command -v curl >/dev/null && command -v jq >/dev/null ||
	{ echo "[FAIL] curl and jq are needed (scripts/deps.sh)"; exit 1; }

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kme sae-a sae-b sae-c sae-x sae-z >/dev/null
PA=$(free_port); PB=$(free_port); PC=$(free_port)
KA=$(free_port); KB=$(free_port); KC=$(free_port)
nb() { echo "neighbour $1 address 127.0.0.1:$2 qkd-sim unix:$T/$3.sock end $4"; }
kme() {
	echo "etsi014-listen 127.0.0.1:$1 cert $T/pki/kme.crt key $T/pki/kme.key ca $T/pki/ca.crt" \
		"max-keys 64 key-ttl 600"
	echo "sae sae-a node kms-a"
	echo "sae sae-b node kms-b"
	echo "sae sae-c node kms-c"
	echo "sae sae-x node kms-c"
}
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-a kms-b "$PA" "$PB" a \
	"remote kms-c address 127.0.0.1:$PC" "ppetp-block 2048" "$(kme "$KA")"
QKD_SPEC=unix:$T/qkd-ab.sock write_conf kms-b kms-a "$PB" "$PA" b \
	"$(nb kms-c "$PC" qkd-bc a)" "$(kme "$KB" | grep -v 'sae-[cx]')"
QKD_SPEC=unix:$T/qkd-bc.sock write_conf kms-c kms-b "$PC" "$PB" b \
	"remote kms-a address 127.0.0.1:$PA" "$(kme "$KC" | grep -v sae-b)"
check "kmsd -n accepts etsi014-listen and sae lines" "$QOTP_BIN/kmsd" -n -c "$T/kms-a.conf"
for q in qkd-ab qkd-bc; do start_qkdsim_named "$q"; done
for n in a b c; do start_kmsd "kms-$n"; done

# api SAE PORT PATH [CURL ARGS...]: HTTP status on stdout, body in $T/body
api() {
	local sae=$1 port=$2 path=$3; shift 3
	curl -sS --cacert "$T/pki/ca.crt" --cert "$T/pki/$sae.crt" --key "$T/pki/$sae.key" \
		--resolve "kme:$port:127.0.0.1" -o "$T/body" -w '%{http_code}' \
		"$@" "https://kme:$port/api/v1/keys/$path" 2>"$T/curl.err"
}
post() { local sae=$1 port=$2 path=$3 data=$4; shift 4
	api "$sae" "$port" "$path" -H 'Content-Type: application/json' --data-binary "$data" "$@"; }
msg() { jq -r .message "$T/body" 2>/dev/null; }
dec_body() { jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$1"; }
sorted_keys() { jq -c '.keys | sort_by(.key_ID)' "$1"; }
same_keys() { [ "$(sorted_keys "$1")" = "$(sorted_keys "$2")" ]; }
nkeys() { jq '.keys | length' "$1" 2>/dev/null; }
saes() { kmsctl "$1" --json saes 2>/dev/null | jq -r "$2"; }

check "the three KMEs listen" \
	wait_for 20 "grep -q 'serving SAEs' '$T/kms-a.log' && grep -q 'serving SAEs' '$T/kms-c.log'"
check "verified link key on both links" wait_for 30 \
	'[ "$(link_field kms-a verified_total)" -ge 8 ] && [ "$(link_field kms-c verified_total)" -ge 8 ]'

# ---- status ----
code=$(api sae-a "$KA" sae-b/status)
check "status sae-a -> sae-b: 200, source kms-a, target kms-b, key_size 256 ($code: $(jq -c . "$T/body"))" \
	eval '[ "$code" = 200 ] && [ "$(jq -r ".source_KME_ID, .target_KME_ID, .key_size, .max_key_per_request" "$T/body" | tr "\n" " ")" = "kms-a kms-b 256 64 " ]'

# ---- neighbour: keys cut from link blocks ----
code=$(api sae-a "$KA" 'sae-b/enc_keys?number=4&size=512'); cp "$T/body" "$T/e1.json"
check "enc_keys sae-a -> sae-b: 4 keys of 512 bits ($code: $(msg))" \
	eval '[ "$code" = 200 ] && [ "$(nkeys "$T/e1.json")" = 4 ] && [ "$(jq -r ".keys[0].key" "$T/e1.json" | base64 -d | wc -c)" = 64 ]'
code=$(post sae-b "$KB" sae-a/dec_keys "$(dec_body "$T/e1.json")"); cp "$T/body" "$T/d1.json"
check "sae-b gets the same 4 keys from kms-b ($code: $(msg))" \
	eval '[ "$code" = 200 ] && same_keys "$T/e1.json" "$T/d1.json"'
code=$(post sae-b "$KB" sae-a/dec_keys "$(dec_body "$T/e1.json")")
check "a second fetch is 400 ($code: $(msg))" eval '[ "$code" = 400 ] && msg | grep -q "not found"'

# ---- one relay away: keys cut from a PPETP transfer key made on demand ----
code=$(post sae-a "$KA" sae-c/enc_keys '{"number": 8, "size": 256}'); cp "$T/body" "$T/e2.json"
check "enc_keys sae-a -> sae-c through the relay: 8 keys ($code: $(msg))" \
	eval '[ "$code" = 200 ] && [ "$(nkeys "$T/e2.json")" = 8 ]'
check "kms-a made a transfer for it ($(saes kms-a '.nodes[] | select(.node == "kms-c") | .xfer_started'))" \
	test "$(saes kms-a '.nodes[] | select(.node == "kms-c") | .xfer_started')" -ge 1
id=$(jq -r '.keys[0].key_ID' "$T/e2.json")
code=$(post sae-x "$KC" sae-a/dec_keys "$(dec_body "$T/e2.json")")
check "third SAE sae-x at kms-c asking for sae-c's keys: 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "not found"'
code=$(post sae-c "$KC" sae-b/dec_keys "$(dec_body "$T/e2.json")")
check "sae-c naming the wrong master: 400 ($code)" test "$code" = 400
code=$(api sae-c "$KC" "sae-a/dec_keys?key_ID=00000000-0000-4000-8000-000000000000")
check "an unknown key_ID: 400 ($code)" test "$code" = 400
code=$(post sae-c "$KA" sae-a/dec_keys "$(dec_body "$T/e2.json")")
check "sae-c at kms-a's KME (not its node): 401 ($code)" test "$code" = 401
# kms-c restarts: what it holds for sae-c survives (the store)
kill "$PID_kmsc"; wait "$PID_kmsc" 2>/dev/null
start_kmsd kms-c
check "after a restart kms-c still holds the 8 keys for sae-c ($(saes kms-c '.pending[0].keys'))" \
	wait_for 10 '[ "$(saes kms-c ".pending[0].keys")" = 8 ]'
code=$(api sae-c "$KC" "sae-a/dec_keys?key_ID=$id"); cp "$T/body" "$T/d2a.json"
code2=$(post sae-c "$KC" sae-a/dec_keys "$(jq -c '{key_IDs: [.keys[1:][] | {key_ID}]}' "$T/e2.json")")
cp "$T/body" "$T/d2b.json"
jq -s '{keys: map(.keys[])}' "$T/d2a.json" "$T/d2b.json" >"$T/d2.json"
check "sae-c fetches all 8 (GET one, POST seven), byte-identical ($code $code2)" \
	eval '[ "$code $code2" = "200 200" ] && same_keys "$T/e2.json" "$T/d2.json"'
code=$(api sae-c "$KC" "sae-a/dec_keys?key_ID=$id")
check "the key is gone once delivered: 400 ($code)" test "$code" = 400

# ---- refusals at the master's KME ----
code=$(api sae-z "$KA" sae-b/enc_keys)
check "a certificate of no configured SAE: 401 ($code: $(msg))" test "$code" = 401
code=$(api sae-a "$KA" 'sae-b/enc_keys?size=100')
check "size not a multiple of 8: 400 ($code: $(msg))" test "$code" = 400
code=$(api sae-a "$KA" 'sae-b/enc_keys?size=65536')
check "size above max_key_size: 400 ($code)" test "$code" = 400
code=$(api sae-a "$KA" 'sae-b/enc_keys?number=65')
check "number above max_key_per_request: 400 ($code: $(msg))" test "$code" = 400
code=$(api sae-a "$KA" sae-nobody/enc_keys)
check "an unknown slave SAE: 400 ($code: $(msg))" test "$code" = 400
code=$(post sae-c "$KC" sae-x/enc_keys '{"number": 1}')
check "a slave at the KME's own node: 400 ($code: $(msg))" test "$code" = 400

# ---- 100 concurrent clients, across the relay ----
seq 100 | xargs -P 100 -I{} curl -sS --cacert "$T/pki/ca.crt" --cert "$T/pki/sae-a.crt" \
	--key "$T/pki/sae-a.key" --resolve "kme:$KA:127.0.0.1" -o "$T/conc.{}" \
	-w '%{http_code}\n' "https://kme:$KA/api/v1/keys/sae-c/enc_keys" >"$T/conc.codes" 2>&1
n200=$(grep -c '^200$' "$T/conc.codes")
cat "$T"/conc.[0-9]* 2>/dev/null | jq -s '{keys: map(.keys[]? )}' >"$T/e3.json"
nids=$(jq -r '.keys[].key_ID' "$T/e3.json" | sort -u | wc -l)
nkey=$(jq -r '.keys[].key' "$T/e3.json" | sort -u | wc -l)
check "100 concurrent enc_keys: all 200, 100 distinct key_IDs and keys ($n200, $nids, $nkey)" \
	eval '[ "$n200" = 100 ] && [ "$nids" = 100 ] && [ "$nkey" = 100 ]'
code=$(post sae-c "$KC" sae-a/dec_keys "$(jq -c '{key_IDs: [.keys[:50][] | {key_ID}]}' "$T/e3.json")")
cp "$T/body" "$T/d3a.json"
code2=$(post sae-c "$KC" sae-a/dec_keys "$(jq -c '{key_IDs: [.keys[50:][] | {key_ID}]}' "$T/e3.json")")
cp "$T/body" "$T/d3b.json"
jq -s '{keys: map(.keys[])}' "$T/d3a.json" "$T/d3b.json" >"$T/d3.json"
check "sae-c fetches the 100 in two POSTs (max-keys 64), byte-identical ($code $code2)" \
	eval '[ "$code $code2" = "200 200" ] && same_keys "$T/e3.json" "$T/d3.json"'

# ---- kmsctl: counts, never key bytes ----
api sae-a "$KA" 'sae-c/enc_keys?number=3' >/dev/null; cp "$T/body" "$T/e4.json"
out=$(kmsctl kms-c saes; kmsctl kms-c --json saes)
leak=0
for k in $(jq -r '.keys[].key' "$T/e4.json"); do
	case $out in *"$k"*) leak=1 ;; esac
done
check "kmsctl saes at kms-c: 3 keys pending for sae-c, no key bytes ($(kmsctl kms-c saes | grep pending))" \
	eval '[ "$(saes kms-c ".pending[0].keys")" = 3 ] && [ $leak = 0 ]'
check "no key bytes in any log" \
	eval '! grep -qF -f <(jq -r ".keys[].key" "$T"/e[1-4].json) "$T"/kms-*.log'
finish
