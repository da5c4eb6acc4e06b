//! Frames encoded once and queued on many connections (RFC 6455 §5.1: a server's frames are
//! unmasked, so the same bytes serve every peer), with their permessage-deflate encodings
//! (RFC 7692 §6.1) made once per window size.

#[cfg(feature = "deflate")]
use std::sync::Arc;

use bytes::Bytes;

#[cfg(feature = "deflate")]
use super::RSV1;
use super::{FrameHeader, OpCode};
use crate::event::Message;

/// A frame encoded once and queued on many connections without copying: the unmasked bytes a
/// server sends are the same for every peer (RFC 6455 §5.1), so broadcast costs one encoding.
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    pub(crate) bytes: Bytes,
    header_len: usize,
    pub(crate) opcode: OpCode,
    /// Compressed encodings (permessage-deflate, a fresh context each), made on first use, one
    /// per window size (9-15 bits) that recipients agreed to.
    #[cfg(feature = "deflate")]
    compressed: Arc<[std::sync::OnceLock<Bytes>; 7]>,
}

impl PreparedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    /// A message of either kind in one frame.
    pub fn message(message: &Message) -> Self {
        match message {
            Message::Text(text) => Self::text(text),
            Message::Binary(data) => Self::binary(data),
        }
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: payload.len() as u64 };
        let mut bytes = Vec::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut bytes);
        let header_len = bytes.len();
        bytes.extend_from_slice(payload);
        PreparedFrame {
            bytes: Bytes::from(bytes),
            header_len,
            opcode,
            #[cfg(feature = "deflate")]
            compressed: Arc::default(),
        }
    }

    /// The frame compressed with a fresh context and this window, encoded once per window.
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(&self, window_bits: u8, level: u32, pool: &crate::DeflatePool) -> Bytes {
        let slot = usize::from(window_bits.clamp(9, 15) - 9);
        self.compressed[slot]
            .get_or_init(|| {
                let payload = crate::deflate::compress_standalone(self.payload(), window_bits, level, pool);
                let header = FrameHeader {
                    fin: true,
                    rsv: RSV1,
                    opcode: self.opcode,
                    mask: None,
                    payload_len: payload.len() as u64,
                };
                let mut bytes = Vec::with_capacity(header.encoded_len() + payload.len());
                header.encode(&mut bytes);
                bytes.extend_from_slice(&payload);
                Bytes::from(bytes)
            })
            .clone()
    }

    /// The size of the uncompressed encoding (an unmasked frame, as a server sends it when no
    /// compression applies). What one connection actually queues for this frame, compressed
    /// or masked, is [`Connection::wire_len`](crate::Connection::wire_len).
    pub fn uncompressed_len(&self) -> usize {
        self.bytes.len()
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.header_len..]
    }
}
