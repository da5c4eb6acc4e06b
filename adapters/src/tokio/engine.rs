//! The run loop of one connection as poll functions: the core, the stream and the timer of a
//! [`WebSocket`](super::WebSocket) or of its split halves, driven from whichever task polls.
//!
//! Every input goes into the core in the same poll that read it, and every output leaves the
//! core only when it is handed to the caller: a poll that is dropped half-way (a cancelled
//! future) leaves nothing behind but state the next poll resumes from.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::time::Sleep;
use wsproto::{
    CloseCause, Closed, Connection, Event, HandshakeError, Message, MessageNotSent, Role, SendError, UsageError,
};

use super::Error;

/// How many bytes one read takes from the stream: also what the core may hold of unread
/// events, since the stream is read only once the events before are taken. The buffer is on
/// the stack of the poll that reads (what it read goes into the core in the same poll), so an
/// idle connection holds none.
pub const READ_BUFFER_SIZE: usize = 16 << 10;

/// How many queued chunks one vectored write hands the stream.
const MAX_WRITE_SLICES: usize = 32;

/// Where the transport is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Reading and writing.
    Open,
    /// The connection has ended: the last bytes leave, then our side shuts down.
    Draining,
    /// We shut our side down; reading and discarding until the peer's end of stream.
    Lingering,
    /// Done: the `Closed` event was handed out or the transport failed.
    Finished,
}

/// One connection's state: what a [`WebSocket`](super::WebSocket) owns, and what its split
/// halves share behind a lock.
pub(crate) struct Engine<S> {
    pub(crate) stream: S,
    pub(crate) conn: Connection,
    /// The timer for the core's next deadline (or the linger deadline), armed when a poll
    /// would otherwise wait without one.
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Instant>,
    /// The `Closed` event, held back until the transport is done.
    closed: Option<Closed>,
    /// How the connection ended, once `Closed` was handed out (for `WebSocket::closed`).
    pub(crate) ended: Option<Closed>,
    transport: Transport,
    /// Until when an ended connection's last bytes may take to leave and the peer to end its
    /// stream (the core's close timeout, from the end).
    linger_until: Option<Instant>,
    eof: bool,
    /// Sends wait while more than this is queued (the high-water mark).
    pub(crate) high_water: usize,
    /// A message the `Sink` accepted that did not fit the queue yet; queued before any other.
    pending: Option<Message>,
}

impl<S> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("conn", &self.conn)
            .field("transport", &self.transport)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

/// The default high-water mark: what a send may leave queued before the next one waits.
pub(crate) fn default_high_water(conn: &Connection) -> usize {
    (64 << 10).min(conn.config().max_queued_bytes)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Engine<S> {
    pub(crate) fn new(stream: S, conn: Connection) -> Self {
        let high_water = default_high_water(&conn);
        Engine {
            stream,
            conn,
            sleep: Box::pin(::tokio::time::sleep_until(::tokio::time::Instant::now())),
            sleep_at: None,
            closed: None,
            ended: None,
            transport: Transport::Open,
            linger_until: None,
            eof: false,
            high_water,
            pending: None,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.transport == Transport::Finished
    }

    /// The transport failed: the connection is over.
    fn fail(&mut self, error: io::Error) -> Error {
        tracing::debug!("transport failed: {error}");
        self.transport = Transport::Finished;
        if self.ended.is_none() {
            self.ended = self.closed.take();
        }
        Error::Io(error)
    }

    /// Writes queued bytes until at most `keep` remain (and flushes the stream when none do).
    /// Pending while the stream cannot take more.
    pub(crate) fn poll_write_queue(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<Result<(), Error>> {
        if self.transport == Transport::Finished || self.transport == Transport::Lingering {
            return Poll::Ready(Ok(()));
        }
        while self.conn.queued_bytes() > keep {
            // One contiguous slice goes by a plain write (`send` on a socket), which skips the
            // file layer `writev` goes through.
            let written =
                if self.stream.is_write_vectored() && self.conn.outgoing_front().len() < self.conn.queued_bytes() {
                    let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                    let count = self.conn.outgoing(&mut slices);
                    Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..count])
                } else {
                    Pin::new(&mut self.stream).poll_write(cx, self.conn.outgoing_front())
                };
            match ready!(written) {
                Ok(0) => return Poll::Ready(Err(self.fail(io::ErrorKind::WriteZero.into()))),
                Ok(n) => self.conn.advance_outgoing(Instant::now(), n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(self.fail(error))),
            }
        }
        if self.conn.queued_bytes() == 0 {
            if let Err(error) = ready!(Pin::new(&mut self.stream).poll_flush(cx)) {
                return Poll::Ready(Err(self.fail(error)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Ready once `message` is queued whole in the core (or refused): first what the `Sink`
    /// held back, then room below the high-water mark, then for a message the core's queue has
    /// no room for (`Config::max_queued_bytes`), an empty queue (which the core always
    /// accepts). Cancel-safe: until it answers, `message` is in its slot (the core hands back
    /// a message it did not queue).
    pub(crate) fn poll_queue_message(
        &mut self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
    ) -> Poll<Result<(), Error>> {
        ready!(self.poll_ready(cx))?;
        loop {
            let Some(next) = message.take() else { return Poll::Ready(Ok(())) };
            match self.queue(next)? {
                None => return Poll::Ready(Ok(())),
                Some(refused) => {
                    *message = Some(refused);
                    ready!(self.poll_write_queue(cx, 0))?;
                }
            }
        }
    }

    /// Queues `message` in the core; answers it back if the queue is too full for it now.
    fn queue(&mut self, message: Message) -> Result<Option<Message>, Error> {
        if self.transport != Transport::Open {
            return Err(Error::Closed);
        }
        match self.conn.send(message) {
            Ok(()) => Ok(None),
            Err(MessageNotSent { error: SendError::QueueFull { .. }, message }) if self.conn.queued_bytes() > 0 => {
                Ok(Some(message))
            }
            Err(MessageNotSent { error: SendError::Usage(UsageError::Closed), .. }) => Err(Error::Closed),
            Err(MessageNotSent { error: SendError::Usage(error), .. }) => Err(Error::Usage(error)),
            Err(MessageNotSent { error, .. }) => Err(Error::Send(error)),
        }
    }

    /// The `Sink`'s readiness: the held-back message is queued and the queue is at most at
    /// the high-water mark.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while let Some(message) = self.pending.take() {
            if let Some(refused) = self.queue(message)? {
                self.pending = Some(refused);
                ready!(self.poll_write_queue(cx, 0))?;
            }
        }
        if self.transport == Transport::Finished {
            return Poll::Ready(Err(Error::Closed));
        }
        let high_water = self.high_water;
        self.poll_write_queue(cx, high_water)
    }

    /// The `Sink`'s `start_send`: queues `message`, or holds it until it fits (the next
    /// `poll_ready` or flush queues it).
    pub(crate) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        if self.pending.is_some() {
            return Err(Error::Send(SendError::QueueFull {
                queued: self.conn.queued_bytes(),
                limit: self.conn.config().max_queued_bytes,
            }));
        }
        self.pending = self.queue(message)?;
        Ok(())
    }

    /// Everything accepted is written and the stream flushed.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_ready(cx))?;
        self.poll_write_queue(cx, 0)
    }

    /// The next event of the connection, running the run loop until one comes: writes what is
    /// queued (pongs, close echoes, sends), runs due timers, reads when the core wants input
    /// and ends the transport once the connection has ended. The last event is `Closed`, once
    /// the transport is done; after it (or an error) `Err(Error::Closed)`.
    ///
    /// Cancel-safe: an event leaves the core only in the poll that answers it, and read bytes
    /// go into the core in the poll that read them.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        loop {
            if self.transport == Transport::Finished {
                return Poll::Ready(Err(Error::Closed));
            }
            while self.closed.is_none() {
                match self.conn.poll_event() {
                    Some(Event::Closed(closed)) => {
                        tracing::debug!(code = closed.code.0, clean = closed.clean, "closed: {:?}", closed.cause);
                        self.closed = Some(*closed);
                    }
                    Some(event) => return Poll::Ready(Ok(event)),
                    None => break,
                }
            }
            // Errors end the connection; a full socket only means the bytes leave later.
            if let Poll::Ready(Err(error)) = self.poll_write_queue(cx, 0) {
                return self.failed(error);
            }
            if self.conn.should_close_transport() && self.transport == Transport::Open {
                self.transport = Transport::Draining;
            }
            match self.transport {
                Transport::Draining => {
                    if self.conn.queued_bytes() > 0 && !self.linger_expired() {
                        ready!(self.poll_linger_timer(cx));
                        continue;
                    }
                    // Our last bytes are out (or given up on): shut our side down (a TLS
                    // stream may take more than one poll for its close_notify).
                    if !self.linger_expired() {
                        match Pin::new(&mut self.stream).poll_shutdown(cx) {
                            Poll::Pending => {
                                ready!(self.poll_linger_timer(cx));
                                continue;
                            }
                            Poll::Ready(Err(error)) => tracing::debug!("shutdown failed: {error}"),
                            Poll::Ready(Ok(())) => {}
                        }
                    }
                    self.transport = if self.peer_done() { Transport::Finished } else { Transport::Lingering };
                    if self.transport == Transport::Finished {
                        return Poll::Ready(self.hand_out_closed());
                    }
                    continue;
                }
                Transport::Lingering => {
                    ready!(self.poll_linger(cx));
                    self.transport = Transport::Finished;
                    return Poll::Ready(self.hand_out_closed());
                }
                Transport::Open | Transport::Finished => {}
            }
            // Timers.
            let now = Instant::now();
            match self.conn.poll_timeout() {
                Some(at) if at <= now => {
                    self.conn.handle_timeout(now);
                    continue;
                }
                Some(at) if self.poll_sleep(cx, at).is_ready() => {
                    self.conn.handle_timeout(Instant::now());
                    continue;
                }
                _ => {}
            }
            if !self.conn.wants_read() {
                // The core holds events or waits for the application (a server's answer to a
                // request): take those first; the socket is not read meanwhile.
                if self.conn.should_close_transport() {
                    continue;
                }
                return Poll::Pending;
            }
            let mut storage = [const { MaybeUninit::<u8>::uninit() }; READ_BUFFER_SIZE];
            let mut buf = ReadBuf::uninit(&mut storage);
            match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => {
                    tracing::debug!("the peer ended its stream");
                    self.eof = true;
                    self.conn.receive_eof(Instant::now());
                }
                Ok(()) => self.conn.receive(Instant::now(), buf.filled()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.failed(Error::Io(error)),
            }
        }
    }

    /// The stream failed while the run loop ran: once the connection had ended, the failure
    /// only cut the linger short.
    fn failed(&mut self, error: Error) -> Poll<Result<Event, Error>> {
        self.transport = Transport::Finished;
        if let Some(closed) = self.closed.take() {
            tracing::debug!("transport failed after the close: {error}");
            self.ended = Some(closed.clone());
            return Poll::Ready(Ok(Event::Closed(Box::new(closed))));
        }
        if let Error::Io(error) = error {
            return Poll::Ready(Err(self.fail(error)));
        }
        Poll::Ready(Err(error))
    }

    fn hand_out_closed(&mut self) -> Result<Event, Error> {
        match self.closed.take() {
            Some(closed) => {
                self.ended = Some(closed.clone());
                Ok(Event::Closed(Box::new(closed)))
            }
            // The core ends every connection with a `Closed` event; do not wait for one forever.
            None => Err(Error::Closed),
        }
    }

    /// Whether the peer needs no lingering for: it ended its stream, a client closed cleanly
    /// (the server's end of stream or the close timeout came first), or it stopped answering.
    fn peer_done(&self) -> bool {
        let Some(closed) = &self.closed else { return true };
        self.eof
            || (self.conn.role() == Role::Client && closed.clean)
            || matches!(
                closed.cause,
                CloseCause::KeepAliveTimeout | CloseCause::CloseTimeout | CloseCause::DrainTimeout
            )
            || matches!(closed.cause, CloseCause::Handshake(HandshakeError::Timeout))
    }

    fn linger_deadline(&mut self) -> Instant {
        let close_timeout = self.conn.config().close_timeout;
        *self.linger_until.get_or_insert_with(|| Instant::now() + close_timeout)
    }

    fn linger_expired(&mut self) -> bool {
        Instant::now() >= self.linger_deadline()
    }

    fn poll_linger_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.linger_deadline();
        self.poll_sleep(cx, at)
    }

    /// After our shutdown: reads and discards until the peer's end of stream or the linger
    /// deadline, so that unread input does not make the kernel reset the connection and
    /// destroy our close frame before the peer read it.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.poll_linger_timer(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut storage = [const { MaybeUninit::<u8>::uninit() }; 4096];
            let mut buf = ReadBuf::uninit(&mut storage);
            match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(()),
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    /// Ready once `at` has passed; otherwise the timer is armed to wake this task then.
    fn poll_sleep(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        if self.sleep_at != Some(at) {
            self.sleep.as_mut().reset(::tokio::time::Instant::from_std(at));
            self.sleep_at = Some(at);
        }
        self.sleep.as_mut().poll(cx)
    }
}
