#!/bin/bash
# PID 1 inside the UML test kernel (scripts/uml-run.sh boots it with init=this file).
# The host's root filesystem is our root over hostfs, read-write: so that a test cannot
# touch the host's /tmp, /run or /var/log, those are private tmpfs mounts in here.
# QOTP_RUN (from the kernel command line) is the host directory of this run: it holds
# `cmd` (what to run), and receives `rc`, `dmesg` and `kmemleak`.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

mount -t proc proc /proc
mount -t sysfs sys /sys

# The checkout (this file's) and the run directory stay visible at their paths even when
# they lie under a directory masked below (a clone in /tmp, a run kept in /dev/shm): a
# descriptor is opened on each before the masking and bind-mounted back at the same path
# after it (-c: mount must not resolve /proc/self/fd/N to the path, now masked, it names).
kept=()
kept_fd=()
keep() {
	local p q fd
	p=$(realpath -e "$1" 2>/dev/null) || return 0
	for q in "${kept[@]}"; do
		case "$p/" in "$q"/*) return 0 ;; esac
	done
	exec {fd}<"$p" || return 0
	kept+=("$p")
	kept_fd+=("$fd")
}
keep "${0%/*}/../.."
keep "$QOTP_RUN"
# mask DIR MOUNT-ARGS...: mount over DIR, then bind back the kept paths that lay under it.
mask() {
	local d=$1 i p
	shift
	mount "$@" "$d" || return
	for i in "${!kept[@]}"; do
		p=${kept[$i]}
		case "$p" in
		"$d"/*) mkdir -p "$p" && mount -c --bind "/proc/self/fd/${kept_fd[$i]}" "$p" ||
			echo "qotp-uml: could not keep $p visible under $d" >&2 ;;
		esac
	done
}
mountpoint -q /dev || mask /dev -t devtmpfs dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mask /dev/shm -t tmpfs shm
mount -t debugfs debugfs /sys/kernel/debug
for d in /tmp /run /var/tmp /var/log /var/lib/nginx /var/cache/nginx; do
	[ -d "$d" ] && mask "$d" -t tmpfs -o mode=1777 tmpfs
done
for fd in "${kept_fd[@]}"; do exec {fd}<&-; done
mkdir -p /run/netns /var/log/nginx
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname qotp-uml
ip link set lo up
# In QEMU (scripts/qemu-run.sh): its two virtio-net NICs, vnic1 and vnic2 by their MACs,
# so that no test's veth named eth0 or eth1 collides with them. A stock kernel has the
# driver as a module and no udev here to load it.
if [ -d /sys/bus/virtio/devices ]; then
	modprobe -q virtio_net 2>/dev/null
	for d in /sys/class/net/*; do
		case "$(cat "$d/address" 2>/dev/null)" in
		52:54:00:71:00:0[12]) a=$(cat "$d/address"); ip link set "${d##*/}" name "vnic${a##*:0}" ;;
		esac
	done
fi

# Reports that predate the test (the base kernel's own boot) are not the test's. QEMU's
# debug kernel under TCG takes ~25 s a scan: scripts/qemu-run.sh passes
# QOTP_KMEMLEAK_BOOT=0, and only reports naming qotp (or unresolved addresses, which boot
# objects do not have) fail a run anyway (scripts/kreports.py).
if [ -w /sys/kernel/debug/kmemleak ] && [ "${QOTP_KMEMLEAK_BOOT:-1}" = 1 ]; then
	echo scan >/sys/kernel/debug/kmemleak
	echo clear >/sys/kernel/debug/kmemleak
fi
# On the console too: when a run times out, the console is the only log there is, and
# kreports.py needs this line to tell the test apart from the boot.
echo "qotp-uml: init ready, running test" | tee /dev/kmsg
# Seconds since the kernel started, at each stage: scripts/uml-run.sh reports where a run's
# time went (boot, the command, what follows it).
t_ready=$(cut -d' ' -f1 /proc/uptime)

# Asked by scripts/uml-run.sh once this kernel has run out of time (it creates
# $QOTP_RUN/hang-request and waits a little before killing it): record where every process
# is waiting, so that a timeout, in CI above all, says more than "timed out". Walking
# other tasks' stacks trips KASAN on UML (a false stack-out-of-bounds): the marker line
# tells scripts/kreports.py that reports after it are the dump's, not the test's.
hang_watch() {
	local p cmd tick
	# A one-second wait without forking sleep(1) all along the test: read from a pipe
	# nobody writes to.
	exec {tick}<> <(:)
	while [ ! -e "$QOTP_RUN/hang-request" ]; do read -r -t 1 -u "$tick"; done
	echo "qotp-uml: timed out, state dump follows" >/dev/kmsg
	{
		echo "== $(cut -d' ' -f1 /proc/uptime) s after boot: processes (kernel threads if blocked)"
		ps -eo pid,ppid,stat,etimes,args --sort=pid |
			awk 'NR == 1 || ($1 != 2 && $2 != 2) || $3 ~ /^D/'
		# The innermost frames of each process say what it waits on. Kernel threads
		# have no command line; SysRq w below shows the blocked ones.
		for p in /proc/[0-9]*; do
			cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-100)
			[ -n "$cmd" ] || continue
			echo "== ${p#/proc/} $cmd"
			grep -vE '\] (__switch_to|__schedule|schedule)\+' "$p/stack" 2>/dev/null |
				head -n 6
		done
		echo w >/proc/sysrq-trigger 2>/dev/null
		echo "== the kernel log's last lines since the test began"
		dmesg | sed -n '/qotp-uml: init ready/,$p' | tail -n 80
	} >"$QOTP_RUN/hang.tmp" 2>&1
	mv "$QOTP_RUN/hang.tmp" "$QOTP_RUN/hang"
}
hang_watch &

rc=0
if [ -r "$QOTP_RUN/cmd" ]; then
	cd "$(cat "$QOTP_RUN/cwd" 2>/dev/null || echo /)"
	set -a
	[ -r "$QOTP_RUN/env" ] && . "$QOTP_RUN/env"
	set +a
	# The output also goes to a file on the host: the console is the live view, the file
	# is what the runner reads, whatever happens to the console at power-off. Only the
	# command is waited for, not tee: a process the test left behind may still hold the
	# pipe open, and must not keep this kernel from powering off. tee gets a moment to
	# write what the command printed last.
	bash "$QOTP_RUN/cmd" </dev/null > >(tee "$QOTP_RUN/output") 2>&1
	rc=$?
	teepid=$!
	for _ in $(seq 50); do kill -0 "$teepid" 2>/dev/null || break; sleep 0.1; done
else
	# Not the test's failure, nor the kernel's: scripts/uml-run.sh reads this line from the
	# console (it cannot read a run directory that this kernel cannot see).
	echo "qotp-uml: cannot start the test: no readable $QOTP_RUN/cmd in this kernel" >&2
	rc=127
fi

echo "qotp-uml: test finished with status $rc" >/dev/kmsg
t_done=$(cut -d' ' -f1 /proc/uptime)
if [ -w /sys/kernel/debug/kmemleak ]; then
	# Two scans: kmemleak reports an object only once it has looked unreferenced twice.
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$QOTP_RUN/kmemleak" 2>/dev/null
fi
dmesg >"$QOTP_RUN/dmesg" 2>/dev/null
echo "$t_ready $t_done" >"$QOTP_RUN/times"
echo "$rc" >"$QOTP_RUN/rc"
sync
# Power off: UML exits. LINUX_REBOOT_CMD_POWER_OFF through reboot(2).
exec python3 -c 'import ctypes; ctypes.CDLL(None, use_errno=True).reboot(0x4321FEDC)'
