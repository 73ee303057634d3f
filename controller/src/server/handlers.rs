//! The routes and what answers them: the probes (`/healthz`, `/readyz`), the certificate,
//! verify and rotate, and the middleware around them (metrics by route template, the rate
//! limit, the answer deadline). Request bodies are read within a size and time bound, and
//! their blocking work runs on a bounded set of threads, cancelled when the request ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use crate::flags::Config;
use crate::keys::KeyRegistry;
use crate::metrics::Metrics;
use crate::reseal::{self, BadRequest, MAX_BODY_BYTES, RotateError, VerifyError};
use crate::server::rate_limit::{RateLimiter, client_of};
use crate::server::readiness::Readiness;
use crate::unseal::{Cancel, Stopped};

/// Longest answer text: error messages name failing keys (up to [`reseal::MAX_VALUES`] of
/// them, each up to 253 bytes), and a client needs the first few to act, not 400 KB of them.
pub const MAX_ERROR_BODY_BYTES: usize = 4096;

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
