//! A server connection whose opening handshake an HTTP server answers itself (an HTTP/1.1
//! upgrade in hyper or axum; later an RFC 8441 stream over HTTP/2): the core checks the
//! request and computes the 101's header fields, and starts already open.

use std::sync::Arc;
use std::time::Instant;

use super::Connection;
use crate::config::Config;
use crate::deflate::Session as Compression;
use crate::error::{HandshakeError, UsageError};
use crate::handshake::{Accept, Request};
use crate::role::Role;

/// Why [`Connection::upgraded`] opened no connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request is no valid upgrade (RFC 6455 §4.2.1) or breaks the config's origin or
    /// subprotocol policy: answer it with [`HandshakeError::status`].
    #[error(transparent)]
    Request(#[from] HandshakeError),
    /// The application's [`Accept`] cannot be sent (a subprotocol the client did not offer, an
    /// invalid header): an error of ours, to answer with 500.
    #[error(transparent)]
    Answer(#[from] UsageError),
}

impl Connection {
    /// Server: a connection whose opening handshake an HTTP server answers itself. Checks
    /// `request` as a server connection checks the head it reads (RFC 6455 §4.2.1, the
    /// config's origin and subprotocol policies), negotiates the subprotocol and
    /// permessage-deflate (RFC 7692) as [`accept`](Self::accept) does, and answers the
    /// connection, already open, with the 101 response's header fields for the HTTP server to
    /// send: `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions` as agreed, then `accept`'s own. Nothing is queued: the
    /// first bytes on the upgraded stream are frames.
    pub fn upgraded(
        config: Arc<Config>,
        request: &Request,
        accept: Accept,
        now: Instant,
    ) -> Result<(Connection, Vec<(String, String)>), UpgradeError> {
        let mut conn = Connection::new(Role::Server, config, now, None);
        conn.check_request(request)?;
        let key = request.validate_upgrade()?;
        let offered = request.subprotocols();
        let subprotocol = match &accept.subprotocol {
            Some(chosen) if offered.contains(&chosen.as_str()) => Some(chosen.clone()),
            Some(chosen) => return Err(UsageError::SubprotocolNotOffered(chosen.clone()).into()),
            None => conn.config.subprotocols.select(&offered).map(str::to_owned),
        };
        let compression = Compression::negotiate(&conn.config, &request.extensions());
        let extensions = compression.as_ref().map(|(_, response)| response.as_str());
        let fields = accept.fields(key, subprotocol.as_deref(), extensions)?;
        conn.subprotocol = subprotocol.map(String::into_boxed_str);
        conn.compression = compression.map(|(session, _)| Box::new(session));
        conn.request = Some(Box::new(request.clone()));
        conn.open();
        Ok((conn, fields))
    }
}
