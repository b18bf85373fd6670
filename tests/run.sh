#!/usr/bin/env bash
# The test runner behind `make check`. Runs, in order, and reports each:
#   build    the kms/ programs, qotp.ko for the UML test kernel, and qotp.ko against
#            Debian's x86_64 headers with W=1 and sparse (no warnings allowed)
#   unit     cmocka unit tests of kms/ built with ASan + UBSan (one result per test case)
#   fuzz     every libFuzzer target for FUZZ_SECONDS (default 15) seconds
#   kunit    qotp_test.ko's KUnit suites inside UML (one result per KTAP test case)
#   e2e      tests/e2e/*.sh, each in its own UML boot (one result per [ OK ]/[FAIL] line),
#            E2E_JOBS at once (default: CPU count, at most 4)
#   integ    tests/integ/*.sh on the host, loopback only (likewise), one at a time; when
#            both run, integ scripts take the slots the last e2e scripts leave free
#   qemu     x86_64 SMP guests under QEMU (scripts/qemu-run.sh): qotp.ko against the debug
#            x86_64 kernel (W=1), tests/qemu/smp.sh in one boot of that kernel with 2 CPUs
#            (KUnit, dp-parallel over virtio NICs, dp-teardown; QOTP_QEMU_FULL=1: the whole
#            set), and tests/qemu/stock-dkms.sh on Debian's stock kernel with the packages
#            of scripts/deb.sh and the module DKMS built from qotp-dkms on the host
#            (QOTP_QEMU_FULL=1: dpkg -i and DKMS inside the guest)
# and ends with the time each part took (the ten slowest) and the line "N passed, N failed"
# (", N skipped" when some were skipped).
#
#   tests/run.sh [SECTION...] [-k PATTERN]
# SECTION restricts the run (default: all, in the order above); -k PATTERN keeps only the
# e2e/integ scripts whose name contains PATTERN. Logs: build/test-logs/.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
# Debian's programs first: the tests are written against what scripts/deps.sh installs, and
# an earlier python3 in PATH (a pyenv shim here: about 1 s and half a CPU-second a start,
# against 0.2 s, in the polling loops of the loopback kmsd tests) must not stand in for it.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
scripts/checkout-ok.sh "$top" || exit 2
logs=$top/build/test-logs
mkdir -p "$logs"

sections=()
pattern=
while [ $# -gt 0 ]; do
	case "$1" in
	-k) pattern=$2; shift 2 ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) sections+=("$1"); shift ;;
	esac
done
[ ${#sections[@]} -gt 0 ] || sections=(build unit fuzz kunit e2e integ qemu)

passed=0
failed=0
skipped=0
failures=()
t_begin=$(date +%s)
parts=()	# "SECONDS NAME": each script, and each section that is not made of scripts
sect_times=()	# "NAME SECONDS": each section's wall time
uml_boots=0 uml_boot_ms=0 uml_after_ms=0	# summed over the UML runs (uml_time)

# uml_time LOG: adds a UML run's boot and after-the-command times (scripts/uml-run.sh's
# "uml-run: time:" line) to the run's sums.
uml_time() {
	local b a
	read -r b a < <(sed -n 's/^uml-run: time: .* boot \([0-9.]*\) s, command .*, after it \([0-9.]*\) s$/\1 \2/p' "$1" | tail -1)
	[ -n "${a:-}" ] || return 0
	uml_boots=$((uml_boots + 1))
	uml_boot_ms=$((uml_boot_ms + $(awk -v x="$b" 'BEGIN { printf "%d", x * 1000 }')))
	uml_after_ms=$((uml_after_ms + $(awk -v x="$a" 'BEGIN { printf "%d", x * 1000 }')))
}

pass() { passed=$((passed + 1)); printf '  PASS  %s\n' "$1"; }
flunk() { failed=$((failed + 1)); failures+=("$1"); printf '  FAIL  %s\n' "$1"; }
skipit() { skipped=$((skipped + 1)); printf '  SKIP  %s\n' "$1"; }
section() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
showlog() { sed 's/^/        | /' "$1" | tail -"${2:-25}"; }

# not_started LOG: prints why, and succeeds, when the log says that the UML guest never ran
# the command (scripts/uml-run.sh's status 126, or a refusal before the boot): such a run
# is a failure, but neither a kernel report nor the test's.
not_started() {
	local line
	line=$(grep -a -m1 -E '^uml-run: the UML guest could not start the command: |^qotp: cannot build or test in ' "$1") ||
		return 1
	echo "not started (no kernel report): ${line#uml-run: }"
}

# Count the [ OK ] / [FAIL] / [SKIP] lines of a test script's output. A script that exits
# non-zero without printing a [FAIL] (crash, timeout, kernel report) is one failure more;
# one that prints nothing at all is a failure too: a test that ran no assertion proved nothing.
tally_script() {
	local name=$1 log=$2 rc=$3 n_ok n_fail line
	n_ok=0
	n_fail=0
	while IFS= read -r line; do
		case "$line" in
		"[ OK ] "*) pass "$name: ${line#\[ OK \] }"; n_ok=$((n_ok + 1)) ;;
		"[FAIL] "*) flunk "$name: ${line#\[FAIL\] }"; n_fail=$((n_fail + 1)) ;;
		"[SKIP] "*) skipit "$name: ${line#\[SKIP\] }" ;;
		esac
	done < <(grep -aE '^\[( OK |FAIL|SKIP)\] ' "$log")
	if [ "$rc" -ne 0 ] && [ "$n_fail" -eq 0 ]; then
		if nostart=$(not_started "$log"); then
			flunk "$name: $nostart"; return
		fi
		case $rc in
		124) flunk "$name: timed out"; showlog "$log" 150; return ;;
		125) flunk "$name: kernel report involving qotp, or the kernel died" ;;
		*) flunk "$name: exited with status $rc" ;;
		esac
		showlog "$log" 40
	elif [ "$n_ok" -eq 0 ] && [ "$n_fail" -eq 0 ]; then
		flunk "$name: ran no assertion"
	elif [ "$n_fail" -gt 0 ]; then
		showlog "$log" 40
	fi
}

run_build() {
	section "build"
	if make -C kms -j"$(nproc)" >"$logs/build-kms.log" 2>&1; then
		pass "build: kms/ programs (-Wall -Wextra -Werror)"
	else
		flunk "build: kms/ programs"; showlog "$logs/build-kms.log"
	fi
	if scripts/build-kmod.sh uml >"$logs/build-uml.out" 2>"$logs/build-uml.log"; then
		pass "build: qotp.ko for the UML test kernel"
	else
		flunk "build: qotp.ko for the UML test kernel"; showlog "$logs/build-uml.log"
	fi
	if scripts/build-kmod.sh amd64 >"$logs/build-amd64.out" 2>"$logs/build-amd64.log"; then
		pass "build: qotp.ko against Debian x86_64 headers, W=1 + sparse, no warnings"
	else
		flunk "build: qotp.ko against Debian x86_64 headers, W=1 + sparse"; showlog "$logs/build-amd64.log"
	fi
}

run_unit() {
	section "unit (cmocka, ASan + UBSan)"
	local log=$logs/unit.log rc line name
	make -C kms check-unit >"$log" 2>&1
	rc=$?
	# cmocka prints "[       OK ] name" and "[  FAILED  ] name" per case; the group's
	# "[  FAILED  ] N test(s), listed below:" summary repeats names, so count case lines
	# only before each group's "[==========]" closing line.
	local in_group=0 n=0
	while IFS= read -r line; do
		case "$line" in
		"[==========] Running "*) in_group=1 ;;
		"[==========] "*) in_group=0 ;;
		"[       OK ] "*) [ $in_group = 1 ] && { pass "unit: ${line#\[       OK \] }"; n=$((n + 1)); } ;;
		"[  FAILED  ] "*) [ $in_group = 1 ] && { flunk "unit: ${line#\[  FAILED  \] }"; n=$((n + 1)); } ;;
		"[  SKIPPED ] "*) [ $in_group = 1 ] && skipit "unit: ${line#\[  SKIPPED \] }" ;;
		esac
	done <"$log"
	if [ "$rc" -ne 0 ]; then
		# A sanitizer abort or a build error ends a program before cmocka's summary.
		flunk "unit: make -C kms check-unit exited with status $rc"; showlog "$log" 40
	elif [ $n -eq 0 ]; then
		flunk "unit: no cmocka test case ran"
	fi
}

run_fuzz() {
	section "fuzz (libFuzzer, ${FUZZ_SECONDS:-15}s per target)"
	local log=$logs/fuzz.log line
	make -C kms fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-15}" >"$log" 2>&1
	local rc=$? n=0
	while IFS= read -r line; do
		case "$line" in
		"fuzz "*": ok") pass "$line"; n=$((n + 1)) ;;
		"fuzz "*": FAILED"*) flunk "$line"; n=$((n + 1)) ;;
		esac
	done <"$log"
	if [ $rc -ne 0 ] && [ $n -eq 0 ]; then flunk "fuzz: make -C kms fuzz-smoke failed"; showlog "$log"; fi
	[ $n -gt 0 ] || [ $rc -ne 0 ] || skipit "fuzz: no fuzz target defined"
}

run_kunit() {
	section "kunit (inside UML)"
	local log=$logs/kunit.log rc line n=0
	if [ ! -f build/uml/kmod/qotp_test.ko ]; then
		flunk "kunit: build/uml/kmod/qotp_test.ko was not built"
		return
	fi
	scripts/uml-run.sh --timeout 600 -- tests/uml/kunit.sh >"$log" 2>&1
	rc=$?
	uml_time "$log"
	local suite=
	while IFS= read -r line; do
		line=${line#KTAP: }
		case "$line" in
		"    # Subtest: "*) suite=${line#    # Subtest: } ;;
		"        ok "*|"        not ok "*) ;;	# parameters of a case: the case line counts
		"    ok "*"# SKIP"*) skipit "kunit: $suite: $(echo "${line#    ok }" | cut -d' ' -f2-)" ;;
		"    ok "*) pass "kunit: $suite: $(echo "${line#    ok }" | cut -d' ' -f2-)"; n=$((n + 1)) ;;
		"    not ok "*) flunk "kunit: $suite: $(echo "${line#    not ok }" | cut -d' ' -f2-)"; n=$((n + 1)) ;;
		esac
	done < <(grep -a '^KTAP: ' "$log")
	if [ $rc -ne 0 ] && nostart=$(not_started "$log"); then
		flunk "kunit: $nostart"
	elif [ $rc -ne 0 ]; then
		flunk "kunit: run failed with status $rc (module load, kernel report or timeout)"; showlog "$log" 40
	elif [ $n -eq 0 ]; then
		flunk "kunit: no KUnit case ran"; showlog "$log"
	fi
}

# A script's time limit: E2E_TIMEOUT / INTEG_TIMEOUT (default 420 s), or the script's own
# "# qotp-timeout: SECONDS" header line when that is longer (a test that needs more time
# says so where it is written, instead of every test getting the longest limit).
script_timeout() {
	local t=$1 kind=$2 limit own
	if [ "$kind" = e2e ]; then limit=${E2E_TIMEOUT:-420}; else limit=${INTEG_TIMEOUT:-420}; fi
	own=$(sed -n '1,40s/^# qotp-timeout: *\([0-9][0-9]*\) *$/\1/p' "$t" | head -1)
	if [ -n "$own" ] && [ "$own" -gt "$limit" ]; then limit=$own; fi
	echo "$limit"
}

# How many e2e scripts run at once: E2E_JOBS, default the host's CPU count, at most 4. Each
# boots its own UML kernel (its own network namespaces, /tmp and module), so they share
# nothing but the host's CPUs; 1 runs them one after another.
e2e_jobs=${E2E_JOBS:-$(nproc)}
[[ "$e2e_jobs" =~ ^[1-9][0-9]*$ ]] || { echo "tests/run.sh: E2E_JOBS='$e2e_jobs' is not a positive number" >&2; exit 2; }
[ -n "${E2E_JOBS:-}" ] || [ "$e2e_jobs" -le 4 ] || e2e_jobs=4

# One script, its log and its exit status in $logs/KIND-NAME.{log,rc}.
run_one() {
	local kind=$1 t=$2 log=$3 limit rc child
	limit=$(script_timeout "$t" "$kind")
	if [ "$kind" = e2e ]; then
		scripts/uml-run.sh --timeout "$limit" -- "$t" >"$log" 2>&1 &
	else
		QOTP_TOP=$top QOTP_BIN=$top/build/kms timeout --kill-after=10 "$limit" "$t" >"$log" 2>&1 &
	fi
	child=$!
	# Stopped (the runner was): stop the test too, which stops its UML kernel.
	trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
	wait $child
	rc=$?
	# UML's own known stall (its kernel spinning in the vmalloc purge, identified by its
	# host stack) says nothing about the test: run it once more, keep the first log.
	if [ "$kind" = e2e ] && [ "$rc" = 124 ] && [ -z "${again:-}" ] &&
	   grep -q '^uml-run: STALL: ' "$log"; then
		mv "$log" "${log%.log}.stalled.log"
		printf '  ....  %s/%s: the UML kernel stalled (not the test), once more; first log %s\n' \
			"$kind" "$(basename "$t" .sh)" "${log%.log}.stalled.log"
		again=1 run_one "$kind" "$t" "$log"
		return
	fi
	echo "$rc" >"${log%.log}.rc"
}

# Stopped or interrupted: stop the scripts still running, not leave them behind.
trap 'trap - TERM INT; kill -TERM $(jobs -p) 2>/dev/null; wait; exit 143' TERM INT

# run_scripts KIND...: the scripts of tests/KIND/ for each KIND (e2e, integ), as one pool of
# e2e_jobs slots. e2e scripts start first, longest time limit first (the long ones are the
# stream tests), so that the last to finish is a short one; integ scripts follow, one at a
# time (they share the host's loopback and its ports), each in the first slot that frees:
# beside the tail of the e2e scripts instead of after them. Each is tallied as it ends.
run_scripts() {
	local jobs=1 t name log pid started kind k
	local -A name_of=() log_of=() start_of=() kind_of=()
	for k in "$@"; do [ "$k" != e2e ] || jobs=$e2e_jobs; done
	# The e2e scripts' test clips, made here on the host once per machine (ffmpeg in the
	# debug UML kernel took 83 s for kms-star's 720p clip); each guest copies its own from
	# the cache (scripts/clips.sh, tests/lib.sh make_video), or makes it itself if missing.
	if [[ " $* " == *" e2e "* ]] && ! scripts/clips.sh prepare tests; then
		printf '  (test clips not made on the host: each guest makes its own)\n'
	fi
	if [ "$jobs" -gt 1 ]; then
		printf '  (%d at a time%s)\n' "$jobs" \
			"$([[ " $* " == *" integ "* ]] && echo '; integ scripts one at a time, once every e2e script has started')"
	fi
	local ordered=()
	mapfile -t ordered < <(for kind in "$@"; do
		for t in tests/"$kind"/*.sh; do
			[ -x "$t" ] || continue
			name=$(basename "$t" .sh)
			[ -z "$pattern" ] || [[ "$name" == *"$pattern"* ]] || continue
			printf '%s %s %s %s\n' "$([ "$kind" = e2e ] && echo 0 || echo 1)" \
				"$(script_timeout "$t" "$kind")" "$kind" "$t"
		done
	done | sort -k1,1n -k2,2nr -k4,4 -s | cut -d' ' -f3-)
	# Its own name, log and kind: it runs while the loop below holds the next script's,
	# and once overwrote the next script's kind with the ended one's (every integ script
	# then ran as an e2e script, inside UML, in CI: "e2e/install: timed out").
	finish_one() {
		local pid=$1 rc took name log kind
		name=${name_of[$pid]}
		log=${log_of[$pid]}
		kind=${kind_of[$pid]}
		rc=$(cat "${log%.log}.rc" 2>/dev/null) || rc=125
		took=$(( $(date +%s) - ${start_of[$pid]} ))
		printf '  ....  %s/%s ended after %d s\n' "$kind" "$name" "$took"
		parts+=("$took $kind/$name")
		[ "$kind" != e2e ] || uml_time "$log"
		tally_script "$kind/$name" "$log" "$rc"
		unset "name_of[$pid]" "log_of[$pid]" "start_of[$pid]" "kind_of[$pid]"
	}
	integ_running() {
		local k
		for k in "${kind_of[@]}"; do [ "$k" != integ ] || return 0; done
		return 1
	}
	for t in "${ordered[@]}"; do
		kind=${t%% *}
		t=${t#* }
		while [ ${#name_of[@]} -ge "$jobs" ] || { [ "$kind" = integ ] && integ_running; }; do
			wait -n -p pid
			finish_one "$pid"
		done
		name=$(basename "$t" .sh)
		log=$logs/$kind-$name.log
		rm -f "${log%.log}.rc"
		printf '  ....  %s/%s\n' "$kind" "$name"
		started=$(date +%s)
		run_one "$kind" "$t" "$log" &
		name_of[$!]=$name
		log_of[$!]=$log
		start_of[$!]=$started
		kind_of[$!]=$kind
	done
	while [ ${#name_of[@]} -gt 0 ]; do
		wait -n -p pid
		finish_one "$pid"
	done
}

# run_guest NAME LOG CMD...: one QEMU run of a script, tallied as NAME; its time is a part.
run_guest() {
	local name=$1 log=$2 t0 rc
	shift 2
	printf '  ....  %s\n' "$name"
	t0=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	parts+=("$(( $(date +%s) - t0 )) $name")
	printf '  ....  %s ended after %d s\n' "$name" $(( $(date +%s) - t0 ))
	tally_script "$name" "$log" "$rc"
}

# qemu_dkms_host: DKMS (the real tool, private trees under build/qemu/dkms) builds qotp.ko
# from the qotp-dkms package's source for the stock kernel; prints the module's path.
qemu_dkms_host() {
	local d=$top/build/qemu/dkms kver ver
	kver=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1)
	kver=${kver#/boot/vmlinuz-}
	ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod/dkms.conf)
	rm -rf "$d" && mkdir -p "$d/root" "$d/tree" &&
		dpkg-deb -x "$top"/build/qemu/deb/qotp-dkms_"$ver"_all.deb "$d/root" &&
		dkms build -m qotp -v "$ver" -k "$kver" --sourcetree "$d/root/usr/src" --dkmstree "$d/tree" >&2 &&
		ls "$d/tree/qotp/$ver/$kver"/*/module/qotp.ko
}

# QOTP_QEMU_FULL=1: the whole datapath set on the debug kernel and DKMS inside the stock
# guest (about 20 minutes under TCG); by default the set that fits the section's budget.
run_qemu() {
	local smp_set=(QOTP_SMP_SCRIPTS="dp-parallel+nics dp-teardown") ko
	[ "${QOTP_QEMU_FULL:-0}" != 1 ] || smp_set=()
	section "qemu (x86_64 SMP guests, $(grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ] && echo KVM || echo TCG))"
	# The guests run the programs of build/kms (qotpctl): built here too when this section
	# runs alone (make check-qemu); a no-op after the build section.
	if ! make -C kms -j"$(nproc)" >"$logs/build-kms-qemu.log" 2>&1; then
		flunk "qemu: kms/ programs for the guests"; showlog "$logs/build-kms-qemu.log"
		return
	fi
	if ! scripts/build-kmod.sh qemu >"$logs/build-qemu.out" 2>"$logs/build-qemu.log"; then
		flunk "qemu: qotp.ko for the x86_64 debug kernel (W=1)"; showlog "$logs/build-qemu.log"
	else
		pass "qemu: qotp.ko for the x86_64 debug kernel (W=1)"
		run_guest qemu/smp "$logs/qemu-smp.log" env "${smp_set[@]}" \
			scripts/qemu-run.sh --smp 2 --timeout 1800 -- tests/qemu/smp.sh
	fi
	if ! scripts/deb.sh "$top/build/qemu/deb" >"$logs/qemu-deb.log" 2>&1; then
		flunk "qemu: make deb for the stock kernel's test"; showlog "$logs/qemu-deb.log"
		return
	fi
	if [ "${QOTP_QEMU_FULL:-0}" = 1 ]; then
		ko=
	elif ko=$(qemu_dkms_host 2>"$logs/qemu-dkms.log"); then
		pass "qemu: DKMS builds qotp.ko from the qotp-dkms package for the stock kernel"
	else
		flunk "qemu: DKMS builds qotp.ko from the qotp-dkms package for the stock kernel"
		showlog "$logs/qemu-dkms.log"
		return
	fi
	run_guest qemu/stock-dkms "$logs/qemu-stock-dkms.log" env QOTP_DEB_DIR="$top/build/qemu/deb" \
		${ko:+QOTP_DKMS_KO="$ko"} scripts/qemu-run.sh --kernel stock --smp 2 --timeout 1200 -- tests/qemu/stock-dkms.sh
}

# e2e and integ, when both run, are one section: one pool (run_scripts).
if [[ " ${sections[*]} " == *" e2e "* ]] && [[ " ${sections[*]} " == *" integ "* ]]; then
	rest=()
	for s in "${sections[@]}"; do
		case "$s" in e2e) rest+=(scripts) ;; integ) ;; *) rest+=("$s") ;; esac
	done
	sections=("${rest[@]}")
fi

for s in "${sections[@]}"; do
	t0=$(date +%s)
	case "$s" in
	build) run_build ;;
	unit) run_unit ;;
	fuzz) run_fuzz ;;
	kunit) run_kunit ;;
	qemu) run_qemu ;;
	e2e) section "e2e (inside UML)"; run_scripts e2e ;;
	integ) section "integ (host, loopback)"; run_scripts integ ;;
	scripts) section "e2e (inside UML) and integ (host, loopback)"; run_scripts e2e integ; s=e2e+integ ;;
	*) echo "tests/run.sh: unknown section '$s'" >&2; exit 2 ;;
	esac
	took=$(( $(date +%s) - t0 ))
	sect_times+=("$s $took")
	case "$s" in e2e|integ|e2e+integ|qemu) ;; *) parts+=("$took $s") ;; esac
done

# Where the time went: each section's wall time, then the ten slowest parts (scripts, and
# the sections not made of scripts) with their share of the time all parts took one after
# another (more than the wall time: e2e scripts run several at a time).
time_report() {
	local total=$(( $(date +%s) - t_begin )) sum=0 p line=
	for p in "${parts[@]}"; do sum=$(( sum + ${p%% *} )); done
	for p in "${sect_times[@]}"; do
		line+=", ${p% *} ${p##* } s"
		case "${p% *}" in e2e|e2e+integ) line+=" ($e2e_jobs at a time)" ;; esac
	done
	printf '\nTime: %d s (%d min %02d s) in all%s\n' "$total" $((total / 60)) $((total % 60)) \
		"${line:+; }${line#, }"
	[ "$sum" -gt 0 ] || return 0
	printf 'The ten slowest of %d parts (share of the %d s they took one after another):\n' \
		"${#parts[@]}" "$sum"
	printf '%s\n' "${parts[@]}" | sort -k1,1nr | head -n 10 |
		awk -v sum="$sum" '{ printf "  %5d s  %5.1f %%  %s\n", $1, 100 * $1 / sum, $2 }'
	[ "$uml_boots" -eq 0 ] ||
		printf 'UML kernels: %d runs, %d s booting and %d s after their tests (kmemleak scans, power-off): %.1f %% of the %d s\n' \
			"$uml_boots" $((uml_boot_ms / 1000)) $((uml_after_ms / 1000)) \
			"$(awk -v x=$((uml_boot_ms + uml_after_ms)) -v s="$sum" 'BEGIN { print x / 10 / s }')" "$sum"
}

if [ ${#failures[@]} -gt 0 ]; then
	printf '\nFailed:\n'
	printf '  %s\n' "${failures[@]}"
fi
time_report
printf '\n'
if [ "$skipped" -gt 0 ]; then
	printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
else
	printf '%d passed, %d failed\n' "$passed" "$failed"
fi
[ "$failed" -eq 0 ]
