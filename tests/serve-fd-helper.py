#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hand one accepted connection to a server as an inherited descriptor.

Plays the privilege broker's part for `vimg serve --fd N`: listen on a Unix
socket, accept exactly one client, start CMD with the connected socket
inherited, and record CMD's exit status.

usage: serve-fd-helper.py SOCKET STATUSFILE [--secret FILE] -- CMD...

In CMD, "{fd}" becomes the number of the connected socket and "{secretfd}"
the read end of a pipe holding the content of FILE (written, then closed,
so the server reads it once).  STATUSFILE receives "pid=P" when CMD starts
and "rc=N" when it ends.
"""
import os
import socket
import subprocess
import sys


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1:]
    path, status = opts[0], opts[1]
    secret = None
    if len(opts) > 3 and opts[2] == "--secret":
        with open(opts[3], "rb") as f:
            secret = f.read()

    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    conn, _ = lsock.accept()
    lsock.close()
    fds = [conn.fileno()]
    rfd = None
    if secret is not None:
        rfd, wfd = os.pipe()
        os.write(wfd, secret)
        os.close(wfd)
        fds.append(rfd)
    cmd = [a.replace("{fd}", str(conn.fileno()))
           .replace("{secretfd}", str(rfd)) for a in cmd]
    child = subprocess.Popen(cmd, pass_fds=fds)
    with open(status, "w") as f:
        f.write("pid=%d\n" % child.pid)
    conn.close()
    if rfd is not None:
        os.close(rfd)
    rc = child.wait()
    with open(status, "a") as f:
        f.write("rc=%d\n" % rc)


if __name__ == "__main__":
    main()
