//! sealbox-controller: the in-cluster controller that turns SealedSecrets into Secrets.
//!
//! It owns the sealing keys (Bitnami's key-Secret format, in its own namespace), unseals each
//! SealedSecret with kube-rs's `Controller`, keeps the resulting Secret as the SealedSecret says
//! (drift is corrected), reports status and events, and serves `/healthz` and `/readyz`.
//!
//! Layout: decisions are pure functions tested without IO ([`desired`], [`unseal`],
//! [`template`], [`ownership`], [`status`], [`keys::Keys`]); the IO shell is thin
//! ([`reconcile`], [`controller`], [`keys::lifecycle`], [`server`]). The binary in `main.rs`
//! only parses flags, sets up logging and calls [`run`].
//!
//! Depends on `sealbox-crypto` for every RSA operation and on `sealbox-crds` for the resource
//! types; never on the CLI or on test code.

pub mod cli;
pub mod controller;
pub mod desired;
pub mod error;
pub mod keys;
pub mod ownership;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod template;
pub mod unseal;

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use cli::Config;
pub use error::{Error, Result};
pub use keys::KeyRegistry;
pub use reconcile::FIELD_MANAGER;

use crate::controller::WatchSettings;
use crate::keys::lifecycle::{self, KeySettings};
use crate::reconcile::{Context, ReconcileSettings};
use crate::server::{Readiness, ServerState};

/// The name events are reported under.
pub const REPORTING_CONTROLLER: &str = "sealbox-controller";

/// A started controller: its HTTP server, key lifecycle and reconcilers run in the background
/// until [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    keys: KeyRegistry,
    readiness: Readiness,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<Result<()>>,
}

impl Running {
    /// The address the HTTP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The sealing keys.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// Whether keys are loaded and caches synced (what `/readyz` answers).
    pub fn is_ready(&self) -> bool {
        self.keys.is_ready() && self.readiness.caches_synced()
    }

    /// Resolves if the HTTP server stops on its own (it only does on an error).
    pub async fn server_stopped(&mut self) -> Result<()> {
        match (&mut self.server).await {
            Ok(result) => result,
            Err(join) => Err(Error::Serve {
                source: std::io::Error::other(join),
            }),
        }
    }

    /// Stops everything gracefully: in-flight reconciles finish, the server drains.
    pub async fn shutdown(self) -> Result<()> {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
        match self.server.await {
            Ok(result) => result,
            Err(join) => Err(Error::Serve {
                source: std::io::Error::other(join),
            }),
        }
    }
}

/// Starts the controller against `client`. The HTTP server listens before anything else, so
/// `/healthz` answers while the first key is generated.
pub async fn start(client: Client, config: &Config) -> Result<Running> {
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen_addr,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen_addr,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let keys = KeyRegistry::new();
    let readiness = Readiness::default();

    let state = ServerState {
        keys: keys.clone(),
        readiness: readiness.clone(),
    };
    let server = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            axum::serve(listener, server::router(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
                .map_err(|source| Error::Serve { source })
        })
    };
    info!(addr = %local_addr, "HTTP server listening");

    let namespace = config.controller_namespace();
    let key_settings = KeySettings {
        namespace: namespace.clone(),
        key_prefix: config.key_prefix.clone(),
        key_bits: config.key_size,
        common_name: config.my_cn.clone(),
        renew_period: config.key_renew_period,
        cutoff: config.key_cutoff_time,
    };
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        keys.clone(),
        Recorder::new(client.clone(), reporter),
        ReconcileSettings {
            update_status: config.update_status,
            accept_deprecated_v1_data: config.accept_deprecated_v1_data,
        },
        std::thread::available_parallelism().map_or(1, usize::from),
    ));
    let watch_settings = WatchSettings {
        namespaces: config.watched_namespaces(),
        label_selector: config.label_selector.clone(),
        concurrency: config.reconcile_concurrency,
    };

    let tasks = vec![
        tokio::spawn(lifecycle::watch_keys(
            client.clone(),
            namespace,
            keys.clone(),
            stopped.clone(),
        )),
        tokio::spawn(lifecycle::renew_keys(
            client.clone(),
            key_settings,
            keys.clone(),
            stopped.clone(),
        )),
        tokio::spawn(controller::run(
            client,
            ctx,
            watch_settings,
            readiness.clone(),
            stopped,
        )),
    ];

    Ok(Running {
        local_addr,
        keys,
        readiness,
        stop,
        tasks,
        server,
    })
}

/// Connects with the in-cluster service account or the local kubeconfig. kube-rs applies no
/// client-side rate limit, so a cold start with thousands of SealedSecrets is not throttled.
pub async fn client() -> Result<Client> {
    let config = kube::Config::infer()
        .await
        .map_err(|source| Error::KubeConfig { source })?;
    Client::try_from(config).map_err(|source| Error::KubeClient { source })
}

/// Runs the controller until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> Result<()> {
    let client = client().await?;
    let mut running = start(client, &config).await?;
    tokio::select! {
        _ = shutdown_signal() => info!("shutting down"),
        result = running.server_stopped() => return result,
    }
    running.shutdown().await
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
