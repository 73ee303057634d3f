//! The controller's HTTP server. Up from the first moment (liveness must not wait for a 4096-bit
//! key to be generated); `/readyz` turns 200 once a key is loaded and the caches have synced.
//!
//! The HTTP API (`/v1/cert.pem`, `/v1/verify`, `/v1/rotate`) extends [`router`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::keys::KeyRegistry;

/// Whether the controller's caches have synced.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    caches_synced: Arc<AtomicBool>,
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
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The sealing keys.
    pub keys: KeyRegistry,
    /// Cache readiness.
    pub readiness: Readiness,
}

/// The routes: `/healthz` and `/readyz`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    if !state.keys.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no sealing key loaded yet\n",
        )
    } else if !state.readiness.caches_synced() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced yet\n",
        )
    } else {
        (StatusCode::OK, "ok")
    }
}
