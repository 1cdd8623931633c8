#!/usr/bin/env python3
"""Runs a command and reports which of its descendants outlive it.

    proctree.py REPORT -- CMD ARGS...

CMD's pid goes to REPORT.pid as soon as it runs (to send it signals).
While it runs, every process below it (by parentage: the
/proc/PID/task/TID/children lists) is recorded every 10 ms; the instant CMD exits (a pidfd says so) each recorded
process is looked up again.  REPORT gets lines:

    seen PID COMM START   every process seen below CMD (START: its start
                          time, field 22 of /proc/PID/stat, to tell it
                          from a later process with the same pid)
    left PID COMM     one of them still running when CMD had exited
    zombie PID COMM   one of them exited but not yet reaped by anyone

Exits with CMD's status (128+N for signal N).  stdin, stdout and stderr
are CMD's.
"""
import os
import select
import signal
import sys


def stat_of(pid):
    """(ppid, state, starttime, comm) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lp, rp = s.find("("), s.rfind(")")
    comm = s[lp + 1:rp].replace(" ", "_")
    rest = s[rp + 2:].split()
    return int(rest[1]), rest[0], rest[19], comm


def descendants(root):
    """{pid: stat_of(pid)} of every process below root, through the
    /proc/PID/task/TID/children lists (fast: only the tree is read)."""
    out, todo = {}, [root]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            for c in kids:
                st = stat_of(c)
                if st:
                    out[c] = st
                    todo.append(c)
    return out


def main():
    report, argv = sys.argv[1], sys.argv[3:]
    assert sys.argv[2] == "--" and argv
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    with open(report + ".pid", "w") as f:
        f.write(f"{pid}\n")
    # The test's signals are for CMD, not for us.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    pfd = os.pidfd_open(pid)
    poll = select.poll()
    poll.register(pfd, select.POLLIN)
    seen = {}
    while True:
        for p, st in descendants(pid).items():
            seen[(p, st[2])] = st[3]
        if poll.poll(10):
            break
    # CMD has exited (a zombie until we wait): who is still there?
    left, zombies = [], []
    for (p, start), comm in seen.items():
        st = stat_of(p)
        if st and st[2] == start:
            (zombies if st[1] in "ZX" else left).append((p, comm))
    _, status = os.waitpid(pid, 0)
    with open(report, "w") as f:
        for (p, start), comm in sorted(seen.items()):
            f.write(f"seen {p} {comm} {start}\n")
        for p, comm in left:
            f.write(f"left {p} {comm}\n")
        for p, comm in zombies:
            f.write(f"zombie {p} {comm}\n")
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
