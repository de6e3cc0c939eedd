#!/usr/bin/env python3
"""mfrec_serve opens the one HTTP port it was asked for, and nothing else.

It once initialised MPI, which made the process listen on an extra TCP port on every interface
and start an orted child. Checked from /proc (as `ss -ltnp` would, without needing ss): the
server's socket file descriptors, which of them listen (/proc/<pid>/net/tcp and tcp6), and its
child processes. Environment: MFREC_BIN (the build directory)."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from checks import BIN, check, failures, scratch
from checks import run as run_in

WORK = scratch("py_serve_socket")


def run(*args):
    run_in(WORK, *args)


def socket_inodes(pid):
    """The inodes of the sockets among the process's open file descriptors."""
    inodes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(target[len("socket:["):-1])
    return inodes


def tcp_table(pid):
    """(local address hex, port, state hex, inode) for every TCP socket in the process's namespace."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            addr, port = f[1].split(":")
            rows.append((addr, int(port, 16), f[3], f[9]))
    return rows


def children(pid):
    """The processes whose parent is pid."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        # The command name is in parentheses and may hold blanks: the parent id follows the last ')'.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            kids.append((int(entry), stat[stat.index("(") + 1:stat.rindex(")")]))
    return kids


def main():
    run("mfrec_gen", "--users", "300", "--events", "4000", "--output", "retail.h5", "-q")
    run("mfrec_prep", "--input", "retail.h5", "--output", "prepared.h5", "-q")
    run("mfrec_dist", "--data", "prepared.h5", "--output", "model.h5", "--factors", "4", "--iterations", "2",
        "--threads", "1", "--log-level", "warn")

    port_file = os.path.join(WORK, "port")
    env = dict(os.environ)
    # Were MPI initialised, these would let it start as root; they must make no difference.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    log = open(os.path.join(WORK, "serve.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "mfrec_serve"), "--model", "model.h5", "--port", "0",
                             "--port-file", port_file, "--threads", "2"], cwd=WORK, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"mfrec_serve did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.05)
        port = int(open(port_file).read())
        time.sleep(0.5)  # anything started alongside the listener has had time to appear

        inodes = socket_inodes(proc.pid)
        table = tcp_table(proc.pid)
        mine = [row for row in table if row[3] in inodes]
        listening = [row for row in mine if row[2] == "0A"]
        check(len(inodes) == 1, f"the process holds exactly one socket (holds {len(inodes)})")
        check(len(listening) == 1, f"it listens on exactly one TCP socket: {listening}")
        check(len(listening) == 1 and listening[0][1] == port and listening[0][0] == "0100007F",
              f"that socket is 127.0.0.1:{port}, the port it wrote to --port-file")
        if shutil.which("ss"):
            ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
            owned = [line for line in ss if f"pid={proc.pid}," in line]
            check(len(owned) == 1 and f":{port} " in owned[0] + " ", f"ss -ltnp agrees: {owned}")
        kids = children(proc.pid)
        check(kids == [], f"it has no child process (no orted): {kids}")

        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        check(r.status == 200 and body["status"] == "ok", f"and it serves on it: {r.status} {body}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
    check(rc == 0, f"SIGTERM: exit 0 (got {rc})")

    if failures:
        print(f"{len(failures)} failed; server log: {log.name}")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("all passed")


if __name__ == "__main__":
    main()
