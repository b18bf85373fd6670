#!/usr/bin/env bash
# Build kfig8.ko against the non-debug UML kernel and run it inside UML; prints the module's
# "kfig8: size BYTES encdec_ns NS ok" lines (bench/kfig8/kfig8.c says what is timed).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
kdir=$("$top/scripts/uml-kernel.sh" fast)
out=$top/build/kfig8
mkdir -p "$out"
cp "$top/bench/kfig8/kfig8.c" "$top/bench/kfig8/Kbuild" "$top/kmod/xor.c" "$top/kmod/xor.h" "$out/"
make -C "$kdir" M="$out" ARCH=um W=1 modules >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
if grep -q 'warning:' "$out/build.log"; then grep 'warning:' "$out/build.log" >&2; exit 1; fi
"$top/scripts/uml-run.sh" --fast --timeout 300 -- bash -c \
	"insmod $out/kfig8.ko && rmmod kfig8 && dmesg | sed -n 's/.*\(kfig8: .*\)/\1/p'" | grep '^kfig8: size'
