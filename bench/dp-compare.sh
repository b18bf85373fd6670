#!/usr/bin/env bash
# Inside UML (bench kernel, no KASAN/lockdep/kmemleak): the datapath figures of make bench,
# all in one boot and one topology so every variant sees the same kernel, veths and noise.
# Run by bench/dp-compare-run.sh, which parses the "CSV ..." lines this prints.
#
#   client ---- encC ====== mid ====== encS ---- server (bench/tcpprobe serve, port 1935)
#   10.78.1.2       10.78.0.1   10.78.9.1        10.78.2.2
#
# Variants, switched on the two encryptors between measurements (never two at once):
#   plain  forwarding only (qotp.ko loaded, mode off)
#   qotp   OTP of port-1935 payloads, gateway mode, rings filled before each measurement
#          with 4 KiB key blocks (qotpctl's and qkdsimd's default)
#   qotp:32768  the same with 32 KiB key blocks (the largest a ring block can be): how the
#          block size bounds the GSO packets qotp can pass whole (performance.md)
#   wg     WireGuard tunnel encC <-> encS (ChaCha20-Poly1305, generic C: UML has no SIMD)
#   ipsec  ESP tunnel mode encC <-> encS, rfc4106(gcm(aes)) (generic C AES-GCM, same handicap)
# Figures (rounds alternate the variants so a busy neighbour hits all of them alike):
#   mem    kernel memory per idle qotp flow: slab bytes freed when a flush ends N idle
#          flows whose connections stay open (first, while little else is being freed)
#   tput   upload throughput, 1 stream and $QOTP_BENCH_STREAMS streams, byte-exact
#   rr     64-byte request/response round trips over one connection: median, p99
#   scale  1, 10, 100, 1000 concurrent flows sharing one pair (plain vs qotp) + key efficiency
# Knobs for debugging and extra figures: QOTP_BENCH_PHASES (a subset of the phases),
# QOTP_BENCH_VARIANTS (tput and rr: a subset of the variants, or qotp:N, qotp with key
# blocks of N bytes). tcpprobe marks each throughput measurement for the
# host's CPU-time sampler (QOTP_BENCH_CPUMARKS, bench/dp-compare-cpu.py).
. "$QOTP_TOP/tests/lib.sh"
. "$QOTP_TOP/tests/e2e/dp-topo.inc"
probe=$QOTP_BENCH_PROBE
bytes=${QOTP_BENCH_BYTES:-33554432}
rounds=${QOTP_BENCH_ROUNDS:-3}
streams=${QOTP_BENCH_STREAMS:-2}
rrcount=${QOTP_BENCH_RR:-1000}
sbytes=${QOTP_BENCH_SCALE_BYTES:-16777216}
idleflows=${QOTP_BENCH_IDLE:-1000}
phases=" ${QOTP_BENCH_PHASES:-mem tput rr scale} "	# a subset, for debugging
tvariants=${QOTP_BENCH_VARIANTS:-plain qotp qotp:32768 wg ipsec}	# tput and rr; a subset, for debugging
kblk=4096	# key block size pushed: qotpctl's and qkdsimd's default
SRV=10.78.2.2

# A qotp transfer's key (bytes + 1/16 + 1 MiB, pushed beforehand) must fit one ring
# (ring-max below): with less, the transfer starves, correctly, and the bench would wait
# for it until its time limit.
[ $((bytes + bytes / 16 + (1 << 20))) -le $((1 << 30)) ] ||
	{ fail "QOTP_BENCH_BYTES=$bytes: its key would not fit a 1 GiB ring (at most 962 MiB)"; finish; }
insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
# For a host-side profile (perf on the UML process): where qotp.ko's code lies.
[ -n "${QOTP_BENCH_DEBUG:-}" ] && echo "qotp .text $(cat /sys/module/qotp/sections/.text)" >&2
dp_topo
for n in encC encS; do
	nsx $n "$qotpctl" set ports 1935 mode off ring-max $((1 << 30)) max-flows 8192 >/dev/null ||
		fail "qotp config on $n"
done
nsx encC "$qotpctl" peer add 2 prefix 10.78.2.0/24 && nsx encS "$qotpctl" peer add 1 prefix 10.78.1.0/24 ||
	fail "qotp peers"
bg sink nsx server "$probe" serve $SRV 1935
wait_port server 1935 20 || { fail "tcpprobe server"; finish; }

# Key material: two deterministic AES-CTR streams (one per direction), pushed in order at
# both ends so block ids and bytes match; a benchmark needs no secret key. Blocks of $kblk
# bytes: 4096 (qotpctl's and qkdsimd's default), or N for a variant named qotp:N (only by
# QOTP_BENCH_VARIANTS, an extra figure: how the block size bounds GSO, see performance.md).
kc=0
flushed=0	# encC encrypt key bytes flushed by keys(): left unused by any flow
keys() { # keys C2S_BYTES S2C_BYTES
	kc=$((kc + 1))
	if [ "$kblk" != "${pushedblk:-$kblk}" ]; then
		# Another block size than the key left in the rings: start from empty rings.
		flushed=$((flushed + $(qstat encrypt.avail)))
		nsx encC "$qotpctl" flush >/dev/null && nsx encS "$qotpctl" flush >/dev/null || fail "flush"
	fi
	pushedblk=$kblk
	local iv k1=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
	iv=$(printf '%032x' "$kc")
	head -c "$1" < <(openssl enc -aes-256-ctr -K "$k1" -iv "$iv" -in /dev/zero 2>/dev/null) |
		nsx encC "$qotpctl" push 2 encrypt - --block-size "$kblk" >/dev/null || fail "push c2s encC"
	head -c "$1" < <(openssl enc -aes-256-ctr -K "$k1" -iv "$iv" -in /dev/zero 2>/dev/null) |
		nsx encS "$qotpctl" push 1 decrypt - --block-size "$kblk" >/dev/null || fail "push c2s encS"
	iv=$(printf '8%031x' "$kc")
	head -c "$2" < <(openssl enc -aes-256-ctr -K "$k1" -iv "$iv" -in /dev/zero 2>/dev/null) |
		nsx encS "$qotpctl" push 1 encrypt - --block-size "$kblk" >/dev/null || fail "push s2c encS"
	head -c "$2" < <(openssl enc -aes-256-ctr -K "$k1" -iv "$iv" -in /dev/zero 2>/dev/null) |
		nsx encC "$qotpctl" push 2 decrypt - --block-size "$kblk" >/dev/null || fail "push s2c encC"
}

# One JSON field summed over encC's peers: ring fields as "encrypt.NAME", stats as NAME.
qstat() {
	nsx "${2:-encC}" "$qotpctl" show --json | /usr/bin/python3 -c '
import json, sys
f = sys.argv[1]
t = 0
for p in json.load(sys.stdin)["peers"]:
    if "." in f:
        r, n = f.split(".")
        t += p["rings"][r][n]
    else:
        t += p["stats"].get(f, 0)
print(t)' "$1"
}

noflows() { [ "$(qstat flows_active "${1:-encC}")" = 0 ]; }

# WireGuard between the encryptors (set up once; used only when routed into).
wg genkey >"$T/kc"; wg pubkey <"$T/kc" >"$T/pc"
wg genkey >"$T/ks"; wg pubkey <"$T/ks" >"$T/ps"
nsx encC ip link add wg0 type wireguard && nsx encS ip link add wg0 type wireguard || fail "wireguard link"
nsx encC wg set wg0 private-key "$T/kc" listen-port 51820 peer "$(cat "$T/ps")" \
	endpoint 10.78.9.1:51820 allowed-ips 10.78.2.0/24 || fail "wg encC"
nsx encS wg set wg0 private-key "$T/ks" listen-port 51820 peer "$(cat "$T/pc")" \
	endpoint 10.78.0.1:51820 allowed-ips 10.78.1.0/24 || fail "wg encS"
nsx encC ip link set wg0 up && nsx encS ip link set wg0 up || fail "wg up"
rm -f "$T/kc" "$T/ks"
espkey() { head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
K1=$(espkey); K2=$(espkey)

ipsec_on() {
	local n
	for n in encC encS; do
		nsx $n ip xfrm state add src 10.78.0.1 dst 10.78.9.1 proto esp spi 0x1001 reqid 1 mode tunnel \
			aead 'rfc4106(gcm(aes))' "0x$K1" 128 || return 1
		nsx $n ip xfrm state add src 10.78.9.1 dst 10.78.0.1 proto esp spi 0x1002 reqid 2 mode tunnel \
			aead 'rfc4106(gcm(aes))' "0x$K2" 128 || return 1
	done
	nsx encC ip xfrm policy add src 10.78.1.0/24 dst 10.78.2.0/24 dir out \
		tmpl src 10.78.0.1 dst 10.78.9.1 proto esp reqid 1 mode tunnel &&
	nsx encC ip xfrm policy add src 10.78.2.0/24 dst 10.78.1.0/24 dir fwd \
		tmpl src 10.78.9.1 dst 10.78.0.1 proto esp reqid 2 mode tunnel &&
	nsx encS ip xfrm policy add src 10.78.2.0/24 dst 10.78.1.0/24 dir out \
		tmpl src 10.78.9.1 dst 10.78.0.1 proto esp reqid 2 mode tunnel &&
	nsx encS ip xfrm policy add src 10.78.1.0/24 dst 10.78.2.0/24 dir fwd \
		tmpl src 10.78.0.1 dst 10.78.9.1 proto esp reqid 1 mode tunnel
}

variant() {
	local n
	for n in encC encS; do
		nsx $n "$qotpctl" set mode off >/dev/null
		nsx $n ip xfrm policy flush
		nsx $n ip xfrm state flush
	done
	nsx encC ip route del 10.78.2.0/24 dev wg0 2>/dev/null
	nsx encS ip route del 10.78.1.0/24 dev wg0 2>/dev/null
	kblk=4096
	case $1 in
	plain) ;;
	qotp:*) kblk=${1#qotp:} ;&
	qotp) nsx encC "$qotpctl" set mode gateway >/dev/null && nsx encS "$qotpctl" set mode gateway >/dev/null ;;
	wg) nsx encC ip route add 10.78.2.0/24 dev wg0 && nsx encS ip route add 10.78.1.0/24 dev wg0 ;;
	ipsec) ipsec_on ;;
	esac
}

# Bytes the variant's own machinery carried on encC (proof that the traffic took its path).
carried() {
	case $1 in
	plain) echo 0 ;;
	qotp | qotp:*) qstat enc_bytes ;;
	wg) nsx encC wg show wg0 transfer | awk '{ print $3 }' ;;
	ipsec) nsx encC ip -s xfrm state | awk '/src 10.78.0.1 dst 10.78.9.1/ { s = 1 } s && /bytes/ && /packets/ { print $1; exit }' | sed 's/(bytes)//;s/[^0-9]//g' ;;
	esac
}

# Packets (skbs: a GSO packet counts once) the middle router received from encC: how many
# pieces the upload crossed the untrusted link in, which sets the per-packet work of every
# hop after the encryptor. Not timed, so the load does not move it.
midpkts() { nsx mid cat /sys/class/net/eth0/statistics/rx_packets; }

# flows N BYTES_EACH: prints Mbit/s, or nothing when the transfer was not exact.
flows() {
	nsx client "$probe" flows $SRV 1935 "$1" "$2" 120 >"$T/flows.out" 2>&1
	local rc=$?
	cat "$T/flows.out" >&2
	[ $rc -eq 0 ] && sed -n 's/.* mbps=\([0-9.]*\) .*/\1/p' "$T/flows.out"
}

if [[ $phases == *" mem "* ]]; then
echo "== mem: $idleflows idle flows: slab bytes freed when qotp ends them" >&2
# First, while nothing else has run, so little else is freed while we count. Per run:
#  a. push key, count slab, flush the rings (no flows yet), count: slab per ring key byte;
#  b. push as much key again, open the idle connections (each sends 1017 bytes, gets 9;
#     all acknowledged), count; flush the rings of both encryptors, which ends every qotp
#     flow and frees the key left; count once the flows are gone (after an RCU grace
#     period). Flow memory = slab freed - key left x slab per key byte. The sockets stay
#     open throughout, so nothing of TCP's is in the difference.
slab() { awk 'NR > 2 { s += $2 * $4 } END { print s }' /proc/slabinfo; }
# Key bytes held in the rings of both encryptors (available or reserved by flows).
heldkey() {
	local n t=0
	for n in encC encS; do
		t=$((t + $(qstat encrypt.avail $n) + $(qstat decrypt.avail $n) + $(qstat encrypt.reserved $n) + $(qstat decrypt.reserved $n)))
	done
	echo $t
}
flushall() { nsx encC "$qotpctl" flush >/dev/null && nsx encS "$qotpctl" flush >/dev/null; }
bothgone() { noflows encC && noflows encS; }
stable() { # wait for RCU frees: two equal slab counts 0.5 s apart
	local a b=-1 i
	for i in $(seq 20); do a=$b; sleep 0.5; b=$(slab); [ "$a" = "$b" ] && break; done
	echo "$b"
}
variant qotp
k1=$((idleflows * 1017 + 65536))
k2=$((idleflows * 9 + 65536))
for memn in 1 2; do
	keys $k1 $k2
	h=$(heldkey)
	sa=$(stable)
	flushall
	sb=$(stable)
	keys $k1 $k2
	bg idle_$memn nsx client "$probe" idle $SRV 1935 "$idleflows" 1000
	if ! wait_for 120 grep -q 'idle: ready' "$T/idle_$memn.log"; then
		fail "idle flows"
		cat "$T/idle_$memn.log" >&2
		continue
	fi
	fl=$(( $(qstat flows_active encC) + $(qstat flows_active encS) ))
	left=$(heldkey)
	sc=$(stable)
	flushall
	until_s 30 bothgone || fail "flows not ended by the flush"
	sd=$(stable)
	echo "CSV mem,$memn,$idleflows,$fl,$h,$sa,$sb,$left,$sc,$sd"
	note "run $memn: ring key $h B: slab -$((sa - sb)); $fl flows + key $left B: slab -$((sc - sd))"
	eval "kill \$PID_idle_$memn"
	[ "$fl" -ge $((2 * idleflows)) ] && ok "mem run $memn: $fl idle qotp flows held (both encryptors)" ||
		fail "mem run $memn: only $fl qotp flows for $idleflows connections"
	until_s 30 bothgone
done
fi
until_s 30 noflows encC
keyline() { echo "CSV keys,$1,$(qstat encrypt.consumed),$(qstat encrypt.pushed),$(qstat encrypt.avail),$(qstat encrypt.reserved),$flushed"; }
keyline start
if [[ $phases == *" tput "* ]]; then
echo "== tput: $bytes bytes per measurement, $rounds rounds, 1 and $streams streams" >&2
declare -A took
for v in $tvariants; do took[$v]=0; done
for ((r = 1; r <= rounds; r++)); do
	for v in $tvariants; do
		variant $v || { fail "switch to $v"; continue; }
		for s in 1 "$streams"; do
			[[ $v == qotp* ]] && keys $((bytes + bytes / 16 + (1 << 20))) $((1 << 20))
			[ -n "${QOTP_BENCH_DEBUG:-}" ] && { date; free -m; nsx encC "$qotpctl" show; } >&2
			c0=$(carried $v)
			p0=$(midpkts)
			# tcpprobe marks its timed interval for the host's CPU sampler.
			m=$(QOTP_BENCH_CPULABEL="tput $v $s $r" flows "$s" $((bytes / s)))
			c1=$(carried $v)
			p1=$(midpkts)
			if [ -z "$m" ]; then
				fail "tput $v $s streams round $r: transfer not exact"
				continue
			fi
			[ $v != plain ] && [ $((c1 - c0)) -lt "$bytes" ] &&
				fail "tput $v: only $((c1 - c0)) bytes went through $v"
			echo "CSV tput,$v,$s,$r,$m"
			echo "CSV tputpkts,$v,$s,$r,$((p1 - p0))"
			note "round $r: $v, $s stream(s): $m Mbit/s"
			took[$v]=$((took[$v] + 1))
		done
	done
done
for v in $tvariants; do
	[ "${took[$v]}" -eq $((rounds * 2)) ] && ok "tput $v: $((rounds * 2)) exact transfers through $v" ||
		fail "tput $v: ${took[$v]} of $((rounds * 2)) transfers measured"
done

# Key efficiency of the long streams once their flows have ended and released their key.
until_s 30 noflows encC || note "flows still active on encC"
keyline long
fi
if [[ $phases == *" rr "* ]]; then
echo "== rr: $rrcount round trips of 64 bytes per variant, $rounds rounds" >&2
for ((r = 1; r <= rounds; r++)); do
	for v in $tvariants; do
		variant $v
		[[ $v == qotp* ]] && keys $((1 << 20)) $((1 << 20))
		c0=$(carried $v)
		out=$(nsx client "$probe" rr $SRV 1935 "$rrcount" 64) || { fail "rr $v"; continue; }
		c1=$(carried $v)
		[ $v != plain ] && [ $((c1 - c0)) -lt $((rrcount * 64)) ] && fail "rr $v: did not go through $v"
		med=$(sed -n 's/.* median_us=\([0-9.]*\).*/\1/p' <<<"$out")
		p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
		echo "CSV rr,$v,$r,$med,$p99"
		note "round $r: $v $out"
	done
done

fi
if [[ $phases == *" scale "* ]]; then
until_s 30 noflows encC
keyline 0
echo "== scale: $sbytes bytes shared by 1, 10, 100, 1000 flows, plain vs qotp" >&2
for n in 1 10 100 1000; do
	each=$((sbytes / n))
	for ((r = 1; r <= rounds; r++)); do
		variant plain
		m=$(flows "$n" "$each") && [ -n "$m" ] && echo "CSV scale,plain,$n,$r,$m" ||
			fail "scale plain $n flows"
		variant qotp
		keys $((sbytes + sbytes / 8 + n * 4096)) $((n * 4096 + (1 << 20)))
		m=$(flows "$n" "$each") && [ -n "$m" ] && echo "CSV scale,qotp,$n,$r,$m" ||
			fail "scale qotp $n flows"
		note "scale $n flows round $r done"
	done
	# Key efficiency of these flows: wait until they have ended and released their key.
	until_s 30 noflows encC || note "flows still active on encC"
	keyline "$n"
done
ok "scale: every flow of every round arrived exact"
fi

finish
