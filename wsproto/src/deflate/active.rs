//! The permessage-deflate implementation (built with the `deflate` feature): negotiation
//! (RFC 7692 §5, §7.1), and compression of whole messages (§7.2).
//!
//! The public settings and their costs are documented on [`DeflateConfig`].

use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::config::Config;
use crate::error::{HandshakeError, ProtocolError};
use crate::handshake::{ExtensionOffer, Response};
use crate::role::Role;

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What every compressed message ends with before the sender strips it (RFC 7692 §7.2.1).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib cannot compress raw deflate with an 8-bit window (it silently uses 9), so we never
/// agree to compress with fewer than 9 bits; 8 is accepted for the peer's compressor.
const MIN_OWN_WINDOW_BITS: u8 = 9;

/// Settings for permessage-deflate. With `Config::deflate` set, a client offers the extension
/// and a server accepts the first offer it can honour.
///
/// `server_*` parameters concern what the server sends, `client_*` what the client sends,
/// whichever role we have (RFC 7692 §7.1).
///
/// # What it costs
///
/// Memory, per connection, each side's state created on first use (measured with this crate's
/// zlib-rs backend: `benches/RESULTS.md`, "permessage-deflate: throughput and memory", server
/// RSS over 1000 connections):
///
/// - agreeing on the extension costs nothing until a message is compressed or inflated;
/// - the inflater keeps a full 32 KiB window whatever the peer's window bits (that decodes any
///   smaller one) plus about 7 KiB of tables: about 18 KB resident after a first small message,
///   up to about 40 KB once its window has filled;
/// - the compressor allocates about `2^(w+2) + 240 KiB` for a window of `w` bits and touches
///   most of it at once (window, hash chain and a 128 KiB hash head that does not shrink with
///   the window): about 320 KB resident after the first compressed message at the default 15
///   bits, about 190 KB at 9.
///
/// With context takeover (the default), a connection that has compressed in both directions
/// holds 340-370 KB for the rest of its life: its states carry the context from message to
/// message. Without it in a direction (`server_no_context_takeover`,
/// `client_no_context_takeover`), that direction holds no state between messages: one is
/// borrowed from the config's [`DeflatePool`] for a message and given back after it, so that
/// 10 000 such connections share a few states instead of holding 10 000 (measured: 1.5-1.8 KB
/// per connection after compressed traffic both ways, against 340-370 KB with takeover).
/// Context takeover is what buys the better ratio on similar messages.
///
/// CPU: on loopback a 1 KiB text echo costs about 3 times the server CPU with compression, and
/// a 16 KiB message that deflate cannot shrink about 30 times. Turn the extension off
/// (`Config::deflate = None`) for servers with many connections that are mostly idle but send
/// now and then, for payloads that are already compressed (images, video, archives; or send
/// those with [`Connection::send_uncompressed`](crate::Connection::send_uncompressed)), and for
/// CPU-bound servers on fast networks. It pays for text on slow or metered links. A small
/// window (`server_max_window_bits`) saves only about a third of the compressor's memory and
/// costs both CPU and ratio.
///
/// # Bounds
///
/// Inflation is bounded: a message's inflated size is checked against `max_message_size` as
/// it grows, in 32 KiB steps, so a small frame cannot expand into gigabytes (close 1009). And a
/// read is inflated only as the application takes what came out: once a compressed message (in
/// streaming mode, a chunk of at most 32 KiB) is waiting as an event, the connection processes
/// no further input until that event is taken, so many small compressed frames in one read never
/// inflate all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Server: always reset our compression context after each message (the client may also
    /// ask for it). Needed for [`PreparedFrame`](crate::PreparedFrame)s to be compressed once
    /// for every recipient. Client: ask the server for it.
    pub server_no_context_takeover: bool,
    /// Server: ask the client to reset its context after each message. Client: offer it (a
    /// promise to reset ours).
    pub client_no_context_takeover: bool,
    /// The largest window (9-15 bits) the server compresses with. Server: our limit (the client
    /// may ask for less). Client: asked of the server when below 15.
    pub server_max_window_bits: u8,
    /// The largest window (9-15 bits) the client compresses with. Server: asked of a client
    /// that says it can limit its window. Client: offered; the server may ask for less.
    pub client_max_window_bits: u8,
    /// The compression level, 0-9.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed (RSV1 clear): compressing a few bytes
    /// costs time and usually saves nothing.
    pub min_size: usize,
    /// Where the directions without context takeover borrow their zlib states, one message at
    /// a time. Clones of a config share it: give every connection of an event loop the same
    /// config (as the adapters' servers do) and they share one pool.
    pub pool: DeflatePool,
}

/// zlib states lent to connections for one message at a time, for the directions without
/// context takeover, and kept for reuse when given back (at most `max_idle` of each kind).
///
/// A compressor is borrowed and returned within one call (a message is compressed whole), so
/// no more are in use at once than threads compressing; an inflater is held from a message's
/// first compressed bytes to its end (or the connection's). States are reset before they are
/// given back: nothing of one connection's data reaches another.
#[derive(Clone)]
pub struct DeflatePool(Arc<Mutex<PoolStates>>);

struct PoolStates {
    max_idle: usize,
    /// Idle compressors, with the window bits and level they were made for.
    compressors: Vec<(u8, u32, Compress)>,
    inflaters: Vec<Decompress>,
}

impl DeflatePool {
    /// A pool that keeps at most `max_idle` idle compressors and as many inflaters.
    pub fn new(max_idle: usize) -> DeflatePool {
        DeflatePool(Arc::new(Mutex::new(PoolStates { max_idle, compressors: Vec::new(), inflaters: Vec::new() })))
    }

    /// Idle compressors and inflaters held for reuse.
    pub fn idle(&self) -> (usize, usize) {
        let states = self.states();
        (states.compressors.len(), states.inflaters.len())
    }

    fn states(&self) -> std::sync::MutexGuard<'_, PoolStates> {
        // The lock guards plain vectors: a panic elsewhere cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_compressor(&self, window_bits: u8, level: u32) -> Compress {
        let mut states = self.states();
        match states.compressors.iter().position(|(bits, lvl, _)| (*bits, *lvl) == (window_bits, level)) {
            Some(i) => states.compressors.swap_remove(i).2,
            None => {
                drop(states);
                Compress::new_with_window_bits(Compression::new(level.min(9)), false, window_bits)
            }
        }
    }

    fn give_compressor(&self, window_bits: u8, level: u32, mut compress: Compress) {
        compress.reset();
        let mut states = self.states();
        if states.compressors.len() < states.max_idle {
            states.compressors.push((window_bits, level, compress));
        }
    }

    fn take_inflater(&self) -> Decompress {
        let taken = self.states().inflaters.pop();
        taken.unwrap_or_else(|| Decompress::new_with_window_bits(false, 15))
    }

    fn give_inflater(&self, mut decompress: Decompress) {
        decompress.reset(false);
        let mut states = self.states();
        if states.inflaters.len() < states.max_idle {
            states.inflaters.push(decompress);
        }
    }
}

impl Default for DeflatePool {
    /// Keeps at most 8 idle states of each kind (a compressor is about 320 KB at 15 bits).
    fn default() -> Self {
        DeflatePool::new(8)
    }
}

impl std::fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (compressors, inflaters) = self.idle();
        f.debug_struct("DeflatePool")
            .field("idle_compressors", &compressors)
            .field("idle_inflaters", &inflaters)
            .finish()
    }
}

impl PartialEq for DeflatePool {
    /// The same pool (shared by clones), not pools holding the same states.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DeflatePool {}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 6,
            min_size: 32,
            pool: DeflatePool::default(),
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its context after each message.
    pub client_no_context_takeover: bool,
    /// The server's window, in bits.
    pub server_max_window_bits: u8,
    /// The client's window, in bits.
    pub client_max_window_bits: u8,
}

/// The parameters of one offer or response, checked for syntax (RFC 7692 §7.1): known names,
/// no duplicates, window bits 8-15.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_bits(value: Option<&str>) -> Result<Option<u8>, &'static str> {
    match value {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0') => {
            match v.parse::<u8>() {
                Ok(bits @ 8..=15) => Ok(Some(bits)),
                _ => Err("window bits must be 8-15"),
            }
        }
        Some(_) => Err("window bits must be 8-15"),
    }
}

impl Params {
    fn parse(offer: &ExtensionOffer) -> Result<Params, &'static str> {
        let mut params = Params::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &offer.params {
            let name = name.as_str();
            if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                return Err("duplicate permessage-deflate parameter");
            }
            seen.push(name);
            let value = value.as_deref();
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" if value.is_none() => params.server_no_context_takeover = true,
                "client_no_context_takeover" if value.is_none() => params.client_no_context_takeover = true,
                "server_max_window_bits" => {
                    params.server_max_window_bits =
                        Some(parse_bits(value)?.ok_or("server_max_window_bits needs a value")?)
                }
                "client_max_window_bits" => params.client_max_window_bits = Some(parse_bits(value)?),
                _ => return Err("unknown or malformed permessage-deflate parameter"),
            }
        }
        Ok(params)
    }
}

/// Server: picks the first permessage-deflate offer we can honour (RFC 7692 §5, §7.1); answers
/// the agreed parameters and the response element. Offers with bad parameters are declined,
/// as are offers that need us to compress with an 8-bit window.
pub(crate) fn negotiate_server(config: &DeflateConfig, offers: &[ExtensionOffer]) -> Option<(DeflateParams, String)> {
    offers.iter().filter(|o| o.name.eq_ignore_ascii_case(EXTENSION_NAME)).find_map(|offer| {
        let params = Params::parse(offer).ok()?;
        let own_limit = config.server_max_window_bits.clamp(MIN_OWN_WINDOW_BITS, 15);
        let server_bits = params.server_max_window_bits.map_or(own_limit, |asked| asked.min(own_limit));
        if server_bits < MIN_OWN_WINDOW_BITS {
            return None;
        }
        let server_no_context_takeover = params.server_no_context_takeover || config.server_no_context_takeover;
        // We may ask the client for a smaller window only if it said it can do that.
        let client_bits = params
            .client_max_window_bits
            .map(|offered| offered.unwrap_or(15).min(config.client_max_window_bits.clamp(8, 15)));
        let client_no_context_takeover = config.client_no_context_takeover;
        let mut response = EXTENSION_NAME.to_owned();
        if server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if params.server_max_window_bits.is_some() || server_bits < 15 {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if let Some(bits) = client_bits.filter(|&b| b < 15 || params.client_max_window_bits == Some(Some(15))) {
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        let agreed = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits.unwrap_or(15),
        };
        Some((agreed, response))
    })
}

/// Client: the offer element we send.
pub(crate) fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = EXTENSION_NAME.to_owned();
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    let server_bits = config.server_max_window_bits.clamp(8, 15);
    if server_bits < 15 {
        offer.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    let client_bits = config.client_max_window_bits.clamp(MIN_OWN_WINDOW_BITS, 15);
    if client_bits < 15 {
        offer.push_str(&format!("; client_max_window_bits={client_bits}"));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    offer
}

/// Client: checks the server's response against our offer (RFC 7692 §7.1); an error fails
/// the connection.
pub(crate) fn accept_response(
    config: &DeflateConfig,
    response: &ExtensionOffer,
) -> Result<DeflateParams, &'static str> {
    let params = Params::parse(response)?;
    let offered_server_bits = config.server_max_window_bits.clamp(8, 15);
    let server_bits = params.server_max_window_bits.unwrap_or(15);
    if offered_server_bits < 15 && server_bits > offered_server_bits {
        return Err("server_max_window_bits larger than offered");
    }
    let offered_client_bits = config.client_max_window_bits.clamp(MIN_OWN_WINDOW_BITS, 15);
    let client_bits = match params.client_max_window_bits {
        None => offered_client_bits,
        Some(None) => return Err("client_max_window_bits without a value"),
        Some(Some(bits)) if bits > offered_client_bits => return Err("client_max_window_bits larger than offered"),
        Some(Some(bits)) if bits < MIN_OWN_WINDOW_BITS => return Err("client_max_window_bits of 8 is not supported"),
        Some(Some(bits)) => bits,
    };
    Ok(DeflateParams {
        server_no_context_takeover: params.server_no_context_takeover,
        client_no_context_takeover: params.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

/// One direction of compression, for the messages we send.
/// Our sending direction: a context kept for the connection's life (context takeover), or
/// borrowed from the pool for each message (no context takeover).
pub(crate) struct Deflater {
    /// Context takeover: our context, created on first use.
    kept: Option<Compress>,
    window_bits: u8,
    level: u32,
    /// No context takeover: where each message's context comes from and goes back to.
    pool: Option<DeflatePool>,
}

impl Deflater {
    pub(crate) fn new(window_bits: u8, level: u32, reset_after_message: bool, pool: &DeflatePool) -> Self {
        Deflater { kept: None, window_bits, level, pool: reset_after_message.then(|| pool.clone()) }
    }

    /// Compresses one whole message into `out` (RFC 7692 §7.2.1), without the trailer.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let (bits, level) = (self.window_bits, self.level);
        match &self.pool {
            Some(pool) => {
                let mut compress = pool.take_compressor(bits, level);
                compress_sync(&mut compress, input, out);
                pool.give_compressor(bits, level, compress);
            }
            None => {
                let compress = self
                    .kept
                    .get_or_insert_with(|| Compress::new_with_window_bits(Compression::new(level.min(9)), false, bits));
                compress_sync(compress, input, out);
            }
        }
    }
}

/// Deflates `input` with a sync flush and strips the trailing `00 00 ff ff`.
fn compress_sync(compress: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut consumed = 0;
    loop {
        out.reserve((input.len() - consumed) / 2 + 64);
        let before_in = compress.total_in();
        // A sync flush over an in-memory buffer cannot fail: errors come only from misuse
        // (a stream already finished), which this type never does.
        let _ = compress.compress_vec(&input[consumed..], out, FlushCompress::Sync);
        consumed += (compress.total_in() - before_in) as usize;
        // The flush is complete once all input is in and the output did not fill its room.
        if consumed == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.len() >= start + TRAILER.len() && out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
    }
    // zlib emits nothing for a sync flush right after another with no input in between (an
    // empty message after a message). An empty payload would not do: the receiver appends the
    // trailer and reads `00 00 ff ff` as the start of a stored block, then takes the next
    // message as its length. An empty message is one empty stored block less the trailer: 0x00
    // (RFC 7692 §7.2.3.6).
    if out.len() == start {
        out.push(0x00);
    }
}

/// Compresses a message once, with a fresh context and this window, for every recipient
/// whose side does not keep its context; the context is borrowed from `pool`.
pub(crate) fn compress_standalone(input: &[u8], window_bits: u8, level: u32, pool: &DeflatePool) -> Vec<u8> {
    let mut compress = pool.take_compressor(window_bits, level);
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    compress_sync(&mut compress, input, &mut out);
    pool.give_compressor(window_bits, level, compress);
    out
}

/// The other direction: inflating the messages we receive. With the peer's context takeover
/// the context lives as long as the connection; without, it is borrowed from the pool at a
/// message's first compressed bytes and given back at its end.
pub(crate) struct Inflater {
    decompress: Option<Decompress>,
    /// No context takeover by the peer: the pool each message's context comes from.
    pool: Option<DeflatePool>,
}

impl Inflater {
    pub(crate) fn new(reset_after_message: bool, pool: &DeflatePool) -> Self {
        Inflater { decompress: None, pool: reset_after_message.then(|| pool.clone()) }
    }

    /// Inflates the next piece of a compressed message, calling `sink` with each piece of
    /// output; `produced` is what the message has inflated to so far, `limit` its maximum.
    ///
    /// Stops once this call has produced `max_output` bytes, so that a few compressed bytes
    /// can be inflated in steps; answers how much of `input` it consumed, which is all of it
    /// unless `max_output` bytes came out.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        produced: &mut usize,
        limit: usize,
        max_output: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<usize, ProtocolError> {
        let pool = &self.pool;
        let decompress = self.decompress.get_or_insert_with(|| match pool {
            Some(pool) => pool.take_inflater(),
            None => Decompress::new_with_window_bits(false, 15),
        });
        let mut scratch = [0u8; 32 << 10];
        let mut consumed = 0;
        let mut output = 0;
        loop {
            let room = scratch.len().min(max_output - output);
            let (before_in, before_out) = (decompress.total_in(), decompress.total_out());
            let result = decompress.decompress(&input[consumed..], &mut scratch[..room], FlushDecompress::Sync);
            let took = (decompress.total_in() - before_in) as usize;
            consumed += took;
            let out = (decompress.total_out() - before_out) as usize;
            output += out;
            // What inflated before a corruption is checked first (the counters include it), so
            // that the error reported follows the byte order, whatever the reads were.
            if out > 0 {
                *produced = produced.saturating_add(out);
                if *produced > limit {
                    return Err(ProtocolError::MessageTooLarge { max: limit });
                }
                sink(&scratch[..out])?;
            }
            let status = result.map_err(|_| ProtocolError::InvalidCompressedData)?;
            // A final block ends the stream: nothing may follow it within the message.
            if status == Status::StreamEnd && consumed < input.len() {
                return Err(ProtocolError::InvalidCompressedData);
            }
            if out < room && consumed == input.len() {
                return Ok(consumed);
            }
            if output == max_output {
                return Ok(consumed);
            }
            if out == 0 && took == 0 {
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// The message is complete: restore its trailer and, if agreed, forget the context.
    pub(crate) fn finish_message(
        &mut self,
        produced: &mut usize,
        limit: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        self.inflate(&TRAILER, produced, limit, usize::MAX, sink)?;
        if let Some(pool) = &self.pool {
            if let Some(decompress) = self.decompress.take() {
                pool.give_inflater(decompress);
            }
        }
        Ok(())
    }
}

/// The extension's state on one connection: what was agreed, and both directions' contexts.
pub(crate) struct Active {
    params: DeflateParams,
    own_window_bits: u8,
    level: u32,
    min_size: usize,
    deflater: Deflater,
    /// The receiving direction, which the connection's façade (`deflate::Session`) drives.
    pub(super) inflater: Inflater,
}

impl Active {
    fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Active {
        let (own_reset, own_bits, peer_reset) = match role {
            Role::Server => {
                (params.server_no_context_takeover, params.server_max_window_bits, params.client_no_context_takeover)
            }
            Role::Client => {
                (params.client_no_context_takeover, params.client_max_window_bits, params.server_no_context_takeover)
            }
        };
        Active {
            params,
            own_window_bits: own_bits,
            level: config.level,
            min_size: config.min_size,
            deflater: Deflater::new(own_bits, config.level, own_reset, &config.pool),
            inflater: Inflater::new(peer_reset, &config.pool),
        }
    }

    /// Server: the session and the response element for the client's offers, if any offer is
    /// acceptable and the config enables the extension.
    pub(crate) fn negotiate(config: &Config, offers: &[ExtensionOffer]) -> Option<(Active, String)> {
        let deflate = config.deflate.as_ref()?;
        let (params, response) = negotiate_server(deflate, offers)?;
        Some((Active::new(Role::Server, params, deflate), response))
    }

    /// Client: the offer to send, if the config enables the extension.
    pub(crate) fn offer(config: &Config) -> Option<String> {
        config.deflate.as_ref().map(client_offer)
    }

    /// Client: the session the server's response agreed to, if it accepted our offer.
    pub(crate) fn from_response(config: &Config, response: &Response) -> Result<Option<Active>, HandshakeError> {
        let accepted: Vec<ExtensionOffer> =
            response.extensions().into_iter().filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME)).collect();
        let (Some(deflate), [element]) = (config.deflate.as_ref(), accepted.as_slice()) else {
            return match accepted.len() {
                0 => Ok(None),
                _ => Err(HandshakeError::BadResponse("permessage-deflate accepted more than once")),
            };
        };
        let params = accept_response(deflate, element).map_err(HandshakeError::BadResponse)?;
        Ok(Some(Active::new(Role::Client, params, deflate)))
    }

    /// What was agreed.
    pub(crate) fn params(&self) -> DeflateParams {
        self.params
    }

    /// Compresses a whole message we send, unless it is too short to be worth it.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < self.min_size {
            return None;
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        self.deflater.compress(payload, &mut out);
        Some(out)
    }

    /// Messages shorter than this go uncompressed.
    pub(crate) fn min_size(&self) -> usize {
        self.min_size
    }

    /// When our side resets its context after every message: the window and level a
    /// compressed encoding made once, with a fresh context, must use to serve this connection.
    pub(crate) fn context_free_encoding(&self) -> Option<(u8, u32, &DeflatePool)> {
        let pool = self.deflater.pool.as_ref()?;
        Some((self.own_window_bits, self.level, pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &str) -> ExtensionOffer {
        let headers =
            [crate::handshake::Header { name: "Sec-WebSocket-Extensions".into(), value: s.as_bytes().to_vec() }];
        let mut all = ExtensionOffer::parse_all(&headers);
        assert_eq!(all.len(), 1, "{s}");
        all.remove(0)
    }

    fn inflate_all(inflater: &mut Inflater, data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        let mut produced = 0;
        inflater.inflate(data, &mut produced, limit, usize::MAX, &mut |p| {
            out.extend_from_slice(p);
            Ok(())
        })?;
        inflater.finish_message(&mut produced, limit, &mut |p| {
            out.extend_from_slice(p);
            Ok(())
        })?;
        Ok(out)
    }

    /// RFC 7692 §7.2.3.1 and §7.2.3.2: "Hello" with and without context takeover.
    #[test]
    fn rfc_hello_examples() {
        let mut deflater = Deflater::new(15, 6, false, &DeflatePool::default());
        let mut first = Vec::new();
        deflater.compress(b"Hello", &mut first);
        assert_eq!(first, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // With context takeover the second "Hello" refers back to the first.
        let mut second = Vec::new();
        deflater.compress(b"Hello", &mut second);
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut inflater = Inflater::new(false, &DeflatePool::default());
        assert_eq!(inflate_all(&mut inflater, &first, 100).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut inflater, &second, 100).unwrap(), b"Hello");
        // Without context takeover both messages are compressed alike.
        let mut fresh = Deflater::new(15, 6, true, &DeflatePool::default());
        for _ in 0..2 {
            let mut out = Vec::new();
            fresh.compress(b"Hello", &mut out);
            assert_eq!(out, first);
        }
        // The RFC's uncompressed (stored) block for "Hello" inflates too.
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_all(&mut Inflater::new(true, &DeflatePool::default()), &stored, 100).unwrap(), b"Hello");
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        let bomb = compress_standalone(&zeros, 15, 9, &DeflatePool::default());
        assert!(bomb.len() < 8 << 10, "4 MiB of zeros compress to {} bytes", bomb.len());
        let mut produced = 0;
        let mut inflater = Inflater::new(false, &DeflatePool::default());
        let mut kept = 0usize;
        let result = inflater.inflate(&bomb, &mut produced, 1 << 20, usize::MAX, &mut |p| {
            kept += p.len();
            Ok(())
        });
        assert_eq!(result, Err(ProtocolError::MessageTooLarge { max: 1 << 20 }));
        assert!(kept <= 1 << 20 && produced <= (1 << 20) + (32 << 10));
    }

    #[test]
    fn inflation_in_steps_gives_the_same_bytes() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let compressed = compress_standalone(&text, 15, 6, &DeflatePool::default());
        let mut inflater = Inflater::new(false, &DeflatePool::default());
        let (mut produced, mut out, mut input) = (0, Vec::new(), &compressed[..]);
        let mut steps = 0;
        while !input.is_empty() {
            let before = out.len();
            let took = inflater
                .inflate(input, &mut produced, usize::MAX, 10_000, &mut |p| {
                    out.extend_from_slice(p);
                    Ok(())
                })
                .unwrap();
            assert!(out.len() - before <= 10_000);
            assert!(took == input.len() || out.len() - before == 10_000, "stopped early without output");
            input = &input[took..];
            steps += 1;
        }
        inflater
            .finish_message(&mut produced, usize::MAX, &mut |p| {
                out.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        assert_eq!(out, text);
        assert!(steps >= text.len() / 10_000, "{steps} steps");
    }

    #[test]
    fn corrupt_data_is_refused() {
        let mut inflater = Inflater::new(false, &DeflatePool::default());
        assert_eq!(
            inflate_all(&mut inflater, &[0xff, 0xff, 0xff, 0xff], 100),
            Err(ProtocolError::InvalidCompressedData)
        );
    }

    #[test]
    fn server_negotiation_table() {
        let ours = DeflateConfig::default();
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate", Some("permessage-deflate")),
            ("permessage-deflate; client_max_window_bits", Some("permessage-deflate")),
            ("permessage-deflate; client_max_window_bits=10", Some("permessage-deflate; client_max_window_bits=10")),
            ("permessage-deflate; server_max_window_bits=9", Some("permessage-deflate; server_max_window_bits=9")),
            ("permessage-deflate; server_max_window_bits=8", None),
            ("permessage-deflate; server_no_context_takeover", Some("permessage-deflate; server_no_context_takeover")),
            ("permessage-deflate; client_no_context_takeover", Some("permessage-deflate")),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=09", None),
            ("permessage-deflate; client_max_window_bits=7", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
            ("permessage-deflate; unknown", None),
            ("x-other", None),
        ];
        for (offered, expected) in cases {
            let got = negotiate_server(&ours, &[offer(offered)]).map(|(_, r)| r);
            assert_eq!(got.as_deref(), *expected, "{offered}");
        }
        // Several offers: the first acceptable one wins.
        let offers = [
            offer("permessage-deflate; server_max_window_bits=8"),
            offer("permessage-deflate; server_no_context_takeover"),
        ];
        let (params, _) = negotiate_server(&ours, &offers).unwrap();
        assert!(params.server_no_context_takeover);
        // Our own policy adds parameters.
        let strict = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            ..ours
        };
        let (params, response) = negotiate_server(&strict, &[offer("permessage-deflate")]).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (10, 15));
    }

    #[test]
    fn client_validates_the_response() {
        let ours = DeflateConfig { server_max_window_bits: 12, ..DeflateConfig::default() };
        assert_eq!(client_offer(&ours), "permessage-deflate; server_max_window_bits=12; client_max_window_bits");
        let ok =
            accept_response(&ours, &offer("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"))
                .unwrap();
        assert_eq!((ok.server_max_window_bits, ok.client_max_window_bits), (10, 9));
        for bad in [
            "permessage-deflate; server_max_window_bits=13",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ] {
            assert!(accept_response(&ours, &offer(bad)).is_err(), "{bad}");
        }
    }
}
