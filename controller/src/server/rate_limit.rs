//! The rate limit of `/v1/verify` and `/v1/rotate`: a token bucket per route and client
//! ([`RateLimiter`]), and who the client is ([`client_of`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};

/// Rate-limit buckets kept at most; idle ones are dropped first.
const MAX_CLIENTS: usize = 65_536;

/// Who is asking, for the rate limit: the connection's peer address; with
/// `--rate-limit-trust-forwarded-for`, the last address in X-Forwarded-For (the one the proxy
/// nearest to us appended) when there is one.
///
/// X-Forwarded-For is whatever the client wrote unless a proxy we trust rewrites it, so by
/// default it is ignored: 1000 requests with 1000 made-up addresses are one client. Behind the
/// API server's service proxy (how kubeseal and `sealbox` reach `/v1/verify` and `/v1/rotate`)
/// every request arrives from the API server, so the limit is per API server replica, shared
/// by all its users: it bounds the load the proxy can bring, not what one user may do. (The
/// API server appends the caller's address to X-Forwarded-For, but it does not drop what the
/// caller sent, and the caller is anyone allowed to use the service proxy.)
pub(super) fn client_of(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty());
        if let Some(address) = forwarded {
            return address.to_owned();
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default()
}

/// A token bucket per (route, client): `rate` tokens a second, `burst + 1` at most — the same
/// behaviour as the GCRA limiter Bitnami uses (its burst counts requests beyond the first).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    capacity: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests a second with bursts of `burst` more; `rate` 0 allows
    /// everything.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(rate),
            capacity: f64::from(burst) + 1.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client` on `route`, or says how long until one is there.
    pub fn check(&self, route: &str, client: &str, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_CLIENTS {
            let (per_second, capacity) = (self.per_second, self.capacity);
            buckets.retain(|_, b| b.refilled(now, per_second, capacity).tokens < capacity);
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets
            .entry((route.to_owned(), client.to_owned()))
            .or_insert(Bucket {
                tokens: self.capacity,
                updated: now,
            });
        *bucket = bucket.refilled(now, self.per_second, self.capacity);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

impl Bucket {
    fn refilled(self, now: Instant, per_second: f64, capacity: f64) -> Bucket {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        Bucket {
            tokens: (self.tokens + elapsed * per_second).min(capacity),
            updated: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn bursts_then_the_sustained_rate() {
        let limiter = RateLimiter::new(2, 2);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("/v1/verify", "a", start), Ok(()));
        }
        let wait = limiter
            .check("/v1/verify", "a", start)
            .expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        // Other clients and other routes have their own buckets.
        assert_eq!(limiter.check("/v1/verify", "b", start), Ok(()));
        assert_eq!(limiter.check("/v1/rotate", "a", start), Ok(()));
        // Half a second later one more request fits, not two.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.check("/v1/verify", "a", later), Ok(()));
        assert!(limiter.check("/v1/verify", "a", later).is_err());
    }

    #[test]
    fn rate_zero_disables_the_limit() {
        let limiter = RateLimiter::new(0, 0);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.check("/v1/verify", "a", now), Ok(()));
        }
    }

    #[test]
    fn forwarded_for_names_the_client_only_when_trusted() {
        let mut request = Request::builder()
            .header("x-forwarded-for", "10.0.0.9, 192.168.1.5")
            .body(Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 7], 4000))));
        assert_eq!(client_of(&request, false), "127.0.0.7");
        assert_eq!(client_of(&request, true), "192.168.1.5");
        let mut direct = Request::new(Body::empty());
        direct
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 7], 4000))));
        assert_eq!(client_of(&direct, true), "127.0.0.7");
    }
}
