#!/usr/bin/env bash
# Inside QEMU, on Debian's stock x86_64 kernel (scripts/qemu-run.sh --kernel stock): install
# the project's own packages as a user would (dpkg, offline: every dependency is already
# on the host root the guest sees), let DKMS build qotp.ko for the running kernel, load it with
# modprobe, and run a datapath test (tests/e2e/dp-gateway.sh) on the packaged module and
# the packaged qotpctl; then purge the package and check DKMS took the module away.
# QOTP_DEB_DIR names the directory holding qotp-dkms_*.deb and qotp-kms_*.deb (scripts/deb.sh).
# With QOTP_DKMS_KO (what make check does, tests/run.sh): DKMS ran on the host, from the
# package's source, for this kernel; the guest installs qotp-kms and loads that module.
. "$(dirname "$0")/../lib.sh"
kver=$(uname -r)
debs=("$QOTP_DEB_DIR"/qotp-dkms_*_all.deb "$QOTP_DEB_DIR"/qotp-kms_*.deb)
[ -f "${debs[0]}" ] && [ -f "${debs[1]}" ] || { fail "no packages in $QOTP_DEB_DIR"; finish; }
note "kernel $kver, $(nproc) CPUs; packages: ${debs[*]##*/}"

check "headers for the running kernel ($kver) are installed" test -e "/lib/modules/$kver/build/Makefile"
# man-db's trigger would rebuild the whole manual database, slow under TCG: off, in the
# guest's overlay only.
rm -f /var/lib/man-db/auto-update
# dpkg, not `apt install ./x.deb`: this machine's apt configuration (a Docker image's
# /etc/apt/apt.conf.d/docker-clean: empty Dir::Cache::pkgcache) makes apt refuse local
# packages ("Internal Error, Pathname to install is not absolute"), and apt took about a
# minute a call under TCG before it failed; every dependency is installed already,
# which is all apt would add.
if [ -n "${QOTP_DKMS_KO:-}" ]; then
	# make check's way (tests/run.sh): DKMS built the module on the host, from this
	# package's source against this kernel's headers (seconds there; 270 s in here under
	# TCG). Here: the programs' package, and the module DKMS made.
	ko=$QOTP_DKMS_KO
	check "dpkg -i qotp-kms" env DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[1]}"
	check "the DKMS-built module's vermagic is the running kernel's" \
		bash -c "modinfo -F vermagic '$ko' | grep -q '^$kver SMP '"
	check "insmod the DKMS-built module" insmod "$ko"
else
	check "dpkg -i qotp-dkms qotp-kms (DKMS builds the module)" \
		env DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}"
	check "dkms status: qotp installed for $kver" bash -c "dkms status qotp -k '$kver' | grep -q ': installed'"
	ko=$(modinfo -k "$kver" -n qotp 2>/dev/null)
	check "modinfo finds the DKMS-built module ($ko)" bash -c "case '$ko' in /lib/modules/$kver/updates/dkms/qotp.ko*) ;; *) exit 1 ;; esac"
	check "its vermagic is the running kernel's" bash -c "modinfo -F vermagic '$ko' | grep -q '^$kver SMP '"
	check "modprobe qotp" modprobe qotp
fi
check "packaged qotpctl talks to it" qotpctl show
check "rmmod qotp" rmmod qotp

# The datapath on the packaged module and tools: dp-gateway loads it from QOTP_KMOD itself.
mod_dir=$T/mod
mkdir -p "$mod_dir"
case "$ko" in
*.xz) xz -dc "$ko" >"$mod_dir/qotp.ko" ;;
*.zst) zstd -qdc "$ko" >"$mod_dir/qotp.ko" ;;
*) cp "$ko" "$mod_dir/qotp.ko" ;;
esac
QOTP_KMOD=$mod_dir QOTP_BIN=$(dirname "$(command -v qotpctl)") \
	QOTP_DP_SIZE=${QOTP_DP_SIZE:-300000} bash "$QOTP_TOP/tests/e2e/dp-gateway.sh" 2>&1 |
	sed -u 's/^\[\( OK \|FAIL\|SKIP\)\] /[\1] dp-gateway: /'
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || fail "dp-gateway on the DKMS-built module exited with status $rc"
lsmod | grep -q '^qotp ' && rmmod qotp

if [ -z "${QOTP_DKMS_KO:-}" ]; then
	check "dpkg --purge qotp-dkms" env DEBIAN_FRONTEND=noninteractive dpkg --purge qotp-dkms
	check "DKMS removed the module" bash -c "! modinfo -k '$kver' -n qotp"
fi
finish
