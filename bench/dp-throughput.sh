#!/usr/bin/env bash
# Inside UML (bench kernel, no KASAN/lockdep/kmemleak): TCP throughput on port 1935 through
# two encryptors in gateway mode, with qotp (OTP on) and without (same topology, same module
# loaded, mode 0), alternated so the noise of a shared machine hits both sides alike; then the
# key efficiency of the long encrypted streams: key bytes that protected payload / key bytes
# taken out of the encrypt ring. Run by bench/dp-throughput-run.sh.
#
#   client ---- encC ====== mid ====== encS ---- server (TCP sink on 1935, checks sha256)
. "$QOTP_TOP/tests/lib.sh"
. "$QOTP_TOP/tests/e2e/dp-topo.inc"
size=${QOTP_BENCH_BYTES:-104857600}
rounds=${QOTP_BENCH_ROUNDS:-3}

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
head -c "$size" /dev/urandom >"$T/data"
bg sink nsx server $HS serve 10.78.2.2 1935 "$T/data"
wait_port server 1935 20 || { fail "transfer server"; finish; }

# One byte-exact upload of $size bytes; prints Mbit/s from connect to the server's verdict.
mbps() {
	nsx client $HS up 10.78.2.2 1935 "$T/data" 300 |
		awk -v n="$size" '/ exact, / { printf "%.1f\n", n * 8 / $(NF - 1) / 1e6 }'
}
setmode() {
	nsx encC "$qotpctl" set mode "$1" && nsx encS "$qotpctl" set mode "$1"
}

# Keys for every round: client->server bytes need (rounds x size) plus the control streams.
need=$(( (rounds * size) + (rounds * size) / 50 + (4 << 20) ))
ringmax=$(( need + (16 << 20) ))
head -c "$need" /dev/urandom >"$T/c2s.key"
head -c $((16 << 20)) /dev/urandom >"$T/s2c.key"
for n in encC encS; do nsx $n "$qotpctl" set ports 1935 ring-max "$ringmax" >/dev/null || fail "ring-max on $n"; done
nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 && nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 ||
	fail "peers"
push encS 1 decrypt "$T/c2s.key" && push encC 2 decrypt "$T/s2c.key" &&
	push encC 2 encrypt "$T/c2s.key" && push encS 1 encrypt "$T/s2c.key" || fail "push keys"
rm -f "$T/c2s.key" "$T/s2c.key"

plain=()
otp=()
for ((r = 1; r <= rounds; r++)); do
	setmode off >/dev/null && p=$(mbps)
	setmode gateway >/dev/null && o=$(mbps)
	note "round $r: plain forwarding ${p:-?} Mbit/s, qotp ${o:-?} Mbit/s"
	plain+=("${p:-0}")
	otp+=("${o:-0}")
done
best() { printf '%s\n' "$@" | sort -g | tail -1; }
bp=$(best "${plain[@]}")
bo=$(best "${otp[@]}")
ratio=$(python3 -c "print('%.3f' % ($bo / $bp if $bp > 0 else 0))")
echo "RESULT throughput plain_mbps=$bp qotp_mbps=$bo ratio=$ratio"

# Flows end, their key is released; then read the encrypt ring of encC.
until_s 20 bash -c "[ \$(ip netns exec $(nsname encC) $qotpctl show --json | python3 -c 'import json,sys; print(sum(p[\"stats\"][\"flows_active\"] for p in json.load(sys.stdin)[\"peers\"]))') = 0 ]"
nsx encC "$qotpctl" show --json >"$T/encC.json"
eff=$(python3 - "$T/encC.json" <<'EOP'
import json, sys
p = json.load(open(sys.argv[1]))["peers"][0]
r = p["rings"]["encrypt"]
taken = r["pushed"] - r["avail"]
print("consumed=%d wasted=%d reserved=%d taken=%d payload=%d efficiency=%.4f" % (
    r["consumed"], r["wasted"], r["reserved"], taken, p["stats"]["enc_bytes"],
    r["consumed"] / taken if taken else 0))
EOP
)
echo "RESULT keys $eff"
if [ "$(echo "$bp > 0 && $bo > 0" | bc)" = 1 ]; then ok "throughput measured"; else fail "throughput not measured"; fi
finish
