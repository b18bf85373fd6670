#!/usr/bin/env bash
# Plaintext RTMP baseline through a router: the stream that later tests encrypt.
#
#   client (10.77.1.2) --veth-- router --veth-- server (10.77.2.2: nginx-rtmp :1935)
#   ffmpeg publishes a clip to the server; a second ffmpeg plays it back from the client.
#   Per-packet hashes (ffmpeg -f framemd5 -c copy) of what was played must equal the source's.
. "$(dirname "$0")/../lib.sh"

ns_new client >/dev/null
ns_new router >/dev/null
ns_new server >/dev/null
link client eth0 router eth0
link router eth1 server eth0
addr client eth0 10.77.1.2/24
addr router eth0 10.77.1.1/24
addr router eth1 10.77.2.1/24
addr server eth0 10.77.2.2/24
nsx client ip route add default via 10.77.1.1
nsx server ip route add default via 10.77.2.1
forwarding router

check "client reaches server through router" nsx client ping -c1 -W2 10.77.2.2
# The eavesdropper's view, here with nothing to stop it: this proves the detectors that the
# encrypted tests rely on do see plaintext RTMP when it is there.
check "dumpcap captures on the router's server-side link" capture_start router eth1 "$T/wire.pcapng"
check "nginx-rtmp listens on 1935 in the server netns" rtmp_server server 1935

check "generate a 4 s H.264/AAC test clip" make_video "$T/src.flv" 4
ffmpeg -nostdin -loglevel error -i "$T/src.flv" -map 0 -c copy -f framemd5 "$T/src.md5"

# Player first, so it sees the stream from its first packet.
bg player nsx client ffmpeg -nostdin -loglevel warning -rw_timeout 20000000 \
	-i rtmp://10.77.2.2/live/test -map 0 -c copy $(frame_limits "$T/src.md5") -f framemd5 "$T/play.md5"
check "the player joined stream test at nginx" rtmp_joined "$T/nginx-server/logs/error.log" test
check "publish the clip from the client at real-time rate" \
	nsx client ffmpeg -nostdin -loglevel error -re -i "$T/src.flv" -c copy -f flv rtmp://10.77.2.2/live/test
# The player ends at the source's last packet (frame_limits), or else -rw_timeout after its
# last byte: wait longer than that, in seconds.
if ! wait_for 90 bash -c "! kill -0 $PID_player"; then
	kill -INT "$PID_player"
	wait_for 10 bash -c "! kill -0 $PID_player"
fi

capture_stop "$T/wire.pcapng"
n=$(rtmp_messages "$T/wire.pcapng")
if [ "$n" -ge 10 ]; then ok "eavesdropper dissects $n RTMP command messages in plaintext"; else fail "tshark dissected only $n RTMP command messages"; fi
m=$(plaintext_markers "$T/wire.pcapng" 2>/dev/null | tr '\n' ',')
case "$m" in
*"AMF connect"*onMetaData*"FLV header"*|*"AMF connect"*onMetaData*) ok "plaintext markers visible on the wire: ${m%,}" ;;
*) fail "plaintext markers not found in a plaintext capture: '$m'" ;;
esac

packets_match "played back" "$T/src.md5" "$T/play.md5" "$T/player.log"
finish
