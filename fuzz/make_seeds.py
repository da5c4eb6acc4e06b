#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/.

Seeds are named with readable names that start with a letter from g to z: the root .gitignore
ignores corpus files starting with a hex digit (libFuzzer names its finds by SHA-1).
Input layouts are documented in harness/src/lib.rs (RawInput::parse, handshake).
Run from anywhere: python3 fuzz/make_seeds.py
"""
import base64
import hashlib
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

VALID_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Origin: http://allowed.example\r\nSec-WebSocket-Protocol: chat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def client_key():
    """The key of harness::client_key(): xorshift32 from RNG_SEED, top byte of each step."""
    state = 0x12345678
    out = bytearray()
    for _ in range(16):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out.append(state >> 24)
    return base64.b64encode(bytes(out))


def accept(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def valid_response(extra=b""):
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept(client_key()) + b"\r\n" + extra + b"\r\n"
    )


def frame(opcode, payload=b"", fin=True, mask=None):
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n <= 125:
        head.append(bit | n)
    elif n <= 0xFFFF:
        head.append(bit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(bit | 127)
        head += struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def c(opcode, payload=b"", fin=True):
    """A client frame (masked)."""
    return frame(opcode, payload, fin, KEY)


def s(opcode, payload=b"", fin=True):
    """A server frame (unmasked)."""
    return frame(opcode, payload, fin)


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def deflated(data):
    """A permessage-deflate payload (RFC 7692 §7.2.1): raw deflate, sync flush, trailer removed."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def rsv1(frame_bytes):
    return bytes([frame_bytes[0] | 0x40]) + frame_bytes[1:]


def raw(data, flags=0, mode=1, points=()):
    """A connection-target input: [flags][mode][n][points][data]."""
    table = b"".join(struct.pack(">HB", pos, op) for pos, op in points)
    return bytes([flags, mode, len(points)]) + table + data


def autobahn_shapes(f):
    """The same message shapes for either role: f(opcode, payload, fin) encodes a peer frame."""
    return {
        "hello": f(0x1, b"Hello"),
        "fragmented-text-with-pings": f(0x1, b"fragment1 ", False)
        + f(0x9, b"ping1")
        + f(0x0, "κόσ".encode()[:3], False)
        + f(0xA, b"")
        + f(0x0, "κόσ".encode()[3:] + b" end"),
        "close-1000": f(0x8, close(1000, b"bye")),
        "close-empty": f(0x8),
        "close-1005-invalid": f(0x8, close(1005)),
        "close-bad-reason": f(0x8, close(1000, b"\xff")),
        "invalid-utf8": f(0x1, "κόσμε".encode() + b"\xed\xa0\x80edited"),
        "invalid-utf8-fragmented": f(0x1, b"\xce", False) + f(0x0, b"\xffx"),
        # Refused from the header (over max_frame_size): the payload need not follow.
        "frame-64k": f(0x2, bytes(65536))[:32],
        "frame-over-limit": f(0x2, bytes(4097))[:32],
        "binary-1k": f(0x2, bytes(1024)),
        "message-17-fragments": f(0x2, b"a", False) + b"".join(f(0x0, b"b", False) for _ in range(15)) + f(0x0, b"z"),
        "ping-126": f(0x9, bytes(126)),
        "reserved-opcode": f(0x3, b"x"),
        "rsv1": bytes([0xC1]) + f(0x1, b"x")[1:],
        "continuation-first": f(0x0, b"x"),
        "text-then-close": f(0x1, b"a") + f(0x2, bytes(300)) + f(0x8, close(1001, b"going")),
    }


def deflate_shapes(f):
    """permessage-deflate messages (RFC 7692 §7.2.3.1's "Hello" twice, a bomb, RSV1 misuse)."""
    hello = deflated(b"Hello")
    assert hello == bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
    return {
        "deflate-hello": rsv1(f(0x1, hello)),
        "deflate-hello-fragmented": rsv1(f(0x1, hello[:3], False)) + f(0x0, hello[3:]),
        "deflate-bomb": rsv1(f(0x2, deflated(bytes(1 << 20)))),
        "deflate-rsv1-on-continuation": f(0x1, b"a", False) + rsv1(f(0x0, b"b")),
        "deflate-garbage": rsv1(f(0x2, b"\xff\xff\xff\xff")),
    }


def write(target, name, data):
    assert name[0] in "ghijklmnopqrstuvwxyz", name
    path = os.path.join(HERE, "corpus", target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def main():
    # frame_header: RFC 6455 §5.7 and length forms.
    for name, data in {
        "rfc-hello-unmasked": bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
        "rfc-hello-masked": bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        "rfc-fragment-first": bytes([0x01, 0x03, 0x48, 0x65, 0x6C]),
        "rfc-256-binary": bytes([0x82, 0x7E, 0x01, 0x00]),
        "rfc-64k-binary": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
        "masked-64k": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]),
        "nonminimal-16": bytes([0x82, 0x7E, 0x00, 0x7D]),
        "nonminimal-64": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
        "top-bit": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    }.items():
        write("frame_header", name, data)

    # server_connection: a masked client stream behind a valid request (mode bit 0).
    for name, data in autobahn_shapes(c).items():
        write("server_connection", "seed-" + name, raw(data))
    write("server_connection", "rfc-hello-masked", raw(bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])))
    body = VALID_REQUEST + c(0x1, b"Hello") + c(0x9, b"hi") + c(0x8, close(1000))
    write("server_connection", "seed-request-in-pieces", raw(body, mode=0, points=[(5, 3), (150, 0x21), (len(VALID_REQUEST) + 3, 0x45)]))
    write("server_connection", "seed-keepalive-timeouts", raw(c(0x1, b"a") + c(0xA), points=[(7, 0x93), (7, 0xC0), (7, 0xD0), (13, 0xBF)]))
    write("server_connection", "seed-streaming", raw(autobahn_shapes(c)["fragmented-text-with-pings"], flags=1, points=[(9, 0), (20, 1)]))
    write("server_connection", "seed-eof-mid-message", raw(c(0x1, b"abc", False), points=[(4, 0xF0)]))
    # Mode 0x21: prefix, permessage-deflate configured (accepted from the request's offer).
    for name, data in deflate_shapes(c).items():
        write("server_connection", "seed-" + name, raw(data, mode=0x21))

    # client_connection: an unmasked server stream behind a valid 101.
    for name, data in autobahn_shapes(s).items():
        write("client_connection", "seed-" + name, raw(data))
    write("client_connection", "rfc-hello-unmasked", raw(bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])))
    write("client_connection", "seed-response-in-pieces", raw(valid_response() + s(0x1, b"Hi") + s(0x8, close(1000)), mode=0, points=[(3, 0), (40, 0x22)]))
    write("client_connection", "seed-close-wait-timeout", raw(s(0x8, close(1000)), points=[(4, 0xC0), (4, 0xC3)]))
    write("client_connection", "seed-masked-from-server", raw(c(0x1, b"x")))
    for name, data in deflate_shapes(s).items():
        write("client_connection", "seed-" + name, raw(data, mode=0x21))

    # server_handshake: [flags][mode][request head].
    write("server_handshake", "seed-valid-request", bytes([0, 0, 0]) + VALID_REQUEST)
    write("server_handshake", "seed-origin-and-protocols", bytes([0xD0, 0x08, 3]) + VALID_REQUEST.replace(b"chat\r\n", b"superchat, chat\r\n"))
    write("server_handshake", "seed-plain-get", bytes([0, 0, 0]) + b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    write("server_handshake", "seed-version-8", bytes([0, 0, 0]) + VALID_REQUEST.replace(b"Version: 13", b"Version: 8"))
    write("server_handshake", "seed-leading-blank-lines", bytes([0, 0, 1]) + b"\r\n\r\n" + VALID_REQUEST)
    write("server_handshake", "seed-reject-503", bytes([0, 0x04, 7]) + VALID_REQUEST)
    write("server_handshake", "seed-deflate-offers", bytes([0, 0x20, 0]) + VALID_REQUEST.replace(
        b"permessage-deflate; client_max_window_bits",
        b"permessage-deflate; server_max_window_bits=10; client_max_window_bits, "
        b"permessage-deflate; server_no_context_takeover, x-webkit-deflate-frame"))

    # client_handshake: [flags][mode][response head].
    write("client_handshake", "seed-valid-101", bytes([0, 0, 0]) + valid_response())
    write("client_handshake", "seed-101-protocol-extension", bytes([0, 0x02, 5]) + valid_response(b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"))
    write("client_handshake", "seed-deflate-101", bytes([0, 0x20, 0]) + valid_response(b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    write("client_handshake", "seed-404", bytes([0, 0, 0]) + b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    write("client_handshake", "seed-wrong-accept", bytes([0, 0, 0]) + valid_response().replace(b"Accept: ", b"Accept: x"))


if __name__ == "__main__":
    main()
