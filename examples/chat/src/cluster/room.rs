//! The room in cluster mode, on the loop thread: a copy of the cluster's room kept by
//! delivering the stream in order, and this node's connections. Requests go to the writer
//! (`Link`); nothing a client sees happens before its event comes back from the stream.

use std::collections::{HashMap, VecDeque};

use wsproto::{CloseCode, PreparedFrame};
use wsproto_adapters::mio::{ConnId, Context};

use super::{ClusterOptions, Command, Delivered, Event, Link, Op, Record, Tell};
use crate::protocol::{validate_nick, BoardStroke, ClientMessage, ServerMessage, MAX_TEXT_CHARS};
use crate::room::error;

/// Where one of this node's connections is.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Connected,
    /// Its join went to Redis; the welcome comes with the join event.
    Joining(String),
    Joined(String),
}

struct Local {
    id: ConnId,
    stage: Stage,
}

/// The cluster room as this node knows it, and this node's connections.
pub(crate) struct ClusterRoom {
    link: Link,
    /// Lower-cased nick to member, on every node.
    members: HashMap<String, Record>,
    board: VecDeque<BoardStroke>,
    board_limit: usize,
    /// This node's connections by their number in the cluster, and the numbers by id.
    local: HashMap<u64, Local>,
    numbers: HashMap<ConnId, u64>,
    next_number: u64,
    /// The snapshot arrived: the copy of the room is good.
    ready: bool,
    /// The writer reaches Redis.
    available: bool,
    /// After Redis lost its data: members (by lower-cased nick) not yet registered again.
    unconfirmed: HashMap<String, Record>,
}

impl ClusterRoom {
    pub(crate) fn new(link: Link, _options: &ClusterOptions, board_limit: usize) -> Self {
        ClusterRoom {
            link,
            members: HashMap::new(),
            board: VecDeque::new(),
            board_limit: board_limit.max(1),
            local: HashMap::new(),
            numbers: HashMap::new(),
            next_number: 1,
            ready: false,
            available: false,
            unconfirmed: HashMap::new(),
        }
    }

    pub(crate) fn connect(&mut self, id: ConnId) {
        let number = self.next_number;
        self.next_number += 1;
        self.local.insert(number, Local { id, stage: Stage::Connected });
        self.numbers.insert(id, number);
    }

    pub(crate) fn nick(&self, id: ConnId) -> Option<&str> {
        match &self.local.get(self.numbers.get(&id)?)?.stage {
            Stage::Joined(nick) => Some(nick),
            _ => None,
        }
    }

    fn user_list(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self.members.values().map(|m| m.nick.as_str()).collect();
        users.sort_by_key(|n| n.to_lowercase());
        users
    }

    /// Sends a frame to this node's members (but `except`).
    fn to_members<S>(&self, ctx: &mut Context<S>, frame: &PreparedFrame, except: Option<u64>) {
        for (number, local) in &self.local {
            if matches!(local.stage, Stage::Joined(_)) && Some(*number) != except {
                let _ = ctx.send_prepared(local.id, frame);
            }
        }
    }

    fn local_with_nick(&self, lower: &str) -> impl Iterator<Item = ConnId> + '_ {
        let lower = lower.to_owned();
        self.local.values().filter_map(move |l| match &l.stage {
            Stage::Joined(nick) if nick.to_lowercase() == lower => Some(l.id),
            _ => None,
        })
    }

    pub(crate) fn handle<S>(&mut self, ctx: &mut Context<S>, id: ConnId, message: ClientMessage) {
        let Some(&number) = self.numbers.get(&id) else { return };
        let Some(stage) = self.local.get(&number).map(|l| l.stage.clone()) else { return };
        let nick = match (stage, message) {
            (Stage::Connected, ClientMessage::Join { nick, resume }) => {
                let nick = match validate_nick(&nick) {
                    Ok(nick) => nick,
                    Err(why) => return error(ctx, id, "invalid_nick", why),
                };
                if !self.ready || !self.available {
                    return error(ctx, id, "unavailable", "the room is unavailable; try again");
                }
                // No look at our copy of the members: it may lag behind a leave on another
                // node. The join script decides.
                if let Some(local) = self.local.get_mut(&number) {
                    local.stage = Stage::Joining(nick.clone());
                }
                return self.link.send(Op::Join { conn: number, nick, resume });
            }
            (Stage::Connected, _) => return error(ctx, id, "not_joined", "send a join message first"),
            (Stage::Joining(_), _) => return error(ctx, id, "not_joined", "wait for the welcome"),
            (Stage::Joined(_), ClientMessage::Join { .. }) => {
                return error(ctx, id, "already_joined", "you have already joined")
            }
            (Stage::Joined(nick), message) => (nick, message),
        };
        let (nick, message) = nick;
        if let ClientMessage::Users = message {
            let _ = ctx.send_prepared(id, &ServerMessage::Users { users: self.user_list() }.frame());
            return;
        }
        let op = match message {
            ClientMessage::Say { text } | ClientMessage::Whisper { text, .. }
                if text.chars().count() > MAX_TEXT_CHARS =>
            {
                return error(ctx, id, "too_long", "text is longer than 2000 characters");
            }
            ClientMessage::Draw(stroke) if !stroke.is_valid() => {
                return error(
                    ctx,
                    id,
                    "bad_message",
                    "a stroke needs coordinates in [0,1], a #rrggbb colour and a width of 1-50",
                );
            }
            ClientMessage::Say { text } => Op::Say { conn: number, from: nick, text },
            ClientMessage::Whisper { to, text } => Op::Whisper { conn: number, from: nick, to, text },
            ClientMessage::Draw(stroke) => Op::Draw { conn: number, stroke: BoardStroke { from: nick, stroke } },
            ClientMessage::Clear => Op::Clear { conn: number, from: nick },
            ClientMessage::Join { .. } | ClientMessage::Users => return,
        };
        if !self.available {
            return error(ctx, id, "unavailable", "the room is unavailable; try again");
        }
        self.link.send(op);
    }

    pub(crate) fn leave<S>(&mut self, _ctx: &mut Context<S>, id: ConnId, reason: &str) {
        let Some(number) = self.numbers.remove(&id) else { return };
        let Some(local) = self.local.remove(&number) else { return };
        if let Stage::Joining(nick) | Stage::Joined(nick) = local.stage {
            tracing::info!(%id, %nick, reason, "left");
            self.link.send(Op::Leave { conn: number, nick, reason: reason.into() });
        }
    }

    pub(crate) fn command<S>(&mut self, ctx: &mut Context<S>, Command(tell): Command) {
        match tell {
            Tell::Snapshot { members, board } => {
                self.members = members.into_iter().map(|m| (m.nick.to_lowercase(), m)).collect();
                self.board = board.into();
                self.ready = true;
            }
            Tell::Events(events) => {
                for delivered in events {
                    self.deliver(ctx, delivered);
                }
            }
            Tell::Epoch => {
                // Every node registers its members again (this one too, through its writer);
                // who is not back once things settle has left.
                self.unconfirmed = self.members.clone();
                self.board.clear();
                self.to_members(ctx, &ServerMessage::Clear { from: "" }.frame(), None);
            }
            Tell::EpochSettled => {
                for (lower, record) in std::mem::take(&mut self.unconfirmed) {
                    if self.members.get(&lower) == Some(&record) {
                        self.drop_member(ctx, &lower, &record);
                    }
                }
            }
            Tell::Available(up) => self.available = up,
            Tell::Refused { conn, code, message } => {
                let Some(local) = self.local.get_mut(&conn) else { return };
                if matches!(local.stage, Stage::Joining(_)) {
                    local.stage = Stage::Connected;
                }
                error(ctx, local.id, code, &message);
            }
            Tell::Lost { conn } => {
                if let Some(local) = self.local.get(&conn) {
                    let _ = ctx.close(local.id, CloseCode::GOING_AWAY, "nick lost while the room was unavailable");
                }
            }
        }
    }

    /// A member not registered again after Redis lost its data: gone, announced as lost.
    fn drop_member<S>(&mut self, ctx: &mut Context<S>, lower: &str, record: &Record) {
        self.members.remove(lower);
        self.member_lost(ctx, record);
        self.to_members(ctx, &ServerMessage::Left { nick: &record.nick, reason: "node lost" }.frame(), None);
    }

    /// The cluster let one of this node's members go while the connection lives (the node
    /// missed its heartbeats, or Redis lost its data and the member was not registered again
    /// in time): the client must join again. The writer forgets the member too (its leave
    /// writes nothing: the record is gone), so that it is never registered again.
    fn member_lost<S>(&mut self, ctx: &mut Context<S>, record: &Record) {
        if record.node != self.link.node {
            return;
        }
        let Some(local) = self.local.get_mut(&record.conn) else { return };
        if local.stage == Stage::Joined(record.nick.clone()) {
            local.stage = Stage::Connected;
            let _ = ctx.close(local.id, CloseCode::GOING_AWAY, "this node lost the room; reconnect");
            self.link.send(Op::Leave { conn: record.conn, nick: record.nick.clone(), reason: "node lost".into() });
        }
    }

    fn deliver<S>(&mut self, ctx: &mut Context<S>, Delivered { id: event_id, event, missed }: Delivered) {
        let me = self.link.node.clone();
        match event {
            Event::Join { node, conn, nick, again, .. } => {
                let lower = nick.to_lowercase();
                let record = Record { node: node.clone(), conn, nick: nick.clone() };
                // Registered again after Redis lost its data, by the same member: nobody hears
                // of it. Someone else took the nick meanwhile: its former holder has left.
                let known = match self.unconfirmed.remove(&lower) {
                    Some(former) if former == record => true,
                    Some(former) => {
                        self.drop_member(ctx, &lower, &former);
                        false
                    }
                    None => again && self.members.get(&lower) == Some(&record),
                };
                self.members.insert(lower.clone(), record);
                let mut joiner = None;
                if node == me {
                    match self.local.get_mut(&conn) {
                        Some(local) if local.stage == Stage::Joining(nick.clone()) => {
                            local.stage = Stage::Joined(nick.clone());
                            joiner = Some(local.id);
                        }
                        Some(local) if local.stage == Stage::Joined(nick.clone()) => {}
                        // Closed meanwhile (its leave follows), or its join was answered
                        // `unavailable` but happened: free the nick.
                        _ if !again => {
                            self.link.send(Op::Leave { conn, nick: nick.clone(), reason: "quit".into() });
                        }
                        _ => {}
                    }
                }
                if let Some(id) = joiner {
                    tracing::info!(%id, %nick, "joined");
                    let welcome =
                        ServerMessage::Welcome { nick: &nick, users: self.user_list(), board: &self.board }.frame();
                    let _ = ctx.send_prepared(id, &welcome);
                    for (id_missed, from, text, ts) in &missed {
                        let frame = ServerMessage::Message { id: *id_missed, from, text, ts: *ts }.frame();
                        let _ = ctx.send_prepared(id, &frame);
                    }
                }
                if !known {
                    let frame = ServerMessage::Joined { nick: &nick }.frame();
                    let except = if node == me { Some(conn) } else { None };
                    self.to_members(ctx, &frame, except);
                }
            }
            Event::Leave { node, conn, nick, reason } => {
                let lower = nick.to_lowercase();
                if self.members.get(&lower).is_some_and(|m| m.node == node && m.conn == conn) {
                    self.members.remove(&lower);
                }
                if self.unconfirmed.get(&lower).is_some_and(|m| m.node == node && m.conn == conn) {
                    self.unconfirmed.remove(&lower);
                }
                if node == me {
                    self.member_lost(ctx, &Record { node, conn, nick: nick.clone() });
                }
                self.to_members(ctx, &ServerMessage::Left { nick: &nick, reason: &reason }.frame(), None);
            }
            Event::Message { from, text, ts } => {
                let frame = ServerMessage::Message { id: event_id, from: &from, text: &text, ts }.frame();
                self.to_members(ctx, &frame, None);
            }
            Event::Whisper { from, to, text, ts } => {
                let frame = ServerMessage::Whisper { from: &from, to: &to, text: &text, ts }.frame();
                let mut targets: Vec<ConnId> = self.local_with_nick(&to.to_lowercase()).collect();
                targets.extend(self.local_with_nick(&from.to_lowercase()));
                targets.sort();
                targets.dedup();
                for id in targets {
                    let _ = ctx.send_prepared(id, &frame);
                }
            }
            Event::Draw { node, conn, stroke } => {
                let except = if node == me { Some(conn) } else { None };
                self.to_members(ctx, &ServerMessage::Draw(&stroke).frame(), except);
                if self.board.len() >= self.board_limit {
                    self.board.pop_front();
                }
                self.board.push_back(stroke);
            }
            Event::Clear { from } => {
                self.board.clear();
                self.to_members(ctx, &ServerMessage::Clear { from: &from }.frame(), None);
            }
        }
    }
}
