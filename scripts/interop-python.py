#!/usr/bin/env python3
"""Interop with Python's `websockets` (a WebSocket implementation nobody here wrote), with and
without permessage-deflate, in both directions:

1. the `websockets` client against our echo server (mio and tokio adapters);
2. our `ws-client` (blocking and tokio adapters) against a `websockets` echo server.

usage: scripts/interop-python.py   (after `cargo build --release --bin echo-server --bin ws-client`
and `pip install websockets`). Prints `interop: N passed, N failed`; exits 1 on any failure.
"""
import os, socket, subprocess, sys, threading, time

from websockets.sync.client import connect
from websockets.sync.server import serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
passed = failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAILED: {name} {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def websockets_client_against_our_server(adapter):
    port = free_port()
    server = subprocess.Popen([os.path.join(BIN, "echo-server"), "--addr", f"127.0.0.1:{port}",
                               "--adapter", adapter], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for compression in ["deflate", None]:
            with connect(f"ws://127.0.0.1:{port}/", compression=compression, max_size=2**24) as ws:
                agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
                check(f"{adapter}: client compression={compression} negotiated",
                      ("permessage-deflate" in agreed) == (compression is not None), agreed)
                for message in ["hello", "κόσμε " * 1000, b"\x00\x01\x02" * 5000, "x" * (1 << 20), ""]:
                    ws.send(message)
                    check(f"{adapter}: echo {type(message).__name__} of {len(message)} (compression={compression})",
                          ws.recv(timeout=10) == message)
                ws.ping(b"are you there")
    finally:
        server.terminate()
        server.wait(timeout=10)


def our_client_against_websockets_server(flags):
    def echo(ws):
        for message in ws:
            ws.send(message)

    for compression in ["deflate", None]:
        with serve(echo, "127.0.0.1", 0, compression=compression) as server:
            port = server.socket.getsockname()[1]
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            big = "compress me " * 10000
            args = [os.path.join(BIN, "ws-client"), f"ws://127.0.0.1:{port}/", "--deflate", "--headers",
                    "--send", "hello", "--send", "κόσμε", "--send", big] + flags
            result = subprocess.run(args, capture_output=True, text=True, timeout=30)
            check(f"ws-client against websockets (compression={compression}, {flags}) exits 0",
                  result.returncode == 0, result.stderr)
            lines = result.stdout.splitlines()
            replies = [l for l in lines if not l.startswith("< ")]
            check(f"ws-client replies (compression={compression}, {flags})", replies == ["hello", "κόσμε", big],
                  repr([r[:40] for r in replies]))
            agreed = " ".join(l for l in lines if l.lower().startswith("< sec-websocket-extensions"))
            check(f"ws-client negotiated (compression={compression}, {flags})",
                  ("permessage-deflate" in agreed) == (compression is not None), agreed)
            server.shutdown()


def main():
    for adapter in ["mio", "tokio"]:
        websockets_client_against_our_server(adapter)
    for flags in [[], ["--tokio"]]:
        our_client_against_websockets_server(flags)
    print(f"interop: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
