#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Raw generic netlink client of the qotp family, for hostile-input tests.

  ctl-genl.py malformed    send malformed requests; print "PASS name" / "FAIL name: why"
  ctl-genl.py fuzz SECONDS send random and mutated requests for SECONDS; print a summary

Used by tests/e2e/ctl-malformed.sh inside UML. Builds every message by hand (no libnl), so
it can get lengths, types and flags wrong on purpose.
"""
import errno
import os
import random
import socket
import struct
import sys
import time

NETLINK_GENERIC = 16
GENL_ID_CTRL = 16
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLA_F_NESTED = 0x8000

# uapi/linux/qotp.h
(CMD_SET_CONFIG, CMD_GET_CONFIG, CMD_ADD_PEER, CMD_SET_PEER, CMD_DEL_PEER, CMD_GET_PEER,
 CMD_PUSH_KEYS, CMD_FLUSH) = range(1, 9)
(A_CFG_PORTS, A_CFG_MODE, A_CFG_RING_MAX_BYTES, A_CFG_LOW_WATERMARK, A_CFG_MAX_FLOWS,
 A_PEER_ID, A_PEER_PREFIXES, A_PEER_RINGS, A_PEER_STATS, A_PUSH_PEER, A_PUSH_DIR,
 A_PUSH_BLOCKS, A_FLUSH_PEER, A_FLUSH_DIR) = range(1, 15)
A_MAX = 21
A_PREFIX_FAMILY, A_PREFIX_ADDR, A_PREFIX_LEN = 1, 2, 3
A_BLOCK_ID, A_BLOCK_DATA = 1, 2
A_RING_DIR, A_RING_BLOCKS, A_RING_AVAIL = 1, 2, 3
A_RING_PUSHED, A_RING_LAST_ID = 5, 9


def attr(t, payload=b""):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t) + payload + b"\0" * ((4 - n % 4) % 4)


def nest(t, *items):
    return attr(t | NLA_F_NESTED, b"".join(items))


def u8(t, v): return attr(t, struct.pack("=B", v))
def u16(t, v): return attr(t, struct.pack("=H", v))
def u32(t, v): return attr(t, struct.pack("=I", v))
def u64(t, v): return attr(t, struct.pack("=Q", v))


def parse_attrs(buf):
    out = {}
    while len(buf) >= 4:
        n, t = struct.unpack_from("=HH", buf)
        if n < 4 or n > len(buf):
            break
        out.setdefault(t & 0x3FFF, []).append(buf[4:n])
        buf = buf[(n + 3) & ~3:]
    return out


class Genl:
    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.s.bind((0, 0))
        self.s.settimeout(10)
        self.seq = 1
        err, _, msgs = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                    attr(CTRL_ATTR_FAMILY_NAME, b"qotp\0"))
        if err:
            raise SystemExit("qotp family not found: %s" % os.strerror(-err))
        self.fam = struct.unpack("=H", parse_attrs(msgs[0][4:])[CTRL_ATTR_FAMILY_ID][0][:2])[0]

    def raw(self, data):
        """Sends bytes as they are; returns (errno, extack message, replies)."""
        self.s.send(data)
        return self.collect()

    def request(self, typ, cmd, attrs=b"", flags=NLM_F_REQUEST | NLM_F_ACK, version=1,
                reserved=0):
        self.seq += 1
        body = struct.pack("=BBH", cmd, version, reserved) + attrs
        hdr = struct.pack("=IHHII", 16 + len(body), typ, flags, self.seq, 0)
        return self.raw(hdr + body)

    def q(self, cmd, attrs=b"", **kw):
        return self.request(self.fam, cmd, attrs, **kw)

    def collect(self):
        msgs = []
        while True:
            data = self.s.recv(1 << 20)
            while len(data) >= 16:
                ln, typ, flags, seq, pid = struct.unpack_from("=IHHII", data)
                if ln < 16 or ln > len(data):
                    return -errno.EPROTO, "", msgs
                payload = data[16:ln]
                data = data[(ln + 3) & ~3:]
                if typ == NLMSG_ERROR:
                    err = struct.unpack_from("=i", payload)[0]
                    ext = ""
                    if flags & NLM_F_ACK_TLVS:
                        off = 4 + 16
                        if not flags & NLM_F_CAPPED:
                            off = 4 + struct.unpack_from("=I", payload, 4)[0]
                        a = parse_attrs(payload[off:])
                        if 1 in a:
                            ext = a[1][0].rstrip(b"\0").decode(errors="replace")
                        if 5 in a:  # NLMSGERR_ATTR_MISS_TYPE
                            ext += " [missing type %d]" % struct.unpack("=I", a[5][0][:4])[0]
                    return err, ext, msgs
                if typ == NLMSG_DONE:
                    err = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    return err, "", msgs
                msgs.append(payload)


def prefix(fam, addr, plen):
    return nest(0, u16(A_PREFIX_FAMILY, fam), attr(A_PREFIX_ADDR, addr), u8(A_PREFIX_LEN, plen))


def block(bid, data):
    return nest(0, u64(A_BLOCK_ID, bid), attr(A_BLOCK_DATA, data))


def push(peer, d, *blocks):
    return u32(A_PUSH_PEER, peer) + u8(A_PUSH_DIR, d) + nest(A_PUSH_BLOCKS, *blocks)


def snapshot(g):
    """Everything GET_CONFIG and a GET_PEER dump return, minus the refused counters
    (which refusals are meant to bump)."""
    err, _, cfg = g.q(CMD_GET_CONFIG)
    assert err == 0, err
    err, _, peers = g.q(CMD_GET_PEER, flags=NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
    assert err == 0, err
    out = [cfg[0]]
    for p in peers:
        a = parse_attrs(p[4:])
        rings = []
        for r in parse_attrs(a[A_PEER_RINGS][0]).get(0, []):
            ra = parse_attrs(r)
            ra.pop(8, None)  # QOTP_A_RING_REFUSED
            rings.append(sorted(ra.items()))
        out.append((a[A_PEER_ID][0], a.get(A_PEER_PREFIXES), rings))
    return out


def malformed():
    g = Genl()
    rnd = os.urandom
    # Known state: peer 1 with 100 bytes in block 5 of its encrypt ring.
    err, ext, _ = g.q(CMD_ADD_PEER, u32(A_PEER_ID, 1) +
                      nest(A_PEER_PREFIXES, prefix(socket.AF_INET, bytes([10, 9, 0, 0]), 16)))
    assert err == 0, (err, ext)
    err, ext, _ = g.q(CMD_PUSH_KEYS, push(1, 0, block(5, rnd(100))))
    assert err == 0, (err, ext)
    err, ext, _ = g.q(CMD_SET_CONFIG, u64(A_CFG_RING_MAX_BYTES, 65536) +
                      u64(A_CFG_LOW_WATERMARK, 0))
    assert err == 0, (err, ext)
    err, ext, _ = g.q(CMD_PUSH_KEYS, push(1, 1, block(1, rnd(30000)), block(2, rnd(30000))))
    assert err == 0, (err, ext)
    before = snapshot(g)

    big = 1 << 40
    cases = [
        # name, cmd, attrs, expected errno, kwargs
        ("unknown mode bit", CMD_SET_CONFIG, u32(A_CFG_MODE, 4), -errno.EINVAL, {}),
        ("mode of the wrong width", CMD_SET_CONFIG, u16(A_CFG_MODE, 1), -errno.EINVAL, {}),
        ("ring-max absurd", CMD_SET_CONFIG, u64(A_CFG_RING_MAX_BYTES, big), -errno.ERANGE, {}),
        ("ring-max tiny", CMD_SET_CONFIG, u64(A_CFG_RING_MAX_BYTES, 1), -errno.ERANGE, {}),
        ("low watermark above ring-max", CMD_SET_CONFIG,
         u64(A_CFG_RING_MAX_BYTES, 1 << 20) + u64(A_CFG_LOW_WATERMARK, 2 << 20), -errno.EINVAL, {}),
        ("max-flows 0", CMD_SET_CONFIG, u32(A_CFG_MAX_FLOWS, 0), -errno.ERANGE, {}),
        ("port 0", CMD_SET_CONFIG, nest(A_CFG_PORTS, u16(0, 0)), -errno.EINVAL, {}),
        ("port of the wrong width", CMD_SET_CONFIG, nest(A_CFG_PORTS, u32(0, 80)), -errno.EINVAL, {}),
        ("17 ports", CMD_SET_CONFIG, nest(A_CFG_PORTS, *[u16(0, p) for p in range(1, 18)]),
         -errno.E2BIG, {}),
        ("ports without NLA_F_NESTED", CMD_SET_CONFIG, attr(A_CFG_PORTS, u16(0, 80)),
         -errno.EINVAL, {}),
        ("unknown attribute type", CMD_SET_CONFIG, u32(A_MAX + 1, 1), -errno.EINVAL, {}),
        ("attribute of another command", CMD_SET_CONFIG, u32(A_PUSH_PEER, 1), -errno.EINVAL, {}),
        ("attribute on GET_CONFIG", CMD_GET_CONFIG, u32(A_PEER_ID, 1), -errno.EINVAL, {}),
        ("unknown command", 200, b"", -errno.EOPNOTSUPP, {}),
        ("reserved header bits", CMD_GET_CONFIG, b"", -errno.EINVAL, {"reserved": 1}),
        ("add peer without id", CMD_ADD_PEER, b"", -errno.EINVAL, {}),
        ("peer id 0", CMD_ADD_PEER, u32(A_PEER_ID, 0), -errno.ERANGE, {}),
        ("existing peer id", CMD_ADD_PEER, u32(A_PEER_ID, 1), -errno.EEXIST, {}),
        ("set of an unknown peer", CMD_SET_PEER, u32(A_PEER_ID, 77), -errno.ENOENT, {}),
        ("del of an unknown peer", CMD_DEL_PEER, u32(A_PEER_ID, 77), -errno.ENOENT, {}),
        ("IPv4 prefix with 16-byte address", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(socket.AF_INET, bytes(16), 8)), -errno.EINVAL, {}),
        ("IPv4 prefix length 33", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(socket.AF_INET, bytes(4), 33)), -errno.EINVAL, {}),
        ("IPv6 prefix length 129", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(socket.AF_INET6, bytes(16), 129)), -errno.ERANGE, {}),
        ("prefix family 7", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(7, bytes(4), 8)), -errno.EINVAL, {}),
        ("prefix with host bits", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(socket.AF_INET, bytes([10, 0, 0, 1]), 24)), -errno.EINVAL, {}),
        ("prefix missing its length", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, nest(0, u16(A_PREFIX_FAMILY, 2), attr(A_PREFIX_ADDR, bytes(4)))),
         -errno.EINVAL, {}),
        ("prefix of another peer", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, prefix(socket.AF_INET, bytes([10, 9, 0, 0]), 16)), -errno.EEXIST, {}),
        ("65 prefixes", CMD_ADD_PEER, u32(A_PEER_ID, 2) +
         nest(A_PEER_PREFIXES, *[prefix(socket.AF_INET, bytes([10, 20, i, 0]), 24)
                                 for i in range(65)]), -errno.E2BIG, {}),
        ("push without blocks", CMD_PUSH_KEYS, u32(A_PUSH_PEER, 1) + u8(A_PUSH_DIR, 0),
         -errno.EINVAL, {}),
        ("push direction 2", CMD_PUSH_KEYS, push(1, 2, block(9, rnd(8))), -errno.ERANGE, {}),
        ("push to unknown peer", CMD_PUSH_KEYS, push(9, 0, block(9, rnd(8))), -errno.ENOENT, {}),
        ("push of a reused id", CMD_PUSH_KEYS, push(1, 0, block(5, rnd(8))), -errno.EINVAL, {}),
        ("push of a lower id", CMD_PUSH_KEYS, push(1, 0, block(4, rnd(8))), -errno.EINVAL, {}),
        ("push with ids not increasing", CMD_PUSH_KEYS,
         push(1, 0, block(9, rnd(8)), block(9, rnd(8))), -errno.EINVAL, {}),
        ("push with one bad block of two", CMD_PUSH_KEYS,
         push(1, 0, block(10, rnd(8)), block(11, b"")), -errno.ERANGE, {}),
        ("push of a 32769-byte block", CMD_PUSH_KEYS, push(1, 0, block(12, rnd(32769))),
         -errno.ERANGE, {}),
        ("push of 65 blocks", CMD_PUSH_KEYS, push(1, 0, *[block(100 + i, rnd(4)) for i in range(65)]),
         -errno.EINVAL, {}),
        ("push block without data", CMD_PUSH_KEYS, push(1, 0, nest(0, u64(A_BLOCK_ID, 13))),
         -errno.EINVAL, {}),
        ("push block id of 4 bytes", CMD_PUSH_KEYS,
         push(1, 0, nest(0, u32(A_BLOCK_ID, 13), attr(A_BLOCK_DATA, rnd(8)))), -errno.EINVAL, {}),
        ("push over ring-max", CMD_PUSH_KEYS, push(1, 1, block(3, rnd(10000))),
         -errno.ENOSPC, {}),
        ("flush of an unknown peer", CMD_FLUSH, u32(A_FLUSH_PEER, 99), -errno.ENOENT, {}),
        ("flush direction 3", CMD_FLUSH, u8(A_FLUSH_DIR, 3), -errno.ERANGE, {}),
    ]
    for name, cmd, attrs, want, kw in cases:
        err, ext, _ = g.q(cmd, attrs, **kw)
        if err != want:
            print("FAIL %s: got %s (%s), want %s" % (name, err, ext, want))
        elif not ext and name not in ("unknown command",):
            print("FAIL %s: refused (%d) without an extack message" % (name, err))
        else:
            print("PASS %s: %s" % (name, ext or os.strerror(-err)))

    # Truncated and garbage framing: the kernel must answer or ignore, never crash.
    for name, data in [
        ("attribute longer than the message",
         struct.pack("=IHHII", 28, g.fam, 5, 999, 0) + struct.pack("=BBH", CMD_ADD_PEER, 1, 0)
         + struct.pack("=HH", 200, A_PEER_ID) + b"\1\0\0\0"),
        ("nested array entry truncated",
         struct.pack("=IHHII", 44, g.fam, 5, 998, 0) + struct.pack("=BBH", CMD_PUSH_KEYS, 1, 0)
         + u32(A_PUSH_PEER, 1) + u8(A_PUSH_DIR, 0)
         + struct.pack("=HH", 8, A_PUSH_BLOCKS | NLA_F_NESTED) + struct.pack("=HH", 40, 0)),
    ]:
        err, ext, _ = g.raw(data)
        print(("PASS %s: %s" if err < 0 else "FAIL %s: accepted (%s)") %
              (name, ext or os.strerror(-err if err else 0)))

    after = snapshot(g)
    print("PASS state unchanged by refused requests" if after == before else
          "FAIL state changed by refused requests")


def fuzz(seconds):
    g = Genl()
    g.s.settimeout(5)
    r = random.Random(int(os.environ.get("QOTP_FUZZ_SEED", "1")))
    # Seed corpus: valid requests of every command.
    corpus = [
        (CMD_SET_CONFIG, u32(A_CFG_MODE, 2) + nest(A_CFG_PORTS, u16(0, 1935))),
        (CMD_GET_CONFIG, b""),
        (CMD_ADD_PEER, u32(A_PEER_ID, 3) + nest(A_PEER_PREFIXES,
                                                prefix(socket.AF_INET6, bytes(16), 0))),
        (CMD_SET_PEER, u32(A_PEER_ID, 3) + nest(A_PEER_PREFIXES,
                                                prefix(socket.AF_INET, bytes(4), 0))),
        (CMD_GET_PEER, u32(A_PEER_ID, 3)),
        (CMD_PUSH_KEYS, push(3, 0, block(1, os.urandom(64)), block(2, os.urandom(64)))),
        (CMD_FLUSH, u32(A_FLUSH_PEER, 3)),
        (CMD_DEL_PEER, u32(A_PEER_ID, 3)),
    ]
    n = accepted = 0
    end = time.monotonic() + seconds
    nextid = 1000
    while time.monotonic() < end:
        cmd, attrs = r.choice(corpus)
        data = bytearray(attrs)
        how = r.randrange(6)
        if how == 0 and data:          # flip bytes
            for _ in range(r.randrange(1, 8)):
                data[r.randrange(len(data))] = r.randrange(256)
        elif how == 1 and data:        # truncate
            data = data[:r.randrange(len(data))]
        elif how == 2:                 # random attributes
            data += bytes(attr(r.randrange(0, 40) | (NLA_F_NESTED if r.random() < .3 else 0),
                               os.urandom(r.randrange(0, 24))))
        elif how == 3:                 # another command's body
            cmd = r.randrange(0, 16)
        elif how == 4:                 # a valid push with a fresh id
            nextid += 1
            data = bytearray(push(3, r.randrange(2), block(nextid, os.urandom(r.randrange(1, 512)))))
        # how == 5: as is
        try:
            err, _, _ = g.q(cmd, bytes(data),
                            flags=NLM_F_REQUEST | NLM_F_ACK | (NLM_F_DUMP if r.random() < .1 else 0))
        except socket.timeout:
            print("FAIL fuzz: no answer to a request")
            return
        n += 1
        accepted += err == 0
    # The family still answers sensibly afterwards.
    err, _, _ = g.q(CMD_GET_CONFIG)
    print(("PASS fuzz: %d requests (%d accepted), family still answers" if err == 0 else
           "FAIL fuzz: family broken after %d requests (%d accepted)") % (n, accepted))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "malformed":
        malformed()
    elif len(sys.argv) == 3 and sys.argv[1] == "fuzz":
        fuzz(float(sys.argv[2]))
    else:
        sys.exit(__doc__)
