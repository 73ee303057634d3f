//! What the controller remembers about each SealedSecret between reconciles: the inputs its
//! last outcome was computed from, the key that unsealed it, what was reported, transient
//! failures in a row, and a status write the cache may not show yet.
//!
//! A recreated object (same key, new UID) starts afresh.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sealbox_crds::SealedSecretStatus;
use sealbox_crypto::Fingerprint;

use crate::object::ObjectKey;

/// What the controller remembers about one SealedSecret between reconciles.
#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    pub(super) uid: String,
    /// Digest of the inputs the last outcome was computed from.
    pub(super) digest: u64,
    /// The key that last unsealed the object.
    pub(super) key: Option<Fingerprint>,
    /// The last outcome reported (event and status).
    pub(super) reported: Option<Reported>,
    /// Transient failures in a row.
    pub(super) failures: u32,
    /// The key-set epoch at which unsealing the inputs of `digest` failed (and was reported):
    /// until the object or the keys change, trying again cannot succeed.
    pub(super) unseal_failed_at: Option<u64>,
    /// The status last written, until the cache shows it.
    pub(super) written_status: Option<Box<WrittenStatus>>,
    /// Retries ran out (--max-unseal-retries) for these inputs and keys: the reconciles our
    /// own status write and other unrelated changes bring are not a new round.
    pub(super) gave_up: Option<GaveUp>,
}

/// What the controller gave up on, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GaveUp {
    /// The inputs' digest then.
    pub(super) digest: u64,
    /// The key-set epoch then.
    pub(super) key_epoch: u64,
    pub(super) at: std::time::Instant,
}

impl GaveUp {
    /// Whether the controller still gives up on inputs of `digest` at key epoch `key_epoch` at
    /// `now`: unless they changed or a resync period (`resync`; zero for never) has passed.
    pub(super) fn holds(
        &self,
        digest: u64,
        key_epoch: u64,
        now: std::time::Instant,
        resync: std::time::Duration,
    ) -> bool {
        self.digest == digest
            && self.key_epoch == key_epoch
            && (resync.is_zero() || now.saturating_duration_since(self.at) < resync)
    }
}

impl Memory {
    /// Nothing remembered yet about the object with `uid`.
    fn new(uid: &str) -> Memory {
        Memory {
            uid: uid.to_owned(),
            ..Memory::default()
        }
    }
}

/// A status write the cache may not have seen yet.
#[derive(Debug, Clone)]
pub(super) struct WrittenStatus {
    /// The object's resourceVersion just before the write: while the cache still shows this
    /// version, it predates the write.
    pub(super) version: Option<String>,
    pub(super) status: SealedSecretStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reported {
    /// The Secret matched; its resourceVersion then.
    Synced { secret_version: Option<String> },
    /// This failure was reported.
    Failed { message: String },
}

/// Every SealedSecret's [`Memory`], by key.
#[derive(Debug, Default)]
pub(super) struct Memories(Mutex<HashMap<ObjectKey, Memory>>);

impl Memories {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKey, Memory>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The memory of `key` for the object with `uid` (a recreated object starts afresh).
    pub(super) fn recall(&self, key: &ObjectKey, uid: &str) -> Memory {
        match self.lock().get(key) {
            Some(memory) if memory.uid == uid => memory.clone(),
            _ => Memory::new(uid),
        }
    }

    /// Changes the memory of `key` for the object with `uid` (a recreated object's memory is
    /// cleared first).
    pub(super) fn update(&self, key: &ObjectKey, uid: &str, f: impl FnOnce(&mut Memory)) {
        let mut map = self.lock();
        let memory = map.entry(key.clone()).or_default();
        if memory.uid != uid {
            *memory = Memory::new(uid);
        }
        f(memory);
    }

    /// Transient failures in a row of `key`, at least 1 (it is asked after a failure).
    pub(super) fn failures(&self, key: &ObjectKey) -> u32 {
        self.lock().get(key).map_or(1, |m| m.failures.max(1))
    }

    /// Keeps the memory of the objects for which `keep(key, uid)` holds.
    pub(super) fn retain(&self, mut keep: impl FnMut(&ObjectKey, &str) -> bool) {
        self.lock().retain(|key, memory| keep(key, &memory.uid));
    }

    /// Forgets `key`.
    pub(super) fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_object_starts_afresh() {
        let memories = Memories::default();
        let key = ObjectKey::new("prod", "db");
        memories.update(&key, "u1", |m| {
            m.digest = 7;
            m.failures = 2;
        });
        assert_eq!(memories.recall(&key, "u1").digest, 7);
        assert_eq!(memories.failures(&key), 2);

        assert_eq!(memories.recall(&key, "u2").digest, 0);
        memories.update(&key, "u2", |m| m.unseal_failed_at = Some(1));
        let recreated = memories.recall(&key, "u2");
        assert_eq!((recreated.digest, recreated.failures), (0, 0));
        assert_eq!(recreated.unseal_failed_at, Some(1));
        assert_eq!(memories.recall(&key, "u1").unseal_failed_at, None);
    }

    #[test]
    fn failures_count_at_least_one_and_forgetting_clears() {
        let memories = Memories::default();
        let key = ObjectKey::new("prod", "db");
        assert_eq!(memories.failures(&key), 1);
        memories.update(&key, "u1", |m| m.digest = 7);
        assert_eq!(memories.failures(&key), 1);

        memories.retain(|_, uid| uid != "u1");
        assert_eq!(memories.recall(&key, "u1").digest, 0);
        memories.update(&key, "u1", |m| m.digest = 7);
        memories.forget(&key);
        assert_eq!(memories.recall(&key, "u1").digest, 0);
    }

    #[test]
    fn giving_up_holds_until_the_inputs_the_keys_or_a_resync_period_change() {
        use std::time::{Duration, Instant};
        let at = Instant::now();
        let gave_up = GaveUp {
            digest: 7,
            key_epoch: 3,
            at,
        };
        let minute = Duration::from_secs(60);
        assert!(gave_up.holds(7, 3, at + Duration::from_secs(59), minute));
        assert!(!gave_up.holds(8, 3, at, minute), "the SealedSecret changed");
        assert!(!gave_up.holds(7, 4, at, minute), "the keys changed");
        assert!(
            !gave_up.holds(7, 3, at + minute, minute),
            "a resync period passed"
        );
        assert!(
            gave_up.holds(7, 3, at + 100 * minute, Duration::ZERO),
            "no resync"
        );
    }
}
