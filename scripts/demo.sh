#!/usr/bin/env bash
# make demo: the paper's three-site experiment (§VI.1), see Documentation/demo.md.
# Env: QOTP_DEMO_SECONDS (clip, 8), QOTP_DEMO_KEYRATE (qkdsimd b/s, 16000000),
#      QOTP_DEMO_LOSS (netem loss % on the internet links, 0),
#      QOTP_DEMO_WATERMARK (kernel low watermark and kmsd's, bytes, 131072),
#      QOTP_DEMO_TARGET (kmsd distribution target, bytes, 1048576),
#      QOTP_DEMO_RELAY_SECONDS (the relayed pair B<->C's 720p clip, 30; 0: no relayed pair),
#      QOTP_DEMO_RELAY_BITRATE (its constant video bitrate, 300k),
#      QOTP_DEMO_KMSD_CONF (lines added to every kmsd.conf, e.g. "round-budget-ms 5"),
#      QOTP_DEMO_OUT (build/demo).
# Everything a run leaves is under QOTP_DEMO_OUT, which the next run replaces: report.txt,
# the PNGs, run.log (what ran inside UML), logs/ (daemons, tools, key plane samples) and
# uml/ (the UML console, dmesg and kmemleak report).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/checkout-ok.sh" "$top" || exit 2
export QOTP_DEMO_OUT=${QOTP_DEMO_OUT:-$top/build/demo}
out=$QOTP_DEMO_OUT
t0=$(date +%s)
# The output folder is replaced: refuse to empty a directory that is not a demo's.
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -e "$out/run.log" ]; then
	echo "demo: $out exists and holds no earlier demo run (no run.log); not replacing it" >&2
	exit 1
fi
echo "[demo] building qotp.ko (UML)"; "$top/scripts/build-kmod.sh" uml >/dev/null || { echo "demo: kmod build failed" >&2; exit 1; }
echo "[demo] building kms tools"; make -s -C "$top/kms" >/dev/null || { echo "demo: kms build failed" >&2; exit 1; }
rm -rf "$out"; mkdir -p "$out"
: >"$out/run.log"
# Earlier versions of this script left one build/uml-run/demo.PID directory per run.
rm -rf "$top"/build/uml-run/demo.[0-9]*
# The clips, made with the host's ffmpeg (much faster than inside the debug UML kernel) and
# kept in $QOTP_CACHE/clips (default /var/cache/qotp/clips) for the next run; the guest
# copies them from there (scripts/clips.sh), or makes them itself if that fails.
"$top/scripts/clips.sh" prepare demo || echo "[demo] clips not made on the host; the guest makes them"
echo "[demo] booting UML and running the experiment (log: $out/run.log)"
run=$out/uml; mkdir -p "$run"; : >"$run/console"
# Progress lines of the inside script, live (tail's pid, so that killing it ends grep too).
tail -n +1 -F "$run/console" 2>/dev/null > >(grep --line-buffered -E '^\[(demo|FAIL)\]|^== ') &
tailpid=$!
"$top/scripts/uml-run.sh" --timeout 900 --keep "$run" -- "$top/scripts/demo-inside.sh" >"$out/run.log" 2>&1
rc=$?
sleep 1; kill "$tailpid" 2>/dev/null
echo
[ -s "$out/report.txt" ] && cat "$out/report.txt"
echo "run time: $(( $(date +%s) - t0 )) s; status $rc"
exit "$rc"
