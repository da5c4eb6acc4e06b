//! Cancel safety of the tokio adapter: `recv` cancelled in `select!` against a timer thousands
//! of times over a peer that trickles frames byte by byte loses nothing and repeats nothing;
//! a cancelled `send` has queued its whole message or nothing. Both runtime flavours.
#![cfg(feature = "tokio")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use wsproto::{Accept, CloseCode, Config, Message, OutgoingRequest};
use wsproto_adapters::tokio::{accept_with, client, WebSocket};

const LIMIT: Duration = Duration::from_secs(60);

#[macro_use]
mod flavours;

/// The messages the trickling peer sends.
const MESSAGES: usize = 200;

/// A raw server over `stream`: answers the upgrade, then writes `MESSAGES` text frames and a
/// ping every tenth, one byte at a time with a pause after each byte, and reads the pongs.
/// Answers the number of pongs read.
async fn trickling_server(stream: DuplexStream) -> usize {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(read.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
        .expect("the request has a key")
        .trim()
        .to_owned();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        wsproto::accept_key(key.as_bytes())
    );
    write.write_all(response.as_bytes()).await.unwrap();

    let pongs = tokio::spawn(async move {
        let mut pongs = 0;
        let mut buf = [0u8; 2];
        // The client masks: a 2-byte header, the 4-byte key, the payload.
        loop {
            if read.read_exact(&mut buf).await.is_err() {
                return pongs;
            }
            let len = (buf[1] & 0x7f) as usize;
            let mut rest = vec![0u8; 4 + len];
            if read.read_exact(&mut rest).await.is_err() {
                return pongs;
            }
            match buf[0] {
                0x8a => pongs += 1,
                0x88 => return pongs,
                other => panic!("unexpected frame {other:#x}"),
            }
        }
    });

    let mut wire = Vec::new();
    for i in 0..MESSAGES {
        // Mixed sizes: the 16-bit length form too (RFC 6455 §5.2).
        let payload = if i % 7 == 3 { format!("{i:0>200}") } else { format!("message {i}") };
        wire.push(0x81);
        if payload.len() < 126 {
            wire.push(payload.len() as u8);
        } else {
            wire.push(126);
            wire.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        wire.extend_from_slice(payload.as_bytes());
        if i % 10 == 9 {
            wire.extend_from_slice(&[0x89, 4]);
            wire.extend_from_slice(&(i as u32).to_be_bytes());
        }
    }
    for (n, byte) in wire.iter().enumerate() {
        write.write_all(&[*byte]).await.unwrap();
        // Long frames go faster, to keep the test short; every byte still arrives alone.
        if n % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    // A close frame, then the end of our stream once the client echoed it.
    write.write_all(&[0x88, 2, 0x03, 0xe8]).await.unwrap();
    let pongs = pongs.await.unwrap();
    write.shutdown().await.unwrap();
    pongs
}

fn expected(i: usize) -> Message {
    Message::text(if i % 7 == 3 { format!("{i:0>200}") } else { format!("message {i}") })
}

async fn cancelled_recv() {
    let (ours, theirs) = tokio::io::duplex(64);
    let server = tokio::spawn(trickling_server(theirs));
    let (mut ws, _) = client(ours, Arc::new(Config::default()), OutgoingRequest::new("x", "/")).await.unwrap();
    let mut received = Vec::new();
    let mut cancels = 0usize;
    loop {
        tokio::select! {
            message = ws.recv() => match message {
                Some(message) => received.push(message.unwrap()),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(1)) => cancels += 1,
        }
    }
    assert_eq!(received.len(), MESSAGES);
    for (i, message) in received.into_iter().enumerate() {
        assert_eq!(message, expected(i), "message {i}");
    }
    assert!(ws.closed().unwrap().clean);
    assert_eq!(server.await.unwrap(), MESSAGES / 10, "every ping was answered");
    assert!(cancels >= 1000, "only {cancels} cancels");
    eprintln!("{cancels} cancelled recv calls");
}
both_flavours!(recv_cancelled_thousands_of_times, cancelled_recv);

/// Message `i` of the send test: its index in the first bytes, the rest a pattern.
fn numbered(i: u32) -> Vec<u8> {
    let mut data: Vec<u8> = (0..8 << 10).map(|n| (n as u32).wrapping_mul(31).wrapping_add(i) as u8).collect();
    data[..4].copy_from_slice(&i.to_be_bytes());
    data
}

async fn pair(capacity: usize) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(capacity);
    let server = tokio::spawn(async move { accept_with(b, Arc::new(Config::default()), |_| Ok(Accept::new())).await });
    let (client, _) = client(a, Arc::new(Config::default()), OutgoingRequest::new("x", "/")).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

async fn cancelled_send() {
    const SENDS: u32 = 300;
    let (mut ws, mut peer) = pair(1024).await;
    // A high-water mark below the message size: some sends are cancelled waiting for room
    // (nothing queued), others while their bytes are written (all queued).
    ws.set_high_water(4 << 10);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(message) = peer.recv().await {
            let Message::Binary(data) = message.unwrap() else { panic!("text") };
            let i = u32::from_be_bytes(data[..4].try_into().unwrap());
            assert_eq!(data, numbered(i), "message {i} arrived whole");
            got.push(i);
            if got.len() % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        got
    });
    let mut completed = BTreeSet::new();
    let mut cancelled = BTreeSet::new();
    for i in 0..SENDS {
        tokio::select! {
            result = ws.send(Message::binary(numbered(i))) => {
                result.unwrap();
                completed.insert(i);
            }
            _ = tokio::time::sleep(Duration::from_micros(500)) => {
                cancelled.insert(i);
            }
        }
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let got = reader.await.unwrap();
    // In order, once each, every completed send among them.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    let got: BTreeSet<u32> = got.into_iter().collect();
    assert!(completed.is_subset(&got), "every completed send arrived");
    let queued = cancelled.intersection(&got).count();
    let dropped = cancelled.len() - queued;
    eprintln!(
        "{} completed, {} cancelled: {queued} of them queued whole, {dropped} not at all",
        completed.len(),
        cancelled.len()
    );
    assert!(!cancelled.is_empty(), "no send was cancelled");
}
both_flavours!(send_cancelled_queues_all_or_nothing, cancelled_send);
