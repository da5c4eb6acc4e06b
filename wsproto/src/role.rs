//! Which end of the connection we are: it decides masking (RFC 6455 §5.1, §5.3), who closes
//! TCP first (§7.1.1) and which side of the opening handshake (§4.1, §4.2) we play.

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Role {
    /// We accepted the TCP connection: we receive masked frames and send unmasked ones.
    Server,
    /// We opened it: we mask every frame we send (RFC 6455 §5.3).
    Client,
}
