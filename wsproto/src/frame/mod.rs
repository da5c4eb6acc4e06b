//! Frames (RFC 6455 §5): header coding and opcodes (§5.2), masking (§5.3, in `mask`), and
//! frames encoded once for many connections (`prepared`). Pure functions over byte slices.

mod mask;
mod prepared;

pub use mask::apply_mask;
pub use prepared::PreparedFrame;

/// RSV1 in [`FrameHeader::rsv`]: set on the first frame of a compressed message
/// (permessage-deflate, RFC 7692 §6.1); reserved otherwise (RFC 6455 §5.2).
pub const RSV1: u8 = 0b100;

/// The longest frame header: 2 bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes never get this far: parsing refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum OpCode {
    /// 0x0: a further fragment of the message in progress.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the 4-bit wire value, or `None` for the reserved values 0x3-0x7, 0xB-0xF.
    pub fn from_u8(value: u8) -> Option<OpCode> {
        Some(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes and never fragmented (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// The three reserved bits RSV1, RSV2, RSV3 as the low bits of a `u8` (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// Why a frame header was refused. Each of these is a protocol error (close code 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// An opcode the RFC reserves.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set (RFC 6455 §5.2).
    #[error("payload length has its most significant bit set")]
    LengthTopBit,
    /// A length that could have been written in a shorter form (RFC 6455 §5.2: "the minimal
    /// number of bytes MUST be used").
    #[error("payload length not in its minimal encoding")]
    NonMinimalLength,
}

impl FrameHeader {
    /// The encoded size of this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Parses a header from the start of `buf`: `Ok(None)` when more bytes are needed, otherwise
    /// the header and its length in bytes. Checks only what the header alone decides (opcode,
    /// length encoding); role-dependent rules belong to the connection.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        let [b0, b1, rest @ ..] = buf else { return Ok(None) };
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(HeaderError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => {
                let Some(&[a, b]) = rest.first_chunk::<2>() else { return Ok(None) };
                let len = u16::from_be_bytes([a, b]) as u64;
                if len < 126 {
                    return Err(HeaderError::NonMinimalLength);
                }
                (len, 2)
            }
            127 => {
                let Some(bytes) = rest.first_chunk::<8>() else { return Ok(None) };
                let len = u64::from_be_bytes(*bytes);
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthTopBit);
                }
                if len <= 0xFFFF {
                    return Err(HeaderError::NonMinimalLength);
                }
                (len, 8)
            }
            len => (len as u64, 0),
        };
        let mask = if masked {
            let Some(key) = rest.get(len_bytes..).and_then(|r| r.first_chunk::<4>()) else {
                return Ok(None);
            };
            Some(*key)
        } else {
            None
        };
        let header = FrameHeader { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x07, opcode, mask, payload_len };
        Ok(Some((header, 2 + len_bytes + if masked { 4 } else { 0 })))
    }

    /// Appends the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode_into(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }

    /// Writes the encoded header to the start of `buf` and answers its length.
    pub fn encode_into(&self, buf: &mut [u8; MAX_HEADER_LEN]) -> usize {
        buf[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                buf[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                buf[1] = mask_bit | 126;
                buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                buf[1] = mask_bit | 127;
                buf[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            buf[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn mask_matches_naive_for_every_length_offset_and_split() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            for offset in 0..4 {
                let mut fast = data[..len].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                naive_mask(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
        // Piecewise unmasking with running offsets equals unmasking at once.
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let mut at = 0;
        for size in [1, 3, 5, 33, 64, 7, 100, 87] {
            apply_mask(&mut pieces[at..at + size], key, at);
            at += size;
        }
        assert_eq!(at, pieces.len());
        assert_eq!(pieces, whole);
    }

    #[test]
    fn header_round_trip_for_every_length_form() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = FrameHeader { fin: true, rsv: 0b101, opcode: OpCode::Binary, mask, payload_len: len };
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out.len(), h.encoded_len());
                assert_eq!(FrameHeader::parse(&out), Ok(Some((h, out.len()))));
                for cut in 0..out.len() {
                    assert_eq!(FrameHeader::parse(&out[..cut]), Ok(None), "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn header_refusals() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(FrameHeader::parse(&[0x80 | op, 0]), Err(HeaderError::ReservedOpcode(op)));
        }
        assert_eq!(FrameHeader::parse(&[0x82, 126, 0, 125]), Err(HeaderError::NonMinimalLength));
        assert_eq!(FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]), Err(HeaderError::NonMinimalLength));
        assert_eq!(FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), Err(HeaderError::LengthTopBit));
    }

    /// RFC 6455 §5.7's examples, byte for byte.
    #[test]
    fn rfc_section_5_7_examples() {
        // A single-frame unmasked text message "Hello".
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = FrameHeader::parse(&unmasked).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.mask, h.payload_len, n), (true, OpCode::Text, None, 5, 2));
        // A single-frame masked text message "Hello".
        let mut masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, n) = FrameHeader::parse(&masked).unwrap().unwrap();
        assert_eq!((h.mask, h.payload_len, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 5, 6));
        apply_mask(&mut masked[6..], h.mask.unwrap(), 0);
        assert_eq!(&masked[6..], b"Hello");
        let mut encoded = Vec::new();
        h.encode(&mut encoded);
        assert_eq!(encoded, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        // A fragmented unmasked text message: "Hel" then "lo".
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h1, _) = FrameHeader::parse(&first).unwrap().unwrap();
        let (h2, _) = FrameHeader::parse(&second).unwrap().unwrap();
        assert_eq!((h1.fin, h1.opcode), (false, OpCode::Text));
        assert_eq!((h2.fin, h2.opcode), (true, OpCode::Continuation));
        // Unmasked ping "Hello", masked pong "Hello".
        let (h, _) = FrameHeader::parse(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Ping);
        let mut pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, n) = FrameHeader::parse(&pong).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Pong);
        apply_mask(&mut pong[n..], h.mask.unwrap(), 0);
        assert_eq!(&pong[n..], b"Hello");
        // 256 bytes binary in a single unmasked frame: 0x82 0x7E 0x0100.
        let h = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: 256 };
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0x82, 0x7E, 0x01, 0x00]);
        // 64 KiB binary in a single unmasked frame: 0x82 0x7F 0x0000000000010000.
        let h = FrameHeader { payload_len: 65536, ..h };
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(FrameHeader::parse(&out), Ok(Some((h, 10))));
    }
}
