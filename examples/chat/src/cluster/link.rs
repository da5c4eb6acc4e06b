//! The Redis side of a node, on two threads of its own with blocking connections: the writer
//! runs the loop's requests as scripts and keeps the heartbeat, the reader follows the stream.
//! Both reconnect with back-off; the loop learns of every outcome through
//! [`Handle::command`].

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Client, Connection, Value};
use wsproto_adapters::mio::Handle;

use super::{scripts, ClusterOptions, Command, Delivered, Event, Missed, Op, Record, Tell};
use crate::protocol::BoardStroke;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a request to Redis may take before the connection counts as lost.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Events taken per `XREAD`.
const READ_BATCH: usize = 1000;

/// A fresh id for this node (a restarted node is a new node).
pub(crate) fn node_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:016x}", hasher.finish())
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn spawn(
    client: Client,
    node: String,
    options: ClusterOptions,
    board_limit: usize,
    ops: Receiver<Op>,
    handle: Handle<Command>,
) {
    let accepted = Accepted::default();
    let reader = Reader {
        redis: Redis::new(client.clone()),
        node: node.clone(),
        options: options.clone(),
        handle: handle.clone(),
        recent: VecDeque::new(),
        delivered: 0,
        nodes: Vec::new(),
        accepted: accepted.clone(),
    };
    let writer = Writer {
        redis: Redis::new(client),
        node,
        options,
        board_limit,
        handle,
        registered: HashMap::new(),
        pending_leaves: Vec::new(),
        epoch: None,
        available: None,
        accepted,
    };
    let _ = thread::Builder::new().name("chat-redis-writer".into()).spawn(move || writer.run(ops));
    let _ = thread::Builder::new().name("chat-redis-reader".into()).spawn(move || reader.run());
}

/// One blocking connection that comes back after failures, with back-off between tries.
struct Redis {
    client: Client,
    conn: Option<Connection>,
    backoff: Duration,
    retry_at: Instant,
    /// Set when a connection was made again after a failure (until the caller takes it).
    reconnected: bool,
    ever_connected: bool,
}

impl Redis {
    fn new(client: Client) -> Self {
        Redis {
            client,
            conn: None,
            backoff: FIRST_BACKOFF,
            retry_at: Instant::now(),
            reconnected: false,
            ever_connected: false,
        }
    }

    /// The connection, if there is one or a try now succeeds; never waits past a connect timeout.
    fn get(&mut self, read_timeout: Duration) -> Option<&mut Connection> {
        if self.conn.is_none() && Instant::now() >= self.retry_at {
            let made = self.client.get_connection_with_timeout(IO_TIMEOUT).and_then(|conn| {
                conn.set_read_timeout(Some(read_timeout))?;
                conn.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(conn)
            });
            match made {
                Ok(conn) => {
                    if self.ever_connected {
                        tracing::info!("redis: connected again");
                        self.reconnected = true;
                    }
                    self.ever_connected = true;
                    self.backoff = FIRST_BACKOFF;
                    self.conn = Some(conn);
                }
                Err(e) => {
                    tracing::debug!("redis: cannot connect: {e}");
                    self.wait_longer();
                }
            }
        }
        self.conn.as_mut()
    }

    fn wait_longer(&mut self) {
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The connection broke (or answered nonsense): drop it and try again after the back-off.
    fn failed(&mut self, e: &redis::RedisError) {
        if self.conn.take().is_some() {
            tracing::warn!("redis: connection lost: {e}");
        }
        self.wait_longer();
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// The number in a stream id `N-S`: the event id the protocol shows (this cluster's scripts
/// always add `N-0`).
fn stream_number(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

/// One entry of an `XRANGE` reply (or of one stream of an `XREAD` reply).
struct Entry {
    /// The stream id as Redis wrote it: where the next read goes on from.
    raw_id: String,
    /// The id and event, if this node can read them (something else may write to the stream).
    event: Option<(u64, Event)>,
}

fn entries(value: &Value) -> Vec<Entry> {
    items(value)
        .iter()
        .filter_map(|entry| {
            let [id, fields] = items(entry) else { return None };
            let raw_id = text(id)?;
            let event = read_event(&raw_id, items(fields));
            if event.is_none() {
                tracing::warn!(id = raw_id, "redis: skipping a stream entry this node cannot read");
            }
            Some(Entry { raw_id, event })
        })
        .collect()
}

fn read_event(raw_id: &str, fields: &[Value]) -> Option<(u64, Event)> {
    let id = stream_number(raw_id)?;
    let json = fields.chunks(2).find(|kv| kv.first().and_then(text).as_deref() == Some("e"))?.get(1)?;
    Some((id, serde_json::from_str(&text(json)?).ok()?))
}

/// Room events Redis accepted that this node has not read back yet, in id order: if Redis
/// loses them, their senders are told rather than left waiting.
type Accepted = Arc<Mutex<VecDeque<AcceptedEvent>>>;

struct AcceptedEvent {
    /// The data's generation (`chat:epoch`) the writer knew when Redis accepted it: a recovery
    /// refuses only what the lost generation held.
    epoch: String,
    id: u64,
    conn: u64,
}

/// At most this many accepted events wait to be read back (the oldest are forgotten).
const MAX_ACCEPTED: usize = 10_000;

struct Writer {
    redis: Redis,
    node: String,
    options: ClusterOptions,
    board_limit: usize,
    handle: Handle<Command>,
    /// This node's members as registered in Redis, by connection: to register them again if
    /// Redis loses its data.
    registered: HashMap<u64, Record>,
    /// Leaves that could not be written yet: a nick must not stay taken.
    pending_leaves: Vec<Op>,
    epoch: Option<String>,
    available: Option<bool>,
    accepted: Accepted,
}

impl Writer {
    fn run(mut self, ops: Receiver<Op>) {
        let interval = self.options.interval();
        let mut next_beat = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_beat {
                self.beat();
                next_beat = now + interval;
            }
            match ops.recv_timeout(next_beat.saturating_duration_since(now)) {
                Ok(op) => self.run_op(op),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The loop is gone: write what leaves remain, once.
                    for op in std::mem::take(&mut self.pending_leaves) {
                        self.run_op(op);
                    }
                    return;
                }
            }
        }
    }

    fn tell(&self, tell: Tell) {
        let _ = self.handle.command(Command(tell));
    }

    fn set_available(&mut self, up: bool) {
        if self.available != Some(up) {
            self.available = Some(up);
            self.tell(Tell::Available(up));
        }
    }

    fn refuse(&self, conn: u64, code: &'static str, message: impl Into<String>) {
        self.tell(Tell::Refused { conn, code, message: message.into() });
    }

    /// A room-event script answered: the event's id (noted as accepted), or nil if the sender
    /// no longer holds its nick (its node lost it; the leave is on its way to the loop).
    fn accepted_or_refused(&self, conn: u64, added: Option<String>) {
        match added.and_then(|id| id.parse::<u64>().ok()) {
            Some(id) => {
                let mut accepted = self.accepted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if accepted.len() == MAX_ACCEPTED {
                    accepted.pop_front();
                }
                accepted.push_back(AcceptedEvent { epoch: self.epoch.clone().unwrap_or_default(), id, conn });
            }
            None => self.refuse(conn, "not_joined", "you are no longer in the room"),
        }
    }

    /// Heartbeat, the epoch check, leaves left over from an outage, and reaping lost nodes.
    fn beat(&mut self) {
        let ttl = self.options.node_ttl.as_millis().to_string();
        let proposal = format!("{}-{}", self.node, unix_millis());
        let Some(conn) = self.redis.get(IO_TIMEOUT) else { return self.set_available(false) };
        let epoch = scripts::heartbeat().arg(&self.node).arg(&ttl).arg(&proposal).invoke::<String>(conn);
        self.redis.reconnected = false;
        let epoch = match epoch {
            Ok(epoch) => epoch,
            Err(e) => {
                self.redis.failed(&e);
                return self.set_available(false);
            }
        };
        self.set_available(true);
        if self.epoch.as_ref().is_some_and(|known| *known != epoch) {
            tracing::warn!("redis: the data was lost (new epoch); registering this node's members again");
            if !self.register_again() {
                // The epoch stays the old one: the next beat tries again.
                return;
            }
        }
        self.epoch = Some(epoch);
        for op in std::mem::take(&mut self.pending_leaves) {
            self.run_op(op);
        }
        let Some(conn) = self.redis.get(IO_TIMEOUT) else { return };
        match scripts::reap().arg(self.options.stream_len).arg(&self.node).invoke::<u64>(conn) {
            Ok(0) => {}
            Ok(n) => tracing::info!(members = n, "redis: announced the members of lost nodes as left"),
            Err(e) => self.redis.failed(&e),
        }
    }

    /// Registers every member of this node again; false if Redis failed before all were.
    /// Safe to repeat: a record Redis already has is left as it is.
    fn register_again(&mut self) -> bool {
        let members: Vec<Record> = self.registered.values().cloned().collect();
        for record in members {
            let Some(conn) = self.redis.get(IO_TIMEOUT) else { return false };
            let event = Event::Join {
                node: record.node.clone(),
                conn: record.conn,
                nick: record.nick.clone(),
                resume: None,
                again: true,
            };
            let taken = scripts::join()
                .arg(self.options.stream_len)
                .arg(record.nick.to_lowercase())
                .arg(json(&record))
                .arg(json(&event))
                .arg("again")
                .invoke::<Option<String>>(conn);
            match taken {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.registered.remove(&record.conn);
                    self.tell(Tell::Lost { conn: record.conn });
                }
                Err(e) => {
                    self.redis.failed(&e);
                    return false;
                }
            }
        }
        true
    }

    fn run_op(&mut self, op: Op) {
        if self.redis.get(IO_TIMEOUT).is_some() && self.redis.reconnected {
            // A new connection after a failure: first the epoch check (registering this node's
            // members again if Redis lost them) and the leaves that waited, so that this
            // request sees the room as it is.
            self.beat();
        }
        let stream_len = self.options.stream_len;
        let node = self.node.clone();
        let Some(conn) = self.redis.get(IO_TIMEOUT) else {
            self.set_available(false);
            return match op {
                Op::Leave { conn, .. } => {
                    // Gone from this node at once: never registered again while it waits.
                    self.registered.remove(&conn);
                    self.pending_leaves.push(op);
                }
                Op::Join { conn, .. }
                | Op::Say { conn, .. }
                | Op::Whisper { conn, .. }
                | Op::Draw { conn, .. }
                | Op::Clear { conn, .. } => self.refuse(conn, "unavailable", "the room is unavailable; try again"),
            };
        };
        let result: redis::RedisResult<()> = match &op {
            Op::Join { conn: id, nick, resume } => {
                let record = Record { node: self.node.clone(), conn: *id, nick: nick.clone() };
                let event = Event::Join {
                    node: self.node.clone(),
                    conn: *id,
                    nick: nick.clone(),
                    resume: *resume,
                    again: false,
                };
                scripts::join()
                    .arg(stream_len)
                    .arg(nick.to_lowercase())
                    .arg(json(&record))
                    .arg(json(&event))
                    .arg("first")
                    .invoke::<Option<String>>(conn)
                    .map(|added| match added {
                        Some(_) => {
                            self.registered.insert(*id, record);
                        }
                        None => self.refuse(*id, "nick_taken", format!("{nick:?} is taken")),
                    })
            }
            Op::Leave { conn: id, nick, reason } => {
                self.registered.remove(id);
                let record = Record { node: self.node.clone(), conn: *id, nick: nick.clone() };
                let event =
                    Event::Leave { node: self.node.clone(), conn: *id, nick: nick.clone(), reason: reason.clone() };
                scripts::leave()
                    .arg(stream_len)
                    .arg(nick.to_lowercase())
                    .arg(json(&record))
                    .arg(json(&event))
                    .invoke::<Option<String>>(conn)
                    .map(drop)
            }
            Op::Say { conn: id, from, text } => {
                let event = Event::Message { from: from.clone(), text: text.clone(), ts: unix_millis() };
                room_event(conn, stream_len, sender(&node, *id, from), &event, &["say".into()])
                    .map(|added| self.accepted_or_refused(*id, added))
            }
            Op::Whisper { conn: id, from, to, text } => scripts::whisper()
                .arg(stream_len)
                .arg(sender(&node, *id, from))
                .arg(to.trim().to_lowercase())
                .arg(from)
                .arg(text)
                .arg(unix_millis())
                .invoke::<Option<String>>(conn)
                .map(|added| {
                    if added.as_deref() == Some("nobody") {
                        self.refuse(*id, "no_such_user", format!("nobody is called {to:?}"));
                    } else {
                        self.accepted_or_refused(*id, added);
                    }
                }),
            Op::Draw { conn: id, stroke } => {
                let event = Event::Draw { node: node.clone(), conn: *id, stroke: stroke.clone() };
                let board = ["draw".into(), json(stroke), self.board_limit.max(1).to_string()];
                room_event(conn, stream_len, sender(&node, *id, &stroke.from), &event, &board)
                    .map(|added| self.accepted_or_refused(*id, added))
            }
            Op::Clear { conn: id, from } => {
                let event = Event::Clear { from: from.clone() };
                room_event(conn, stream_len, sender(&node, *id, from), &event, &["clear".into()])
                    .map(|added| self.accepted_or_refused(*id, added))
            }
        };
        if let Err(e) = result {
            self.redis.failed(&e);
            self.set_available(false);
            match op {
                // Written or not, the leave's owner check makes writing it again harmless.
                Op::Leave { .. } => self.pending_leaves.push(op),
                Op::Join { conn, .. }
                | Op::Say { conn, .. }
                | Op::Whisper { conn, .. }
                | Op::Draw { conn, .. }
                | Op::Clear { conn, .. } => {
                    self.refuse(conn, "unavailable", "the room is unavailable; it may or may not have happened")
                }
            }
        }
    }
}

/// Runs the room-event script ([`scripts::event`]) for `event` from `sender`; `kind` is its
/// kind and arguments (`say`, `clear`, or `draw` with the stroke and the board limit).
fn room_event(
    conn: &mut Connection,
    stream_len: usize,
    sender: Vec<String>,
    event: &Event,
    kind: &[String],
) -> redis::RedisResult<Option<String>> {
    scripts::event().arg(stream_len).arg(sender).arg(json(event)).arg(kind).invoke(conn)
}

/// The room-event scripts' first two arguments: the sender's lower-cased nick and the record
/// it must still hold.
fn sender(node: &str, conn: u64, nick: &str) -> Vec<String> {
    vec![nick.to_lowercase(), json(&Record { node: node.into(), conn, nick: nick.into() })]
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

struct Reader {
    redis: Redis,
    node: String,
    options: ClusterOptions,
    handle: Handle<Command>,
    /// The events this node delivered most recently (id, JSON), oldest first: what it offers
    /// the others when Redis loses the stream ([`Reader::recover`]).
    recent: VecDeque<(u64, String)>,
    /// The id of the last event delivered.
    delivered: u64,
    /// The nodes that heartbeated, as of the last read: whose offers a recovery waits for.
    nodes: Vec<String>,
    /// The writer's accepted events: forgotten once read back, refused if Redis lost them.
    accepted: Accepted,
}

/// How many delivered events a node keeps to offer in a recovery: how far apart the nodes'
/// readers may be when Redis loses its data.
const RECOVERY_TAIL: usize = 1000;

impl Reader {
    fn run(mut self) {
        let block = self.options.interval();
        let read_timeout = block + IO_TIMEOUT;
        // The stream id to read after (every entry advances it, readable or not); `None`
        // until the first snapshot.
        let mut last: Option<String> = None;
        let mut epoch: Option<String> = None;
        let mut settle_at: Option<Instant> = None;
        loop {
            if settle_at.is_some_and(|at| Instant::now() >= at) {
                settle_at = None;
                if self.handle.command(Command(Tell::EpochSettled)).is_err() {
                    return;
                }
            }
            if self.redis.get(read_timeout).is_none() {
                thread::sleep(self.redis.retry_at.saturating_duration_since(Instant::now()).min(block));
                continue;
            }
            let reconnected = std::mem::take(&mut self.redis.reconnected);
            let Some(conn) = self.redis.conn.as_mut() else { continue };
            if last.is_none() || reconnected {
                let proposal = format!("{}-{}", self.node, unix_millis());
                let snapshot = match scripts::snapshot().arg(&proposal).invoke::<Value>(conn) {
                    Ok(snapshot) => snapshot,
                    Err(e) => {
                        self.redis.failed(&e);
                        continue;
                    }
                };
                let [at, now_epoch, members, board, nodes] = items(&snapshot) else { continue };
                let now_epoch = text(now_epoch);
                let tell = match (&last, &epoch) {
                    (None, _) => {
                        // Whose offers a recovery waits for, until the first read says (a
                        // reconnect's snapshot would not do: Redis may have lost the list).
                        self.nodes = items(nodes).iter().filter_map(text).collect();
                        self.delivered = text(at).and_then(|at| at.parse::<u64>().ok()).unwrap_or(0);
                        last = Some(format!("{}-0", self.delivered));
                        let members = items(members)
                            .iter()
                            .filter_map(|m| serde_json::from_str::<Record>(&text(m)?).ok())
                            .collect();
                        let board = items(board)
                            .iter()
                            .filter_map(|s| serde_json::from_str::<BoardStroke>(&text(s)?).ok())
                            .collect();
                        Some(Tell::Snapshot { members, board })
                    }
                    (Some(_), known) if *known != now_epoch => {
                        tracing::warn!(
                            "redis: the stream was lost; recovering its tail, then going on with the new one"
                        );
                        let recovered = match self.recover() {
                            Ok(recovered) => recovered,
                            Err(e) => {
                                // The epoch is not taken: the next connection tries again.
                                self.redis.failed(&e);
                                continue;
                            }
                        };
                        if !recovered.is_empty() {
                            tracing::info!(events = recovered.len(), "redis: delivering events other nodes had read");
                            if self.handle.command(Command(Tell::Events(recovered))).is_err() {
                                return;
                            }
                        }
                        // What the lost generation accepted from this node's clients and nobody
                        // read is gone (what the writer has written since, to the new one, stays).
                        self.forget_accepted();
                        let old = known.clone().unwrap_or_default();
                        let mut lost = Vec::new();
                        self.accepted().retain(|event| {
                            let gone = event.epoch == old;
                            if gone {
                                lost.push(event.conn);
                            }
                            !gone
                        });
                        for conn in lost {
                            let tell = Tell::Refused {
                                conn,
                                code: "unavailable",
                                message: "lost when the room's store lost its data; send it again".into(),
                            };
                            if self.handle.command(Command(tell)).is_err() {
                                return;
                            }
                        }
                        last = Some("0-0".into());
                        settle_at = Some(Instant::now() + self.options.node_ttl * 2);
                        Some(Tell::Epoch)
                    }
                    _ => None,
                };
                epoch = now_epoch;
                if let Some(tell) = tell {
                    if self.handle.command(Command(tell)).is_err() {
                        return;
                    }
                }
                continue;
            }
            let from = last.clone().unwrap_or_else(|| "0-0".into());
            // The nodes first, in the same round trip: whose offers a recovery would wait for.
            let reply = redis::pipe()
                .cmd("SMEMBERS")
                .arg("chat:nodes")
                .cmd("XREAD")
                .arg("COUNT")
                .arg(READ_BATCH)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg("chat:events")
                .arg(&from)
                .query::<(Vec<String>, Value)>(conn);
            let reply = match reply {
                Ok((nodes, reply)) => {
                    self.nodes = nodes;
                    reply
                }
                Err(e) => {
                    self.redis.failed(&e);
                    continue;
                }
            };
            let mut batch = Vec::new();
            // After a failure, what was taken is still delivered (`last` has passed it).
            let whole = self.take_entries(&reply, &mut last, &mut batch);
            if whole && !batch.is_empty() && batch.len() < READ_BATCH && !self.options.gather.is_zero() {
                // Events close together are delivered together: one write per connection
                // for all of them instead of one each, at the cost of `gather` of latency.
                thread::sleep(self.options.gather);
                let from = last.clone().unwrap_or_else(|| "0-0".into());
                let more = self.redis.conn.as_mut().map(|conn| {
                    redis::cmd("XREAD")
                        .arg("COUNT")
                        .arg(READ_BATCH - batch.len())
                        .arg("STREAMS")
                        .arg("chat:events")
                        .arg(&from)
                        .query::<Value>(conn)
                });
                match more {
                    // A failure in there is noted; what was taken is delivered.
                    Some(Ok(more)) => {
                        self.take_entries(&more, &mut last, &mut batch);
                    }
                    Some(Err(e)) => self.redis.failed(&e),
                    None => {}
                }
            }
            if !batch.is_empty() {
                self.forget_accepted();
                if self.handle.command(Command(Tell::Events(batch))).is_err() {
                    return;
                }
            }
        }
    }

    /// Takes the entries of an `XREAD` reply into `batch`, advancing `last` over each
    /// (readable or not); false if Redis failed on the way (what was taken stays taken).
    fn take_entries(&mut self, reply: &Value, last: &mut Option<String>, batch: &mut Vec<Delivered>) -> bool {
        let Some(stream) = items(reply).first() else { return true };
        let Some(found) = items(stream).get(1) else { return true };
        for Entry { raw_id, event } in entries(found) {
            let Some((id, event)) = event else {
                *last = Some(raw_id);
                continue;
            };
            let missed = match &event {
                Event::Join { node, resume: Some(after), .. } if *node == self.node => {
                    let Some(conn) = self.redis.conn.as_mut() else { return false };
                    match missed_messages(conn, *after, id, self.options.stream_len) {
                        Ok(missed) => missed,
                        Err(e) => {
                            self.redis.failed(&e);
                            return false;
                        }
                    }
                }
                _ => Vec::new(),
            };
            *last = Some(raw_id);
            note_delivered(&mut self.recent, &mut self.delivered, id, &event);
            batch.push(Delivered { id, event, missed });
        }
        true
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, VecDeque<AcceptedEvent>> {
        self.accepted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Accepted events read back (delivered) need no answer.
    fn forget_accepted(&self) {
        let mut accepted = self.accepted();
        while accepted.front().is_some_and(|event| event.id <= self.delivered) {
            accepted.pop_front();
        }
    }

    /// Redis lost the stream (a restart without persistence). The nodes' readers were not all
    /// at the same place: an event one node delivered (a message its sender took as
    /// acknowledged) may never have reached another. Every node offers the tail it delivered
    /// (`chat:recover`, by event id), waits until every node that heartbeated has offered (or
    /// two TTLs and a back-off), then delivers, in id order, the offered events after its own
    /// last: every node ends the old stream at the same event, with the same ids.
    fn recover(&mut self) -> redis::RedisResult<Vec<Delivered>> {
        let keep = (self.options.node_ttl * 20).as_millis() as u64;
        let Some(conn) = self.redis.conn.as_mut() else { return Ok(Vec::new()) };
        let mut offer = redis::pipe();
        for (id, event) in &self.recent {
            offer.cmd("HSETNX").arg("chat:recover").arg(id).arg(event).ignore();
        }
        offer.cmd("SADD").arg("chat:recovered").arg(&self.node).ignore();
        offer.cmd("PEXPIRE").arg("chat:recover").arg(keep).ignore();
        offer.cmd("PEXPIRE").arg("chat:recovered").arg(keep).ignore();
        offer.query::<()>(conn)?;
        let deadline = Instant::now() + self.options.node_ttl * 2 + MAX_BACKOFF;
        loop {
            let offered: Vec<String> = redis::cmd("SMEMBERS").arg("chat:recovered").query(conn)?;
            let waiting: Vec<&String> = self.nodes.iter().filter(|node| !offered.contains(node)).collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(?waiting, "redis: recovering without the tails of nodes that did not come back");
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Read whole and parsed entry by entry: something this node cannot read is skipped.
        let offered: Value = redis::cmd("HGETALL").arg("chat:recover").query(conn)?;
        let offered: Vec<(Value, Value)> = match &offered {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            other => items(other).chunks(2).filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone()))).collect(),
        };
        let mut recovered: Vec<(u64, Event)> = offered
            .into_iter()
            .filter_map(|(id, event)| {
                Some((text(&id)?.parse::<u64>().ok()?, serde_json::from_str::<Event>(&text(&event)?).ok()?))
            })
            .filter(|(id, _)| *id > self.delivered)
            .collect();
        recovered.sort_by_key(|(id, _)| *id);
        let recovered: Vec<Delivered> =
            recovered.into_iter().map(|(id, event)| Delivered { id, event, missed: Vec::new() }).collect();
        for event in &recovered {
            note_delivered(&mut self.recent, &mut self.delivered, event.id, &event.event);
        }
        Ok(recovered)
    }
}

/// Keeps a delivered event for a recovery ([`Reader::recover`]).
fn note_delivered(recent: &mut VecDeque<(u64, String)>, delivered: &mut u64, id: u64, event: &Event) {
    *delivered = id;
    if recent.len() == RECOVERY_TAIL {
        recent.pop_front();
    }
    recent.push_back((id, json(event)));
}

/// The messages strictly between `after` and `until` that the stream still has, at most the
/// newest `limit` entries' worth (the stream's own length, `MAXLEN ~` being approximate): a
/// `resume` from long ago costs no more than the stream holds.
fn missed_messages(conn: &mut Connection, after: u64, until: u64, limit: usize) -> redis::RedisResult<Vec<Missed>> {
    if until <= after.saturating_add(1) {
        return Ok(Vec::new());
    }
    let found: Value = redis::cmd("XREVRANGE")
        .arg("chat:events")
        .arg(format!("({until}-0"))
        .arg(format!("({after}-0"))
        .arg("COUNT")
        .arg(limit.max(1))
        .query(conn)?;
    let mut missed: Vec<Missed> = entries(&found)
        .into_iter()
        .filter_map(|entry| match entry.event? {
            (id, Event::Message { from, text, ts }) => Some((id, from, text, ts)),
            _ => None,
        })
        .collect();
    missed.reverse();
    Ok(missed)
}
