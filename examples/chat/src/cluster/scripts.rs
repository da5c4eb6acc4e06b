//! The Lua scripts that make each cluster step atomic in Redis: an event is appended to the
//! stream together with the presence or board change it stands for, so the stream and the
//! keys never disagree.
//!
//! Keys (all under `chat:` in the chosen database): `events` (the stream), `last` (its last
//! id), `members` (lower-cased nick to the member's record), `board` (the strokes since the
//! last clear), `nodes` (the nodes that have heartbeated), `hb:<node>` (a node's heartbeat,
//! with a TTL) and `epoch` (the data's generation: a new value means Redis lost everything).

use redis::Script;

/// Appends `ev` to the stream under the next id, `MAXLEN ~ ARGV[1]`: ids are Redis' clock in
/// microseconds (or one more than the last), so they are numbers that keep increasing even
/// when Redis starts again without its data.
const ADD: &str = r#"
local function add(ev)
  local t = redis.call('TIME')
  local id = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', 'chat:last') or '0')
  if id <= last then id = last + 1 end
  local sid = string.format('%.0f', id)
  redis.call('SET', 'chat:last', sid)
  redis.call('XADD', 'chat:events', 'MAXLEN', '~', ARGV[1], sid .. '-0', 'e', ev)
  return sid
end
"#;

fn with_add(body: &str) -> Script {
    Script::new(&format!("{ADD}{body}"))
}

/// A join: ARGV[2] the lower-cased nick, ARGV[3] the member record, ARGV[4] the event, ARGV[5]
/// `again` when a node registers its member again after Redis lost its data. Answers the event
/// id; `held` if it registers again a record Redis already has (an earlier try that got no
/// answer did it: no second event); nil if someone else holds the nick. A first join that
/// finds its own record (a retry of a join answered `unavailable` that did happen) is nil too:
/// its event is in the stream and completes or undoes it, and a second event would not.
pub(crate) fn join() -> Script {
    with_add(
        r#"
local held = redis.call('HGET', 'chat:members', ARGV[2])
if held then
  if ARGV[5] == 'again' and held == ARGV[3] then return 'held' end
  return false
end
redis.call('HSET', 'chat:members', ARGV[2], ARGV[3])
return add(ARGV[4])
"#,
    )
}

/// A leave: ARGV[2] the lower-cased nick, ARGV[3] the record it must still have (so a leave
/// never frees a nick someone else holds now), ARGV[4] the event. Nil if it was not ours.
pub(crate) fn leave() -> Script {
    with_add(
        r#"
if redis.call('HGET', 'chat:members', ARGV[2]) ~= ARGV[3] then return false end
redis.call('HDEL', 'chat:members', ARGV[2])
return add(ARGV[4])
"#,
    )
}

/// A room event from a member: ARGV[2] the sender's lower-cased nick, ARGV[3] the record it must
/// still have (a member its node lost must not speak under a nick that is free or someone
/// else's), ARGV[4] the event, ARGV[5] `draw` (ARGV[6] the stroke, ARGV[7] the board limit),
/// `clear` or anything else. Answers the event id, or nil if the sender is not a member.
pub(crate) fn event() -> Script {
    with_add(
        r#"
if redis.call('HGET', 'chat:members', ARGV[2]) ~= ARGV[3] then return false end
if ARGV[5] == 'draw' then
  redis.call('RPUSH', 'chat:board', ARGV[6])
  redis.call('LTRIM', 'chat:board', -tonumber(ARGV[7]), -1)
elseif ARGV[5] == 'clear' then
  redis.call('DEL', 'chat:board')
end
return add(ARGV[4])
"#,
    )
}

/// A whisper: ARGV[2] the sender's lower-cased nick, ARGV[3] its record (as for [`event`]),
/// ARGV[4] the lower-cased target, ARGV[5] the sender's nick, ARGV[6] the text, ARGV[7] the
/// time. Answers the event id, `nobody` if no node has the target, nil if the sender is not a
/// member.
pub(crate) fn whisper() -> Script {
    with_add(
        r#"
if redis.call('HGET', 'chat:members', ARGV[2]) ~= ARGV[3] then return false end
local rec = redis.call('HGET', 'chat:members', ARGV[4])
if not rec then return 'nobody' end
local ok, r = pcall(cjson.decode, rec)
if not ok or type(r) ~= 'table' or type(r.nick) ~= 'string' then return 'nobody' end
return add(cjson.encode({k = 'whisper', from = ARGV[5], to = r.nick, text = ARGV[6], ts = tonumber(ARGV[7])}))
"#,
    )
}

/// A node's heartbeat: ARGV[1] the node, ARGV[2] the TTL in ms, ARGV[3] an epoch to set if
/// there is none. Answers the epoch.
pub(crate) fn heartbeat() -> Script {
    Script::new(
        r#"
redis.call('SET', 'chat:hb:' .. ARGV[1], '1', 'PX', ARGV[2])
redis.call('SADD', 'chat:nodes', ARGV[1])
redis.call('SET', 'chat:epoch', ARGV[3], 'NX')
return redis.call('GET', 'chat:epoch')
"#,
    )
}

/// Announces the members of every node whose heartbeat expired as `left` (`node lost`) and
/// frees their nicks; ARGV[2] is the caller, skipped. Atomic, so each dead node is reaped
/// exactly once however many survivors try. Answers how many members left.
pub(crate) fn reap() -> Script {
    with_add(
        r#"
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', 'chat:nodes')) do
  if node ~= ARGV[2] and redis.call('EXISTS', 'chat:hb:' .. node) == 0 then
    redis.call('SREM', 'chat:nodes', node)
    local all = redis.call('HGETALL', 'chat:members')
    for i = 1, #all, 2 do
      -- A record this script cannot read is left alone (a Lua error would stop the script
      -- half-way, with what it wrote so far kept).
      local ok, r = pcall(cjson.decode, all[i + 1])
      if ok and type(r) == 'table' and r.node == node then
        redis.call('HDEL', 'chat:members', all[i])
        add(cjson.encode({k = 'leave', node = r.node, conn = r.conn, nick = r.nick, reason = 'node lost'}))
        n = n + 1
      end
    end
  end
end
return n
"#,
    )
}

/// The room as of one stream position: ARGV[1] an epoch to set if there is none. Answers
/// {last id, epoch, member records, board strokes, the nodes that heartbeated}.
pub(crate) fn snapshot() -> Script {
    Script::new(
        r#"
redis.call('SET', 'chat:epoch', ARGV[1], 'NX')
return {redis.call('GET', 'chat:last') or '0', redis.call('GET', 'chat:epoch'),
        redis.call('HVALS', 'chat:members'), redis.call('LRANGE', 'chat:board', 0, -1),
        redis.call('SMEMBERS', 'chat:nodes')}
"#,
    )
}
