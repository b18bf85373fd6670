#!/usr/bin/env bash
# Inside UML (scripts/demo.sh boots it): the paper's §VI.1 experiment, three sites, star A-B, A-C.
#
#   cliB --- encB ==\                      /== encC --- cliC (player)
#   (publisher)  kmsd B   "net" (dumpcap)  kmsd C
#   (nginx, 720p)    \==== encA (kmsd A) ====/
#                           |
#                         server (nginx-rtmp :1935)
#   qkdsimd A-B, qkdsimd A-C; A: peer 2 = B, peer 3 = C; B: peer 1 = A, 3 = C; C: 1 = A, 2 = B.
# The relayed pair: B and C share no quantum link; kmsd B and C are `remote`s of each other
# and their pair's key comes by PPETP through A. cliC watches a 720p clip from an nginx
# in B's site while the star's clip runs.
. "$QOTP_TOP/tests/lib.sh"
OUT=${QOTP_DEMO_OUT:-$QOTP_TOP/build/demo}
SECS=${QOTP_DEMO_SECONDS:-8}
RATE=${QOTP_DEMO_KEYRATE:-16000000}
LOSS=${QOTP_DEMO_LOSS:-0}
WM=${QOTP_DEMO_WATERMARK:-131072}
TARGET=${QOTP_DEMO_TARGET:-1048576}
RSECS=${QOTP_DEMO_RELAY_SECONDS:-30}
RRATE=${QOTP_DEMO_RELAY_BITRATE:-300k}
qotpctl=$QOTP_BIN/qotpctl
mkdir -p "$OUT/logs"
step() { printf '[demo] %s\n' "$*"; }
step "topology: 7 namespaces"
for n in server encA net encB cliB encC cliC; do ns_new $n >/dev/null; done
link server eth0 encA eth0; link encA eth1 net eth0
link cliB eth0 encB eth0;   link encB eth1 net eth1
link cliC eth0 encC eth0;   link encC eth1 net eth2
addr server eth0 10.81.0.2/24; addr encA eth0 10.81.0.1/24
addr cliB eth0 10.82.0.2/24;   addr encB eth0 10.82.0.1/24
addr cliC eth0 10.83.0.2/24;   addr encC eth0 10.83.0.1/24
addr encA eth1 10.80.0.1/24; addr net eth0 10.80.0.2/24
addr encB eth1 10.80.1.1/24; addr net eth1 10.80.1.2/24
addr encC eth1 10.80.2.1/24; addr net eth2 10.80.2.2/24
nsx server ip route add default via 10.81.0.1
nsx cliB ip route add default via 10.82.0.1
nsx cliC ip route add default via 10.83.0.1
nsx encA ip route add default via 10.80.0.2
nsx encB ip route add default via 10.80.1.2
nsx encC ip route add default via 10.80.2.2
nsx net ip route add 10.81.0.0/24 via 10.80.0.1
nsx net ip route add 10.82.0.0/24 via 10.80.1.1
nsx net ip route add 10.83.0.0/24 via 10.80.2.1
for n in encA net encB encC; do forwarding $n; done
if [ "$LOSS" != 0 ]; then for i in eth0 eth1 eth2; do nsx net tc qdisc add dev $i root netem loss "$LOSS%"; done; fi

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-a kms-b kms-c >/dev/null || fail "PKI"
# conf NODE MYADDR then neighbour lines on stdin
# Link blocks of 32 KiB and PPETP transfers of 32000 B: a transfer consumes one verified link
# block on each hop, so the block size bounds what one transfer round trip brings the
# relayed pair (4 KiB blocks fed it ~4000 B per round trip, too little for an HD stream).
conf() {
	kms_conf "$1" "$2" "keepalive 3" "dist-low-watermark $WM" "dist-target $TARGET" \
		"ppetp-block 32000" ${QOTP_DEMO_KMSD_CONF:+"$QOTP_DEMO_KMSD_CONF"} "$(cat)"
}
conf kms-a 10.80.0.1 <<EOC
neighbour kms-b address 10.80.1.1:7000 qkd-sim unix:$T/qkdab.sock end a qotp-peer 2
neighbour kms-c address 10.80.2.1:7000 qkd-sim unix:$T/qkdac.sock end a qotp-peer 3
EOC
# The relayed pair only when it streams (QOTP_DEMO_RELAY_SECONDS 0: the star alone).
relay_line() { [ "$RSECS" -gt 0 ] && echo "remote $1 address $2:7000 qotp-peer $3"; }
conf kms-b 10.80.1.1 <<EOC
neighbour kms-a address 10.80.0.1:7000 qkd-sim unix:$T/qkdab.sock end b qotp-peer 1
$(relay_line kms-c 10.80.2.1 3)
EOC
conf kms-c 10.80.2.1 <<EOC
neighbour kms-a address 10.80.0.1:7000 qkd-sim unix:$T/qkdac.sock end b qotp-peer 1
$(relay_line kms-b 10.80.1.1 2)
EOC
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
for n in encA encB encC; do check "$n: gateway on 1935" nsx $n "$qotpctl" set ports 1935 mode gateway low-watermark $WM; done
check "encA: peer 2 = B" nsx encA "$qotpctl" peer add 2 prefix 10.82.0.0/24
check "encA: peer 3 = C" nsx encA "$qotpctl" peer add 3 prefix 10.83.0.0/24
check "encB: peer 1 = A" nsx encB "$qotpctl" peer add 1 prefix 10.81.0.0/24
check "encC: peer 1 = A" nsx encC "$qotpctl" peer add 1 prefix 10.81.0.0/24
RINGS=("encA 2" "encA 3" "encB 1" "encC 1")
if [ "$RSECS" -gt 0 ]; then
	check "encB: peer 3 = C (relayed)" nsx encB "$qotpctl" peer add 3 prefix 10.83.0.0/24
	check "encC: peer 2 = B (relayed)" nsx encC "$qotpctl" peer add 2 prefix 10.82.0.0/24
	RINGS+=("encB 3" "encC 2")
fi
# Key plane probes (logs/events_*.log, logs/samples_*.log; demo-report.py reads them):
# every kernel event of each encryptor stamped with the wall clock, and the encrypt rings
# of the two encryptors that carry the stream (encB: B->A publish, encA: A->C play) read
# back twice a second, with their kmsd's view of them (kmsctl pairs). (Five times a second
# was two python3 processes forking qotpctl and kmsctl 20 times a second, in a UML kernel
# where each fork and exec costs a tenth of a second or more.)
stamp='import sys, time
for l in sys.stdin: print("%.3f %s" % (time.time(), l), end="", flush=True)'
for n in encA encB encC; do bg "events_$n" nsx $n bash -c "$qotpctl monitor --json | python3 -c '$stamp'"; done
cat >"$T/sample.py" <<'EOP'
import json, subprocess, sys, time
qotpctl, kmsctl, sock, period = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def run(*a):
    return json.loads(subprocess.run(a, capture_output=True, text=True, timeout=5).stdout)
while True:
    t = time.time()
    try:
        d = run(qotpctl, "show", "--json")
        k = run(kmsctl, "-s", sock, "--json", "pairs")
        print(json.dumps({"t": round(t, 3), "peers": {p["id"]: {
            "avail": p["rings"]["encrypt"]["avail"], "pushed": p["rings"]["encrypt"]["pushed"],
            "consumed": p["rings"]["encrypt"]["consumed"], "no_key": p["stats"]["drop_no_key"]}
            for p in d["peers"]}, "kmsd": {p["qotp_peer"]: {f: p[f] for f in (
                "level", "inflight", "offered", "accepted", "rejected", "expired", "burnt",
                "delivered_out_bytes", "offer_batches", "rtt_ms", "drain_bps", "lead")}
                for p in k["pairs"]}}), flush=True)
    except (ValueError, KeyError, subprocess.SubprocessError):
        pass
    time.sleep(max(0.0, period - (time.time() - t)))
EOP
step "key plane: 2 qkdsimd (rate $RATE b/s), 3 kmsd"
bg qkdab "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkdab.sock" -r "$RATE" -b 32768
bg qkdac "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkdac.sock" -r "$RATE" -b 32768
wait_for 10 grep -q "listening on" "$T/qkdab.log" || fail "qkdsimd A-B listens"
wait_for 10 grep -q "listening on" "$T/qkdac.log" || fail "qkdsimd A-C listens"
bg kmsa nsx encA "$QOTP_BIN/kmsd" -f -v -c "$T/kms-a.conf"
bg kmsb nsx encB "$QOTP_BIN/kmsd" -f -v -c "$T/kms-b.conf"
bg kmsc nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-c.conf"
ring() { nsx "$1" "$qotpctl" show --json |
	jq --argjson id "$2" --arg d "$3" --arg f "$4" '[.peers[] | select(.id == $id) | .rings[$d][$f] // 0] | add // 0'; }
filled() { local x; for x in "${RINGS[@]}"; do [ "$(ring $x encrypt avail)" -ge "$WM" ] || return 1; done; }
step "waiting for kmsd to fill the ${#RINGS[@]} encrypt rings$([ "$RSECS" -gt 0 ] && echo ' (2 of them by PPETP through A)')"
# The relayed rings fill by PPETP transfers, 32000 B each over two hops and three kmsd:
# kms-ppetp's relayed fill took 94 s beside another e2e script in the debug UML.
check "all rings filled by kmsd" wait_for $(( RSECS > 0 ? 180 : 90 )) filled
bg samples_encA nsx encA python3 "$T/sample.py" "$qotpctl" "$QOTP_BIN/kmsctl" "$T/kms-a.sock" 0.5
bg samples_encB nsx encB python3 "$T/sample.py" "$qotpctl" "$QOTP_BIN/kmsctl" "$T/kms-b.sock" 0.5
step "RTMP: nginx behind A, dumpcap on net, player behind C, publisher behind B ($SECS s)"
# Not under check: it runs its command in a subshell, where bg's pids would be lost.
rtmp_server server 1935 && ok "nginx-rtmp behind A" || fail "nginx-rtmp behind A"
# One capture of A's and B's internet links: every stream crosses one of them (tshark's
# start-up costs a minute or more in a loaded debug UML, so one file is dissected, once).
capture_start net eth0,eth1 "$T/wire.pcapng" && ok "dumpcap on A's and B's internet links" ||
	fail "dumpcap on the internet links"
check "generate a ${SECS} s clip" make_video "$T/src.flv" "$SECS"
ffmpeg -nostdin -loglevel error -i "$T/src.flv" -map 0 -c copy -f framemd5 "$T/src.md5"
# The relayed pair's clip: 720p H.264 at a constant RRATE (x264 pads with filler NAL units).
if [ "$RSECS" -gt 0 ]; then
	# (Made once per machine and cached, on the host before the boot: scripts/clips.sh.)
	check "generate a ${RSECS} s 720p clip at $RRATE" "$QOTP_TOP/scripts/clips.sh" cbr "$T/hd.flv" "$RSECS" "$RRATE"
	ffmpeg -nostdin -loglevel error -i "$T/hd.flv" -map 0 -c copy -f framemd5 "$T/hd.md5"
	rtmp_server cliB 1935 && ok "nginx-rtmp behind B" || fail "nginx-rtmp behind B"
	bg hdplayer nsx cliC ffmpeg -nostdin -loglevel warning -rw_timeout 120000000 \
		-i rtmp://10.82.0.2/live/hd -map 0 -c copy $(frame_limits "$T/hd.md5") -f flv "$T/hdplay.flv"
	rtmp_joined "$T/nginx-cliB/logs/error.log" hd 120 || fail "720p player joins the stream at B's nginx"
	relay_probe() {	# time, A's PPETP relayed bytes, B's and C's key delivered for the pair
		printf '{"t": %s, "a": %s, "b": %s, "c": %s}\n' "$(date +%s.%N)" \
			"$("$QOTP_BIN/kmsctl" -s "$T/kms-a.sock" --json status | jq '.ppetp.relayed_bytes // 0')" \
			"$("$QOTP_BIN/kmsctl" -s "$T/kms-b.sock" --json pairs | jq '[.pairs[] | select(.qotp_peer == 3) | .delivered_out_bytes] | add // 0')" \
			"$("$QOTP_BIN/kmsctl" -s "$T/kms-c.sock" --json pairs | jq '[.pairs[] | select(.qotp_peer == 2) | .delivered_out_bytes] | add // 0')"
	}
	bg hdpub nsx cliB ffmpeg -nostdin -loglevel error -re -i "$T/hd.flv" -c copy -f flv rtmp://10.82.0.2/live/hd
	# Probes when nginx has the publisher (its ffmpeg takes up to ~40 s to start in a loaded
	# UML) and the moment the publisher ends (the star's player is waited for meanwhile).
	(
		until grep -qF "publish: name='hd'" "$T/nginx-cliB/logs/error.log" || ! kill -0 "$PID_hdpub"; do sleep 0.2; done 2>/dev/null
		relay_probe >"$T/relay.start"
		while kill -0 "$PID_hdpub" 2>/dev/null; do sleep 0.5; done
		relay_probe >"$T/relay.tmp" && mv "$T/relay.tmp" "$T/relay.end"
	) &
	relay_watch=$!
fi
# The player ends once it has as many packets as the source (frame_limits), or else 120 s
# after the last byte it got (-rw_timeout): ffmpeg does not end at nginx's UnpublishNotify
# and SIGINT does not interrupt its blocking read. The timeout also runs from the player's
# join to the publisher's first byte: a publisher's ffmpeg took 36 to 40 s to start and
# reach nginx in the loaded debug UML (both publishers starting at once), so 40 s lost the
# star's stream once. The waits count wall-clock seconds: on a loaded machine a forked poll
# stretches wait_for's.
until_s() { local end=$((SECONDS + $1)); shift; while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done; return 1; }
gone() { ! kill -0 "$1" 2>/dev/null; }
bg player nsx cliC ffmpeg -nostdin -loglevel warning -rw_timeout 120000000 \
	-i rtmp://10.81.0.2/live/demo -map 0 -c copy $(frame_limits "$T/src.md5") -f flv "$T/play.flv"
rtmp_joined "$T/nginx-server/logs/error.log" demo 120 || fail "player joins the stream at nginx"
date +%s.%N >"$T/stream.start"
check "publish from B" nsx cliB ffmpeg -nostdin -loglevel error -re -i "$T/src.flv" -c copy -f flv rtmp://10.81.0.2/live/demo
date +%s.%N >"$T/stream.end"
if ! until_s 150 gone "$PID_player"; then
	fail "player still running 150 s after the publisher ended"
	kill -KILL $(pgrep -P "$PID_player") 2>/dev/null; until_s 10 gone "$PID_player"
fi
if [ "$RSECS" -gt 0 ]; then
	step "relayed pair: waiting for the ${RSECS} s 720p stream B -> C to end"
	until_s $((RSECS + 120)) gone "$PID_hdpub" || fail "720p publisher still running $((RSECS + 120)) s after it began"
	kill "$relay_watch" 2>/dev/null; wait "$relay_watch" 2>/dev/null
	[ -s "$T/relay.end" ] || relay_probe >"$T/relay.end"
	if ! until_s 150 gone "$PID_hdplayer"; then
		fail "720p player still running 150 s after the publisher ended"
		kill -KILL $(pgrep -P "$PID_hdplayer") 2>/dev/null; until_s 10 gone "$PID_hdplayer"
	fi
	ffmpeg -nostdin -loglevel error -i "$T/hdplay.flv" -map 0 -c copy -f framemd5 "$T/hdplay.md5"
	framemd5_list "$T/hd.md5" >"$T/hd.list"; framemd5_list "$T/hdplay.md5" >"$T/hdplay.list" 2>/dev/null
	hsrc=$(wc -l <"$T/hd.list"); hok=$(grep -cxFf "$T/hd.list" "$T/hdplay.list" || true)
	if [ "$hsrc" -gt 50 ] && cmp -s "$T/hd.list" "$T/hdplay.list"; then
		ok "relayed pair: frames intact $hok/$hsrc"
	else
		fail "relayed pair: frames $hok/$hsrc intact"
	fi
	ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$T/hd.flv" >"$T/hd.bitrate"
fi
capture_stop "$T/wire.pcapng"
ffmpeg -nostdin -loglevel error -i "$T/play.flv" -map 0 -c copy -f framemd5 "$T/play.md5"
framemd5_list "$T/src.md5" >"$T/src.list"; framemd5_list "$T/play.md5" >"$T/play.list" 2>/dev/null
nsrc=$(wc -l <"$T/src.list"); nok=$(grep -cxFf "$T/src.list" "$T/play.list" || true)
if [ "$nsrc" -gt 50 ] && cmp -s "$T/src.list" "$T/play.list"; then ok "frames intact $nok/$nsrc"; else fail "frames: $nok/$nsrc intact"; fi
ffmpeg -nostdin -loglevel error -y -i "$T/play.flv" -frames:v 1 "$OUT/frame-at-C.png" || fail "frame PNG"
# tshark dissects the capture once (wire_fields); the picture, rtmp_messages and
# plaintext_markers below all read that pass.
wire_payload "$T/wire.pcapng" >"$T/wire.bin"
head -c 76800 "$T/wire.bin" >"$T/wire320.bin"; truncate -s 76800 "$T/wire320.bin"
convert -size 320x240 -depth 8 gray:"$T/wire320.bin" "$OUT/wire-ciphertext.png" || fail "wire PNG"
head -c 76800 "$T/src.flv" >"$T/plain320.bin"; truncate -s 76800 "$T/plain320.bin"
convert -size 320x240 -depth 8 gray:"$T/plain320.bin" "$OUT/plaintext-same-view.png" || fail "plain PNG"
nmsg=$(rtmp_messages "$T/wire.pcapng"); mk=$(plaintext_markers "$T/wire.pcapng" 2>/dev/null | tr '\n' ',')
[ "$nmsg" = 0 ] && ok "eavesdropper: 0 RTMP messages" || fail "eavesdropper dissected $nmsg RTMP messages"
[ -z "$mk" ] && ok "no plaintext marker" || fail "plaintext markers: $mk"
for n in encA encB encC; do nsx $n "$qotpctl" show --json >"$T/$n.json"; done
for n in kms-a kms-b kms-c; do "$QOTP_BIN/kmsctl" -s "$T/$n.sock" --json pairs >"$T/pairs_$n.log" 2>&1; done
# Every key the kernels hold came through the chain: each ring's pushed bytes equal what
# its kmsd says it delivered for that pair (read live; an offer in flight may land between
# the two reads, so this waits up to 30 s for both to agree).
chain_match() { python3 - "$qotpctl" "$QOTP_BIN/kmsctl" "$T" "$@" <<'EOP'
import json, subprocess, sys
qotpctl, kmsctl, t = sys.argv[1:4]
def run(ns, *a):
    return json.loads(subprocess.run(["ip", "netns", "exec", ns, *a], capture_output=True,
                                     text=True, timeout=10).stdout)
bad = []
for gw, node in zip(sys.argv[4::2], sys.argv[5::2]):
    k = {p["id"]: p["rings"] for p in run(gw, qotpctl, "show", "--json")["peers"]}
    for pr in json.loads(subprocess.run([kmsctl, "-s", f"{t}/{node}.sock", "--json", "pairs"],
                                        capture_output=True, text=True, timeout=10).stdout)["pairs"]:
        r = k.get(pr["qotp_peer"])
        got = (r["encrypt"]["pushed"], r["decrypt"]["pushed"]) if r else None
        want = (pr["delivered_out_bytes"], pr["delivered_in_bytes"])
        if got != want:
            bad.append(f"{gw} peer {pr['qotp_peer']}: kernel pushed {got}, {node} delivered {want}")
print("; ".join(bad))
sys.exit(1 if bad else 0)
EOP
}
if until_s 30 chain_match "$(nsname encA)" kms-a "$(nsname encB)" kms-b "$(nsname encC)" kms-c >"$T/chain.log" 2>&1; then
	ok "every ring holds exactly what its kmsd delivered (kernel pushed = kmsd delivered, ${#RINGS[@]} pairs)"
else
	fail "kernel rings and kmsd disagree: $(tail -1 "$T/chain.log")"
fi
# The rest of the chain: every daemon still up, every pair distributing without a kernel
# push error, and no segment dropped for want of key (the key plane kept up with the stream).
for n in qkdab qkdac kmsa kmsb kmsc; do
	v=PID_$n
	kill -0 "${!v}" 2>/dev/null && ok "$n still running" || fail "$n died (logs/$n.log)"
done
for n in kms-a kms-b kms-c; do
	check "$n: every pair active, no push error" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["pairs"]
sys.exit(not p or any(not x["active"] or x["push_errors"] for x in p))' "$T/pairs_$n.log"
done
nokey=$(python3 -c '
import json, sys
print(sum(p["stats"]["drop_no_key"] for f in sys.argv[1:] for p in json.load(open(f))["peers"]))' "$T"/encA.json "$T"/encB.json "$T"/encC.json)
[ "$nokey" = 0 ] && ok "no segment dropped for want of key" ||
	fail "$nokey segments dropped for want of key (fail closed; the key plane fell behind the stream)"
python3 "$QOTP_TOP/scripts/demo-report.py" "$T" "$nok" "$nsrc" "$nmsg" "${mk:-none}" "$SECS" "$RATE" "$LOSS" "$OUT" "$WM" "$TARGET" \
	"${hok:-0}" "${hsrc:-0}" "$RSECS" "$RRATE" >"$OUT/report.txt" || fail "report"
cp "$T"/*.log "$T"/*.conf "$OUT/logs/" 2>/dev/null
finish
