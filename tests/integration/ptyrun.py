#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal, its controlling terminal, and
copies every byte written to that terminal into a file, unchanged.

    ptyrun.py OUT ROWS COLS -- ARGV...

Nothing is typed: the command's stdin is the terminal, idle.  The exit
status is the command's (128+N when killed by signal N).
"""
import fcntl
import os
import struct
import sys
import termios


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        sys.exit("usage: ptyrun.py OUT ROWS COLS -- ARGV...")
    out, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    argv = sys.argv[5:]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ,
                struct.pack("HHHH", rows, cols, 0, 0))
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
    os.close(slave)
    with open(out, "wb") as f:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last holder of the slave closed it
                break
            if not data:
                break
            f.write(data)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
