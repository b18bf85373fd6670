#!/usr/bin/env bash
# Deploy.md's layout 2 end to end: the encryptor hosts run only a kmsd in the agent role,
# the sites' key managers (kmsd with ETSI GS QKD 014 listeners) live in namespaces of their
# own and share no quantum link, so every ring key comes through kms-r's trusted relay
# (topology: kms-agent.inc).
#  - The rings fill from the agents; kms-a cut the agents' keys from transfer keys to kms-b
#    and kms-r relayed them.
#  - A byte-exact exchange on 1935 (IPv6, both ways at once) and an RTMP stream (a clip
#    published from the client to nginx behind encS and played back) pass both gateways;
#    the eavesdropper on mid sees no RTMP command, no RTMP/FLV plaintext marker and none of
#    the exchange's markers.
#  - kill -9 of the agent enc-b mid-stream: once its rings drain the stream stalls and
#    encC drops segments for want of key (fail closed); the agent restarted, the stream
#    resumes and every packet played back equals the source. No ring refuses a block id
#    (none pushed twice, none on one side only as far as the kernel sees).
#  - qotp.ko reloaded under the agents: they log the loss, reopen, and fill the fresh rings
#    once the gateways are configured again; a second exchange is byte-exact.
# qotp-timeout: 720
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
. "$(dirname "$0")/kms-agent.inc"
WM=131072
SECS=12
agent_topo $WM 262144
. "$(dirname "$0")/kms-stream.inc"
live_clip "$SECS"
rtmp_up && ok "nginx-rtmp listens behind encS" || fail "nginx-rtmp listens behind encS"
$H mkdata "$T/data" 400000
bg srv nsx server $HS serve fd78:2::2 1935 "$T/data"

kmsctl() { "$QOTP_BIN/kmsctl" -s "$T/$1.sock" --json "${@:2}"; }
e14() { kmsctl "$1" links | jq -r ".[0].etsi014.$2 | tostring"; }
filled() { [ "$(ring encC 2 encrypt avail)" -ge $WM ] && [ "$(ring encS 1 encrypt avail)" -ge $WM ]; }
agent_start enc-a
agent_start enc-b
check "the agents fill both encrypt rings to the watermark (key only from the key managers)" \
	until_s 180 filled
filled || finish	# nothing below can work without key
check "enc-a is the master SAE, enc-b the slave" test "$(e14 enc-a master)/$(e14 enc-b master)" = true/false
xfers() { kmsctl kms-a saes | jq -r '.nodes[] | select(.node == "kms-b") | .xfer_started'; }
check "kms-a cut the keys from PPETP transfer keys to kms-b ($(xfers) transfers)" test "$(xfers)" -ge 1
relayed() { kmsctl kms-r status | jq -r '.ppetp.relayed'; }
check "kms-r relayed them ($(relayed) relays)" test "$(relayed)" -ge 1

check "dumpcap captures on the untrusted mid link" capture_start mid eth1 "$T/wire.pcapng"
wait_port server 1935 || fail "exchange server listens"
check "1935 (IPv6) both ways at once through both gateways, byte-exact" \
	nsx client $H both fd78:2::2 1935 "$T/data"

# --- the stream, and the agent enc-b killed in it
play 1 && ok "player connected" || fail "player connected"
e0=$(stat encC 2 enc_bytes)
publish 1
flowing() { [ "$(stat encC 2 enc_bytes)" -ge $((e0 + 150000)) ]; }
check "the stream is flowing (150 KB encrypted at encC)" until_s 120 flowing
lastE=$(ring encC 2 encrypt last_id)
check "kill -9 of the agent enc-b" kill -9 "$(cat "$T/enc-b.pid")"
d0=$(stat encC 2 drop_no_key)
s_kill=$SECONDS
stalled() { [ "$(stat encC 2 drop_no_key)" -gt "$d0" ]; }
check "without its agent encC runs dry and drops segments for want of key (fail closed)" \
	until_s 120 stalled
note "stalled $((SECONDS - s_kill)) s after the kill; encC encrypt ring: $(ring encC 2 encrypt avail) B left"
agent_start enc-b encb2
check "the restarted agent resumes distribution" \
	wait_for 60 grep -q 'key distribution to qotp peer 2' "$T/encb2.log"
published 1 180; rc=$?
check "the publisher finishes once the agent is back (exit $rc)" test "$rc" = 0
played 1 "agent killed and restarted"
check "encC's encrypt ring got ids above the last before the kill ($lastE)" \
	test "$(ring encC 2 encrypt last_id)" -gt "$lastE"
check "dumpcap on mid stops and leaves a complete capture" capture_stop "$T/wire.pcapng"
wire_clean "$T/wire.pcapng" "agent layout"
no_marker() { ! wire_payload "$T/wire.pcapng" | grep -qa QOTP-PLAINTEXT-MARKER; }
check "no marker of the exchange's plaintext on mid" no_marker

for r in "encC 2 encrypt" "encC 2 decrypt" "encS 1 encrypt" "encS 1 decrypt"; do
	v=$(ring $r refused)
	[ "$v" = 0 ] && ok "${r}: no block id refused (none pushed twice)" || fail "${r}: $v pushes refused"
done
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc
check "the agents drew key from their KMEs (enc-a stored $(e14 enc-a blocks_stored), enc-b $(e14 enc-b blocks_stored) ETSI 014 blocks)" \
	test "$(e14 enc-a blocks_stored)" -gt 0 -a "$(e14 enc-b blocks_stored)" -gt 0

# --- qotp.ko reloaded under the agents
check "rmmod qotp under the running agents" rmmod qotp
check "the agents log that the module went away" wait_for 30 bash -c \
	"grep -q 'the qotp module was unloaded' '$T/enca.log' &&
	 grep -q 'the qotp module was unloaded' '$T/encb2.log'"
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko again"; finish; }
check "gateways configured again" bash -c "
	ip netns exec $(nsname encC) $qotpctl set ports 1935 mode gateway low-watermark $WM &&
	ip netns exec $(nsname encS) $qotpctl set ports 1935 mode gateway low-watermark $WM &&
	ip netns exec $(nsname encC) $qotpctl peer add 2 prefix 10.78.2.0/24 prefix fd78:2::/64 &&
	ip netns exec $(nsname encS) $qotpctl peer add 1 prefix 10.78.1.0/24 prefix fd78:1::/64"
check "the agents fill the fresh rings" until_s 120 filled
check "1935 (IPv6) both ways after the reload, byte-exact" \
	nsx client $H both fd78:2::2 1935 "$T/data"
note "no-key drops in all: encC $(stat encC 2 drop_no_key), encS $(stat encS 1 drop_no_key)"
finish
