#!/usr/bin/env python3
"""Test "internet" for 30-egress.sh, run inside the test's own network
namespace: an HTTP server answering its own address and port on several
addresses, a TCP echo-less sink, and a DNS server that logs every question it
gets and answers NXDOMAIN (so the test can see which lookups left the host).
Usage: egress_servers.py DNS_ADDR DNS_LOG HTTP_ADDR:PORT..."""
import errno
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        host, port = self.server.server_address[:2]
        body = ("hello from %s:%d\n" % (host, port)).encode()
        if self.path.startswith("/big/"):
            n = int(self.path[5:])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            while n > 0:
                k = min(n, len(chunk))
                self.wfile.write(chunk[:k])
                n -= k
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class H6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def http(addr):
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    cls = H6 if ":" in host else ThreadingHTTPServer
    # A just-added address can be briefly unusable on a loaded machine
    # (EADDRNOTAVAIL seen for the IPv6 one): retry for a few seconds.
    for attempt in range(50):
        try:
            s = cls((host, int(port)), H)
            break
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL or attempt == 49:
                raise
            time.sleep(0.1)
    threading.Thread(target=s.serve_forever, daemon=True).start()


def dns(addr, log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        m, peer = s.recvfrom(4096)
        if len(m) < 12:
            continue
        i, labels = 12, []
        while i < len(m) and m[i]:
            labels.append(m[i + 1:i + 1 + m[i]].decode("ascii", "replace"))
            i += 1 + m[i]
        with open(log, "a") as f:
            f.write(".".join(labels) + "\n")
        # NXDOMAIN, question echoed.
        r = m[:2] + bytes([0x81, 0x83]) + m[4:6] + b"\0\0\0\0\0\0" + m[12:i + 5]
        s.sendto(r, peer)


def watch_parent():
    import os
    import time
    ppid = os.getppid()
    while os.getppid() == ppid:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=watch_parent, daemon=True).start()
for a in sys.argv[3:]:
    http(a)
dns(sys.argv[1], sys.argv[2])
