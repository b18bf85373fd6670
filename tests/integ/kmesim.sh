#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# kmesimd, the ETSI GS QKD 014 KME-pair simulator, on loopback, with curl as the SAEs
# (sae-a at KME A, sae-b at KME B, sae-x a stranger at B):
#
#   sae-a --HTTPS--> KME A ~~ simulated QKD link ~~ KME B <--HTTPS-- sae-b, sae-x
#
# Checks, with real HTTP answers: status fields; enc_keys (GET and POST) at A gives sae-b
# the same bytes through dec_keys at B, once; a stranger, the wrong KME, a second fetch, an
# unknown key_ID, malformed JSON, too many keys, extension_mandatory, bad paths and methods
# are refused with an Error body that says why, and take nothing away; TLS without a client
# certificate or with one from another CA is refused; every fault switch of the control
# socket (503, 401, slow (and a client giving up meanwhile), truncate, withhold) and off;
# 100 concurrent clients; not enough key is 503; pending keys expire; SIGTERM exits cleanly.
# KMESIMD=path runs another build (e.g. one with -fsanitize=address: its reports fail the test).
. "$(dirname "$0")/kms-lib.sh"

SIM=${KMESIMD:-$QOTP_BIN/kmesimd}
[ -x "$SIM" ] || { fail "$SIM not built (make -C kms)"; finish; }
"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kme sae-a sae-b sae-x >/dev/null
"$QOTP_TOP/scripts/mkpki.sh" "$T/other" sae-a >/dev/null	# another CA, same name

PA=$(free_port); PB=$(free_port)
CTL=$T/kmesimd.sock

# start_sim LOG ARGS...: sets SIM_PID once "listening on" is in LOG (its stderr, or its -l)
start_sim() {
	local log=$1; shift
	"$SIM" --cert "$T/pki/kme.crt" --key "$T/pki/kme.key" --ca "$T/pki/ca.crt" "$@" \
		>>"$T/kmesimd.out" 2>&1 &
	SIM_PID=$!
	PIDS+=("$SIM_PID")
	wait_for 10 "grep -qs '^kmesimd: listening on ' '$log'" ||
		fail "kmesimd started: $(tail -n 1 "$T/kmesimd.out")"
}

# api SAE PORT PATH [CURL ARGS...]: the HTTP status on stdout, body in $T/body, headers in
# $T/hdr (status 000: no HTTP answer, e.g. TLS refused)
api() {
	local sae=$1 port=$2 path=$3; shift 3
	curl -sS --cacert "$T/pki/ca.crt" --cert "$T/pki/$sae.crt" --key "$T/pki/$sae.key" \
		--resolve "kme:$port:127.0.0.1" -o "$T/body" -D "$T/hdr" -w '%{http_code}' \
		"$@" "https://kme:$port/api/v1/keys/$path" 2>"$T/curl.err"
}
post() { local sae=$1 port=$2 path=$3 data=$4; shift 4
	api "$sae" "$port" "$path" -H 'Content-Type: application/json' --data-binary "$data" "$@"; }
ctl() { echo "$*" | socat -t 2 - "UNIX-CONNECT:$CTL"; }
body() { jq -r "$1" "$T/body" 2>/dev/null; }
msg() { body .message; }
# stat KME FIELD: a counter from the control socket's stats line (KME A or B)
stat() {
	ctl stats | tr ';' '\n' | awk -v k="$1" -v f="$2" '$1 == k {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }'
}
# dec_body FILE: the Key IDs body naming every key of a key container
dec_body() { jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$1"; }
# same_keys FILE1 FILE2: the two key containers hold the same keys (in any order)
sorted_keys() { jq -c '.keys | sort_by(.key_ID)' "$1"; }
same_keys() { [ "$(sorted_keys "$1")" = "$(sorted_keys "$2")" ]; }

t0=$(date +%s%N)
# 100 kbit/s and 2000 keys of 256 bits a pair store: 512 kbit, full at start
start_sim "$T/kmesimd.log" -a "127.0.0.1:$PA" -b "127.0.0.1:$PB" -C "$CTL" -v \
	--rate 100000 --max-key-count 2000 -l "$T/kmesimd.log"

# ---- status ----
code=$(api sae-a "$PA" sae-b/status)
check "status at A for sae-b: 200 application/json ($code)" \
	eval '[ "$code" = 200 ] && grep -qi "^content-type: application/json" "$T/hdr"'
st=$(body '[.source_KME_ID, .target_KME_ID, .master_SAE_ID, .slave_SAE_ID, .key_size,
	.stored_key_count, .max_key_count, .max_key_per_request, .min_key_size,
	.max_key_size, .max_SAE_ID_count] | map(tostring) | join(" ")')
check "status fields ($st)" \
	test "$st" = "KME_A KME_B sae-a sae-b 256 2000 2000 128 64 262144 0"

# ---- enc_keys at A, dec_keys at B ----
code=$(api sae-a "$PA" 'sae-b/enc_keys?number=2&size=512'); cp "$T/body" "$T/enc1.json"
n=$(jq '.keys | length' "$T/enc1.json" 2>/dev/null)
len=$(jq -r '.keys[0].key' "$T/enc1.json" 2>/dev/null | base64 -d | wc -c)
check "GET enc_keys?number=2&size=512 at A: 200, 2 keys of 64 bytes ($code, $n, $len)" \
	eval '[ "$code" = 200 ] && [ "$n" = 2 ] && [ "$len" = 64 ]'
code=$(post sae-a "$PA" sae-b/enc_keys '{"number": 3}'); cp "$T/body" "$T/enc2.json"
n=$(jq '.keys | length' "$T/enc2.json" 2>/dev/null)
len=$(jq -r '.keys[2].key' "$T/enc2.json" 2>/dev/null | base64 -d | wc -c)
check "POST enc_keys {number: 3} at A: 200, 3 keys of key_size 256 bits ($code, $n, $len)" \
	eval '[ "$code" = 200 ] && [ "$n" = 3 ] && [ "$len" = 32 ]'

ids2=$(dec_body "$T/enc2.json")
code=$(post sae-x "$PB" sae-a/dec_keys "$ids2")
check "stranger sae-x: dec_keys at B of sae-b's keys is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "not issued for SAE sae-x"'
code=$(post sae-b "$PA" sae-a/dec_keys "$ids2")
check "sae-b asking the issuing KME A is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "issued at this KME"'
code=$(post sae-b "$PB" sae-x/dec_keys "$ids2")
check "naming the wrong master is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "not issued by master SAE sae-x"'
id=$(jq -r '.keys[0].key_ID' "$T/enc1.json")
code=$(api sae-b "$PB" "sae-a/dec_keys?key_ID=$id"); cp "$T/body" "$T/dec1a.json"
id1=$(jq -r '.keys[1].key_ID' "$T/enc1.json")
code2=$(post sae-b "$PB" sae-a/dec_keys "{\"key_IDs\":[{\"key_ID\":\"$id1\"}]}")
jq -s '{keys: (.[0].keys + .[1].keys)}' "$T/dec1a.json" "$T/body" >"$T/dec1.json" 2>/dev/null
check "dec_keys at B by sae-b (GET, then POST) gives the same 2 keys ($code $code2)" \
	eval '[ "$code" = 200 ] && [ "$code2" = 200 ] && same_keys "$T/enc1.json" "$T/dec1.json"'
code=$(post sae-b "$PB" sae-a/dec_keys "$ids2"); cp "$T/body" "$T/dec2.json"
check "after the refusals sae-b still gets the 3 POSTed keys, byte-identical ($code)" \
	eval '[ "$code" = 200 ] && same_keys "$T/enc2.json" "$T/dec2.json"'
code=$(api sae-b "$PB" "sae-a/dec_keys?key_ID=$id")
check "a second dec_keys of a key_ID is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "already delivered"'
uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
code=$(api sae-b "$PB" "sae-a/dec_keys?key_ID=$uuid")
check "an unknown key_ID is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "unknown"'

# ---- malformed requests: 400 (404, 405) with an Error body saying why ----
code=$(post sae-a "$PA" sae-b/enc_keys '{"number": 2,')
check "malformed JSON is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "not JSON"'
code=$(post sae-b "$PB" sae-a/dec_keys '{"key_IDs": [{"key_ID": "nope"}]}')
check "a key_ID that is no UUID is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "key_IDs\[0\].key_ID: not a UUID"'
code=$(api sae-a "$PA" 'sae-b/enc_keys?number=129')
code2=$(post sae-a "$PA" sae-b/enc_keys '{"number": 129}')
check "number 129 > max_key_per_request 128 is 400, GET and POST ($code $code2: $(msg))" \
	eval '[ "$code" = 400 ] && [ "$code2" = 400 ] && msg | grep -q max_key_per_request'
code=$(api sae-a "$PA" 'sae-b/enc_keys?size=32')
check "size 32 below min_key_size is 400 ($code: $(msg))" \
	eval '[ "$code" = 400 ] && msg | grep -q "outside min_key_size"'
code=$(api sae-a "$PA" 'sae-b/enc_keys?number=1&number=2')
code2=$(api sae-a "$PA" 'sae-b/enc_keys?number')
code3=$(api sae-a "$PA" 'sae-b/enc_keys?count=1')
check "repeated, malformed, unknown query parameters are 400 ($code $code2 $code3)" \
	test "$code $code2 $code3" = "400 400 400"
code=$(post sae-a "$PA" sae-b/enc_keys \
	'{"number": 1, "extension_mandatory": [{"abc_route": "x"}, {"xyz_qos": 1}]}')
det=$(body '[.details[].extension_mandatory_unsupported] | join(",")')
check "extension_mandatory is 400 with details ($code: $(msg); $det)" \
	eval '[ "$code" = 400 ] && [ "$det" = "abc_route,xyz_qos" ] &&
	      [ "$(msg)" = "not all extension_mandatory parameters are supported" ]'
code=$(api sae-a "$PA" sae-b/nothing)
code2=$(api sae-a "$PA" sae-b/status -X DELETE)
check "unknown path 404, DELETE 405 with Allow: GET, both Error bodies ($code $code2)" \
	eval '[ "$code" = 404 ] && [ "$code2" = 405 ] && grep -qi "^allow: GET" "$T/hdr" &&
	      msg | grep -q "not allowed"'
before=$(stat A issued)
check "none of the refused requests issued a key (issued=$before)" test "$before" = 5

# ---- TLS ----
code=$(curl -sS --cacert "$T/pki/ca.crt" --resolve "kme:$PA:127.0.0.1" -o /dev/null \
	-w '%{http_code}' "https://kme:$PA/api/v1/keys/sae-b/status" 2>/dev/null)
check "no client certificate: TLS handshake refused, no HTTP answer ($code)" test "$code" = 000
code=$(curl -sS --cacert "$T/pki/ca.crt" --cert "$T/other/sae-a.crt" --key "$T/other/sae-a.key" \
	--resolve "kme:$PA:127.0.0.1" -o /dev/null -w '%{http_code}' \
	"https://kme:$PA/api/v1/keys/sae-b/status" 2>/dev/null)
check "a certificate from another CA: refused ($code)" test "$code" = 000
check "the refusals are logged" grep -q "TLS handshake refused" "$T/kmesimd.log"

# ---- fault switches ----
r=$(ctl fault a 503)
code=$(api sae-a "$PA" sae-b/status); m=$(msg)
code2=$(api sae-b "$PB" sae-a/status)
check "fault a 503: A answers 503 ($code: $m), B still 200 ($code2)" \
	eval '[ "$r" = ok ] && [ "$code" = 503 ] && [ "$code2" = 200 ]'
r=$(ctl fault b 401)
code=$(api sae-b "$PB" sae-a/enc_keys)
check "fault b 401: B answers 401 ($r $code: $(msg))" \
	eval '[ "$r" = ok ] && [ "$code" = 401 ] && msg | grep -q "fault injected"'
r=$(ctl fault both off)
code=$(api sae-a "$PA" sae-b/status); code2=$(api sae-b "$PB" sae-a/status)
check "fault both off: A and B answer 200 again ($r $code $code2)" \
	test "$r $code $code2" = "ok 200 200"

ctl fault a slow 800 >/dev/null
issued=$(stat A issued)
code=$(api sae-a "$PA" sae-b/enc_keys -m 0.3)
wait_for 3 '[ "$(stat A canceled)" = 1 ]'
check "fault a slow 800: a client giving up after 0.3 s cancels its request, no key issued" \
	eval '[ "$code" = 000 ] && [ "$(stat A canceled)" = 1 ] &&
	      [ "$(stat A issued)" = "$issued" ]'
t=$(api sae-a "$PA" sae-b/enc_keys -w '%{http_code} %{time_total}')
check "fault a slow 800: enc_keys answers 200 after >= 0.8 s (${t})" \
	eval '[ "${t% *}" = 200 ] && awk -v t="${t#* }" "BEGIN { exit !(t >= 0.8) }"'
ctl fault a off >/dev/null

ctl fault a 503 >/dev/null
r=$(ctl fault a truncate)	# replaces the 503: one fault at a time
code=$(api sae-a "$PA" sae-b/enc_keys)
check "fault a truncate (replacing 503): 200, jq cannot parse it ($code: $(head -c 24 "$T/body"))" \
	eval '[ "$code" = 200 ] && ! jq . "$T/body" >/dev/null 2>&1'
ctl fault a off >/dev/null
code=$(api sae-a "$PA" sae-b/enc_keys)
check "fault a off: the body parses again ($code)" \
	eval '[ "$code" = 200 ] && jq -e .keys "$T/body" >/dev/null'

r=$(ctl fault a withhold 1)
code=$(api sae-a "$PA" 'sae-b/enc_keys?number=2'); cp "$T/body" "$T/enc3.json"
code1=$(api sae-b "$PB" "sae-a/dec_keys?key_ID=$(jq -r '.keys[0].key_ID' "$T/enc3.json")")
m=$(msg)
code2=$(api sae-b "$PB" "sae-a/dec_keys?key_ID=$(jq -r '.keys[1].key_ID' "$T/enc3.json")")
check "fault a withhold 1: 1st key's dec_keys 400 unknown, 2nd's 200 ($code $code1 $code2)" \
	eval '[ "$r $code $code1 $code2" = "ok 200 400 200" ] && echo "$m" | grep -q unknown'
check "stats count it (withheld=$(stat A withheld))" test "$(stat A withheld)" = 1
r1=$(ctl fault c 503); r2=$(ctl fault a slow soon); r3=$(ctl frobnicate)
check "bad control commands are errors ($r1 | $r2 | $r3)" \
	eval '[[ "$r1" == error:* && "$r2" == error:*soon* && "$r3" == error:* ]]'

# ---- 100 concurrent clients ----
seq 100 | xargs -P 100 -I{} curl -sS --cacert "$T/pki/ca.crt" --cert "$T/pki/sae-a.crt" \
	--key "$T/pki/sae-a.key" --resolve "kme:$PA:127.0.0.1" -o "$T/conc.{}" \
	-w '%{http_code}\n' "https://kme:$PA/api/v1/keys/sae-b/enc_keys" >"$T/conc.codes" 2>&1
n200=$(grep -c '^200$' "$T/conc.codes")
nids=$(cat "$T"/conc.[0-9]* 2>/dev/null | jq -r '.keys[].key_ID' | sort -u | wc -l)
check "100 concurrent enc_keys at A: all 200, 100 distinct keys ($n200, $nids)" \
	eval '[ "$n200" = 100 ] && [ "$nids" = 100 ]'
cat "$T"/conc.[0-9]* | jq -s '{keys: map(.keys[])}' >"$T/enc4.json"
code=$(post sae-b "$PB" sae-a/dec_keys "$(dec_body "$T/enc4.json")"); cp "$T/body" "$T/dec4.json"
check "sae-b fetches the 100 in one POST dec_keys, byte-identical ($code)" \
	eval '[ "$code" = 200 ] && same_keys "$T/enc4.json" "$T/dec4.json"'

# ---- not enough key: 100 keys of 4096 bits take 409.6 of the store's 512 kbit ----
full() { api sae-a "$PA" sae-b/status >/dev/null; [ "$(body .stored_key_count)" = 2000 ]; }
wait_for 5 full
code=$(api sae-a "$PA" 'sae-b/enc_keys?number=100&size=4096')
code2=$(api sae-a "$PA" 'sae-b/enc_keys?number=100&size=4096'); m=$(msg)
code3=$(api sae-b "$PB" 'sae-a/enc_keys?number=100&size=4096')
check "not enough key: 2nd 409.6 kbit 503, the reverse pair has its own ($code $code2 $code3: $m)" \
	eval '[ "$code $code2 $code3" = "200 503 200" ] && echo "$m" | grep -q "not enough key"'
code=$(api sae-a "$PA" sae-b/status); n=$(body .stored_key_count)
check "status then shows the store drained ($code, stored_key_count $n < 1000)" \
	eval '[ "$code" = 200 ] && [ "$n" -lt 1000 ]'

# ---- SIGTERM ----
kill -TERM "$SIM_PID"; wait "$SIM_PID"; rc=$?
check "SIGTERM: exit status 0, control socket removed ($rc)" \
	eval '[ "$rc" = 0 ] && [ ! -e "$CTL" ] && grep -q "exiting on signal" "$T/kmesimd.log"'

# ---- a second pair: own KME_IDs, IPv6 if there is any, pending keys expire after 1 s ----
host=127.0.0.1
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	host='[::1]'
fi
PC=$(free_port); PD=$(free_port)
start_sim "$T/kmesimd2.log" -a "$host:$PC" -b "127.0.0.1:$PD" --id-a QKD-NORTH --id-b QKD-SOUTH \
	--key-ttl 1 -l "$T/kmesimd2.log"
check "second simulator listening on $host:$PC" \
	grep -qF "listening on A=$host:$PC B=127.0.0.1:$PD" "$T/kmesimd2.log"
code=$(curl -sS --cacert "$T/pki/ca.crt" --cert "$T/pki/sae-a.crt" --key "$T/pki/sae-a.key" \
	-o "$T/body" -w '%{http_code}' --resolve "kme:$PC:${host//[\[\]]/}" \
	"https://kme:$PC/api/v1/keys/sae-b/enc_keys" 2>"$T/curl.err")
id=$(body '.keys[0].key_ID')
sleep 2.2
code2=$(api sae-b "$PD" "sae-a/dec_keys?key_ID=$id")
check "a key not fetched within --key-ttl 1 is 400 expired ($code $code2: $(msg))" \
	eval '[ "$code $code2" = "200 400" ] && msg | grep -q expired'
code=$(api sae-b "$PD" sae-a/status)
check "status names the configured KME_IDs ($(body '.source_KME_ID + " " + .target_KME_ID'))" \
	eval '[ "$code" = 200 ] &&
	      [ "$(body .source_KME_ID) $(body .target_KME_ID)" = "QKD-SOUTH QKD-NORTH" ]'
kill -TERM "$SIM_PID"; wait "$SIM_PID"

out=$("$SIM" --rate 12x 2>&1); rc=$?
check "a bad option value names the option and quotes the value ($rc: $out)" \
	eval '[ "$rc" != 0 ] && [[ "$out" == *--rate*12x* ]]'

if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/kmesimd*.log; then
	fail "sanitizer reports in the kmesimd logs"
	grep -hE -A5 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/kmesimd*.log | head -40
else
	ok "no sanitizer report in the kmesimd logs"
fi
echo "# kmesim: $(ms_since "$t0") ms"
finish
