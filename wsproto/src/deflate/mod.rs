//! permessage-deflate (RFC 7692), as the connection sees it: one [`Session`] type whether or not
//! the `deflate` feature is built.
//!
//! With the feature, `Session` wraps the negotiated state of `active` (contexts, window sizes).
//! Without it, `Session` is uninhabited: no offer is made or accepted, so none ever exists, and
//! every method on it is statically unreachable. The switch lives here and nowhere else: the
//! connection calls the same API in both builds.

#[cfg(feature = "deflate")]
mod active;

#[cfg(feature = "deflate")]
pub(crate) use active::compress_standalone;
#[cfg(feature = "deflate")]
pub use active::{DeflateConfig, DeflateParams, DeflatePool};

use crate::config::Config;
use crate::error::{HandshakeError, ProtocolError};
use crate::handshake::{ExtensionOffer, Response};

#[cfg(feature = "deflate")]
type Inner = active::Active;
#[cfg(not(feature = "deflate"))]
type Inner = std::convert::Infallible;

/// The extension's state on one connection, when it was negotiated.
pub(crate) struct Session(Inner);

impl Session {
    /// Server: the session and the response element for the client's offers, if any offer is
    /// acceptable and the config enables the extension.
    pub(crate) fn negotiate(config: &Config, offers: &[ExtensionOffer]) -> Option<(Session, String)> {
        #[cfg(feature = "deflate")]
        return Inner::negotiate(config, offers).map(|(inner, response)| (Session(inner), response));
        #[cfg(not(feature = "deflate"))]
        {
            let _ = (config, offers);
            None
        }
    }

    /// Client: the offer to send, if the config enables the extension.
    pub(crate) fn offer(config: &Config) -> Option<String> {
        #[cfg(feature = "deflate")]
        return Inner::offer(config);
        #[cfg(not(feature = "deflate"))]
        {
            let _ = config;
            None
        }
    }

    /// Client: the session the server's response agreed to, if it accepted our offer.
    pub(crate) fn from_response(config: &Config, response: &Response) -> Result<Option<Session>, HandshakeError> {
        #[cfg(feature = "deflate")]
        return Ok(Inner::from_response(config, response)?.map(Session));
        #[cfg(not(feature = "deflate"))]
        {
            let _ = (config, response);
            Ok(None)
        }
    }

    /// What was agreed.
    #[cfg(feature = "deflate")]
    pub(crate) fn params(&self) -> DeflateParams {
        self.0.params()
    }

    /// Compresses a whole message we send, unless it is too short to be worth it.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        #[cfg(feature = "deflate")]
        return self.0.compress(payload);
        #[cfg(not(feature = "deflate"))]
        {
            let _ = payload;
            match self.0 {}
        }
    }

    /// Messages shorter than this go uncompressed.
    pub(crate) fn min_size(&self) -> usize {
        #[cfg(feature = "deflate")]
        return self.0.min_size();
        #[cfg(not(feature = "deflate"))]
        match self.0 {}
    }

    /// When our side resets its context after every message: the window and level a
    /// compressed encoding made once, with a fresh context, must use to serve this connection.
    /// With the pool the encoding borrows its context from.
    #[cfg(feature = "deflate")]
    pub(crate) fn context_free_encoding(&self) -> Option<(u8, u32, &DeflatePool)> {
        self.0.context_free_encoding()
    }

    /// Inflates compressed payload into `sink`, at most `max_output` bytes this call, failing
    /// once `produced` would pass `limit`; answers how much input it took.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        produced: &mut usize,
        limit: usize,
        max_output: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<usize, ProtocolError> {
        #[cfg(feature = "deflate")]
        return self.0.inflater.inflate(input, produced, limit, max_output, sink);
        #[cfg(not(feature = "deflate"))]
        {
            let _ = (input, produced, limit, max_output, sink);
            match self.0 {}
        }
    }

    /// Ends a compressed message: inflates the restored trailer (RFC 7692 §7.2.2).
    pub(crate) fn finish_message(
        &mut self,
        produced: &mut usize,
        limit: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        #[cfg(feature = "deflate")]
        return self.0.inflater.finish_message(produced, limit, sink);
        #[cfg(not(feature = "deflate"))]
        {
            let _ = (produced, limit, sink);
            match self.0 {}
        }
    }
}
