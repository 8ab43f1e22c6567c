#!/usr/bin/env python3
"""The soak's awkward clients (docs/soak.md): idle connections opened and closed in waves, and a
trickle of the robustness suite's misbehaving clients, until SIGTERM or --hold seconds.

A wave opens --wave connections without sending a byte, holds them --wave-hold seconds and closes
them, every --wave-every seconds. Every --bad-every seconds one misbehaving client runs, the
kinds in turn:

* malformed: a request line that is not HTTP; the server must answer 4xx and close;
* slow: a whole request sent in four pieces 100 ms apart; the server must answer 200;
* vanish: half a request, then a close (FIN);
* reset: half a request, then a reset (SO_LINGER 0).

Each runs on a thread of its own, at most --max-bad at once, so a server that holds one does not
stall the trickle. On exit it writes {waves, bad: {kind: {started, as_expected, unexpected}}} as
JSON to --out. Standard library only, like idle_holder.py, whose connection code it shares.
"""
import argparse
import itertools
import signal
import socket
import struct
import sys
import threading
import time

from idle_holder import Target, open_connections, raise_fd_limit, write_report

REQUEST = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
ANSWER_TIMEOUT_S = 10.0


def read_reply(s):
    """Everything the server sends until it closes, or until it has sent one whole 200 head."""
    s.settimeout(ANSWER_TIMEOUT_S)
    data = b""
    while b"\r\n\r\n" not in data or not data.startswith(b"HTTP/1.1 200"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def malformed(s):
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    reply = read_reply(s)
    return reply.startswith(b"HTTP/1.1 4") and s.recv(4096) == b""


def slow(s):
    for i in range(0, len(REQUEST), len(REQUEST) // 4 + 1):
        s.sendall(REQUEST[i:i + len(REQUEST) // 4 + 1])
        time.sleep(0.1)
    return read_reply(s).startswith(b"HTTP/1.1 200")


def vanish(s):
    s.sendall(REQUEST[:len(REQUEST) // 2])
    return True


def reset(s):
    s.sendall(REQUEST[:len(REQUEST) // 2])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return True


KINDS = {"malformed": malformed, "slow": slow, "vanish": vanish, "reset": reset}


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.bad = {k: {"started": 0, "as_expected": 0, "unexpected": 0} for k in KINDS}
        self.waves = {"count": 0, "opened": 0, "short": 0}

    def bad_done(self, kind, ok):
        with self.lock:
            self.bad[kind]["as_expected" if ok else "unexpected"] += 1


def one_bad_client(target, kind, tally, slots):
    try:
        with socket.socket(target.family, socket.SOCK_STREAM) as s:
            s.settimeout(ANSWER_TIMEOUT_S)
            s.connect(target.address)
            ok = KINDS[kind](s)
    except OSError:
        ok = False
    tally.bad_done(kind, ok)
    slots.release()


def trickle(target, every_s, max_bad, tally, stop):
    slots = threading.BoundedSemaphore(max_bad)
    for kind in itertools.cycle(KINDS):
        if stop.wait(every_s):
            return
        if slots.acquire(blocking=False):
            with tally.lock:
                tally.bad[kind]["started"] += 1
            threading.Thread(target=one_bad_client, args=(target, kind, tally, slots), daemon=True).start()


def waves(target, size, every_s, hold_s, tally, stop):
    while not stop.wait(max(every_s - hold_s, 0.0)):
        conns, _ = open_connections(target, size, connect_timeout=5.0)
        tally.waves["count"] += 1
        tally.waves["opened"] += len(conns)
        tally.waves["short"] += size - len(conns)
        stop.wait(hold_s)
        for s in conns:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="a Unix stream socket instead of --host/--port")
    ap.add_argument("--wave", type=int, default=32, help="idle connections per wave")
    ap.add_argument("--wave-every", type=float, default=10.0)
    ap.add_argument("--wave-hold", type=float, default=4.0)
    ap.add_argument("--bad-every", type=float, default=0.5)
    ap.add_argument("--max-bad", type=int, default=4)
    ap.add_argument("--hold", type=float, default=86400.0, help="stop after this many seconds")
    ap.add_argument("--out", help="write the final JSON here (default: stdout)")
    args = ap.parse_args()
    if not (args.unix or 0 < args.port < 65536) or args.wave < 0 or args.max_bad < 1:
        ap.error("need a valid --port or --unix, --wave >= 0 and --max-bad >= 1")
    target = Target(socket.AF_UNIX, args.unix) if args.unix else Target(socket.AF_INET, (args.host, args.port))
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before the threads, which inherit it
    raise_fd_limit(args.wave + args.max_bad + 64)
    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=waves, args=(target, args.wave, args.wave_every, args.wave_hold, tally, stop)),
               threading.Thread(target=trickle, args=(target, args.bad_every, args.max_bad, tally, stop))]
    for t in threads:
        t.start()
    print("ready", flush=True)
    signal.sigtimedwait(stop_signals, args.hold)
    stop.set()
    for t in threads:
        t.join()
    write_report({"waves": tally.waves, "bad": tally.bad}, args.out)  # the threads are joined
    return 0


if __name__ == "__main__":
    sys.exit(main())
