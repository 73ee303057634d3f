//! What every reconcile shares ([`Context`]): the client, the keys, event publishing, the
//! settings the flags chose, the unseal threads, the per-object memory and the owned Secrets'
//! versions; and the count of reconciles running, which shutdown waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use sealbox_crds::SYNCED_CONDITION;

use crate::keys::KeyRegistry;
use crate::metrics::Metrics;
use crate::object::ObjectKey;
use crate::owned::OwnedSecrets;
use crate::pool::UnsealPool;
use crate::reconcile::memory::Memories;

/// Behaviour chosen by flags.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// Write the status subresource.
    pub update_status: bool,
    /// Accept the deprecated `spec.data`.
    pub accept_deprecated_v1_data: bool,
    /// Retries of a transient failure before giving up until the object, the keys or the
    /// resync bring it back (--max-unseal-retries).
    pub max_retries: u32,
    /// --resync-period: how long giving up lasts at most when nothing changes (zero: until
    /// something does).
    pub resync_period: std::time::Duration,
}

/// What every reconcile shares.
pub struct Context {
    pub(super) client: Client,
    pub(super) keys: KeyRegistry,
    /// The namespace of the key Secrets: no SealedSecret produces a Secret loadable as a key.
    pub(super) key_namespace: String,
    /// Warnings go through one `Recorder`, whose cache turns a repeated warning into a series
    /// (it keeps every event for six minutes, with no bound).
    pub(super) recorder: Recorder,
    /// Normal events, one per unsealed object and rarely repeated, bypass that cache: at cold
    /// start it would hold one event per SealedSecret (~2 KB each).
    pub(super) reporter: Reporter,
    pub(super) settings: ReconcileSettings,
    pub(super) unseal_pool: UnsealPool,
    pub(super) memory: Memories,
    /// The process's, fed by its Secret watches ([`caches`](crate::caches)): it outlives terms.
    pub(super) owned: Arc<OwnedSecrets>,
    in_flight: AtomicUsize,
    pub(super) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context unsealing with `keys` (kept in `key_namespace`) on `unseal_threads` threads,
    /// counting in `metrics`, trusting what the Secret watches show in `owned`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        keys: KeyRegistry,
        key_namespace: String,
        reporter: Reporter,
        settings: ReconcileSettings,
        unseal_threads: usize,
        metrics: Arc<Metrics>,
        owned: Arc<OwnedSecrets>,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            keys,
            key_namespace,
            settings,
            unseal_pool: UnsealPool::new(unseal_threads),
            memory: Memories::default(),
            owned,
            in_flight: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Reconciles running right now (shutdown waits for them, not for queued ones).
    pub fn reconciles_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The key registry.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// Forgets objects that no longer exist, and their condition metric.
    pub fn retain_objects(&self, live: impl Fn(&ObjectKey, &str) -> bool) {
        self.memory.retain(|key, uid| {
            let keep = live(key, uid);
            if !keep {
                self.metrics
                    .forget_condition(&key.namespace, &key.name, SYNCED_CONDITION);
            }
            keep
        });
    }

    /// Forgets a SealedSecret that was deleted, and its condition metric.
    pub fn forget(&self, key: &ObjectKey) {
        self.memory.forget(key);
        self.metrics
            .forget_condition(&key.namespace, &key.name, SYNCED_CONDITION);
    }
}

/// Counts a running reconcile until dropped.
pub(super) struct InFlight(Arc<Context>);

impl InFlight {
    pub(super) fn enter(ctx: &Arc<Context>) -> Self {
        ctx.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(ctx.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
