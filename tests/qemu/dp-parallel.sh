#!/usr/bin/env bash
# Many flows at once through two gateways: 18 connections in flight together, IPv4 and
# IPv6, uploads, downloads and both ways at once, over middle links that lose, duplicate
# and reorder (dp-harsh's netem, on both of mid's links). Every transfer byte-exact, no
# drop for a reason the counters do not name, and the segment counters agree with the
# bytes (a segment carries at most one MSS: the count may not fall below bytes / MSS, as
# it did for GSO packets whose gso_segs is 0).
# In UML the flows take turns on one CPU; in QEMU (tests/qemu/smp.sh, -smp 2) they run on
# several CPUs at once, and with QOTP_DP_NICS=1 cross virtio-net NICs with offloads.
# Topology: dp-topo.inc (gateway mode).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../e2e/dp-topo.inc"

insmod "$QOTP_KMOD/qotp.ko" || { fail "insmod qotp.ko"; finish; }
dp_topo
SIZE=${QOTP_DP_SIZE:-300000}
export QOTP_BLOCK=32768
# 12 flows each way carry 3.6 MB; a bigger push costs time in the debug kernels.
dp_keyed 8M
# dp-harsh's netem on both of mid's links: loss, duplication, reordering, jitter.
for i in eth0 eth1; do
	nsx mid tc qdisc add dev $i root netem delay 2ms 1ms loss 3% duplicate 1% reorder 10% 50%
done

$HS mkdata "$T/data" "$SIZE"
bg srv4 nsx server $HS serve 10.78.2.2 1935 "$T/data"
bg srv6 nsx server $HS serve fd78:2::2 1935 "$T/data"
wait_port server 1935 || fail "server listens"

pids=()
names=()
for a in 10.78.2.2 fd78:2::2; do
	for mode in up down both; do
		for k in 1 2 3; do
			nsx client $H "$mode" "$a" 1935 "$T/data" 120 >"$T/flow.${#pids[@]}" 2>&1 &
			pids+=($!)
			names+=("$mode $a #$k")
		done
	done
done
note "${#pids[@]} connections started at once"
for i in "${!pids[@]}"; do
	if wait "${pids[$i]}"; then
		ok "${names[$i]} byte-exact"
	else
		fail "${names[$i]} not byte-exact"
		sed 's/^/       | /' "$T/flow.$i" | tail -5
	fi
done

# One qotpctl call per side (each process costs ~1 s in QEMU's debug kernel under TCG).
for n in "encC 2" "encS 1"; do
	declare -A c=()
	while read -r k v; do c[$k]=$v; done < <(nsx ${n% *} "$qotpctl" show --json |
		jq -r --argjson id "${n#* }" '.peers[] | select(.id == $id) | .stats | to_entries[] | "\(.key) \(.value)"')
	for k in drop_other drop_csum drop_bad_desc drop_no_desc drop_no_key drop_nomem; do
		[ "${c[$k]:-x}" = 0 ] && ok "${n% *}: $k = 0" || fail "${n% *}: $k = ${c[$k]:-missing}"
	done
	for d in enc dec; do
		b=${c[${d}_bytes]:-0} s=${c[${d}_segs]:-0}
		# 1460: the largest MSS of either family here (IPv4 over a 1500-byte MTU).
		[ "$b" -gt 0 ] && [ $((s * 1460)) -ge "$b" ] &&
			ok "${n% *}: ${d}_segs $s for ${d}_bytes $b (at least bytes / MSS)" ||
			fail "${n% *}: ${d}_segs $s undercounts ${d}_bytes $b"
	done
	unset c
done
finish
