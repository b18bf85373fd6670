#!/usr/bin/env bash
# RTMP through two qotp encryptors in gateway mode, watched by an eavesdropper.
#
#  client ---- encC ========= mid ========= encS ---- server
#  10.78.1.2   10.78.1.1      (tshark)      10.78.2.1  10.78.2.2 nginx-rtmp :1935
#              10.78.0.1 -- 10.78.0.2 / 10.78.9.2 -- 10.78.9.1
#              peer 2 = encS (10.78.2.0/24)   peer 1 = encC (10.78.1.0/24)
#
# Both encryptors get their rings from the same two random files (client->server and
# server->client), as kmsd would give them. ffmpeg publishes from the client and plays back
# from the client: per-packet hashes equal the source; on the mid link tshark dissects no
# RTMP and no plaintext marker appears; the kernel counters show the bytes went through qotp.
. "$(dirname "$0")/../lib.sh"
qotpctl=$QOTP_BIN/qotpctl

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }

for n in client encC mid encS server; do ns_new $n >/dev/null; done
link client eth0 encC eth0
link encC eth1 mid eth0
link mid eth1 encS eth1
link encS eth0 server eth0
addr client eth0 10.78.1.2/24
addr encC eth0 10.78.1.1/24
addr encC eth1 10.78.0.1/24
addr mid eth0 10.78.0.2/24
addr mid eth1 10.78.9.2/24
addr encS eth1 10.78.9.1/24
addr encS eth0 10.78.2.1/24
addr server eth0 10.78.2.2/24
nsx client ip route add default via 10.78.1.1
nsx encC ip route add default via 10.78.0.2
nsx mid ip route add 10.78.1.0/24 via 10.78.0.1
nsx mid ip route add 10.78.2.0/24 via 10.78.9.1
nsx encS ip route add default via 10.78.9.2
nsx server ip route add default via 10.78.2.1
for n in encC mid encS; do forwarding $n; done

head -c 8M /dev/urandom >"$T/c2s.key"
head -c 8M /dev/urandom >"$T/s2c.key"
check "encC: gateway mode on port 1935" nsx encC "$qotpctl" set ports 1935 mode gateway
check "encS: gateway mode on port 1935" nsx encS "$qotpctl" set ports 1935 mode gateway
check "encC: peer 2 protects 10.78.2.0/24" nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24
check "encS: peer 1 protects 10.78.1.0/24" nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24
# Decrypt rings first, as kmsd does: an encrypted segment never arrives before its key.
check "encS: push decrypt ring for peer 1" nsx encS "$qotpctl" push 1 decrypt "$T/c2s.key"
check "encC: push decrypt ring for peer 2" nsx encC "$qotpctl" push 2 decrypt "$T/s2c.key"
check "encC: push encrypt ring for peer 2" nsx encC "$qotpctl" push 2 encrypt "$T/c2s.key"
check "encS: push encrypt ring for peer 1" nsx encS "$qotpctl" push 1 encrypt "$T/s2c.key"

check "client reaches server (ICMP is not protected)" nsx client ping -c1 -W2 10.78.2.2
check "dumpcap captures on the untrusted mid link" capture_start mid eth1 "$T/wire.pcapng"
check "nginx-rtmp listens on 1935 behind encS" rtmp_server server 1935
check "generate a 6 s H.264/AAC test clip" make_video "$T/src.flv" 6
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

payload=$(wire_bytes "$T/wire.pcapng")
if [ "$payload" -gt 100000 ]; then ok "the mid link carried $payload bytes of port-1935 payload"; else fail "only $payload payload bytes seen on the mid link"; fi
n=$(rtmp_messages "$T/wire.pcapng")
if [ "$n" -eq 0 ]; then ok "eavesdropper dissects no RTMP command message"; else fail "eavesdropper dissected $n RTMP command messages"; fi
m=$(plaintext_markers "$T/wire.pcapng" 2>/dev/null | tr '\n' ',')
if [ -z "$m" ]; then ok "no plaintext marker on the wire"; else fail "plaintext markers on the wire: ${m%,}"; fi

enc=$(nsx encC "$qotpctl" show --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p["stats"]["enc_bytes"] for p in d["peers"]))')
dec=$(nsx encS "$qotpctl" show --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p["stats"]["dec_bytes"] for p in d["peers"]))')
if [ "${enc:-0}" -gt 100000 ] && [ "${dec:-0}" -gt 100000 ]; then
	ok "kernel counters: encC encrypted $enc bytes, encS decrypted $dec bytes"
else
	fail "kernel counters too low: encC enc_bytes=$enc, encS dec_bytes=$dec"
fi

for n in client encC mid encS server; do ip netns del "$(nsname $n)"; done
__ns=()
check "rmmod qotp after the namespaces are gone" rmmod qotp
finish
