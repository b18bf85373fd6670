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
PPETP_WM=65536 PPETP_TARGET=262144
. "$(dirname "$0")/kms-ppetp.inc"
r0=$(pp kms-a relayed)
check "dumpcap captures on the untrusted mid link" capture_start mid eth1 "$T/wire.pcapng"
check "nginx-rtmp listens on 1935 behind encS" rtmp_server server 1935
check "generate a 4 s H.264/AAC test clip" make_video "$T/src.flv" 4
ffmpeg -nostdin -loglevel error -i "$T/src.flv" -map 0 -c copy -f framemd5 "$T/src.md5"
bg player nsx client ffmpeg -nostdin -loglevel warning -rw_timeout 30000000 \
	-i rtmp://10.78.2.2/live/test -map 0 -c copy $(frame_limits "$T/src.md5") -f framemd5 "$T/play.md5"
check "the player joined stream test at nginx" rtmp_joined "$T/nginx-server/logs/error.log" test
check "publish the clip through the encryptors" \
	nsx client ffmpeg -nostdin -loglevel error -re -i "$T/src.flv" -c copy -f flv rtmp://10.78.2.2/live/test
# The player ends at the source's last packet (frame_limits), or else -rw_timeout after its
# last byte: wait longer than that, in seconds.
if ! wait_for 90 bash -c "! kill -0 $PID_player"; then
	kill -INT "$PID_player"
	wait_for 10 bash -c "! kill -0 $PID_player"
fi
capture_stop "$T/wire.pcapng"
packets_match "played back" "$T/src.md5" "$T/play.md5" "$T/player.log"
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
