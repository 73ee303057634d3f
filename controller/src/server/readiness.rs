//! Whether this replica is ready ([`Readiness`]): what `/readyz` answers, set by the leader
//! election (leading or not) and the watch (caches synced).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::keys::KeyRegistry;

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

    /// This replica starts or stops leading (reconciling). The caches outlive terms
    /// ([`caches`](crate::caches)): a new term finds them synced.
    pub fn set_leading(&self, leading: bool) {
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
