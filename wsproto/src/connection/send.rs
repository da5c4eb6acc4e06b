//! The send path (RFC 6455 §5, §6.1): the application's data and control commands, framing
//! and masking them, permessage-deflate on the way out (RFC 7692 §6.1), and the outgoing queue
//! with its backpressure limit.

use std::borrow::Cow;

use bytes::Bytes;

use super::{Connection, State};
use crate::close::{CloseCode, MAX_CLOSE_REASON};
use crate::error::{SendError, UsageError};
use crate::event::{Message, MessageKind, MessageNotSent};
use crate::frame::{FrameHeader, OpCode, PreparedFrame, MAX_CONTROL_PAYLOAD, RSV1};
use crate::outgoing::OutQueue;
use crate::random::RandomSource;
use crate::role::Role;
use crate::utf8::Utf8Validator;

/// What the send path keeps.
pub(super) struct Sender {
    /// Client: masking keys (RFC 6455 §5.3). A server masks nothing.
    pub(super) rng: Option<Box<dyn RandomSource>>,
    pub(super) out: OutQueue,
    /// The kind of the fragmented message we are sending, if one is unfinished.
    pub(super) sending_fragmented: Option<MessageKind>,
    /// UTF-8 state across the text fragments we send.
    pub(super) send_utf8: Utf8Validator,
    /// A keep-alive ping is queued and not yet written: the stream position just past it.
    pub(super) ping_end: Option<u64>,
}

impl Sender {
    pub(super) fn new(rng: Option<Box<dyn RandomSource>>) -> Sender {
        Sender {
            rng,
            out: OutQueue::default(),
            sending_fragmented: None,
            send_utf8: Utf8Validator::new(),
            ping_end: None,
        }
    }
}

impl Connection {
    /// Sends a text message in one frame.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.check_data_send(text.len())?;
        self.queue_data(OpCode::Text, true, text.as_bytes());
        Ok(())
    }

    /// Sends a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.check_data_send(data.len())?;
        self.queue_data(OpCode::Binary, true, data);
        Ok(())
    }

    /// Sends a message in one frame, taking its buffer: a large unmasked payload is queued
    /// without a copy.
    ///
    /// On failure the message comes back in the error ([`MessageNotSent::message`]), so that
    /// a caller meeting backpressure ([`SendError::QueueFull`]) can keep it and retry.
    pub fn send(&mut self, message: Message) -> Result<(), MessageNotSent> {
        self.send_message(message, true)
    }

    /// Sends a message in one frame without compressing it, whatever permessage-deflate
    /// agreed (RFC 7692 compresses message by message): for payloads that deflate cannot
    /// shrink, such as images, video or archives, where compressing only costs CPU. Without
    /// the extension it is [`send`](Self::send).
    /// On failure the message comes back in the error, as with `send`.
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), MessageNotSent> {
        self.send_message(message, false)
    }

    fn send_message(&mut self, message: Message, compress: bool) -> Result<(), MessageNotSent> {
        if let Err(error) = self.check_data_send(message.as_bytes().len()) {
            return Err(MessageNotSent { error, message });
        }
        let opcode = match message.kind() {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let payload = message.into_bytes();
        if compress {
            if let Some(compressed) = self.compress_whole_message(opcode, true, &payload) {
                self.queue_compressed(opcode, compressed);
                return Ok(());
            }
        }
        let header = self.data_header(opcode, true, payload.len());
        self.send.out.push_frame_shared(&header, payload);
        Ok(())
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first fragment sets the kind, later
    /// ones must repeat it, `fin` ends the message. Text fragments are checked as UTF-8 across
    /// fragment boundaries.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), SendError> {
        self.check_open()?;
        let opcode = match self.send.sending_fragmented {
            None => match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            Some(current) if current == kind => OpCode::Continuation,
            Some(_) => return Err(UsageError::FragmentInProgress.into()),
        };
        self.check_queue(data.len())?;
        if kind == MessageKind::Text {
            let mut utf8 =
                if opcode == OpCode::Continuation { self.send.send_utf8.clone() } else { Utf8Validator::new() };
            utf8.feed(data).map_err(|_| UsageError::InvalidUtf8)?;
            if fin && !utf8.is_complete() {
                return Err(UsageError::InvalidUtf8.into());
            }
            self.send.send_utf8 = utf8;
        }
        self.send.sending_fragmented = if fin { None } else { Some(kind) };
        self.queue_data(opcode, fin, data);
        Ok(())
    }

    /// Queues a prepared frame (see [`PreparedFrame`]). On a server connection the shared bytes
    /// are queued as they are (compressed once for every peer whose context resets, RFC 7692
    /// §7.1.1); a client must mask, and a kept compression context must see every message, so
    /// those encode the payload here. The queue limit counts
    /// [`wire_len`](Self::wire_len), the bytes actually queued.
    pub fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), SendError> {
        let shared = self.shared_encoding(frame);
        let len = shared.as_ref().map_or_else(|| self.encoded_len(frame.payload().len()), |b| b.len());
        self.check_data_send(len)?;
        match shared {
            Some(bytes) => self.send.out.push_shared(&bytes),
            None => self.queue_data(frame.opcode, true, frame.payload()),
        }
        Ok(())
    }

    /// The size of a prepared frame on the wire: the shared encoding where one applies, else
    /// the frame this connection encodes (masked on a client; compressed with a kept context,
    /// whose size is known only once compressed, counted uncompressed).
    pub(super) fn prepared_wire_len(&self, frame: &PreparedFrame) -> usize {
        self.shared_encoding(frame).map_or_else(|| self.encoded_len(frame.payload().len()), |b| b.len())
    }

    /// A server's shared bytes for a prepared frame: as they are (borrowed, so that a small
    /// frame copied into the queue costs no reference count), or compressed once for every
    /// context-free peer. `None`: this connection encodes the payload itself.
    fn shared_encoding<'a>(&self, frame: &'a PreparedFrame) -> Option<Cow<'a, Bytes>> {
        if self.role != Role::Server {
            return None;
        }
        let Some(compression) = self.compression.as_ref() else { return Some(Cow::Borrowed(&frame.bytes)) };
        if frame.payload().len() < compression.min_size() {
            return Some(Cow::Borrowed(&frame.bytes));
        }
        #[cfg(feature = "deflate")]
        if let Some((window_bits, level, pool)) = compression.context_free_encoding() {
            return Some(Cow::Owned(frame.compressed(window_bits, level, pool)));
        }
        None
    }

    /// The length of an uncompressed frame this connection would encode for `payload_len`.
    fn encoded_len(&self, payload_len: usize) -> usize {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: self.send.rng.as_ref().map(|_| [0; 4]),
            payload_len: payload_len as u64,
        };
        header.encoded_len() + payload_len
    }

    /// Sends a ping (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends a pong (at most 125 bytes), e.g. an unsolicited heartbeat or, with `auto_pong`
    /// off, the answer to a ping.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload)
    }

    pub(super) fn check_open(&self) -> Result<(), UsageError> {
        match self.state {
            State::Open => Ok(()),
            State::AwaitingRequest | State::RequestPending { .. } | State::AwaitingResponse => Err(UsageError::NotOpen),
            State::Closing | State::Closed => Err(UsageError::Closed),
        }
    }

    fn check_queue(&self, len: usize) -> Result<(), SendError> {
        let limit = self.config.max_queued_bytes;
        let queued = self.send.out.len();
        if queued > 0 && queued.saturating_add(len) > limit {
            return Err(SendError::QueueFull { queued, limit });
        }
        Ok(())
    }

    fn check_data_send(&self, len: usize) -> Result<(), SendError> {
        self.check_open()?;
        if self.send.sending_fragmented.is_some() {
            return Err(UsageError::FragmentInProgress.into());
        }
        self.check_queue(len)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlTooLong(payload.len()));
        }
        self.check_open()?;
        self.queue_control(opcode, payload);
        Ok(())
    }

    fn mask_key(&mut self) -> Option<[u8; 4]> {
        let rng = self.send.rng.as_mut()?;
        let mut key = [0u8; 4];
        rng.fill(&mut key);
        Some(key)
    }

    fn data_header(&mut self, opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        FrameHeader { fin, rsv: 0, opcode, mask: self.mask_key(), payload_len: len as u64 }
    }

    pub(super) fn queue_data(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        if let Some(compressed) = self.compress_whole_message(opcode, fin, payload) {
            return self.queue_compressed(opcode, compressed);
        }
        let header = self.data_header(opcode, fin, payload.len());
        self.send.out.push_frame(&header, payload);
    }

    /// permessage-deflate compresses whole messages only: fragmented sends go uncompressed,
    /// which RFC 7692 allows message by message.
    fn compress_whole_message(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Option<Vec<u8>> {
        if !fin || opcode == OpCode::Continuation {
            return None;
        }
        self.compression.as_mut()?.compress(payload)
    }

    /// Queues a compressed message: one frame with RSV1 set (RFC 7692 §6.1).
    fn queue_compressed(&mut self, opcode: OpCode, compressed: Vec<u8>) {
        let mut header = self.data_header(opcode, true, compressed.len());
        header.rsv = RSV1;
        self.send.out.push_frame_owned(&header, compressed);
    }

    pub(super) fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let header =
            FrameHeader { fin: true, rsv: 0, opcode, mask: self.mask_key(), payload_len: payload.len() as u64 };
        self.send.out.push_frame(&header, payload);
    }

    /// Queues a close frame; 1005 means "no status" and sends an empty payload.
    /// Our close frame's end is recorded: whether the peer read it tells a close timeout from
    /// a drain timeout.
    pub(super) fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = if code == CloseCode::NO_STATUS {
            0
        } else {
            let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.queue_control(OpCode::Close, &payload[..len]);
        self.closing.close_frame_end = Some(self.send.out.end_position());
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
