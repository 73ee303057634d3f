//! The process-wide key registry: the current [`Keys`] snapshot, swapped atomically when the key
//! Secrets change, and a change signal reconciles and HTTP handlers subscribe to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use sealbox_crypto::key_order::KeyOrder;
use tokio::sync::watch;

use super::{KeyEntry, Keys, PrivateKeyOps};

/// Shared handle to the loaded keys. Cloning is cheap; all clones see the same keys.
#[derive(Clone, Debug)]
pub struct KeyRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: RwLock<Arc<Keys>>,
    ops: Arc<PrivateKeyOps>,
    /// Which key is the newest (--key-order-priority).
    order: KeyOrder,
    /// Bumped every time the set of keys changes; the value is the number of changes so far.
    changes: watch::Sender<u64>,
    /// Set once the key Secrets have been listed for the first time.
    loaded: AtomicBool,
}

impl Default for KeyRegistry {
    fn default() -> Self {
        KeyRegistry::new()
    }
}

impl KeyRegistry {
    /// An empty registry ordering keys by certificate NotBefore; nothing is loaded yet.
    pub fn new() -> KeyRegistry {
        KeyRegistry::ordered_by(KeyOrder::CertNotBefore)
    }

    /// An empty registry whose newest key (the one that seals) is the newest by `order`.
    pub fn ordered_by(order: KeyOrder) -> KeyRegistry {
        let ops = Arc::new(PrivateKeyOps::default());
        let (changes, _) = watch::channel(0);
        KeyRegistry {
            inner: Arc::new(Inner {
                current: RwLock::new(Arc::new(Keys::new(Vec::new(), ops.clone()))),
                ops,
                order,
                changes,
                loaded: AtomicBool::new(false),
            }),
        }
    }

    /// A registry holding `entries` from the start (tests, offline tools).
    pub fn with_entries(entries: Vec<KeyEntry>) -> KeyRegistry {
        let registry = KeyRegistry::new();
        registry.replace(entries);
        registry
    }

    /// The keys as they are now. The snapshot never changes; a reload makes a new one.
    pub fn snapshot(&self) -> Arc<Keys> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys and marks the registry loaded; returns whether the set of keys changed
    /// (and so whether subscribers were told).
    pub fn replace(&self, entries: Vec<KeyEntry>) -> bool {
        let next = Keys::ordered(entries, self.inner.ops.clone(), self.inner.order);
        let changed = {
            let mut current = self
                .inner
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let changed = !current.same_keys(&next);
            if changed {
                *current = Arc::new(next);
            }
            changed
        };
        self.inner.loaded.store(true, Ordering::Release);
        if changed {
            self.inner.changes.send_modify(|n| *n += 1);
        }
        changed
    }

    /// Whether the key Secrets have been read at least once.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Whether a key is loaded and the registry can unseal (and seal).
    pub fn is_ready(&self) -> bool {
        self.is_loaded() && !self.snapshot().is_empty()
    }

    /// How many times the set of keys has changed: equal epochs mean the same keys.
    pub fn epoch(&self) -> u64 {
        *self.inner.changes.borrow()
    }

    /// A receiver that wakes whenever the set of keys changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// RSA private-key operations performed with this registry's keys so far.
    pub fn private_key_operations(&self) -> u64 {
        self.inner.ops.get()
    }
}
