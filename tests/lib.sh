# shellcheck shell=bash
# Shared helpers for qotp's end-to-end tests (tests/e2e/*.sh run inside UML; tests/integ/*.sh
# run on the host). Source it first thing:
#
#   . "$(dirname "$0")/../lib.sh"
#
# It gives:
#   ok MSG / fail MSG        print "[ OK ] MSG" / "[FAIL] MSG" and count
#   check MSG CMD...         ok when CMD succeeds, fail (with its output) otherwise; CMD runs
#                            in this shell, so what it starts with bg (capture_start,
#                            rtmp_server) keeps its PID_ variable and is stopped later
#   skip MSG                 print "[SKIP] MSG"; counted apart, never as passed
#   ns_new NAME              create netns "$NS_PREFIX-NAME", echo its name; deleted at exit
#   nsx NAME CMD...          run CMD in that netns
#   link NS1 IF1 NS2 IF2     veth pair between two of our namespaces, both up
#   addr NS IF CIDR          add an address (v4 or v6; v6 without DAD delay)
#   bg NAME CMD...           start CMD in the background, log to $T/NAME.log, killed at exit
#   wait_port NS PORT [SEC]  poll until a TCP listener on PORT exists in NS (SEC: 60)
#   wait_for SEC CMD...      poll CMD until it succeeds or SEC seconds of wall clock pass
#   finish                   print the summary line and exit 0 iff nothing failed
# $T is a private scratch directory for the test, removed at exit unless QOTP_KEEP=1
# (inside UML only QOTP_* variables arrive; KEEP=1 works on the host) or a check failed.

set -u
TEST_NAME=$(basename "$0" .sh)
NS_PREFIX="q$$"
T=$(mktemp -d "${TMPDIR:-/tmp}/qotp-$TEST_NAME.XXXXXX")
__passed=0
__failed=0
__skipped=0
__ns=()
__pids=()

# With QOTP_TIMELINE set (scripts/uml-run.sh sets it), each result is also written there
# after the seconds since the script started: where a test's time goes.
__stamp() { [ -z "${QOTP_TIMELINE:-}" ] || printf '%d %s\n' "$SECONDS" "$1" >>"$QOTP_TIMELINE"; }
ok() { printf '[ OK ] %s\n' "$*"; __passed=$((__passed + 1)); __stamp "[ OK ] $*"; }
fail() { printf '[FAIL] %s\n' "$*"; __failed=$((__failed + 1)); __stamp "[FAIL] $*"; }
skip() { printf '[SKIP] %s\n' "$*"; __skipped=$((__skipped + 1)); __stamp "[SKIP] $*"; }
note() { printf '       %s\n' "$*"; }

# CMD runs in the current shell, its output into a file shown only on failure: in a
# command substitution it would run in a subshell, and the pid that bg records there
# (PID_NAME, and __pids for the cleanup) would be lost with it.
__checks=0
check() {
	local msg=$1 out
	shift
	__checks=$((__checks + 1))
	out=$T/.check.$__checks
	if "$@" >"$out" 2>&1; then
		ok "$msg"
	else
		fail "$msg"
		[ -s "$out" ] && tail -15 "$out" | sed 's/^/       | /'
	fi
	rm -f "$out"
}

ns_new() {
	local n="$NS_PREFIX-$1"
	ip netns add "$n" || { echo "lib: cannot create netns $n" >&2; exit 1; }
	__ns+=("$n")
	ip -n "$n" link set lo up
	echo "$n"
}
nsname() { echo "$NS_PREFIX-$1"; }
# Without a subshell for the name, and `ip -n` for ip itself instead of `ip netns exec`
# (which also makes a mount namespace and remounts /sys): each process and fork costs ~0.3
# to 1 s in QEMU's debug kernel under TCG (Documentation/testing.md), and the topologies
# run dozens of these.
nsx() {
	local n=$NS_PREFIX-$1
	shift
	if [ "$1" = ip ]; then
		shift
		ip -n "$n" "$@"
	else
		ip netns exec "$n" "$@"
	fi
}

link() {
	ip link add "$2" netns "$NS_PREFIX-$1" type veth peer name "$4" netns "$NS_PREFIX-$3"
	ip -n "$NS_PREFIX-$1" link set "$2" up
	ip -n "$NS_PREFIX-$3" link set "$4" up
}

addr() {
	case "$3" in
	*:*) ip -n "$NS_PREFIX-$1" addr add "$3" dev "$2" nodad ;;
	*) ip -n "$NS_PREFIX-$1" addr add "$3" dev "$2" ;;
	esac
}

forwarding() {
	nsx "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

bg() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	__pids+=($!)
	eval "PID_$name=$!"
}

# wait_for SEC CMD...: a deadline of SEC seconds (integer) on the wall clock, CMD tried at
# least once and every 0.1 s. (It used to count SEC * 10 polls, which on a loaded machine
# stretched a wait of "10 s" to a minute: each poll forks and the fork is what is slow.)
wait_for() {
	local sec=$1 end
	shift
	end=$(( ${EPOCHREALTIME/./} + sec * 1000000 ))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
		sleep 0.1
	done
}

wait_port() {
	local ns=$1 port=$2 sec=${3:-60}
	wait_for "$sec" bash -c "ip netns exec $(nsname "$ns") ss -tlnH 'sport = :$port' | grep -q ."
}

cleanup() {
	local p n
	for p in "${__pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${__pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	for n in "${__ns[@]}"; do
		# Processes started with `ip netns exec` outside bg() die with their netns's pids.
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	# Inside UML /tmp is a private tmpfs that dies with the kernel: keep what a failed test
	# (or any test with QOTP_KEEP=1, which uml-run.sh passes in, or KEEP=1 on the host) left
	# in the repository's build directory instead.
	if [ "${QOTP_KEEP:-${KEEP:-0}}" = 1 ] || [ "$__failed" -gt 0 ]; then
		local keep="${QOTP_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}/build/test-artifacts/$TEST_NAME"
		rm -rf "$keep" && mkdir -p "$keep" && cp -a "$T/." "$keep/" && echo "lib: test files kept in $keep" >&2
	fi
	rm -rf "$T"
}
trap cleanup EXIT

finish() {
	printf '== %s: %d ok, %d fail' "$TEST_NAME" "$__passed" "$__failed"
	[ "$__skipped" -gt 0 ] && printf ', %d skipped' "$__skipped"
	printf '\n'
	[ "$__failed" -eq 0 ] && [ "$__passed" -gt 0 ]
	exit $?
}

# --- kmsd in a test

# kms_conf NODE ADDR LINE...: writes $T/NODE.conf for a kmsd named NODE listening on
# ADDR:7000, its certificate from $T/pki (scripts/mkpki.sh), store, control socket and
# pidfile under $T, quick caching rounds (blocks usable after 100 ms, a round every 50 ms),
# and reconnects at most 1 s apart (reconnect-max 1); then each LINE as given (keepalive, dist-*, neighbours, ...).
# Each link's store holds at most 32 MiB of live key (link-max-bytes; kmsd's default is
# 1 GiB): the stores live in the UML's /tmp, a tmpfs of half its 1536 MiB, and kms-ring's
# eight link stores (four qkdsimd at 8 Mbit/s, two ends each) filled it within minutes:
# every transaction then failed with "No space left on device", transfers stopped and the
# stream starved (0 packets played). 32 MiB is many times what any test's streams take.
kms_conf() {
	local n=$1 a=$2; shift 2
	{
		cat <<EOC
node $n
listen $a:7000
tls-cert $T/pki/$n.crt
tls-key $T/pki/$n.key
tls-ca $T/pki/ca.crt
store $T/$n.db
control $T/$n.sock
pidfile $T/$n.pid
min-block-age-ms 100
round-interval-ms 50
reconnect-max 1
link-max-bytes 33554432
EOC
		printf '%s\n' "$@"
	} >"$T/$n.conf"
}

# --- RTMP helpers: nginx with the RTMP module as server, ffmpeg as publisher and player.

# rtmp_server NS [PORT]: start nginx-rtmp in NS with application "live"; waits until it listens.
rtmp_server() {
	local ns=$1 port=${2:-1935} d="$T/nginx-$1"
	local mod=/usr/lib/nginx/modules/ngx_rtmp_module.so
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<EOC
load_module $mod;
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 256; }
rtmp {
	server {
		listen $port;
		chunk_size 4096;
		# A player that falls behind (a loaded test guest) gets its frames late, not
		# dropped: with the default queue (256 messages, inter frames dropped from 128 on)
		# nginx skipped 21 frames to the next keyframe for a slow player, and the frame
		# check failed with every byte qotp delivered intact. out_cork as by default.
		out_queue 4096;
		out_cork 32;
		application live { live on; record off; }
	}
}
EOC
	bg "nginx_$ns" nsx "$ns" nginx -p "$d" -c "$d/nginx.conf"
	wait_port "$ns" "$port" 60
}

# rtmp_joined LOG NAME [SEC]: wait until nginx-rtmp (error_log LOG, level info) has taken
# the play command for stream NAME; from then on the player gets the stream from its
# first packet. An ESTABLISHED connection is not that yet: the RTMP handshake, connect,
# createStream and play follow, and a publisher started meanwhile is joined mid-stream.
rtmp_joined() { wait_for "${3:-60}" grep -qF "play: name='$2'" "$1"; }

# make_video FILE [SECONDS] [WxH]: a test clip (moving pattern + tone) as FLV (H.264 +
# AAC), 320x240 unless told (about 100 KB/s; 160x120 is about a third of that). Made once
# per machine by scripts/clips.sh, which keeps it in $QOTP_CACHE (the runner has it made on
# the host before the guests boot: ffmpeg in the debug UML kernel is slow), and copied here.
make_video() {
	"${QOTP_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/scripts/clips.sh" \
		video "$1" "${2:-4}" "${3:-320x240}"
}

# framemd5_list FILE: from `ffmpeg -c copy -f framemd5` output, one line per packet
# "media_type size md5", grouped by media type in stream order. Timestamps are left out
# (a live relay may rebase them) and so are stream indices (a relay may renumber streams).
framemd5_list() {
	awk -F', *' '
		/^#media_type/ { split($0, a, /[ :]+/); type[a[2]] = a[3]; next }
		/^#/ { next }
		{ print (($1 in type) ? type[$1] : "stream" $1), $5, $6 }
	' "$1" | sort -s -k1,1
}

# frame_limits SRC_MD5: ffmpeg output options that end a player once it has written as many
# video and audio packets as the source holds ("-frames:v N -frames:a M", counted from the
# source's framemd5). Without them an ffmpeg player with -c copy runs on for its
# -rw_timeout (20 to 40 s) after its last byte: it does not end at nginx-rtmp's
# UnpublishNotify, and it keeps the last audio packet in its interleaving queue until its
# input ends, so nothing outside can tell that it has everything. With them it ends and
# flushes at the last packet (loopback, nginx-rtmp: at the moment the publisher ended,
# 274/274 packets identical). A player short of a packet still waits for -rw_timeout as
# before; a packet beyond the source's count is not written (a duplicate inside the
# stream still shows: the list then lacks the last packet).
frame_limits() {
	framemd5_list "$1" | awk '{ n[$1]++ }
		END {
			if (n["video"]) printf "-frames:v %d ", n["video"]
			if (n["audio"]) printf "-frames:a %d", n["audio"]
		}'
}

# packets_match WHAT SRC_MD5 GOT_MD5 [LOG]: one assertion that what was received (GOT_MD5,
# ffmpeg's framemd5 output) holds every packet of the source (SRC_MD5), with the same
# sizes and hashes in the same order per media type; on failure, the first differences
# and the last lines of LOG.
packets_match() {
	local nsrc ngot
	framemd5_list "$2" >"$2.list"
	framemd5_list "$3" >"$3.list" 2>/dev/null
	nsrc=$(wc -l <"$2.list")
	ngot=$(wc -l <"$3.list")
	if [ "$nsrc" -gt 50 ] && cmp -s "$2.list" "$3.list"; then
		ok "$1: every packet intact ($ngot/$nsrc, identical hashes)"
	else
		fail "$1: got $ngot packets of $nsrc, or hashes differ"
		diff "$2.list" "$3.list" | head -6 | sed 's/^/       | /'
		[ -z "${4:-}" ] || tail -5 "$4" | sed 's/^/       | /'
	fi
}

# --- Eavesdropper helpers: dumpcap captures on the untrusted link, tshark dissects.

# capture_start NS IF[,IF...] FILE [FILTER]: start capturing all of each IF in NS (or what the
# capture filter FILTER, pcap syntax, keeps) into FILE (pcapng); waits until dumpcap reports that
# it captures (up to 180 s). dumpcap is Wireshark's capture engine, which tshark itself
# runs to capture: started alone it needs none of tshark's dissector start-up, which took
# 50 to 75 s inside a loaded UML (and once more than 180 s). Stop with capture_stop FILE.
# Call it directly or under check, not in a subshell ($(...), a pipe): capture_stop needs
# the pid bg records.
capture_start() {
	local name="cap_$(basename "$3" | tr -c 'a-zA-Z0-9\n' _)" i args=()
	for i in ${2//,/ }; do args+=(-i "$i" ${4:+-f "$4"}); done
	bg "$name" nsx "$1" dumpcap "${args[@]}" -w "$3" -q
	wait_for 180 grep -q "Capturing on" "$T/$name.log"
}
# capture_stop FILE: SIGINT to dumpcap (which then flushes and closes FILE), wait up to
# 30 s for it to exit; fails if it was not started here, did not exit, or left a capture
# that capinfos cannot read to its end. bg's pid is the subshell that runs nsx, and `ip
# netns exec` is its child: dumpcap is that pid itself or one of its descendants.
capture_stop() {
	local name="cap_$(basename "$1" | tr -c 'a-zA-Z0-9\n' _)" pid p ts=
	pid=$(eval echo "\${PID_$name:-}")
	[ -n "$pid" ] || { echo "capture_stop: no capture of $1 started in this shell" >&2; return 1; }
	for p in $(__descendants "$pid"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = dumpcap ] && ts="$ts $p"
	done
	kill -INT ${ts:-$pid} 2>/dev/null
	wait_for 30 __gone "$pid" || { echo "capture_stop: dumpcap ($pid) still runs" >&2; return 1; }
	capinfos -c "$1" >/dev/null 2>&1 || { echo "capture_stop: $1 is not a complete capture" >&2; return 1; }
}
__gone() { ! kill -0 "$1" 2>/dev/null; }
# __descendants PID: PID and every process below it
__descendants() {
	local c
	echo "$1"
	for c in $(pgrep -P "$1"); do __descendants "$c"; done
}

# wire_fields FILE: tshark's one pass over a capture, which the helpers below read (made
# again only when FILE is newer than FILE.fields). One line per frame of port 1935 or
# holding an AMF string, port 1935 decoded as RTMP whatever its direction; its fields,
# tab-separated: tcp.port, tcp.len (each with every occurrence, comma-joined), tcp.payload
# (hex), amf.string (every occurrence, comma-joined; tshark writes a tab or newline inside
# a string as \t, \n). One pass for all of them: each tshark start took 50 to 75 s in a
# loaded UML, and kms-star's three passes over one capture took 150 to 260 s.
wire_fields() {
	[ -e "$1.fields" ] && ! [ "$1" -nt "$1.fields" ] && return 0
	tshark -n -r "$1" -d tcp.port==1935,rtmpt -Y 'tcp.port==1935 || amf.string' -T fields \
		-e tcp.port -e tcp.len -e tcp.payload -e amf.string >"$1.fields.tmp" 2>/dev/null
	mv -f "$1.fields.tmp" "$1.fields"
}

# rtmp_messages FILE: how many meaningful RTMP messages tshark dissects in a capture, port
# 1935 decoded as RTMP whatever its direction: command calls and responses with a known RTMP
# command name (connect, createStream, publish, play, onStatus, _result, onMetaData ...).
# Forcing the dissector onto random bytes makes it "decode" garbage chunks, so counting every
# rtmpt frame would say nothing; a known command name appears in noise with negligible odds.
# (The frames whose amf.string field is set, as `tshark -Y amf.string -e amf.string` lists them.)
rtmp_messages() {
	wire_fields "$1"
	cut -f4 "$1.fields" |
		grep -cE '(^|,)(connect|createStream|publish|play|play2|onStatus|_result|_error|deleteStream|releaseStream|FCPublish|FCUnpublish|getStreamLength|onMetaData|@setDataFrame|\|RtmpSampleAccess|closeStream|receiveAudio|receiveVideo)(,|$)'
}

# wire_payload FILE: the TCP payload bytes of the capture's port-1935 frames, in capture
# order: the frames `tshark -Y 'tcp.port==1935 && tcp.len>0'` keeps (any tcp.port 1935 and
# any tcp.len above 0, as a display filter compares a field that occurs more than once).
__payload_py='
import sys, binascii
def payload(fields):
    data = []
    for l in open(fields, "rb"):
        port, tlen, hexa = l.rstrip(b"\n").split(b"\t")[:3]
        if b"1935" in port.split(b",") and any(int(n) > 0 for n in tlen.split(b",") if n):
            data.append(binascii.unhexlify(hexa.strip().replace(b":", b"")))
    return b"".join(data)
'
wire_payload() {
	wire_fields "$1"
	python3 -c "$__payload_py"'
sys.stdout.buffer.write(payload(sys.argv[1]))' "$1.fields"
}

# wire_bytes FILE: the port-1935 payload bytes tshark counts in a capture (the sum of each
# port-1935 frame's tcp.len, its first occurrence: `tshark -Y tcp.port==1935 -e tcp.len`
# summed by awk).
wire_bytes() {
	wire_fields "$1"
	awk -F'\t' '{ n = split($1, p, ","); for (i = 1; i <= n; i++) if (p[i] == "1935") { s += $2; break } }
		END { print s + 0 }' "$1.fields"
}

# plaintext_markers FILE: print which well-known RTMP/FLV plaintext markers appear in the
# captured TCP payloads of port 1935 (AMF "connect" command, "onMetaData", "@setDataFrame",
# the application path "live/", an FLV file header, the "LavfN.N.N" encoder tag). Prints
# nothing when none is found. Each marker is long enough (40+ bits) that ciphertext of a
# few MB matches one by chance less than once in 10^5 runs.
plaintext_markers() {
	wire_fields "$1"
	python3 -c "$__payload_py"'
import re
data = payload(sys.argv[1])
markers = {rb"\x02\x00\x07connect": "AMF connect", rb"onMetaData": "onMetaData",
           rb"@setDataFrame": "@setDataFrame", rb"FLV\x01[\x00-\x0f]\x00\x00\x00\x09": "FLV header",
           rb"live/": "application path", rb"Lavf\d+\.\d+\.\d+": "encoder tag"}
for m, name in markers.items():
    if re.search(m, data):
        print(name)
print("payload bytes examined: %d" % len(data), file=sys.stderr)
' "$1.fields"
}
