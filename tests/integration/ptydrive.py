#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal (its controlling terminal),
reads everything it writes there as fast as it comes, and reports.

    ptydrive.py REPORT [options] -- ARGV...

    --type MARKER SECS BYTES  once MARKER has been written, wait SECS and
                              type BYTES (Python escapes: '\\x03' is Ctrl-C)
    --end MARKER              note when MARKER is written after the typing
                              (or after --start)
    --start MARKER            count bytes and time from this marker to --end
    --tail N                  keep the last N bytes of output (REPORT.out)

REPORT gets "key value" lines:

    bytes N            everything the command wrote
    started_ms T       --start seen (ms since the command started)
    typed_ms T         the typing done
    end_ms T           --end seen
    span_bytes N       bytes between --start and --end
    rss_kb_at_type N   the command's VmRSS when it was typed
    rss_kb_max N       the largest VmRSS sampled (every 0.1 s) from --type's
                       marker on
    rss_kb_samples A,B,...
    termios same|differs   the terminal's settings after the command
                       ended against before it started
    exit N             the command's status (128+N for signal N)

The command's pid goes to REPORT.pid as soon as it runs.
"""
import fcntl
import os
import select
import struct
import sys
import termios
import time


def vmrss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    args = sys.argv[1:]
    report = args.pop(0)
    typ = end = start = None
    tail = 65536
    while args and args[0] != "--":
        o = args.pop(0)
        if o == "--type":
            typ = (args.pop(0).encode(), float(args.pop(0)),
                   args.pop(0).encode().decode("unicode_escape").encode(
                       "latin-1"))
        elif o == "--end":
            end = args.pop(0).encode()
        elif o == "--start":
            start = args.pop(0).encode()
        elif o == "--tail":
            tail = int(args.pop(0))
        else:
            sys.exit(f"ptydrive.py: unknown option {o}")
    argv = args[1:]
    if not argv:
        sys.exit("usage: ptydrive.py REPORT [options] -- ARGV...")

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    before = termios.tcgetattr(slave)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in range(3):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    # The slave stays open here: its settings are read after the command.
    with open(report + ".pid", "w") as f:
        f.write(f"{pid}\n")

    def ms():
        return int((time.monotonic() - t0) * 1000)

    rep = {}
    total = 0
    keep = b""  # the last bytes, to find markers across reads
    out = bytearray()
    seen_type_at = None  # monotonic time the --type marker was seen
    typed = False
    span_from = None
    samples = []
    next_sample = 0.0
    want = [m for m in (typ[0] if typ else None, start, end) if m]
    width = max((len(m) for m in want), default=1)
    status = None
    while True:
        now = time.monotonic()
        if seen_type_at is not None and now >= next_sample:
            samples.append(vmrss(pid))
            next_sample = now + 0.1
        if typ and seen_type_at is not None and not typed and \
                now >= seen_type_at + typ[1]:
            rep["rss_kb_at_type"] = vmrss(pid)
            os.write(master, typ[2])
            typed = True
            rep["typed_ms"] = ms()
        r, _, _ = select.select([master], [], [], 0.05)
        if not r:
            w, st = os.waitpid(pid, os.WNOHANG)
            if w == pid:
                status = st
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every holder but us closed the slave
            data = b""
        if not data:
            w, st = os.waitpid(pid, os.WNOHANG)
            if w == pid:
                status = st
                break
            time.sleep(0.01)
            continue
        total += len(data)
        out += data
        if len(out) > 2 * tail:
            del out[:len(out) - tail]
        hay = keep + data
        if typ and seen_type_at is None and typ[0] in hay:
            seen_type_at = time.monotonic()
            next_sample = 0.0
        if start and span_from is None and start in hay:
            span_from = total - (len(hay) - hay.index(start))
            rep["started_ms"] = ms()
        if end and "end_ms" not in rep and end in hay and \
                (typed or (start and span_from is not None) or
                 not (typ or start)):
            rep["end_ms"] = ms()
            if span_from is not None:
                rep["span_bytes"] = total - (len(hay) - hay.index(end)) \
                    - span_from
        keep = hay[-width:]
    # What is left in the terminal's buffer.
    os.set_blocking(master, False)
    try:
        while True:
            data = os.read(master, 65536)
            if not data:
                break
            total += len(data)
            out += data
    except OSError:
        pass
    after = termios.tcgetattr(slave)
    rep["bytes"] = total
    if samples:
        rep["rss_kb_max"] = max(samples)
        rep["rss_kb_samples"] = ",".join(str(s) for s in samples)
    rep["termios"] = "same" if after == before else "differs"
    if os.WIFSIGNALED(status):
        code = 128 + os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
    rep["exit"] = code
    with open(report, "w") as f:
        for k, v in rep.items():
            f.write(f"{k} {v}\n")
    with open(report + ".out", "wb") as f:
        f.write(bytes(out[-tail:]))
    return code


if __name__ == "__main__":
    sys.exit(main())
