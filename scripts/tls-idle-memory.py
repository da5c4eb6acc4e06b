#!/usr/bin/env python3
"""Server memory per idle connection, plain and TLS: the echo server (mio adapter) in a fresh
process per row, N connections opened (opening handshake, then one 20 B text echoed), then
idle; the figure is the server's RSS growth divided by N (RSS counts touched pages, not what
was allocated; socket buffers are kernel memory and not in it).

usage: scripts/tls-idle-memory.py [N ...]   (after `cargo build --release --bin echo-server`
and `pip install cryptography`; default N: 1000 10000). Prints a Markdown table.
"""
import base64, importlib.util, os, socket, ssl, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("WSPROTO_BIN", os.path.join("target", "release")))
spec = importlib.util.spec_from_file_location("interop_tls", os.path.join(ROOT, "scripts", "interop-python-tls.py"))
interop_tls = importlib.util.module_from_spec(spec)
spec.loader.exec_module(interop_tls)  # make_pki, free_port, wait_for_port


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_connection(port, context):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if context:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head[:40])
    payload = b"x" * 20
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    echoed = head.split(b"\r\n\r\n", 1)[1]
    while len(echoed) < 2 + len(payload):
        echoed += sock.recv(4096)
    if echoed[2:] != payload:
        raise RuntimeError("bad echo")
    return sock


def measure(n, pki, tls):
    port = interop_tls.free_port()
    args = [os.path.join(BIN, "echo-server"), "--addr", f"127.0.0.1:{port}"]
    if tls:
        args += ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]
    server = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=pki["ca"]) if tls else None
    try:
        interop_tls.wait_for_port(port)
        warm = [open_connection(port, context) for _ in range(8)]
        for sock in warm:
            sock.close()
        time.sleep(0.3)
        before = rss(server.pid)
        conns = [open_connection(port, context) for _ in range(n)]
        time.sleep(0.5)
        after = rss(server.pid)
        for sock in conns:
            sock.close()
        return (after - before) / n
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    counts = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    with tempfile.TemporaryDirectory() as directory:
        pki = interop_tls.make_pki(directory)
        print("| connections | plain (B/conn) | TLS (B/conn) | TLS − plain |")
        print("|---|---|---|---|")
        for n in counts:
            plain, tls = measure(n, pki, False), measure(n, pki, True)
            print(f"| {n} | {plain:.0f} | {tls:.0f} | {tls - plain:.0f} |", flush=True)


if __name__ == "__main__":
    main()
