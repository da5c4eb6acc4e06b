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
        assert_eq!(pair.server_events, vec![Event::Closed(server_closed)]);
        assert_eq!(
            pair.client_events,
            vec![Event::Closed(Closed {
                code: CloseCode::NORMAL,
                reason: "".into(),
                clean: true,
                cause: CloseCause::LocalClosed
            })]
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
        [Event::Closed(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::PeerClosed, .. })]
    ));
    assert!(matches!(
        &pair.server_events[..],
        [Event::Closed(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::LocalClosed, .. })]
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
        vec![Event::Closed(Closed {
            code: CloseCode::NO_STATUS,
            reason: "".into(),
            clean: true,
            cause: CloseCause::PeerClosed
        })]
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
        vec![Event::Closed(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::CloseTimeout
        })]
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
    assert!(matches!(pair.server_events[1], Event::Closed(Closed { clean: true, .. })));
}

#[test]
fn simultaneous_close() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.close(CloseCode::NORMAL, "c").unwrap();
    pair.server.close(CloseCode::NORMAL, "s").unwrap();
    pair.run();
    assert!(matches!(
        &pair.client_events[..],
        [Event::Closed(Closed { clean: true, cause: CloseCause::LocalClosed, .. })]
    ));
    assert!(matches!(
        &pair.server_events[..],
        [Event::Closed(Closed { clean: true, cause: CloseCause::LocalClosed, .. })]
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
        vec![Event::Closed(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::Eof
        })]
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
