//! The tokio adapter over a stream that reads and writes a few bytes at a time, is not
//! vectored (as TLS streams often are not) and answers `Pending` every other call: every
//! message still arrives whole and in order, with and without permessage-deflate.
#![cfg(feature = "tokio")]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use wsproto::{Accept, CloseCode, Config, DeflateConfig, Message, OutgoingRequest};
use wsproto_adapters::tokio::{accept_with, client};

/// At most this many bytes per read or write.
const CHOP: usize = 7;

struct Choppy {
    inner: DuplexStream,
    /// Each alternates: every other read (write) answers `Pending`, after asking to be polled
    /// again.
    stall_read: bool,
    stall_write: bool,
}

impl Choppy {
    fn new(inner: DuplexStream) -> Self {
        Choppy { inner, stall_read: false, stall_write: false }
    }
}

fn stall(flag: &mut bool, cx: &mut Context<'_>) -> bool {
    *flag = !*flag;
    if *flag {
        cx.waker().wake_by_ref();
    }
    *flag
}

impl AsyncRead for Choppy {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if stall(&mut self.stall_read, cx) {
            return Poll::Pending;
        }
        let mut small = [0u8; CHOP];
        let want = buf.remaining().min(CHOP);
        let mut chunk = ReadBuf::new(&mut small[..want]);
        match Pin::new(&mut self.inner).poll_read(cx, &mut chunk) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(chunk.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Choppy {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if stall(&mut self.stall_write, cx) {
            return Poll::Pending;
        }
        let n = data.len().min(CHOP);
        Pin::new(&mut self.inner).poll_write(cx, &data[..n])
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn config(deflate: bool) -> Arc<Config> {
    Arc::new(Config { deflate: deflate.then(DeflateConfig::default), ..Config::default() })
}

async fn echo_over_choppy(deflate: bool) {
    let (a, b) = tokio::io::duplex(256);
    let server = tokio::spawn(async move {
        let mut ws = accept_with(Choppy::new(b), config(deflate), |_| Ok(Accept::new())).await.unwrap();
        while let Some(message) = ws.recv().await {
            ws.send(message.unwrap()).await.unwrap();
        }
        ws.closed().cloned().unwrap()
    });
    let stream = Choppy::new(a);
    let (mut ws, _) = client(stream, config(deflate), OutgoingRequest::new("x", "/")).await.unwrap();
    assert_eq!(ws.connection().compression().is_some(), deflate);
    for i in 0..200usize {
        let message = match i % 3 {
            0 => Message::text(format!("message {i} ").repeat(i % 40)),
            1 => Message::Binary((0..i * 37).map(|n| (n * i) as u8).collect()),
            _ => Message::text("κόσμε".repeat(i)),
        };
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message, "message {i}");
    }
    let closed = ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(closed.clean);
    assert!(server.await.unwrap().clean);
}

#[tokio::test(flavor = "current_thread")]
async fn choppy_stream_current_thread() {
    tokio::time::timeout(Duration::from_secs(60), echo_over_choppy(false)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choppy_stream_multi_thread_deflate() {
    tokio::time::timeout(Duration::from_secs(60), echo_over_choppy(true)).await.unwrap();
}
