#!/usr/bin/env bash
# make deb: build the Debian packages qotp-dkms and qotp-kms (debian/) unsigned, into OUTDIR
# (default build/deb/ of the checkout).
#
#   scripts/deb.sh [OUTDIR]
#
# The build runs in OUTDIR/qotp-<version>/, a copy of the files git tracks (as they are in the
# working tree), so the checkout gets no build products and untracked files stay out of the
# packages. The version is kmod/dkms.conf's PACKAGE_VERSION, the one `make dkms-install`
# and DKMS use; debian/changelog is written into the copy from it (dpkg-buildpackage takes
# the version from there). The copy is removed after a successful build (KEEP=1 keeps it);
# OUTDIR then holds the .deb files, .buildinfo and .changes.
# Needs debhelper, dh-dkms and the build dependencies of debian/control (scripts/deps.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/build/deb}")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/kmod/dkms.conf")
[ -n "$ver" ] || { echo "deb: no PACKAGE_VERSION in kmod/dkms.conf" >&2; exit 1; }
files=$(cd "$top" && git ls-files -z | tr '\0' '\n') ||
	{ echo "deb: $top is not a git checkout (the package is built from its tracked files)" >&2; exit 1; }
[ -n "$files" ] || { echo "deb: git tracks no file in $top" >&2; exit 1; }

src=$out/qotp-$ver
rm -rf "$src"
rm -f "$out"/qotp_"$ver"_*.{buildinfo,changes} "$out"/qotp-*_"$ver"_*.deb
mkdir -p "$src"
(cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$src")

# The changelog entry says which commit the copy was taken from; its date is that commit's
# (dpkg-buildpackage derives SOURCE_DATE_EPOCH from it: the same commit gives the same
# timestamps inside the packages).
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null) || commit=
if [ -n "$commit" ]; then
	date=$(git -C "$top" log -1 --format=%aD HEAD)
	[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] || commit="$commit with uncommitted changes"
	what="from commit $commit"
else
	date=$(date -R)
	what="from a tree without commits"
fi
maint=$(sed -n 's/^Maintainer: //p' "$src/debian/control")
cat >"$src/debian/changelog" <<EOF
qotp ($ver) unstable; urgency=medium

  * Built by make deb $what.

 -- $maint  $date
EOF

echo "deb: building qotp $ver in $src" >&2
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)")
[ "${KEEP:-0}" = 1 ] || rm -rf "$src"
echo "deb: packages in $out:" >&2
ls -1 "$out"/qotp-*_"$ver"_*.deb >&2
