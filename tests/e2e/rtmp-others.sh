#!/usr/bin/env bash
# RTMP implementations other than ffmpeg playing from nginx-rtmp, through the two
# gateways of dp-topo.inc, with loss, delay and reordering on the untrusted links:
#
#  client ---- encC ====== mid (netem, tshark) ====== encS ---- server
#
#  1. librtmp (rtmpdump) plays from nginx-rtmp over IPv4 while ffmpeg publishes from the
#     client: librtmp has its own handshake, chunk sizes and acknowledgement windows.
#  2. ffmpeg's own RTMP server (-listen 1, no nginx) behind encS receives what ffmpeg
#     publishes from the client, over IPv6.
# Each time every packet received equals the source (sizes and hashes); tshark on mid
# dissects no RTMP command and finds no plaintext marker; the kernel counters show the
# bytes went through qotp, with no checksum or descriptor drop.
# qotp-timeout: 600
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
dp_keyed 8M
for i in eth0 eth1; do
	nsx mid tc qdisc add dev $i root netem delay 5ms 2ms loss 2% reorder 10% 50%
done
check "generate a 6 s H.264/AAC test clip" make_video "$T/src.flv" 6
ffmpeg -nostdin -loglevel error -i "$T/src.flv" -map 0 -c copy -f framemd5 "$T/src.md5"

# wire_ok WHAT PCAP: the eavesdropper saw the stream's bytes, and only as ciphertext
wire_ok() {
	local bytes n m
	bytes=$(wire_bytes "$2")
	if [ "$bytes" -gt "$(wc -c <"$T/src.flv")" ]; then ok "$1: mid carried $bytes bytes of port-1935 payload"; else fail "$1: only $bytes payload bytes on mid"; fi
	n=$(rtmp_messages "$2")
	if [ "$n" -eq 0 ]; then ok "$1: tshark on mid dissects no RTMP command"; else fail "$1: tshark dissected $n RTMP commands"; fi
	m=$(plaintext_markers "$2" 2>/dev/null | tr '\n' ',')
	if [ -z "$m" ]; then ok "$1: no plaintext marker on mid"; else fail "$1: plaintext markers on mid: ${m%,}"; fi
}
publish_to() {
	nsx client ffmpeg -nostdin -loglevel error -re -i "$T/src.flv" -c copy -f flv "$1"
}

# --- 1. rtmpdump (librtmp) plays from nginx-rtmp, IPv4
check "dumpcap captures on mid (1)" capture_start mid eth1 "$T/wire1.pcapng"
check "nginx-rtmp listens on 1935 behind encS" rtmp_server server 1935
# -v: live; -m 15: gives up 15 s after the last byte (librtmp ends a live play then, with
# status 2, "incomplete", since a live stream has no end it could have reached).
bg rtmpdump nsx client rtmpdump -q -v -m 15 -r rtmp://10.78.2.2/live/lr -o "$T/lr.flv"
check "rtmpdump joined stream lr at nginx" rtmp_joined "$T/nginx-server/logs/error.log" lr
check "ffmpeg publishes to nginx through the encryptors" publish_to rtmp://10.78.2.2/live/lr
if ! wait_for 60 bash -c "! kill -0 $PID_rtmpdump"; then
	fail "rtmpdump still running 60 s after the publisher ended"
	kill "$PID_rtmpdump"
fi
capture_stop "$T/wire1.pcapng"
ffmpeg -nostdin -loglevel error -i "$T/lr.flv" -map 0 -c copy -f framemd5 "$T/lr.md5"
packets_match "rtmpdump from nginx-rtmp" "$T/src.md5" "$T/lr.md5"
wire_ok "rtmpdump from nginx-rtmp" "$T/wire1.pcapng"

# --- 2. ffmpeg's own RTMP server receives, IPv6
check "dumpcap captures on mid (2)" capture_start mid eth1 "$T/wire2.pcapng"
bg lsrv nsx server timeout 120 ffmpeg -nostdin -loglevel warning -listen 1 \
	-i "rtmp://[fd78:2::2]:1935/live/ff" -map 0 -c copy -f framemd5 "$T/ff.md5"
wait_for 30 bash -c "ip netns exec $(nsname server) ss -tlnH '( sport = :1935 )' | grep -q fd78:2::2" ||
	fail "ffmpeg's RTMP server listens on [fd78:2::2]:1935"
check "ffmpeg publishes to ffmpeg's RTMP server over IPv6" publish_to "rtmp://[fd78:2::2]:1935/live/ff"
if wait_for 60 bash -c "! kill -0 $PID_lsrv"; then
	wait "$PID_lsrv"; rc=$?
	check "ffmpeg's RTMP server ends with the stream (exit $rc)" test "$rc" = 0
else
	fail "ffmpeg's RTMP server still running 60 s after the publisher ended"
fi
capture_stop "$T/wire2.pcapng"
packets_match "ffmpeg's RTMP server" "$T/src.md5" "$T/ff.md5" "$T/lsrv.log"
wire_ok "ffmpeg's RTMP server" "$T/wire2.pcapng"

# --- what the encryptors counted: both publishes (each about the clip's size: RTMP's
# framing is no larger than FLV's) went through qotp, client side to server side
clip=$(wc -c <"$T/src.flv")
check "encC encrypted both publishes ($(stat encC 2 enc_bytes) B, clip $clip B)" \
	test "$(stat encC 2 enc_bytes)" -gt $((3 * clip / 2))
check "encS decrypted them ($(stat encS 1 dec_bytes) B)" test "$(stat encS 1 dec_bytes)" -gt $((3 * clip / 2))
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc drop_no_key
finish
