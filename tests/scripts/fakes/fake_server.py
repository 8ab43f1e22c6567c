#!/usr/bin/env python3
"""A stand-in for a server-* binary, for testing run_all.sh without the real build.

--behaviour ok: listens, prints the readiness line, accepts and holds connections until
SIGTERM (exit 0); a connection that sends bytes gets one short HTTP answer and is closed, so the
idle holder's probe settles at once instead of waiting out its timeout. crash: exits 1 at
start. unsupported: exits 2 saying "unsupported" (like server-io-uring on a kernel that refuses
io_uring). die-mid-point: ready, then exits 3 as soon as it accepts a connection. forking: like
ok, plus a child process in its process group that sleeps (a prefork worker left behind), to
test that nothing outlives a run.
"""
import argparse
import os
import select
import signal
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--behaviour", default="ok")
ap.add_argument("--model", default="fake")
ap.add_argument("--marker", help="ignored: lets a test find its processes")
ap.add_argument("--port", type=int, default=0)
args, _ = ap.parse_known_args()

if args.behaviour == "crash":
    sys.stderr.write(f"server-{args.model}: simulated crash at start-up\n")
    sys.exit(1)
if args.behaviour == "unsupported":
    sys.stderr.write(f"server-{args.model}: io_uring unsupported by this kernel\n")
    sys.exit(2)

if args.behaviour == "forking" and os.fork() == 0:
    time.sleep(3600)
    os._exit(0)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", args.port))
listener.listen(4096)
print(f"listening port={listener.getsockname()[1]} pid={os.getpid()} model={args.model}", flush=True)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!"
conns = []
deadline = time.monotonic() + 3600
while time.monotonic() < deadline:
    if signal.sigpending() & {signal.SIGTERM, signal.SIGINT}:
        sys.exit(0)
    ready, _, _ = select.select([listener, *conns], [], [], 0.05)
    for sock in ready:
        if sock is listener:
            conns.append(listener.accept()[0])
            if args.behaviour == "die-mid-point":
                sys.stderr.write(f"server-{args.model}: simulated death mid-point\n")
                sys.exit(3)
            continue
        try:
            if sock.recv(4096):
                sock.sendall(ANSWER)
        except OSError:
            pass
        conns.remove(sock)
        sock.close()
sys.exit(0)
