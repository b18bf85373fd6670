#!/usr/bin/env python3
"""Find kernel reports in a UML test kernel log and decide which ones fail the run.

usage: kreports.py DMESG [KMEMLEAK]

A report is a block that starts with one of the markers below and runs until the
"---[ end trace" line, the end of its call trace (the first line after "Call Trace:" that
is not a stack frame), the next marker, or 80 lines. A report fails the run when it
involves qotp (a symbol of the module: "[qotp]", "[qotp_test]", "qotp_" in a trace), or when
it is logged after init's "qotp-uml: init ready" line, i.e. during the test, whatever stack
it shows, unless it is one of the base kernel's known warnings (KNOWN_BASE). Reports of the
boot that do not involve qotp are printed as notes only. Nothing after init's "qotp-uml:
timed out, state dump follows" line is read: that is the dump of a run that is failing
already (its stack walks trip KASAN on UML), printed by scripts/uml-run.sh itself.
kmemleak: every unreferenced object whose backtrace names qotp fails the run; one whose
backtrace holds only unresolved addresses does too, since that is what a leak from a
module that has since been unloaded looks like.
Exit status 0: nothing involving qotp; 1: at least one such report (printed).
"""
import re
import sys

MARKERS = re.compile(
    r"(BUG: |WARNING: |KASAN|UBSAN|Oops|general protection fault|kernel BUG|"
    r"possible recursive locking|possible circular locking|inconsistent lock state|"
    r"INFO: task .* blocked|INFO: rcu|INFO: trying to register non-static key|"
    r"Kernel panic|list_add corruption|list_del corruption|refcount_t: |"
    r"unreferenced object|Call Trace:)")
QOTP = re.compile(r"\[qotp(_test)?\]|\bqotp_[a-z0-9_]+")
END = re.compile(r"---\[ end (trace|Kernel panic)")
TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")
TEST_START = "qotp-uml: init ready"
DUMP_START = "qotp-uml: timed out, state dump follows"
# The base 6.1 UML kernel's own warnings: lockdep's suspicious RCU usage in the maple tree,
# reached from UML's fork_handler (arch/um), at the first forks of every boot; and lockdep
# finding itself in hardirq context while UML's signal-driven IRQ code (arch/um
# block_signals_trace/unblock_signals_trace) turns interrupts on, seen once in a kworker
# freeing a BPF program (tshark's capture filter), its stack trace cut short by "Received
# SIGSEGV in SIGSEGV handler". A block naming qotp still fails whatever it matches here.
KNOWN_BASE = re.compile(r"suspicious RCU usage[\s\S]*lib/maple_tree\.c|"
                        r"DEBUG_LOCKS_WARN_ON\(lockdep_hardirq_context\(\)\)"
                        r"[\s\S]*hardirqs last +(en|dis)abled at \(\d+\): "
                        r"\[<[0-9a-f]+>\] (un)?block_signals_trace\+")
FRAME = re.compile(r"^\s*(\[<[0-9a-f]+>\]|<TASK>|</TASK>|<IRQ>|</IRQ>|\?|[a-z_][\w.]*\+0x)")


def blocks(lines):
    cur = None
    for line in lines:
        text = TS.sub("", line.rstrip("\n"))
        starts = MARKERS.search(text) and not text.startswith("Call Trace:")
        if starts and cur is not None and not cur["trace_only"]:
            yield cur
            cur = None
        if starts:
            cur = {"lines": [text], "trace_only": False}
        elif text.startswith("Call Trace:") and cur is None:
            cur = {"lines": [text], "trace_only": True, "in_trace": True}
        elif cur is not None:
            # Once its call trace has begun, a report ends at the first line that is not a
            # frame: UML's traces end with a bare blank line, not an "end trace" marker, and
            # without this rule whatever the kernel logs next would be taken as the report's.
            if cur.get("in_trace") and not FRAME.match(text):
                yield cur
                cur = None
                continue
            cur["lines"].append(text)
            if text.startswith("Call Trace:"):
                cur["in_trace"] = True
            if END.search(text) or len(cur["lines"]) >= 80:
                yield cur
                cur = None
    if cur is not None:
        yield cur


def kmemleak_objects(text):
    objs = re.split(r"(?=unreferenced object )", text)
    return [o for o in objs if o.startswith("unreferenced object")]


def main():
    bad = 0
    notes = 0
    with open(sys.argv[1], errors="replace") as f:
        lines = f.readlines()
    dump = next((i for i, l in enumerate(lines) if DUMP_START in l), None)
    if dump is not None:
        lines = lines[:dump]
    # Reports logged once the test has begun fail the run even when no qotp frame shows in
    # them: a refcount underflow in tcp_wfree caused by qotp growing an skb's truesize, or a
    # use-after-free of a page qotp wrote into, is reported from another subsystem's stack.
    # Only the base kernel's own known warnings are let through there.
    start = next((i for i, l in enumerate(lines) if TEST_START in l), None)
    before = lines if start is None else lines[:start]
    after = [] if start is None else lines[start:]
    for phase, chunk in (("boot", before), ("test", after)):
        for b in blocks(chunk):
            body = "\n".join(b["lines"])
            known = KNOWN_BASE.search(body)
            if QOTP.search(body) or (phase == "test" and not known):
                bad += 1
                print("kreports: REPORT %s:\n" % ("INVOLVING QOTP" if QOTP.search(body)
                      else "DURING THE TEST") + body + "\n", file=sys.stderr)
            else:
                notes += 1
                print("kreports: note: base-kernel report, not involving qotp: "
                      + b["lines"][0], file=sys.stderr)
    if len(sys.argv) > 2:
        try:
            with open(sys.argv[2], errors="replace") as f:
                leaks = kmemleak_objects(f.read())
        except FileNotFoundError:
            leaks = []
        for o in leaks:
            frames = [l.strip() for l in o.splitlines() if l.strip().startswith("[<")]
            unresolved = frames and all(re.search(r"\] 0x[0-9a-f]+$", fr) for fr in frames[:3])
            if QOTP.search(o) or unresolved:
                bad += 1
                print("kreports: KMEMLEAK INVOLVING QOTP (or an unloaded module):\n" + o,
                      file=sys.stderr)
            else:
                notes += 1
                print("kreports: note: base-kernel kmemleak object: " + o.splitlines()[0],
                      file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
