"""Tiny TCP/UDP peers the network tests run inside their namespaces (standard library only).

  echo-server ADDR             TCP echo on a free port; prints "ready port=N", serves until SIGTERM
  pingpong ADDR PORT COUNT     COUNT one-byte round trips; prints JSON {count, min_us, p50_us, max_us}
  bulk ADDR PORT BYTES         sends BYTES, reads the echo back, checks it; prints JSON {bytes, seconds}
  udp-sink ADDR COUNT          prints "ready port=N", receives numbered datagrams for up to 10 s
                               (or until COUNT); prints JSON {received, out_of_order}
  udp-send ADDR PORT COUNT     sends COUNT numbered datagrams, 100 us apart
"""

import json
import random
import signal
import socket
import struct
import sys
import threading
import time


def echo_server(addr: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server((addr, 0))
    print(f"ready port={listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(1 << 16):
            conn.sendall(data)


def pingpong(addr: str, port: int, count: int) -> None:
    conn = socket.create_connection((addr, port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.sendall(b"x")
        if conn.recv(1) != b"x":
            sys.exit("pingpong: wrong echo")
        times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    print(json.dumps({"count": count, "min_us": times[0], "p50_us": times[count // 2], "max_us": times[-1]}))


def bulk(addr: str, port: int, size: int) -> None:
    payload = random.Random(1).randbytes(size)
    conn = socket.create_connection((addr, port), timeout=60)
    received = bytearray()

    def read_back() -> None:
        while len(received) < size and (chunk := conn.recv(1 << 16)):
            received.extend(chunk)

    start = time.perf_counter()
    reader = threading.Thread(target=read_back)
    reader.start()
    conn.sendall(payload)
    reader.join()
    if bytes(received) != payload:
        sys.exit(f"bulk: echo differs ({len(received)} of {size} bytes back)")
    print(json.dumps({"bytes": size, "seconds": time.perf_counter() - start}))


def udp_sink(addr: str, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 0))
    sock.settimeout(2)
    print(f"ready port={sock.getsockname()[1]}", flush=True)
    received, out_of_order, last = 0, 0, -1
    deadline = time.monotonic() + 10
    while received < count and time.monotonic() < deadline:
        try:
            (number,) = struct.unpack("!I", sock.recv(64)[:4])
        except socket.timeout:
            break
        received += 1
        out_of_order += number < last
        last = max(last, number)
    print(json.dumps({"received": received, "out_of_order": out_of_order}), flush=True)


def udp_send(addr: str, port: int, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for number in range(count):
        sock.sendto(struct.pack("!I", number), (addr, port))
        time.sleep(100e-6)


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "echo-server":
        echo_server(args[0])
    elif command == "pingpong":
        pingpong(args[0], int(args[1]), int(args[2]))
    elif command == "bulk":
        bulk(args[0], int(args[1]), int(args[2]))
    elif command == "udp-sink":
        udp_sink(args[0], int(args[1]))
    elif command == "udp-send":
        udp_send(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
