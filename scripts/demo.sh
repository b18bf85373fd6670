#!/usr/bin/env bash
# make demo: the paper's three-site experiment (§VI.1), see Documentation/demo.md.
# Env: QOTP_DEMO_SECONDS (clip, 8), QOTP_DEMO_KEYRATE (qkdsimd b/s, 16000000),
#      QOTP_DEMO_LOSS (netem loss % on the internet links, 0), QOTP_DEMO_OUT (build/demo).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export QOTP_DEMO_OUT=${QOTP_DEMO_OUT:-$top/build/demo}
t0=$(date +%s)
echo "[demo] building qotp.ko (UML)"; "$top/scripts/build-kmod.sh" uml >/dev/null || { echo "demo: kmod build failed" >&2; exit 1; }
echo "[demo] building kms tools"; make -s -C "$top/kms" >/dev/null || { echo "demo: kms build failed" >&2; exit 1; }
rm -rf "$QOTP_DEMO_OUT"; mkdir -p "$QOTP_DEMO_OUT"
echo "[demo] booting UML and running the experiment (log: $QOTP_DEMO_OUT/run.log)"
run=$top/build/uml-run/demo.$$; rm -rf "$run"; mkdir -p "$run"; : >"$run/console"
tail -n +1 -F "$run/console" 2>/dev/null | grep --line-buffered -E '^\[(demo|FAIL)\]|^== ' &
tailpid=$!
"$top/scripts/uml-run.sh" --timeout 900 --keep "$run" -- "$top/scripts/demo-inside.sh" >"$QOTP_DEMO_OUT/run.log" 2>&1
rc=$?
sleep 1; kill "$tailpid" 2>/dev/null
cp "$run/console" "$QOTP_DEMO_OUT/console.log" 2>/dev/null
echo
[ -s "$QOTP_DEMO_OUT/report.txt" ] && cat "$QOTP_DEMO_OUT/report.txt"
echo "run time: $(( $(date +%s) - t0 )) s; status $rc"
exit "$rc"
