#!/usr/bin/env python3
"""Report of make demo (scripts/demo-inside.sh):
T NOK NSRC NMSG MARKERS SECS RATE LOSS OUT [WATERMARK TARGET [HOK HSRC HSECS HRATE]]."""
import json, statistics, sys
T, nok, nsrc, nmsg, mk, secs, rate, loss, out = sys.argv[1:10]
wm, target = (int(sys.argv[10]), int(sys.argv[11])) if len(sys.argv) > 11 else (131072, 524288)
hok, hsrc, hsecs, hrate = sys.argv[12:16] if len(sys.argv) > 15 else ("0", "0", "0", "-")
gw = {n: {p["id"]: p for p in json.load(open(f"{T}/{n}.json"))["peers"]} for n in ("encA", "encB", "encC")}
links = {"A-B": (("encA", 2), ("encB", 1)), "A-C": (("encA", 3), ("encC", 1))}
print(f"qotp demo: 3 sites, star A-B / A-C, {secs} s clip published behind B, played behind C")
print(f"  frames received intact at C: {nok} / {nsrc} sent (framemd5)")
print("  gateway  peer  encrypted B  decrypted B  drops(no_key/no_desc/bad_desc/csum/nomem/other)")
for n, peers in gw.items():
    for pid, p in sorted(peers.items()):
        s = p["stats"]
        d = "/".join(str(s.get(k, 0)) for k in ("drop_no_key", "drop_no_desc", "drop_bad_desc", "drop_csum", "drop_nomem", "drop_other"))
        print(f"  {n:7}  {pid:4}  {s['enc_bytes']:11}  {s['dec_bytes']:11}  {d}")
print("  link  key consumed B (encrypt rings, both ends)  efficiency consumed/(consumed+wasted)")
for l, ends in links.items():
    c = sum(gw[n][p]["rings"]["encrypt"]["consumed"] for n, p in ends)
    w = sum(gw[n][p]["rings"]["encrypt"]["wasted"] for n, p in ends)
    print(f"  {l}   {c:12}  {c / (c + w) if c + w else 0:.4f}")
if hsecs == "0":
    print("  relays: 0 (every stream is B<->A or C<->A: direct-link distribution, no PPETP)")


def lines(path):
    try:
        return open(path).read().splitlines()
    except OSError:
        return []


def events(n):
    ev = []
    for l in lines(f"{T}/events_{n}.log"):
        t, _, j = l.partition(" ")
        try:
            ev.append((float(t), json.loads(j)))
        except ValueError:
            pass
    return ev


def samples(n, peer):
    sm = []
    for l in lines(f"{T}/samples_{n}.log"):
        try:
            d = json.loads(l)
            sm.append((d["t"], d["peers"][str(peer)]))
        except (ValueError, KeyError):
            pass
    return sm


# Key plane: how the two encrypt rings that carry the stream were kept filled. For every
# low-watermark event during the stream: how long until the ring was back at the watermark
# (from 2 Hz samples of the ring), and how low it went meanwhile.
try:
    t0 = float(open(f"{T}/stream.start").read())
    t1 = float(open(f"{T}/stream.end").read())
except (OSError, ValueError):
    t0 = t1 = None
if t0:
    print(f"  key plane while B published ({t1 - t0:.1f} s; ring low watermark {wm} B, kmsd target {target} B):")
    print("  ring (encrypt)  drain KB/s  push KB/s  low-wm events  first push / back at wm after, s (median, max)  lowest B  key-empty")
    for n, peer, name in (("encB", 1, "B->A publish"), ("encA", 3, "A->C play")):
        sm = [s for s in samples(n, peer) if t0 - 1 <= s[0] <= t1 + 1]
        ev = [(t, e) for t, e in events(n) if t0 <= t <= t1 and e.get("peer") == peer and e.get("dir") == "encrypt"]
        if len(sm) < 2:
            print(f"  {name:15}  (no samples)")
            continue
        dt = sm[-1][0] - sm[0][0]
        drain = (sm[-1][1]["consumed"] - sm[0][1]["consumed"]) / dt / 1000
        refill = (sm[-1][1]["pushed"] - sm[0][1]["pushed"]) / dt / 1000
        lw = [t for t, e in ev if e["event"] == "low-watermark"]
        ke = [t for t, e in ev if e["event"] == "key-empty"]
        first, back, lowest = [], [], min(s[1]["avail"] for s in sm)
        for t in lw:
            before = [s for s in sm if s[0] <= t]
            p0 = before[-1][1]["pushed"] if before else sm[0][1]["pushed"]
            f = [s for s in sm if s[0] > t and s[1]["pushed"] > p0]
            a = [s for s in sm if s[0] > t and s[1]["avail"] >= wm]
            if f:
                first.append(f[0][0] - t)
            if a:
                back.append(a[0][0] - t)

        def mm(v):
            r = f"{statistics.median(v):.1f}, {max(v):.1f}" if v else "-"
            return r + (f" ({len(lw) - len(v)} never)" if len(v) < len(lw) else "")
        b = f"{mm(first)} / {mm(back)}"
        print(f"  {name:14}  {drain:10.1f}  {refill:9.1f}  {len(lw):13}  {b:>46}  {lowest:8}  {len(ke):9}")


def load(path):
    try:
        return json.loads(open(path).read())
    except (OSError, ValueError):
        return None


# The relayed pair: B and C share no quantum link, their key came through A by PPETP.
r0, r1 = load(f"{T}/relay.start"), load(f"{T}/relay.end")
if hsecs != "0":
    try:
        kbps = int(open(f"{T}/hd.bitrate").read()) / 1000
    except (OSError, ValueError):
        kbps = 0
    print(f"  relayed pair B<->C (no quantum link between them; key by PPETP through A): "
          f"{hsecs} s 720p clip at {kbps:.0f} kbit/s (video {hrate}) published behind B, played behind C")
    print(f"  frames received intact at C: {hok} / {hsrc} sent (framemd5)")
    if r0 and r1 and r1["t"] > r0["t"]:
        dt = r1["t"] - r0["t"]
        nk = [gw[n][p]["stats"]["drop_no_key"] if p in gw[n] else "-" for n, p in (("encB", 3), ("encC", 2))]
        print(f"  while it was published ({dt:.1f} s): stream {kbps / 8:.1f} KB/s; key relayed by A {(r1['a'] - r0['a']) / dt / 1000:.1f} KB/s, "
              f"delivered by kmsd B to the pair {(r1['b'] - r0['b']) / dt / 1000:.1f} KB/s, by kmsd C "
              f"{(r1['c'] - r0['c']) / dt / 1000:.1f} KB/s; no_key drops B->C {nk[0]}, C->B {nk[1]}")
    else:
        print("  (no key plane probe of the relayed stream)")
print(f"  eavesdropper (tshark on A's and B's internet links): RTMP command messages {nmsg}, plaintext markers: {mk}")
print(f"  pictures: {out}/frame-at-C.png, {out}/wire-ciphertext.png, {out}/plaintext-same-view.png")
print(f"  logs: {out}/run.log, {out}/logs/ (daemons, tools, key plane events and samples), {out}/uml/ (console, dmesg)")
print(f"  settings: QOTP_DEMO_SECONDS={secs} QOTP_DEMO_KEYRATE={rate} QOTP_DEMO_LOSS={loss} "
      f"QOTP_DEMO_WATERMARK={wm} QOTP_DEMO_TARGET={target} QOTP_DEMO_RELAY_SECONDS={hsecs} "
      f"QOTP_DEMO_RELAY_BITRATE={hrate} QOTP_DEMO_OUT={out}")
