//! The connection's timers: deadlines only, compared against the time the caller passes in.

use std::time::Instant;

/// Each thing a connection may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The opening handshake must finish by then.
    Handshake = 0,
    /// Keep-alive: send a ping if nothing has arrived by then.
    Idle = 1,
    /// Keep-alive: a ping went out; something must arrive by then.
    PongDeadline = 2,
    /// The peer's close frame (or, for a client, the server's TCP close) is due by then.
    Close = 3,
    /// The connection ended: the bytes still queued must be written by then, or are dropped.
    Drain = 4,
}

const COUNT: usize = 5;
const ALL: [Timer; COUNT] = [Timer::Handshake, Timer::Idle, Timer::PongDeadline, Timer::Close, Timer::Drain];

#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable([Option<Instant>; COUNT]);

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    pub(crate) fn clear(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    pub(crate) fn clear_all(&mut self) {
        self.0 = [None; COUNT];
    }

    /// The earliest timer due at `now`, cleared as it is reported (ties in declaration order).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = ALL
            .into_iter()
            .filter(|&t| self.0[t as usize].is_some_and(|at| at <= now))
            .min_by_key(|&t| self.0[t as usize])?;
        self.0[timer as usize] = None;
        Some(timer)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}
