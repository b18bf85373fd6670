#!/usr/bin/env bash
# Build tcpprobe and qotp.ko for the non-debug UML kernel and run bench/dp-compare.sh in it.
#   bench/dp-compare-run.sh OUTFILE     (the script's whole output; CSV lines start "CSV ")
# Sizes come from QOTP_BENCH_* (see bench/dp-compare.sh), passed into UML by uml-run.sh.
# The UML run directory is build/bench/dp-run (its console shows progress while it runs).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: dp-compare-run.sh OUTFILE}
kmod=$("$top/scripts/build-kmod.sh" fast)
make -s -C "$top/kms" ../build/kms/qotpctl >/dev/null
mkdir -p "$top/build/bench"
cc -O2 -Wall -Wextra -Werror -o "$top/build/bench/tcpprobe" "$top/bench/tcpprobe.c"
rm -rf "$top/build/bench/dp-run" "$top/build/bench/cpu-marks" "$top/build/bench/cpu-samples"
# Host CPU time of the UML at each throughput measurement's start and end (a figure that
# load from other work on the host's cores does not inflate): dp-compare-cpu.py.
: >"$top/build/bench/cpu-marks"
python3 "$top/bench/dp-compare-cpu.py" "$top/build/bench/dp-run" "$top/build/bench/cpu-marks" \
	"$top/build/bench/cpu-samples" &
sampler=$!
QOTP_BENCH_CPUMARKS=$top/build/bench/cpu-marks QOTP_KMOD=$kmod QOTP_BENCH_PROBE=$top/build/bench/tcpprobe QOTP_BENCH_STREAMS=${QOTP_BENCH_STREAMS:-$(nproc)} \
	"$top/scripts/uml-run.sh" --fast --mem 2560M --timeout 2400 --keep "$top/build/bench/dp-run" -- \
	"$top/bench/dp-compare.sh" >"$out" 2>&1 || rc=$?
wait "$sampler" || true
# CSV tputcpu,VARIANT,STREAMS,ROUND,CPU_SECONDS: host CPU time the whole UML spent on one
# throughput measurement (between its start and end marks).
awk '$1 == "start" { s[$3 " " $4 " " $5] = $NF }
     $1 == "end" && ($3 " " $4 " " $5) in s {
	printf "CSV tputcpu,%s,%s,%s,%.4f\n", $3, $4, $5, $NF - s[$3 " " $4 " " $5] }' \
	"$top/build/bench/cpu-samples" >>"$out" 2>/dev/null || true
exit "${rc:-0}"
