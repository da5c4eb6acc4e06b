//! A [`WebSocket`] split into a [`Reader`] and a [`Writer`] for two threads: one blocks in
//! reads while the other sends.
//!
//! Both halves share the connection behind a mutex, and each has its own clone of the stream
//! ([`Transport::try_clone`]). The lock is never held across a blocking read, nor across the
//! writer's blocking writes: the reader reads with it released and takes it to hand the bytes
//! to the connection; the writer copies up to [`WRITE_CHUNK`] bytes of the queue and writes them
//! with the lock released, so a write blocked on a peer that is not reading does not stop the
//! reader from reading (which such a peer may be waiting for before it reads again). While the
//! writer writes, the connection is marked as being written, and what the reader queues
//! meanwhile (pongs, a close echo) goes out in the writer's same loop; when the writer is idle,
//! the reader writes those control frames itself.

use std::io::{self, IoSlice};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use wsproto::{CloseCode, Connection, Message, MessageKind, SendError};

use super::{
    is_timeout, socket_timeout, Error, Incoming, Step, Transport, WebSocket, MAX_WRITE_SLICES, READ_BUFFER_SIZE,
};

/// The most bytes of the queue the writer copies for one write with the lock released.
const WRITE_CHUNK: usize = 64 << 10;

struct Shared<S> {
    ws: Mutex<WebSocket<S>>,
    /// Signalled when the writer has finished a write (`writer_active` went false).
    written: Condvar,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, WebSocket<S>> {
        // A panic in the other half leaves the connection as consistent as any return would.
        self.ws.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reading half of a split [`WebSocket`]: [`read`](Reader::read) as on the whole,
/// including auto-pong, the close handshake and the end of the transport.
pub struct Reader<S> {
    shared: Arc<Shared<S>>,
    stream: S,
    read_buf: Box<[u8]>,
}

/// The writing half of a split [`WebSocket`]: the `send_*` methods, `ping`, `pong`, `close`.
pub struct Writer<S> {
    shared: Arc<Shared<S>>,
    stream: S,
    write_buf: Vec<u8>,
}

impl<S> std::fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl<S> std::fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

/// [`WebSocket::split`] failed: the stream could not be cloned. The connection comes back
/// untouched.
pub struct SplitError<S> {
    /// The connection, as it was.
    pub websocket: Box<WebSocket<S>>,
    /// Why the stream could not be cloned.
    pub error: io::Error,
}

impl<S> std::fmt::Debug for SplitError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitError").field("error", &self.error).finish_non_exhaustive()
    }
}

impl<S> std::fmt::Display for SplitError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot split the WebSocket: {}", self.error)
    }
}

impl<S> std::error::Error for SplitError<S> {}

impl<S: Transport> WebSocket<S> {
    /// Splits the connection into a reader and a writer that two threads use at once (see the
    /// module docs, "Threads"); [`Reader::reunite`] puts them back together. Needs two clones
    /// of the stream ([`Transport::try_clone`]).
    pub fn split(self) -> Result<(Reader<S>, Writer<S>), SplitError<S>> {
        let clones = self.stream.try_clone().and_then(|a| Ok((a, self.stream.try_clone()?)));
        let (read_stream, write_stream) = match clones {
            Ok(clones) => clones,
            Err(error) => return Err(SplitError { websocket: Box::new(self), error }),
        };
        let shared = Arc::new(Shared { ws: Mutex::new(self), written: Condvar::new() });
        let reader = Reader {
            shared: shared.clone(),
            stream: read_stream,
            read_buf: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
        };
        let writer = Writer { shared, stream: write_stream, write_buf: Vec::new() };
        Ok((reader, writer))
    }
}

impl<S: Transport> Reader<S> {
    /// Blocks until the next message or event, as [`WebSocket::read`] does, while the writer
    /// may send. Once the connection has ended, ending the transport waits for a write the
    /// writer has under way (bounded by the write timeouts). After the transport failed under
    /// the writer (which got the I/O error), this answers [`Error::Closed`].
    pub fn read(&mut self) -> Result<Incoming, Error> {
        let mut ws = self.shared.lock();
        loop {
            let timeout = match ws.step() {
                Step::Done(answer) => return answer,
                Step::Read(timeout) => timeout,
                Step::WaitForWriter => {
                    ws = self.shared.written.wait(ws).unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
            };
            if let Err(error) = ws.set_read_timeout_on(&mut self.stream, socket_timeout(timeout)) {
                return ws.pump_failed(error);
            }
            drop(ws);
            let result = self.stream.read(&mut self.read_buf).map(|n| &self.read_buf[..n]);
            ws = self.shared.lock();
            if let Some(answer) = ws.after_read(result, timeout) {
                return answer;
            }
        }
    }

    /// The subprotocol agreed in the opening handshake.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.lock().conn.subprotocol().map(str::to_owned)
    }

    /// Puts the halves back together. Fails, answering both, if they come from different
    /// connections.
    pub fn reunite(self, writer: Writer<S>) -> Result<WebSocket<S>, (Reader<S>, Writer<S>)> {
        if !Arc::ptr_eq(&self.shared, &writer.shared) {
            return Err((self, writer));
        }
        let Reader { shared, .. } = self;
        drop(writer);
        match Arc::try_unwrap(shared) {
            Ok(shared) => Ok(shared.ws.into_inner().unwrap_or_else(PoisonError::into_inner)),
            Err(_) => unreachable!("only the two halves hold the connection"),
        }
    }
}

impl<S: Transport> Writer<S> {
    /// Sends a message (see [`WebSocket::send`]) and writes it out.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.queue(|conn| conn.send(message).map_err(|e| e.error))
    }

    /// Sends a message without compressing it and writes it out.
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), Error> {
        self.queue(|conn| conn.send_uncompressed(message).map_err(|e| e.error))
    }

    /// Sends a text message and writes it out.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.queue(|conn| conn.send_text(text))
    }

    /// Sends a binary message and writes it out.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.queue(|conn| conn.send_binary(data))
    }

    /// Sends one fragment of a message (RFC 6455 §5.4), see [`WebSocket::send_fragment`].
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), Error> {
        self.queue(|conn| conn.send_fragment(kind, data, fin))
    }

    /// Sends a ping (at most 125 bytes); the pong comes to the [`Reader`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue(|conn| Ok(conn.ping(payload)?))
    }

    /// Sends a pong (at most 125 bytes), see [`WebSocket::pong`].
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue(|conn| Ok(conn.pong(payload)?))
    }

    /// Starts the close handshake (RFC 6455 §7.1.2); the [`Reader`] answers
    /// [`Incoming::Closed`] once it is done.
    ///
    /// A read the reader has already blocked in keeps the timeout it started with, so the close
    /// timeout bounds the handshake only from the reader's next read: with `Config::keep_alive`
    /// off and a peer that never answers, the reader waits until the peer or TCP ends the
    /// connection. Keep-alive bounds every read.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.queue(|conn| Ok(conn.close(code, reason)?))
    }

    /// Writes everything queued (the other methods do this themselves).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.queue(|_| Ok(()))
    }

    fn queue(&mut self, command: impl FnOnce(&mut Connection) -> Result<(), SendError>) -> Result<(), Error> {
        let Writer { shared, stream, write_buf } = self;
        let mut ws = shared.lock();
        command(&mut ws.conn)?;
        write_out(shared, stream, write_buf, ws)
    }
}

/// The writer's loop: writes the queue until it is empty, a copied chunk at a time with the lock
/// released.
fn write_out<'a, S: Transport>(
    shared: &'a Shared<S>,
    stream: &mut S,
    write_buf: &mut Vec<u8>,
    mut ws: MutexGuard<'a, WebSocket<S>>,
) -> Result<(), Error> {
    while !ws.finished && !ws.shut_down && ws.conn.queued_bytes() > 0 {
        let timeout = ws.write_timeout();
        if let Err(error) = ws.set_write_timeout_on(stream, timeout) {
            return Err(ws.fail(error));
        }
        write_buf.clear();
        {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let count = ws.conn.outgoing(&mut slices);
            for slice in &slices[..count] {
                let take = slice.len().min(WRITE_CHUNK - write_buf.len());
                write_buf.extend_from_slice(&slice[..take]);
                if write_buf.len() == WRITE_CHUNK {
                    break;
                }
            }
        }
        ws.writer_active = true;
        drop(ws);
        let written = stream.write(write_buf).and_then(|n| stream.flush().map(|()| n));
        ws = shared.lock();
        ws.writer_active = false;
        shared.written.notify_all();
        match written {
            Ok(0) => return Err(ws.fail(io::ErrorKind::WriteZero.into())),
            Ok(n) => ws.conn.advance_outgoing(Instant::now(), n),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if is_timeout(&error) && timeout.is_some() => ws.write_timed_out(),
            Err(error) => return Err(ws.fail(error)),
        }
    }
    Ok(())
}
