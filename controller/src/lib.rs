//! sealbox-controller: the in-cluster controller that turns SealedSecrets into Secrets.
//!
//! It owns the sealing keys (Bitnami's key-Secret format, in its own namespace), unseals each
//! SealedSecret with kube-rs's `Controller`, keeps the resulting Secret as the SealedSecret says
//! (drift is corrected), reports status and events, serves Bitnami's HTTP API
//! (`/v1/cert.pem`, `/v1/verify`, `/v1/rotate`) and probes, and exposes Prometheus metrics.
//! Replicas elect one leader through a Lease: only it reconciles and renews keys; every replica
//! keeps the SealedSecret and owned-Secret caches warm ([`caches`]), so a new leader starts
//! reconciling at once.
//!
//! Layout: decisions are pure functions tested without IO ([`desired`], [`unseal`],
//! [`template`], [`ownership`], [`status`], [`reseal`], [`keys::Keys`], the proof of authorship
//! on written Secrets ([`authorship`]), and in the reconcile loop whether unsealing can be
//! skipped); the IO shell is thin ([`reconcile`], [`controller`],
//! [`keys::lifecycle`], [`leader`], [`server`], [`metrics`], the API server request ceiling
//! [`client_rate`]). Names they all share (the field
//! manager, [`object::ObjectKey`], the error-chain helper) live below them in [`object`]; a
//! SealedSecret as the watch caches it, and how one is parsed, in [`watched`]. The binary in `main.rs` only parses flags, sets up logging and
//! calls [`run`].
//!
//! Depends on `sealbox-crypto` for every RSA operation and on `sealbox-crds` for the resource
//! types; never on the CLI or on test code.

pub mod authorship;
pub mod bounds;
pub mod caches;
pub mod client_rate;
pub mod controller;
pub mod desired;
pub mod error;
pub mod flag_env;
pub mod flags;
pub mod incarnation;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod object;
pub mod owned;
pub mod ownership;
pub mod pool;
pub mod reconcile;
pub mod reseal;
pub mod resync;
pub mod server;
pub mod status;
pub mod template;
pub mod unseal;
pub mod watched;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::Client;
use kube::runtime::events::Reporter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use error::{Error, Result};
pub use flags::Config;
pub use keys::KeyRegistry;
pub use metrics::Metrics;
pub use object::FIELD_MANAGER;

use crate::caches::{Caches, WatchSettings};
use crate::keys::lifecycle::{self, KeySettings};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::reconcile::{Context, ReconcileSettings};
use crate::server::{ApiSettings, Readiness, ServerState};

/// The name events are reported under.
pub const REPORTING_CONTROLLER: &str = "sealbox-controller";

/// A started controller: its HTTP and metrics servers, key watch, leader election and (while
/// leading) reconcilers and key renewal run in the background until [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    metrics_addr: SocketAddr,
    identity: Option<String>,
    keys: KeyRegistry,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    terms: Arc<AtomicU64>,
    rotate: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    metrics_server: JoinHandle<()>,
}

impl Running {
    /// The address the HTTP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the metrics server listens on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The sealing keys.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// The metrics `/metrics` exposes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This replica's name in the leader-election Lease (`None` without leader election).
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Whether this replica leads: reconciles SealedSecrets and renews keys. Always true
    /// without leader election.
    pub fn is_leader(&self) -> bool {
        self.readiness.is_leading()
    }

    /// How many leader terms this replica has begun (each starts reconcilers over the warm
    /// caches; without leader election, one).
    pub fn leader_terms(&self) -> u64 {
        self.terms.load(Ordering::Acquire)
    }

    /// Whether the SealedSecret caches have listed once. They are kept warm for the life of
    /// the process, also while another replica leads.
    pub fn caches_synced(&self) -> bool {
        self.readiness.caches_synced()
    }

    /// What `/readyz` answers: a key is loaded and, on the leader, the caches have synced.
    pub fn is_ready(&self) -> bool {
        self.readiness.not_ready_because(&self.keys).is_none()
    }

    /// Generates a new sealing key now, as SIGUSR1 does (on the leader; elsewhere nothing).
    pub fn rotate_now(&self) {
        self.rotate.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves if the HTTP server stops on its own (it only does if its task dies).
    pub async fn server_stopped(&mut self) -> Result<()> {
        (&mut self.server).await.map_err(|join| Error::Serve {
            source: std::io::Error::other(join),
        })
    }

    /// Stops everything gracefully: running reconciles finish, then a leader releases its Lease
    /// so another replica takes over at once; the servers drain.
    pub async fn shutdown(self) -> Result<()> {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.metrics_server.await;
        self.server.await.map_err(|join| Error::Serve {
            source: std::io::Error::other(join),
        })
    }

    /// Stops at once, as a crash would: nothing drains and the Lease is not released, so
    /// another replica takes over only when it expires. For failover tests and demos.
    pub fn kill(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.server.abort();
        self.metrics_server.abort();
    }
}

/// Starts the controller against `client`. The HTTP server listens before anything else, so
/// `/healthz` answers while the first key is generated. Every replica watches the keys, the
/// SealedSecrets and their Secrets (read-only, so that a replica that becomes the leader starts
/// reconciling at once) and serves the HTTP API; with `--leader-elect` only the elected one
/// reconciles and renews keys.
pub async fn start(client: Client, config: &Config) -> Result<Running> {
    config
        .validate()
        .map_err(|reason| Error::InvalidConfig { reason })?;
    // Lease renewals bypass the ceiling: a backlog of reconciles must not cost the leadership
    // (a renewal queued behind it would miss --leader-elect-renew-deadline).
    let lease_client = client.clone();
    let client = match config.client_rate() {
        Some(rate) => client_rate::limit(client, rate),
        None => client,
    };
    let (listener, local_addr) = bind(config.listen_addr).await?;
    let (metrics_listener, metrics_addr) = bind(config.listen_metrics_addr).await?;
    let (stop, stopped) = watch::channel(false);
    let (rotate, rotate_requests) = watch::channel(0u64);
    let keys = KeyRegistry::ordered_by(config.key_order());
    let readiness = Readiness::default();
    let metrics = Arc::new(Metrics::new(keys.clone()));
    if config.metrics_omit_secret_labels {
        metrics.omit_conditions();
    }

    let state = ServerState::new(
        keys.clone(),
        readiness.clone(),
        metrics.clone(),
        ApiSettings::from_config(config),
    );
    let server = spawn_server(listener, server::router(state), config, &stopped);
    let metrics_router = metrics::router(metrics.clone());
    let metrics_server = spawn_server(metrics_listener, metrics_router, config, &stopped);
    info!(addr = %local_addr, metrics_addr = %metrics_addr, "HTTP servers listening");

    let namespace = config.controller_namespace();
    let identity = config.leader_elect.then(|| {
        config
            .leader_elect_identity
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(leader::default_identity)
    });
    let elector = identity.clone().map(|identity| {
        LeaderElector::new(
            lease_client.clone(),
            LeaseSettings {
                namespace: config.lease_namespace(),
                name: config.leader_elect_resource_name.clone(),
                identity,
                lease_duration: config.leader_elect_lease_duration,
                renew_deadline: config.leader_elect_renew_deadline,
                retry_period: config.leader_elect_retry_period,
            },
        )
    });
    let watch_settings = watch_settings(config);
    let (caches, cache_tasks) =
        Caches::start(&client, &watch_settings, readiness.clone(), &stopped);
    let terms = Arc::new(AtomicU64::new(0));
    let work = LeaderWork {
        client: client.clone(),
        caches,
        terms: terms.clone(),
        keys: keys.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        key_settings: key_settings(config, &namespace),
        rotate_requests,
        reconcile_settings: ReconcileSettings {
            update_status: config.update_status,
            accept_deprecated_v1_data: config.accept_deprecated_v1_data,
            max_retries: config.unseal_retries(),
            resync_period: config.resync_period,
        },
        watch_settings,
    };

    let mut tasks = vec![
        tokio::spawn(lifecycle::watch_keys(
            client,
            namespace,
            keys.clone(),
            stopped.clone(),
        )),
        tokio::spawn(lead(work, elector, stopped)),
    ];
    tasks.extend(cache_tasks);

    Ok(Running {
        local_addr,
        metrics_addr,
        identity,
        keys,
        readiness,
        metrics,
        terms,
        rotate,
        stop,
        tasks,
        server,
        metrics_server,
    })
}

/// How keys are stored and renewed, as the flags say.
fn key_settings(config: &Config, namespace: &str) -> KeySettings {
    KeySettings {
        namespace: namespace.to_owned(),
        key_prefix: config.key_prefix.clone(),
        key_bits: config.key_size,
        common_name: config.my_cn.clone(),
        validity: config.key_ttl,
        renew_period: config.key_renew_period,
        cutoff: config.key_cutoff_time,
        labels: config.key_labels(),
        annotations: config.key_annotations(),
    }
}

/// Which SealedSecrets to reconcile, and how many at once, as the flags say.
fn watch_settings(config: &Config) -> WatchSettings {
    WatchSettings {
        namespaces: config.watched_namespaces(),
        label_selector: config.label_selector.clone(),
        concurrency: config.reconcile_concurrency,
        skip_recreate: config.skip_recreate,
        resync_period: config.resync_period,
    }
}

/// Serves `router` on `listener` with the flags' timeouts and connection limit until `stop`
/// turns true.
fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    config: &Config,
    stop: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(server::serve(
        listener,
        router,
        config.read_timeout,
        config.max_connections.into(),
        stop.clone(),
    ))
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    Ok((listener, local))
}

/// What only the leader does: reconcile SealedSecrets (over the process's caches) and
/// generate keys.
struct LeaderWork {
    client: Client,
    caches: Caches,
    terms: Arc<AtomicU64>,
    keys: KeyRegistry,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    key_settings: KeySettings,
    rotate_requests: watch::Receiver<u64>,
    reconcile_settings: ReconcileSettings,
    watch_settings: WatchSettings,
}

impl LeaderWork {
    /// Starts one term's tasks; they stop gracefully when `stop` turns true.
    fn start(&self, stop: watch::Receiver<bool>) -> Term {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        self.terms.fetch_add(1, Ordering::AcqRel);
        // A fresh context each term: what another leader did meanwhile is read from the API
        // (the caches only tell what changed; each Secret's proof says who wrote it).
        let ctx = Arc::new(Context::new(
            self.client.clone(),
            self.keys.clone(),
            self.key_settings.namespace.clone(),
            reporter,
            self.reconcile_settings,
            unseal_parallelism(),
            self.metrics.clone(),
            self.caches.owned_secrets().clone(),
        ));
        let caches = self.caches.clone();
        let watch_settings = self.watch_settings.clone();
        Term(vec![
            tokio::spawn(lifecycle::renew_keys(
                self.client.clone(),
                self.key_settings.clone(),
                self.keys.clone(),
                self.rotate_requests.clone(),
                stop.clone(),
            )),
            tokio::spawn(async move {
                controller::run(ctx, &caches, &watch_settings, stop).await;
            }),
        ])
    }

    fn set_leading(&self, leading: bool) {
        self.readiness.set_leading(leading);
        self.metrics.set_leader(leading);
        if !leading {
            // The next leader reports conditions; stale series here would contradict it.
            self.metrics.forget_all_conditions();
        }
    }
}

/// One term's tasks, aborted if dropped (also when the task holding them is aborted).
struct Term(Vec<JoinHandle<()>>);

impl Term {
    async fn join(mut self) {
        for task in std::mem::take(&mut self.0) {
            let _ = task.await;
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs leader work while this replica leads (always, without an elector) until `shutdown`.
/// Losing leadership aborts the work at once; shutdown lets running reconciles finish and only
/// then releases the Lease.
async fn lead(
    work: LeaderWork,
    elector: Option<LeaderElector>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (leading_tx, mut leading) = watch::channel(elector.is_none());
    let (campaign_stop, campaign_stopped) = watch::channel(false);
    let campaign = async move {
        match elector {
            Some(elector) => elector.run(leading_tx, campaign_stopped).await,
            None => {
                let mut stopped = campaign_stopped;
                let _ = stopped.wait_for(|s| *s).await;
                drop(leading_tx);
            }
        }
    };
    let terms = async move {
        loop {
            tokio::select! {
                became = leading.wait_for(|l| *l) => if became.is_err() { break },
                _ = shutdown.wait_for(|s| *s) => break,
            }
            work.set_leading(true);
            let (term_stop, term_stopped) = watch::channel(false);
            let term = work.start(term_stopped);
            let shutting_down = tokio::select! {
                _ = leading.wait_for(|l| !*l) => false,
                _ = shutdown.wait_for(|s| *s) => true,
            };
            if shutting_down {
                term_stop.send_replace(true);
                term.join().await;
                work.set_leading(false);
                break;
            }
            drop(term);
            work.set_leading(false);
            warn!("no longer the leader: stopped reconciling and renewing keys");
        }
        campaign_stop.send_replace(true);
    };
    tokio::join!(campaign, terms);
}

/// Connects with the in-cluster service account or the local kubeconfig. [`start`] puts the
/// --kubeclient-qps ceiling in front of it.
pub async fn client() -> Result<Client> {
    let config = kube::Config::infer()
        .await
        .map_err(|source| Error::KubeConfig { source })?;
    Client::try_from(config).map_err(|source| Error::KubeClient { source })
}

/// Runs the controller until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> Result<()> {
    config
        .validate()
        .map_err(|reason| Error::InvalidConfig { reason })?;
    let client = client().await?;
    let mut running = start(client, &config).await?;
    let mut rotate_signal = rotate_signal();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            result = running.server_stopped() => return result,
            Some(()) = rotate_signal.recv() => {
                if running.is_leader() {
                    running.rotate_now();
                } else {
                    warn!("SIGUSR1 ignored: only the leader generates keys; signal the leader's pod");
                }
            }
        }
    }
    info!("shutting down");
    running.shutdown().await
}

/// SIGUSR1, on which Bitnami's controller generates a new key; a channel that never yields
/// where there is no such signal.
fn rotate_signal() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::user_defined1()) {
            Ok(mut usr1) => {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        let _ = tx.try_send(());
                    }
                });
            }
            Err(e) => warn!(error = %e, "cannot listen for SIGUSR1: rotating by signal is off"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
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

/// How many threads unseal: one per core, plus one so that a job is always ready when a core
/// frees up (cold start of 4,000 SealedSecrets on 2 cores, in process: 0.81 of the raw
/// private-key rate with 2 threads, 0.85 with 3; see BENCHMARKS.md).
fn unseal_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) + 1
}
