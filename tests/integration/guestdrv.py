#!/usr/bin/env python3
"""Boots ccvm-init in QEMU and speaks the control protocol (docs/protocol.md)
as a stand-in for the host side, for developing and testing the guest alone.

    guestdrv.py --kernel K --initrd I --root R --cwd DIR [options] -- ARGV...

The program's stdout/stderr are written to ours; the exit status is the
program's (128+N for signal N).  --on TEXT:ACTION fires ACTION once the
program's output contains TEXT; actions: stdin:HEX, resize:ROWSxCOLS,
signal:N, eof.  With --cont-on-stop a STOPPED frame is answered with CONT.
Events go to stderr as lines starting with '# '.
"""
import argparse
import os
import select
import socket
import struct
import subprocess
import sys
import time

T = dict(HELLO=1, SETUP=2, ARG=3, ENV=4, SECRET=5, FILE=6, START=7, STDIN=8,
         STDOUT=9, STDERR=10, RESIZE=11, SIGNAL=12, STOPPED=13, CONT=14,
         EXIT=15, ERROR=16, LOG=17)
NAME = {v: k for k, v in T.items()}


def frame(kind, payload=b""):
    return struct.pack("<BBHI", T[kind], 0, 0, len(payload)) + payload


T0 = time.monotonic()


def note(msg):
    print("# %6.2f %s" % (time.monotonic() - T0, msg), file=sys.stderr,
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--ro", action="store_true", help="SETUP writable=0")
    ap.add_argument("--fsdev-ro", action="store_true",
                    help="also make QEMU's share read-only")
    ap.add_argument("--pty", action="store_true")
    ap.add_argument("--size", default="24x80")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--file", action="append", default=[],
                    help="PATH=CONTENT under home, mode 0600")
    ap.add_argument("--stdin", help="bytes to send, then EOF")
    ap.add_argument("--stdin-file", help="send this file, then EOF")
    ap.add_argument("--on", action="append", default=[])
    ap.add_argument("--cont-on-stop", action="store_true")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--console", help="write the guest console here")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()

    host, guest = socket.socketpair()
    rows, cols = (int(x) for x in a.size.split("x"))
    console = a.console or os.devnull
    qemu = [
        "qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-m", "1024",
        "-nodefaults", "-no-reboot", "-display", "none",
        "-serial", "file:" + console,
        "-kernel", a.kernel, "-initrd", a.initrd,
        "-append", "console=ttyS0 panic=-1 quiet loglevel=0 "
        "cryptomgr.notests" + (" ccvm.debug" if a.debug else ""),
        "-drive", "if=none,id=root,file=%s,format=raw,readonly=on" % a.root,
        "-device", "virtio-blk-pci,drive=root",
        "-device", "virtio-serial-pci",
        "-chardev", "socket,id=ctl,fd=%d" % guest.fileno(),
        "-device", "virtserialport,chardev=ctl,name=ccvm.ctl",
        "-fsdev", "local,id=cwd,path=%s,security_model=none%s"
        % (a.cwd, ",readonly=on" if a.fsdev_ro else ""),
        "-device", "virtio-9p-pci,fsdev=cwd,mount_tag=ccvm.cwd",
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(qemu, pass_fds=[guest.fileno()])
    guest.close()
    pw = __import__("pwd").getpwuid(os.getuid())
    setup = {
        "mode": "shell", "cwd": os.path.abspath(a.cwd),
        "writable": "0" if a.ro else "1", "user": pw.pw_name,
        "uid": str(os.getuid()), "gid": str(os.getgid()),
        "home": "/home/" + pw.pw_name if pw.pw_uid else "/root",
        "pty": "1" if a.pty else "0", "rows": str(rows), "cols": str(cols),
        "term": "xterm-256color", "debug": "1" if a.debug else "0",
    }
    out = [frame("HELLO", struct.pack("<I", 1) + b"guestdrv"),
           frame("SETUP", b"".join(b"%s=%s\0" % (k.encode(), v.encode())
                                   for k, v in setup.items()))]
    out += [frame("ARG", x.encode()) for x in a.argv]
    out += [frame("ENV", x.encode()) for x in a.env]
    out += [frame("SECRET", x.encode()) for x in a.secret]
    for f in a.file:
        path, content = f.split("=", 1)
        out.append(frame("FILE", struct.pack("<I", 0o600) + path.encode()
                         + b"\0" + content.encode()))
    out.append(frame("START"))
    if a.stdin_file:
        with open(a.stdin_file, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                out.append(frame("STDIN", chunk))
        out.append(frame("STDIN"))
    elif a.stdin is not None:
        if a.stdin:
            out.append(frame("STDIN", a.stdin.encode()))
        out.append(frame("STDIN"))
    pending = []
    for spec in a.on:
        text, kind, arg = (spec.split(":", 2) + [""])[:3]
        pending.append((text.encode(), kind, arg))

    buf = b""
    seen = b""
    status = None
    started = False
    deadline = t0 + a.timeout
    sendq = b""
    host.setblocking(False)
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            note("timeout")
            status = 124
            break
        w = [host] if sendq else []
        r, wr, _ = select.select([host], w, [], min(left, 1.0))
        if host in wr:
            n = host.send(sendq)
            sendq = sendq[n:]
        if not r:
            if proc.poll() is not None:
                note("qemu exited %d without EXIT" % proc.returncode)
                status = 125
            continue
        data = host.recv(65536)
        if not data:
            note("port closed without EXIT")
            status = 125
            break
        buf += data
        while len(buf) >= 8:
            typ, flags, chan, ln = struct.unpack("<BBHI", buf[:8])
            if len(buf) < 8 + ln:
                break
            p, buf = buf[8:8 + ln], buf[8 + ln:]
            name = NAME.get(typ, str(typ))
            if name == "HELLO" and not started:
                note("HELLO %.2f s: %s" % (time.monotonic() - t0,
                                          p[4:].decode(errors="replace")))
                sendq += b"".join(out)
                started = True
            elif name in ("STDOUT", "STDERR"):
                if not p:
                    note(name + " EOF")
                    continue
                (sys.stdout if name == "STDOUT" else sys.stderr).buffer.write(p)
                (sys.stdout if name == "STDOUT" else sys.stderr).flush()
                seen += p
                for ev in list(pending):
                    if ev[0] in seen:
                        pending.remove(ev)
                        note("on %r: %s %s" % (ev[0], ev[1], ev[2]))
                        if ev[1] == "stdin":
                            sendq += frame("STDIN", bytes.fromhex(ev[2]))
                        elif ev[1] == "resize":
                            rr, cc = (int(x) for x in ev[2].split("x"))
                            sendq += frame("RESIZE", struct.pack("<HH", rr, cc))
                        elif ev[1] == "signal":
                            sendq += frame("SIGNAL", struct.pack("<I", int(ev[2])))
                        elif ev[1] == "eof":
                            sendq += frame("STDIN")
            elif name == "STOPPED":
                note("STOPPED")
                if a.cont_on_stop:
                    sendq += frame("CONT")
            elif name == "EXIT":
                kind, code = struct.unpack("<II", p)
                note("EXIT kind %d code %d at %.2f s" % (kind, code,
                                                         time.monotonic() - t0))
                status = code if kind == 0 else 128 + code
                host.close()  # tells the guest we have everything
            elif name in ("ERROR", "LOG"):
                note("%s %s" % (name, p.decode(errors="replace")))
                if name == "ERROR":
                    status = 125
                    host.close()
            else:
                note("unexpected frame " + name)
    try:
        proc.wait(timeout=15)
        note("qemu gone at %.2f s" % (time.monotonic() - t0))
    except subprocess.TimeoutExpired:
        note("qemu did not power off; killing it")
        proc.kill()
        proc.wait()
    sys.exit(status)


if __name__ == "__main__":
    main()
