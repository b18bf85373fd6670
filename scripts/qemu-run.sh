#!/usr/bin/env bash
# Boot an x86_64 kernel under QEMU with the host's root and run one command inside: the
# SMP counterpart of scripts/uml-run.sh, with the same contract.
#
#   scripts/qemu-run.sh [--kernel debug|stock] [--smp N] [--mem SIZE] [--timeout SEC]
#                       [--keep DIR] -- CMD [ARGS...]
#
# --kernel debug (default): the x86_64 debug test kernel (scripts/qemu-kernel.sh: SMP,
#   PREEMPT, KASAN, lockdep, atomic-sleep checks, kmemleak). --kernel stock: Debian's own
#   newest installed linux-image-*-amd64 (/boot), with its modules from the host's
#   /lib/modules. --smp defaults to 2, --mem to 2G.
# The guest's root is the host's, read-only over virtio-9p under a tmpfs overlay (the guest
# may install packages; the host sees none of it); the checkout and the run directory are
# shared read-write. Two virtio-net NICs, vnic1 and vnic2 (52:54:00:71:00:01, :02), joined by a bridge
# of two taps in a network namespace of the QEMU process's own (no address on the host
# side): a NIC pair with the offloads a real virtio NIC negotiates (checksum, TSO, GRO).
# CMD runs as root in the current directory with QOTP_TOP, QOTP_KMOD (default
# build/qemu/kmod for the debug kernel) and QOTP_BIN, and QOTP_VM=qemu, in its environment.
# Acceleration: KVM when /dev/kvm is usable and the CPU shows vmx or svm, else TCG
# (QOTP_QEMU_ACCEL=tcg|kvm forces one); QOTP_QEMU_APPEND adds to the kernel command line
# (e.g. loglevel=7 to see every kernel message on the console). Exit status as scripts/uml-run.sh's: CMD's, or 124
# timed out, 125 a kernel report involving qotp or a kernel that died, 126 the guest could
# not start CMD, 2 refused before booting.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
kernel=debug
smp=2
mem=2G
timeout=900
keep=
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "qemu-run: no command given (see --help)" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-run: qemu-system-x86_64 missing; run scripts/deps.sh" >&2; exit 2; }
"$top/scripts/checkout-ok.sh" "$top" || exit 2

modules=()
case "$kernel" in
debug)
	kdir=$("$top/scripts/qemu-kernel.sh" debug) || exit 1
	image=$kdir/arch/x86/boot/bzImage
	kver=$(cat "$kdir/include/config/kernel.release")
	kmod_default=$top/build/qemu/kmod
	;;
stock)
	image=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1)
	[ -n "$image" ] || { echo "qemu-run: no /boot/vmlinuz-*-amd64; run scripts/deps.sh" >&2; exit 2; }
	kver=${image#/boot/vmlinuz-}
	kmod_default=
	# What reaches the 9p root, in load order (modules.dep lists a module's dependencies
	# after it, deepest last).
	for m in virtio_pci 9pnet_virtio 9p; do
		dep=$(grep -E "(^|/)$m\.ko:" "/lib/modules/$kver/modules.dep") ||
			{ echo "qemu-run: $m not in /lib/modules/$kver/modules.dep" >&2; exit 2; }
		for f in $(echo "${dep#*:}" | tr ' ' '\n' | tac) "${dep%%:*}"; do
			[[ " ${modules[*]} " == *" $f "* ]] || modules+=("$f")
		done
	done
	;;
*) echo "qemu-run: unknown kernel '$kernel' (debug or stock)" >&2; exit 2 ;;
esac

# The initramfs: busybox, the /init above and, for a stock kernel, its 9p modules.
initrd=$top/build/qemu/initramfs-$kver.cpio.gz
if [ ! -s "$initrd" ] || [ "$top/tests/qemu/initramfs-init" -nt "$initrd" ]; then
	[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
		{ echo "qemu-run: a static /bin/busybox is needed (busybox-static); run scripts/deps.sh" >&2; exit 2; }
	mkdir -p "$top/build/qemu"
	d=$(mktemp -d)
	mkdir -p "$d/bin" "$d/modules" "$d/proc" "$d/sys" "$d/dev"
	mknod -m 600 "$d/dev/console" c 5 1
	cp /bin/busybox "$d/bin/busybox"
	install -m 0755 "$top/tests/qemu/initramfs-init" "$d/init"
	for f in "${modules[@]}"; do
		cp "/lib/modules/$kver/$f" "$d/modules/" && echo "${f##*/}" >>"$d/modules.list"
	done
	(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp" && mv "$initrd.tmp" "$initrd"
	rm -rf "$d"
fi

mkdir -p "$top/build/qemu-run"
run=${keep:-$(mktemp -d "$top/build/qemu-run/run.XXXXXX")}
mkdir -p "$run"
run=$(cd "$run" && pwd)
if [ -n "$(printf '%s' "$run" | LC_ALL=C tr -d 'A-Za-z0-9._+,@~/-')" ]; then
	echo "qemu-run: --keep '$run': use a path of letters, digits and . _ - + , @ ~ only" >&2
	exit 2
fi
rm -f "$run/rc" "$run/times" "$run/timeline" "$run/dmesg" "$run/kmemleak" "$run/output" "$run/hang" "$run/hang.tmp" "$run/hang-request"
{
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$run/cmd"
pwd >"$run/cwd"
{
	echo "QOTP_TOP=$(printf %q "$top")"
	echo "QOTP_KMOD=$(printf %q "${QOTP_KMOD:-$kmod_default}")"
	echo "QOTP_BIN=$(printf %q "${QOTP_BIN:-$top/build/kms}")"
	echo "QOTP_TIMELINE=$(printf %q "$run/timeline")"
	echo "QOTP_VM=qemu"
	env | grep -E '^QOTP_[A-Z_]+=' | grep -vE '^QOTP_(TOP|KMOD|BIN|RUN|TIMELINE|VM)=' |
		while IFS= read -r kv; do echo "${kv%%=*}=$(printf %q "${kv#*=}")"; done
} >"$run/env"

accel=${QOTP_QEMU_ACCEL:-}
if [ -z "$accel" ]; then
	# /dev/kvm can open and still hang a guest where the host CPU offers no virtualization
	# to this VM (seen here: KVM_CREATE_VM succeeds, the guest never prints a line).
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
case "$accel" in
kvm) accel_args=(-accel kvm -cpu host) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max,la57=off) ;;
*) echo "qemu-run: QOTP_QEMU_ACCEL=$accel: kvm or tcg" >&2; exit 2 ;;
esac

console=$run/console
nine=(-fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap" -device virtio-9p-pci,fsdev=root,mount_tag=hostroot
	-fsdev "local,id=top,path=$top,security_model=none" -device virtio-9p-pci,fsdev=top,mount_tag=top)
case "$run/" in "$top"/*) ;; *) nine+=(-fsdev "local,id=run,path=$run,security_model=none" -device virtio-9p-pci,fsdev=run,mount_tag=run) ;; esac
nics=()
for i in 1 2; do
	nics+=(-netdev "tap,id=n$i,ifname=qt$i,script=no,downscript=no"
		-device "virtio-net-pci,netdev=n$i,mac=52:54:00:71:00:0$i")
done
# The taps and their bridge live in a network namespace of QEMU's own: nothing on the
# host's network changes, no address anywhere.
setsid unshare -n bash -c '
	for t in qt1 qt2; do ip tuntap add dev $t mode tap vnet_hdr || exit 1; done
	ip link add qbr type bridge && ip link set qbr up || exit 1
	for t in qt1 qt2; do ip link set $t master qbr && ip link set $t up || exit 1; done
	exec "$@"' qemu-run-net \
	qemu-system-x86_64 "${accel_args[@]}" -smp "$smp" -m "$mem" \
	-display none -monitor none -serial "file:$console" -no-reboot \
	-kernel "$image" -initrd "$initrd" \
	-append "console=ttyS0 pci=noacpi quiet loglevel=4 panic=-1 oops=panic QOTP_TOP=$top QOTP_RUN=$run QOTP_INIT=$top/tests/uml/init.sh QOTP_KMEMLEAK_BOOT=0 ${QOTP_QEMU_APPEND:-}" \
	-device virtio-rng-pci "${nine[@]}" "${nics[@]}" \
	</dev/null >"$run/qemu.log" 2>&1 &
pid=$!
t_start=${EPOCHREALTIME/./}
trap 'kill -KILL -- "-$pid" 2>/dev/null; [ -z "${tailpid:-}" ] || kill "$tailpid" 2>/dev/null; exit 143' TERM INT HUP
tailpid=
if [ -t 1 ]; then
	tail -n +1 -F --pid="$pid" "$console" 2>/dev/null &
	tailpid=$!
fi

deadline=$(( $(date +%s) + timeout ))
timed_out=0
while kill -0 "$pid" 2>/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		# init inside records where every process waits (tests/uml/init.sh, hang_watch).
		: >"$run/hang-request"
		for _ in $(seq 60); do
			[ -e "$run/hang" ] || ! kill -0 "$pid" 2>/dev/null && break
			sleep 1
		done
		[ -e "$run/hang" ] || echo "init inside did not answer in 60 s" >"$run/hang"
		kill -KILL -- "-$pid" 2>/dev/null
		break
	fi
	sleep 1
done
wait "$pid" 2>/dev/null
if [ -n "$tailpid" ]; then
	sleep 0.2
	kill "$tailpid" 2>/dev/null
	wait "$tailpid" 2>/dev/null
elif [ -f "$run/output" ]; then
	cat "$run/output"
else
	tr -d '\r' <"$console"
fi
kill -KILL -- "-$pid" 2>/dev/null
if [ -f "$run/times" ] && read -r t_ready t_done _ <"$run/times"; then
	awk -v all="$(( ${EPOCHREALTIME/./} - t_start ))" -v r="$t_ready" -v d="$t_done" -v a="$accel" -v n="$smp" -v k="$kernel" 'BEGIN {
		all /= 1e6
		printf "qemu-run: time: %.1f s in all: boot %.1f s, command %.1f s, after it %.1f s (%s kernel, %s, %d CPUs)\n",
			all, r, d - r, all - d, k, a, n }' >&2
fi
if [ -s "$run/timeline" ]; then
	awk '{ t = $1; $1 = ""; printf "%d\t%s\n", t - prev, substr($0, 2); prev = t }' "$run/timeline" |
		sort -t"$(printf '\t')" -k1,1nr | head -n 3 |
		awk -F'\t' '{ printf "qemu-run: long step: %d s up to %s\n", $1, substr($2, 1, 100) }' >&2
fi

if [ $timed_out -eq 1 ]; then
	echo "qemu-run: TIMEOUT after ${timeout}s: $*" >&2
	echo "qemu-run: at the timeout, inside the kernel:" >&2
	sed 's/^/qemu-run:   /' "$run/hang" | head -n 400 >&2
	status=124
elif why=$(grep -a -m1 -oE 'qotp-uml: cannot start the test: .*|Requested init .* failed.*|No working init found.*' "$console"); then
	echo "qemu-run: the QEMU guest could not start the command: ${why%$'\r'}" >&2
	status=126
elif [ ! -f "$run/rc" ]; then
	echo "qemu-run: the kernel stopped before the command finished (see $console, $run/qemu.log)" >&2
	status=125
else
	status=$(cat "$run/rc")
fi
log=$run/dmesg
[ -s "$log" ] || log=$console
if ! /usr/bin/python3 "$top/scripts/kreports.py" "$log" "$run/kmemleak"; then
	[ "$status" = 0 ] && status=125
fi
[ -n "$keep" ] || { [ "$status" = 0 ] && rm -rf "$run"; }
[ "$status" = 0 ] || echo "qemu-run: run directory kept: $run" >&2
exit "$status"
