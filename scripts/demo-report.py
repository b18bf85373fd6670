#!/usr/bin/env python3
"""Report of make demo (scripts/demo-inside.sh): T NOK NSRC NMSG MARKERS SECS RATE LOSS OUT."""
import json, sys
T, nok, nsrc, nmsg, mk, secs, rate, loss, out = sys.argv[1:10]
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
print("  relays: 0 (every stream is B<->A or C<->A: direct-link distribution, no PPETP)")
print(f"  eavesdropper (tshark on the internet netns): RTMP command messages {nmsg}, plaintext markers: {mk}")
print(f"  pictures: {out}/frame-at-C.png, {out}/wire-ciphertext.png, {out}/plaintext-same-view.png")
print(f"  logs: {out}/logs/   settings: QOTP_DEMO_SECONDS={secs} QOTP_DEMO_KEYRATE={rate} QOTP_DEMO_LOSS={loss} QOTP_DEMO_OUT={out}")
