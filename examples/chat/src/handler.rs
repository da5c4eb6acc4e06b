//! The glue to the mio adapter's [`Handler`]: routes HTTP to [`crate::http`], text messages
//! through flood control to the [`Room`], and closes to the room with the reason the others
//! are shown.

use wsproto::{Accept, CloseCause, CloseCode, Closed, LocalCause, Message, OutgoingResponse, Request};
use wsproto_adapters::mio::{ConnId, Context, Handler};

use crate::cluster::{ClusterRoom, Command};
use crate::http;
use crate::limits::FloodControl;
use crate::protocol::ClientMessage;
use crate::room::{self, Room};
use crate::ChatOptions;

/// The room of a single node, or this node's part of a cluster's room.
enum Rooms {
    Single(Room),
    Cluster(ClusterRoom),
}

/// The chat application: the room; each connection's flood control is its handler state.
pub struct Chat {
    room: Rooms,
    options: ChatOptions,
}

impl Chat {
    pub(crate) fn single(options: &ChatOptions) -> Chat {
        Chat { room: Rooms::Single(Room::new(options.board_limit)), options: options.clone() }
    }

    pub(crate) fn cluster(options: &ChatOptions, room: ClusterRoom) -> Chat {
        Chat { room: Rooms::Cluster(room), options: options.clone() }
    }

    fn nick(&self, id: ConnId) -> Option<&str> {
        match &self.room {
            Rooms::Single(room) => room.nick(id),
            Rooms::Cluster(room) => room.nick(id),
        }
    }

    fn on_text(&mut self, ctx: &mut Context<FloodControl>, id: ConnId, text: &str) {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err((code, why)) => return room::error(ctx, id, code, &why),
        };
        let now = ctx.now();
        let Some(flood) = ctx.state_mut(id) else { return };
        if !flood.allow(matches!(message, ClientMessage::Draw(_)), now) {
            tracing::info!(%id, nick = ?self.nick(id), "closing a flooding client");
            room::error(ctx, id, "rate_limited", "too many messages; closing");
            let _ = ctx.close_with_cause(id, CloseCode::POLICY_VIOLATION, "rate limit exceeded", LocalCause::Policy);
            return;
        }
        match &mut self.room {
            Rooms::Single(room) => room.handle(ctx, id, message),
            Rooms::Cluster(room) => room.handle(ctx, id, message),
        }
    }
}

/// Why a member left, as the others see it.
fn leave_reason(closed: &Closed) -> String {
    match &closed.cause {
        CloseCause::KeepAliveTimeout => "timed out".into(),
        CloseCause::Eof => "connection lost".into(),
        CloseCause::Protocol(e) => format!("protocol error: {e}"),
        CloseCause::Local(LocalCause::Policy) => "kicked for flooding".into(),
        CloseCause::Local(LocalCause::SlowConsumer) => "too slow".into(),
        CloseCause::Local(LocalCause::Shutdown) => "server shutting down".into(),
        _ => "quit".into(),
    }
}

impl Handler for Chat {
    type State = FloodControl;
    type Command = Command;

    fn on_request(
        &mut self,
        _ctx: &mut Context<FloodControl>,
        id: ConnId,
        request: &Request,
    ) -> Result<Accept, OutgoingResponse> {
        if request.path() != http::WS_PATH {
            return Err(OutgoingResponse::new(404).text("WebSocket endpoint is /ws\n"));
        }
        tracing::info!(%id, origin = ?request.origin(), "connected");
        Ok(Accept::new())
    }

    fn on_http(&mut self, _ctx: &mut Context<FloodControl>, _id: ConnId, request: &Request) -> OutgoingResponse {
        http::respond(request)
    }

    fn on_open(&mut self, ctx: &mut Context<FloodControl>, id: ConnId) -> FloodControl {
        match &mut self.room {
            Rooms::Single(room) => room.connect(id),
            Rooms::Cluster(room) => room.connect(id),
        }
        FloodControl::new(self.options.max_rate, self.options.max_draw_rate, ctx.now())
    }

    fn on_message(&mut self, ctx: &mut Context<FloodControl>, id: ConnId, message: Message) {
        match message {
            Message::Text(text) => self.on_text(ctx, id, &text),
            Message::Binary(_) => {
                let _ = ctx.close(id, CloseCode::UNSUPPORTED_DATA, "chat.v1 is text (JSON) only");
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Context<FloodControl>, id: ConnId, _flood: FloodControl, closed: &Closed) {
        if matches!(closed.cause, CloseCause::KeepAliveTimeout) {
            tracing::info!(%id, "reaped: no answer to the heartbeat");
        }
        match &mut self.room {
            Rooms::Single(room) => room.leave(ctx, id, &leave_reason(closed)),
            Rooms::Cluster(room) => room.leave(ctx, id, &leave_reason(closed)),
        }
    }

    fn on_command(&mut self, ctx: &mut Context<FloodControl>, command: Command) {
        if let Rooms::Cluster(room) = &mut self.room {
            room.command(ctx, command);
        }
    }
}
