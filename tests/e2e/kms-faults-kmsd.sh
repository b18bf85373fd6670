#!/usr/bin/env bash
# Bit errors on the quantum link, then kill -9 of kmsd B mid-stream (topology:
# kms-faults.inc). qkdsimd runs at 16 Mbit/s with BER 1e-5 on end b (site B) from the start,
# so every key block used went through key caching on a noisy link.
#
#  BER:     about 28% of the 4 KiB blocks carry an error. Key caching discards them at both
#           ends (counted; the discard rate is checked against the BER), kmsd B refills
#           encC's encrypt ring during the stream from what survived, and every packet of an
#           12 s clip published from the client to nginx behind A and played back from the
#           client equals the source.
#  kill -9: during a second stream kmsd B is killed, stays dead 2 s and is restarted. The
#           kernel never refuses (never sees twice) a block id on any ring, the restarted
#           kmsd pushes ids above every id its rings held, the stream encrypts with key it
#           pushed (encC's encrypt ring consumed more than had been pushed into it at the
#           kill), and every packet played back equals the source.
# It takes longer than the default e2e limit (420 s) on the shared 2-core machine: 8 min 15 s (35 ok) at load average ~8,
# 2026-11-27; hence its own limit:
# qotp-timeout: 900
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dp-topo.inc"
# A 12 s clip (~1.3 MB), not kms-faults.inc's 8 s: the kill lands once 150 KB passed, as
# seen by polls that take seconds each in a loaded UML, and what is left of the stream
# after it must still exceed what encC's ring held (up to dist-target plus a batch).
SECS=12
. "$(dirname "$0")/kms-faults.inc"
RATE=16000000
BER=0.00001

bg qkd "$QOTP_BIN/qkdsimd" -f -l "unix:$T/qkd.sock" -r $RATE -b 4096 -e $BER -E b
wait_for 10 grep -q "listening on" "$T/qkd.log" || fail "qkdsimd listens"
bg kmsb nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-b.conf"
bg kmsa nsx encS "$QOTP_BIN/kmsd" -f -v -c "$T/kms-a.conf"
filled() { [ "$(ring encC 2 encrypt avail)" -ge $WM ] && [ "$(ring encS 1 encrypt avail)" -ge $WM ]; }
check "kmsd fills both encrypt rings to the watermark" until_s 90 filled

# --- bit errors
mism() { [ "$(kjson kms-a links mismatched_total)" -gt 0 ] && [ "$(kjson kms-b links mismatched_total)" -gt 0 ]; }
check "BER: key caching discards blocks with bit errors (BER $BER)" wait_for 30 mism
d0=$(kjson kms-b pairs delivered_out_bytes)
play 2 && ok "BER: player 2 connected" || fail "BER: player 2 connected"
publish 2
published 2 120; rc=$?
check "BER: publisher finishes (exit $rc)" test "$rc" = 0
played 2 "BER"
d1=$(kjson kms-b pairs delivered_out_bytes)
check "BER: kms-b refilled encC's encrypt ring during the stream ($((d1 - d0)) B)" test "$d1" -gt "$d0"
v1=$(kjson kms-a links verified_total); m1=$(kjson kms-a links mismatched_total)
rate=$(python3 -c "print('%.3f' % ($m1 / max(1, $v1 + $m1)))")
note "kms-a: $v1 blocks verified, $m1 discarded"
check "BER: discard rate $rate plausible for BER $BER on 4 KiB blocks (~0.28)" \
	python3 -c "import sys; sys.exit(not 0.1 < $rate < 0.5)"
check "BER: both ends count mismatches (kms-a $(kjson kms-a links mismatched_total), kms-b $(kjson kms-b links mismatched_total))" \
	test "$(kjson kms-b links mismatched_total)" -gt 0

# --- kill -9 of kmsd B mid-stream, restart
play 3 && ok "kill -9: player 3 connected" || fail "kill -9: player 3 connected"
e0=$(stat encC 2 enc_bytes)
publish 3
# Up to 90 s: after the BER phase the rings may be nearly empty, and a loaded UML took more
# than 30 s to encrypt the first 150 KB (seen once, the rest of the phase passing).
flowing3() { [ "$(stat encC 2 enc_bytes)" -ge $((e0 + 150000)) ]; }
check "kill -9: the stream is flowing (150 KB encrypted at encC)" until_s 90 flowing3
check "kill -9 of kms-b" kill -9 "$(kmsd_pid kms-b)"
wait_for 10 bash -c "! ip netns exec $(nsname encC) ss -tlnH 'sport = :7000' | grep -q ."
pushed_kill=$(ring encC 2 encrypt pushed)
lastE=$(ring encC 2 encrypt last_id); lastD=$(ring encC 2 decrypt last_id)
# kmsd B stays dead for 2 s: part of the scenario.
sleep 2
bg kmsb2 nsx encC "$QOTP_BIN/kmsd" -f -v -c "$T/kms-b.conf"
check "kill -9: restarted kms-b resumes distribution" wait_for 30 grep -q 'key distribution to qotp peer' "$T/kmsb2.log"
published 3 120; rc=$?
check "kill -9: publisher finishes (exit $rc)" test "$rc" = 0
played 3 "kill -9"
consumed=$(ring encC 2 encrypt consumed)
check "kill -9: the stream used key pushed after the restart (consumed $consumed > pushed at kill $pushed_kill)" \
	test "$consumed" -gt "$pushed_kill"
check "kill -9: encC encrypt ids above the last before the kill ($lastE)" test "$(ring encC 2 encrypt last_id)" -gt "$lastE"
check "kill -9: encC decrypt ids above the last before the kill ($lastD)" test "$(ring encC 2 decrypt last_id)" -gt "$lastD"
check "kill -9: restarted kms-b delivered into both of encC's rings" \
	bash -c "[ $(kjson kms-b pairs delivered_out_bytes) -gt 0 ] && [ $(kjson kms-b pairs delivered_in_bytes) -gt 0 ]"

# --- every ring, both phases
for r in "encC 2 encrypt" "encC 2 decrypt" "encS 1 encrypt" "encS 1 decrypt"; do
	v=$(ring $r refused)
	[ "$v" = 0 ] && ok "${r}: no block id refused (none pushed twice)" || fail "${r}: $v pushes refused"
done
check "no push refused in any kmsd log" \
	bash -c "! grep -E 'push (encrypt|decrypt) id' '$T/kmsa.log' '$T/kmsb.log' '$T/kmsb2.log'"
counters_zero "encC 2" "encS 1" -- drop_csum drop_bad_desc drop_no_desc
note "no-key drops in all: encC $(stat encC 2 drop_no_key), encS $(stat encS 1 drop_no_key)"
finish
