//! The opening handshake (RFC 6455 §4) on a connection: reading the head, the server's
//! answer (§4.2.2), the client's check of the response (§4.1). Its state (`Opening`) exists only
//! until the connection opens or ends.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{Connection, State};
use crate::config::Config;
use crate::deflate::Session as Compression;
use crate::error::{HandshakeError, UsageError};
use crate::event::{CloseCause, Event};
use crate::handshake::{Accept, HeadReader, HeadStatus, OutgoingRequest, OutgoingResponse, Request, Response};
use crate::random::RandomSource;

/// What only the opening handshake needs.
#[derive(Debug, Default)]
pub(super) struct Opening {
    /// The head as it arrives, then what arrived behind it before the connection opened.
    head: HeadReader,
    /// Client: the request sent and its `Sec-WebSocket-Key`, to check the response against.
    pub(super) client: Option<(OutgoingRequest, String)>,
}

impl Opening {
    /// Client: the request head to send with a fresh key, and what to check the answer with.
    pub(super) fn client_request(
        config: &Config,
        mut request: OutgoingRequest,
        rng: &mut dyn RandomSource,
    ) -> Result<(Vec<u8>, (OutgoingRequest, String)), UsageError> {
        if let Some(offer) = Compression::offer(config) {
            request.extensions.push(offer);
        }
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        let key = BASE64.encode(nonce);
        let head = request.encode(&key)?;
        Ok((head, (request, key)))
    }
}

impl Connection {
    /// Server: accepts the pending upgrade request; the connection opens and any frames that
    /// arrived behind the request are processed.
    pub fn accept(&mut self, accept: Accept) -> Result<(), UsageError> {
        if self.state != (State::RequestPending { upgrade: true }) {
            return Err(UsageError::NoPendingRequest);
        }
        let request = self.request.as_ref().ok_or(UsageError::NoPendingRequest)?;
        let key = request.validate_upgrade().map_err(|_| UsageError::NoPendingRequest)?;
        let offered = request.subprotocols();
        let subprotocol = match &accept.subprotocol {
            Some(chosen) if offered.contains(&chosen.as_str()) => Some(chosen.clone()),
            Some(chosen) => return Err(UsageError::SubprotocolNotOffered(chosen.clone())),
            None => self.config.subprotocols.select(&offered).map(str::to_owned),
        };
        let compression = Compression::negotiate(&self.config, &request.extensions());
        let extensions = compression.as_ref().map(|(_, response)| response.as_str());
        let head = accept.encode(key, subprotocol.as_deref(), extensions)?;
        self.send.out.push_bytes(&head);
        self.subprotocol = subprotocol.map(String::into_boxed_str);
        self.compression = compression.map(|(session, _)| Box::new(session));
        self.open();
        Ok(())
    }

    /// Server: answers the pending request with a plain HTTP response: a rejection of an
    /// upgrade (e.g. [`OutgoingResponse::service_unavailable`]) or the answer to a plain
    /// request. The connection then closes.
    pub fn respond(&mut self, response: OutgoingResponse) -> Result<(), UsageError> {
        if !matches!(self.state, State::RequestPending { .. }) {
            return Err(UsageError::NoPendingRequest);
        }
        let head = response.encode()?;
        self.send.out.push_bytes(&head);
        self.finish_unclean(CloseCause::Rejected { status: response.status });
        Ok(())
    }

    /// Head bytes: one incremental reader for both roles (see [`HeadReader`]).
    pub(super) fn receive_handshake(&mut self, data: &[u8]) {
        let Some(opening) = self.opening.as_mut() else { return };
        let (limit, max_headers) = (self.config.max_handshake_size, self.config.max_headers);
        match self.role {
            crate::role::Role::Server => match opening.head.push::<Request>(data, limit, max_headers) {
                HeadStatus::Partial => {}
                HeadStatus::Complete(request) => self.on_request(request),
                HeadStatus::Failed(error) => self.fail_handshake(error),
            },
            crate::role::Role::Client => match opening.head.push::<Response>(data, limit, max_headers) {
                HeadStatus::Partial => {}
                HeadStatus::Complete(response) => self.on_response(response),
                HeadStatus::Failed(error) => self.fail_handshake(error),
            },
        }
    }

    /// Server: bytes that arrive while the application decides. A client must wait for our
    /// answer before sending frames (RFC 6455 §4.1), and an adapter should not read now
    /// (`wants_read`): hold a head's worth at most.
    pub(super) fn hold_before_answer(&mut self, data: &[u8]) {
        let Some(opening) = self.opening.as_mut() else { return };
        opening.head.hold(data);
        if opening.head.len() > self.config.max_handshake_size {
            self.fail_handshake(HandshakeError::BadRequest("data sent before the handshake was answered"));
        }
    }

    fn on_request(&mut self, request: Request) {
        if !request.is_upgrade() {
            self.request = Some(Box::new(request.clone()));
            self.await_answer(false);
            self.events.push_back(Event::HttpRequest(Box::new(request)));
            return;
        }
        if let Err(error) = self.check_request(&request) {
            self.request = Some(Box::new(request));
            return self.fail_handshake(error);
        }
        self.request = Some(Box::new(request.clone()));
        self.await_answer(true);
        self.events.push_back(Event::Request(Box::new(request)));
    }

    /// RFC 6455 §4.2.1 plus the config's origin and subprotocol policies.
    pub(super) fn check_request(&self, request: &Request) -> Result<(), HandshakeError> {
        request.validate_upgrade()?;
        if !self.config.origins.allows(request.origin()) {
            return Err(HandshakeError::OriginNotAllowed(request.origin().map(str::to_owned)));
        }
        let policy = &self.config.subprotocols;
        if policy.required && policy.select(&request.subprotocols()).is_none() {
            return Err(HandshakeError::NoSubprotocol(policy.supported.join(", ")));
        }
        Ok(())
    }

    fn on_response(&mut self, response: Response) {
        let Some((request, key)) = self.opening.as_ref().and_then(|o| o.client.as_ref()) else { return };
        let compression =
            response.validate(key, request).and_then(|()| Compression::from_response(&self.config, &response));
        let compression = match compression {
            Ok(compression) => compression,
            Err(error) => {
                self.response = Some(Box::new(response));
                return self.fail_handshake(error);
            }
        };
        self.compression = compression.map(Box::new);
        self.subprotocol = response.subprotocol().map(Box::from);
        self.response = Some(Box::new(response.clone()));
        self.events.push_back(Event::Connected(Box::new(response)));
        self.open();
    }

    /// The bytes that arrived behind the head, dropping the handshake's state.
    pub(super) fn take_opening_rest(&mut self) -> Vec<u8> {
        self.opening.take().map(|mut opening| opening.head.take_rest()).unwrap_or_default()
    }
}
