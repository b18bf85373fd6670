# SPDX-License-Identifier: GPL-2.0
# Helpers for the kms-*.sh loopback integration tests (sourced, not run). Each test gets a
# private directory, free 127.0.0.1 ports, a test PKI, and a trap that kills what it started.
# KMS_KEEP=1 keeps the directory (logs, stores) for inspection.

set -u
: "${QOTP_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${QOTP_BIN:=$QOTP_TOP/build/kms}"
for p in kmsd qkdsimd kmsctl; do
	[ -x "$QOTP_BIN/$p" ] || { echo "[FAIL] $QOTP_BIN/$p not built (make -C kms)"; exit 1; }
done

T=$(mktemp -d /tmp/kms-integ.XXXXXX)
PIDS=()
NFAIL=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$NFAIL" -ne 0 ]; then
		for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
	fi
	if [ -n "${KMS_KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

ok() { echo "[ OK ] $*"; }
fail() { echo "[FAIL] $*"; NFAIL=$((NFAIL + 1)); }
check() { local msg=$1; shift; if "$@"; then ok "$msg"; else fail "$msg"; fi; }
finish() { [ "$NFAIL" -eq 0 ]; exit $?; }

# free_port: a 127.0.0.1 port nobody listens on now and no outgoing connection can take later.
# bind(port 0) would hand out an ephemeral port, and between the test picking it and kmsd
# binding it another process's connect() (here: kmsd dialling its peer or the TCP simulator)
# may take the same one as its local port - CI saw "Address already in use" that way. So pick
# at random below ip_local_port_range, and never twice in one test ($T/ports).
free_port() {
	python3 - "$T/ports" <<'PY'
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
try:
    used = set(open(sys.argv[1]).read().split())
except FileNotFoundError:
    used = set()
for _ in range(1000):
    port = random.randrange(10000, lo) if lo > 11000 else 0
    if str(port) in used:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    port = s.getsockname()[1]
    s.close()
    break
else:
    sys.exit("free_port: no free port below %d" % lo)
open(sys.argv[1], "a").write("%d\n" % port)
print(port)
PY
}

# wait_for SECONDS 'shell condition': evaluates the condition every 0.1 s.
wait_for() {
	local deadline=$((SECONDS + $1)); shift
	until eval "$1"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

"$QOTP_TOP/scripts/mkpki.sh" "$T/pki" kms-a kms-b kms-c kms-d kms-x >/dev/null

# write_conf NODE PEER LISTEN_PORT PEER_PORT END [extra directives...]
# NB_EXTRA="qotp-peer N" appends options to the neighbour line; NB_SOURCE replaces its
# "qkd-sim SPEC end a|b" (an ETSI 014 source: "qkd-etsi014 KME sae ID peer-sae ID").
write_conf() {
	local node=$1 peer=$2 lp=$3 pp=$4 end=$5 cert=${CERT_OVERRIDE:-$1}; shift 5
	{
		echo "node $node"
		echo "listen 127.0.0.1:$lp"
		echo "tls-cert $T/pki/$cert.crt"
		echo "tls-key $T/pki/$cert.key"
		echo "tls-ca ${CA_OVERRIDE:-$T/pki/ca.crt}"
		echo "store $T/$node.db"
		echo "control $T/$node.sock"
		echo "min-block-age-ms 100"
		echo "round-interval-ms 50"
		echo "lock-timeout-ms 2000"
		echo "keepalive 1"
		echo "reconnect-max 1"
		for d in "$@"; do echo "$d"; done
		# KMS_CONF_EXTRA: more lines for every node (benches comparing settings)
		if [ -n "${KMS_CONF_EXTRA:-}" ]; then printf '%s\n' "$KMS_CONF_EXTRA"; fi
		echo "neighbour $peer address 127.0.0.1:$pp ${NB_SOURCE:-qkd-sim ${QKD_SPEC:-unix:$T/qkd.sock} end $end}${NB_EXTRA:+ $NB_EXTRA}"
	} >"$T/$node.conf"
}

# start_qkdsim ARGS...: sets QKD_PID
# QKD_SPEC=tcp:127.0.0.1:PORT (set before write_conf) uses TCP instead of a UNIX socket.
start_qkdsim() {
	"$QOTP_BIN/qkdsimd" -f -l "${QKD_SPEC:-unix:$T/qkd.sock}" "$@" >>"$T/qkdsimd.log" 2>&1 &
	QKD_PID=$!
	PIDS+=("$QKD_PID")
	wait_for 30 'grep -q "listening on" "$T/qkdsimd.log"' || fail "qkdsimd started: $(tail -n 1 "$T/qkdsimd.log")"
}

# start_kmsd NODE: sets PID_<node with - removed>
start_kmsd() {
	local node=$1 var
	rm -f "$T/$node.sock"
	"$QOTP_BIN/kmsd" -f -v -c "$T/$node.conf" >>"$T/$node.log" 2>&1 &
	var=PID_${node//-/}
	printf -v "$var" %s $!
	PIDS+=("$!")
	# kmsd opens its control socket after its peer listener: no socket, no kmsd.
	wait_for 30 '[ -S "$T/$node.sock" ]' ||
		fail "kmsd $node started: $(tail -n 1 "$T/$node.log")"
}

kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" "${@:2}"; }

# intake_stays NODE WHAT: once what was in flight has landed (2 s), NODE's first link takes
# no QKD block for 2 s more; one assertion named WHAT, with the two counts
intake_stays() {
	local v1 v2
	sleep 2
	v1=$(link_field "$1" qkd_blocks)
	sleep 2
	v2=$(link_field "$1" qkd_blocks)
	check "$2 ($v1 -> $v2)" test "$v1" -eq "$v2"
}

# link_field NODE FIELD: one number or word from `kmsctl --json links` (first link)
link_field() {
	kmsctl "$1" --json links 2>/dev/null | jq -r ".[0].$2 | tostring | ascii_downcase"
}

# sql NODE QUERY
sql() { sqlite3 -cmd '.timeout 5000' "$T/$1.db" "$2"; }

count_state() { sql "$1" "SELECT count(*) FROM blocks WHERE state IN ($2)"; }

# Both stores: same verified blocks with the same bytes (a's link kms-b vs b's link kms-a).
stores_dump() {
	sql "$1" "SELECT id, state, hex(key) FROM blocks LEFT JOIN block_keys USING(link,id) WHERE link='$2' AND state NOT IN (0,1) ORDER BY id"
}

# stores_agree SECONDS: once intake has stopped, kms-a's and kms-b's stores settle (no
# fresh or locked block left within SECONDS), both kmsd stop (SIGTERM), and their stores
# hold the same verified blocks byte for byte: two assertions.
stores_agree() {
	check "stores settle" \
		wait_for "$1" '[ "$(count_state kms-a 0,1)" -eq 0 ] && [ "$(count_state kms-b 0,1)" -eq 0 ]'
	kill -TERM "$PID_kmsa" "$PID_kmsb"
	wait "$PID_kmsa" "$PID_kmsb"
	stores_dump kms-a kms-b >"$T/a.dump"
	stores_dump kms-b kms-a >"$T/b.dump"
	check "both stores hold the same verified blocks, byte for byte ($(wc -l <"$T/a.dump"))" \
		cmp -s "$T/a.dump" "$T/b.dump"
}

# route_of NODE DEST: "next_hop metric status" from `kmsctl routes` ("- 16 unreachable"),
# empty if NODE has no route to DEST at all.
route_of() {
	kmsctl "$1" routes 2>/dev/null | awk -v d="$2" '/^neighbours:/ { exit } $1 == d { print $2, $3, $4 }'
}

# ms_since T0: milliseconds elapsed since T0 (a `date +%s%N` value).
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# start_qkdsim_named NAME ARGS...: one more simulated link, on unix:$T/NAME.sock, logging
# to $T/NAME.log (for tests with several links; start_qkdsim is the single-link one).
start_qkdsim_named() {
	local name=$1; shift
	"$QOTP_BIN/qkdsimd" -f -l "unix:$T/$name.sock" "$@" >>"$T/$name.log" 2>&1 &
	PIDS+=("$!")
	wait_for 5 "grep -qs 'listening on' '$T/$name.log'"
}
