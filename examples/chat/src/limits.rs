//! Flood control (protocol.md, "Connection rules"): a token bucket per client for chat
//! messages and a larger one for drawing segments; a client over budget is closed with 1008.

use std::time::Instant;

/// A token bucket: `rate` per second sustained, bursts up to `burst`.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket: a burst of twice the rate (at least one).
    pub(crate) fn new(rate: f64, now: Instant) -> Self {
        let burst = (rate * 2.0).max(1.0);
        RateLimit { tokens: burst, rate, burst, last: now }
    }

    /// Whether one more message fits at `now`; takes its token if so.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One client's budgets: chat messages (`--max-rate`) and drawing segments, which a moving
/// pointer sends many of.
#[derive(Debug)]
pub struct FloodControl {
    messages: RateLimit,
    draws: RateLimit,
}

impl FloodControl {
    /// Full budgets for a client that connected at `now`.
    pub(crate) fn new(max_rate: f64, max_draw_rate: f64, now: Instant) -> Self {
        FloodControl { messages: RateLimit::new(max_rate, now), draws: RateLimit::new(max_draw_rate, now) }
    }

    /// Whether the client may send one more drawing segment (`draw`) or other message at `now`.
    pub(crate) fn allow(&mut self, draw: bool, now: Instant) -> bool {
        if draw {
            self.draws.allow(now)
        } else {
            self.messages.allow(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limit_allows_bursts_and_the_sustained_rate_only() {
        let start = Instant::now();
        let mut limit = RateLimit::new(20.0, start);
        assert_eq!((0..100).take_while(|_| limit.allow(start)).count(), 40, "a burst of twice the rate");
        // Ten seconds just under the rate: nothing refused.
        let mut now = start;
        for _ in 0..200 {
            now += Duration::from_millis(51);
            assert!(limit.allow(now));
        }
        // Ten seconds at twice the rate: about half refused.
        let refused = (0..400)
            .filter(|_| {
                now += Duration::from_millis(25);
                !limit.allow(now)
            })
            .count();
        assert!((180..=220).contains(&refused), "{refused}");
    }
}
