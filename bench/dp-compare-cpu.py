#!/usr/bin/env python3
"""Host CPU time of the bench's UML kernel at marks the guest sets (bench/dp-compare.sh).

    dp-compare-cpu.py RUNDIR MARKS OUT

Waits for the UML kernel started with QOTP_RUN=RUNDIR (scripts/uml-run.sh starts it with
setsid), then, each time a line is appended to MARKS (the guest appends one and fsyncs it,
then idles 0.2 s), writes "LINE CPU_SECONDS" to OUT: the CPU time the host has given to
every process of that UML's session so far (kernel and guest processes, from
/proc/PID/task/TID/schedstat, ns resolution; exited guest processes through the kernel
process's cutime + cstime). Between two marks of one transfer the difference is the CPU
the whole guest (one guest CPU: sender, encryptors, router, receiver) spent on it, which
other work on the host's cores does not inflate, unlike wall-clock time.
Exits when the UML kernel does.
"""
import os
import sys
import time

rundir, marks, out = sys.argv[1:4]
tag = ("QOTP_RUN=" + rundir).encode()
hz = os.sysconf("SC_CLK_TCK")


def find_uml():
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if tag in args and args[0].endswith(b"/linux"):
            return int(p)
    return None


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on


def cpu(sid):
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        pid = int(p)
        try:
            st = stat_fields(pid)
            if int(st[3]) != sid:  # field 6: session
                continue
            if pid == sid:  # reaped guest processes
                total += (int(st[13]) + int(st[14])) * 1e9 / hz
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


deadline = time.time() + 120
sid = None
while sid is None and time.time() < deadline:
    sid = find_uml()
    time.sleep(0.05)
if sid is None:
    sys.exit("dp-compare-cpu: no UML kernel with " + tag.decode())
done = 0
with open(out, "w") as o:
    while os.path.exists("/proc/%d" % sid):
        try:
            with open(marks) as f:
                data = f.read()
        except OSError:
            data = ""
        end = data.rfind("\n") + 1
        if end > done:
            c = cpu(sid)
            for line in data[done:end].splitlines():
                o.write("%s %.6f\n" % (line, c))
            o.flush()
            done = end
        time.sleep(0.005)
