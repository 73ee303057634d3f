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
//! with `Retry-After`; the client is the peer address, see
//! [`client_of`](rate_limit::client_of)); headers and bodies
//! must arrive within `--read-timeout` (also the idle keep-alive timeout) and answers are given
//! within `--write-timeout` (503 after), which also cancels the request's blocking work. Each
//! listener holds at most `--max-connections` connections (see [`serve`]). The `/v1` routes
//! are counted in `sealed_secrets_controller_http_requests_total` by route template, never by
//! raw path.
//!
//! The rooms: [`connections`] accepts and runs connections, [`handlers`] holds the routes and
//! what answers them, [`rate_limit`] the per-client token buckets, [`readiness`] what `/readyz`
//! reports.

mod connections;
mod handlers;
mod rate_limit;
mod readiness;

pub use self::connections::serve;
pub use self::handlers::{ApiSettings, MAX_ERROR_BODY_BYTES, ServerState, router};
pub use self::rate_limit::RateLimiter;
pub use self::readiness::Readiness;
pub use crate::reseal::MAX_BODY_BYTES;
