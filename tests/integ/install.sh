#!/usr/bin/env bash
# `make install` and `make dkms-install` into a staging DESTDIR, as a package build would run
# them; then the staged DKMS source tree is built the way dkms.conf's MAKE line builds it.
. "$(dirname "$0")/../lib.sh"
top=$QOTP_TOP
stage=$T/stage
kdir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)

# A private copy of the tree, so the in-tree kbuild objects of `make install` stay out of
# the checkout under test.
src=$T/src
mkdir -p "$src"
(cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$src") || fail "copy the tracked tree"

check "make install DESTDIR=… (module + programs + man pages)" \
	make -C "$src" install DESTDIR="$stage" PREFIX=/usr KDIR="$kdir"
for f in usr/sbin/kmsd usr/sbin/kmsctl usr/sbin/qkdsimd usr/sbin/qotpctl \
	usr/share/man/man8/kmsd.8 usr/share/man/man8/qotpctl.8 usr/share/man/man5/kmsd.conf.5 \
	usr/share/qotp/killswitch.nft; do
	[ -e "$stage/$f" ] && ok "installed /$f" || fail "missing /$f"
done
for p in kmsd kmsctl qkdsimd qotpctl; do
	out=$("$stage/usr/sbin/$p" --help 2>&1) && [ -n "$out" ] && ok "$p --help" ||
		{ fail "$p --help exits non-zero or prints nothing"; note "$out"; }
done
ko=$(find "$stage/lib/modules" -name qotp.ko 2>/dev/null | head -1)
[ -n "$ko" ] && ok "installed ${ko#$stage}" || fail "qotp.ko not under /lib/modules"
for m in "$stage"/usr/share/man/man*/*; do
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
	[ -z "$out" ] && ok "man page $(basename "$m") renders without warnings" ||
		{ fail "man page $(basename "$m") has warnings"; note "$out"; }
done

check "make dkms-install DESTDIR=…" make -C "$src" dkms-install DESTDIR="$stage"
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$src/kmod/dkms.conf")
check "the staged DKMS tree builds qotp.ko against $(basename "$kdir")" \
	make -C "$kdir" M="$stage/usr/src/qotp-$ver/kmod" modules
finish
