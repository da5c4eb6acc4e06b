//! The chat server: one port serves the web client (`GET /`) and the WebSocket (`GET /ws`),
//! speaking a JSON protocol under the subprotocol `chat.v1`. See `docs/chat-protocol.md`.
//!
//! It sits on the mio adapter without touching mio: the adapter handles the handshake
//! policies (origin allow-list 403, connection limit 503, subprotocol 400), keep-alive
//! (a silent client is reaped with 1011) and backpressure; this module is the application.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wsproto::{
    Accept, CloseCause, CloseCode, Closed, Config, DeflateConfig, HttpResponse, KeepAlive, Message, OriginPolicy,
    PreparedFrame, Request, SubprotocolPolicy,
};
use wsproto_adapters::server::{ConnId, Context, Handler, Server, ServerOptions};

/// The subprotocol of this version of the JSON protocol. A `chat.v2` would be added beside it.
pub const SUBPROTOCOL: &str = "chat.v1";

/// The longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// The longest chat or whisper text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

const INDEX_HTML: &str = include_str!("../chat/static/index.html");
const APP_JS: &str = include_str!("../chat/static/app.js");
const STYLE_CSS: &str = include_str!("../chat/static/style.css");

/// How the chat server is set up (the `chat` binary's flags).
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Origins allowed to open a WebSocket; empty means the server's own origin.
    pub origins: Vec<String>,
    /// Connections beyond this get 503.
    pub max_clients: usize,
    /// Idle time before a heartbeat ping.
    pub ping_interval: Duration,
    /// How long a client may stay silent after a ping before it is reaped.
    pub ping_timeout: Duration,
    /// The largest message a client may send (1009 beyond).
    pub max_message: usize,
    /// Sustained chat messages per second per client before it is closed with 1008.
    pub max_rate: f64,
    /// Sustained drawing segments per second per client (a moving pointer sends many).
    pub max_draw_rate: f64,
    /// Strokes the board keeps for late joiners; the oldest are dropped beyond.
    pub board_limit: usize,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            addr: ([127, 0, 0, 1], 3000).into(),
            origins: Vec::new(),
            max_clients: 1000,
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            max_message: 64 << 10,
            max_rate: 20.0,
            max_draw_rate: 200.0,
            board_limit: 10_000,
        }
    }
}

/// Binds the chat server; run it with `server.run(handler)`.
pub fn bind(options: &ChatOptions) -> io::Result<(Server, Chat)> {
    let listener = std::net::TcpListener::bind(options.addr)?;
    let addr = listener.local_addr()?;
    let origins = if options.origins.is_empty() { own_origins(addr) } else { options.origins.clone() };
    let config = Config {
        max_message_size: options.max_message,
        max_frame_size: options.max_message,
        keep_alive: Some(KeepAlive { interval: options.ping_interval, timeout: options.ping_timeout }),
        origins: OriginPolicy::AllowList { origins, allow_missing: true },
        subprotocols: SubprotocolPolicy { supported: vec![SUBPROTOCOL.into()], required: true },
        max_queued_bytes: 4 << 20,
        // Browsers offer permessage-deflate. Resetting our context after each message lets a
        // broadcast be compressed once for every member instead of once per member.
        deflate: Some(DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() }),
        ..Config::default()
    };
    let server_options =
        ServerOptions { config: Arc::new(config), max_connections: options.max_clients, ..ServerOptions::default() };
    let server = Server::from_std(listener, server_options)?;
    Ok((server, Chat::new(options)))
}

/// The origins a browser shows for pages served by this server itself.
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() {
        origins.push(format!("http://localhost:{port}"));
        origins.push(format!("http://127.0.0.1:{port}"));
    }
    origins
}

/// Messages a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Join { nick: String },
    Say { text: String },
    Whisper { to: String, text: String },
    Users,
    Draw(Stroke),
    Clear,
}

/// A segment drawn on the board; coordinates are fractions of the board's size.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stroke {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    color: String,
    width: f64,
}

impl Stroke {
    fn is_valid(&self) -> bool {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        let color = self.color.len() == 7
            && self.color.starts_with('#')
            && self.color[1..].bytes().all(|b| b.is_ascii_hexdigit());
        [self.x0, self.y0, self.x1, self.y1].into_iter().all(unit)
            && color
            && self.width.is_finite()
            && (1.0..=50.0).contains(&self.width)
    }
}

/// A stroke as kept on the board and relayed: who drew it, too.
#[derive(Debug, Clone, Serialize)]
struct BoardStroke {
    from: String,
    #[serde(flatten)]
    stroke: Stroke,
}

/// Messages the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerMessage<'a> {
    Welcome { nick: &'a str, users: Vec<&'a str>, board: &'a VecDeque<BoardStroke> },
    Joined { nick: &'a str },
    Left { nick: &'a str, reason: &'a str },
    Message { id: u64, from: &'a str, text: &'a str, ts: u64 },
    Whisper { from: &'a str, to: &'a str, text: &'a str, ts: u64 },
    Users { users: Vec<&'a str> },
    Draw(&'a BoardStroke),
    Clear { from: &'a str },
    Error { code: &'a str, message: &'a str },
}

impl ServerMessage<'_> {
    fn frame(&self) -> PreparedFrame {
        // Serialising these types cannot fail: no maps with non-string keys, no failing impls.
        PreparedFrame::text(&serde_json::to_string(self).unwrap_or_default())
    }
}

/// A token bucket: `rate` per second sustained, bursts up to `burst`.
#[derive(Debug, Clone)]
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: f64, now: Instant) -> Self {
        let burst = (rate * 2.0).max(1.0);
        RateLimit { tokens: burst, rate, burst, last: now }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Client {
    nick: Option<String>,
    messages: RateLimit,
    draws: RateLimit,
}

/// The chat application: members, the board, message ids.
pub struct Chat {
    clients: HashMap<ConnId, Client>,
    /// Lower-cased nick to member, for case-insensitive uniqueness and whisper lookup.
    nicks: HashMap<String, ConnId>,
    board: VecDeque<BoardStroke>,
    next_message_id: u64,
    options: ChatOptions,
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Checks a requested nickname: trimmed, 1-32 characters, no control characters.
pub fn validate_nick(raw: &str) -> Result<String, &'static str> {
    let nick = raw.trim();
    let chars = nick.chars().count();
    if chars == 0 {
        return Err("nickname is empty");
    }
    if chars > MAX_NICK_CHARS {
        return Err("nickname is longer than 32 characters");
    }
    if nick.chars().any(char::is_control) {
        return Err("nickname has control characters");
    }
    Ok(nick.to_owned())
}

impl Chat {
    fn new(options: &ChatOptions) -> Chat {
        Chat {
            clients: HashMap::new(),
            nicks: HashMap::new(),
            board: VecDeque::new(),
            next_message_id: 1,
            options: options.clone(),
        }
    }

    fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.nicks.values().copied()
    }

    fn user_list(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self.clients.values().filter_map(|c| c.nick.as_deref()).collect();
        users.sort_by_key(|n| n.to_lowercase());
        users
    }

    /// Sends one encoded frame to every member (but `except`).
    fn to_members(&self, ctx: &mut Context, frame: &PreparedFrame, except: Option<ConnId>) {
        for id in self.members() {
            if Some(id) != except {
                let _ = ctx.send_prepared(id, frame);
            }
        }
    }

    fn error(ctx: &mut Context, id: ConnId, code: &str, message: &str) {
        let _ = ctx.send_prepared(id, &ServerMessage::Error { code, message }.frame());
    }

    fn handle(&mut self, ctx: &mut Context, id: ConnId, text: &str) {
        let parsed: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => return Chat::error(ctx, id, "bad_json", "message is not valid JSON"),
        };
        let Some(kind) = parsed.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Chat::error(ctx, id, "bad_json", "message must be an object with a string \"type\"");
        };
        if !matches!(kind.as_str(), "join" | "say" | "whisper" | "users" | "draw" | "clear") {
            return Chat::error(ctx, id, "unknown_type", &format!("unknown message type {kind:?}"));
        }
        let message: ClientMessage = match serde_json::from_value(parsed) {
            Ok(message) => message,
            Err(e) => return Chat::error(ctx, id, "bad_message", &format!("malformed {kind:?} message: {e}")),
        };
        let Some(client) = self.clients.get_mut(&id) else { return };
        let now = ctx.now();
        let allowed = match message {
            ClientMessage::Draw(_) => client.draws.allow(now),
            _ => client.messages.allow(now),
        };
        if !allowed {
            tracing::info!(%id, nick = ?client.nick, "closing a flooding client");
            Chat::error(ctx, id, "rate_limited", "too many messages; closing");
            let _ = ctx.close(id, CloseCode::POLICY_VIOLATION, "rate limit exceeded");
            return;
        }
        let Some(nick) = client.nick.clone() else {
            return match message {
                ClientMessage::Join { nick } => self.join(ctx, id, &nick),
                _ => Chat::error(ctx, id, "not_joined", "send a join message first"),
            };
        };
        match message {
            ClientMessage::Join { .. } => Chat::error(ctx, id, "already_joined", "you have already joined"),
            ClientMessage::Say { text } => {
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Chat::error(ctx, id, "too_long", "text is longer than 2000 characters");
                }
                let message_id = self.next_message_id;
                self.next_message_id += 1;
                let frame =
                    ServerMessage::Message { id: message_id, from: &nick, text: &text, ts: unix_millis() }.frame();
                self.to_members(ctx, &frame, None);
            }
            ClientMessage::Whisper { to, text } => {
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Chat::error(ctx, id, "too_long", "text is longer than 2000 characters");
                }
                let Some(&target) = self.nicks.get(&to.trim().to_lowercase()) else {
                    return Chat::error(ctx, id, "no_such_user", &format!("nobody is called {to:?}"));
                };
                let target_nick = self.clients.get(&target).and_then(|c| c.nick.as_deref()).unwrap_or_default();
                let frame =
                    ServerMessage::Whisper { from: &nick, to: target_nick, text: &text, ts: unix_millis() }.frame();
                let _ = ctx.send_prepared(target, &frame);
                if target != id {
                    let _ = ctx.send_prepared(id, &frame);
                }
            }
            ClientMessage::Users => {
                let _ = ctx.send_prepared(id, &ServerMessage::Users { users: self.user_list() }.frame());
            }
            ClientMessage::Draw(stroke) => {
                if !stroke.is_valid() {
                    return Chat::error(
                        ctx,
                        id,
                        "bad_message",
                        "a stroke needs coordinates in [0,1], a #rrggbb colour and a width of 1-50",
                    );
                }
                let stroke = BoardStroke { from: nick, stroke };
                self.to_members(ctx, &ServerMessage::Draw(&stroke).frame(), Some(id));
                if self.board.len() >= self.options.board_limit {
                    self.board.pop_front();
                }
                self.board.push_back(stroke);
            }
            ClientMessage::Clear => {
                self.board.clear();
                self.to_members(ctx, &ServerMessage::Clear { from: &nick }.frame(), None);
            }
        }
    }

    fn join(&mut self, ctx: &mut Context, id: ConnId, requested: &str) {
        let nick = match validate_nick(requested) {
            Ok(nick) => nick,
            Err(why) => return Chat::error(ctx, id, "invalid_nick", why),
        };
        let key = nick.to_lowercase();
        if self.nicks.contains_key(&key) {
            return Chat::error(ctx, id, "nick_taken", &format!("{nick:?} is taken"));
        }
        self.nicks.insert(key, id);
        if let Some(client) = self.clients.get_mut(&id) {
            client.nick = Some(nick.clone());
        }
        tracing::info!(%id, %nick, "joined");
        let welcome = ServerMessage::Welcome { nick: &nick, users: self.user_list(), board: &self.board }.frame();
        let _ = ctx.send_prepared(id, &welcome);
        self.to_members(ctx, &ServerMessage::Joined { nick: &nick }.frame(), Some(id));
    }

    fn leave(&mut self, ctx: &mut Context, id: ConnId, reason: &str) {
        let Some(client) = self.clients.remove(&id) else { return };
        let Some(nick) = client.nick else { return };
        self.nicks.remove(&nick.to_lowercase());
        tracing::info!(%id, %nick, reason, "left");
        self.to_members(ctx, &ServerMessage::Left { nick: &nick, reason }.frame(), None);
    }
}

/// Why a member left, as the others see it.
fn leave_reason(closed: &Closed) -> String {
    match &closed.cause {
        CloseCause::KeepAliveTimeout => "timed out".into(),
        CloseCause::Eof => "connection lost".into(),
        CloseCause::Protocol(e) => format!("protocol error: {e}"),
        _ if closed.code == CloseCode::POLICY_VIOLATION => "kicked for flooding".into(),
        _ => "quit".into(),
    }
}

fn static_response(content_type: &str, body: &str) -> HttpResponse {
    HttpResponse::new(200)
        .body(content_type, body.as_bytes().to_vec())
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
}

impl Handler for Chat {
    fn on_request(&mut self, _ctx: &mut Context, id: ConnId, request: &Request) -> Result<Accept, HttpResponse> {
        if request.path() != "/ws" {
            return Err(HttpResponse::new(404).text("WebSocket endpoint is /ws\n"));
        }
        tracing::info!(%id, origin = ?request.origin(), "connected");
        Ok(Accept::new())
    }

    fn on_http(&mut self, _ctx: &mut Context, _id: ConnId, request: &Request) -> HttpResponse {
        if request.method() != "GET" && request.method() != "HEAD" {
            return HttpResponse::new(405).header("Allow", "GET").text("method not allowed\n");
        }
        match request.path() {
            "/" | "/index.html" => static_response("text/html; charset=utf-8", INDEX_HTML),
            "/app.js" => static_response("text/javascript; charset=utf-8", APP_JS),
            "/style.css" => static_response("text/css; charset=utf-8", STYLE_CSS),
            "/ws" => HttpResponse::upgrade_required(),
            _ => HttpResponse::new(404).text("not found\n"),
        }
    }

    fn on_open(&mut self, ctx: &mut Context, id: ConnId) {
        let now = ctx.now();
        let client = Client {
            nick: None,
            messages: RateLimit::new(self.options.max_rate, now),
            draws: RateLimit::new(self.options.max_draw_rate, now),
        };
        self.clients.insert(id, client);
    }

    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        match message {
            Message::Text(text) => self.handle(ctx, id, &text),
            Message::Binary(_) => {
                let _ = ctx.close(id, CloseCode::UNSUPPORTED_DATA, "chat.v1 is text (JSON) only");
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Context, id: ConnId, closed: &Closed) {
        if matches!(closed.cause, CloseCause::KeepAliveTimeout) {
            tracing::info!(%id, "reaped: no answer to the heartbeat");
        }
        self.leave(ctx, id, &leave_reason(closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rules() {
        assert_eq!(validate_nick("  alice "), Ok("alice".into()));
        assert_eq!(validate_nick(&"é".repeat(32)), Ok("é".repeat(32)));
        assert!(validate_nick(&"é".repeat(33)).is_err());
        assert!(validate_nick("   ").is_err());
        assert!(validate_nick("a\u{7}b").is_err());
        assert!(validate_nick("a\nb").is_err());
    }

    #[test]
    fn strokes_are_checked() {
        let good = Stroke { x0: 0.0, y0: 1.0, x1: 0.5, y1: 0.5, color: "#a0B1c2".into(), width: 4.0 };
        assert!(good.is_valid());
        for bad in [
            Stroke { x0: f64::NAN, ..good.clone() },
            Stroke { y1: 1.5, ..good.clone() },
            Stroke { color: "red".into(), ..good.clone() },
            Stroke { color: "#12345g".into(), ..good.clone() },
            Stroke { width: 0.5, ..good.clone() },
            Stroke { width: 51.0, ..good.clone() },
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn rate_limit_allows_bursts_and_the_sustained_rate_only() {
        let start = Instant::now();
        let mut limit = RateLimit::new(20.0, start);
        assert_eq!((0..100).take_while(|_| limit.allow(start)).count(), 40, "a burst of twice the rate");
        // Ten seconds just under the rate: nothing refused.
        let mut now = start;
        for _ in 0..200 {
            now += Duration::from_millis(51);
            assert!(limit.allow(now));
        }
        // Ten seconds at twice the rate: about half refused.
        let refused = (0..400)
            .filter(|_| {
                now += Duration::from_millis(25);
                !limit.allow(now)
            })
            .count();
        assert!((180..=220).contains(&refused), "{refused}");
    }
}
