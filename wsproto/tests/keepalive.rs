//! Keep-alive and timers, in virtual minutes.

mod support;

use std::time::Duration;

use support::*;
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
