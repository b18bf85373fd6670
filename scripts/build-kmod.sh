#!/usr/bin/env bash
# Build qotp.ko (and qotp_test.ko where the kernel has KUnit) in a copy of the sources, so
# one checkout can be built for several kernels at once without their objects mixing.
#
#   scripts/build-kmod.sh uml     against the UML test kernel   -> build/uml/kmod
#   scripts/build-kmod.sh fast    against the UML bench kernel  -> build/uml-fast/kmod
#   scripts/build-kmod.sh qemu    against the x86_64 debug test kernel (scripts/qemu-kernel.sh),
#                                 W=1; any warning fails                   -> build/qemu/kmod
#   scripts/build-kmod.sh amd64   against Debian's x86_64 headers, W=1 and sparse (C=1);
#                                 any compiler or sparse warning fails -> build/amd64/kmod
#
# Prints the directory holding the .ko files on stdout; the build log goes to stderr.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-uml}
extra=()
case "$target" in
uml) kdir=$("$top/scripts/uml-kernel.sh" debug); out=$top/build/uml; arch=(ARCH=um) ;;
fast) kdir=$("$top/scripts/uml-kernel.sh" fast); out=$top/build/uml-fast; arch=(ARCH=um) ;;
qemu) kdir=$("$top/scripts/qemu-kernel.sh" debug); out=$top/build/qemu; arch=(ARCH=x86_64); extra=(W=1) ;;
amd64)
	kdir=${KDIR:-$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)}
	[ -n "$kdir" ] || { echo "build-kmod: no linux-headers-*-amd64; run scripts/deps.sh" >&2; exit 1; }
	out=$top/build/amd64; arch=(); extra=(W=1 C=1)
	;;
*) echo "build-kmod: unknown target '$target' (uml, fast, qemu or amd64)" >&2; exit 2 ;;
esac

mkdir -p "$out"
rsync -a --delete --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' "$top/kmod" "$top/uapi" "$out/" >&2
# Object files of the previous build stay valid only for unchanged sources: kbuild's own
# dependency tracking handles that, so the copy above keeps them (rsync --exclude).
log=$out/build.log
if ! make -C "$kdir" M="$out/kmod" "${arch[@]}" "${extra[@]}" -j"$(nproc)" modules >"$log" 2>&1; then
	cat "$log" >&2
	echo "build-kmod: $target build failed" >&2
	exit 1
fi
if [ "$target" = amd64 ] || [ "$target" = qemu ]; then
	# W=1 and sparse findings are warnings to make; to us they are failures.
	if grep -E 'warning:|error:' "$log" >&2; then
		echo "build-kmod: $target build has warnings (log: $log)" >&2
		exit 1
	fi
fi
echo "$out/kmod"
