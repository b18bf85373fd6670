#!/usr/bin/env bash
# Inside UML (bench kernel): time from the kernel's LOW_WATERMARK event to key in the ring.
# Two sources of key, chosen by LW_SOURCE (QOTP_LW_SOURCE inside UML; bench/lowwater-run.sh
# passes it on):
#  - kmsd (the default): two kmsd keep the gateways' rings filled from one simulated QKD link
#    (the setup of tests/e2e/kms-distrib.sh); each refills its ring from its own link store.
#  - agent: deploy.md's layout 2 (tests/e2e/kms-agent.inc, agent_topo): the gateways run
#    only kmsd agents (enc-b in encC, enc-a in encS) that draw their key over ETSI GS QKD 014
#    from their sites' key managers (kmsd KMEs kms-b and kms-a in namespaces of their own,
#    which cut it from PPETP transfer keys relayed by kms-r). The agent refills the ring from
#    its own pool (its link store, link-max-bytes 1 MiB), and the pool from the KME: what is
#    timed is the agent's distribution from that pool (kmsd's code, the same offer round
#    trip to the other agent as in the kmsd mode); the KME and the relay are on the path
#    only when the pool runs short. The pool holds both directions' key (block parity);
#    one-way uploads use one of them, and the idle one's surplus is dropped for room once
#    the pool is full (kms.md; before that the drained ring starved in the third
#    iteration with 1 MiB). QOTP_BENCH_LW_POOL=BYTES sets the agents' link-max-bytes.
# Uploads on port 1935 drain encC's encrypt ring below the watermark (same loop, same ring,
# peer 2, in both modes). A listener on the event multicast group (qotpctl monitor) stamps
# each event as it arrives; a poller reads the ring's "pushed" counter in a loop and stamps
# the first change after the event, then polls on until the ring is back near the target
# and stamps that too. Run by bench/lowwater-run.sh; prints (PFX: lowwater, or
# lowwater-agent in the agent mode)
#   PFX: n=N median_ms=M p90_ms=P poll_ms=R
#   PFX-refill: n=N median_ms=F max_ms=X median_kBps=K min_kBps=L
#   PFX-kmsd: n=N median_ms=M p99_ms=P max_ms=X
# (R is the poller's period, the resolution of each sample; F / X the time from the event
# to the ring back within 64 KiB of the target; K / L the bytes kmsd pushed in that time
# over that time, i.e. the refill rate; the kmsd line: the clock of the kmsd in encC (kms-c,
# or the agent enc-b), its own timing of every event of encC's encrypt ring, from the
# event's arrival to the first push into the ring after it).
# Run it: [LW_SOURCE=agent] bench/lowwater-run.sh OUTFILE (builds qotp.ko for the bench
# kernel and kms/).
#
#  kmsd:   client ---- encC ====== mid ====== encS ---- server
#                      kmsd kms-c <== TLS ==> kmsd kms-s, qkdsimd between them
#  agent:  client ---- encC ====== mid ====== encS ---- server
#                      agent enc-b <= TLS => agent enc-a
#                      | ETSI 014              | ETSI 014
#                      kms-b --- kms-r (relay) --- kms-a, a qkdsimd per link
. "$QOTP_TOP/tests/lib.sh"
. "$QOTP_TOP/tests/e2e/dp-topo.inc"
probe=$QOTP_BENCH_PROBE
iters=${QOTP_BENCH_LW_ITERS:-8}
LOW=131072
TARGET=524288

# The mode: output prefix, encC's kmsd (its control socket: the kmsd-clock line), its name
# in messages, the logs QOTP_BENCH_KEEP keeps, and how long the first fill may take.
case "${QOTP_LW_SOURCE:-kmsd}" in
kmsd) pfx=lowwater ctl=$T/kms-c.sock who=kmsd logs="kmsc kmss" fill_s=90 ;;
agent) pfx=lowwater-agent ctl=$T/enc-b.sock who="the agent enc-b" logs="kmsa kmsr kmsb enca encb" fill_s=180 ;;
*) fail "LW_SOURCE=$QOTP_LW_SOURCE: kmsd or agent"; finish ;;
esac

# Two kmsd with one simulated QKD link between them, on the gateways.
kmsd_topo() {
	dp_topo
	"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-c kms-s >/dev/null || fail "test PKI"
	conf() {
		kms_conf "$1" "$3" "keepalive 3" "dist-low-watermark $LOW" "dist-target $TARGET" \
			"neighbour $2 address $4:7000 qkd-sim unix:$T/qkd.sock end $5 qotp-peer $6"
	}
	conf kms-c kms-s 10.78.0.1 10.78.9.1 a 2
	conf kms-s kms-c 10.78.9.1 10.78.0.1 b 1
	insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
	for n in encC encS; do nsx $n "$qotpctl" set ports 1935 mode gateway low-watermark $LOW >/dev/null || fail "config $n"; done
	nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 && nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 || fail "peers"
	bg qkd "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd.sock" -r 16000000 -b 4096
	wait_for 10 grep -q "listening on" "$T/qkd.log" || fail "qkdsimd listens"
	bg kmsc nsx encC "$QOTP_BIN/kmsd" -f ${QOTP_BENCH_KEEP:+-v} -c "$T/kms-c.conf"
	bg kmss nsx encS "$QOTP_BIN/kmsd" -f ${QOTP_BENCH_KEEP:+-v} -c "$T/kms-s.conf"
}
if [ "$pfx" = lowwater ]; then
	kmsd_topo
else
	# Layout 2 (kms-agent.inc: loads qotp.ko, configures both gateways, starts the KMEs;
	# its kmsd always run with -v); the agents' dist-low-watermark and dist-target as above.
	. "$QOTP_TOP/tests/e2e/kms-agent.inc"
	agent_topo $LOW $TARGET
	# QOTP_BENCH_LW_POOL=BYTES: the agents' link-max-bytes instead of kms-agent.inc's 1 MiB
	# (the last line of a setting wins)
	if [ -n "${QOTP_BENCH_LW_POOL:-}" ]; then
		for n in enc-a enc-b; do echo "link-max-bytes $QOTP_BENCH_LW_POOL" >>"$T/$n.conf"; done
	fi
	agent_start enc-a
	agent_start enc-b
fi
bg srv nsx server "$probe" serve 10.78.2.2 1935
wait_port server 1935 || fail "server listens"
pushed() { nsx encC "$qotpctl" show --json | /usr/bin/python3 -c 'import json,sys; print(sum(p["rings"]["encrypt"]["pushed"] for p in json.load(sys.stdin)["peers"]))'; }
avail() { nsx encC "$qotpctl" show --json | /usr/bin/python3 -c 'import json,sys; print(sum(p["rings"]["encrypt"]["avail"] for p in json.load(sys.stdin)["peers"]))'; }
full() { [ "$(avail)" -ge $((TARGET - 65536)) ]; }
wait_for $fill_s full || { fail "rings did not fill from $who"; finish; }
ok "$who filled encC's encrypt ring ($(avail) B)"

# Event listener: one line per event, stamped on arrival (CLOCK_REALTIME, as the poller).
bg mon bash -c "ip netns exec $(nsname encC) $qotpctl monitor --json |
	/usr/bin/python3 -u -c 'import sys, time
for l in sys.stdin: print(\"%.6f %s\" % (time.time(), l.strip()), flush=True)'"
sleep 1
samples=()
polls=()
fulls=()
rates=()
for ((i = 1; i <= iters; i++)); do
	wait_for 120 full || { fail "ring not refilled before iteration $i"; break; }
	nev=$(grep -c '"low-watermark".*"encrypt"' "$T/mon.log")
	p0=$(pushed)
	# Drain below the watermark: what is available minus half the watermark.
	a=$(avail)
	bg up$i nsx client "$probe" flows 10.78.2.2 1935 1 $((a - LOW / 2)) 120
	# Poll until an event newer than $nev has arrived and pushed has moved past p0.
	out=$(/usr/bin/python3 - "$T/mon.log" "$nev" "$p0" "$(nsname encC)" "$qotpctl" "$TARGET" <<'PY'
import json, subprocess, sys, time
log, nev, p0, ns, ctl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def events():
    with open(log) as f:
        return [l for l in f if '"low-watermark"' in l and '"encrypt"' in l]
target = int(sys.argv[6])
t_ev = None
t_fill = None
t_full = None
p_fill = p_full = p0
periods = []
end = time.time() + 90
while time.time() < end and t_full is None:
    t0 = time.time()
    d = json.loads(subprocess.run(["ip", "netns", "exec", ns, ctl, "show", "--json"],
                                  capture_output=True, text=True).stdout)
    p = sum(x["rings"]["encrypt"]["pushed"] for x in d["peers"])
    a = sum(x["rings"]["encrypt"]["avail"] for x in d["peers"])
    t1 = time.time()
    periods.append(t1 - t0)
    ev = events()
    if t_ev is None and len(ev) > nev:
        t_ev = float(ev[nev].split()[0])
    if t_ev is not None and t_fill is None and p > p0:
        t_fill = t1
    if t_fill is not None and a >= target - 65536:
        t_full, p_full = t1, p
if t_ev is None or t_fill is None:
    print("none")
else:
    full = "%.3f %d" % ((t_full - t_ev) * 1000, p_full - p0) if t_full else "- 0"
    print("%.3f %.3f %s" % ((t_fill - t_ev) * 1000, sorted(periods)[len(periods) // 2] * 1000,
                            full))
PY
)
	wait_for 130 bash -c "grep -q 'flows:' $T/up$i.log"
	grep -q 'exact=1' "$T/up$i.log" || fail "upload $i not exact"
	case "$out" in
	none | "") fail "iteration $i: no event or no refill seen" ;;
	*)
		read -r first poll fullms bytes <<<"$out"
		samples+=("$first")
		polls+=("$poll")
		if [ "$fullms" != - ]; then
			fulls+=("$fullms")
			rates+=("$(/usr/bin/python3 -c "print('%.1f' % ($bytes / $fullms))")")
			note "iteration $i: event -> key in ring $first ms, -> ring refilled $fullms ms ($bytes B pushed) (poll $poll ms)"
		else
			note "iteration $i: event -> key in ring $first ms; ring not back near the target within 90 s (poll $poll ms)"
		fi
		;;
	esac
done
[ ${#samples[@]} -eq "$iters" ] && ok "$iters low-watermark refills timed" || fail "only ${#samples[@]} of $iters refills timed"
/usr/bin/python3 - "${samples[*]}" "${polls[*]}" "${fulls[*]}" "${rates[*]}" "$pfx" <<'PY'
import statistics, sys
pfx = sys.argv[5]
s = sorted(float(x) for x in sys.argv[1].split())
p = [float(x) for x in sys.argv[2].split()]
f = sorted(float(x) for x in sys.argv[3].split())
r = sorted(float(x) for x in sys.argv[4].split())
if s:
    print("%s: n=%d median_ms=%.1f p90_ms=%.1f poll_ms=%.1f" % (
        pfx, len(s), statistics.median(s), s[int(len(s) * 0.9)] if len(s) > 1 else s[0], statistics.median(p)))
if f:
    print("%s-refill: n=%d median_ms=%.1f max_ms=%.1f median_kBps=%.1f min_kBps=%.1f" % (
        pfx, len(f), statistics.median(f), f[-1], statistics.median(r), r[0]))
PY
# kmsd's own clock (kms-c, or the agent enc-b): kernel event received -> first push into that
# encrypt ring after it (every event, not only the bench's iterations; no poller in the way)
"$QOTP_BIN/kmsctl" -s "$ctl" --json pairs | jq -r --arg p "$pfx" '.pairs[0].refill_ms | sort |
	if length == 0 then "\($p)-kmsd: n=0" else
	"\($p)-kmsd: n=\(length) median_ms=\(.[(length - 1) / 2 | floor]) " +
	"p99_ms=\(.[(length * 0.99 | ceil) - 1]) max_ms=\(.[-1])" end'
# QOTP_BENCH_KEEP=DIR (a host directory): kmsd's debug logs and the event monitor's, kept
if [ -n "${QOTP_BENCH_KEEP:-}" ]; then
	mkdir -p "$QOTP_BENCH_KEEP" && for l in $logs mon; do cp "$T/$l.log" "$QOTP_BENCH_KEEP"/; done
fi
finish
