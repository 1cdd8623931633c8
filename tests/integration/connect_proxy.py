#!/usr/bin/env python3
"""A stand-in for a corporate HTTP proxy, for 36-apiproxy.sh.

Usage: connect_proxy.py LOG

Listens on 127.0.0.1 on a free port and prints that port on stdout.  Each
CONNECT host:port is logged to LOG (one line: "CONNECT host:port") and
tunnelled; anything else is answered 405 and logged as "REFUSED <line>".
"""
import socket
import sys
import threading


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(c, log):
    f = c.makefile("rb")
    line = f.readline().decode("latin-1").strip()
    while f.readline() not in (b"\r\n", b"\n", b""):
        pass
    parts = line.split()
    with open(log, "a") as lf:
        if len(parts) == 3 and parts[0] == "CONNECT":
            lf.write("CONNECT %s\n" % parts[1])
        else:
            lf.write("REFUSED %s\n" % line)
    if len(parts) != 3 or parts[0] != "CONNECT":
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        c.close()
        return
    host, _, port = parts[1].rpartition(":")
    try:
        u = socket.create_connection((host.strip("[]"), int(port)))
    except OSError:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        c.close()
        return
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    t = threading.Thread(target=pipe, args=(u, c), daemon=True)
    t.start()
    pipe(c, u)
    t.join()
    c.close()
    u.close()


def main():
    log = sys.argv[1]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
    sys.stdout.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, log), daemon=True).start()


if __name__ == "__main__":
    main()
