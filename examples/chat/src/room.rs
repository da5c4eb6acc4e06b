//! The room: who is connected, who has joined under which nick, the drawing board, and the
//! one order of chat messages that every member sees (protocol.md, "Server to client").

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use wsproto::PreparedFrame;
use wsproto_adapters::mio::{ConnId, Context};

use crate::protocol::{validate_nick, BoardStroke, ClientMessage, ServerMessage, MAX_TEXT_CHARS};

/// The room's state; every change to it goes through the methods below.
pub(crate) struct Room {
    /// Every open connection, with its nick once it has joined.
    clients: HashMap<ConnId, Option<String>>,
    /// Lower-cased nick to member, for case-insensitive uniqueness and whisper lookup.
    nicks: HashMap<String, ConnId>,
    board: VecDeque<BoardStroke>,
    /// Strokes the board keeps; the oldest are dropped beyond.
    board_limit: usize,
    next_message_id: u64,
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Sends an `error` message to one client.
pub(crate) fn error<S>(ctx: &mut Context<S>, id: ConnId, code: &str, message: &str) {
    let _ = ctx.send_prepared(id, &ServerMessage::Error { code, message }.frame());
}

impl Room {
    /// An empty room whose board keeps `board_limit` strokes.
    pub(crate) fn new(board_limit: usize) -> Room {
        Room { clients: HashMap::new(), nicks: HashMap::new(), board: VecDeque::new(), board_limit, next_message_id: 1 }
    }

    /// A connection opened; it is no member until it joins.
    pub(crate) fn connect(&mut self, id: ConnId) {
        self.clients.insert(id, None);
    }

    /// The nick `id` joined under, if it has.
    pub(crate) fn nick(&self, id: ConnId) -> Option<&str> {
        self.clients.get(&id).and_then(Option::as_deref)
    }

    fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.nicks.values().copied()
    }

    fn user_list(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self.clients.values().filter_map(Option::as_deref).collect();
        users.sort_by_key(|n| n.to_lowercase());
        users
    }

    /// Sends one encoded frame to every member (but `except`).
    fn to_members<S>(&self, ctx: &mut Context<S>, frame: &PreparedFrame, except: Option<ConnId>) {
        for id in self.members() {
            if Some(id) != except {
                let _ = ctx.send_prepared(id, frame);
            }
        }
    }

    /// Carries out one message of a connected client: `join` before anything else, then the rest.
    pub(crate) fn handle<S>(&mut self, ctx: &mut Context<S>, id: ConnId, message: ClientMessage) {
        let Some(nick) = self.nick(id).map(str::to_owned) else {
            return match message {
                ClientMessage::Join { nick, .. } => self.join(ctx, id, &nick),
                _ => error(ctx, id, "not_joined", "send a join message first"),
            };
        };
        match message {
            ClientMessage::Join { .. } => error(ctx, id, "already_joined", "you have already joined"),
            ClientMessage::Say { text } => {
                if text.chars().count() > MAX_TEXT_CHARS {
                    return error(ctx, id, "too_long", "text is longer than 2000 characters");
                }
                let message_id = self.next_message_id;
                self.next_message_id += 1;
                let frame =
                    ServerMessage::Message { id: message_id, from: &nick, text: &text, ts: unix_millis() }.frame();
                self.to_members(ctx, &frame, None);
            }
            ClientMessage::Whisper { to, text } => {
                if text.chars().count() > MAX_TEXT_CHARS {
                    return error(ctx, id, "too_long", "text is longer than 2000 characters");
                }
                let Some(&target) = self.nicks.get(&to.trim().to_lowercase()) else {
                    return error(ctx, id, "no_such_user", &format!("nobody is called {to:?}"));
                };
                let target_nick = self.nick(target).unwrap_or_default();
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
                    return error(
                        ctx,
                        id,
                        "bad_message",
                        "a stroke needs coordinates in [0,1], a #rrggbb colour and a width of 1-50",
                    );
                }
                let stroke = BoardStroke { from: nick, stroke };
                self.to_members(ctx, &ServerMessage::Draw(&stroke).frame(), Some(id));
                if self.board.len() >= self.board_limit {
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

    fn join<S>(&mut self, ctx: &mut Context<S>, id: ConnId, requested: &str) {
        let nick = match validate_nick(requested) {
            Ok(nick) => nick,
            Err(why) => return error(ctx, id, "invalid_nick", why),
        };
        let key = nick.to_lowercase();
        if self.nicks.contains_key(&key) {
            return error(ctx, id, "nick_taken", &format!("{nick:?} is taken"));
        }
        self.nicks.insert(key, id);
        if let Some(slot) = self.clients.get_mut(&id) {
            *slot = Some(nick.clone());
        }
        tracing::info!(%id, %nick, "joined");
        let welcome = ServerMessage::Welcome { nick: &nick, users: self.user_list(), board: &self.board }.frame();
        let _ = ctx.send_prepared(id, &welcome);
        self.to_members(ctx, &ServerMessage::Joined { nick: &nick }.frame(), Some(id));
    }

    /// A connection closed; if it had joined, the others see it leave for `reason`.
    pub(crate) fn leave<S>(&mut self, ctx: &mut Context<S>, id: ConnId, reason: &str) {
        let Some(Some(nick)) = self.clients.remove(&id) else { return };
        self.nicks.remove(&nick.to_lowercase());
        tracing::info!(%id, %nick, reason, "left");
        self.to_members(ctx, &ServerMessage::Left { nick: &nick, reason }.frame(), None);
    }
}
