//! The outgoing byte queue the adapter drains.
//!
//! Small frames are encoded back to back into one owned buffer, so a burst of them leaves in
//! one write; prepared (shared) frames and large payloads are queued as their own chunks
//! without copying. The adapter takes slices for a vectored write and acknowledges what the
//! socket accepted with [`OutQueue::advance`]: partial writes resume where they stopped.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use crate::frame::{apply_mask, FrameHeader, MAX_HEADER_LEN};

/// Payloads at least this large are queued as their own chunk instead of being copied into the
/// coalescing buffer (only where no copy is needed anyway, i.e. unmasked owned payloads).
const OWN_CHUNK_THRESHOLD: usize = 16 << 10;

/// Shared frames up to this size are copied into the coalescing buffer rather than queued by
/// reference: for a broadcast of small frames, a copy of a few cache lines costs about what the
/// reference count's atomic increment and decrement do, and the frames of a burst then leave in
/// one contiguous write instead of one `iovec` each (at most 64 per `writev`).
const COPY_SHARED_MAX: usize = 1 << 10;

/// A written-out coalescing buffer is kept for reuse when its capacity is at most this: room
/// for a full 64 KiB read's worth of small frames echoed back (with their headers, in a buffer
/// grown by doubling), or one 64 KiB frame, so that a busy connection allocates nothing per
/// message. The adapter frees it once the connection goes idle
/// ([`Connection::release_buffers`](crate::Connection::release_buffers)).
const SPARE_CAPACITY: usize = 128 << 10;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Bytes),
    /// The header of the frame whose payload is the next (shared) chunk, kept inline: a large
    /// payload costs no allocation for its header.
    Head {
        bytes: [u8; MAX_HEADER_LEN],
        len: u8,
    },
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(b) => b,
            Chunk::Head { bytes, len } => &bytes[..usize::from(*len)],
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Unwritten bytes in all chunks.
    len: usize,
    spare: Vec<u8>,
    /// Bytes written (advanced past) since the connection began: with `len`, the stream
    /// position of anything queued, so that the connection can tell when it reached the wire.
    written: u64,
}

impl OutQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The stream position just past the last queued byte: once [`written`](Self::written)
    /// reaches it, everything queued so far is on the wire.
    pub(crate) fn end_position(&self) -> u64 {
        self.written + self.len as u64
    }

    /// Bytes written since the connection began.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Drops every unwritten byte: the transport is being closed without them.
    pub(crate) fn discard(&mut self) {
        self.chunks.clear();
        self.front_written = 0;
        self.len = 0;
    }

    /// The owned buffer at the back of the queue, to append to.
    ///
    /// Never the front chunk once writing it has begun: its written bytes are freed only with
    /// the whole chunk, so a chunk that kept growing while a slow peer drained it would keep
    /// every byte ever sent through it.
    fn tail(&mut self) -> &mut Vec<u8> {
        let front_in_progress = self.chunks.len() == 1 && self.front_written > 0;
        if front_in_progress || !matches!(self.chunks.back(), Some(Chunk::Owned(_))) {
            self.chunks.push_back(Chunk::Owned(std::mem::take(&mut self.spare)));
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned(v)) => v,
            _ => unreachable!("an owned chunk was just pushed"),
        }
    }

    /// Appends raw bytes (handshake heads).
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        self.tail().extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Encodes a frame; `header.mask` decides whether the payload is masked on the way in.
    pub(crate) fn push_frame(&mut self, header: &FrameHeader, payload: &[u8]) {
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode_into(&mut head);
        let tail = self.tail();
        // One allocation at most, however large the payload.
        tail.reserve(head_len + payload.len());
        tail.extend_from_slice(&head[..head_len]);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        self.len += head_len + payload.len();
    }

    /// Encodes a frame whose payload the queue may take without copying (if it is unmasked and
    /// large enough to be worth a chunk of its own).
    pub(crate) fn push_frame_owned(&mut self, header: &FrameHeader, mut payload: Vec<u8>) {
        if payload.len() < OWN_CHUNK_THRESHOLD {
            return self.push_frame(header, &payload);
        }
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        self.push_header_and_chunk(header, Bytes::from(payload));
    }

    /// Queues a frame whose payload the caller shares: small payloads are copied into the
    /// coalescing buffer, large unmasked ones queued as they are (written vectored, no copy).
    /// A large masked payload is masked in place when this is its only reference, and copied
    /// otherwise, since masking must not change bytes someone else still sees.
    pub(crate) fn push_frame_shared(&mut self, header: &FrameHeader, payload: Bytes) {
        if payload.len() < OWN_CHUNK_THRESHOLD {
            return self.push_frame(header, &payload);
        }
        let payload = match header.mask {
            None => payload,
            Some(key) => {
                let mut unique = payload.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                apply_mask(&mut unique, key, 0);
                unique.freeze()
            }
        };
        self.push_header_and_chunk(header, payload);
    }

    /// The header as an inline chunk, then the payload as its own chunk.
    fn push_header_and_chunk(&mut self, header: &FrameHeader, payload: Bytes) {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let len = header.encode_into(&mut bytes);
        self.len += len + payload.len();
        self.chunks.push_back(Chunk::Head { bytes, len: len as u8 });
        self.chunks.push_back(Chunk::Shared(payload));
    }

    /// Queues already-encoded bytes shared with other queues: small ones are copied into the
    /// coalescing buffer, larger ones queued by reference (written vectored, no copy).
    pub(crate) fn push_shared(&mut self, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() <= COPY_SHARED_MAX {
            return self.push_bytes(bytes);
        }
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Shared(bytes.clone()));
    }

    /// Fills `out` with the unwritten bytes, in order, for a vectored write; answers how many
    /// slices it filled.
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if n == out.len() {
                break;
            }
            let bytes = chunk.as_slice();
            let bytes = if i == 0 { &bytes[self.front_written..] } else { bytes };
            if !bytes.is_empty() {
                out[n] = IoSlice::new(bytes);
                n += 1;
            }
        }
        n
    }

    /// The first contiguous run of unwritten bytes.
    pub(crate) fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c.as_slice()[self.front_written..])
    }

    /// Marks `n` bytes as written. Panics if more than [`len`](Self::len): that is the
    /// adapter's bug, not the peer's input.
    pub(crate) fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advanced {n} bytes past the {} queued", self.len);
        self.written += n as u64;
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else { break };
            let left = front.as_slice().len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.pop_front();
        }
        // Drop any empty chunks left at the front so `front()` is never empty while bytes wait.
        while self.chunks.front().is_some_and(|c| c.as_slice().len() == self.front_written) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        self.front_written = 0;
        if let Some(Chunk::Owned(mut buf)) = self.chunks.pop_front() {
            if buf.capacity() <= SPARE_CAPACITY && buf.capacity() > self.spare.capacity() {
                buf.clear();
                self.spare = buf;
            }
        }
    }

    /// Frees buffers kept for reuse (for a connection about to sit idle).
    pub(crate) fn release_spare(&mut self) {
        self.spare = Vec::new();
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OpCode;

    fn drain(q: &mut OutQueue, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while q.len() > 0 {
            let front = q.front();
            let n = front.len().min(step);
            out.extend_from_slice(&front[..n]);
            q.advance(n);
        }
        out
    }

    #[test]
    fn mixed_chunks_drain_in_order_whatever_the_write_sizes() {
        for step in [1, 2, 7, 100, usize::MAX] {
            let mut q = OutQueue::default();
            let h = |len| FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: len };
            q.push_bytes(b"HEAD");
            q.push_frame(&h(3), b"abc");
            q.push_shared(&Bytes::from_static(b"\x82\x01z"));
            let shared_big = Bytes::from(vec![9u8; COPY_SHARED_MAX + 1]);
            q.push_shared(&shared_big);
            let big = vec![7u8; OWN_CHUNK_THRESHOLD];
            q.push_frame_owned(&h(big.len() as u64), big.clone());
            q.push_frame(&h(1), b"q");
            let mut expected = b"HEAD\x82\x03abc\x82\x01z".to_vec();
            expected.extend_from_slice(&shared_big);
            h(big.len() as u64).encode(&mut expected);
            expected.extend_from_slice(&big);
            expected.extend_from_slice(b"\x82\x01q");
            assert_eq!(q.len(), expected.len());
            let mut slices = [IoSlice::new(&[]); 8];
            let n = q.slices(&mut slices);
            let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(joined, expected);
            assert_eq!(drain(&mut q, step), expected, "step {step}");
        }
    }

    #[test]
    fn a_burst_of_small_shared_frames_leaves_in_one_slice_and_keeps_no_reference() {
        let frame = Bytes::from(b"\x81\x14twenty bytes of text".to_vec());
        let mut q = OutQueue::default();
        for _ in 0..100 {
            q.push_shared(&frame);
        }
        let mut slices = [IoSlice::new(&[]); 64];
        assert_eq!(q.slices(&mut slices), 1);
        assert_eq!(slices[0].len(), 100 * frame.len());
        assert!(frame.is_unique(), "a copied frame holds no share of the broadcast's buffer");
    }
}
