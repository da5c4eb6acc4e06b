//! Every state transition of a connection, in one place (h11's rule): the handshake's end
//! (open, rejected, failed), the close handshake (RFC 6455 §7.1.2-§7.1.4), failing the
//! connection (§7.1.7), the transport's end, and the drain of our last bytes.
//!
//! `state`, `closing.ending`, `closing.close_transport` and `closing.local_cause` are written
//! here and nowhere else. (The receive path's flow control, `recv.inflated_waiting` and
//! `recv.held`, is not a state of the connection: it only pauses input, and lives with it.)

use super::{Connection, State};
use crate::close::{CloseCode, MAX_CLOSE_REASON};
use crate::error::{HandshakeError, ProtocolError, UsageError};
use crate::event::{CloseCause, Closed, Event, LocalCause};
use crate::handshake::OutgoingResponse;
use crate::role::Role;
use crate::timer::Timer;

/// How the peer ended the connection, waiting for the events before it to be taken.
#[derive(Debug)]
pub(super) enum Ending {
    PeerClose { code: CloseCode, reason: String },
    Failure(ProtocolError),
}

/// The ending of a connection.
#[derive(Debug, Default)]
pub(super) struct Closing {
    /// The peer's close or failure, applied once the events before it were taken.
    ending: Option<Ending>,
    /// The transport should close once the queue is drained.
    pub(super) close_transport: bool,
    /// We decided to end it, for this reason: reported as [`CloseCause::Local`].
    local_cause: Option<LocalCause>,
    /// The stream position just past our close frame, once queued: whether the peer read it.
    pub(super) close_frame_end: Option<u64>,
}

impl Connection {
    /// Starts the close handshake (RFC 6455 §7.1.2): sends a close frame and waits (at most the
    /// close timeout) for the peer's. Messages that arrive meanwhile are still reported. The
    /// `Closed` event says [`CloseCause::LocalClosed`] (or `CloseTimeout`, `DrainTimeout`).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        if !code.is_sendable() {
            return Err(UsageError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(UsageError::ControlTooLong(reason.len() + 2));
        }
        self.check_open()?;
        self.queue_close(code, reason);
        self.state = State::Closing;
        self.timers.clear(Timer::Idle);
        self.timers.clear(Timer::PongDeadline);
        self.timers.set(Timer::Close, self.now + self.config.close_timeout);
        Ok(())
    }

    /// [`close`](Self::close) for a reason of our own that the application must be able to
    /// tell apart (a policy such as a rate limit, a shutdown): the close handshake is the
    /// same, and the `Closed` event carries [`CloseCause::Local`]`(cause)` however it ends.
    ///
    /// A driver shutting down calls `close_with_cause(CloseCode::GOING_AWAY, "shutting down",
    /// LocalCause::Shutdown)` on every connection, then keeps running them until each reports
    /// `Closed` and [`should_close_transport`](Self::should_close_transport) (bounded by the
    /// close and drain timeouts). A policy close is `close_with_cause(CloseCode::POLICY_VIOLATION,
    /// reason, LocalCause::Policy)`.
    pub fn close_with_cause(&mut self, code: CloseCode, reason: &str, cause: LocalCause) -> Result<(), UsageError> {
        self.close(code, reason)?;
        self.closing.local_cause = Some(cause);
        Ok(())
    }

    /// Ends the connection now, without a close handshake: drops every queued byte, reports
    /// `Closed` (code 1006, not clean, [`CloseCause::Local`]`(cause)`) after the events already
    /// queued, and asks for the transport to be closed at once
    /// ([`should_close_transport`](Self::should_close_transport), with nothing queued).
    ///
    /// For a peer that will not read what we send: a driver whose send to a connection fails
    /// with [`SendError::QueueFull`](crate::SendError::QueueFull) and that gives up on it calls
    /// `abort(now, LocalCause::SlowConsumer)` (a close frame would only wait behind the bytes
    /// the peer does not read). Harmless on a connection that already ended.
    pub fn abort(&mut self, now: Instant, cause: LocalCause) {
        self.now = self.now.max(now);
        self.send.out.discard();
        self.closing.ending = None;
        if self.state != State::Closed {
            self.closing.local_cause = Some(cause);
            self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Local(cause));
        }
        self.timers.clear_all();
        self.closing.close_transport = true;
    }

    /// Server: a request was reported; wait for the application's answer.
    pub(super) fn await_answer(&mut self, upgrade: bool) {
        self.state = State::RequestPending { upgrade };
    }

    /// The handshake succeeded: start keep-alive and process what arrived behind the head.
    pub(super) fn open(&mut self) {
        self.state = State::Open;
        self.timers.clear(Timer::Handshake);
        if !self.config.keep_handshake {
            self.request = None;
            self.response = None;
        }
        self.note_activity();
        let pending = self.take_opening_rest();
        if !pending.is_empty() {
            self.receive_frames(&pending);
        }
    }

    /// The peer broke the protocol: "fail the WebSocket connection" (RFC 6455 §7.1.7).
    pub(super) fn fail(&mut self, error: ProtocolError) {
        self.end(Ending::Failure(error));
    }

    /// The peer's close frame arrived (RFC 6455 §7.1.3).
    pub(super) fn peer_closed(&mut self, code: CloseCode, reason: String) {
        self.end(Ending::PeerClose { code, reason });
    }

    /// Whether the peer's close or failure is waiting for the events before it to be taken.
    pub(super) fn ending_pending(&self) -> bool {
        self.closing.ending.is_some()
    }

    /// Input processing stops here. The ending takes effect (close frame queued, `Closed`
    /// reported) once the application has taken the events before it, so that its answers to
    /// them (an echo, say) leave before our close frame: nothing already accepted is lost.
    fn end(&mut self, ending: Ending) {
        self.recv.frame = None;
        self.recv.message = None;
        if self.events.is_empty() {
            self.apply_ending(ending);
        } else {
            self.closing.ending = Some(ending);
        }
    }

    /// The events before the peer's ending have been taken (or a deadline or the transport's
    /// end overtakes them): the ending takes effect now.
    pub(super) fn apply_pending_ending(&mut self) {
        if let Some(ending) = self.closing.ending.take() {
            self.apply_ending(ending);
        }
    }

    fn apply_ending(&mut self, ending: Ending) {
        match ending {
            Ending::PeerClose { code, reason } => {
                let cause = if self.state == State::Closing {
                    CloseCause::LocalClosed
                } else {
                    // Echo the peer's code (RFC 6455 §5.5.1), or an empty close for "no status".
                    self.queue_close(code, "");
                    CloseCause::PeerClosed
                };
                let server = self.role == Role::Server;
                // The server closes TCP first (RFC 6455 §7.1.1); a client gives it the close
                // timeout.
                self.finish_with(code, reason, true, cause, server);
                if !server {
                    self.timers.set(Timer::Close, self.now + self.config.close_timeout);
                }
            }
            Ending::Failure(error) => {
                let code = error.close_code();
                let reason = error.to_string();
                if self.state == State::Open {
                    self.queue_close(code, &reason);
                }
                self.finish(code, reason, false, CloseCause::Protocol(error));
            }
        }
    }

    /// The handshake failed: a server answers with the error's status (408 for a timeout);
    /// either side then ends.
    pub(super) fn fail_handshake(&mut self, error: HandshakeError) {
        if self.role == Role::Server && error.status().is_some() {
            if let Ok(head) = OutgoingResponse::for_error(&error).encode() {
                self.send.out.push_bytes(&head);
            }
        }
        self.finish_unclean(CloseCause::Handshake(error));
    }

    /// The transport reached its end.
    pub(super) fn on_eof(&mut self) {
        self.apply_pending_ending();
        self.finish_unclean(CloseCause::Eof);
        self.closing.close_transport = true;
    }

    /// The keep-alive deadline passed with nothing from the peer: close with 1011.
    pub(super) fn keep_alive_expired(&mut self) {
        let reason = "keep-alive timeout".to_owned();
        self.queue_close(CloseCode::INTERNAL_ERROR, &reason);
        self.finish(CloseCode::INTERNAL_ERROR, reason, false, CloseCause::KeepAliveTimeout);
    }

    /// The close timeout passed: in the close handshake, the peer did not answer (or, when
    /// our close frame is still unwritten, did not even read it); after it, a client gave the
    /// server its time to close TCP (RFC 6455 §7.1.1).
    pub(super) fn close_timer_expired(&mut self) {
        match self.state {
            State::Closing => {
                let unread = self.closing.close_frame_end.is_some_and(|end| self.send.out.written() < end);
                if unread {
                    self.send.out.discard();
                }
                let cause = if unread { CloseCause::DrainTimeout } else { CloseCause::CloseTimeout };
                self.finish_unclean(cause);
            }
            State::Closed => self.closing.close_transport = true,
            _ => {}
        }
    }

    /// The drain deadline passed with bytes still queued after the end: drop them, so that
    /// the transport closes now.
    pub(super) fn drain_expired(&mut self) {
        self.send.out.discard();
        self.closing.close_transport = true;
    }

    /// Bytes were written: the drain deadline ends with the queue.
    pub(super) fn drained(&mut self) {
        if self.send.out.len() == 0 {
            self.timers.clear(Timer::Drain);
        }
    }

    pub(super) fn finish_unclean(&mut self, cause: CloseCause) {
        self.finish(CloseCode::ABNORMAL, String::new(), false, cause);
    }

    fn finish(&mut self, code: CloseCode, reason: String, clean: bool, cause: CloseCause) {
        self.finish_with(code, reason, clean, cause, true);
    }

    /// Ends the connection: reports `Closed` once, drops everything in progress, and starts the
    /// drain deadline for what is still queued.
    fn finish_with(&mut self, code: CloseCode, reason: String, clean: bool, cause: CloseCause, close_transport: bool) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.timers.clear_all();
        self.closing.close_transport = close_transport;
        self.recv = Default::default();
        self.opening = None;
        if self.send.out.len() > 0 {
            self.timers.set(Timer::Drain, self.now + self.config.drain_timeout);
        }
        let cause = self.closing.local_cause.map_or(cause, CloseCause::Local);
        self.events.push_back(Event::Closed(Box::new(Closed { code, reason, clean, cause })));
    }
}

use std::time::Instant;
