//! The resourceVersion of every Secret a SealedSecret controls, as the Secret watch last showed
//! it.
//!
//! Each write of the controller comes back as watch events (the Secret it applied, the status
//! it patched), and each of them queues another reconcile of the object. When the Secret is
//! still at the version the controller wrote, that reconcile has nothing to do, and this map
//! lets it know without asking the API server. Anything else (the watch has not caught up yet,
//! the Secret changed, it is gone) falls back to asking.
//!
//! A watch that has to list again (after a 410 Gone, or a list that failed) may have missed
//! anything: from the moment it starts listing until the list is complete, nothing it showed
//! before is trusted, and once the list is complete, the SealedSecrets whose Secrets are
//! missing from it are handed back to be reconciled (a relist reports no deletions: client-go
//! informers deliver these as "deleted, final state unknown"). Secrets that changed meanwhile
//! come in the list and trigger their SealedSecrets as any change does.
//!
//! A reconcile also learns of Secrets from the API server itself (it reads the Secret, or writes
//! it) and then waits for a change. When it did so before a watch's list was taken, a deletion
//! between its read and the list shows in neither the list nor any later event: a new leader
//! term's reconciles run while its Secret watch still lists, and a Secret deleted meanwhile was
//! never restored. So the Secrets a reconcile found while a watch of its namespace was listing
//! are kept aside ([`OwnedSecrets::found`]) and their owners handed back too when the completed
//! list does not show them; and a reconcile that read before a list completed and reported
//! after it is told to look again.
//!
//! Only Secrets with a SealedSecret as controller, or with the controller's proof of authorship
//! ([`authorship`](crate::authorship): one written without an ownerReference), are kept: a
//! cluster's other Secrets cost nothing here. Once a watch has listed its namespace (and is not
//! listing again), a Secret it does not show is one the controller has not written (as far as
//! the watch knows): there is no proof to read before unsealing.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use kube::{Resource as _, ResourceExt as _};
use sealbox_crds::SealedSecret;

use crate::authorship::PROOF_ANNOTATION;
use crate::object::ObjectKey;

/// What the watch showed of one owned Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    version: String,
    /// The SealedSecret named by its controller ownerReference.
    owner: String,
}

type Versions = HashMap<ObjectKey, Owned>;

/// Owned Secrets' resourceVersions, by `(namespace, name)`.
#[derive(Debug, Default)]
pub struct OwnedSecrets {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    current: Versions,
    /// Per watch (by namespace; `None` for all) that is listing again: what it listed so far,
    /// which replaces what `current` holds in its namespace when the list is complete (Secrets
    /// missing from it were deleted meanwhile). While a watch lists, `current` is not trusted
    /// in its namespace.
    relisting: HashMap<Option<String>, Versions>,
    /// The watches (by namespace; `None` for all) that have listed once.
    listed: HashSet<Option<String>>,
    /// Secrets a reconcile found through the API while a watch of their namespace was listing,
    /// with the SealedSecret that owns each: checked against the completed list.
    found: Versions,
    /// Lists completed so far, by any watch (see [`ListMark`]).
    lists_completed: u64,
}

/// Where the watches' lists stood when a reconcile began ([`OwnedSecrets::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMark(u64);

impl Inner {
    /// Whether a watch that covers `namespace` is listing again.
    fn relisting(&self, namespace: &str) -> bool {
        self.relisting
            .keys()
            .any(|scope| scope.as_deref().is_none_or(|watched| watched == namespace))
    }
}

impl OwnedSecrets {
    /// Takes in one event of the Secret metadata watch of `namespace` (`None`: all of them).
    /// Returns the SealedSecrets to reconcile because the event says their Secrets went
    /// missing unseen: those of Secrets a completed relist no longer shows.
    pub fn observe(
        &self,
        namespace: Option<&str>,
        event: &Event<PartialObjectMeta<Secret>>,
    ) -> Vec<ObjectKey> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = namespace.map(str::to_owned);
        match event {
            // Sent when a (re)list starts, again after each failed attempt.
            Event::Init => {
                inner.relisting.insert(scope, Versions::new());
            }
            Event::InitApply(secret) => {
                if let Some(listed) = inner.relisting.get_mut(&scope) {
                    record(listed, secret);
                }
            }
            Event::InitDone => {
                if let Some(listed) = inner.relisting.remove(&scope) {
                    inner.listed.insert(scope);
                    inner.lists_completed += 1;
                    let found = take_in_scope(&mut inner.found, namespace);
                    let mut missing = missing_from(&found, namespace, &listed);
                    missing.extend(replace(&mut inner.current, namespace, listed));
                    missing.sort();
                    missing.dedup();
                    return missing;
                }
            }
            Event::Apply(secret) => record(&mut inner.current, secret),
            Event::Delete(secret) => {
                inner.current.remove(&key(secret));
            }
        }
        Vec::new()
    }

    /// The version at which the watch last showed the Secret `key`, controlled by a
    /// SealedSecret; `None` when it does not know of one, or while its watch lists again.
    pub fn version(&self, key: &ObjectKey) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.relisting(&key.namespace) {
            return None;
        }
        inner.current.get(key).map(|owned| owned.version.clone())
    }

    /// Where the lists stand now: taken by a reconcile before it reads the Secret.
    pub fn mark(&self) -> ListMark {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        ListMark(inner.lists_completed)
    }

    /// A reconcile that began at `mark` found the Secret `key`, owned by SealedSecret `owner`,
    /// through the API server (read or written it) and is about to wait for a change. While a
    /// watch of its namespace lists, the Secret is kept aside and its
    /// owner handed back if the completed list does not show it. Returns whether the reconcile
    /// must look again soon instead: a list completed since `mark` and does not show the
    /// Secret (it may have been taken after the Secret was deleted).
    pub fn found(&self, key: &ObjectKey, owner: &str, mark: ListMark) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // (No watch lists before its first event: with --skip-recreate there is none, and
        // nothing is kept.)
        if inner.relisting(&key.namespace) {
            let owned = Owned {
                // Not compared: only whether the list shows the Secret matters.
                version: String::new(),
                owner: owner.to_owned(),
            };
            inner.found.insert(key.clone(), owned);
            return false;
        }
        mark.0 != inner.lists_completed && !inner.current.contains_key(key)
    }

    /// Whether a watch of `namespace` (or of all) has listed its Secrets once and is not listing
    /// again.
    pub fn listed(&self, namespace: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        !inner.relisting(namespace)
            && (inner.listed.contains(&None) || inner.listed.contains(&Some(namespace.to_owned())))
    }

    /// Whether the watch last showed the Secret `key` at `version`.
    #[cfg(test)]
    fn is_at(&self, key: &ObjectKey, version: &str) -> bool {
        self.version(key).is_some_and(|seen| seen == version)
    }

    /// How many Secrets are known.
    #[cfg(test)]
    fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.current.len()
    }
}

/// Replaces what `current` holds in `namespace` (`None`: everywhere) with a complete list;
/// returns the owners of the Secrets it held there that the list does not.
fn replace(current: &mut Versions, namespace: Option<&str>, listed: Versions) -> Vec<ObjectKey> {
    let in_scope = |key: &ObjectKey| namespace.is_none_or(|watched| watched == key.namespace);
    let mut missing = HashSet::new();
    current.retain(|key, owned| {
        if !in_scope(key) {
            return true;
        }
        if !listed.contains_key(key) {
            missing.insert(ObjectKey::new(key.namespace.clone(), owned.owner.clone()));
        }
        false
    });
    current.extend(listed);
    let mut missing: Vec<ObjectKey> = missing.into_iter().collect();
    missing.sort();
    missing
}

/// Removes and returns the entries of `versions` in `namespace` (`None`: everywhere).
fn take_in_scope(versions: &mut Versions, namespace: Option<&str>) -> Versions {
    let in_scope = |key: &ObjectKey| namespace.is_none_or(|watched| watched == key.namespace);
    let (taken, kept) = std::mem::take(versions)
        .into_iter()
        .partition(|(key, _)| in_scope(key));
    *versions = kept;
    taken
}

/// The owners of the Secrets in `known` (in `namespace`) that `listed` does not show.
fn missing_from(known: &Versions, namespace: Option<&str>, listed: &Versions) -> Vec<ObjectKey> {
    known
        .iter()
        .filter(|(key, _)| namespace.is_none_or(|watched| watched == key.namespace))
        .filter(|(key, _)| !listed.contains_key(key))
        .map(|(key, owned)| ObjectKey::new(key.namespace.clone(), owned.owner.clone()))
        .collect()
}

fn key(secret: &PartialObjectMeta<Secret>) -> ObjectKey {
    ObjectKey::new(secret.namespace().unwrap_or_default(), secret.name_any())
}

/// Keeps the version of a Secret a SealedSecret controls or the controller proves it wrote;
/// forgets any other (one that lost its controller reference must not look unchanged).
fn record(versions: &mut Versions, secret: &PartialObjectMeta<Secret>) {
    let owner = secret.owner_references().iter().find(|owner| {
        owner.controller == Some(true)
            && owner.kind == "SealedSecret"
            && owner.api_version.split('/').next() == Some(SealedSecret::group(&()).as_ref())
    });
    // A Secret written without an ownerReference (skip-set-owner-references) carries the proof
    // and, as every Secret of a SealedSecret, its name.
    let owner = match owner {
        Some(owner) => Some(owner.name.clone()),
        None if secret.annotations().contains_key(PROOF_ANNOTATION) => Some(secret.name_any()),
        None => None,
    };
    match (owner, secret.resource_version()) {
        (Some(owner), Some(version)) => {
            versions.insert(key(secret), Owned { version, owner });
        }
        _ => {
            versions.remove(&key(secret));
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn secret(name: &str, version: &str, owner_kind: Option<&str>) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("prod".to_owned()),
                resource_version: Some(version.to_owned()),
                owner_references: owner_kind.map(|kind| {
                    vec![OwnerReference {
                        api_version: "bitnami.com/v1alpha1".to_owned(),
                        kind: kind.to_owned(),
                        name: name.to_owned(),
                        uid: "u1".to_owned(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            _phantom: Default::default(),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("prod", name)
    }

    #[test]
    fn follows_owned_secrets_through_changes_and_deletion() {
        let owned = OwnedSecrets::default();
        owned.observe(None, &Event::Apply(secret("db", "5", Some("SealedSecret"))));
        assert!(owned.is_at(&key("db"), "5"));
        assert!(!owned.is_at(&key("db"), "4"));

        owned.observe(None, &Event::Apply(secret("db", "9", Some("SealedSecret"))));
        assert!(!owned.is_at(&key("db"), "5"));
        assert!(owned.is_at(&key("db"), "9"));

        owned.observe(
            None,
            &Event::Delete(secret("db", "9", Some("SealedSecret"))),
        );
        assert!(!owned.is_at(&key("db"), "9"));
        assert_eq!(owned.len(), 0);
    }

    #[test]
    fn other_secrets_are_not_kept_and_a_lost_owner_forgets() {
        let owned = OwnedSecrets::default();
        owned.observe(None, &Event::Apply(secret("token", "3", None)));
        owned.observe(None, &Event::Apply(secret("cm", "4", Some("ConfigMap"))));
        assert_eq!(owned.len(), 0);

        owned.observe(None, &Event::Apply(secret("db", "5", Some("SealedSecret"))));
        owned.observe(None, &Event::Apply(secret("db", "6", None)));
        assert!(!owned.is_at(&key("db"), "6"));
        assert_eq!(owned.len(), 0);
    }

    #[test]
    fn secrets_with_a_proof_are_kept_and_listing_is_noted() {
        let owned = OwnedSecrets::default();
        assert!(!owned.listed("prod"));
        owned.observe(Some("prod"), &Event::Init);
        let mut unowned = secret("unowned", "3", None);
        unowned.metadata.annotations =
            Some([(PROOF_ANNOTATION.to_owned(), "v1 …".to_owned())].into());
        owned.observe(Some("prod"), &Event::InitApply(unowned));
        owned.observe(Some("prod"), &Event::InitApply(secret("token", "4", None)));
        assert!(!owned.listed("prod"), "not before the list is complete");
        owned.observe(Some("prod"), &Event::InitDone);
        assert!(owned.listed("prod") && !owned.listed("dev"));
        assert!(owned.is_at(&key("unowned"), "3"));
        assert_eq!(owned.len(), 1);
        owned.observe(None, &Event::Init);
        owned.observe(None, &Event::InitDone);
        assert!(owned.listed("dev"));
    }

    #[test]
    fn a_relist_replaces_what_was_known_and_names_the_owners_of_what_went_missing() {
        let owned = OwnedSecrets::default();
        owned.observe(
            None,
            &Event::Apply(secret("gone", "1", Some("SealedSecret"))),
        );
        owned.observe(
            None,
            &Event::Apply(secret("kept", "2", Some("SealedSecret"))),
        );

        // The watch lost its place (410 Gone): it lists again, and the first attempt fails.
        assert!(owned.observe(None, &Event::Init).is_empty());
        // From the start of the relist, nothing shown before is trusted: a reconcile meanwhile
        // asks the API server.
        assert_eq!(owned.version(&key("gone")), None);
        assert_eq!(owned.version(&key("kept")), None);
        owned.observe(None, &Event::Init);
        let listed = owned.observe(
            None,
            &Event::InitApply(secret("kept", "7", Some("SealedSecret"))),
        );
        assert!(listed.is_empty());
        assert_eq!(owned.version(&key("kept")), None);
        let missing = owned.observe(None, &Event::InitDone);

        // "gone" was deleted in the gap, and no event says so: its owner is handed back.
        assert_eq!(missing, vec![key("gone")]);
        assert!(!owned.is_at(&key("gone"), "1"));
        assert!(owned.is_at(&key("kept"), "7"));
        assert_eq!(owned.len(), 1);
    }

    #[test]
    fn a_relist_hands_back_the_owner_named_by_the_reference() {
        let owned = OwnedSecrets::default();
        let mut renamed = secret("db", "1", Some("SealedSecret"));
        if let Some(owner) = renamed
            .metadata
            .owner_references
            .as_mut()
            .and_then(|r| r.first_mut())
        {
            owner.name = "db-sealed".to_owned();
        }
        owned.observe(None, &Event::Apply(renamed));
        owned.observe(None, &Event::Init);
        // Listed without its controller reference: no longer an owned Secret, as good as gone.
        owned.observe(None, &Event::InitApply(secret("db", "2", None)));
        assert_eq!(
            owned.observe(None, &Event::InitDone),
            vec![key("db-sealed")]
        );
        assert_eq!(owned.len(), 0);
    }

    #[test]
    fn a_secret_found_while_the_watch_lists_and_missing_from_the_list_hands_its_owner_back() {
        let owned = OwnedSecrets::default();
        // A new term: its watch lists; a reconcile reads Secrets "gone" and "kept" through
        // the API, each proven and left alone.
        owned.observe(None, &Event::Init);
        let mark = owned.mark();
        assert!(!owned.found(&key("gone"), "gone", mark));
        assert!(!owned.found(&key("kept"), "kept", mark));
        // "gone" is deleted before the list is taken: the list alone is silent about it.
        owned.observe(
            None,
            &Event::InitApply(secret("kept", "4", Some("SealedSecret"))),
        );
        assert_eq!(owned.observe(None, &Event::InitDone), vec![key("gone")]);
        // Handed back once: the next list has nothing kept aside.
        owned.observe(None, &Event::Init);
        owned.observe(
            None,
            &Event::InitApply(secret("kept", "4", Some("SealedSecret"))),
        );
        assert!(owned.observe(None, &Event::InitDone).is_empty());
    }

    #[test]
    fn a_reconcile_across_a_completed_list_looks_again_when_the_list_lacks_its_secret() {
        let owned = OwnedSecrets::default();
        owned.observe(None, &Event::Init);
        owned.observe(
            None,
            &Event::InitApply(secret("kept", "4", Some("SealedSecret"))),
        );
        let before = owned.mark();
        owned.observe(None, &Event::InitDone);
        // It read before the list completed and reports after it.
        assert!(owned.found(&key("gone"), "gone", before));
        assert!(!owned.found(&key("kept"), "kept", before));
        // A reconcile that began after the list: the watch will show a later deletion.
        assert!(!owned.found(&key("gone"), "gone", owned.mark()));
        // No watch at all (--skip-recreate): nothing kept, nothing to look at again.
        let unwatched = OwnedSecrets::default();
        assert!(!unwatched.found(&key("gone"), "gone", unwatched.mark()));
        assert_eq!(unwatched.len(), 0);
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others() {
        let owned = OwnedSecrets::default();
        let mut elsewhere = secret("db", "1", Some("SealedSecret"));
        elsewhere.metadata.namespace = Some("dev".to_owned());
        owned.observe(Some("dev"), &Event::Apply(elsewhere));
        owned.observe(
            Some("prod"),
            &Event::Apply(secret("gone", "2", Some("SealedSecret"))),
        );

        owned.observe(Some("prod"), &Event::Init);
        // Another namespace's watch is not in doubt.
        assert!(owned.is_at(&ObjectKey::new("dev", "db"), "1"));
        owned.observe(
            Some("prod"),
            &Event::InitApply(secret("db", "3", Some("SealedSecret"))),
        );
        let missing = owned.observe(Some("prod"), &Event::InitDone);

        assert_eq!(missing, vec![key("gone")]);
        assert!(owned.is_at(&ObjectKey::new("dev", "db"), "1"));
        assert!(owned.is_at(&key("db"), "3"));
        assert!(!owned.is_at(&key("gone"), "2"));
        assert_eq!(owned.len(), 2);
    }
}
