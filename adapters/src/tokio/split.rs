//! A [`WebSocket`] split into a [`Reader`] and a [`Writer`] for two tasks.
//!
//! Both halves share the connection and the stream behind a `std` mutex that is held only for
//! the synchronous part of one poll (handing bytes to the core, one non-blocking read or
//! write), never across an await: a writer waiting for a peer that does not read does not
//! stop the reader, and the other way round. The stream keeps one waker per direction, so the
//! halves poll it with a waker that wakes both of them: whichever half the stream wakes, each
//! polls again and finds whether its own work can go on.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use ::tokio::io::{AsyncRead, AsyncWrite};
use futures_core::Stream;
use futures_sink::Sink;
use wsproto::{CloseCode, Closed, Message};

use super::engine::Engine;
use super::{close_engine, poll_message, poll_until_closed, Error, WebSocket};

const READER: usize = 0;
const WRITER: usize = 1;

/// The halves' wakers: the waker handed to the stream and the timer wakes both.
#[derive(Default)]
struct Wakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = std::mem::take(&mut *self.slots.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

struct Shared<S> {
    engine: Mutex<Engine<S>>,
    wakers: Arc<Wakers>,
    /// The waker that wakes both halves, made once.
    both: Waker,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Shared<S> {
    /// Runs `f` on the engine with the lock held, as half `me`, with a context whose waker
    /// wakes both halves.
    fn poll<T>(&self, me: usize, cx: &mut Context<'_>, f: impl FnOnce(&mut Engine<S>, &mut Context<'_>) -> T) -> T {
        {
            let mut slots = self.wakers.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut slots[me] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        let mut engine = self.lock();
        let mut both = Context::from_waker(&self.both);
        f(&mut engine, &mut both)
    }

    fn lock(&self) -> MutexGuard<'_, Engine<S>> {
        // A panic in the other half leaves the engine as consistent as any return would.
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) fn split<S: AsyncRead + AsyncWrite + Unpin>(engine: Engine<S>) -> (Reader<S>, Writer<S>) {
    let wakers = Arc::new(Wakers::default());
    let shared = Arc::new(Shared { engine: Mutex::new(engine), both: Waker::from(wakers.clone()), wakers });
    (Reader { shared: shared.clone() }, Writer { shared })
}

/// The reading half of a split [`WebSocket`]: a [`Stream`] of messages and
/// [`recv`](Self::recv), with everything the whole does while reading: pongs, keep-alive and
/// close timers, the peer's close answered and the transport ended. It also writes what the
/// [`Writer`] queued, so a writer that sleeps does not hold up a pong. Keep it polled: the
/// timers and the answers to the peer run only while it (or, once it is dropped, the writer's
/// [`close`](Writer::close)) is.
///
/// Cancel-safe as [`WebSocket::recv`].
pub struct Reader<S> {
    shared: Arc<Shared<S>>,
}

/// The writing half of a split [`WebSocket`]: a [`Sink`] of messages, [`send`](Self::send),
/// [`ping`](Self::ping) and [`close`](Self::close).
///
/// Cancel-safe as [`WebSocket::send`].
pub struct Writer<S> {
    shared: Arc<Shared<S>>,
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

/// [`Reader::reunite`] was given halves of two different connections; they come back.
pub struct ReuniteError<S>(pub Reader<S>, pub Writer<S>);

impl<S> std::fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<S> std::fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader and the writer are halves of different connections")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}

impl<S: AsyncRead + AsyncWrite + Unpin> Reader<S> {
    /// The next message, as [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| self.shared.poll(READER, cx, poll_message)).await
    }

    /// How the connection ended, once it has.
    pub fn closed(&self) -> Option<Closed> {
        self.shared.lock().ended.clone()
    }

    /// Puts the halves back together; fails if they are halves of different connections.
    pub fn reunite(self, writer: Writer<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.shared, &writer.shared) {
            return Err(ReuniteError(self, writer));
        }
        drop(writer);
        // Only the two halves hold the shared state (the wakers do not), so this is the last.
        let shared = match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared,
            Err(shared) => return Err(ReuniteError(Reader { shared: shared.clone() }, Writer { shared })),
        };
        let engine = shared.engine.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(WebSocket::from_engine(engine))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Writer<S> {
    /// Sends a message, as [`WebSocket::send`]: waits below the high-water mark, queues the
    /// message whole (or, cancelled before, nothing), writes it out.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        let mut message = Some(message);
        std::future::poll_fn(|cx| self.shared.poll(WRITER, cx, |e, cx| e.poll_queue_message(cx, &mut message))).await?;
        self.flush().await
    }

    /// Queues a message without waiting for it to be written, as [`WebSocket::feed`]; the
    /// next `send` or `flush` of this half, or the [`Reader`]'s next poll, writes it.
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        let mut message = Some(message);
        std::future::poll_fn(|cx| self.shared.poll(WRITER, cx, |e, cx| e.poll_queue_message(cx, &mut message))).await
    }

    /// Sends a ping (at most 125 bytes) and writes it out.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.shared.lock().conn.ping(payload)?;
        self.flush().await
    }

    /// Writes everything queued and flushes the stream.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.shared.poll(WRITER, cx, |e, cx| e.poll_flush(cx))).await
    }

    /// Sends a close frame and writes it out. The [`Reader`] then sees the peer's answer and
    /// ends the transport (its stream ends); if the reader was dropped, this waits for the end
    /// itself, as [`WebSocket::close`], and answers how it ended. With a reader, answers `None`
    /// once the close frame is written.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<Option<Closed>, Error> {
        close_engine(&mut self.shared.lock(), code, reason)?;
        // Only the two halves own the shared state: a count of two means the reader lives.
        if Arc::strong_count(&self.shared) > 1 {
            match self.flush().await {
                Ok(()) | Err(Error::Closed) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        std::future::poll_fn(|cx| self.shared.poll(WRITER, cx, poll_until_closed)).await.map(Some)
    }

    /// Sends wait while more than `bytes` are queued (see [`WebSocket::set_high_water`]).
    pub fn set_high_water(&mut self, bytes: usize) {
        let mut engine = self.shared.lock();
        engine.high_water = bytes.min(engine.conn.config().max_queued_bytes);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Reader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.poll(READER, cx, poll_message)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for Writer<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(WRITER, cx, |e, cx| e.poll_ready(cx))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.shared.lock().start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(WRITER, cx, |e, cx| e.poll_flush(cx))
    }

    /// Sends a close frame (1000) and writes it out; the [`Reader`] sees the rest.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(WRITER, cx, |e, cx| {
            close_engine(e, CloseCode::NORMAL, "")?;
            match e.poll_flush(cx) {
                Poll::Ready(Err(Error::Closed)) => Poll::Ready(Ok(())),
                other => other,
            }
        })
    }
}
