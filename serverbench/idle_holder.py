#!/usr/bin/env python3
"""Hold N idle TCP connections open against a server (the `idle-conns` scenario).

Opens --count connections to --host:--port (or the Unix socket --unix) without sending a byte, prints one
line `ready requested=N established=E refused=R` on stdout when done, then
holds them until SIGTERM/SIGINT (or --hold seconds). On exit it counts the
connections the server has closed meanwhile (a peek that returns EOF or a
reset) and writes {requested, established, closed_by_server, ...} as JSON to
--out. Standard library only, so any python3 can run it.

Connects are non-blocking and bounded by --connect-timeout: a server that
stops accepting (full backlog, fork storm) shows up as a shortfall, not a hang.

A connection is established by the kernel before the server accepts it, so before
saying ready it waits (at most --settle-timeout) for an answer to one request on a
fresh connection: the accept queue is FIFO, so an answer (or a close) means every
held connection has been accepted, and the measurement that follows does not start
while a fork-per-connection server is still forking for the idle ones. A server
whose workers are all held (a blocking pool) never answers: that is `settled=0`.
"""
import argparse
import collections
import errno
import json
import resource
import selectors
import signal
import socket
import sys
import time


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


Target = collections.namedtuple("Target", "family address")


def open_connections(target, count, connect_timeout):
    """Returns (established sockets, errno name -> count)."""
    errors = {}
    pending = {}
    established = []
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + connect_timeout
    # Start connects in batches so the listen backlog is not flooded all at once.
    to_start = count
    while (to_start > 0 or pending) and time.monotonic() < deadline:
        while to_start > 0 and len(pending) < 256:
            to_start -= 1
            try:
                s = socket.socket(target.family, socket.SOCK_STREAM)
            except OSError as e:
                name = errno.errorcode.get(e.errno, str(e.errno))
                errors[name] = errors.get(name, 0) + 1
                continue
            s.setblocking(False)
            rc = s.connect_ex(target.address)
            if rc in (0, errno.EINPROGRESS):
                pending[s.fileno()] = s
                sel.register(s, selectors.EVENT_WRITE)
            else:
                name = errno.errorcode.get(rc, str(rc))
                errors[name] = errors.get(name, 0) + 1
                s.close()
        for key, _ in sel.select(timeout=0.05):
            s = pending.pop(key.fd)
            sel.unregister(s)
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc == 0:
                established.append(s)
            else:
                name = errno.errorcode.get(rc, str(rc))
                errors[name] = errors.get(name, 0) + 1
                s.close()
    unfinished = len(pending) + to_start
    if unfinished:
        errors["ETIMEDOUT"] = errors.get("ETIMEDOUT", 0) + unfinished
    for s in pending.values():
        sel.unregister(s)
        s.close()
    sel.close()
    return established, errors


def settle(target, timeout):
    """True once the server answers (or closes) a request sent behind the held connections."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(target.family, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            probe.connect(target.address)
            probe.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            probe.settimeout(max(deadline - time.monotonic(), 0.001))
            probe.recv(1)
        return True
    except socket.timeout:
        return False
    except OSError:
        return True  # refused or reset: the server got to it


def count_closed_by_server(conns):
    """A connection the server closed reads EOF or a reset; a live idle one would block."""
    closed = 0
    for s in conns:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def write_report(result, out):
    """The final JSON line, to the file `out` or, without one, to stdout."""
    text = json.dumps(result)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    else:
        print(text, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="a Unix stream socket instead of --host/--port")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to open them all")
    ap.add_argument("--settle-timeout", type=float, default=5.0,
                    help="seconds to wait for the server to accept them all (0: do not wait)")
    ap.add_argument("--hold", type=float, default=3600.0, help="give up holding after this many seconds")
    ap.add_argument("--out", help="write the final JSON here (default: stdout)")
    args = ap.parse_args()
    if args.count < 0 or not (args.unix or 0 < args.port < 65536):
        ap.error("need --count >= 0 and a valid --port or --unix")
    target = Target(socket.AF_UNIX, args.unix) if args.unix else Target(socket.AF_INET, (args.host, args.port))

    # Block the stop signals from the start and wait for them synchronously: a stop
    # that arrives while connecting is kept pending, so the report is still written.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    fd_limit = raise_fd_limit(args.count + 64)
    started = time.monotonic()
    conns, errors = open_connections(target, args.count, args.connect_timeout)
    connect_s = time.monotonic() - started
    settled = settle(target, args.settle_timeout) if args.settle_timeout > 0 else False
    settle_s = time.monotonic() - started - connect_s
    print(f"ready requested={args.count} established={len(conns)} "
          f"refused={args.count - len(conns)} connect_s={connect_s:.3f} "
          f"settled={int(settled)} settle_s={settle_s:.3f}", flush=True)

    signal.sigtimedwait(stop_signals, max(args.hold, 0.0))
    result = {
        "requested": args.count,
        "established": len(conns),
        "closed_by_server": count_closed_by_server(conns),
        "connect_s": round(connect_s, 3),
        "settled": settled,
        "settle_s": round(settle_s, 3),
        "connect_errors": errors,
        "fd_limit": fd_limit,
    }
    for s in conns:
        s.close()
    write_report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
