#!/usr/bin/env bash
# Can this checkout be built and tested where it lies? Run first by `make check`, `make demo`
# and `make bench` (before any package install or kernel build) and by scripts/uml-run.sh
# (before any boot). Silent and status 0 when it can; otherwise one line on stderr saying why
# and what to do, and status 2.
#
#   scripts/checkout-ok.sh [DIR]     DIR: the checkout (default: the one holding this script)
#
# What is refused, and why:
#   - a path with characters other than letters, digits and . _ - + , @ ~ / : kbuild's M=
#     (make) splits paths at spaces and treats : # $ % as its own, and the UML kernel command
#     line (init=, QOTP_RUN=) is split at spaces;
#   - a checkout that cannot be written: the builds, the UML run directories and the logs all
#     go to DIR/build (a separate build directory is not supported).
# What works: any other path, /tmp, /run, /var/tmp, /var/log and /dev/shm included (inside the
# UML guest those are private mounts; tests/uml/init.sh puts the checkout back at its path).
set -u
top=${1:-$(cd "$(dirname "$0")/.." && pwd)}

bad=$(printf '%s' "$top" | LC_ALL=C tr -d 'A-Za-z0-9._+,@~/-')
if [ -n "$bad" ]; then
	first=$(printf '%s' "$bad" | LC_ALL=C cut -c1)
	case "$first" in
	' ') what='a space' ;;
	"$(printf '\t')") what='a tab' ;;
	'') what='a newline' ;;
	*) what="'$first'" ;;
	esac
	echo "qotp: cannot build or test in '$top': its path holds $what, which kbuild (make M=)" \
		"and the UML kernel command line cannot carry; clone into a path of letters, digits" \
		"and . _ - + , @ ~ only (e.g. git clone '$top' /root/qotp)" >&2
	exit 2
fi
mkdir -p "$top/build" 2>/dev/null
probe=$top/build/.writable.$$
if ! { : >"$probe"; } 2>/dev/null; then
	echo "qotp: cannot build or test in '$top': it is not writable (make check builds and logs" \
		"into $top/build; a separate build directory is not supported); clone into a" \
		"writable directory (e.g. git clone '$top' /root/qotp)" >&2
	exit 2
fi
rm -f "$probe"
exit 0
