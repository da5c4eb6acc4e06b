//! Cluster mode (`--redis`): the room shared by every node on one Redis.
//!
//! Every room event goes through a Redis Stream and every node delivers the stream in its
//! order, so ids and order are the same everywhere (`room`). The loop never waits on Redis:
//! `link` runs a writer thread (scripts, heartbeat, reaping dead nodes) and a reader thread
//! (`XREAD BLOCK`), which talk to the loop through [`Handle::command`] with [`Command`]s, and
//! take the loop's requests over a channel.

use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wsproto_adapters::mio::Handle;

use crate::protocol::BoardStroke;

mod link;
mod room;
mod scripts;

pub(crate) use room::ClusterRoom;

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// How long a node's heartbeat lives; a node silent for this long is lost. It heartbeats
    /// three times per TTL and looks for lost nodes as often.
    pub node_ttl: Duration,
    /// The stream keeps about this many events (`XADD MAXLEN ~`): how far back `resume` reaches.
    pub stream_len: usize,
    /// How long the node waits, once an event arrives, for more before delivering them: what
    /// is delivered together leaves in one write per connection instead of one per event,
    /// which is most of a node's work under load; `ZERO` delivers each read at once.
    pub gather: Duration,
}

impl ClusterOptions {
    /// Defaults for `url`: a 3 s TTL, 10 000 events, a 2 ms gathering window.
    pub fn new(url: &str) -> Self {
        ClusterOptions {
            url: url.into(),
            node_ttl: Duration::from_secs(3),
            stream_len: 10_000,
            gather: Duration::from_millis(2),
        }
    }

    fn interval(&self) -> Duration {
        (self.node_ttl / 3).max(Duration::from_millis(50))
    }
}

/// A member as recorded in Redis (`chat:members`): which node and connection hold the nick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) node: String,
    pub(crate) conn: u64,
    pub(crate) nick: String,
}

/// One entry of the stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub(crate) enum Event {
    Join {
        node: String,
        conn: u64,
        nick: String,
        /// The last message id the joiner saw, if it resumes.
        #[serde(default)]
        resume: Option<u64>,
        /// A node registering a member again after Redis lost its data: no `joined` for
        /// those who know it already.
        #[serde(default)]
        again: bool,
    },
    Leave {
        node: String,
        conn: u64,
        nick: String,
        reason: String,
    },
    Message {
        from: String,
        text: String,
        ts: u64,
    },
    Whisper {
        from: String,
        to: String,
        text: String,
        ts: u64,
    },
    Draw {
        node: String,
        conn: u64,
        stroke: BoardStroke,
    },
    Clear {
        from: String,
    },
}

/// A message a resuming joiner missed: id, from, text, ts.
pub(crate) type Missed = (u64, String, String, u64);

/// An event as the reader delivers it: its stream id, and for a join of this node with
/// `resume`, the messages after the resume point that the stream still has.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) id: u64,
    pub(crate) event: Event,
    pub(crate) missed: Vec<Missed>,
}

/// What the cluster's threads tell the event loop: [`crate::Chat`]'s `Handler::Command`.
#[derive(Debug)]
pub struct Command(pub(crate) Tell);

/// The news inside a [`Command`].
#[derive(Debug)]
pub(crate) enum Tell {
    /// The room as of the stream position the reader goes on from.
    Snapshot { members: Vec<Record>, board: Vec<BoardStroke> },
    /// Stream events, in stream order.
    Events(Vec<Delivered>),
    /// Redis lost its data: the board is gone and every node registers its members again.
    Epoch,
    /// Members that no node registered again within a TTL after `Epoch`.
    EpochSettled,
    /// Whether the writer reaches Redis.
    Available(bool),
    /// A member's nick was taken by someone else while Redis had lost its data: close it.
    Lost { conn: u64 },
    /// A request failed: an `error` with this code for the connection.
    Refused { conn: u64, code: &'static str, message: String },
}

/// What the loop asks the writer to do; `conn` is the node-local connection number.
#[derive(Debug)]
pub(crate) enum Op {
    Join { conn: u64, nick: String, resume: Option<u64> },
    Leave { conn: u64, nick: String, reason: String },
    Say { conn: u64, from: String, text: String },
    Whisper { conn: u64, from: String, to: String, text: String },
    Draw { conn: u64, stroke: BoardStroke },
    Clear { conn: u64, from: String },
}

/// The loop's end of the cluster: its node id and the writer's channel.
pub(crate) struct Link {
    pub(crate) node: String,
    ops: mpsc::Sender<Op>,
}

impl Link {
    /// Starts the writer and reader threads for this node.
    pub(crate) fn start(
        options: &ClusterOptions,
        board_limit: usize,
        handle: Handle<Command>,
    ) -> redis::RedisResult<Link> {
        let client = redis::Client::open(options.url.as_str())?;
        let node = link::node_id();
        let (ops, rx) = mpsc::channel();
        link::spawn(client, node.clone(), options.clone(), board_limit, rx, handle);
        Ok(Link { node, ops })
    }

    /// Hands a request to the writer; never blocks.
    pub(crate) fn send(&self, op: Op) {
        let _ = self.ops.send(op);
    }
}
