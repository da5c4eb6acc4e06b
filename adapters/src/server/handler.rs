//! The application's side of a server.

use wsproto::bytes::Bytes;
use wsproto::{Accept, CloseCode, Closed, Message, MessageKind, OutgoingResponse, Request};

use super::{ConnId, Context};

/// The application's side of the loop: callbacks on the loop thread, each with a [`Context`].
///
/// `on_open` (which makes the connection's [`State`](Handler::State)) and `on_message` have no
/// default; the other methods do.
pub trait Handler {
    /// What the application keeps per open connection (a nick, a rate-limit bucket): made by
    /// [`on_open`](Handler::on_open), reachable through [`Context::state`] /
    /// [`Context::state_mut`] / [`Context::states`], handed back by value to
    /// [`on_close`](Handler::on_close). `()` for none.
    type State;

    /// What other threads send the handler through [`Handle::command`](super::Handle::command),
    /// received by [`on_command`](Handler::on_command). `()` for none.
    type Command: Send + 'static;

    /// A WebSocket upgrade request that passed the config's origin and subprotocol policies
    /// and the connection limit: accept it (choosing a subprotocol, adding headers) or reject
    /// it with a response. Default: accept.
    fn on_request(
        &mut self,
        ctx: &mut Context<Self::State>,
        id: ConnId,
        request: &Request,
    ) -> Result<Accept, OutgoingResponse> {
        let _ = (ctx, id, request);
        Ok(Accept::new())
    }

    /// A plain HTTP request on the same port (no `Upgrade: websocket`). Default: 404.
    fn on_http(&mut self, ctx: &mut Context<Self::State>, id: ConnId, request: &Request) -> OutgoingResponse {
        let _ = (ctx, id, request);
        OutgoingResponse::new(404).text("not found\n")
    }

    /// The connection is open and messages may flow: answers its state. The handshake request
    /// is still there ([`Context::request`]; afterwards only with
    /// [`Config::keep_handshake`](wsproto::Config::keep_handshake)); [`Context::state`] is
    /// `None` until this returns.
    fn on_open(&mut self, ctx: &mut Context<Self::State>, id: ConnId) -> Self::State;

    /// A whole message arrived ([`ReceiveMode::Messages`](wsproto::ReceiveMode::Messages), the
    /// default).
    fn on_message(&mut self, ctx: &mut Context<Self::State>, id: ConnId, message: Message);

    /// A piece of a message arrived ([`ReceiveMode::Streaming`](wsproto::ReceiveMode::Streaming)):
    /// `kind` from the message's first frame, `first` and `last` mark its ends; a text chunk
    /// may end inside a code point (the core validates text as it arrives).
    ///
    /// Default: a handler that does not take streamed messages closes the connection with 1011
    /// (internal error) at the first chunk, so data is never dropped unnoticed.
    fn on_chunk(
        &mut self,
        ctx: &mut Context<Self::State>,
        id: ConnId,
        kind: MessageKind,
        data: Bytes,
        first: bool,
        last: bool,
    ) {
        let _ = (kind, data, first, last);
        tracing::error!(%id, "ReceiveMode::Streaming without Handler::on_chunk: closing");
        let _ = ctx.close(id, CloseCode::INTERNAL_ERROR, "streamed messages are not handled");
    }

    /// A command from another thread ([`Handle::command`](super::Handle::command)). Default:
    /// ignored.
    fn on_command(&mut self, ctx: &mut Context<Self::State>, command: Self::Command) {
        let _ = (ctx, command);
    }

    /// An opened connection ended (for any reason: see [`Closed::cause`]): its state comes back.
    /// The id is no longer valid for sending.
    fn on_close(&mut self, ctx: &mut Context<Self::State>, id: ConnId, state: Self::State, closed: &Closed) {
        let _ = (ctx, id, state, closed);
    }
}
