#!/usr/bin/env bash
# Build (or find in the cache) a User-Mode Linux kernel from Debian's linux-source-6.1.
#
#   scripts/uml-kernel.sh [debug|fast]     prints the build directory (holds ./linux) on stdout
#
# "debug" (default) is the test kernel: tests/uml/base.config + tests/uml/debug.config
# (KASAN, lockdep, kmemleak). "fast" is the benchmark kernel: base.config only.
#
# The result is cached outside the repository under $QOTP_CACHE (default /var/cache/qotp),
# keyed by the source package version and the config fragments, so a second `make check`
# on the same machine reuses it. The source tree is extracted once and kept pristine: every
# kernel is built out of tree (O=), which lets the debug and fast kernels share it.
set -euo pipefail

flavour=${1:-debug}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${QOTP_CACHE:-/var/cache/qotp}
tarball=/usr/src/linux-source-6.1.tar.xz

case "$flavour" in
debug) frags=("$top/tests/uml/base.config" "$top/tests/uml/debug.config") ;;
fast) frags=("$top/tests/uml/base.config") ;;
*) echo "uml-kernel: unknown flavour '$flavour' (debug or fast)" >&2; exit 2 ;;
esac

if [ ! -r "$tarball" ]; then
	echo "uml-kernel: $tarball missing; run scripts/deps.sh" >&2
	exit 1
fi

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver"; echo "$flavour"; cat "${frags[@]}"; } | sha256sum | cut -c1-16)
src=$cache/src-$srcver
out=$cache/uml-$flavour-$key

if [ -x "$out/linux" ] && [ -f "$out/.qotp-complete" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
# One builder at a time: a concurrent `make check` waits instead of building twice.
exec 9>"$cache/.lock"
flock 9
if [ -x "$out/linux" ] && [ -f "$out/.qotp-complete" ]; then
	echo "$out"
	exit 0
fi

if [ ! -f "$src/.qotp-extracted" ]; then
	echo "uml-kernel: extracting linux-source $srcver into $src" >&2
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -C "$src.tmp" --strip-components=1 -xf "$tarball"
	touch "$src.tmp/.qotp-extracted"
	mv "$src.tmp" "$src"
fi

log=$out.log
echo "uml-kernel: building the $flavour UML kernel in $out (log: $log); about 6 minutes on two cores" >&2
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
{
	make -C "$src" O="$out" ARCH=um defconfig
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}"
	make -C "$src" O="$out" ARCH=um olddefconfig
} >"$log" 2>&1 || { echo "uml-kernel: configuration failed, see $log" >&2; tail -20 "$log" >&2; exit 1; }

# Every requested option must have survived olddefconfig; a silently dropped one
# (unmet dependency) would make tests pass for the wrong reason.
bad=0
for f in "${frags[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=n) opt=${line%%=*}; grep -q "^$opt=" "$out/.config" && { echo "uml-kernel: $opt should be off" >&2; bad=1; } ;;
		CONFIG_*) grep -qx "$line" "$out/.config" || { echo "uml-kernel: '$line' did not survive olddefconfig" >&2; bad=1; } ;;
		esac
	done <"$f"
done
[ $bad -eq 0 ] || exit 1

# Progress: one line per 1000 build steps, so a newcomer sees that something happens.
set +e
make -C "$src" O="$out" ARCH=um -j"$(nproc)" linux modules 2>&1 | tee -a "$log" |
	awk -v s="$start" '/^  [A-Z]/ { n++; if (n % 1000 == 0) { printf "uml-kernel: %d steps, %ds\n", n, systime() - s > "/dev/stderr"; fflush("/dev/stderr") } }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ] || [ ! -x "$out/linux" ]; then
	echo "uml-kernel: build failed, see $log" >&2
	grep -E 'error|Error' "$log" | head -20 >&2
	exit 1
fi
touch "$out/.qotp-complete"
echo "uml-kernel: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
