//! Rate limits: token buckets per API key, user and client address, and a
//! sliding window on sign-in attempts per user name and per address.
//!
//! A refused request gets how long to wait (HTTP 429 + `Retry-After`, gRPC
//! `RESOURCE_EXHAUSTED` + `RetryInfo`). The client address is the
//! connection's peer, or, when the peer is a configured trusted proxy, the
//! nearest untrusted address in `X-Forwarded-For`: a client that sets the
//! header itself changes nothing.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Limits (`[limits]` in the configuration); 0 turns one off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// API requests per second per client address (default 50), with
    /// bursts of twice that.
    pub api_per_ip: f64,
    /// API requests per second per signed-in user (default 20), bursts of
    /// twice that.
    pub api_per_user: f64,
    /// OTLP requests per second per ingest key (default 500), bursts of
    /// twice that.
    pub ingest_per_key: f64,
    /// OTLP requests per second per client address (default 1000), bursts
    /// of twice that.
    pub ingest_per_ip: f64,
    /// Sign-in attempts per user name within `login_window_secs` (default
    /// 10). Successful sign-ins do not count.
    pub login_per_user: usize,
    /// Sign-in attempts per client address within `login_window_secs`
    /// (default 30). Successful sign-ins do not count.
    pub login_per_ip: usize,
    /// The sign-in window, in seconds (default 300): a locked user name or
    /// address can try again once its oldest counted attempt is this old.
    pub login_window_secs: u64,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed
    /// (default none).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            api_per_ip: 50.0,
            api_per_user: 20.0,
            ingest_per_key: 500.0,
            ingest_per_ip: 1000.0,
            login_per_user: 10,
            login_per_ip: 30,
            login_window_secs: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// The client address of a request from `peer` with `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &http::HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        // Walk X-Forwarded-For from the right: each hop was appended by the
        // proxy before it; the first address that is not a trusted proxy
        // is the client as far as we can tell.
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        Some(
            hops.into_iter()
                .rev()
                .find(|ip| !self.trusted_proxies.contains(ip))
                .unwrap_or(peer),
        )
    }
}

/// Token buckets by key: `rate` tokens a second, at most `burst` saved.
#[derive(Debug)]
pub struct Buckets {
    rate: f64,
    burst: f64,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Keys tracked before idle (full) buckets are forgotten.
const MAX_KEYS: usize = 100_000;

impl Buckets {
    /// Buckets refilling at `rate` a second with bursts of `2 * rate`;
    /// `rate` 0 allows everything.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            burst: (2.0 * rate).max(1.0),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_KEYS {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (t, last)| *t + now.duration_since(*last).as_secs_f64() * rate < burst);
            if map.len() >= MAX_KEYS {
                // Memory stays bounded under a flood of distinct keys; the
                // buckets start full again.
                map.clear();
            }
        }
        let (tokens, last) = map.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// At most `limit` events per key within `window`.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    window: Duration,
    map: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Window {
    /// A window of `window` holding at most `limit` events per key; `limit`
    /// 0 allows everything.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event for `key`, or refuses it with the time until the
    /// oldest counted event leaves the window.
    pub fn hit(&self, key: &str) -> Result<Instant, Duration> {
        let now = Instant::now();
        if self.limit == 0 {
            return Ok(now);
        }
        let Ok(mut map) = self.map.lock() else {
            return Ok(now);
        };
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_KEYS {
                // Bounded memory under a flood of distinct keys (many
                // addresses guessing many names): start counting afresh.
                map.clear();
            }
        }
        let q = map.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.limit {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(now)
    }

    /// Takes back the event recorded at `at` for `key` (a sign-in that
    /// succeeded does not count against anyone).
    pub fn forget(&self, key: &str, at: Instant) {
        if let Ok(mut map) = self.map.lock()
            && let Some(q) = map.get_mut(key)
            && let Some(i) = q.iter().position(|t| *t == at)
        {
            q.remove(i);
        }
    }
}

/// Every limiter of the server.
#[derive(Debug)]
pub struct Limiters {
    /// The settings.
    pub config: LimitsConfig,
    /// API requests per client address.
    pub api_ip: Buckets,
    /// API requests per user.
    pub api_user: Buckets,
    /// OTLP requests per ingest key.
    pub ingest_key: Buckets,
    /// OTLP requests per client address.
    pub ingest_ip: Buckets,
    /// Sign-in attempts per user name.
    pub login_user: Window,
    /// Sign-in attempts per client address.
    pub login_ip: Window,
}

impl Limiters {
    /// Limiters for `config`.
    pub fn new(config: LimitsConfig) -> Self {
        let window = Duration::from_secs(config.login_window_secs.max(1));
        Self {
            api_ip: Buckets::new(config.api_per_ip),
            api_user: Buckets::new(config.api_per_user),
            ingest_key: Buckets::new(config.ingest_per_key),
            ingest_ip: Buckets::new(config.ingest_per_ip),
            login_user: Window::new(config.login_per_user, window),
            login_ip: Window::new(config.login_per_ip, window),
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let b = Buckets::new(10.0);
        for _ in 0..20 {
            assert!(b.take("k").is_ok());
        }
        let wait = b.take("k").expect_err("the burst is spent");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(b.take("other").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(120));
        assert!(b.take("k").is_ok(), "refilled");
    }

    #[test]
    fn windows_count_within_the_window_and_forget_on_request() {
        let w = Window::new(2, Duration::from_millis(200));
        let first = w.hit("u").expect("1");
        w.hit("u").expect("2");
        let wait = w.hit("u").expect_err("3 is over the limit");
        assert!(wait <= Duration::from_millis(200));
        w.forget("u", first);
        assert!(w.hit("u").is_ok(), "a forgotten event frees a place");
        std::thread::sleep(Duration::from_millis(210));
        assert!(w.hit("u").is_ok(), "the window slid");
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let b = Buckets::new(1.0);
        let w = Window::new(1, Duration::from_secs(60));
        for i in 0..(MAX_KEYS + 10) {
            let k = i.to_string();
            let _ = b.take(&k);
            let _ = b.take(&k); // empties the bucket: not idle
            let _ = w.hit(&k);
        }
        assert!(b.map.lock().expect("lock").len() <= MAX_KEYS);
        assert!(w.map.lock().expect("lock").len() <= MAX_KEYS);
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let c = LimitsConfig {
            trusted_proxies: vec![proxy],
            ..Default::default()
        };
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 10.0.0.1".parse().expect("hv"),
        );
        let stranger: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(
            c.client(Some(stranger), &h),
            Some(stranger),
            "spoofed header ignored"
        );
        assert_eq!(
            c.client(Some(proxy), &h),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(c.client(Some(proxy), &http::HeaderMap::new()), Some(proxy));
    }
}
