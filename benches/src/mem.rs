//! In-memory streams for running the peers' codecs without sockets: reads come from a buffer
//! set before each batch, writes are counted and discarded (for every library alike).

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream that reads from a buffer and discards what is written. When the input runs dry,
/// a read answers `WouldBlock` (sync) or `Pending` (async): a bench reads exactly the messages
/// it put in, so a library that wants more than that is reported as a bug in the bench.
///
/// The input is set through a [`Feeder`], because some libraries (fastwebsockets'
/// `FragmentCollector`) give no access to the stream they own.
#[derive(Debug, Default)]
pub struct MemStream {
    input: Rc<RefCell<Input>>,
    /// Bytes written so far.
    pub written: usize,
}

#[derive(Debug, Default)]
struct Input {
    bytes: Bytes,
    pos: usize,
}

/// Sets the input of the [`MemStream`] it was made with.
#[derive(Debug, Clone)]
pub struct Feeder(Rc<RefCell<Input>>);

impl Feeder {
    /// Sets the bytes the next reads answer (cheap: `Bytes` is reference counted).
    pub fn set(&self, bytes: Bytes) {
        *self.0.borrow_mut() = Input { bytes, pos: 0 };
    }

    /// Input bytes not read yet.
    pub fn remaining(&self) -> usize {
        let input = self.0.borrow();
        input.bytes.len() - input.pos
    }
}

impl MemStream {
    /// A stream with no input yet, and the feeder that sets it.
    pub fn new() -> (MemStream, Feeder) {
        let stream = MemStream::default();
        let feeder = Feeder(stream.input.clone());
        (stream, feeder)
    }

    /// Copies input into `buf`; `None` when the input is exhausted.
    fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut input = self.input.borrow_mut();
        let Input { bytes, pos } = &mut *input;
        let n = buf.len().min(bytes.len() - *pos);
        if n == 0 && !buf.is_empty() {
            return None;
        }
        buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
        *pos += n;
        Some(n)
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.take(buf).ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = bufs.iter().map(|b| b.len()).sum();
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for MemStream {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // `put_slice` writes into uninitialised capacity the way a socket read does; zeroing
        // it first (`initialize_unfilled`) would charge the library for a memset.
        let mut input = self.input.borrow_mut();
        let Input { bytes, pos } = &mut *input;
        let n = buf.remaining().min(bytes.len() - *pos);
        if n == 0 {
            return Poll::Pending;
        }
        buf.put_slice(&bytes[*pos..*pos + n]);
        *pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Polls a future once, for futures over a [`MemStream`] that never wait on anything else.
///
/// # Panics
/// If the future is not ready: the bench gave the library less input than it needs.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory stream ran dry: the bench fed too few bytes"),
    }
}
