#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""make bench's report: reads the raw outputs scripts/bench.sh left in bench/results/,
writes one CSV per figure, draws them with gnuplot (PNG), and prints the summary table of
ratios against the targets of issue 7 (met / missed / not measured).

    bench/report.py RESULTS_DIR

Every ratio is taken within one round (both sides measured back to back in the same boot),
then the median over rounds is reported; Documentation/performance.md explains each figure.
"""
import csv
import os
import re
import statistics
import subprocess
import sys

PAPER_64K_S = 0.098          # the paper's Fig. 8: 64 KiB encrypt + decrypt, seconds

out = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
rows = []                    # summary: (figure, measured, target, verdict)
notes = []


def path(name):
    return os.path.join(out, name)


def read(name):
    try:
        with open(path(name)) as f:
            return f.read()
    except OSError:
        return None


def write_csv(name, header, data):
    with open(path(name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(data)


def verdict(value, target, higher=True):
    if value is None:
        return "not measured"
    return "met" if (value >= target if higher else value <= target) else "missed"


def summary(figure, value, fmt, target, target_text, higher=True):
    rows.append((figure, fmt % value if value is not None else "-", target_text,
                 verdict(value, target, higher) if target is not None else "-"))


def info(figure, text):
    rows.append((figure, text, "-", "-"))


def gnuplot(name, script):
    gp = path(name + ".gp")
    with open(gp, "w") as f:
        f.write("set terminal pngcairo size 900,560 font 'DejaVu Sans,10'\n")
        f.write("set output '%s'\n" % path(name + ".png"))
        f.write("set datafile separator ','\nset datafile columnheaders\nset key top left\nset grid\n")
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode:
        notes.append("gnuplot %s failed: %s" % (name, r.stderr.strip()[:200]))


def med(xs):
    return statistics.median(xs) if xs else None


# ---- per-byte cost and Fig. 8, userspace
crypto = {}
txt = read("crypto.csv")
if txt:
    for r in csv.DictReader(txt.splitlines()):
        crypto[(int(r["size"]), r["method"])] = float(r["ns_per_byte"])
sizes = sorted({s for s, _ in crypto})
if crypto:
    gnuplot("crypto", """set title 'Per-byte cost in userspace, one core (lower is better)'
set xlabel 'message size'; set ylabel 'ns per byte (log)'; set logscale x 2; set logscale y
set xtics ('1K' 1024, '4K' 4096, '16K' 16384, '64K' 65536, '256K' 262144, '1M' 1048576)
set key top right
plot for [m in 'memcpy qotp-xor aes-256-gcm chacha20-poly1305'] '%s' using 1:(strcol(2) eq m ? $3 : 1/0) with linespoints title m
""" % path("crypto.csv"))
    s = 65536
    x = crypto.get((s, "qotp-xor"))
    aead = min(crypto.get((s, "aes-256-gcm"), 1e9), crypto.get((s, "chacha20-poly1305"), 1e9))
    summary("per byte, 64 KiB: fastest OpenSSL AEAD / qotp XOR (userspace, same CPU)",
            aead / x if x else None, "%.2fx", 3, ">= 3x")
    worst = min((min(crypto[(n, "aes-256-gcm")], crypto[(n, "chacha20-poly1305")]) /
                 crypto[(n, "qotp-xor")]) for n in sizes if (n, "qotp-xor") in crypto)
    summary("per byte, worst message size 1 KiB-1 MiB: fastest AEAD / qotp XOR", worst,
            "%.2fx", 3, ">= 3x")

# ---- Fig. 8, kernel
kfig = {}
for m in re.finditer(r"kfig8: size (\d+) encdec_ns (\d+) (\w+)", read("kfig8.txt") or ""):
    kfig[int(m.group(1))] = (int(m.group(2)) / 1e9, m.group(3))
if any(ok != "ok" for _, ok in kfig.values()):
    notes.append("kfig8: a message did not decrypt back to itself (CORRUPT): kernel figure void")
    kfig = {}
fig8 = []
for s in sorted(set(sizes) | set(kfig)):
    u = crypto.get((s, "qotp-xor-encdec"))
    fig8.append((s, "%.9f" % (u * s / 1e9) if u else "", "%.9f" % kfig[s][0] if s in kfig else "",
                 PAPER_64K_S if s == 65536 else ""))
if fig8:
    write_csv("fig8.csv", ["size_bytes", "userspace_encdec_s", "kernel_encdec_s", "paper_encdec_s"], fig8)
    gnuplot("fig8", """set title "Paper Fig. 8: encrypt + decrypt time against message size (paper: 0.098 s at 64 KiB)"
set xlabel 'message size'; set ylabel 'seconds (log)'; set logscale x 2; set logscale y
set format y '10^{%%L}'; set yrange [1e-8:1]; set key bottom right
set xtics ('1K' 1024, '4K' 4096, '16K' 16384, '64K' 65536, '256K' 262144, '1M' 1048576)
plot '%s' using 1:2 with linespoints title 'qotp XOR, userspace (span lookup included)', \\
     '' using 1:3 with linespoints title 'qotp XOR over skbs, in kernel (UML, non-debug)', \\
     '' using 1:4 with points pt 7 ps 2 title 'paper (64 KiB)'
""" % path("fig8.csv"))
    u = crypto.get((65536, "qotp-xor-encdec"))
    summary("Fig. 8, 64 KiB enc+dec: paper 0.098 s / qotp userspace",
            PAPER_64K_S / (u * 65536 / 1e9) if u else None, "%.0fx", 1000, ">= 1000x")
    summary("Fig. 8, 64 KiB enc+dec: paper 0.098 s / qotp in kernel",
            PAPER_64K_S / kfig[65536][0] if 65536 in kfig else None, "%.0fx", 1000, ">= 1000x")

m = re.search(r"kxor: 64KiB xor (\d+) ns memcpy (\d+) ns", read("kxor.txt") or "")
if m:
    summary("kernel XOR / memcpy throughput, 64 KiB (bench/kxor)",
            int(m.group(2)) / max(int(m.group(1)), 1), "%.2f", 0.8, ">= 0.8")

# ---- datapath (bench/dp-compare.sh)
dp = read("dp-compare.out") or ""
recs = [line[4:].split(",") for line in dp.splitlines() if line.startswith("CSV ")]
tput = [(r[1], int(r[2]), int(r[3]), float(r[4])) for r in recs if r[0] == "tput"]
# Host CPU seconds the whole UML spent on each of those transfers (bench/dp-compare-run.sh).
tcpu = [(r[1], int(r[2]), int(r[3]), float(r[4])) for r in recs if r[0] == "tputcpu"]
# Packets (skbs) the middle router received from encC during each of those transfers.
tpkts = [(r[1], int(r[2]), int(r[3]), float(r[4])) for r in recs if r[0] == "tputpkts"]


def blocks(v):
    """The key block size of a variant named qotp:N, as a person writes it."""
    n = int(v[5:])
    return "%d KiB" % (n // 1024) if n % 1024 == 0 else "%d B" % n


def per_round(data, v, s, inverse=False):
    """Median over rounds of variant v against plain within each round, s streams:
    throughput v / plain, or (inverse, for CPU seconds) plain / v."""
    ratios = []
    for r in sorted({r for _, _, r, _ in data}):
        a = [m for vv, ss, rr, m in data if vv == v and ss == s and rr == r]
        b = [m for vv, ss, rr, m in data if vv == "plain" and ss == s and rr == r]
        if a and b and a[0] > 0 and b[0] > 0:
            ratios.append(b[0] / a[0] if inverse else a[0] / b[0])
    return med(ratios) if ratios else None


if tput:
    write_csv("tput.csv", ["variant", "streams", "round", "mbps"], tput)
    if tcpu:
        write_csv("tput-cpu.csv", ["variant", "streams", "round", "uml_cpu_seconds"], tcpu)
    names = {"plain": "no encryption", "qotp": "qotp (OTP)", "wg": "WireGuard*",
             "ipsec": "IPsec ESP GCM*"}
    present = {v for v, _, _, _ in tput}
    variants = [v for v in ["plain", "qotp"] if v in present] + \
        sorted(v for v in present if v.startswith("qotp:")) + \
        [v for v in ["wg", "ipsec"] if v in present]
    streams = sorted({s for _, s, _, _ in tput})
    tab = []
    for v in variants:
        line = [names.get(v, "qotp, %s key blocks" % blocks(v) if v.startswith("qotp:") else v)]
        for s in streams:
            line.append("%.1f" % (med([m for vv, ss, _, m in tput if vv == v and ss == s]) or 0))
        for s in streams:
            q = per_round(tput, v, s)
            line.append("%.3f" % q if q is not None else "")
        for s in streams:
            q = per_round(tcpu, v, s, inverse=True)
            line.append("%.3f" % q if q is not None else "")
        tab.append(line)
    write_csv("tput-summary.csv", ["variant"] + ["mbps_%d_streams" % s for s in streams] +
              ["ratio_to_plain_%d_streams" % s for s in streams] +
              ["cpu_ratio_plain_over_variant_%d_streams" % s for s in streams], tab)
    gnuplot("tput", """set title "TCP port 1935 through two encryptors, UML non-debug kernel (median Mbit/s)\\n* generic C crypto: UML has no SIMD (handicapped)"
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel 'Mbit/s'; set yrange [0:*]; set xrange [-0.6:%.1f]; set key top right
plot '%s' using 2:xtic(1) title '1 stream', '' using 3 title '%d streams'
""" % (len(tab) - 0.4, path("tput-summary.csv"), streams[-1]))

    def col(v, kind, s):
        if v not in variants:
            return None
        c = 1 + len(streams) * kind + streams.index(s)
        x = tab[variants.index(v)][c]
        return float(x) if x else None

    for s in streams:
        sn = "%d stream%s" % (s, "s" if s > 1 else "")
        summary("throughput qotp / plain forwarding, %s (4 KiB key blocks)" % sn,
                col("qotp", 1, s), "%.3f", 0.9, ">= 0.9")
        for v in variants:
            if v.startswith("qotp:"):
                summary("throughput qotp / plain forwarding, %s (%s key blocks)" % (sn, blocks(v)),
                        col(v, 1, s), "%.3f", 0.9, ">= 0.9")
        if tcpu:
            info("host CPU per byte, plain / qotp, %s: 4 KiB%s blocks" %
                 (sn, "".join(" | %s" % blocks(v) for v in variants if v.startswith("qotp:"))),
                 " | ".join("%.3f" % x if x is not None else "-" for x in
                            [col(v, 2, s) for v in variants if v.startswith("qotp")]))
        if tpkts:
            qv = [v for v in variants if v.startswith("qotp")]
            pk = [per_round(tpkts, v, s) for v in qv]
            info("packets over the middle link, qotp / plain, %s: 4 KiB%s blocks" %
                 (sn, "".join(" | %s" % blocks(v) for v in qv if v != "qotp")),
                 " | ".join("%.2f" % x if x is not None else "-" for x in pk))
        info("throughput WireGuard | IPsec ESP / plain, %s (no SIMD in UML)" % sn,
             " | ".join("%.3f" % x if x is not None else "-" for x in
                        (col("wg", 1, s), col("ipsec", 1, s))))

rr = [(r[1], int(r[2]), float(r[3]), float(r[4])) for r in recs if r[0] == "rr"]
if rr:
    write_csv("rr.csv", ["variant", "round", "median_us", "p99_us"], rr)
    tab = []
    for v in ["plain", "qotp", "wg", "ipsec"]:
        md = med([a for vv, _, a, _ in rr if vv == v])
        p9 = med([b for vv, _, _, b in rr if vv == v])
        if md is not None:
            tab.append((v, "%.1f" % md, "%.1f" % p9))
    write_csv("rr-summary.csv", ["variant", "median_us", "p99_us"], tab)
    gnuplot("rr", """set title '64-byte TCP request/response round trip through two encryptors (median of rounds)'
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel 'microseconds'; set yrange [0:*]; set xrange [-0.6:3.6]; set key top left
plot '%s' using 2:xtic(1) title 'median', '' using 3 title 'p99'
""" % path("rr-summary.csv"))
    d_med, d_p99 = [], []
    for r in sorted({r for _, r, _, _ in rr}):
        a = [(x, y) for v, rr_, x, y in rr if v == "qotp" and rr_ == r]
        b = [(x, y) for v, rr_, x, y in rr if v == "plain" and rr_ == r]
        if a and b:
            d_med.append(a[0][0] - b[0][0])
            d_p99.append(a[0][1] - b[0][1])
    if d_med:
        info("latency added by qotp per round trip (4 qotp passes): median, p99",
             "%+.1f us, %+.1f us" % (med(d_med), med(d_p99)))

scale = [(int(r[2]), r[1], int(r[3]), float(r[4])) for r in recs if r[0] == "scale"]
# keys: consumed, pushed, avail, reserved of encC's encrypt ring, and the key bytes the
# bench itself flushed so far (a block size change starts from empty rings): those left
# the ring unused by any flow, so they are not the datapath's waste.
keys = {r[1]: [int(x) for x in r[2:7]] + [0] * (7 - len(r)) for r in recs if r[0] == "keys"}


def taken(a, b):
    """Key bytes flows took from the ring between keylines a and b."""
    return (b[1] - b[2] - b[4]) - (a[1] - a[2] - a[4])

if scale:
    tab = []
    prev = keys.get("0")
    for n in sorted({n for n, _, _, _ in scale}):
        p = med([m for nn, v, _, m in scale if nn == n and v == "plain"])
        q = med([m for nn, v, _, m in scale if nn == n and v == "qotp"])
        ratios = []
        for r in sorted({r for _, _, r, _ in scale}):
            a = [m for nn, v, rr_, m in scale if nn == n and v == "qotp" and rr_ == r]
            b = [m for nn, v, rr_, m in scale if nn == n and v == "plain" and rr_ == r]
            if a and b:
                ratios.append(a[0] / b[0])
        eff = ""
        cur = keys.get(str(n))
        if prev and cur:
            consumed, took = cur[0] - prev[0], taken(prev, cur)
            eff = "%.4f" % (consumed / took) if took > 0 else ""
        prev = cur
        tab.append((n, "%.1f" % p, "%.1f" % q, "%.3f" % med(ratios) if ratios else "", eff))
    write_csv("scale.csv", ["flows", "plain_mbps", "qotp_mbps", "ratio", "key_efficiency"], tab)
    gnuplot("scale", """set title 'Concurrent flows sharing one encryptor pair (same total bytes)'
set xlabel 'concurrent flows'; set ylabel 'Mbit/s (median)'; set logscale x 10; set yrange [0:*]
set y2label 'qotp / plain'; set y2tics; set y2range [0:1.5]; set ytics nomirror; set key top right
plot '%s' using 1:2 with linespoints title 'no encryption', \\
     '' using 1:3 with linespoints title 'qotp', \\
     '' using 1:4 axes x1y2 with linespoints dt 2 title 'ratio (right axis)'
""" % path("scale.csv"))
    for n, _, _, ratio, eff in tab:
        info("scale %d flows: qotp / plain throughput, key efficiency" % n,
             "%s, %s" % (ratio or "-", eff or "-"))
if "long" in keys and "start" in keys:
    a, b = keys["start"], keys["long"]
    took = taken(a, b)
    summary("key efficiency, long streams (throughput phase, encC encrypt ring)",
            (b[0] - a[0]) / took if took > 0 else None, "%.4f", 0.98, ">= 0.98")

mem = [[int(x) for x in r[1:10]] for r in recs if r[0] == "mem"]
if mem:
    tab, per = [], []
    for run, conns, flows, held, sa, sb, left, sc, sd in mem:
        per_key = (sa - sb) / held if held else 0
        flow = ((sc - sd) - left * per_key) / flows if flows else None
        tab.append((run, conns, flows, held, sa - sb, "%.4f" % per_key, left, sc - sd,
                    "%.0f" % flow if flow is not None else ""))
        if flow is not None:
            per.append(flow)
    write_csv("mem.csv", ["run", "connections", "qotp_flows", "ring_key_bytes", "slab_freed_by_ring_flush",
                          "slab_per_key_byte", "key_left_with_flows", "slab_freed_ending_flows",
                          "bytes_per_flow"], tab)
    summary("kernel memory per idle qotp flow (slab freed when %d flows end)" % mem[0][2],
            med(per), "%.0f B", 512, "<= 512 B", higher=False)

# ---- key plane
m = re.search(r"verified key throughput ([\d.]+) MB/s \((\d+) blocks/s\)", read("kms-cache.txt") or "")
summary("key plane: verified key on one link (qkdsimd at memory speed, TLS, fsync)",
        float(m.group(1)) if m else None, "%.1f MB/s", 40, ">= 40 MB/s")
# ETSI GS QKD 014 key delivery (bench/e14.sh writes e14.csv itself)
e14 = {(r["size_bits"], r["number"]): r for r in csv.DictReader((read("e14.csv") or "").splitlines())}
r1, r64, r32k = e14.get(("256", "1")), e14.get(("256", "64")), e14.get(("262144", "1"))
summary("key plane: ETSI 014 pairs/s (256-bit keys)", float(r1["pairs_per_s"]) if r1 else None,
        "%.0f pairs/s", 2000, ">= 2000")
summary("key plane: ETSI 014 key MB/s (32 KiB keys)", float(r32k["key_MBps"]) if r32k else None,
        "%.1f MB/s", 20, ">= 20 MB/s")
if r64:
    info("key plane: ETSI 014 pairs/s (256-bit keys, 64 a request)",
         "%.0f pairs/s" % float(r64["pairs_per_s"]))
for name, r in (("256-bit keys", r1), ("32 KiB keys", r32k)):
    if r:
        info("key plane: ETSI 014 enc+dec p50, p99 ms; CPU e14bench, kmesimd (%s)" % name,
             "%.1f, %.1f; %s, %s" % (float(r["p50_ms"]), float(r["p99_ms"]), r["client_cpu"],
                                     r["server_cpu"] or "-"))
# kmsd's own KME (bench/nbkme.sh): information beside kmesimd's figures
for line in (read("nbkme.txt") or "").splitlines():
    if line.startswith("e14bench:") and "kme=kmsd" in line:
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        info("key plane: kmsd's ETSI 014 KME pairs/s (256-bit keys, %s a request; p50, p99 ms)"
             % kv.get("number", "?"), "%.0f pairs/s; %s, %s" % (float(kv.get("pairs_per_s", 0)),
                                                              kv.get("p50_ms"), kv.get("p99_ms")))
# bench/lowwater.sh twice: kmsd on the gateway with its own QKD link, then the agent on the
# gateway fed by the site's KME (LW_SOURCE=agent); issue 13's targets for both
for pfx, via, clock in (("lowwater", "", "kmsd's clock"),
                        ("lowwater-agent", " through the agent", "agent's clock")):
    lw = read(pfx + ".txt")
    m = re.search(r"^%s: n=(\d+) median_ms=([\d.]+) p90_ms=([\d.]+) poll_ms=([\d.]+)" % pfx,
                  lw or "", re.M)
    if m:
        write_csv(pfx + ".csv", ["samples", "median_ms", "p90_ms", "poll_ms"], [m.groups()])
    info("key plane: kernel low-watermark event -> key in the ring%s (median, p90; poll period)"
         % via, "%s ms, %s ms; %s ms" % (m.group(2), m.group(3), m.group(4)) if m else "not measured")
    m = re.search(r"^%s-kmsd: n=(\d+) median_ms=(\d+) p99_ms=(\d+)" % pfx, lw or "", re.M)
    summary("key plane: low-watermark event -> first push into the ring%s, %s, median" % (via, clock),
            int(m.group(2)) if m else None, "%d ms", 50, "<= 50 ms", higher=False)
    summary("key plane: low-watermark event -> first push into the ring%s, %s, p99 (n %s)"
            % (via, clock, m.group(1) if m else "-"), int(m.group(3)) if m else None, "%d ms", 200,
            "<= 200 ms", higher=False)
sb = {}
for mib, *v in re.findall(r"storebench: held_mib (\d+) take_ms ([\d.]+) lock_ms ([\d.]+) "
                          r"unlock_ms ([\d.]+) expire_ms ([\d.]+)", read("storebench.txt") or ""):
    sb.setdefault(mib, []).append([float(x) for x in v])
if sb:
    write_csv("storebench.csv", ["held_mib", "take_ms", "lock_ms", "unlock_ms", "expire_ms"],
              [[m] + r for m in sorted(sb, key=int) for r in sb[m]])
for i, op in ((0, "take"), (2, "unlock"), (3, "expire")):
    small, big = sb.get("1"), sb.get("1024")
    # per pair of runs (alternated), the worse ratio; floor 0.01 ms against timer noise
    r = max(max(b[i], 0.01) / max(s_[i], 0.01) for s_, b in zip(small, big)) if small and big else None
    summary("key plane: store %s latency, 1 GiB held / 1 MiB held (%s ms / %s ms)" %
            (op, "%.2f" % big[0][i] if big else "-", "%.2f" % small[0][i] if small else "-"),
            r, "%.2f", 2, "<= 2", higher=False)
rt = read("relay.txt") or ""
lat = {h: (int(n), float(med), float(p90)) for h, n, med, p90 in re.findall(
    r"relay: hops (\d) transfers (\d+) ms_median ([\d.]+) ms_p90 ([\d.]+)", rt)}
par = {h: (int(k), int(n), int(r)) for h, k, n, r in re.findall(
    r"relay: hops (\d) parallel (\d+) transfers (\d+) key_bytes_per_s (\d+)", rt)}
m = re.search(r"relay: link key_bytes_per_s (\d+)", rt)
link = int(m.group(1)) if m else None
rows_csv = []
for h in ("1", "2", "3"):
    rows_csv.append((h,) + (lat.get(h) or ("", "", "")) + (par.get(h) or ("", "", "")))
if lat or par:
    write_csv("relay.csv", ["trusted_hops", "transfers", "ms_median", "ms_p90", "parallel",
                            "transfers_parallel", "key_bytes_per_s"], rows_csv)
info("key plane: verified key of the first link of the relay chain, while idle",
     "%.1f MB/s" % (link / 1e6) if link else "not measured")
for h in ("1", "2", "3"):
    hs = "relay%s" % ("s" if h != "1" else "")
    p = par.get(h)
    rate = p[2] / 1e6 if p and p[1] else None
    summary("key plane: relayed key through %s trusted %s (%s transfers in flight)" %
            (h, hs, p[0] if p else "-"), rate, "%.2f MB/s", 5, ">= 5 MB/s")
    summary("key plane: relayed key through %s trusted %s / the link's verified key" % (h, hs),
            rate * 1e6 / link if rate and link else None, "%.2f", 0.5, ">= 0.5")
    l = lat.get(h)
    target = {"1": 30, "3": 60}.get(h)
    summary("key plane: one 32 KiB transfer through %s trusted %s, median (p90 %s ms)" %
            (h, hs, "%.0f" % l[2] if l and l[0] else "-"),
            l[1] if l and l[0] else None, "%.0f ms", target,
            "<= %d ms" % target if target else "-", higher=False)

r16 = read("relay-16m.txt") or ""
m = re.search(r"relay: link key_bytes_per_s (\d+)", r16)
for h, n, med, p90 in re.findall(r"relay: hops (\d) transfers (\d+) ms_median ([\d.]+) ms_p90 ([\d.]+)", r16):
    info("key plane at 16 Mbit/s QKD links: one 32 KiB transfer through %s trusted relay%s, median, p90"
         % (h, "s" if h != "1" else ""), "%s ms, %s ms" % (med, p90))
for h, k, n, r in re.findall(r"relay: hops (\d) parallel (\d+) transfers (\d+) key_bytes_per_s (\d+)", r16):
    info("key plane at 16 Mbit/s QKD links: relayed key through %s trusted relay%s, %s in flight "
         "(link: %s MB/s)" % (h, "s" if h != "1" else "", k, "%.2f" % (int(m.group(1)) / 1e6) if m else "-"),
         "%.2f MB/s" % (int(r) / 1e6))

# ---- print
mach = (read("machine.txt") or "").strip()
w = max(len(r[0]) for r in rows) if rows else 10
print("== make bench summary (%s)" % out)
if mach:
    print(mach)
print("%-*s  %-22s %-10s %s" % (w, "figure", "measured", "target", "verdict"))
for r in rows:
    print("%-*s  %-22s %-10s %s" % (w, r[0], r[1], r[2], r[3]))
write_csv("summary.csv", ["figure", "measured", "target", "verdict"], rows)
for n in notes:
    print("note:", n)
print("CSV and PNG files: %s" % out)
