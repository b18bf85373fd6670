#!/usr/bin/env bash
# An RTMP stream between two gateways whose kmsd share no quantum link (the paper's Fig. 1
# star, A in the middle; the same setup as kms-ppetp.sh):
#
#  client ---- encC ========= mid ========= encS ---- server
#  ffmpeg      kmsd kms-b     kmsd kms-a    kmsd kms-c      nginx-rtmp
#                 \ end b   a / (relay)  \ a   end b /
#                  +- qkdsimd A-B -+      +- qkdsimd A-C -+
#
# Every ring key of the pair encC<->encS is a PPETP transfer key relayed by kms-a. ffmpeg
# publishes a clip from behind encC to nginx-rtmp behind encS and plays it back from behind
# encC: identical per-frame hashes, tshark on mid dissects no RTMP and finds no plaintext
# marker, kms-a's relay counters move during the stream, and the kernels' ring counters
# equal what kmsd delivered.
# About 4 to 4.5 min at load average ~3; more when the machine is busier:
# qotp-timeout: 720
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" --json "${@:2}"; }

dp_topo

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-a kms-b kms-c >/dev/null || fail "test PKI"
# conf NODE MYADDR LINES...
conf() {
	local n=$1 a=$2; shift 2
	{
		cat <<EOF
node $n
listen $a:7000
tls-cert $T/pki/$n.crt
tls-key $T/pki/$n.key
tls-ca $T/pki/ca.crt
store $T/$n.db
control $T/$n.sock
pidfile $T/$n.pid
min-block-age-ms 100
round-interval-ms 50
keepalive 3
reconnect-max 1
dist-low-watermark 65536
dist-target 262144
ppetp-block 32000
EOF
		printf '%s\n' "$@"
	} >"$T/$n.conf"
}
conf kms-a 10.78.0.2 \
	"neighbour kms-b address 10.78.0.1:7000 qkd-sim unix:$T/qkd-ab.sock end a" \
	"neighbour kms-c address 10.78.9.1:7000 qkd-sim unix:$T/qkd-ac.sock end a"
conf kms-b 10.78.0.1 "neighbour kms-a qkd-sim unix:$T/qkd-ab.sock end b" \
	"remote kms-c address 10.78.9.1:7000 qotp-peer 2"
conf kms-c 10.78.9.1 "neighbour kms-a qkd-sim unix:$T/qkd-ac.sock end b" \
	"remote kms-b qotp-peer 1"
# 32 KiB QKD blocks: one transfer (one link block per hop) carries a 32000-byte ring block.
bg qab "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd-ab.sock" -r 16000000 -b 32768
bg qac "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd-ac.sock" -r 16000000 -b 32768
wait_for 10 bash -c "grep -q 'listening on' '$T/qab.log' && grep -q 'listening on' '$T/qac.log'" ||
	fail "qkdsimd listens"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
check "encC: gateway mode on 1935" nsx encC "$qotpctl" set ports 1935 mode gateway low-watermark 65536
check "encS: gateway mode on 1935" nsx encS "$qotpctl" set ports 1935 mode gateway low-watermark 65536
check "encC: peer 2" nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64
check "encS: peer 1" nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64
bg kmsa nsx mid "$QOTP_BIN/kmsd" -f -v -c "$T/kms-a.conf"
bg kmsb nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-b.conf"
bg kmsc nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-c.conf"

# pair NODE FIELD: from `kmsctl pairs` (one pair each)
pair() { kmsctl "$1" pairs | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pairs'][0]['$2'])"; }
# pp NODE FIELD: PPETP counter from `kmsctl status`
pp() { kmsctl "$1" status | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['ppetp']['$2'])"; }
# ring NS PEER DIR FIELD
ring() {
	nsx "$1" "$qotpctl" show --json | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(p["rings"][sys.argv[2]].get(sys.argv[3], 0) for p in d["peers"] if p["id"] == int(sys.argv[1])))' "$2" "$3" "$4"
}
filled() { [ "$(ring encC 2 encrypt avail)" -ge 65536 ] && [ "$(ring encS 1 encrypt avail)" -ge 65536 ]; }

check "kms-b and kms-c distribute PPETP transfer keys" wait_for 30 bash -c \
	"grep -q 'key distribution to qotp peer 2 from PPETP transfer keys' '$T/kmsb.log' &&
	 grep -q 'key distribution to qotp peer 1 from PPETP transfer keys' '$T/kmsc.log'"
check "kmsctl pairs says via ppetp" test "$(pair kms-b via) $(pair kms-c via)" = "ppetp ppetp"
check "rings fill from kmsd through the relay (>= 64 KiB each way)" wait_for 120 filled
note "encC encrypt $(ring encC 2 encrypt avail) B, encS encrypt $(ring encS 1 encrypt avail) B"
check "kms-a relayed for both ($(pp kms-a relayed) relays, $(pp kms-a relayed_bytes) B)" \
	test "$(pp kms-a relayed)" -ge 2
check "kms-a holds no transfer key and no pair" bash -c \
	"[ \"\$($QOTP_BIN/kmsctl -s $T/kms-a.sock --json transfers)\" = '{\"node\":\"kms-a\",\"keys\":[]}' ]"

settled() {
	[ "$(pair kms-b inflight)" = 0 ] && [ "$(pair kms-c inflight)" = 0 ] &&
		[ "$(pair kms-b xfer_inflight)" = 0 ] && [ "$(pair kms-c xfer_inflight)" = 0 ]
}
r0=$(pp kms-a relayed)
check "tshark captures on the untrusted mid link" capture_start mid eth1 "$T/wire.pcapng"
check "nginx-rtmp listens on 1935 behind encS" rtmp_server server 1935
check "generate a 4 s H.264/AAC test clip" make_video "$T/src.flv" 4
ffmpeg -nostdin -loglevel error -i "$T/src.flv" -map 0 -c copy -f framemd5 "$T/src.md5"
bg player nsx client ffmpeg -nostdin -loglevel warning -rw_timeout 30000000 \
	-i rtmp://10.78.2.2/live/test -map 0 -c copy -f framemd5 "$T/play.md5"
wait_for 60 bash -c "ip netns exec $(nsname server) ss -tnH state established '( sport = :1935 )' | grep -q ."
check "publish the clip through the encryptors" \
	nsx client ffmpeg -nostdin -loglevel error -re -i "$T/src.flv" -c copy -f flv rtmp://10.78.2.2/live/test
# The player ends -rw_timeout after the last byte: wait longer than that, in seconds.
if ! wait_for 90 bash -c "! kill -0 $PID_player"; then
	kill -INT "$PID_player"
	wait_for 10 bash -c "! kill -0 $PID_player"
fi
capture_stop "$T/wire.pcapng"
framemd5_list "$T/src.md5" >"$T/src.list"
framemd5_list "$T/play.md5" >"$T/play.list" 2>/dev/null
nsrc=$(wc -l <"$T/src.list"); nplay=$(wc -l <"$T/play.list")
if [ "$nsrc" -gt 50 ] && cmp -s "$T/src.list" "$T/play.list"; then
	ok "played stream equals source: $nplay/$nsrc packets, identical hashes"
else
	fail "played stream differs from source: $nplay of $nsrc packets"
	tail -5 "$T/player.log" | sed 's/^/       | /'
fi
n=$(rtmp_messages "$T/wire.pcapng")
check "eavesdropper on mid dissects no RTMP command message ($n)" test "$n" -eq 0
m=$(plaintext_markers "$T/wire.pcapng" 2>/dev/null | tr '\n' ',')
check "no plaintext marker on mid (${m%,})" test -z "$m"
relayed_more() { [ "$(pp kms-a relayed)" -gt "$r0" ]; }
check "kms-a relayed key during the stream (from $r0 relays)" wait_for 20 relayed_more
note "kms-a: $(pp kms-a relayed) relays, $(pp kms-a relayed_bytes) B; kms-b: $(pp kms-b committed) transfers, $(pp kms-b latency_ms_per_hop) ms per hop"
after_stream() {
	settled && [ "$(ring encC 2 encrypt pushed)" = "$(pair kms-b delivered_out_bytes)" ] &&
		[ "$(ring encC 2 decrypt pushed)" = "$(pair kms-b delivered_in_bytes)" ] &&
		[ "$(ring encC 2 encrypt pushed)" = "$(ring encS 1 decrypt pushed)" ] &&
		[ "$(ring encS 1 encrypt pushed)" = "$(ring encC 2 decrypt pushed)" ]
}
check "after the stream: kernel rings = kms-b's delivered counts, and across the pair" \
	wait_for 60 after_stream
finish
