#!/usr/bin/env bash
# Install every Debian package that building, testing, the demo and the benchmarks need.
# Idempotent: it asks dpkg first and only calls apt-get when something is missing, so
# `make check` and `make demo` can run it on every invocation at no cost.
set -euo pipefail

PKGS=(
	# toolchain and kernel build
	build-essential pkg-config bc bison flex libelf-dev libssl-dev kmod cpio xz-utils
	rsync sparse clang llvm lld
	linux-source-6.1 linux-headers-amd64
	# userspace libraries
	libnl-3-dev libnl-genl-3-dev libevent-dev libsqlite3-dev sqlite3 libcmocka-dev libjansson-dev
	openssl
	# end-to-end and benchmark components
	iproute2 iputils-ping nftables iptables ethtool procps psmisc util-linux wireguard-tools
	gdb
	nginx-light libnginx-mod-rtmp ffmpeg rtmpdump tshark wireshark-common iperf3 socat
	python3 jq gnuplot-nox imagemagick curl
	# make deb (debian/): debhelper with dh_dkms, lintian on the packages
	debhelper dh-dkms lintian fakeroot
	# QEMU sections (scripts/qemu-run.sh): the x86_64 SMP guests, their initramfs, Debian's
	# stock kernel for the DKMS smoke test, and dkms itself to install qotp-dkms in it
	qemu-system-x86 busybox-static linux-image-amd64 dkms
)

missing=()
for p in "${PKGS[@]}"; do
	# "install ok installed" only; half-configured packages count as missing.
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to install packages (run: sudo $0)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# nginx is started by the tests themselves, never as a system service.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now nginx >/dev/null 2>&1 || true
fi
