#!/usr/bin/env bash
# `make deb` in a private copy of the tree: both packages built, what they hold, their
# dependencies and maintainer scripts, lintian without a complaint (beyond debian/'s
# overrides), the packaged programs run, and the packaged DKMS source builds qotp.ko the way
# DKMS builds it (dkms.conf's MAKE line, in a DKMS tree under $T) against Debian's amd64
# headers. Nothing is installed on this machine.
. "$(dirname "$0")/../lib.sh"
top=$QOTP_TOP
kdir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)
arch=$(dpkg --print-architecture)

# The copy is a git work tree of its own (make deb packages what git tracks), holding the
# checkout's tracked files as they are now, uncommitted changes included.
src=$T/src
mkdir -p "$src"
(cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$src") || fail "copy the tracked tree"
git -C "$src" -c init.defaultBranch=main init -q && git -C "$src" add -A || fail "git add in the copy"
before=$(git -C "$src" status --porcelain)

ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$src/kmod/dkms.conf")
out=$src/build/deb
dkms_deb=$out/qotp-dkms_${ver}_all.deb
kms_deb=$out/qotp-kms_${ver}_$arch.deb

check "make deb (version $ver from kmod/dkms.conf)" make -C "$src" deb
[ -f "$dkms_deb" ] && ok "built $(basename "$dkms_deb")" || fail "no $(basename "$dkms_deb") in build/deb"
[ -f "$kms_deb" ] && ok "built $(basename "$kms_deb")" || fail "no $(basename "$kms_deb") in build/deb"
[ "$(git -C "$src" status --porcelain)" = "$before" ] && [ ! -e "$out/qotp-$ver" ] &&
	ok "the tree is as before the build (products in build/deb only, the build copy removed)" ||
	{ fail "make deb changed the tree or left its build copy"; git -C "$src" status --short | head | sed 's/^/       | /'; }

# --- what the packages hold
contents() { dpkg-deb --contents "$1" 2>/dev/null | awk '{ print $6 }' | sed 's|^\./|/|'; }
has() {	# has DEB-LIST WHAT PATH...
	local list=$1 what=$2 p miss=()
	shift 2
	for p in "$@"; do grep -qxF "$p" <<<"$list" || miss+=("$p"); done
	[ ${#miss[@]} -eq 0 ] && ok "$what" || { fail "$what: missing ${miss[*]}"; }
}
d=$(contents "$dkms_deb")
s=/usr/src/qotp-$ver
want=("$s/dkms.conf" "$s/uapi/linux/qotp.h")
for f in "$src"/kmod/Kbuild "$src"/kmod/Makefile "$src"/kmod/*.kbuild "$src"/kmod/*.[ch] \
	"$src"/kmod/tests/*.c; do
	want+=("$s/kmod/${f#"$src"/kmod/}")
done
has "$d" "qotp-dkms: dkms.conf, the uapi header and all ${#want[@]} module sources under $s" "${want[@]}"
bad=$(grep -E '\.(o|ko|mod|mod\.c|cmd)$|/\.' <<<"$d")
[ -z "$bad" ] && ok "qotp-dkms: no build product in the source" || fail "qotp-dkms holds build products: $bad"

k=$(contents "$kms_deb")
want=(/lib/systemd/system/kmsd.service /usr/share/qotp/killswitch.nft
	/usr/share/doc/qotp-kms/copyright /usr/share/doc/qotp-kms/examples/kms-a.conf)
for p in kmsd kmsctl qotpctl qkdsimd kmesimd; do want+=("/usr/sbin/$p"); done
for m in "$src"/kms/man/*.[0-9]; do
	n=$(basename "$m")
	want+=("/usr/share/man/man${n##*.}/$n.gz")
done
has "$k" "qotp-kms: 5 programs in /usr/sbin, every man page of kms/man, the kmsd unit, the kill switch" "${want[@]}"
grep -q '^/usr/local' <<<"$k" && fail "qotp-kms installs under /usr/local" || ok "qotp-kms: nothing under /usr/local"

# --- control fields
field() { dpkg-deb --field "$1" "$2"; }
[ "$(field "$dkms_deb" Version)" = "$ver" ] && [ "$(field "$kms_deb" Version)" = "$ver" ] &&
	ok "both at version $ver" || fail "versions $(field "$dkms_deb" Version), $(field "$kms_deb" Version), not $ver"
dep=$(field "$dkms_deb" Depends)
[ "$(field "$dkms_deb" Architecture)" = all ] && [[ "$dep" =~ (^|[ ,])dkms\ \( ]] &&
	ok "qotp-dkms: Architecture all, Depends: $dep" || fail "qotp-dkms: Architecture $(field "$dkms_deb" Architecture), Depends: $dep"
dep=$(field "$kms_deb" Depends)
lack=
for l in libc6 libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libsqlite3-0 libjansson4 \
	libnl-3-200 libnl-genl-3-200; do
	[[ ",$dep" == *", $l "* || ",$dep" == *",$l "* ]] || lack="$lack $l"
done
[ -z "$lack" ] && ok "qotp-kms: Depends on the libraries kms/ links ($dep)" ||
	fail "qotp-kms: Depends lacks$lack: $dep"
[[ "$(field "$kms_deb" Recommends)" == *qotp-dkms* ]] && ok "qotp-kms recommends qotp-dkms" ||
	fail "qotp-kms: Recommends: $(field "$kms_deb" Recommends)"

# --- maintainer scripts
ctl() { dpkg-deb --ctrl-tarfile "$1" | tar -xO "./$2" 2>/dev/null; }
p=$(ctl "$dkms_deb" postinst)
grep -q "DKMS_NAME=qotp$" <<<"$p" && grep -q "DKMS_VERSION=$ver$" <<<"$p" &&
	grep -q common.postinst <<<"$p" && ok "qotp-dkms postinst: dkms add/build/install of qotp/$ver (dh_dkms)" ||
	{ fail "qotp-dkms postinst does not hand qotp/$ver to DKMS"; note "$p"; }
grep -q "dkms remove -m \$DKMS_NAME -v \$DKMS_VERSION --all" <<<"$(ctl "$dkms_deb" prerm)" &&
	ok "qotp-dkms prerm: dkms remove" || fail "qotp-dkms prerm does not remove the module from DKMS"
p=$(ctl "$kms_deb" postinst)
# dh_installsystemd --no-enable: enable only where the admin had it enabled before
grep -q "deb-systemd-helper debian-installed 'kmsd.service'" <<<"$p" &&
	! grep -q "new installations run enable" <<<"$p" &&
	ok "qotp-kms postinst: kmsd.service not enabled on install" ||
	{ fail "qotp-kms postinst enables kmsd.service"; note "$p"; }
grep -q "deb-systemd-invoke stop 'kmsd.service'" <<<"$(ctl "$kms_deb" prerm)" &&
	ok "qotp-kms prerm: kmsd stopped on removal" || fail "qotp-kms prerm does not stop kmsd"

# --- lintian: no error, warning, info or pedantic tag that debian/ does not override
lintian --pedantic --display-info --fail-on error,warning,info,pedantic \
	"$out/qotp_${ver}_$arch.changes" >"$T/lintian.out" 2>&1
rc=$?
out_l=$(grep -v '^running with root privileges' "$T/lintian.out")
[ "$rc" = 0 ] && [ -z "$out_l" ] && ok "lintian --pedantic --display-info on both packages: clean" ||
	{ fail "lintian (exit $rc)"; printf '%s\n' "$out_l" | head -20 | sed 's/^/       | /'; }

# --- the packaged programs and unit
root=$T/root
dpkg-deb -x "$kms_deb" "$root" && dpkg-deb -x "$dkms_deb" "$root" || fail "dpkg-deb -x"
for p in kmsd kmsctl qkdsimd qotpctl kmesimd; do
	o=$("$root/usr/sbin/$p" --help 2>&1) && [ -n "$o" ] && ok "packaged $p --help" ||
		{ fail "packaged $p --help exits non-zero or prints nothing"; note "$o"; }
done
u=$root/lib/systemd/system/kmsd.service
lack=
for e in $(sed -n 's/^Exec[A-Za-z]*=[-@+!]*\(\/[^ ]*\).*/\1/p' "$u"); do
	[ -x "$root$e" ] || [ -x "$e" ] || lack="$lack $e"
done
[ -z "$lack" ] && grep -q '^ExecStart=/usr/sbin/kmsd ' "$u" &&
	ok "kmsd.service runs the packaged /usr/sbin/kmsd" || fail "kmsd.service: no such program$lack"

# --- DKMS's build of the packaged source: dkms copies /usr/src/qotp-<ver> to
# <dkms_tree>/qotp/<ver>/build, sources dkms.conf and runs MAKE[0] there.
if [ -z "$kdir" ]; then
	fail "no /usr/src/linux-headers-*-amd64 (scripts/deps.sh installs linux-headers-amd64)"
else
	kver=${kdir#/usr/src/linux-headers-}
	tree=$T/dkms
	b=$tree/qotp/$ver/build
	mkdir -p "$b" && cp -a "$root$s/." "$b/"
	# in_dkms CODE: CODE evaluated in the build directory, dkms.conf sourced with DKMS's variables
	# shellcheck disable=SC2034
	in_dkms() (
		kernel_source_dir=$kdir dkms_tree=$tree kernelver=$kver arch=x86_64
		# shellcheck disable=SC1091
		. "$b/dkms.conf" && cd "$b" && eval "$1"
	)
	check "dkms.conf's MAKE builds the packaged source against $(basename "$kdir")" \
		in_dkms 'eval "${MAKE[0]}"'
	ko=$(in_dkms 'echo "$PWD/${BUILT_MODULE_LOCATION[0]}${BUILT_MODULE_NAME[0]}.ko"')
	vm=$(modinfo -F vermagic "$ko" 2>/dev/null)
	[[ "$vm" == "$kver "* ]] && ok "$(basename "$ko") built where dkms.conf says, for $kver" ||
		fail "no $ko for $kver (vermagic '$vm')"
fi
finish
