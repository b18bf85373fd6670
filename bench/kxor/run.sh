#!/usr/bin/env bash
# Build kxor.ko against the non-debug UML kernel (or $1 = fast|debug) and run it inside UML;
# prints three "kxor: 64KiB xor [in place |without SIMD ]N ns memcpy M ns xor/memcpy
# throughput R" lines (target R >= 0.8; what each one measures: kxor_main.c).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
flavour=${1:-fast}
kdir=$("$top/scripts/uml-kernel.sh" "$flavour")
out=$top/build/kxor-$flavour
mkdir -p "$out"
cp "$top/bench/kxor/kxor_main.c" "$top/bench/kxor/kxor_nosimd.c" "$top/bench/kxor/Kbuild" "$top/kmod/xor.c" "$top/kmod/xor.h" "$out/"
make -C "$kdir" M="$out" ARCH=um modules >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
fl=(); [ "$flavour" = fast ] && fl=(--fast)
"$top/scripts/uml-run.sh" "${fl[@]}" --timeout 300 -- bash -c \
	"insmod $out/kxor.ko && rmmod kxor && dmesg | sed -n 's/.*\(kxor: 64KiB .*\)/\1/p'" | grep '^kxor: 64KiB'
