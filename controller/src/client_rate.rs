//! The ceiling on the controller's requests to the API server (--kubeclient-qps and
//! --kubeclient-burst): a token bucket in front of the kube client, as client-go's.
//!
//! The bucket's arithmetic is a pure function of the time ([`TokenBucket::reserve`]); the tower
//! service only sleeps for what it says. Every request takes one token, a watch too (only its
//! start counts, as in client-go). The default is a ceiling against a runaway loop, never the
//! bottleneck: see [`crate::flags::DEFAULT_KUBECLIENT_QPS`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response};
use kube::Client;
use kube::client::Body;
use tokio::time::Instant;

/// Requests per second and the bucket's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientRate {
    /// Tokens added per second.
    pub qps: f64,
    /// Most tokens the bucket holds: requests that may go at once after a quiet spell.
    pub burst: u32,
}

impl ClientRate {
    /// `None` (no ceiling) for a rate of zero or less, as Bitnami's negative --kubeclient-qps.
    /// A burst of 0 counts as 1: otherwise no request could ever go.
    pub fn new(qps: f64, burst: u32) -> Option<ClientRate> {
        (qps > 0.0 && qps.is_finite()).then_some(ClientRate {
            qps,
            burst: burst.max(1),
        })
    }
}

/// A token bucket that starts full. A request takes a token at once even when none is left,
/// and waits until the bucket would have refilled to it, so requests keep their order and the
/// count of requests started in any span of `t` seconds is at most `burst + qps × t`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: ClientRate,
    /// Tokens at `at`; below zero when requests are waiting for tokens to come.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: ClientRate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    /// Takes a token for a request made at `now`; returns how long it must wait before going.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        if now > self.at {
            self.at = now;
        }
        let burst = f64::from(self.rate.burst);
        self.tokens = (self.tokens + elapsed * self.rate.qps).min(burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate.qps)
        }
    }
}

/// `client` with every request going through one [`TokenBucket`] of `rate`.
pub fn limit(client: Client, rate: ClientRate) -> Client {
    let default_namespace = client.default_namespace().to_owned();
    let valid_until = *client.valid_until();
    let service = RateLimited {
        inner: ClientService(client),
        bucket: Arc::new(Mutex::new(TokenBucket::new(rate, Instant::now()))),
    };
    Client::new(service, default_namespace).with_valid_until(valid_until)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A tower service that waits for a token before passing a request on to `inner`.
#[derive(Clone)]
struct RateLimited<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
}

impl<S, R> tower::Service<R> for RateLimited<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let wait = self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(Instant::now());
        // The ready service goes with this request; the clone serves the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            inner.call(request).await
        })
    }
}

/// The kube client as a tower service: what the bucket passes requests on to.
#[derive(Clone)]
struct ClientService(Client);

impl tower::Service<Request<Body>> for ClientService {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        // The client's own buffer waits for readiness inside `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move { client.send(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(qps: f64, burst: u32) -> ClientRate {
        ClientRate::new(qps, burst).expect("a ceiling")
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_spaces_requests() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(rate(10.0, 3), start);
        let waits: Vec<Duration> = (0..6).map(|_| bucket.reserve(start)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits[..3], [Duration::ZERO; 3]);
        for (wait, expected) in waits[3..].iter().zip([100, 200, 300]) {
            assert!(wait.abs_diff(ms(expected)) < ms(1), "{waits:?}");
        }
    }

    #[test]
    fn an_idle_bucket_refills_up_to_the_burst_only() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(rate(2.0, 2), start);
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        // An hour idle refills two tokens, not 7,200.
        let later = start + Duration::from_secs(3600);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        let third = bucket.reserve(later);
        assert!(third.abs_diff(Duration::from_millis(500)) < Duration::from_millis(1));
    }

    #[test]
    fn at_most_burst_plus_rate_times_time() {
        // Requests arriving every millisecond for two seconds, each going when its wait ends.
        let start = Instant::now();
        let (qps, burst) = (50.0, 5);
        let mut bucket = TokenBucket::new(rate(qps, burst), start);
        let starts: Vec<Duration> = (0..2000u64)
            .map(|i| {
                let arrival = Duration::from_millis(i);
                arrival + bucket.reserve(start + arrival)
            })
            .collect();
        for (n, started) in starts.iter().enumerate() {
            let allowed = f64::from(burst) + qps * started.as_secs_f64();
            assert!(
                (n + 1) as f64 <= allowed + 1e-6,
                "request {n} at {started:?}"
            );
        }
        // And the ceiling is reached, not undercut: the last start is where the rate puts it.
        let last = starts.last().expect("requests").as_secs_f64();
        assert!((last - (2000.0 - 5.0) / qps).abs() < 0.01, "{last}");
    }

    #[test]
    fn no_ceiling_at_zero_or_below() {
        assert_eq!(ClientRate::new(0.0, 10), None);
        assert_eq!(ClientRate::new(-1.0, 10), None);
        assert_eq!(ClientRate::new(f64::NAN, 10), None);
        assert_eq!(ClientRate::new(5.0, 0).map(|r| r.burst), Some(1));
    }
}
