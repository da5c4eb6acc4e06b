//! The receive path (RFC 6455 §5.2-§5.6, §6.2): frame headers checked against the role and
//! the limits before any payload is buffered, unmasking, reassembly or streaming, UTF-8
//! validation (§8.1), control frames (§5.5), and inflation (RFC 7692 §6.2) paced by the
//! application taking events.

use super::{Connection, State};
use crate::close::{parse_close_payload, ClosePayloadError};
use crate::config::ReceiveMode;
use crate::error::ProtocolError;
use crate::event::{Event, Message, MessageKind};
use crate::frame::{apply_mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use crate::role::Role;
use crate::utf8::Utf8Validator;

/// What the receive path keeps between reads.
#[derive(Debug)]
pub(super) struct Receiver {
    /// A frame header split across reads.
    header_buf: [u8; MAX_HEADER_LEN],
    header_len: usize,
    pub(super) frame: Option<FrameInProgress>,
    pub(super) message: Option<MessageInProgress>,
    /// The payload of the control frame in progress.
    pub(super) control: Vec<u8>,
    /// Unmasked compressed payload on its way to the inflater.
    compressed_scratch: Vec<u8>,
    /// An event carrying inflated data waits to be taken. A few compressed bytes can stand for
    /// megabytes, so input is processed no further until the application has taken it: what
    /// one read costs in memory is then one message (streaming mode: one chunk), not every
    /// message the read holds.
    pub(super) inflated_waiting: bool,
    pub(super) held: HeldInput,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            header_buf: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            compressed_scratch: Vec::new(),
            inflated_waiting: false,
            held: HeldInput::default(),
        }
    }
}

/// The frame whose payload is arriving.
#[derive(Debug)]
pub(super) struct FrameInProgress {
    pub(super) opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame received so far (the masking key position).
    received: usize,
}

/// The data message being reassembled (or streamed).
#[derive(Debug)]
pub(super) struct MessageInProgress {
    kind: MessageKind,
    /// Messages mode: the payload so far. Streaming mode: unused.
    buf: Vec<u8>,
    /// Payload bytes so far, all frames.
    len: usize,
    fragments: usize,
    utf8: Utf8Validator,
    /// Streaming mode: whether a chunk of this message has been reported yet.
    reported: bool,
    /// RSV1 on the first frame: the payload is deflated (RFC 7692 §6.1).
    compressed: bool,
    /// Compressed messages: the inflated size so far.
    inflated: usize,
    /// Streaming mode: the last inflation stopped because its chunk was full.
    inflater_full: bool,
}

/// Streaming mode: the most inflated bytes one [`Event::Chunk`] of a compressed message
/// carries (permessage-deflate).
pub const MAX_INFLATED_CHUNK: usize = 32 << 10;

/// Received bytes not yet processed because inflated data waits to be taken (see
/// `Receiver::inflated_waiting`).
#[derive(Debug, Default)]
pub(super) struct HeldInput {
    pub(super) bytes: Vec<u8>,
    /// How much of `bytes` has been processed.
    pub(super) start: usize,
    /// The transport's end of file arrived behind these bytes.
    pub(super) eof: bool,
}

impl Connection {
    /// Processes received frame bytes; what is left when inflated data must first be taken
    /// is held for [`resume_held_input`](Self::resume_held_input).
    pub(super) fn receive_frames(&mut self, input: &[u8]) {
        let rest = self.process_frames(input);
        if self.recv.inflated_waiting && !rest.is_empty() {
            self.recv.held.bytes.extend_from_slice(rest);
        }
    }

    /// Processes frames until the input is used up, the connection ends or inflated data waits
    /// to be taken; answers the input left.
    fn process_frames<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        while !input.is_empty()
            && matches!(self.state, State::Open | State::Closing)
            && !self.ending_pending()
            && !self.recv.inflated_waiting
        {
            let step = if self.recv.frame.is_some() { self.receive_payload(input) } else { self.receive_header(input) };
            match step {
                Ok(consumed) => input = &input[consumed..],
                Err(error) => {
                    self.fail(error);
                    return &[];
                }
            }
        }
        if matches!(self.state, State::Open | State::Closing) && !self.ending_pending() {
            input
        } else {
            &[]
        }
    }

    /// The application took every event: go on with the input held behind inflated data.
    pub(super) fn resume_held_input(&mut self) {
        self.recv.inflated_waiting = false;
        if let Err(error) = self.drain_inflater() {
            return self.fail(error);
        }
        if self.recv.inflated_waiting {
            return;
        }
        let mut held = std::mem::take(&mut self.recv.held);
        let left = self.process_frames(&held.bytes[held.start..]).len();
        if self.recv.inflated_waiting && left > 0 {
            held.start = held.bytes.len() - left;
            self.recv.held = held;
        } else if held.eof {
            self.on_eof();
        }
    }

    /// Reads (part of) a frame header; answers how many input bytes it took.
    fn receive_header(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let (parsed, consumed) = if self.recv.header_len == 0 {
            match FrameHeader::parse(input)? {
                Some((header, len)) => (header, len),
                None => {
                    // Shorter than a header: fewer than MAX_HEADER_LEN bytes.
                    self.recv.header_buf[..input.len()].copy_from_slice(input);
                    self.recv.header_len = input.len();
                    return Ok(input.len());
                }
            }
        } else {
            let had = self.recv.header_len;
            let take = input.len().min(MAX_HEADER_LEN - had);
            self.recv.header_buf[had..had + take].copy_from_slice(&input[..take]);
            match FrameHeader::parse(&self.recv.header_buf[..had + take])? {
                Some((header, len)) => {
                    self.recv.header_len = 0;
                    (header, len - had)
                }
                None => {
                    self.recv.header_len = had + take;
                    return Ok(take);
                }
            }
        };
        self.on_header(parsed, input.len() - consumed)?;
        Ok(consumed)
    }

    /// Checks a frame header against the role, the message in progress and the limits, before
    /// any of its payload is buffered. `available` is how much payload input is at hand, so that
    /// nothing is reserved on the strength of a length the peer merely announced.
    fn on_header(&mut self, header: FrameHeader, available: usize) -> Result<(), ProtocolError> {
        // RSV1 belongs to permessage-deflate, when negotiated, on a message's first frame only
        // (RFC 7692 §6.1); every other reserved bit is an error (RFC 6455 §5.2).
        let compressed =
            header.rsv == RSV1 && self.compression.is_some() && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let len = header.payload_len;
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong(len));
            }
            self.recv.control.clear();
        } else {
            let max_frame = self.config.max_frame_size;
            if len > max_frame as u64 {
                return Err(ProtocolError::FrameTooLarge { len, max: max_frame });
            }
            let len = len as usize;
            let streaming = self.config.receive_mode == ReceiveMode::Streaming;
            match (header.opcode, &mut self.recv.message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(message)) => {
                    message.fragments += 1;
                    if message.fragments > self.config.max_fragments {
                        return Err(ProtocolError::TooManyFragments { max: self.config.max_fragments });
                    }
                }
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, None) => {
                    let kind = if opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                    let buf = if streaming { Vec::new() } else { Vec::with_capacity(len.min(available)) };
                    self.recv.message = Some(MessageInProgress {
                        kind,
                        buf,
                        len: 0,
                        fragments: 1,
                        utf8: Utf8Validator::new(),
                        reported: false,
                        compressed,
                        inflated: 0,
                        inflater_full: false,
                    });
                }
            }
            let message = self.recv.message.as_ref().map_or(0, |m| m.len);
            let max_message = self.config.max_message_size;
            if !streaming && message.saturating_add(len) > max_message {
                return Err(ProtocolError::MessageTooLarge { max: max_message });
            }
        }
        self.recv.frame = Some(FrameInProgress {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
            received: 0,
        });
        if header.payload_len == 0 {
            self.finish_frame()?;
        }
        Ok(())
    }

    /// Takes payload bytes of the frame in progress; answers how many.
    fn receive_payload(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let Some(frame) = self.recv.frame.as_mut() else { return Ok(0) };
        let take = usize::try_from(frame.remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = &input[..take];
        if !frame.opcode.is_control() && self.recv.message.as_ref().is_some_and(|m| m.compressed) {
            return self.receive_compressed_payload(chunk);
        }
        let offset = frame.received;
        frame.received += take;
        frame.remaining -= take as u64;
        let done = frame.remaining == 0;
        let (mask, opcode, fin) = (frame.mask, frame.opcode, frame.fin);

        if opcode.is_control() {
            let start = self.recv.control.len();
            self.recv.control.extend_from_slice(chunk);
            if let Some(key) = mask {
                apply_mask(&mut self.recv.control[start..], key, offset);
            }
        } else if let Some(message) = self.recv.message.as_mut() {
            message.len += take;
            match self.config.receive_mode {
                ReceiveMode::Messages => {
                    let start = message.buf.len();
                    message.buf.extend_from_slice(chunk);
                    let new = &mut message.buf[start..];
                    if let Some(key) = mask {
                        apply_mask(new, key, offset);
                    }
                    if message.kind == MessageKind::Text {
                        message.utf8.feed(new).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                }
                ReceiveMode::Streaming => {
                    let mut data = chunk.to_vec();
                    if let Some(key) = mask {
                        apply_mask(&mut data, key, offset);
                    }
                    if message.kind == MessageKind::Text {
                        message.utf8.feed(&data).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    let last = done && fin;
                    if last && message.kind == MessageKind::Text && !message.utf8.is_complete() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    let first = !message.reported;
                    message.reported = true;
                    self.events.push_back(Event::Chunk { kind: message.kind, data, first, last });
                }
            }
        }
        self.finish_payload(done, take)
    }

    /// Inflates payload bytes of a compressed message (RFC 7692 §7.2.2); answers how many it
    /// took, which in streaming mode may be fewer than offered (see [`Self::inflate`]).
    fn receive_compressed_payload(&mut self, chunk: &[u8]) -> Result<usize, ProtocolError> {
        let Some(frame) = self.recv.frame.as_mut() else { return Ok(0) };
        let mut scratch = std::mem::take(&mut self.recv.compressed_scratch);
        scratch.clear();
        scratch.extend_from_slice(chunk);
        if let Some(key) = frame.mask {
            apply_mask(&mut scratch, key, frame.received);
        }
        let took = self.inflate(&scratch);
        self.recv.compressed_scratch = scratch;
        let took = took?;
        let Some(frame) = self.recv.frame.as_mut() else { return Ok(took) };
        frame.received += took;
        frame.remaining -= took as u64;
        let done = frame.remaining == 0;
        // The trailer and the last chunk come with the end of the message.
        self.finish_payload(done, took)
    }

    /// Feeds unmasked compressed bytes of the message in progress to the inflater; answers how
    /// many it took. Messages mode inflates into the message, checked against
    /// `max_message_size`. Streaming mode reports what comes out as a chunk and stops once
    /// `MAX_INFLATED_CHUNK` bytes are out; the inflater may then hold more output (it reads
    /// input ahead), which [`drain_inflater`](Self::drain_inflater) delivers once the chunk
    /// was taken.
    fn inflate(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let Some(message) = self.recv.message.as_mut() else { return Ok(0) };
        let compression = self.compression.as_mut().ok_or(ProtocolError::ReservedBits(RSV1))?;
        let streaming = self.config.receive_mode == ReceiveMode::Streaming;
        let (limit, max_output) =
            if streaming { (usize::MAX, MAX_INFLATED_CHUNK) } else { (self.config.max_message_size, usize::MAX) };
        let mut streamed = Vec::new();
        let out = if streaming { &mut streamed } else { &mut message.buf };
        let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
        let took = compression.inflate(input, &mut message.inflated, limit, max_output, &mut text_sink(out, utf8))?;
        message.len += took;
        message.inflater_full = streamed.len() == max_output;
        if !streamed.is_empty() {
            let first = !message.reported;
            message.reported = true;
            self.events.push_back(Event::Chunk { kind: message.kind, data: streamed, first, last: false });
            self.recv.inflated_waiting = true;
        }
        Ok(took)
    }

    /// Streaming mode: the output the inflater still holds from input already taken, as the
    /// next chunk, before any further input.
    fn drain_inflater(&mut self) -> Result<(), ProtocolError> {
        if self.recv.message.as_ref().is_some_and(|m| m.compressed && m.inflater_full) {
            self.inflate(&[])?;
        }
        Ok(())
    }

    fn finish_payload(&mut self, done: bool, take: usize) -> Result<usize, ProtocolError> {
        if done {
            self.finish_frame()?;
        }
        Ok(take)
    }

    /// The frame in progress has all its payload.
    fn finish_frame(&mut self) -> Result<(), ProtocolError> {
        let Some(frame) = self.recv.frame.take() else { return Ok(()) };
        match frame.opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.recv.control);
                if self.config.auto_pong && self.state == State::Open {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.recv.control);
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::Close => self.on_close_frame()?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if frame.fin {
                    self.finish_message(frame.received == 0)?;
                }
            }
        }
        Ok(())
    }

    /// The final frame of the data message in progress has all its payload.
    /// `final_frame_empty`: streaming mode reported no chunk for it yet.
    fn finish_message(&mut self, final_frame_empty: bool) -> Result<(), ProtocolError> {
        let Some(mut message) = self.recv.message.take() else { return Ok(()) };
        // A compressed message ends with its trailer restored (RFC 7692 §7.2.2).
        let mut tail = Vec::new();
        if message.compressed {
            let compression = self.compression.as_mut().ok_or(ProtocolError::ReservedBits(RSV1))?;
            let streaming = self.config.receive_mode == ReceiveMode::Streaming;
            let limit = if streaming { usize::MAX } else { self.config.max_message_size };
            let out = if streaming { &mut tail } else { &mut message.buf };
            let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
            compression.finish_message(&mut message.inflated, limit, &mut text_sink(out, utf8))?;
        }
        if message.kind == MessageKind::Text && !message.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.recv.inflated_waiting |= message.compressed;
        match self.config.receive_mode {
            ReceiveMode::Messages => {
                let message = match message.kind {
                    MessageKind::Text => {
                        Message::Text(String::from_utf8(message.buf).map_err(|_| ProtocolError::InvalidUtf8)?)
                    }
                    MessageKind::Binary => Message::Binary(message.buf),
                };
                self.events.push_back(Event::Message(message));
            }
            ReceiveMode::Streaming if final_frame_empty || message.compressed => {
                let first = !message.reported;
                self.events.push_back(Event::Chunk { kind: message.kind, data: tail, first, last: true });
            }
            ReceiveMode::Streaming => {}
        }
        Ok(())
    }

    fn on_close_frame(&mut self) -> Result<(), ProtocolError> {
        let (code, reason) = parse_close_payload(&self.recv.control).map_err(|e| match e {
            ClosePayloadError::Truncated => ProtocolError::TruncatedClose,
            ClosePayloadError::InvalidCode(code) => ProtocolError::InvalidCloseCode(code),
            ClosePayloadError::InvalidReason => ProtocolError::InvalidCloseReason,
        })?;
        self.peer_closed(code, reason);
        Ok(())
    }
}

/// Where inflated bytes go: appended to `out`, validated on the way when the message is text.
fn text_sink<'a>(
    out: &'a mut Vec<u8>,
    mut utf8: Option<&'a mut Utf8Validator>,
) -> impl FnMut(&[u8]) -> Result<(), ProtocolError> + 'a {
    move |piece| {
        if let Some(utf8) = utf8.as_deref_mut() {
            utf8.feed(piece).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        out.extend_from_slice(piece);
        Ok(())
    }
}
