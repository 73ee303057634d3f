//! The resourceVersion of every Secret a SealedSecret controls, as the Secret watch last showed
//! it.
//!
//! Each write of the controller comes back as watch events (the Secret it applied, the status
//! it patched), and each of them queues another reconcile of the object. When the Secret is
//! still at the version the controller wrote, that reconcile has nothing to do, and this map
//! lets it know without asking the API server. Anything else (the watch has not caught up yet,
//! the Secret changed, it is gone) falls back to asking.
//!
//! Only Secrets with a SealedSecret as controller, or with the controller's proof of authorship
//! ([`authorship`](crate::authorship): one written without an ownerReference), are kept: a
//! cluster's other Secrets cost nothing here. Once a watch has listed its namespace, a Secret it
//! does not show is one the controller has not written (as far as the watch knows): there is no
//! proof to read before unsealing.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use kube::{Resource as _, ResourceExt as _};
use sealbox_crds::SealedSecret;

use crate::authorship::PROOF_ANNOTATION;
use crate::object::ObjectKey;

type Versions = HashMap<ObjectKey, String>;

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
    /// missing from it were deleted meanwhile).
    relisting: HashMap<Option<String>, Versions>,
    /// The watches (by namespace; `None` for all) that have listed once.
    listed: HashSet<Option<String>>,
}

impl OwnedSecrets {
    /// Takes in one event of the Secret metadata watch of `namespace` (`None`: all of them).
    pub fn observe(&self, namespace: Option<&str>, event: &Event<PartialObjectMeta<Secret>>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = namespace.map(str::to_owned);
        match event {
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
                    inner
                        .current
                        .retain(|key, _| namespace.is_some_and(|watched| watched != key.namespace));
                    inner.current.extend(listed);
                    inner.listed.insert(scope);
                }
            }
            Event::Apply(secret) => record(&mut inner.current, secret),
            Event::Delete(secret) => {
                inner.current.remove(&key(secret));
            }
        }
    }

    /// The version at which the watch last showed the Secret `key`, controlled by a
    /// SealedSecret; `None` when it does not know of one.
    pub fn version(&self, key: &ObjectKey) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.current.get(key).cloned()
    }

    /// Whether a watch of `namespace` (or of all) has listed its Secrets once.
    pub fn listed(&self, namespace: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.listed.contains(&None) || inner.listed.contains(&Some(namespace.to_owned()))
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

fn key(secret: &PartialObjectMeta<Secret>) -> ObjectKey {
    ObjectKey::new(secret.namespace().unwrap_or_default(), secret.name_any())
}

/// Keeps the version of a Secret a SealedSecret controls or the controller proves it wrote;
/// forgets any other (one that lost its controller reference must not look unchanged).
fn record(versions: &mut Versions, secret: &PartialObjectMeta<Secret>) {
    let controlled = secret.owner_references().iter().any(|owner| {
        owner.controller == Some(true)
            && owner.kind == "SealedSecret"
            && owner.api_version.split('/').next() == Some(SealedSecret::group(&()).as_ref())
    });
    let proven = secret.annotations().contains_key(PROOF_ANNOTATION);
    match (controlled || proven, secret.resource_version()) {
        (true, Some(version)) => {
            versions.insert(key(secret), version);
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
    fn a_relist_replaces_what_was_known() {
        let owned = OwnedSecrets::default();
        owned.observe(
            None,
            &Event::Apply(secret("gone", "1", Some("SealedSecret"))),
        );
        owned.observe(
            None,
            &Event::Apply(secret("kept", "2", Some("SealedSecret"))),
        );

        owned.observe(None, &Event::Init);
        owned.observe(
            None,
            &Event::InitApply(secret("kept", "7", Some("SealedSecret"))),
        );
        // Until the list is complete, what was known stands.
        assert!(owned.is_at(&key("gone"), "1"));
        owned.observe(None, &Event::InitDone);

        assert!(!owned.is_at(&key("gone"), "1"));
        assert!(owned.is_at(&key("kept"), "7"));
        assert_eq!(owned.len(), 1);
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
        owned.observe(
            Some("prod"),
            &Event::InitApply(secret("db", "3", Some("SealedSecret"))),
        );
        owned.observe(Some("prod"), &Event::InitDone);

        assert!(owned.is_at(&ObjectKey::new("dev", "db"), "1"));
        assert!(owned.is_at(&key("db"), "3"));
        assert!(!owned.is_at(&key("gone"), "2"));
        assert_eq!(owned.len(), 2);
    }
}
