#!/usr/bin/env bash
# Build what bench/lowwater.sh needs and run it in the non-debug UML kernel.
#   [LW_SOURCE=kmsd|agent] bench/lowwater-run.sh OUTFILE
# LW_SOURCE picks the key source (bench/lowwater.sh); only QOTP_* variables reach the
# guest (scripts/uml-run.sh), so it travels as QOTP_LW_SOURCE.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: lowwater-run.sh OUTFILE}
kmod=$("$top/scripts/build-kmod.sh" fast)
make -s -C "$top/kms" >/dev/null
mkdir -p "$top/build/bench"
cc -O2 -Wall -Wextra -Werror -o "$top/build/bench/tcpprobe" "$top/bench/tcpprobe.c"
QOTP_LW_SOURCE=${LW_SOURCE:-${QOTP_LW_SOURCE:-kmsd}} QOTP_KMOD=$kmod QOTP_BENCH_PROBE=$top/build/bench/tcpprobe \
	"$top/scripts/uml-run.sh" --fast --timeout 600 -- "$top/bench/lowwater.sh" >"$out" 2>&1
