//! The crate's one error type.
//!
//! Reconcile errors here are the transient kind (API calls, the unseal task): the controller
//! retries them with backoff. Permanent outcomes (cannot decrypt, a foreign or immutable Secret)
//! are not errors: they become a status condition and an event, and wait for a change.

use std::net::SocketAddr;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a SealedSecret whole (to unseal it) failed.
    #[error("reading SealedSecret {sealed_secret} failed")]
    GetSealedSecret {
        /// `namespace/name`.
        sealed_secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Reading the Secret a SealedSecret names failed.
    #[error("reading Secret {secret} failed")]
    GetSecret {
        /// `namespace/name`.
        secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Server-side apply of a Secret failed.
    #[error("applying Secret {secret} failed")]
    ApplySecret {
        /// `namespace/name`.
        secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Removing keys another writer left in a Secret we replace failed.
    #[error("removing leftover keys from Secret {secret} failed")]
    PruneSecret {
        /// `namespace/name`.
        secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Writing a SealedSecret's status failed.
    #[error("updating the status of SealedSecret {sealed_secret} failed")]
    PatchStatus {
        /// `namespace/name`.
        sealed_secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// No sealing key is loaded yet (the first key is still being generated or read).
    #[error("no sealing key is loaded yet")]
    NoKeys,

    /// Unsealing a SealedSecret panicked.
    #[error("the unseal task for SealedSecret {sealed_secret} failed")]
    UnsealTask {
        /// `namespace/name`.
        sealed_secret: String,
        /// Why the task ended.
        #[source]
        source: crate::pool::Panicked,
    },

    /// Listing the key Secrets failed.
    #[error("listing key Secrets in namespace {namespace} failed")]
    ListKeys {
        /// The controller namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Generating a new key failed.
    #[error("generating a new sealing key failed")]
    GenerateKey {
        /// The crypto error.
        #[source]
        source: sealbox_crypto::Error,
    },

    /// The blocking key generation task died.
    #[error("the key generation task failed")]
    GenerateKeyTask {
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },

    /// Building the key Secret manifest failed.
    #[error("building the key Secret manifest failed")]
    RenderKeySecret {
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// Storing a newly generated key failed.
    #[error("creating a key Secret in namespace {namespace} failed")]
    CreateKey {
        /// The controller namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// No Kubernetes client configuration could be found.
    #[error("no Kubernetes configuration found (in-cluster service account or kubeconfig)")]
    KubeConfig {
        /// Why.
        #[source]
        source: kube::config::InferConfigError,
    },

    /// The Kubernetes client could not be built.
    #[error("building the Kubernetes client failed")]
    KubeClient {
        /// Why.
        #[source]
        source: kube::Error,
    },

    /// Flags that contradict each other.
    #[error("invalid flags: {reason}")]
    InvalidConfig {
        /// What is wrong and which flags to change.
        reason: String,
    },

    /// The HTTP server could not listen.
    #[error("listening on {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The HTTP server stopped with an error.
    #[error("the HTTP server failed")]
    Serve {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A short, stable, low-cardinality name for metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::GetSecret { .. } => "get_secret",
            Error::GetSealedSecret { .. } => "get_sealed_secret",
            Error::ApplySecret { .. } | Error::PruneSecret { .. } => "update",
            Error::PatchStatus { .. } => "status",
            Error::NoKeys => "no_keys",
            Error::UnsealTask { .. } => "unseal",
            Error::ListKeys { .. } => "list_keys",
            Error::GenerateKey { .. }
            | Error::GenerateKeyTask { .. }
            | Error::RenderKeySecret { .. }
            | Error::CreateKey { .. } => "key_generation",
            Error::KubeConfig { .. } | Error::KubeClient { .. } => "kube_client",
            Error::InvalidConfig { .. } => "config",
            Error::Bind { .. } | Error::Serve { .. } => "http",
        }
    }

    /// The API server's error, for errors that carry one.
    pub fn api_status(&self) -> Option<&kube::core::Status> {
        match self {
            Error::GetSecret { source, .. }
            | Error::GetSealedSecret { source, .. }
            | Error::ApplySecret { source, .. }
            | Error::PruneSecret { source, .. }
            | Error::PatchStatus { source, .. }
            | Error::ListKeys { source, .. }
            | Error::CreateKey { source, .. } => match source {
                kube::Error::Api(status) => Some(status),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
