#!/usr/bin/python3
# Helpers of the datapath's end-to-end tests (tests/e2e/dp-*.sh); not a test itself.
#
#   dp-helpers.py mkdata FILE SIZE         random bytes with a plaintext marker every 1000 bytes
#   dp-helpers.py serve ADDR PORT FILE     TCP server: "U"+data -> sha256 hex of data back;
#                                          "D" -> FILE's bytes; "B"+data -> FILE's bytes
#                                          sent meanwhile, then sha256 hex of data
#   dp-helpers.py up|down|both ADDR PORT FILE [TIMEOUT]   client; exit 0 iff the bytes
#                                          arrived exact (both: each way at once)
#   dp-helpers.py tfo ADDR PORT FILE N     N uploads ("U"), each a new connection opened
#                                          by TCP Fast Open (sendto MSG_FASTOPEN: after the
#                                          first, data in the SYN); exit 0 iff all exact
#   dp-helpers.py capture IF FILE          every frame seen on IF appended to FILE
#                                          (each as a native u32 length, then the frame)
#   dp-helpers.py grep FILE [PORT]         exit 0 iff FILE holds the plaintext marker (with
#                                          PORT: in the payload of a TCP segment from or to it)
#   dp-helpers.py descs FILE PORT          TCP segments with payload from or to PORT in FILE:
#                                          prints "segments N option O stride S biggest B"
#                                          (O: with a qotp option; S: of those, with F_STRIDE;
#                                          B: the largest payload with F_STRIDE)
import hashlib
import os
import socket
import struct
import sys
import threading
import time

MARKER = b"QOTP-PLAINTEXT-MARKER-7f3a"


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def mkdata(path, size):
    out = bytearray()
    while len(out) < size:
        out += os.urandom(1000 - len(MARKER)) + MARKER
    with open(path, "wb") as f:
        f.write(out[:size])


def serve_one(c, data):
    with c:
        c.settimeout(300)
        try:
            cmd = c.recv(1)
            if cmd == b"U":
                h = hashlib.sha256()
                while True:
                    d = c.recv(1 << 16)
                    if not d:
                        break
                    h.update(d)
                c.sendall(h.hexdigest().encode())
            elif cmd == b"D":
                c.sendall(data)
            elif cmd == b"B":
                # Both ways at once: data goes down while the client's copy comes up,
                # then the hash of what came up (so each direction's data segments
                # carry the other's ACKs, and SACK blocks when there is loss).
                t = threading.Thread(target=c.sendall, args=(data,))
                t.start()
                h = hashlib.sha256()
                n = 0
                while n < len(data):
                    d = c.recv(min(1 << 16, len(data) - n))
                    if not d:
                        break
                    h.update(d)
                    n += len(d)
                t.join()
                c.sendall(h.hexdigest().encode())
        except OSError as e:
            print("serve:", e, file=sys.stderr)


def serve(addr, port, path):
    with open(path, "rb") as f:
        data = f.read()
    s = socket.socket(family(addr))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)	# used if the sysctl allows
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_one, args=(c, data), daemon=True).start()


def upload_verdict(c):
    """After an "U" upload: end it, and return the hex digest the server sends back."""
    c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = c.recv(128)
        if not d:
            break
        got += d
    return got.decode(errors="replace")


def client(mode, addr, port, path, timeout):
    with open(path, "rb") as f:
        data = f.read()
    want = hashlib.sha256(data).hexdigest()
    t0 = time.monotonic()
    c = socket.create_connection((addr, port), timeout=timeout)
    if mode == "up":
        c.sendall(b"U" + data)
        ok = upload_verdict(c) == want
        n = len(data)
    elif mode == "both":
        t = threading.Thread(target=c.sendall, args=(b"B" + data,))
        t.start()
        h = hashlib.sha256()
        n = 0
        while n < len(data):
            d = c.recv(min(1 << 16, len(data) - n))
            if not d:
                break
            h.update(d)
            n += len(d)
        got = b""
        while len(got) < 64:
            d = c.recv(64 - len(got))
            if not d:
                break
            got += d
        t.join()
        ok = h.hexdigest() == want and n == len(data) and got.decode(errors="replace") == want
    else:
        c.sendall(b"D")
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            h.update(d)
            n += len(d)
        ok = h.hexdigest() == want and n == len(data)
    # From connect to the last byte acknowledged by the other end's verdict (up) or received
    # (down): what the throughput benchmark divides by.
    t = time.monotonic() - t0
    print(f"{mode} {addr} {port}: {n} bytes, {'exact' if ok else 'DIFFERENT'}, {t:.3f} s")
    return 0 if ok else 1


def tfo(addr, port, path, n, timeout=60):
    with open(path, "rb") as f:
        msg = b"U" + f.read()
    want = hashlib.sha256(msg[1:]).hexdigest()
    good = 0
    for _ in range(n):
        with socket.socket(family(addr)) as c:
            # blocking: a socket with a timeout is non-blocking inside, and sendto
            # would return EINPROGRESS instead of waiting for the handshake
            sent = c.sendto(msg, socket.MSG_FASTOPEN, (addr, port))
            c.settimeout(timeout)
            c.sendall(msg[sent:])
            good += upload_verdict(c) == want
    print(f"tfo {addr} {port}: {good} of {n} uploads exact")
    return 0 if good == n else 1


def capture(ifname, path):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    with open(path, "ab", buffering=0) as out:
        print("capturing", flush=True)
        while True:
            d = s.recv(1 << 17)
            out.write(struct.pack("I", len(d)) + d)


def tcp_segments(path, port):
    """(TCP header, payload) of segments from or to @port in a capture file (Ethernet
    frames, IPv4/IPv6)."""
    with open(path, "rb") as f:
        data = f.read()
    o = 0
    while o + 4 <= len(data):
        (n,) = struct.unpack_from("I", data, o)
        fr = data[o + 4:o + 4 + n]
        o += 4 + n
        if len(fr) < 14:
            continue
        et = struct.unpack_from("!H", fr, 12)[0]
        ip = fr[14:]
        if et == 0x0800 and len(ip) >= 20 and ip[9] == 6:
            tcp = ip[(ip[0] & 15) * 4:struct.unpack_from("!H", ip, 2)[0]]
        elif et == 0x86DD and len(ip) >= 40 and ip[6] == 6:
            tcp = ip[40:40 + struct.unpack_from("!H", ip, 4)[0]]
        else:
            continue
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack_from("!HH", tcp, 0)
        if port in (sport, dport):
            h = (tcp[12] >> 4) * 4
            yield tcp[:h], tcp[h:]


def tcp_payloads(path, port):
    """TCP payloads from or to @port in a capture file."""
    return (p for _, p in tcp_segments(path, port))


def qotp_flags(th):
    """The flags nibble of the qotp option (kind 253, ExID 0x514f) in TCP header @th, or
    None when it has none."""
    i = 20
    while i < len(th):
        kind = th[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(th) or th[i + 1] < 2:
            break
        if kind == 253 and th[i + 1] >= 5 and th[i + 2:i + 4] == b"\x51\x4f":
            return th[i + 4] & 15
        i += th[i + 1]
    return None


def descs(path, port):
    n = opt = stride = biggest = 0
    for th, pay in tcp_segments(path, port):
        if not pay:
            continue
        n += 1
        f = qotp_flags(th)
        if f is None:
            continue
        opt += 1
        if f & 2:
            stride += 1
            biggest = max(biggest, len(pay))
    print(f"segments {n} option {opt} stride {stride} biggest {biggest}")


def main():
    a = sys.argv[1:]
    if a[0] == "mkdata":
        mkdata(a[1], int(a[2]))
    elif a[0] == "serve":
        serve(a[1], int(a[2]), a[3])
    elif a[0] in ("up", "down", "both"):
        return client(a[0], a[1], int(a[2]), a[3], float(a[4]) if len(a) > 4 else 120)
    elif a[0] == "tfo":
        return tfo(a[1], int(a[2]), a[3], int(a[4]))
    elif a[0] == "capture":
        capture(a[1], a[2])
    elif a[0] == "descs":
        descs(a[1], int(a[2]))
    elif a[0] == "grep":
        if len(a) > 2:
            return 0 if any(MARKER in p for p in tcp_payloads(a[1], int(a[2]))) else 1
        with open(a[1], "rb") as f:
            return 0 if MARKER in f.read() else 1
    else:
        print("dp-helpers: unknown command", a[0], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
