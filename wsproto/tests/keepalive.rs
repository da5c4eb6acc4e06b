//! Keep-alive and timers, in virtual minutes.

mod support;

use std::time::{Duration, Instant};

use support::*;
use wsproto::frame::OpCode;
use wsproto::*;

#[test]
fn keep_alive_pings_a_live_peer_for_minutes_without_closing() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let limit = pair.now + Duration::from_secs(600);
    pair.advance_until(limit);
    assert_eq!(pair.server.state(), ConnectionState::Open);
    let pings = pair.client_events.iter().filter(|e| matches!(e, Event::Ping(_))).count();
    let pongs = pair.server_events.iter().filter(|e| matches!(e, Event::Pong(_))).count();
    assert_eq!((pings, pongs), (30, 30), "one ping per 20 s over 10 minutes");
}

#[test]
fn keep_alive_reaps_a_silent_peer_with_1011() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let start = pair.now;
    pair.cut = true;
    let limit = pair.now + Duration::from_secs(600);
    pair.advance_until(limit);
    let (code, cause) = closed_with(&pair.server_events);
    assert_eq!((code, cause), (CloseCode::INTERNAL_ERROR, CloseCause::KeepAliveTimeout));
    assert!(pair.server.should_close_transport());
    // Closed at the ping (20 s) plus the timeout (10 s), not later.
    assert!(pair.server.poll_timeout().is_none());
    assert!(pair.now >= start + Duration::from_secs(30));
}

#[test]
fn any_data_counts_as_a_sign_of_life() {
    let mut pair = Pair::new(Config { auto_pong: false, ..Config::default() }, keep_alive());
    // The client never answers pings but talks every 15 s: the server never pings at all.
    for _ in 0..40 {
        pair.now += Duration::from_secs(15);
        pair.client.handle_timeout(pair.now);
        pair.server.handle_timeout(pair.now);
        pair.client.send_text("still here").unwrap();
        pair.run();
    }
    assert_eq!(pair.server.state(), ConnectionState::Open);
    assert!(!pair.client_events.iter().any(|e| matches!(e, Event::Ping(_))));
}

#[test]
fn handle_timeout_early_or_twice_is_harmless() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let t = pair.now;
    for _ in 0..3 {
        pair.server.handle_timeout(t);
        pair.server.handle_timeout(t + Duration::from_secs(19));
    }
    assert_eq!(pair.server.queued_bytes(), 0);
    assert_eq!(pair.server.poll_timeout(), Some(t + Duration::from_secs(20)));
}

#[test]
fn the_pong_deadline_counts_from_when_the_ping_was_written() {
    // keep_alive(): a ping after 20 s idle, then 10 s for anything to arrive.
    let now = Instant::now();
    let mut server = open_server(keep_alive(), now);
    // A large message drains slowly but steadily: the peer reads.
    server.send_binary(&vec![0; 1 << 20]).unwrap();
    let ping_at = server.poll_timeout().unwrap();
    assert_eq!(ping_at, now + Duration::from_secs(20));
    server.handle_timeout(ping_at);
    let mut t = ping_at;
    // 40 s of slow progress, four times the timeout, with the ping still queued behind it.
    for _ in 0..40 {
        t += Duration::from_secs(1);
        server.handle_timeout(t);
        assert_eq!(server.state(), ConnectionState::Open, "closed at {:?}", t - ping_at);
        let n = server.outgoing_front().len().min(16 << 10);
        server.advance_outgoing(t, n);
    }
    // Now everything, the ping included, is written.
    let written_at = t + Duration::from_secs(1);
    server.handle_timeout(written_at);
    let rest = drain_output_at(&mut server, written_at);
    assert_eq!(parse_server_frames(&rest[rest.len() - 2..]), vec![(OpCode::Ping, vec![])]);
    server.handle_timeout(written_at + Duration::from_millis(9_999));
    assert_eq!(server.state(), ConnectionState::Open);
    server.handle_timeout(written_at + Duration::from_secs(10));
    assert_eq!(closed_with(&drain_events(&mut server)).1, CloseCause::KeepAliveTimeout);
}

#[test]
fn a_peer_that_reads_nothing_is_still_reaped() {
    let now = Instant::now();
    let mut server = open_server(keep_alive(), now);
    server.send_binary(&vec![0; 1 << 20]).unwrap();
    let ping_at = server.poll_timeout().unwrap();
    server.handle_timeout(ping_at);
    // No write makes progress: the deadline runs from the ping's queueing.
    server.handle_timeout(ping_at + Duration::from_secs(10));
    assert_eq!(closed_with(&drain_events(&mut server)).1, CloseCause::KeepAliveTimeout);
}
