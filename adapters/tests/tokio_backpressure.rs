//! Back-pressure in the tokio adapter, both ways: sends wait while the queue is over the
//! high-water mark; an application that stops reading stops the socket reads, so the peer's
//! writes stall instead of our buffers growing. Both runtime flavours.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::DuplexStream;
use wsproto::{Accept, CloseCode, Config, Message, OutgoingRequest};
use wsproto_adapters::tokio::{accept_with, client, WebSocket, READ_BUFFER_SIZE};

const LIMIT: Duration = Duration::from_secs(60);

#[macro_use]
mod flavours;

/// The transport between the two ends holds this much.
const PIPE: usize = 4096;
const MESSAGE: usize = 1024;

async fn pair() -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(PIPE);
    let server = tokio::spawn(async move { accept_with(b, Arc::new(Config::default()), |_| Ok(Accept::new())).await });
    let (client, _) = client(a, Arc::new(Config::default()), OutgoingRequest::new("x", "/")).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

/// The peer does not read: `feed` stops once the queue is past the high-water mark, with the
/// queue bounded by the mark and one message; it goes on once the peer reads.
async fn sends_wait_over_high_water() {
    const HIGH_WATER: usize = 16 << 10;
    const TOTAL: usize = 200;
    let (mut ws, mut peer) = pair().await;
    ws.set_high_water(HIGH_WATER);
    let mut fed = 0;
    loop {
        let feed = ws.feed(Message::binary(vec![fed as u8; MESSAGE]));
        match tokio::time::timeout(Duration::from_millis(200), feed).await {
            Ok(result) => {
                result.unwrap();
                fed += 1;
                assert!(fed < TOTAL, "feed never waited");
            }
            Err(_) => break,
        }
    }
    let queued = ws.connection().queued_bytes();
    assert!(queued <= HIGH_WATER + MESSAGE + 14, "queued {queued}");
    assert!(fed * MESSAGE >= HIGH_WATER, "waited early: {fed} fed");
    let reader = tokio::spawn(async move {
        let mut count = 0;
        while let Some(message) = peer.recv().await {
            assert_eq!(message.unwrap(), Message::binary(vec![count as u8; MESSAGE]));
            count += 1;
        }
        count
    });
    // The cancelled feed queued nothing: it waited for room.
    for i in fed..TOTAL {
        ws.feed(Message::binary(vec![i as u8; MESSAGE])).await.unwrap();
    }
    ws.flush().await.unwrap();
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(reader.await.unwrap(), TOTAL);
}
both_flavours!(send_waits_while_over_the_high_water_mark, sends_wait_over_high_water);

/// We read one message and stop: the peer's sends stall once the pipe, our one read and its
/// own queue are full; nothing is lost once we read again.
async fn reads_stop_when_the_application_does() {
    const TOTAL: usize = 2000;
    let (mut ws, mut peer) = pair().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let flooding = tokio::spawn(async move {
        for i in 0..TOTAL {
            peer.feed(Message::binary(vec![i as u8; MESSAGE])).await.unwrap();
            counter.store(i + 1, Ordering::SeqCst);
        }
        peer.flush().await.unwrap();
        peer
    });
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(vec![0; MESSAGE]));
    // Give the peer time to fill everything it can.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    // What the peer got out: the pipe, what our one read took, and its own queue's high-water
    // mark (64 KiB), with a frame header per message.
    let bound = (PIPE + READ_BUFFER_SIZE + (64 << 10)) / MESSAGE + 2;
    assert!(last < TOTAL, "the peer was never stopped");
    assert!(last <= bound, "the peer got {last} messages out, more than {bound}");
    for i in 1..TOTAL {
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(vec![i as u8; MESSAGE]), "message {i}");
    }
    let mut peer = flooding.await.unwrap();
    peer.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(ws.recv().await.is_none());
}
both_flavours!(reads_stop_while_the_application_does_not_read, reads_stop_when_the_application_does);
