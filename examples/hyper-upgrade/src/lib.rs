//! A WebSocket served from a hyper 1.x HTTP server, beside ordinary routes: `GET /` and
//! `GET /health` are plain HTTP, `GET /ws` upgrades to a WebSocket that echoes every message.
//!
//! hyper owns the HTTP/1.1 connection and the handshake's HTTP exchange; the core computes the
//! handshake's answer ([`Connection::upgraded`]: the request checked against RFC 6455 §4.2.1
//! and the config's policies, `Sec-WebSocket-Accept`, the subprotocol, permessage-deflate)
//! and starts open. hyper sends the 101 with the core's header fields, hands over the
//! upgraded stream, and the tokio adapter runs the connection on it
//! ([`WebSocket::from_open`]).
#![deny(missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wsproto::{Accept, Config, Connection, Header, UpgradeError};
use wsproto_adapters::tokio::{Error, WebSocket};

/// The response body of every route.
pub type Body = Full<Bytes>;

/// Serves HTTP/1.1 connections from `listener` until it fails, a task per connection.
pub async fn serve(listener: TcpListener, config: Arc<Config>) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let config = config.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| route(request, config.clone()));
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!("HTTP connection failed: {error}");
            }
        });
    }
}

/// The router: two plain routes and the WebSocket.
async fn route(request: Request<Incoming>, config: Arc<Config>) -> Result<Response<Body>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "hello from hyper; the WebSocket is at /ws\n"),
        (&Method::GET, "/health") => text(StatusCode::OK, "ok\n"),
        (_, "/ws") => upgrade(request, config),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Answers an upgrade request with the core's 101 (or its refusal) and, once hyper has sent
/// it, runs the WebSocket on the upgraded stream in a task of its own.
fn upgrade(mut request: Request<Incoming>, config: Arc<Config>) -> Response<Body> {
    if request.version() != Version::HTTP_11 {
        return text(StatusCode::HTTP_VERSION_NOT_SUPPORTED, "WebSocket upgrades need HTTP/1.1\n");
    }
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| Header { name: name.as_str().to_owned(), value: value.as_bytes().to_vec() })
        .collect();
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let head = wsproto::Request::new(request.method().as_str(), &target, headers);
    let (conn, fields) = match Connection::upgraded(config, &head, Accept::new(), Instant::now()) {
        Ok(upgraded) => upgraded,
        Err(UpgradeError::Request(error)) => {
            tracing::debug!("upgrade refused: {error}");
            let status = error.status().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = text(status, "bad WebSocket upgrade request\n");
            if status == StatusCode::UPGRADE_REQUIRED {
                response.headers_mut().insert("Sec-WebSocket-Version", hyper::header::HeaderValue::from_static("13"));
            }
            return response;
        }
        Err(error) => {
            tracing::debug!("upgrade answer refused: {error}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n");
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => match WebSocket::from_open(TokioIo::new(upgraded), conn) {
                Ok(ws) => {
                    if let Err(error) = echo(ws).await {
                        tracing::debug!("WebSocket ended: {error}");
                    }
                }
                Err(error) => tracing::debug!("WebSocket not started: {error}"),
            },
            Err(error) => tracing::debug!("upgrade failed: {error}"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in fields {
        match (hyper::header::HeaderName::try_from(name), hyper::header::HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            // The core checked every field it answers; none of this is the peer's to choose.
            _ => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
        }
    }
    response
}

/// Every message back as it came, until the connection ends.
async fn echo<S>(mut ws: WebSocket<S>) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = ws.recv().await {
        match ws.send(message?).await {
            Ok(()) | Err(Error::Closed) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
