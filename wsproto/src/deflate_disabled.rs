//! Stands in for the permessage-deflate session when the `deflate` feature is off: no offer is
//! made or accepted, so no session ever exists.

use crate::config::Config;
use crate::error::{HandshakeError, ProtocolError};
use crate::handshake::{ExtensionOffer, Response};

/// A session that cannot exist.
pub(crate) enum Session {}

impl Session {
    pub(crate) fn negotiate(_config: &Config, _offers: &[ExtensionOffer]) -> Option<(Session, String)> {
        None
    }

    pub(crate) fn offer(_config: &Config) -> Option<String> {
        None
    }

    pub(crate) fn from_response(_config: &Config, _response: &Response) -> Result<Option<Session>, HandshakeError> {
        Ok(None)
    }

    pub(crate) fn compress(&mut self, _payload: &[u8]) -> Option<Vec<u8>> {
        match *self {}
    }

    pub(crate) fn min_size(&self) -> usize {
        match *self {}
    }

    pub(crate) fn context_free_encoding(&self) -> Option<(u8, u32)> {
        match *self {}
    }

    pub(crate) fn inflate(
        &mut self,
        _input: &[u8],
        _produced: &mut usize,
        _limit: usize,
        _max_output: usize,
        _sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<usize, ProtocolError> {
        match *self {}
    }

    pub(crate) fn finish_message(
        &mut self,
        _produced: &mut usize,
        _limit: usize,
        _sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        match *self {}
    }
}
