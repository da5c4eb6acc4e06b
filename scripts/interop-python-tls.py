#!/usr/bin/env python3
"""Interop over TLS with Python's `websockets` and `ssl` (implementations nobody here wrote):

1. the `websockets` client, with an ssl context that trusts only a CA made for this run,
   against our echo server over wss:// (mio and tokio adapters), permessage-deflate on and off;
2. our `ws-client` over wss:// (blocking and tokio adapters) against a `websockets` echo server
   with that CA's certificate.

The CA and the certificate for localhost / 127.0.0.1 are made here with `cryptography` each
run (no key is checked in).

usage: scripts/interop-python-tls.py   (after `cargo build --release --bin echo-server --bin
ws-client` and `pip install websockets cryptography`; WSPROTO_BIN=target/debug for a debug
build). Prints `interop-tls: N passed, N failed`; exits 1 on any failure.
"""
import datetime, importlib.util, ipaddress, os, socket, ssl, subprocess, sys, tempfile, threading, time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect
from websockets.sync.server import serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("WSPROTO_BIN", os.path.join("target", "release")))


def load_script(name):
    """Another script of this folder as a module (the file names are not identifiers)."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(ROOT, "scripts", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The plain interop script's tally and port helper: one `check` for both.
plain = load_script("interop-python.py")
check, free_port = plain.check, plain.free_port


def wait_for_port(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def make_pki(directory):
    """A CA and a leaf it signed for localhost and 127.0.0.1; answers the three PEM paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def builder(subject, issuer, public_key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(validity[0])
                .not_valid_after(validity[1]))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsproto interop test CA")])
    ca = (builder(ca_name, ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: os.path.join(directory, f"{name}.pem") for name in ["ca", "cert", "key"]}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def websockets_client_against_our_server(pki, adapter):
    port = free_port()
    server = subprocess.Popen([os.path.join(BIN, "echo-server"), "--addr", f"127.0.0.1:{port}", "--adapter", adapter,
                               "--tls-cert", pki["cert"], "--tls-key", pki["key"]], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        context = ssl.create_default_context(cafile=pki["ca"])
        context.set_alpn_protocols(["http/1.1"])
        for host in ["localhost", "127.0.0.1"]:
            for compression in ["deflate", None]:
                with connect(f"wss://{host}:{port}/", ssl=context, compression=compression, max_size=2**24) as ws:
                    check(f"{adapter}: ALPN http/1.1 ({host})", ws.socket.selected_alpn_protocol() == "http/1.1",
                          ws.socket.selected_alpn_protocol())
                    check(f"{adapter}: TLS 1.3 ({host})", ws.socket.version() == "TLSv1.3", ws.socket.version())
                    agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
                    check(f"{adapter}: client compression={compression} negotiated over TLS",
                          ("permessage-deflate" in agreed) == (compression is not None), agreed)
                    for message in ["hello", "κόσμε " * 1000, b"\x00\x01\x02" * 5000, "x" * (1 << 20), ""]:
                        ws.send(message)
                        check(f"{adapter}: wss echo {type(message).__name__} of {len(message)} ({host}, {compression})",
                              ws.recv(timeout=10) == message)
                    burst = [f"small {i}" for i in range(100)]
                    for message in burst:
                        ws.send(message)
                    check(f"{adapter}: wss burst of 100 ({host}, {compression})",
                          [ws.recv(timeout=10) for _ in burst] == burst)
                    ws.ping(b"are you there")
        # A client that does not trust the test CA refuses the server's certificate.
        try:
            with connect(f"wss://localhost:{port}/", ssl=ssl.create_default_context(), open_timeout=5):
                check(f"{adapter}: an untrusted certificate is refused", False)
        except ssl.SSLCertVerificationError:
            check(f"{adapter}: an untrusted certificate is refused", True)
        # TLS 1.2 works too (rustls offers both).
        context12 = ssl.create_default_context(cafile=pki["ca"])
        context12.maximum_version = ssl.TLSVersion.TLSv1_2
        with connect(f"wss://localhost:{port}/", ssl=context12) as ws:
            ws.send("over TLS 1.2")
            check(f"{adapter}: TLS 1.2 echo", ws.recv(timeout=10) == "over TLS 1.2" and ws.socket.version() == "TLSv1.2",
                  ws.socket.version())
        check(f"{adapter}: the server is still running", server.poll() is None)
    finally:
        server.terminate()
        server.wait(timeout=10)


def our_client_against_websockets_server(pki):
    def echo(ws):
        for message in ws:
            ws.send(message)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])
    context.set_alpn_protocols(["http/1.1"])
    seen_alpn = []

    def process_request(connection, request):
        seen_alpn.append(connection.socket.selected_alpn_protocol())

    for compression in ["deflate", None]:
        with serve(echo, "127.0.0.1", 0, ssl=context, compression=compression,
                   process_request=process_request) as server:
            port = server.socket.getsockname()[1]
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            big = "compress me " * 10000
            for host, adapter in [(h, a) for h in ["localhost", "127.0.0.1"] for a in [[], ["--tokio"]]]:
                name = f"ws-client{' --tokio' if adapter else ''}"
                args = [os.path.join(BIN, "ws-client"), f"wss://{host}:{port}/", "--ca", pki["ca"], "--deflate",
                        "--headers", "--send", "hello", "--send", "κόσμε", "--send", big, *adapter]
                result = subprocess.run(args, capture_output=True, text=True, timeout=30)
                check(f"{name} wss:// against websockets ({host}, compression={compression}) exits 0",
                      result.returncode == 0, result.stderr)
                lines = result.stdout.splitlines()
                replies = [l for l in lines if not l.startswith("< ")]
                check(f"{name} wss:// replies ({host}, compression={compression})",
                      replies == ["hello", "κόσμε", big], repr([r[:40] for r in replies]))
                agreed = " ".join(l for l in lines if l.lower().startswith("< sec-websocket-extensions"))
                check(f"{name} wss:// negotiated ({host}, compression={compression})",
                      ("permessage-deflate" in agreed) == (compression is not None), agreed)
            # Without --ca the Mozilla roots do not know the test CA: a clear error naming the host.
            for adapter in [[], ["--tokio"]]:
                result = subprocess.run([os.path.join(BIN, "ws-client"), f"wss://localhost:{port}/", "--send", "x",
                                         *adapter], capture_output=True, text=True, timeout=30)
                check(f"ws-client{' --tokio' if adapter else ''} refuses an untrusted certificate, naming the host",
                      result.returncode != 0 and "localhost" in result.stderr and "certificate" in result.stderr,
                      result.stderr)
            server.shutdown()
    check("ws-client asked for ALPN http/1.1", seen_alpn and all(p == "http/1.1" for p in seen_alpn), seen_alpn)


def main():
    with tempfile.TemporaryDirectory() as directory:
        pki = make_pki(directory)
        for adapter in ["mio", "tokio"]:
            websockets_client_against_our_server(pki, adapter)
        our_client_against_websockets_server(pki)
    print(f"interop-tls: {plain.passed} passed, {plain.failed} failed")
    return 1 if plain.failed else 0


if __name__ == "__main__":
    sys.exit(main())
