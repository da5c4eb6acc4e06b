//! The closing handshake (RFC 6455 §7): both initiators, timeouts, end of file, drain.

mod support;

use std::time::{Duration, Instant};

use support::*;
use wsproto::frame::OpCode;
use wsproto::*;

#[test]
fn client_initiated_close_is_clean_on_both_sides() {
    for piece in [1, usize::MAX] {
        let mut pair = Pair::with_piece(Config::default(), Config::default(), piece);
        pair.client.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(pair.client.state(), ConnectionState::Closing);
        pair.run();
        let server_closed =
            Closed { code: CloseCode::NORMAL, reason: "done".into(), clean: true, cause: CloseCause::PeerClosed };
        assert_eq!(pair.server_events, vec![Event::Closed(Box::new(server_closed))]);
        assert_eq!(
            pair.client_events,
            vec![Event::Closed(Box::new(Closed {
                code: CloseCode::NORMAL,
                reason: "".into(),
                clean: true,
                cause: CloseCause::LocalClosed
            }))]
        );
        // The server closes TCP first; the client waits for it.
        assert!(pair.server.should_close_transport());
        assert!(!pair.client.should_close_transport());
        assert!(pair.client.wants_read());
        pair.client.receive_eof(pair.now);
        assert!(pair.client.should_close_transport());
        assert_eq!(pair.client.poll_event(), None, "nothing after Closed");
    }
}

#[test]
fn server_initiated_close_and_client_tcp_wait_timeout() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.server.close(CloseCode(4000), "app says bye").unwrap();
    pair.run();
    assert!(matches!(
        &pair.client_events[..],
        [event] if matches!(event.closed(), Some(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::PeerClosed, .. }))
    ));
    assert!(matches!(
        &pair.server_events[..],
        [event] if matches!(event.closed(), Some(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::LocalClosed, .. }))
    ));
    // The server never closes TCP (the link is idle): the client gives up after the close timeout.
    let limit = pair.now + Duration::from_secs(60);
    pair.advance_until(limit);
    assert!(pair.client.should_close_transport());
}

#[test]
fn close_without_status_is_echoed_empty() {
    let (events, frames) = run_both_ways(Config::default(), &client_frame(0x88, b""));
    assert_eq!(
        events,
        vec![Event::Closed(Box::new(Closed {
            code: CloseCode::NO_STATUS,
            reason: "".into(),
            clean: true,
            cause: CloseCause::PeerClosed
        }))]
    );
    assert_eq!(frames, vec![(OpCode::Close, vec![])]);
}

#[test]
fn everything_after_a_close_frame_is_ignored() {
    let input = [
        client_frame(0x88, &close_payload(1000, "")),
        client_frame(0x81, b"late"),
        client_frame(0x89, b""),
        vec![0xFF; 20],
    ]
    .concat();
    let (events, frames) = run_both_ways(Config::default(), &input);
    assert_eq!(events.len(), 1);
    assert_eq!(frames, vec![(OpCode::Close, close_payload(1000, ""))]);
}

#[test]
fn close_handshake_timeout_when_the_peer_never_answers() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.cut = true;
    pair.server.close(CloseCode::GOING_AWAY, "").unwrap();
    pair.run();
    let limit = pair.now + Duration::from_secs(60);
    pair.advance_until(limit);
    assert_eq!(
        pair.server_events,
        vec![Event::Closed(Box::new(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::CloseTimeout
        }))]
    );
    assert!(pair.server.should_close_transport());
}

#[test]
fn messages_arriving_while_closing_are_still_reported() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.send_text("in flight").unwrap();
    pair.server.close(CloseCode::NORMAL, "").unwrap();
    pair.run();
    assert_eq!(pair.server_events[0], text("in flight"));
    assert!(matches!(pair.server_events[1].closed(), Some(Closed { clean: true, .. })));
}

#[test]
fn simultaneous_close() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.close(CloseCode::NORMAL, "c").unwrap();
    pair.server.close(CloseCode::NORMAL, "s").unwrap();
    pair.run();
    assert!(matches!(
        &pair.client_events[..],
        [event] if matches!(event.closed(), Some(Closed { clean: true, cause: CloseCause::LocalClosed, .. }))
    ));
    assert!(matches!(
        &pair.server_events[..],
        [event] if matches!(event.closed(), Some(Closed { clean: true, cause: CloseCause::LocalClosed, .. }))
    ));
}

#[test]
fn eof_mid_message_reports_abnormal_closure() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let frame = client_frame(0x81, b"unfinished");
    server.receive(now, &frame[..8]);
    server.receive_eof(now);
    assert_eq!(
        drain_events(&mut server),
        vec![Event::Closed(Box::new(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::Eof
        }))]
    );
    assert!(server.should_close_transport());
    server.receive(now, &frame[8..]);
    assert_eq!(server.poll_event(), None);
}

#[test]
fn answers_to_messages_leave_before_the_close_frame_that_followed_them() {
    let now = Instant::now();
    for ending in [client_frame(0x88, &close_payload(1000, "")), client_frame(0xC1, b"rsv")] {
        let mut server = open_server(Config::default(), now);
        server.receive(now, &[client_frame(0x81, b"echo me"), ending].concat());
        let Some(Event::Message(message)) = server.poll_event() else { panic!("message first") };
        server.send(message).unwrap();
        assert!(matches!(server.poll_event(), Some(Event::Closed(_))));
        let frames = parse_server_frames(&drain_output(&mut server));
        assert_eq!(frames[0], (OpCode::Text, b"echo me".to_vec()));
        assert_eq!(frames[1].0, OpCode::Close);
    }
}

#[test]
fn closes_of_our_own_carry_their_cause() {
    // A policy close and a shutdown close: a close handshake, told apart by the cause.
    for cause in [LocalCause::Policy, LocalCause::Shutdown] {
        let mut pair = Pair::new(Config::default(), Config::default());
        pair.server.close_with_cause(CloseCode::POLICY_VIOLATION, "rate limit", cause).unwrap();
        pair.run();
        let closed = match pair.server_events.last() {
            Some(Event::Closed(closed)) => closed.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((closed.cause, closed.clean), (CloseCause::Local(cause), true));
        assert_eq!(closed_with(&pair.client_events), (CloseCode::POLICY_VIOLATION, CloseCause::PeerClosed));
    }
}

#[test]
fn abort_for_a_slow_consumer_ends_at_once_without_a_handshake() {
    let config = Config { max_queued_bytes: 1000, ..Config::default() };
    let now = Instant::now();
    let mut server = open_server(config, now);
    server.send_binary(&[0; 900]).unwrap();
    assert!(matches!(server.send_binary(&[0; 900]), Err(SendError::QueueFull { .. })));
    server.abort(now, LocalCause::SlowConsumer);
    let closed = match drain_events(&mut server).pop() {
        Some(Event::Closed(closed)) => closed,
        other => panic!("{other:?}"),
    };
    assert_eq!((closed.code, closed.clean), (CloseCode::ABNORMAL, false));
    assert_eq!(closed.cause, CloseCause::Local(LocalCause::SlowConsumer));
    assert_eq!(server.queued_bytes(), 0, "nothing left to write: close the transport now");
    assert!(server.should_close_transport());
    assert!(server.poll_timeout().is_none());
    // Harmless again.
    server.abort(now, LocalCause::Shutdown);
    assert!(server.poll_event().is_none());
}

#[test]
fn a_peer_that_stops_reading_cannot_hold_the_close_open() {
    // Our close frame is never written: at the close timeout the Closed event says why, and
    // the queue is dropped so that the transport can close.
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    server.send_binary(&[0; 4096]).unwrap();
    server.close(CloseCode::NORMAL, "bye").unwrap();
    let deadline = server.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(5));
    server.handle_timeout(deadline);
    assert_eq!(closed_with(&drain_events(&mut server)), (CloseCode::ABNORMAL, CloseCause::DrainTimeout));
    assert_eq!(server.queued_bytes(), 0);
    assert!(server.should_close_transport());

    // The peer closed and we answered, but it does not read the answer: the drain deadline.
    let mut server = open_server(Config::default(), now);
    server.send_binary(&[0; 4096]).unwrap();
    server.receive(now, &client_frame(0x88, &close_payload(1000, "")));
    assert_eq!(closed_with(&drain_events(&mut server)), (CloseCode::NORMAL, CloseCause::PeerClosed));
    assert!(server.should_close_transport() && server.queued_bytes() > 0);
    let deadline = server.poll_timeout().expect("a drain deadline");
    assert_eq!(deadline, now + Config::default().drain_timeout);
    server.handle_timeout(deadline);
    assert_eq!(server.queued_bytes(), 0);
    assert!(server.poll_timeout().is_none());
}

#[test]
fn a_drained_queue_ends_the_drain_deadline() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    server.receive(now, &client_frame(0x88, &close_payload(1000, "")));
    let _ = drain_events(&mut server);
    assert!(server.poll_timeout().is_some());
    drain_output(&mut server);
    assert!(server.poll_timeout().is_none());
}
