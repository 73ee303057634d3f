//! Errors of the double's own API (not the Kubernetes API it serves).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Failures of [`ApiServer`](crate::ApiServer) helpers and of serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP listener could not be set up.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig file could not be written.
    #[error("cannot write kubeconfig {}", path.display())]
    WriteKubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store refused a direct write, as the API would have (`code` is the HTTP status).
    #[error("{resource}: {reason} ({code}): {message}")]
    Rejected {
        resource: String,
        code: u16,
        reason: &'static str,
        message: String,
    },
    /// A typed object did not convert to or from JSON.
    #[error("cannot convert {what} to or from JSON")]
    Serde {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}
