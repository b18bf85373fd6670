#!/usr/bin/env bash
# Build (or find in the cache) the x86_64 debug test kernel for QEMU from Debian's
# linux-source-6.1, the same source as the UML kernels (scripts/uml-kernel.sh).
#
#   scripts/qemu-kernel.sh [debug]     prints the build directory (holds arch/x86/boot/bzImage)
#
# Configuration: x86_64 defconfig, then tests/uml/base.config's arch-independent lines,
# tests/qemu/base.config (SMP, PREEMPT, virtio, 9p, what is left out) and
# tests/qemu/debug.config (KASAN, lockdep, atomic-sleep checks, kmemleak). A later fragment
# overrides an earlier one; every resulting line must survive olddefconfig.
# Cached under $QOTP_CACHE (default /var/cache/qotp) keyed by the source version and the
# fragments, beside the UML kernels; the extracted source tree is shared with them.
set -euo pipefail

flavour=${1:-debug}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${QOTP_CACHE:-/var/cache/qotp}
tarball=/usr/src/linux-source-6.1.tar.xz

case "$flavour" in
debug) frags=("$top/tests/uml/base.config" "$top/tests/qemu/base.config" "$top/tests/qemu/debug.config") ;;
-h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "qemu-kernel: unknown flavour '$flavour' (debug)" >&2; exit 2 ;;
esac
[ -r "$tarball" ] || { echo "qemu-kernel: $tarball missing; run scripts/deps.sh" >&2; exit 1; }

# UML's own options mean nothing on x86_64 (its console, hostfs, 64BIT is implied).
uml_only='^CONFIG_(HOSTFS|SSL|STDERR_CONSOLE|NULL_TTY|64BIT)='
merged() {
	cat "${frags[@]}" | grep -E '^CONFIG_' | grep -vE "$uml_only" |
		awk -F= '{ v[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
			END { for (i = 1; i <= n; i++) print v[order[i]] }'
}

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver"; echo "x86_64-$flavour"; merged; } | sha256sum | cut -c1-16)
src=$cache/src-$srcver
out=$cache/qemu-$flavour-$key
image=$out/arch/x86/boot/bzImage

if [ -f "$image" ] && [ -f "$out/.qotp-complete" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$image" ] && [ -f "$out/.qotp-complete" ]; then
	echo "$out"
	exit 0
fi
if [ ! -f "$src/.qotp-extracted" ]; then
	echo "qemu-kernel: extracting linux-source $srcver into $src" >&2
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -C "$src.tmp" --strip-components=1 -xf "$tarball"
	touch "$src.tmp/.qotp-extracted"
	mv "$src.tmp" "$src"
fi

log=$out.log
echo "qemu-kernel: building the $flavour x86_64 kernel in $out (log: $log); about 25 minutes on two cores" >&2
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
merged >"$out/qotp.config"
{
	make -C "$src" O="$out" ARCH=x86_64 defconfig
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$out/qotp.config"
	make -C "$src" O="$out" ARCH=x86_64 olddefconfig
} >"$log" 2>&1 || { echo "qemu-kernel: configuration failed, see $log" >&2; tail -20 "$log" >&2; exit 1; }

bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) opt=${line%%=*}; grep -q "^$opt=" "$out/.config" && { echo "qemu-kernel: $opt should be off" >&2; bad=1; } ;;
	CONFIG_*) grep -qx "$line" "$out/.config" || { echo "qemu-kernel: '$line' did not survive olddefconfig" >&2; bad=1; } ;;
	esac
done <"$out/qotp.config"
[ $bad -eq 0 ] || exit 1

set +e
make -C "$src" O="$out" ARCH=x86_64 -j"$(nproc)" bzImage modules 2>&1 | tee -a "$log" |
	awk -v s="$start" '/^  [A-Z]/ { n++; if (n % 1000 == 0) { printf "qemu-kernel: %d steps, %ds\n", n, systime() - s > "/dev/stderr"; fflush("/dev/stderr") } }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ] || [ ! -f "$image" ]; then
	echo "qemu-kernel: build failed, see $log" >&2
	grep -E 'error|Error' "$log" | head -20 >&2
	exit 1
fi
touch "$out/.qotp-complete"
echo "qemu-kernel: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
