"""Captures real clients' request frames as fuzz seeds for the `broker_request` target.

Usage: capture_requests.py <listen port> <broker host:port> <corpus dir>

A TCP proxy: start rill-broker with `--advertised-port <listen port>` so that clients come
back through the proxy after Metadata, point clients at 127.0.0.1:<listen port>, and stop
the proxy with Ctrl-C. The first frame of each (API key, version) seen is written to
<corpus dir>/client_<key>_v<version> (without the size prefix, as the target reads it).
"""

import os
import socket
import struct
import sys
import threading

seen = set()
lock = threading.Lock()


def pump(src, dst, corpus=None):
    """Copies src to dst until either closes; with a corpus, saves new request frames."""
    buf = b""
    while True:
        try:
            data = src.recv(65536)
            if data:
                dst.sendall(data)
        except OSError:
            data = b""
        if not data:
            break
        if corpus is None:
            continue
        buf += data
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if len(buf) < 4 + size:
                break
            frame, buf = buf[4 : 4 + size], buf[4 + size :]
            key, version = struct.unpack(">hh", frame[:4])
            with lock:
                if (key, version) not in seen:
                    seen.add((key, version))
                    with open(os.path.join(corpus, f"client_{key}_v{version}"), "wb") as f:
                        f.write(frame)
    dst.close()


def main():
    port, target, corpus = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    host, tport = target.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, int(tport)))
        threading.Thread(target=pump, args=(client, upstream, corpus), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()
