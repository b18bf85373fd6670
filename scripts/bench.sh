#!/usr/bin/env bash
# make bench: performance figures as ratios measured side by side in one run, so a shared,
# noisy machine moves both sides of each ratio together. Results: bench/results/.
#
# Measured today:
#   crypto   per-byte cost in userspace on this CPU: qotp's OTP XOR (span lookup included)
#            vs memcpy and vs OpenSSL's AES-256-GCM / ChaCha20-Poly1305 (EVP, SIMD)
#   kxor     qotp's kernel XOR (kmod/xor.c itself) vs memcpy over 64 KiB in the non-debug
#            UML kernel (bench/kxor/run.sh)
#   dp       TCP throughput on port 1935 through two encryptors, qotp vs plain forwarding
#            (same topology, mode off), alternated; key efficiency of those streams
#            (bench/dp-throughput.sh)
#   keys     verified key throughput of one link (bench/kms-cache.sh)
# Not yet measured (see the open issues): TCP throughput through WireGuard / IPsec in
# the non-debug UML kernel, per-segment latency, relay and distribution rates, flow scale.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/results
mkdir -p "$out" "$top/build/bench"

echo "== crypto: ns per byte, userspace, one core ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
cc -O2 -Wall -Wextra -Werror -o "$top/build/bench/cryptobench" "$top/bench/cryptobench.c" -lcrypto
"$top/build/bench/cryptobench" --csv "$out/crypto.csv"
echo "(csv: $out/crypto.csv)"
echo
echo "== kernel XOR vs memcpy over 64 KiB, inside the non-debug UML kernel (target xor/memcpy >= 0.8)"
"$top/bench/kxor/run.sh" fast | tee "$out/kxor.txt"
echo
echo "== TCP on port 1935 through two gateways, non-debug UML kernel: qotp vs plain forwarding (target >= 0.9),"
echo "   and key efficiency of the encrypted streams (target >= 0.98)"
"$top/bench/dp-throughput-run.sh" "${DP_BENCH_BYTES:-104857600}" "${DP_BENCH_ROUNDS:-3}" |
	grep -E 'round|RESULT' | tee "$out/dp-throughput.txt"
echo
echo "== key plane: verified key throughput of one QKD link (qkdsimd at memory speed, two kmsd, TLS, fsync)"
"$top/bench/kms-cache.sh" "${KMS_BENCH_SECONDS:-8}" | tee "$out/kms-cache.txt"
echo
echo "bench: WireGuard/IPsec throughput, latency, relay, distribution and scale figures are not built yet." >&2
