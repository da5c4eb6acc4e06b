//! Client-side frames for the benches, encoded here rather than by `wsproto`, so that a bug in
//! our encoder cannot hide a bug in our decoder (RFC 6455 §5.2 header, §5.3 masking).

use std::ops::Range;

/// The masking key of every frame the benches send (RFC 6455 §5.7's example key). A fixed key
/// is fine for measuring: the receiver must unmask whatever the key.
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ASCII text (a JSON-like line, the common case of chat and API traffic).
    Text,
    /// Pseudo-random bytes.
    Binary,
}

impl Kind {
    /// The opcode of the first frame of a message of this kind.
    pub fn opcode(self) -> u8 {
        match self {
            Kind::Text => 0x1,
            Kind::Binary => 0x2,
        }
    }

    /// `text` or `binary`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }
}

/// A payload of `len` bytes: ASCII for text, pseudo-random for binary; the same every call.
pub fn payload(kind: Kind, len: usize) -> Vec<u8> {
    payload_variant(kind, len, 0)
}

/// [`payload`]'s `variant`th version: other pseudo-random bytes for binary (variant 0 is
/// [`payload`]'s), the same text.
pub fn payload_variant(kind: Kind, len: usize, variant: u64) -> Vec<u8> {
    match kind {
        Kind::Text => {
            const LINE: &[u8] =
                br#"{"room":"lobby","from":"ada","text":"the quick brown fox jumps over the lazy dog"}"#;
            LINE.iter().copied().cycle().take(len).collect()
        }
        Kind::Binary => {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ variant.wrapping_mul(0xD1B5_4A32_D192_ED03);
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        }
    }
}

/// UTF-8 text of `len` bytes mixing one-, two-, three- and four-byte code points (cut back to a
/// character boundary, so it may be up to three bytes shorter).
pub fn mixed_utf8(len: usize) -> Vec<u8> {
    let line = "héllo wörld, καλημέρα κόσμε, こんにちは世界 🦀🚀 ";
    let mut text: String = line.chars().cycle().take(len).collect();
    while text.len() > len {
        text.pop();
    }
    text.into_bytes()
}

/// XORs `buf` with `key` starting at key position `offset` (byte at a time: the benches never
/// mask on a hot path).
pub fn mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

/// The header length for a payload of `len` bytes, masked or not.
pub fn header_len(len: usize, masked: bool) -> usize {
    let ext = match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Appends one frame: header, key (if masked) and the payload (masked with `key`).
pub fn encode_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, key: Option<[u8; 4]>, payload: &[u8]) {
    out.push(u8::from(fin) << 7 | opcode);
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let start = out.len() + if key.is_some() { 4 } else { 0 };
    if let Some(key) = key {
        out.extend_from_slice(&key);
    }
    out.extend_from_slice(payload);
    if let Some(key) = key {
        mask(&mut out[start..], key, 0);
    }
}

/// The byte ranges of `fragments` near-equal pieces of a `len`-byte payload (some may be empty
/// when `len < fragments`).
pub fn fragment_ranges(len: usize, fragments: usize) -> impl Iterator<Item = Range<usize>> {
    let fragments = fragments.max(1);
    (0..fragments).map(move |i| len * i / fragments..len * (i + 1) / fragments)
}

/// Appends a whole message: one frame, or `fragments` frames (the first with the message's
/// opcode, the others continuations, the last with FIN).
pub fn encode_message(out: &mut Vec<u8>, kind: Kind, payload: &[u8], fragments: usize, key: Option<[u8; 4]>) {
    let last = fragments.max(1) - 1;
    for (i, range) in fragment_ranges(payload.len(), fragments).enumerate() {
        let opcode = if i == 0 { kind.opcode() } else { 0x0 };
        encode_frame(out, i == last, opcode, key, &payload[range]);
    }
}

/// The opening handshake request every load client sends (RFC 6455 §1.3's example key).
pub fn upgrade_request(host: &str) -> Vec<u8> {
    upgrade_request_with(host, None)
}

/// [`upgrade_request`] with a `Sec-WebSocket-Extensions` header, e.g. [`DEFLATE_OFFER`].
pub fn upgrade_request_with(host: &str, extensions: Option<&str>) -> Vec<u8> {
    let extensions = extensions.map_or_else(String::new, |e| format!("Sec-WebSocket-Extensions: {e}\r\n"));
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
    )
    .into_bytes()
}

/// The permessage-deflate offer of the compressed load clients: no parameters, i.e. context
/// takeover both ways and 15-bit windows, what browsers get (RFC 7692 §7.1).
pub const DEFLATE_OFFER: &str = "permessage-deflate";

/// The `Sec-WebSocket-Accept` value for [`upgrade_request`]'s key (RFC 6455 §1.3).
pub const EXPECTED_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_frame() {
        let mut out = Vec::new();
        encode_frame(&mut out, true, 0x1, Some(MASK_KEY), b"Hello");
        assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn fragments_cover_the_payload() {
        for len in [0, 1, 20, 63, 64, 65, 1000] {
            let ranges: Vec<_> = fragment_ranges(len, 64).collect();
            assert_eq!(ranges.len(), 64);
            assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), len);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    fn mixed_text_is_utf8_with_wide_characters() {
        for len in [16, 100, 4096] {
            let text = mixed_utf8(len);
            assert!(text.len() <= len && text.len() + 3 >= len);
            let text = std::str::from_utf8(&text).unwrap();
            assert!(text.chars().any(|c| c.len_utf8() == 4) || len < 100);
        }
    }
}
