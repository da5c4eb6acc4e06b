//! The tokio adapter's split halves: one task floods sends while another reads, with pings from
//! the peer (tokio-tungstenite); auto-pong and the close handshake with only one half polled;
//! `reunite`. Both runtime flavours.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as TMessage;
use wsproto::{Accept, CloseCause, CloseCode, Config, Message, OutgoingRequest};
use wsproto_adapters::tokio::{accept_with, client, connect, ConnectOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[macro_use]
mod flavours;

const FLOOD: usize = 3000;
const PING_EVERY: usize = 50;

/// Our client, split: a writer task floods while a reader task reads the peer's flood; the
/// peer pings between its messages and counts the pongs.
async fn flood_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let writer = tokio::spawn(async move {
            for i in 0..FLOOD {
                sink.feed(TMessage::text(format!("peer {i}"))).await.unwrap();
                if i % PING_EVERY == 0 {
                    sink.feed(TMessage::Ping(vec![i as u8].into())).await.unwrap();
                }
            }
            sink.flush().await.unwrap();
            sink
        });
        let (mut messages, mut pongs) = (0, 0);
        while let Some(message) = stream.next().await {
            match message.unwrap() {
                TMessage::Text(text) => {
                    assert_eq!(text.as_str(), format!("ours {messages}"));
                    messages += 1;
                }
                TMessage::Pong(_) => pongs += 1,
                TMessage::Close(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // tungstenite answered our close as it read it; its sink flushes the answer.
        let mut sink = writer.await.unwrap();
        let _ = sink.close().await;
        (messages, pongs)
    });

    let (ws, _) = connect(&url, ConnectOptions::default()).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    let (all_read, all_read_rx) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn(async move {
        let mut all_read = Some(all_read);
        let mut count = 0;
        while let Some(message) = reader.recv().await {
            assert_eq!(message.unwrap(), Message::text(format!("peer {count}")));
            count += 1;
            if count == FLOOD {
                all_read.take().unwrap().send(()).unwrap();
            }
        }
        (count, reader)
    });
    let writing = tokio::spawn(async move {
        for i in 0..FLOOD {
            writer.send(Message::text(format!("ours {i}"))).await.unwrap();
        }
        all_read_rx.await.unwrap();
        assert_eq!(writer.close(CloseCode::NORMAL, "done").await.unwrap(), None);
        writer
    });
    let writer = writing.await.unwrap();
    let (count, reader) = reading.await.unwrap();
    assert_eq!(count, FLOOD);
    let (messages, pongs) = peer.await.unwrap();
    assert_eq!(messages, FLOOD, "every message arrived");
    assert_eq!(pongs, FLOOD.div_ceil(PING_EVERY), "every ping was answered");
    let ws = reader.reunite(writer).unwrap();
    let closed = ws.closed().unwrap();
    assert!(closed.clean);
    assert_eq!(closed.cause, CloseCause::LocalClosed);
}
both_flavours!(flood_sends_while_reading_with_pings, flood_both_ways);

async fn duplex_pair() -> (
    wsproto_adapters::tokio::WebSocket<tokio::io::DuplexStream>,
    wsproto_adapters::tokio::WebSocket<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move { accept_with(b, Arc::new(Config::default()), |_| Ok(Accept::new())).await });
    let (client, _) = client(a, Arc::new(Config::default()), OutgoingRequest::new("x", "/")).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

/// Only the reader is polled (the writer idles in another task): pings are answered and the
/// peer's close completes.
async fn reader_alone() {
    let (ws, mut peer) = duplex_pair().await;
    let (mut reader, writer) = ws.split();
    let idle_writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(writer);
    });
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(message) = reader.recv().await {
            got.push(message.unwrap());
        }
        (got, reader.closed())
    });
    for i in 0..10 {
        peer.ping(&[i]).await.unwrap();
        peer.send(Message::text(format!("{i}"))).await.unwrap();
    }
    let closed = peer.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(closed.clean, "our reader answered the close: {closed:?}");
    let (got, reader_closed) = reading.await.unwrap();
    assert_eq!(got.len(), 10);
    assert_eq!(reader_closed.unwrap().cause, CloseCause::PeerClosed);
    idle_writer.abort();
}
both_flavours!(reader_alone_answers_pings_and_close, reader_alone);

/// The reader is dropped: the writer's close drives the handshake to its end itself.
async fn writer_alone() {
    let (ws, mut peer) = duplex_pair().await;
    let (reader, mut writer) = ws.split();
    drop(reader);
    let peer_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(message) = peer.recv().await {
            got.push(message.unwrap());
        }
        (got, peer.closed().cloned())
    });
    for i in 0..5 {
        writer.send(Message::binary(vec![i; 100])).await.unwrap();
    }
    let closed = writer.close(CloseCode::NORMAL, "bye").await.unwrap().expect("the writer drove the close");
    assert!(closed.clean);
    let (got, peer_closed) = peer_task.await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(peer_closed.unwrap().reason, "bye");
}
both_flavours!(writer_alone_completes_the_close, writer_alone);

/// Halves of different connections do not reunite; the right ones do, and go on working.
#[tokio::test]
async fn reunite() {
    let (a, mut peer_a) = duplex_pair().await;
    let (b, _peer_b) = duplex_pair().await;
    let (reader_a, writer_a) = a.split();
    let (reader_b, writer_b) = b.split();
    let wrong = reader_a.reunite(writer_b).unwrap_err();
    let (reader_a, writer_b) = (wrong.0, wrong.1);
    let _b = reader_b.reunite(writer_b).unwrap();
    let mut a = reader_a.reunite(writer_a).unwrap();
    a.send(Message::Text("whole again".into())).await.unwrap();
    assert_eq!(peer_a.recv().await.unwrap().unwrap(), Message::Text("whole again".into()));
    peer_a.send(Message::Text("back".into())).await.unwrap();
    assert_eq!(a.recv().await.unwrap().unwrap(), Message::Text("back".into()));
}
