#!/usr/bin/env python3
"""A server that none of the bundled server files describes: Python's threaded HTTP/1.1 server
answering every GET with the 13-byte body. docs/contract.md#server-files adds it to a run, and
tests/scripts/test_server_files.py does exactly what that section says.

usage: hello_server.py --bind ADDR --port N"""
import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"Hello, World!"


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive
    disable_nagle_algorithm = True  # the head and the body are two writes

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):   # no access log
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    ThreadingHTTPServer.request_queue_size = 1024   # the listen backlog (Python's default is 5)
    server = ThreadingHTTPServer((args.bind, args.port), Hello)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {args.bind}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
