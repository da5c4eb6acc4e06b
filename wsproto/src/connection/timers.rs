//! The connection's deadlines, handled in one `match` ([`Timer`]): the opening handshake
//! (RFC 6455 §4), keep-alive (a ping after idleness, §5.5.2, and the deadline for an answer),
//! the close handshake (§7.1.1-§7.1.2) and the drain of our last bytes.

use std::time::Instant;

use super::{Connection, State};
use crate::error::HandshakeError;
use crate::frame::OpCode;
use crate::timer::Timer;

impl Connection {
    /// Fires every timer due at `now`, earliest first.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        // The peer's close or failure that waits for its events to be taken arrived before any
        // deadline now due: it takes effect first (else a timer would end the connection in its
        // place, and the ending, applied later, would queue a second close frame).
        if self.ending_pending() && self.timers.next().is_some_and(|at| at <= now) {
            self.apply_pending_ending();
        }
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Handshake => {
                    if matches!(
                        self.state,
                        State::AwaitingRequest | State::AwaitingResponse | State::RequestPending { .. }
                    ) {
                        // A server answers 408, as `HandshakeError::Timeout` says.
                        self.fail_handshake(HandshakeError::Timeout);
                    }
                }
                Timer::Idle => {
                    if let (Some(keep_alive), State::Open) = (self.config.keep_alive, self.state) {
                        self.queue_control(OpCode::Ping, b"");
                        self.send.ping_end = Some(self.send.out.end_position());
                        // Until the ping is written, the deadline counts from the last write
                        // progress (see `on_written`): a peer that reads nothing is reaped too.
                        self.timers.set(Timer::PongDeadline, now + keep_alive.timeout);
                    }
                }
                Timer::PongDeadline => {
                    if self.state == State::Open {
                        self.keep_alive_expired();
                    }
                }
                Timer::Close => self.close_timer_expired(),
                Timer::Drain => self.drain_expired(),
            }
        }
    }

    /// Anything arrived from the peer: it is alive.
    pub(super) fn note_activity(&mut self) {
        if let Some(keep_alive) = self.config.keep_alive {
            if self.state == State::Open {
                self.timers.set(Timer::Idle, self.now + keep_alive.interval);
                self.timers.clear(Timer::PongDeadline);
                self.send.ping_end = None;
            }
        }
    }

    /// Bytes were written at `self.now`. The keep-alive deadline counts from when our ping was
    /// written: while it waits behind other bytes, each write that makes progress restarts
    /// the deadline (the peer reads, so it is alive); once it is written, the peer has
    /// `timeout` to send anything.
    pub(super) fn on_written(&mut self) {
        if let (Some(end), Some(keep_alive)) = (self.send.ping_end, self.config.keep_alive) {
            if self.state == State::Open {
                self.timers.set(Timer::PongDeadline, self.now + keep_alive.timeout);
            }
            if self.send.out.written() >= end {
                self.send.ping_end = None;
            }
        }
        self.drained();
    }
}
