//! Interop of the tokio adapter with tokio-tungstenite (a WebSocket implementation nobody here
//! wrote; a dev-dependency only), both roles, both runtime flavours: messages of every size
//! class, pings, and the close handshake.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as TMessage;
use wsproto::{CloseCause, CloseCode, Config, Message};
use wsproto_adapters::tokio::{accept, connect, ConnectOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[macro_use]
mod flavours;

/// Text and binary of each length encoding (7-bit, 16-bit, 64-bit; RFC 6455 §5.2), empty too.
fn messages() -> Vec<Message> {
    vec![
        Message::text(String::new()),
        Message::Text("hello".into()),
        Message::text("κόσμε ".repeat(50)),
        Message::Binary((0..70_000).map(|i| i as u8).collect()),
        Message::text("x".repeat(1 << 20)),
        Message::binary(Vec::new()),
    ]
}

fn to_tungstenite(message: &Message) -> TMessage {
    match message {
        Message::Text(text) => TMessage::text(text.as_str()),
        Message::Binary(data) => TMessage::binary(data.clone()),
    }
}

/// tokio-tungstenite's client against our server, which echoes.
async fn their_client_our_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = accept(tcp, Arc::new(Config::default())).await.unwrap();
        while let Some(message) = ws.recv().await {
            ws.send(message.unwrap()).await.unwrap();
        }
        ws.closed().cloned().unwrap()
    });
    let (mut theirs, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/"), tokio::net::TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
    for message in messages() {
        theirs.send(to_tungstenite(&message)).await.unwrap();
        assert_eq!(theirs.next().await.unwrap().unwrap(), to_tungstenite(&message));
    }
    theirs.send(TMessage::Ping(b"ping?".to_vec().into())).await.unwrap();
    assert_eq!(theirs.next().await.unwrap().unwrap(), TMessage::Pong(b"ping?".to_vec().into()));
    theirs.close(Some(CloseFrame { code: TCloseCode::Normal, reason: "done".into() })).await.unwrap();
    // Our server answers the close and ends TCP; tungstenite reports the end.
    while let Some(Ok(_)) = theirs.next().await {}
    // Our server lingers until the client's end of stream (at most the close timeout).
    drop(theirs);
    let closed = server.await.unwrap();
    assert!(closed.clean);
    assert_eq!(closed.cause, CloseCause::PeerClosed);
    assert_eq!(closed.reason, "done");
}
both_flavours!(tungstenite_client_against_our_server, their_client_our_server);

/// Our client against tokio-tungstenite's echo server, with a ping from it in between.
async fn our_client_their_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(TMessage::Ping(b"from them".to_vec().into())).await.unwrap();
        let mut pongs = 0;
        // Read on after our close: tungstenite writes its answer as it reads, and then ends.
        let mut closes = 0;
        while let Some(Ok(message)) = ws.next().await {
            match message {
                message @ (TMessage::Text(_) | TMessage::Binary(_)) => ws.send(message).await.unwrap(),
                TMessage::Pong(payload) => {
                    assert_eq!(&payload[..], b"from them");
                    pongs += 1;
                }
                TMessage::Close(frame) => {
                    assert_eq!(frame.unwrap().code, TCloseCode::Normal);
                    closes += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(closes, 1);
        pongs
    });
    let (mut ws, response) = connect(&format!("ws://{addr}/"), ConnectOptions::default()).await.unwrap();
    assert_eq!(response.status(), 101);
    for message in messages() {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    let closed = ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.cause, CloseCause::LocalClosed);
    assert_eq!(server.await.unwrap(), 1, "their ping was answered");
}
both_flavours!(our_client_against_tungstenite_server, our_client_their_server);
