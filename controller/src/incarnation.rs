//! Which incarnation of a SealedSecret a Secret belongs to. A SealedSecret deleted and created
//! again under the same name is a new object (a new uid); the Secret the old one owned stays
//! until the garbage collector comes by, and a Secret must never be written for an incarnation
//! that is gone.
//!
//! Pure decisions over metadata; the reconcile reads the SealedSecret right before each write
//! and asks [`is_current`], and only then may [`is_previous_incarnation`] hand it a Secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as _;
use sealbox_crds::SealedSecret;

/// Whether `found` (the SealedSecret as just read, `None` when not found) is the incarnation
/// with `uid`, and not being deleted: only then may its Secret be written.
pub fn is_current(found: Option<&ObjectMeta>, uid: &str) -> bool {
    found.is_some_and(|meta| meta.uid.as_deref() == Some(uid) && meta.deletion_timestamp.is_none())
}

/// Whether the Secret `existing` is controlled by an earlier incarnation of the SealedSecret
/// whose current uid is `current_uid`: its controller ownerReference is a SealedSecret of the
/// Secret's own name (a SealedSecret's Secret always bears its name) with another uid.
///
/// Sound only when `current_uid` was confirmed current ([`is_current`]) after `existing` was
/// read: names are unique within a namespace, so that SealedSecret's uid is then verifiably
/// gone, and the Secret is one the garbage collector would delete anyway. Only a
/// SealedSecret-controller reference counts: a Secret with any other owner, or none, stays
/// someone else's.
pub fn is_previous_incarnation(existing: &ObjectMeta, current_uid: &str) -> bool {
    let Some(name) = existing.name.as_deref() else {
        return false;
    };
    existing
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| {
            r.kind == SealedSecret::kind(&())
                && r.api_version == SealedSecret::api_version(&())
                && r.name == name
                && !r.uid.is_empty()
                && r.uid != current_uid
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    const NOW: &str = "u-now";

    fn reference(kind: &str, api_version: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    fn secret(references: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some("db".to_owned()),
            namespace: Some("prod".to_owned()),
            owner_references: Some(references),
            ..ObjectMeta::default()
        }
    }

    fn earlier() -> OwnerReference {
        reference("SealedSecret", "bitnami.com/v1alpha1", "db", "u-before")
    }

    #[test]
    fn a_secret_of_an_earlier_incarnation_is_recognised() {
        assert!(is_previous_incarnation(&secret(vec![earlier()]), NOW));
        // The current incarnation's own Secret is owned, not inherited.
        let own = reference("SealedSecret", "bitnami.com/v1alpha1", "db", NOW);
        assert!(!is_previous_incarnation(&secret(vec![own]), NOW));
    }

    #[test]
    fn nothing_else_counts() {
        let not_controller = OwnerReference {
            controller: None,
            ..earlier()
        };
        let cases = [
            vec![],
            vec![not_controller],
            // Another SealedSecret's Secret (a name the attacker chose is not this one).
            vec![reference(
                "SealedSecret",
                "bitnami.com/v1alpha1",
                "other",
                "u-x",
            )],
            // Other kinds and groups that look alike.
            vec![reference("Deployment", "apps/v1", "db", "u-x")],
            vec![reference(
                "SealedSecret",
                "evil.example/v1alpha1",
                "db",
                "u-x",
            )],
            vec![reference(
                "SealedSecret",
                "bitnami.com.evil/v1alpha1",
                "db",
                "u-x",
            )],
            vec![reference(
                "sealedsecret",
                "bitnami.com/v1alpha1",
                "db",
                "u-x",
            )],
            vec![reference("SealedSecret", "bitnami.com/v1alpha1", "db", "")],
            // The controller reference is someone else's, whatever else is listed.
            vec![
                reference("Deployment", "apps/v1", "db", "u-x"),
                OwnerReference {
                    controller: Some(false),
                    ..earlier()
                },
            ],
        ];
        for references in cases {
            assert!(
                !is_previous_incarnation(&secret(references.clone()), NOW),
                "{references:?}"
            );
        }
        let unnamed = ObjectMeta {
            name: None,
            ..secret(vec![earlier()])
        };
        assert!(!is_previous_incarnation(&unnamed, NOW));
        let no_references = ObjectMeta {
            owner_references: None,
            ..secret(vec![])
        };
        assert!(!is_previous_incarnation(&no_references, NOW));
    }

    #[test]
    fn only_the_live_incarnation_is_current() {
        let live = ObjectMeta {
            uid: Some(NOW.to_owned()),
            ..ObjectMeta::default()
        };
        assert!(is_current(Some(&live), NOW));
        assert!(!is_current(None, NOW));
        assert!(!is_current(Some(&live), "u-before"));
        let deleting = ObjectMeta {
            deletion_timestamp: Some(Time("2026-01-01T00:00:00Z".parse().expect("time"))),
            ..live.clone()
        };
        assert!(!is_current(Some(&deleting), NOW));
    }
}
