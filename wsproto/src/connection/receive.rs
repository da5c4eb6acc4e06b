//! The receive path (RFC 6455 §5.2-§5.6, §6.2): frame headers checked against the role and
//! the limits before any payload is buffered, unmasking, reassembly or streaming, UTF-8
//! validation (§8.1), control frames (§5.5), and inflation (RFC 7692 §6.2) paced by the
//! application taking events.

use bytes::{Buf, Bytes, BytesMut};

use super::{Connection, State};
use crate::close::{parse_close_payload, ClosePayloadError};
use crate::config::ReceiveMode;
use crate::error::ProtocolError;
use crate::event::{Event, Message, MessageKind};
use crate::frame::{apply_mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use crate::role::Role;
use crate::text::{Assembler, Utf8Bytes};
use crate::utf8::Utf8Validator;

/// What the receive path keeps between reads.
#[derive(Debug)]
pub(super) struct Receiver {
    /// A frame header split across reads, and how much of it came (below MAX_HEADER_LEN).
    header_buf: [u8; MAX_HEADER_LEN],
    header_len: u8,
    pub(super) frame: Option<FrameInProgress>,
    /// Boxed: an idle connection has none, and it is large.
    pub(super) message: Option<Box<MessageInProgress>>,
    /// The payload of the control frame in progress.
    pub(super) control: Vec<u8>,
    /// What only the compressed path needs, made at the first compressed frame.
    inflating: Option<Box<Inflating>>,
    /// An event carrying inflated data waits to be taken. A few compressed bytes can stand for
    /// megabytes, so input is processed no further until the application has taken it: what
    /// one read costs in memory is then one message (streaming mode: one chunk), not every
    /// message the read holds.
    pub(super) inflated_waiting: bool,
    /// How many bytes the last [`Connection::receive_buf`] left in the caller's buffer (the
    /// start of an unfinished frame): only what is appended after them is news from the peer.
    pub(super) left_in_buf: u32,
}

/// The receive path's permessage-deflate state, boxed: most connections never need it.
#[derive(Debug, Default)]
struct Inflating {
    /// Unmasked compressed payload on its way to the inflater.
    scratch: Vec<u8>,
    held: HeldInput,
}

impl Receiver {
    fn inflating(&mut self) -> &mut Inflating {
        self.inflating.get_or_insert_with(Box::default)
    }

    /// Input held behind inflated data (see `inflated_waiting`).
    pub(super) fn held_mut(&mut self) -> &mut HeldInput {
        &mut self.inflating().held
    }

    /// Whether input is held behind inflated data, not yet processed.
    pub(super) fn has_held_input(&self) -> bool {
        self.inflating.as_ref().is_some_and(|i| i.held.start < i.held.bytes.len())
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            header_buf: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            inflating: None,
            inflated_waiting: false,
            left_in_buf: 0,
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
    /// Messages mode: the payload so far (text validated as it arrives). Streaming mode: `None`.
    assembled: Option<Assembler>,
    /// Payload bytes so far, all frames.
    len: usize,
    fragments: usize,
    /// Streaming mode: text validated across chunks.
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

/// Buffered input ([`Connection::receive_buf`](crate::Connection::receive_buf)): the largest
/// frame payload left in the caller's buffer until all of it has arrived, so that it can be
/// split off without a copy. A longer frame is taken piece by piece, as from a slice.
pub const MAX_BUFFERED_FRAME: usize = 64 << 10;

/// Where received bytes come from: a borrowed slice (payloads are copied out of it), or the
/// caller's buffer (whole frames are split off it without a copy, and an unfinished small
/// frame is left in it, to be completed by the next read).
pub(super) enum Input<'a> {
    Slice(&'a [u8]),
    Buf(&'a mut BytesMut),
}

impl Input<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Slice(slice) => slice,
            Input::Buf(buf) => buf,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Input::Slice(slice) => *slice = &slice[n..],
            Input::Buf(buf) => buf.advance(n),
        }
    }
}

/// What [`Connection::receive_whole_frame`] did.
enum WholeFrame {
    /// Split off and reported.
    Taken,
    /// Not all of it is at hand yet: leave it in the buffer.
    Incomplete,
    /// Not a frame for this path; the general one takes it (and reports its errors).
    Other,
}

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
        let mut input = Input::Slice(input);
        self.process_frames(&mut input);
        if self.recv.inflated_waiting && !input.bytes().is_empty() {
            self.recv.held_mut().bytes.extend_from_slice(input.bytes());
        }
    }

    /// Buffered input: as [`receive_frames`](Self::receive_frames), but whole frames are split
    /// off `buf`, and an unfinished frame of at most [`MAX_BUFFERED_FRAME`] is left in it.
    pub(super) fn receive_frames_buf(&mut self, buf: &mut BytesMut) {
        let mut input = Input::Buf(buf);
        let left = self.process_frames(&mut input);
        if !left {
            return;
        }
        if self.recv.inflated_waiting && !input.bytes().is_empty() {
            self.recv.held_mut().bytes.extend_from_slice(input.bytes());
            input.advance(input.bytes().len());
        }
    }

    /// Processes frames until the input is used up, the connection ends, inflated data waits
    /// to be taken, or (buffered input) an unfinished frame is left for the next read. Answers
    /// whether the input left is still wanted; if not, it was all consumed.
    fn process_frames(&mut self, input: &mut Input<'_>) -> bool {
        while !input.bytes().is_empty()
            && matches!(self.state, State::Open | State::Closing)
            && !self.ending_pending()
            && !self.recv.inflated_waiting
        {
            if let Input::Buf(buf) = input {
                match self.receive_whole_frame(buf) {
                    Ok(WholeFrame::Taken) => continue,
                    Ok(WholeFrame::Incomplete) => return true,
                    Ok(WholeFrame::Other) => {}
                    Err(error) => {
                        self.fail(error);
                        buf.clear();
                        return false;
                    }
                }
            }
            let step = if self.recv.frame.is_some() {
                self.receive_payload(input.bytes())
            } else {
                self.receive_header(input.bytes())
            };
            match step {
                Ok(consumed) => input.advance(consumed),
                Err(error) => {
                    self.fail(error);
                    input.advance(input.bytes().len());
                    return false;
                }
            }
        }
        if matches!(self.state, State::Open | State::Closing) && !self.ending_pending() {
            true
        } else {
            input.advance(input.bytes().len());
            false
        }
    }

    /// Buffered input, between frames: an unfragmented, uncompressed data message whose frame
    /// is all in `buf` is unmasked in place and split off without a copy; text is validated
    /// once, whole. The frame must pass every check of [`on_header`](Self::on_header) here;
    /// anything else is the general path's, which reports the error.
    fn receive_whole_frame(&mut self, buf: &mut BytesMut) -> Result<WholeFrame, ProtocolError> {
        let between_frames = self.recv.frame.is_none() && self.recv.header_len == 0;
        if !between_frames || self.recv.message.is_some() || self.config.receive_mode != ReceiveMode::Messages {
            return Ok(WholeFrame::Other);
        }
        let Some((header, header_len)) = FrameHeader::parse(buf)? else { return Ok(WholeFrame::Incomplete) };
        let mask_ok = match self.role {
            Role::Server => header.mask.is_some(),
            Role::Client => header.mask.is_none(),
        };
        let limit = self.config.max_frame_size.min(self.config.max_message_size).min(MAX_BUFFERED_FRAME) as u64;
        let plain_data = header.fin && header.rsv == 0 && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if !plain_data || !mask_ok || header.payload_len > limit {
            return Ok(WholeFrame::Other);
        }
        let len = header.payload_len as usize;
        if buf.len() - header_len < len {
            return Ok(WholeFrame::Incomplete);
        }
        buf.advance(header_len);
        let mut payload = buf.split_to(len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        let payload = payload.freeze();
        let message = if header.opcode == OpCode::Text {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        } else {
            Message::Binary(payload)
        };
        self.events.push_back(Event::Message(message));
        Ok(WholeFrame::Taken)
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
        let mut held = std::mem::take(self.recv.held_mut());
        let mut input = Input::Slice(&held.bytes[held.start..]);
        self.process_frames(&mut input);
        let left = input.bytes().len();
        if self.recv.inflated_waiting && left > 0 {
            held.start = held.bytes.len() - left;
            *self.recv.held_mut() = held;
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
                    self.recv.header_len = input.len() as u8;
                    return Ok(input.len());
                }
            }
        } else {
            let had = usize::from(self.recv.header_len);
            let take = input.len().min(MAX_HEADER_LEN - had);
            self.recv.header_buf[had..had + take].copy_from_slice(&input[..take]);
            match FrameHeader::parse(&self.recv.header_buf[..had + take])? {
                Some((header, len)) => {
                    self.recv.header_len = 0;
                    (header, len - had)
                }
                None => {
                    self.recv.header_len = (had + take) as u8;
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
                    let assembled = (!streaming).then(|| Assembler::new(kind, len.min(available)));
                    self.recv.message = Some(Box::new(MessageInProgress {
                        kind,
                        assembled,
                        len: 0,
                        fragments: 1,
                        utf8: Utf8Validator::new(),
                        reported: false,
                        compressed,
                        inflated: 0,
                        inflater_full: false,
                    }));
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
                    if let Some(assembled) = message.assembled.as_mut() {
                        match mask {
                            Some(key) => assembled.push_masked(chunk, key, offset),
                            None => assembled.push(chunk),
                        }
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
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
                    self.events.push_back(Event::Chunk { kind: message.kind, data: data.into(), first, last });
                }
            }
        }
        self.finish_payload(done, take)
    }

    /// Inflates payload bytes of a compressed message (RFC 7692 §7.2.2); answers how many it
    /// took, which in streaming mode may be fewer than offered (see [`Self::inflate`]).
    fn receive_compressed_payload(&mut self, chunk: &[u8]) -> Result<usize, ProtocolError> {
        let Some((mask, received)) = self.recv.frame.as_ref().map(|f| (f.mask, f.received)) else { return Ok(0) };
        let mut scratch = std::mem::take(&mut self.recv.inflating().scratch);
        scratch.clear();
        scratch.extend_from_slice(chunk);
        if let Some(key) = mask {
            apply_mask(&mut scratch, key, received);
        }
        let took = self.inflate(&scratch);
        self.recv.inflating().scratch = scratch;
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
        let took = compression.inflate(
            input,
            &mut message.inflated,
            limit,
            max_output,
            &mut inflated_sink(message.kind, &mut message.assembled, &mut streamed, &mut message.utf8),
        )?;
        message.len += took;
        message.inflater_full = streamed.len() == max_output;
        if !streamed.is_empty() {
            let first = !message.reported;
            message.reported = true;
            self.events.push_back(Event::Chunk { kind: message.kind, data: streamed.into(), first, last: false });
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
                let payload = Bytes::from(std::mem::take(&mut self.recv.control));
                if self.config.auto_pong && self.state == State::Open {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => {
                let payload = Bytes::from(std::mem::take(&mut self.recv.control));
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
            compression.finish_message(
                &mut message.inflated,
                limit,
                &mut inflated_sink(message.kind, &mut message.assembled, &mut tail, &mut message.utf8),
            )?;
        }
        self.recv.inflated_waiting |= message.compressed;
        match message.assembled.take() {
            Some(assembled) => {
                let message = assembled.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                self.events.push_back(Event::Message(message));
            }
            None => {
                if message.kind == MessageKind::Text && !message.utf8.is_complete() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                if final_frame_empty || message.compressed {
                    let first = !message.reported;
                    self.events.push_back(Event::Chunk { kind: message.kind, data: tail.into(), first, last: true });
                }
            }
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

/// Where inflated bytes go: into the message being assembled (messages mode), or appended to
/// `streamed` and validated across chunks when text (streaming mode).
fn inflated_sink<'a>(
    kind: MessageKind,
    assembled: &'a mut Option<Assembler>,
    streamed: &'a mut Vec<u8>,
    utf8: &'a mut Utf8Validator,
) -> impl FnMut(&[u8]) -> Result<(), ProtocolError> + 'a {
    let text = kind == MessageKind::Text;
    move |piece| {
        match assembled.as_mut() {
            Some(assembled) => assembled.push(piece),
            None => {
                let checked = if text { utf8.feed(piece) } else { Ok(()) };
                streamed.extend_from_slice(piece);
                checked
            }
        }
        .map_err(|_| ProtocolError::InvalidUtf8)
    }
}
