#!/usr/bin/env bash
# Boot the UML test kernel with the host's root over hostfs and run one command inside.
#
#   scripts/uml-run.sh [--fast] [--timeout SEC] [--mem SIZE] [--keep DIR] -- CMD [ARGS...]
#
# CMD runs as root in the repository root inside UML, with QOTP_TOP, QOTP_KMOD and QOTP_BIN
# (and any QOTP_* variable of the caller) in its environment. On a terminal the console
# (kernel log included) is shown live; otherwise CMD's output is printed once the kernel has
# exited. Exit status: CMD's, or
#   124  the run timed out (after printing where each process inside waited, or, if the
#        kernel did not answer, its host stack; "uml-run: STALL:" marks UML's own stall),
#   125  the kernel log holds a report (KASAN, lockdep, kmemleak, WARN, BUG, oops) involving
#        qotp code or is logged while CMD runs, or the kernel died before CMD finished,
#   126  the guest could not start CMD (init not found, run directory not visible inside):
#        printed with the reason; not a kernel report,
#   2    refused before booting (scripts/checkout-ok.sh: a path the kernel command line
#        cannot carry, a read-only checkout).
# Boot-time reports of the base kernel and its known warnings are printed as notes and do
# not fail the run (scripts/kreports.py, Documentation/testing.md).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
flavour=debug
timeout=600
mem=1536M
keep=
while [ $# -gt 0 ]; do
	case "$1" in
	--fast) flavour=fast; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "uml-run: no command given (see --help)" >&2; exit 2; }

# Refused before any boot: a checkout the kernel command line cannot name.
"$top/scripts/checkout-ok.sh" "$top" || exit 2
kdir=$("$top/scripts/uml-kernel.sh" "$flavour") || exit 1

# Not under /tmp: inside UML that is a private tmpfs.
mkdir -p "$top/build/uml-run"
run=${keep:-$(mktemp -d "$top/build/uml-run/run.XXXXXX")}
mkdir -p "$run"
# The kernel command line (QOTP_RUN= below) is split at spaces: --keep DIR obeys the checkout's rule.
if [ -n "$(printf '%s' "$run" | LC_ALL=C tr -d 'A-Za-z0-9._+,@~/-')" ]; then
	echo "uml-run: --keep '$run': use a path of letters, digits and . _ - + , @ ~ only" \
		"(the UML kernel command line cannot carry others)" >&2
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
	echo "QOTP_KMOD=$(printf %q "${QOTP_KMOD:-$top/build/uml/kmod}")"
	echo "QOTP_BIN=$(printf %q "${QOTP_BIN:-$top/build/kms}")"
	echo "QOTP_TIMELINE=$(printf %q "$run/timeline")"
	env | grep -E '^QOTP_[A-Z_]+=' | grep -vE '^QOTP_(TOP|KMOD|BIN|RUN|TIMELINE)=' |
		while IFS= read -r kv; do echo "${kv%%=*}=$(printf %q "${kv#*=}")"; done
} >"$run/env"

console=$run/console
# UML keeps its guest memory in a file under TMPDIR; a tmpfs there is fastest.
export TMPDIR=/dev/shm
setsid "$kdir/linux" mem="$mem" rootfstype=hostfs rootflags=/ rw \
	init="$top/tests/uml/init.sh" QOTP_RUN="$run" \
	con=null con0=null,fd:1 quiet loglevel=4 panic=-1 \
	</dev/null >"$console" 2>&1 &
pid=$!
t_start=${EPOCHREALTIME/./}
# Stopped: take the kernel and every process of its session down too.
trap 'kill -KILL -- "-$pid" 2>/dev/null; [ -z "${tailpid:-}" ] || kill "$tailpid" 2>/dev/null; exit 143' TERM INT HUP
# Live console on a terminal. Otherwise (the test runner, CI) print, once the kernel has
# exited, the command's output as init saved it to a host file: no line can be lost to a
# console reader that stopped too early, and none is printed twice.
tailpid=
if [ -t 1 ]; then
	tail -n +1 -f --pid="$pid" "$console" 2>/dev/null &
	tailpid=$!
fi

# Host CPU time (centiseconds at the usual USER_HZ of 100) the kernel process has used.
kernel_cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0; }
deadline=$(( $(date +%s) + timeout ))
timed_out=0
stalled=0
while kill -0 "$pid" 2>/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		# Out of time: init inside records what every process is waiting on
		# (tests/uml/init.sh, hang_watch), given up to 30 s, printed below.
		: >"$run/hang-request"
		cpu0=$(kernel_cpu)
		for _ in $(seq 30); do
			[ -e "$run/hang" ] || ! kill -0 "$pid" 2>/dev/null && break
			sleep 1
		done
		# No answer: the kernel itself is stuck (UML has been seen spinning in its
		# vmalloc purge, Documentation/performance.md "The stalled bench"). Its guest
		# functions are ordinary frames of the host process: show where it is.
		if [ ! -e "$run/hang" ] && kill -0 "$pid" 2>/dev/null; then
			{
				echo "init inside did not answer in 30 s; the kernel process used" \
					"$(( $(kernel_cpu) - cpu0 )) of those 3000 centiseconds of host CPU;" \
					"where it is (gdb):"
				timeout 30 gdb -p "$pid" -batch -ex "bt 40" 2>&1 | grep '^#'
			} >"$run/hang" 2>&1
			grep -q ' in __purge_vmap_area_lazy ' "$run/hang" && stalled=1
		fi
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
# UML leaves helper processes in its session when killed hard.
kill -KILL -- "-$pid" 2>/dev/null
# Where the time went (tests/run.sh sums these lines over a run): from the kernel's start to
# init's "ready", the command, and what follows it (kmemleak scans, dmesg, power-off).
if read -r t_ready t_done _ <"$run/times" 2>/dev/null; then
	awk -v all="$(( ${EPOCHREALTIME/./} - t_start ))" -v r="$t_ready" -v d="$t_done" 'BEGIN {
		all /= 1e6
		printf "uml-run: time: %.1f s in all: boot %.1f s, command %.1f s, after it %.1f s\n",
			all, r, d - r, all - d }' >&2
fi
# The command's three longest steps, from the results tests/lib.sh stamps (QOTP_TIMELINE):
# the seconds from the result before to each, and the result they led to.
if [ -s "$run/timeline" ]; then
	awk '{ t = $1; $1 = ""; printf "%d\t%s\n", t - prev, substr($0, 2); prev = t }' "$run/timeline" |
		sort -t"$(printf '\t')" -k1,1nr | head -n 3 |
		awk -F'\t' '{ printf "uml-run: long step: %d s up to %s\n", $1, substr($2, 1, 100) }' >&2
fi

status=
if [ $timed_out -eq 1 ]; then
	echo "uml-run: TIMEOUT after ${timeout}s: $*" >&2
	if [ -s "$run/hang" ]; then
		echo "uml-run: at the timeout, inside the kernel:" >&2
		sed 's/^/uml-run:   /' "$run/hang" | head -n 400 >&2
	fi
	# tests/run.sh runs a script once more on this line, and only on it.
	[ $stalled -eq 0 ] || echo "uml-run: STALL: the UML kernel spins in its vmalloc purge" \
		"(a UML fault, Documentation/performance.md \"The stalled bench\")" >&2
	status=124
elif why=$(grep -a -m1 -oE 'qotp-uml: cannot start the test: .*|Requested init .* failed.*|No working init found.*' "$console"); then
	# The guest never ran the command: neither a test result nor a kernel report.
	echo "uml-run: the UML guest could not start the command: ${why%$'\r'}" >&2
	status=126
elif [ ! -f "$run/rc" ]; then
	echo "uml-run: the kernel stopped before the command finished (see $console)" >&2
	status=125
else
	status=$(cat "$run/rc")
fi

# Kernel reports: split the log into report blocks and keep the ones naming qotp.
log=$run/dmesg
[ -s "$log" ] || log=$console
if ! python3 "$top/scripts/kreports.py" "$log" "$run/kmemleak"; then
	[ "$status" = 0 ] && status=125
fi

[ -n "$keep" ] || { [ "$status" = 0 ] && rm -rf "$run"; }
[ "$status" = 0 ] || echo "uml-run: run directory kept: $run" >&2
exit "$status"
