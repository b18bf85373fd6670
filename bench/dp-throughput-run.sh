#!/usr/bin/env bash
# Build qotp.ko for the non-debug UML kernel and run bench/dp-throughput.sh in it.
#   bench/dp-throughput-run.sh [BYTES] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kmod=$("$top/scripts/build-kmod.sh" fast)
make -s -C "$top/kms" >/dev/null
QOTP_KMOD=$kmod QOTP_BENCH_BYTES=${1:-104857600} QOTP_BENCH_ROUNDS=${2:-3} \
	"$top/scripts/uml-run.sh" --fast --mem 2560M --timeout 900 -- "$top/bench/dp-throughput.sh"
