//! The controller's HTTP server: Bitnami's API for `kubeseal` and the `sealbox` CLI, and the
//! probes. Every replica serves it, leader or not.
//!
//! - `GET /healthz`: 200 `ok` from the first moment (liveness must not wait for a 4096-bit key).
//! - `GET /readyz`: 200 once a key is loaded and, on the leader, the caches have synced.
//! - `GET /v1/cert.pem`: the newest certificate, `application/x-pem-file`; 503 before the
//!   first key exists.
//! - `POST /v1/verify`: a SealedSecret (JSON or YAML); 200 if the controller can unseal it, 409
//!   (with the failing keys named) if not, 400 if the body is not a SealedSecret.
//! - `POST /v1/rotate`: the same SealedSecret re-sealed with the newest key, as JSON; 409 with a
//!   readable message when it cannot be decrypted.
//!
//! Bodies above 1 MiB get 413; verify and rotate are rate-limited per client and route (429
//! with `Retry-After`; the client is the peer address, see [`client_of`]); headers and bodies
//! must arrive within `--read-timeout` (also the idle keep-alive timeout) and answers are given
//! within `--write-timeout` (503 after), which also cancels the request's blocking work. Each
//! listener holds at most `--max-connections` connections (see [`serve`]). The `/v1` routes are counted in
//! `sealed_secrets_controller_http_requests_total` by route template, never by raw path.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutLayer;
use tracing::{debug, warn};

use crate::flags::Config;
use crate::keys::KeyRegistry;
use crate::metrics::Metrics;
use crate::reseal::{self, BadRequest, RotateError, VerifyError};
use crate::unseal::{Cancel, Stopped};

pub use crate::reseal::MAX_BODY_BYTES;
/// Longest answer text: error messages name failing keys (up to [`reseal::MAX_VALUES`] of
/// them, each up to 253 bytes), and a client needs the first few to act, not 400 KB of them.
pub const MAX_ERROR_BODY_BYTES: usize = 4096;
/// Rate-limit buckets kept at most; idle ones are dropped first.
const MAX_CLIENTS: usize = 65_536;
/// Longest wait at shutdown for open connections to finish their requests.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Pause after an accept error that is not about one connection (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Whether the controller is ready: whether it leads, and if so whether its caches have synced.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    caches_synced: Arc<AtomicBool>,
    leading: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the caches synced.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Whether the caches have synced.
    pub fn caches_synced(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
    }

    /// This replica starts or stops leading (reconciling); a new term syncs its caches anew.
    pub fn set_leading(&self, leading: bool) {
        self.caches_synced.store(false, Ordering::Release);
        self.leading.store(leading, Ordering::Release);
    }

    /// Whether this replica leads.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Why the replica is not ready, or `None` when it is: a key must be loaded, and a leader's
    /// caches must have synced (followers only serve the HTTP API).
    pub fn not_ready_because(&self, keys: &KeyRegistry) -> Option<&'static str> {
        if !keys.is_ready() {
            Some("not ready: no sealing key loaded yet\n")
        } else if self.is_leading() && !self.caches_synced() {
            Some("not ready: caches not synced yet\n")
        } else {
            None
        }
    }
}

/// How the API treats requests.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Sustained requests per second per client and route on verify and rotate; 0 = no limit.
    pub rate_limit: u32,
    /// Requests above the rate one client may burst.
    pub rate_limit_burst: u32,
    /// Longest wait for a request's body (the headers have the same limit in [`serve`]).
    pub read_timeout: Duration,
    /// Longest time to answer.
    pub write_timeout: Duration,
    /// Whether verify accepts the deprecated `spec.data`, as the reconciler does.
    pub accept_deprecated_v1_data: bool,
    /// Whether the rate limit keys on X-Forwarded-For (see [`client_of`]) rather than the peer.
    pub trust_forwarded_for: bool,
}

impl ApiSettings {
    /// The settings the flags choose.
    pub fn from_config(config: &Config) -> ApiSettings {
        ApiSettings {
            rate_limit: config.rate_limit,
            rate_limit_burst: config.rate_limit_burst,
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            accept_deprecated_v1_data: config.accept_deprecated_v1_data,
            trust_forwarded_for: config.rate_limit_trust_forwarded_for,
        }
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ServerState {
    keys: KeyRegistry,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    settings: ApiSettings,
    limiter: Arc<RateLimiter>,
    unseal_permits: Arc<Semaphore>,
}

impl ServerState {
    /// State for [`router`]. Unsealing for requests runs on at most one blocking thread per
    /// core.
    pub fn new(
        keys: KeyRegistry,
        readiness: Readiness,
        metrics: Arc<Metrics>,
        settings: ApiSettings,
    ) -> ServerState {
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        ServerState {
            limiter: Arc::new(RateLimiter::new(
                settings.rate_limit,
                settings.rate_limit_burst,
            )),
            keys,
            readiness,
            metrics,
            settings,
            unseal_permits: Arc::new(Semaphore::new(parallelism)),
        }
    }
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    let limited = Router::new()
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    let api = Router::new()
        .route("/v1/cert.pem", get(cert))
        .merge(limited)
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.settings.write_timeout,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), instrument));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    match state.readiness.not_ready_because(&state.keys) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        None => (StatusCode::OK, "ok"),
    }
}

const NO_KEY_YET: &str = "no sealing key yet: the controller is generating or loading its first key; try again shortly\n";

async fn cert(State(state): State<ServerState>) -> Response {
    let keys = state.keys.snapshot();
    match keys.sealing_key() {
        Some(key) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            key.certificate().to_pem(),
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, NO_KEY_YET),
    }
}

/// A request's blocking work: its body parsed, then `work` run on it, on a blocking thread (one
/// per core at most), stopped between values when the request ends or `--write-timeout`
/// passes (the guard held here cancels when this future is dropped).
async fn run_blocking<T: Send + 'static>(
    state: &ServerState,
    body: Bytes,
    work: impl FnOnce(reseal::Posted, &Cancel) -> T + Send + 'static,
) -> Result<T, Response> {
    let cancel = Cancel::with_deadline(Instant::now() + state.settings.write_timeout);
    let _cancel_when_dropped = cancel.on_drop();
    let permit = state.unseal_permits.clone().acquire_owned().await.ok();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if cancel.is_cancelled() {
            return Err(BadRequest::Cancelled);
        }
        let posted = reseal::parse_cancellable(&body, &cancel)?;
        Ok(work(posted, &cancel))
    })
    .await;
    match outcome {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(BadRequest::Cancelled)) => Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request ended before its body was decoded\n",
        )),
        Ok(Err(e)) => Err(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
        Err(_) => Err(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request's task failed\n",
        )),
    }
}

fn stopped_status(stopped: Stopped) -> StatusCode {
    match stopped {
        Stopped::OperationBudget(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Stopped::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn verify(State(state): State<ServerState>, request: Request) -> Response {
    let body = match read_body(request, MAX_BODY_BYTES, state.settings.read_timeout).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let keys = state.keys.snapshot();
    if keys.is_empty() {
        return text(StatusCode::SERVICE_UNAVAILABLE, NO_KEY_YET);
    }
    let accept_deprecated_v1_data = state.settings.accept_deprecated_v1_data;
    let outcome = run_blocking(&state, body, move |posted, cancel| {
        reseal::verify(&posted, &keys, accept_deprecated_v1_data, cancel)
    })
    .await;
    match outcome {
        Err(response) => response,
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(VerifyError::Stopped(stopped))) => text(
            stopped_status(stopped),
            format!("cannot verify: {stopped}\n"),
        ),
        Ok(Err(error)) => text(StatusCode::CONFLICT, format!("{error}\n")),
    }
}

async fn rotate(State(state): State<ServerState>, request: Request) -> Response {
    let body = match read_body(request, MAX_BODY_BYTES, state.settings.read_timeout).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let keys = state.keys.snapshot();
    let outcome = run_blocking(&state, body, move |posted, cancel| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        reseal::rotate(posted, &keys, &rng, cancel)
            .and_then(|document| serde_json::to_vec(&document).map_err(|_| RotateError::Encode))
    })
    .await;
    let error = match outcome {
        Err(response) => return response,
        Ok(Ok(json)) => {
            return ([(header::CONTENT_TYPE, "application/json")], json).into_response();
        }
        Ok(Err(error)) => error,
    };
    let code = match &error {
        RotateError::NoKeys => StatusCode::SERVICE_UNAVAILABLE,
        RotateError::Unseal(_) => StatusCode::CONFLICT,
        RotateError::LegacyData => StatusCode::UNPROCESSABLE_ENTITY,
        RotateError::Seal(_) | RotateError::Encode => StatusCode::INTERNAL_SERVER_ERROR,
        RotateError::Stopped(stopped) => stopped_status(*stopped),
    };
    text(code, format!("{error}\n"))
}

/// The whole body, at most `limit` bytes, within `timeout`.
async fn read_body(request: Request, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} KiB\n", limit / 1024),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), limit);
    match tokio::time::timeout(timeout, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(text(
            StatusCode::BAD_REQUEST,
            "reading the request body failed\n",
        )),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time\n",
        )),
    }
}

/// A plain-text answer; messages longer than [`MAX_ERROR_BODY_BYTES`] are cut there.
fn text(code: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    if message.len() > MAX_ERROR_BODY_BYTES {
        let mut end = MAX_ERROR_BODY_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" … (cut)\n");
    }
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// Counts and times every `/v1` request by route template.
async fn instrument(State(state): State<ServerState>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_http(
        &path,
        method.as_str(),
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// 429 for clients over their rate on this route.
async fn rate_limit(State(state): State<ServerState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let client = client_of(&request, state.settings.trust_forwarded_for);
    match state.limiter.check(&route, &client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = text(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests to {route}: at most {} per second with bursts of {}; \
                     retry in {} ms\n",
                    state.settings.rate_limit,
                    state.settings.rate_limit_burst,
                    wait.as_millis().max(1)
                ),
            );
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

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
fn client_of(request: &Request, trust_forwarded_for: bool) -> String {
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

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish (for
/// a few seconds at most). Headers must arrive within `header_timeout`, which hyper also
/// applies while a kept-alive connection waits for its next request (so it is the idle
/// timeout too, as Go's `IdleTimeout` defaults to `ReadTimeout`); an answer whose writing
/// makes no progress for as long ends its connection ([`WriteStall`]). Each request carries
/// the peer address as [`ConnectInfo`].
///
/// At most `max_connections` are open at once. A connection accepted past that makes the
/// oldest one finish its request (if it is in one) and close, then waits for its slot: a flood
/// of idle connections can neither grow memory nor keep the kubelet's probes out for longer
/// than it takes to cycle through `max_connections` connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    // An answer the client stops reading holds its connection (and its slot) for no longer.
    let write_stall_timeout = header_timeout;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let max_connections = max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    // Each open connection's "close when you can", oldest first.
    let mut oldest: VecDeque<oneshot::Sender<()>> = VecDeque::new();
    // Aborting the server task aborts its connections with it.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                while let Some(close) = oldest.pop_front() {
                    if close.send(()).is_ok() {
                        break;
                    }
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        let (close, closing) = oneshot::channel();
        oldest.push_back(close);
        if oldest.len() > 2 * max_connections {
            oldest.retain(|close| !close.is_closed());
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                let response: Result<Response, Infallible> =
                    tower::Service::call(&mut router, request.map(Body::new)).await;
                response
            }
        });
        let stream = WriteStall::new(stream, write_stall_timeout);
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let stopped = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = closing => None,
                () = stopped => None,
            };
            let result = match finished {
                Some(result) => result,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Open connections finish their requests (they saw `stop`), for a few seconds at most.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_GRACE, drained).await.is_err() {
        debug!("stopped with requests still open");
    }
}

/// A stream whose writes fail once they have made no progress for `limit`: a client that
/// stops reading its answer cannot hold its connection forever.
#[derive(Debug)]
struct WriteStall<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// `poll` made no progress: whether the stall has lasted too long.
    fn stalled_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        self.stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    fn progress<T>(
        &mut self,
        poll: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Pending if self.stalled_too_long(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the answer",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(poll, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(poll, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
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
