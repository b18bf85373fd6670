#!/usr/bin/env bash
# Fail closed: a stream whose key runs out mid-way sends nothing more (no plaintext byte on
# the middle link), the drops are counted, the kernel tells userspace (a LOW_WATERMARK event
# as the ring drains, KEY_EMPTY events once it is empty, read with qotpctl monitor), and
# pushing key lets the stream resume and finish byte-exact. Topology: dp-topo.inc (gateway
# mode, IPv4).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
export QOTP_BLOCK=32768
SIZE=1000000
head -c 65536 /dev/urandom >"$T/c2s.1"		# blocks 1-2: far less than the stream
head -c 2M /dev/urandom >"$T/c2s.2"		# blocks 3-66, pushed later
head -c 1M /dev/urandom >"$T/s2c.key"
check "encC configured" bash -c "ip netns exec $(nsname encC) $qotpctl set ports 1935 mode gateway &&
	ip netns exec $(nsname encC) $qotpctl peer add 2 prefix 10.78.2.0/24"
check "encS configured" bash -c "ip netns exec $(nsname encS) $qotpctl set ports 1935 mode gateway &&
	ip netns exec $(nsname encS) $qotpctl peer add 1 prefix 10.78.1.0/24"
check "first 64 KiB of key pushed to both ends" bash -c "
	ip netns exec $(nsname encC) $qotpctl push 2 encrypt $T/c2s.1 $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 decrypt $T/c2s.1 $(blk) &&
	ip netns exec $(nsname encC) $qotpctl push 2 decrypt $T/s2c.key $(blk) &&
	ip netns exec $(nsname encS) $qotpctl push 1 encrypt $T/s2c.key $(blk)"
blocks_are "encC 2" "encS 1"

# Events: a monitor per encryptor. Each is known to listen once it has printed the
# low-watermark event that setting a watermark above what its rings hold sends at once
# (avail 65536); then the watermark drops to 40000, which encC's encrypt ring crosses
# mid-stream (avail < 40000 in the event), and to 0 (off) on encS.
bg monC nsx encC $qotpctl monitor --json
bg monS nsx encS $qotpctl monitor --json
ev() { # ev NS-LOG PYTHON-CONDITION-ON-e: is there such an event?
	/usr/bin/python3 -c '
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sys.exit(0 if any(eval(sys.argv[2], {"e": e}) for e in evs) else 1)' "$T/$1.log" "$2"
}
until_s 20 bash -c "ip netns exec $(nsname encC) $qotpctl set low-watermark 70000
	ip netns exec $(nsname encS) $qotpctl set low-watermark 70000
	grep -q low-watermark $T/monC.log && grep -q low-watermark $T/monS.log" ||
	fail "qotpctl monitor reports events"
check "low watermark 40000 on encC, off on encS" bash -c "
	ip netns exec $(nsname encC) $qotpctl set low-watermark 40000 &&
	ip netns exec $(nsname encS) $qotpctl set low-watermark 0"

$HS mkdata "$T/data" $SIZE
bg srv nsx server $HS serve 10.78.2.2 1935 "$T/data"
wait_port server 1935 || fail "server listens"
bg cap nsx mid $HS capture eth0 "$T/mid.raw"
wait_for 10 grep -q capturing "$T/cap.log" || fail "capture starts"

# Not $H (timeout 150): after a long starvation TCP's next retransmission can be a backed-off
# RTO of a minute or more away; the helper's own socket timeout is 200 s.
bg up nsx client timeout 300 $HS up 10.78.2.2 1935 "$T/data" 200
if until_s 60 bash -c "[ \$(ip netns exec $(nsname encC) $qotpctl show --json |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"peers\"][0][\"stats\"][\"drop_no_key\"])') -ge 3 ]"; then
	ok "encC drops for want of key ($(stat encC 2 drop_no_key) so far)"
else
	fail "encC never ran out of key"
fi
sent=$(stat encC 2 enc_bytes)
[ "$sent" -le 65536 ] && ok "no more encrypted than there was key ($sent bytes)" ||
	fail "encrypted $sent bytes with 65536 bytes of key"
kill -0 "$PID_up" 2>/dev/null && ok "stream stalls, not finished" || fail "upload ended while starved"
if until_s 10 ev monC 'e["event"] == "low-watermark" and e["peer"] == 2 and e["dir"] == "encrypt" and e["avail"] < 40000'; then
	ok "LOW_WATERMARK event from encC's encrypt ring as it drained"
else
	fail "no LOW_WATERMARK event below 40000 from encC"; sed 's/^/       | /' "$T/monC.log"
fi
if until_s 10 ev monC 'e["event"] == "key-empty" and e["peer"] == 2 and e["dir"] == "encrypt" and e["drops"] >= 1'; then
	ok "KEY_EMPTY event from encC's encrypt ring, with its drop count"
else
	fail "no KEY_EMPTY event from encC"; sed 's/^/       | /' "$T/monC.log"
fi
sleep 2	# a starved stream is what we look at here, not a readiness poll
if $HS grep "$T/mid.raw"; then fail "plaintext on the middle link while starved"; else
	ok "no plaintext on the middle link while starved"; fi

# Decrypt side first: the other order lets encC use a block encS does not hold yet (that
# segment would be dropped at encS and retransmitted; kmsd pushes in this order too).
push encS 1 decrypt "$T/c2s.2" --first-id 3 && push encC 2 encrypt "$T/c2s.2" --first-id 3 ||
	fail "second push"
if wait "$PID_up"; then ok "stream resumed and arrived byte-exact"; else
	fail "stream did not complete after key arrived"; sed 's/^/       | /' "$T/up.log"; fi
kill "$PID_cap"
if $HS grep "$T/mid.raw"; then fail "plaintext on the middle link"; else
	ok "no plaintext on the middle link at all"; fi
if ev monS 'e["event"] == "key-empty"'; then fail "encS reported KEY_EMPTY without lacking key"; else
	ok "no KEY_EMPTY event from encS, which never lacked key"; fi
v=$(stat encS 1 drop_no_key)
[ "$v" = 0 ] && ok "encS never lacked key for what encC sent" || fail "encS drop_no_key = $v"
finish
