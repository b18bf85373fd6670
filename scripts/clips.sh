#!/usr/bin/env bash
# The test clips (a moving pattern and a tone, H.264 + AAC in FLV), made once with ffmpeg
# and kept outside the repository, like the UML kernel (scripts/uml-kernel.sh).
#
#   scripts/clips.sh video FILE [SECONDS] [WxH]   the tests' clip (tests/lib.sh make_video):
#                                                 4 s and 320x240 unless told
#   scripts/clips.sh cbr FILE SECONDS BITRATE     the demo's relayed 1280x720 clip at a
#                                                 constant video bitrate (x264 filler NALs)
#   scripts/clips.sh prepare tests|demo           make, on the host, every clip the e2e
#                                                 scripts (tests/run.sh) or make demo
#                                                 (scripts/demo.sh, QOTP_DEMO_* as it reads
#                                                 them) will ask for, before a guest boots
#
# FILE gets a copy of the cached clip, which is made first when missing. The cache is
# $QOTP_CACHE/clips (default /var/cache/qotp/clips), one file per clip named by a hash of
# the ffmpeg installed (ffmpeg_id) and of every argument of the ffmpeg command that makes
# it (source, size, rate, duration, codec options), so a clip is remade when any of them
# changes; a .cmd file beside each says what it holds. A clip is written under a temporary
# name and renamed into place, so a guest reading it beside another that makes it never
# sees half a file. Where the cache cannot be written the clip is made straight into
# FILE, as before.
#
# Why: the UML guests (tests/e2e/*.sh, scripts/demo-inside.sh) see the host's file system
# over hostfs, and ffmpeg in the debug UML kernel took 83 s for kms-star's 8 s 720p clip
# beside another test; the host's ffmpeg makes it in a few seconds, once per machine.
# Inside a guest this needs QOTP_CACHE to be visible at the same path (scripts/uml-run.sh
# passes QOTP_* in; under /tmp, /run, /var/tmp or /var/log it is not: tests/uml/init.sh
# mounts private file systems there, and such a guest makes its clips itself).
set -euo pipefail
shopt -s extglob nullglob

dir=${QOTP_CACHE:-/var/cache/qotp}/clips

# The ffmpeg arguments of each kind of clip, less the output file, in array `args`. One
# x264 thread, as the one-CPU guests used when they made the clips: a clip made here is
# then the same file, byte for byte, as the one a guest made before (x264's output, its
# options SEI included, depends on its thread count).
video_args() {	# SECONDS WxH
	args=(-f lavfi -i "testsrc2=size=$2:rate=25"
		-f lavfi -i "sine=frequency=440:sample_rate=44100"
		-t "$1" -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p
		-c:a aac -b:a 64k -threads 1 -f flv)
}
cbr_args() {	# SECONDS BITRATE
	args=(-f lavfi -i "testsrc2=size=1280x720:rate=25"
		-f lavfi -i "sine=frequency=660:sample_rate=44100"
		-t "$1" -c:v libx264 -preset ultrafast -g 25 -b:v "$2" -minrate "$2"
		-maxrate "$2" -bufsize "$2" -x264-params nal-hrd=cbr -pix_fmt yuv420p
		-c:a aac -b:a 64k -threads 1 -f flv)
}

# The ffmpeg that makes the clips, as part of every clip's key: the path, size and mtime of
# its program and of the libraries that make these clips (a package upgrade changes them).
# Not `ffmpeg -version`: starting ffmpeg took 5.7 s in an idle debug UML guest, as long as
# making a small clip there; stat is one small program.
# One glob in one directory: over hostfs each directory read is slow (/usr/lib/*/lib{...}
# took 1 s in an idle guest, this 0.2 s).
ffmpeg_id() {
	local libs
	libs=(/usr/lib/"$HOSTTYPE"-linux-gnu/lib@(avcodec|avfilter|avformat|avutil|swresample|swscale|x264).so.*)
	stat -L -c '%n %s %Y' "$(command -v ffmpeg)" "${libs[@]}"
}

# cachefile ARGS...: the cache file of the clip `ffmpeg ARGS... OUT` makes.
cachefile() {
	printf '%s/%s.flv\n' "$dir" \
		"$( { printf '%s\0' "$id"; printf '%s\0' "$@"; } | sha256sum | cut -c1-16)"
}

# cached ARGS...: prints the cache file of that clip, making it first if missing; status 3
# when the cache cannot be written (nothing printed then).
cached() {
	local c tmp
	c=$(cachefile "$@")
	if [ ! -s "$c" ]; then
		mkdir -p "$dir" 2>/dev/null && tmp=$(mktemp "$c.XXXXXX.tmp" 2>/dev/null) || return 3
		if ! ffmpeg -nostdin -loglevel error -y "$@" "$tmp"; then
			rm -f "$tmp"
			return 1
		fi
		chmod 0644 "$tmp"
		{ echo "$id"; printf 'ffmpeg -nostdin -loglevel error -y'; printf ' %q' "$@" OUT; printf '\n'; } >"$tmp.cmd"
		mv -f "$tmp.cmd" "${c%.flv}.cmd"
		mv -f "$tmp" "$c"
	fi
	echo "$c"
}

# clip FILE ARGS...: FILE holds the clip (a copy of the cached one, or made in place).
clip() {
	local out=$1 c rc=0
	shift
	c=$(cached "$@") || rc=$?
	case $rc in
	0) cp "$c" "$out" ;;
	3) ffmpeg -nostdin -loglevel error -y "$@" "$out" ;;
	*) return "$rc" ;;
	esac
}

# prepare SPEC...: each clip (SPEC: a kind and its arguments, "video 4 320x240") found in
# the cache or made there; one line on stderr when any was made, and a warning (status 0:
# the guests then make theirs) when the cache cannot be written.
prepare() {
	local t0=$SECONDS n=0 spec rc
	for spec in "$@"; do
		# shellcheck disable=SC2086 # a spec is a kind and its words
		set -- $spec
		"${1}_args" "${@:2}"
		[ -s "$(cachefile "${args[@]}")" ] && continue
		rc=0
		cached "${args[@]}" >/dev/null || rc=$?
		case $rc in
		0) n=$((n + 1)) ;;
		3) echo "clips: cannot write $dir; the guests make their clips themselves" >&2; return 0 ;;
		*) return "$rc" ;;
		esac
	done
	# What a killed run left half written.
	find "$dir" -maxdepth 1 -name '*.tmp*' -type f -mmin +60 -delete 2>/dev/null || true
	[ "$n" -eq 0 ] || echo "clips: made $n test clip(s) in $dir in $((SECONDS - t0)) s" >&2
}

cmd=${1:-}
case "$cmd" in
video|cbr|prepare) id=$(ffmpeg_id) ;;
esac
case "$cmd" in
video)
	[ $# -ge 2 ] || { echo "usage: $0 video FILE [SECONDS] [WxH]" >&2; exit 2; }
	video_args "${3:-4}" "${4:-320x240}"
	clip "$2" "${args[@]}"
	;;
cbr)
	[ $# -eq 4 ] || { echo "usage: $0 cbr FILE SECONDS BITRATE" >&2; exit 2; }
	cbr_args "$3" "$4"
	clip "$2" "${args[@]}"
	;;
prepare)
	case "${2:-}" in
	# Every make_video of tests/e2e/ (rtmp-plain and kms-ppetp-rtmp 4 s; rtmp-otp and
	# rtmp-others 6 s; kms-faults-starve 8 s, kms-faults-kmsd 12 s; kms-ring 40 s at
	# 160x120) and kms-star's (scripts/demo-inside.sh with tests/e2e/kms-star.sh's relay
	# seconds). One missing here is made by its guest, and cached there, as before.
	tests) prepare "video 4 320x240" "video 6 320x240" "video 8 320x240" "video 12 320x240" \
		"video 40 160x120" "cbr ${QOTP_DEMO_RELAY_SECONDS:-8} ${QOTP_DEMO_RELAY_BITRATE:-300k}" ;;
	# scripts/demo-inside.sh's clips, with its defaults.
	demo)
		specs=("video ${QOTP_DEMO_SECONDS:-8} 320x240")
		[ "${QOTP_DEMO_RELAY_SECONDS:-30}" -le 0 ] ||
			specs+=("cbr ${QOTP_DEMO_RELAY_SECONDS:-30} ${QOTP_DEMO_RELAY_BITRATE:-300k}")
		prepare "${specs[@]}" ;;
	*) echo "usage: $0 prepare tests|demo" >&2; exit 2 ;;
	esac
	;;
*)
	sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
	[ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
	;;
esac
