//! Whether the controller may write the Secret a SealedSecret names, and what to write.
//!
//! A pure decision over the existing Secret (if any) and the desired one:
//! - ours (a controller ownerReference with this SealedSecret's UID, or a proof of authorship
//!   for this SealedSecret: see [`authorship`](crate::authorship)) or `managed: "true"`:
//!   replace data, labels and annotations, set the ownerReference;
//! - an earlier incarnation's (a controller ownerReference to a SealedSecret of the same name
//!   whose uid is gone): the same, instead of refusing until the garbage collector comes by;
//! - `patch: "true"`: merge data keys, labels and annotations into what is there, taking
//!   ownership only when also `managed`;
//! - anything else is someone else's Secret: refuse, whatever the controller's permissions
//!   (Stackable's secret-operator documents the overwrite attack this prevents);
//! - a Secret carrying the sealing-key label is never written, whatever its annotations: a
//!   takeover or a patch would put a SealedSecret's data into a key (see
//!   [`keys::trust`](crate::keys::trust)).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sealbox_crds::{MANAGED_ANNOTATION, PATCH_ANNOTATION};

use crate::incarnation::is_previous_incarnation;
use crate::keys::trust::key_marker;

/// How the controller relates to an existing Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Controlled by this SealedSecret, or written by the controller for it (without an
    /// ownerReference when its template says `skip-set-owner-references`).
    Owned,
    /// Controlled by an earlier incarnation of this SealedSecret (same name, a uid that is
    /// gone): taken over and replaced, as the Secret would have been had the garbage
    /// collector removed it first.
    Inherited,
    /// Handed over with `managed: "true"`: taken over and replaced.
    Managed,
    /// Handed over with `patch: "true"`: merged into; owned too when also managed.
    Patch {
        /// `managed: "true"` as well: set the ownerReference.
        take_ownership: bool,
    },
    /// Someone else's.
    Foreign,
}

/// Classifies an existing Secret's metadata for the SealedSecret with UID `owner_uid`, which
/// the caller confirms current before it writes (see [`incarnation`](crate::incarnation));
/// `authored`: the Secret carries the controller's proof that it wrote it for that SealedSecret.
pub fn ownership(existing: &ObjectMeta, owner_uid: Option<&str>, authored: bool) -> Ownership {
    let annotated = |key: &str| {
        existing
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    };
    let managed = annotated(MANAGED_ANNOTATION);
    if annotated(PATCH_ANNOTATION) {
        return Ownership::Patch {
            take_ownership: managed,
        };
    }
    if owner_uid.is_some_and(|uid| is_previous_incarnation(existing, uid)) {
        return Ownership::Inherited;
    }
    let controlled = owner_uid.is_some_and(|uid| {
        existing
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    });
    match (controlled || authored, managed) {
        (true, _) => Ownership::Owned,
        (false, true) => Ownership::Managed,
        (false, false) => Ownership::Foreign,
    }
}

/// Why the controller will not write the Secret. Permanent until someone changes the Secret or
/// the SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The Secret belongs to someone else.
    NotManaged {
        /// The Secret's name.
        name: String,
    },
    /// The Secret carries the sealing-key label: it is, or may become, a sealing key.
    KeySecret {
        /// The Secret's name.
        name: String,
    },
    /// The Secret is immutable and its data would change.
    Immutable {
        /// The Secret's `namespace/name` (its name alone when the namespace is unset).
        name: String,
    },
    /// A Secret's type cannot change.
    TypeChange {
        /// The Secret's name.
        name: String,
        /// Its type.
        existing: String,
        /// The SealedSecret's template type.
        desired: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Bitnami's exact text: users and alerts match on it.
            Refusal::NotManaged { name } => write!(
                f,
                "failed update: Resource {name:?} already exists and is not managed by SealedSecret"
            ),
            Refusal::KeySecret { name } => write!(
                f,
                "Secret {name:?} carries label {:?} and may be a sealing key: a SealedSecret \
                 never writes to it, whatever its annotations",
                sealbox_crypto::key_secret::KEY_LABEL
            ),
            // Bitnami's text (its integration suite and users' alerts match on "the target
            // Secret is immutable"); Bitnami names the Secret as namespace/name.
            Refusal::Immutable { name } => write!(
                f,
                "Error updating {name}: the target Secret is immutable. Once a Secret is marked \
                 as immutable, it is not possible to revert this change nor to mutate the \
                 contents of the data field. You can only delete and recreate the Secret."
            ),
            Refusal::TypeChange {
                name,
                existing,
                desired,
            } => write!(
                f,
                "Secret {name:?} has type {existing:?} but the SealedSecret asks for {desired:?}; \
                 a Secret's type cannot change: delete the Secret to have it recreated"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The Secret already says what the SealedSecret says.
    InSync,
    /// Apply the desired Secret (creating it if missing).
    Write(Write),
}

/// One server-side apply of the desired Secret, then the removal of what should not remain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Write {
    /// Whether the Secret does not exist yet.
    pub create: bool,
    /// Whether the applied Secret carries the ownerReference.
    pub set_owner: bool,
    /// Keys other field managers hold that a replace must remove.
    pub leftovers: Leftovers,
}

/// Keys to remove after the apply (replace semantics over a Secret someone else wrote).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leftovers {
    /// Data keys.
    pub data: Vec<String>,
    /// Label keys.
    pub labels: Vec<String>,
    /// Annotation keys.
    pub annotations: Vec<String>,
}

impl Leftovers {
    /// Whether nothing needs removing.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.labels.is_empty() && self.annotations.is_empty()
    }

    /// What `current` holds beyond `desired`, for a replace.
    pub fn between(current: &Secret, desired: &Secret) -> Leftovers {
        Leftovers {
            data: extra_keys(current.data.as_ref(), desired.data.as_ref()),
            labels: extra_keys(
                current.metadata.labels.as_ref(),
                desired.metadata.labels.as_ref(),
            ),
            annotations: extra_keys(
                current.metadata.annotations.as_ref(),
                desired.metadata.annotations.as_ref(),
            ),
        }
    }

    /// A JSON merge patch deleting these keys.
    pub fn merge_patch(&self) -> serde_json::Value {
        let nulls = |keys: &[String]| {
            keys.iter()
                .map(|k| (k.clone(), serde_json::Value::Null))
                .collect::<serde_json::Map<_, _>>()
        };
        let mut patch = serde_json::json!({});
        if !self.data.is_empty() {
            patch["data"] = nulls(&self.data).into();
        }
        if !self.labels.is_empty() {
            patch["metadata"]["labels"] = nulls(&self.labels).into();
        }
        if !self.annotations.is_empty() {
            patch["metadata"]["annotations"] = nulls(&self.annotations).into();
        }
        patch
    }
}

impl Write {
    /// Shapes the desired Secret into the body to apply.
    pub fn prepare(&self, desired: &mut Secret) {
        if !self.set_owner {
            desired.metadata.owner_references = None;
        }
    }
}

/// Decides what to do given the existing Secret (if any) and the desired one; `authored` as in
/// [`ownership`].
pub fn plan(
    existing: Option<&Secret>,
    desired: &Secret,
    owner_uid: Option<&str>,
    authored: bool,
) -> Result<Plan, Refusal> {
    let name = || desired.metadata.name.clone().unwrap_or_default();
    let wants_owner = desired.metadata.owner_references.is_some();
    let Some(existing) = existing else {
        return Ok(Plan::Write(Write {
            create: true,
            set_owner: wants_owner,
            leftovers: Leftovers::default(),
        }));
    };

    let labels = [existing, desired].map(|s| s.metadata.labels.as_ref());
    if labels
        .into_iter()
        .any(|l| key_marker(l, None, None, None).is_some())
    {
        return Err(Refusal::KeySecret { name: name() });
    }

    let mode = ownership(&existing.metadata, owner_uid, authored);
    let (replace, set_owner) = match mode {
        Ownership::Foreign => return Err(Refusal::NotManaged { name: name() }),
        Ownership::Owned | Ownership::Inherited | Ownership::Managed => (true, wants_owner),
        Ownership::Patch { take_ownership } => (false, take_ownership && wants_owner),
    };

    let (existing_type, desired_type) = (secret_type(existing), secret_type(desired));
    if existing_type != desired_type {
        return Err(Refusal::TypeChange {
            name: name(),
            existing: existing_type.to_owned(),
            desired: desired_type.to_owned(),
        });
    }

    let data_in_sync = in_sync(replace, existing.data.as_ref(), desired.data.as_ref());
    if existing.immutable == Some(true) && !data_in_sync {
        let key = match &desired.metadata.namespace {
            Some(namespace) => format!("{namespace}/{}", name()),
            None => name(),
        };
        return Err(Refusal::Immutable { name: key });
    }

    if data_in_sync && rest_in_sync(existing, desired, replace, set_owner) {
        return Ok(Plan::InSync);
    }
    Ok(Plan::Write(Write {
        create: false,
        set_owner,
        leftovers: if replace {
            Leftovers::between(existing, desired)
        } else {
            Leftovers::default()
        },
    }))
}

/// Whether everything but the data of `existing` matches `desired`: labels, annotations, the
/// owner when it is to be set, immutability (when replacing), finalizers.
fn rest_in_sync(existing: &Secret, desired: &Secret, replace: bool, set_owner: bool) -> bool {
    let labels_in_sync = in_sync(
        replace,
        existing.metadata.labels.as_ref(),
        desired.metadata.labels.as_ref(),
    );
    let annotations_in_sync = in_sync(
        replace,
        existing.metadata.annotations.as_ref(),
        desired.metadata.annotations.as_ref(),
    );
    let owner_in_sync = !set_owner
        || desired
            .metadata
            .owner_references
            .iter()
            .flatten()
            .all(|wanted| has_owner(existing, wanted));
    let immutable_in_sync = !replace
        || existing.immutable == Some(true)
        || existing.immutable.unwrap_or(false) == desired.immutable.unwrap_or(false);
    let finalizers_in_sync = desired.metadata.finalizers.iter().flatten().all(|f| {
        existing
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|e| e == f)
    });

    labels_in_sync
        && annotations_in_sync
        && owner_in_sync
        && immutable_in_sync
        && finalizers_in_sync
}

/// A Secret's type, `Opaque` when unset.
pub fn secret_type(secret: &Secret) -> &str {
    secret
        .type_
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
}

fn has_owner(existing: &Secret, wanted: &OwnerReference) -> bool {
    existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| {
            r.uid == wanted.uid
                && r.controller == wanted.controller
                && r.kind == wanted.kind
                && r.api_version == wanted.api_version
                && r.name == wanted.name
        })
}

/// Map equality where absent and empty are the same.
/// Whether `existing` already holds `desired`: the same map when the Secret is replaced, every
/// desired entry when it is patched.
fn in_sync<V: PartialEq>(
    replace: bool,
    existing: Option<&BTreeMap<String, V>>,
    desired: Option<&BTreeMap<String, V>>,
) -> bool {
    if replace {
        same_map(existing, desired)
    } else {
        contains_all(existing, desired)
    }
}

fn same_map<V: PartialEq>(
    a: Option<&BTreeMap<String, V>>,
    b: Option<&BTreeMap<String, V>>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        (Some(m), None) | (None, Some(m)) => m.is_empty(),
        (None, None) => true,
    }
}

fn contains_all<V: PartialEq>(
    existing: Option<&BTreeMap<String, V>>,
    wanted: Option<&BTreeMap<String, V>>,
) -> bool {
    wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| existing.and_then(|e| e.get(k)) == Some(v))
}

fn extra_keys<V>(
    current: Option<&BTreeMap<String, V>>,
    desired: Option<&BTreeMap<String, V>>,
) -> Vec<String> {
    current
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| !desired.is_some_and(|d| d.contains_key(*k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    const UID: &str = "uid-1";

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn data(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, ByteString>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        )
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "bitnami.com/v1alpha1".into(),
            kind: "SealedSecret".into(),
            name: "db".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }

    fn desired() -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("prod".into()),
                labels: map(&[("app", "web")]),
                annotations: map(&[("note", "sealed")]),
                owner_references: Some(vec![owner(UID)]),
                ..ObjectMeta::default()
            },
            data: data(&[("password", "p1")]),
            ..Secret::default()
        }
    }

    fn existing(annotations: &[(&str, &str)], owner_uid: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("prod".into()),
                labels: map(&[("old", "label")]),
                annotations: map(annotations),
                owner_references: owner_uid.map(|u| vec![owner(u)]),
                ..ObjectMeta::default()
            },
            data: data(&[("password", "old"), ("extra", "x")]),
            ..Secret::default()
        }
    }

    fn write(plan: Plan) -> Write {
        match plan {
            Plan::Write(w) => w,
            Plan::InSync => panic!("expected a write"),
        }
    }

    #[test]
    fn missing_secret_is_created_with_owner() {
        let w = write(plan(None, &desired(), Some(UID), false).expect("plan"));
        assert!(w.create && w.set_owner && w.leftovers.is_empty());
    }

    #[test]
    fn foreign_secret_is_refused_with_bitnamis_text() {
        let refusal =
            plan(Some(&existing(&[], None)), &desired(), Some(UID), false).expect_err("refused");
        assert_eq!(
            refusal.to_string(),
            "failed update: Resource \"db\" already exists and is not managed by SealedSecret"
        );
        // Controlled by another SealedSecret: not ours.
        let mut other = existing(&[], Some("uid-other"));
        if let Some(owner) = other
            .metadata
            .owner_references
            .as_mut()
            .and_then(|r| r.first_mut())
        {
            owner.name = "other".into();
        }
        assert!(plan(Some(&other), &desired(), Some(UID), false).is_err());
        // Annotation values other than "true" do not count.
        let almost = existing(&[(MANAGED_ANNOTATION, "yes")], None);
        assert!(plan(Some(&almost), &desired(), Some(UID), false).is_err());
    }

    #[test]
    fn the_secret_of_an_earlier_incarnation_is_taken_over_and_replaced() {
        // Deleted and created again under the same name before the garbage collector came by.
        let left = existing(&[], Some("uid-before"));
        assert_eq!(
            ownership(&left.metadata, Some(UID), false),
            Ownership::Inherited
        );
        let w = write(plan(Some(&left), &desired(), Some(UID), false).expect("plan"));
        assert!(!w.create && w.set_owner);
        assert_eq!(w.leftovers.data, vec!["extra".to_string()]);
        // Even when it already holds what the new one holds, the ownerReference is moved.
        let mut same = desired();
        same.metadata.owner_references = Some(vec![owner("uid-before")]);
        assert!(matches!(
            plan(Some(&same), &desired(), Some(UID), false),
            Ok(Plan::Write(_))
        ));
        // Neither the patch annotation nor the sealing-key label loses its meaning.
        let patched = Secret {
            metadata: ObjectMeta {
                annotations: map(&[(PATCH_ANNOTATION, "true")]),
                ..left.metadata.clone()
            },
            ..left.clone()
        };
        assert!(matches!(
            ownership(&patched.metadata, Some(UID), false),
            Ownership::Patch { .. }
        ));
        let mut key = left.clone();
        key.metadata.labels = map(&[(sealbox_crypto::key_secret::KEY_LABEL, "active")]);
        assert!(plan(Some(&key), &desired(), Some(UID), false).is_err());
    }

    #[test]
    fn owned_secret_in_sync_needs_no_write() {
        let mut current = desired();
        current.metadata.resource_version = Some("7".into());
        assert_eq!(
            plan(Some(&current), &desired(), Some(UID), false),
            Ok(Plan::InSync)
        );
        current.type_ = Some("Opaque".into());
        assert_eq!(
            plan(Some(&current), &desired(), Some(UID), false),
            Ok(Plan::InSync)
        );
    }

    #[test]
    fn owned_secret_with_edited_data_is_restored_and_extra_keys_removed() {
        let current = existing(&[], Some(UID));
        let w = write(plan(Some(&current), &desired(), Some(UID), false).expect("plan"));
        assert!(!w.create && w.set_owner);
        assert_eq!(w.leftovers.data, vec!["extra".to_string()]);
        assert_eq!(w.leftovers.labels, vec!["old".to_string()]);
        assert_eq!(
            w.leftovers.merge_patch(),
            serde_json::json!({"data": {"extra": null}, "metadata": {"labels": {"old": null}}})
        );
    }

    #[test]
    fn a_secret_the_controller_wrote_without_owner_is_recognised() {
        // Written for a template with skip-set-owner-references: no ownerReference, no managed.
        let mut without_owner = desired();
        without_owner.metadata.owner_references = None;
        let current = existing(&[], None);
        assert_eq!(
            ownership(&current.metadata, Some(UID), true),
            Ownership::Owned
        );
        let w = write(plan(Some(&current), &without_owner, Some(UID), true).expect("plan"));
        assert!(!w.create && !w.set_owner);
        assert_eq!(w.leftovers.data, vec!["extra".to_string()]);
        // Without the proof it is someone else's, as in Bitnami.
        assert!(plan(Some(&current), &without_owner, Some(UID), false).is_err());
        // A proof never overrides the patch annotation, nor the sealing-key label.
        let patched = existing(&[(PATCH_ANNOTATION, "true")], None);
        assert_eq!(
            ownership(&patched.metadata, Some(UID), true),
            Ownership::Patch {
                take_ownership: false
            }
        );
        let mut key = existing(&[], None);
        key.metadata.labels = map(&[(sealbox_crypto::key_secret::KEY_LABEL, "active")]);
        assert!(plan(Some(&key), &without_owner, Some(UID), true).is_err());
    }

    #[test]
    fn managed_secret_is_taken_over_and_replaced() {
        let current = existing(&[(MANAGED_ANNOTATION, "true")], None);
        assert_eq!(
            ownership(&current.metadata, Some(UID), false),
            Ownership::Managed
        );
        let w = write(plan(Some(&current), &desired(), Some(UID), false).expect("plan"));
        assert!(w.set_owner);
        assert_eq!(w.leftovers.data, vec!["extra".to_string()]);
        assert_eq!(
            w.leftovers.annotations,
            vec![MANAGED_ANNOTATION.to_string()]
        );
    }

    #[test]
    fn patch_merges_without_owner_unless_managed() {
        let current = existing(&[(PATCH_ANNOTATION, "true")], None);
        let w = write(plan(Some(&current), &desired(), Some(UID), false).expect("plan"));
        assert!(!w.set_owner);
        assert!(w.leftovers.is_empty());
        let mut body = desired();
        w.prepare(&mut body);
        assert_eq!(body.metadata.owner_references, None);

        let both = existing(
            &[(PATCH_ANNOTATION, "true"), (MANAGED_ANNOTATION, "true")],
            None,
        );
        let w = write(plan(Some(&both), &desired(), Some(UID), false).expect("plan"));
        assert!(w.set_owner && w.leftovers.is_empty());
    }

    #[test]
    fn patched_secret_in_sync_when_it_contains_everything() {
        let mut current = existing(&[(PATCH_ANNOTATION, "true"), ("note", "sealed")], None);
        current.data = data(&[("password", "p1"), ("extra", "x")]);
        current.metadata.labels = map(&[("app", "web"), ("old", "label")]);
        assert_eq!(
            plan(Some(&current), &desired(), Some(UID), false),
            Ok(Plan::InSync)
        );
    }

    #[test]
    fn empty_existing_secret_with_patch() {
        let current = Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                annotations: map(&[(PATCH_ANNOTATION, "true")]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let w = write(plan(Some(&current), &desired(), Some(UID), false).expect("plan"));
        assert!(!w.create && !w.set_owner);
    }

    #[test]
    fn immutable_secret_with_other_data_is_refused() {
        let mut current = desired();
        current.immutable = Some(true);
        current.data = data(&[("password", "old")]);
        let refusal = plan(Some(&current), &desired(), Some(UID), false).expect_err("refused");
        assert!(matches!(refusal, Refusal::Immutable { .. }));
        // Bitnami's message, which its integration suite matches on.
        let message = refusal.to_string();
        assert!(
            message.starts_with("Error updating prod/db: the target Secret is immutable."),
            "{message}"
        );
        // Same data, other labels: metadata of an immutable Secret can still change.
        current.data = desired().data;
        current.metadata.labels = None;
        assert!(matches!(
            plan(Some(&current), &desired(), Some(UID), false),
            Ok(Plan::Write(_))
        ));
    }

    #[test]
    fn a_key_secret_is_never_taken_over_or_patched() {
        let key_label = sealbox_crypto::key_secret::KEY_LABEL;
        for annotations in [
            vec![(MANAGED_ANNOTATION, "true")],
            vec![(PATCH_ANNOTATION, "true")],
            vec![(PATCH_ANNOTATION, "true"), (MANAGED_ANNOTATION, "true")],
        ] {
            for value in ["active", "retired"] {
                let mut key = existing(&annotations, None);
                key.metadata.labels = map(&[(key_label, value)]);
                let refusal = plan(Some(&key), &desired(), Some(UID), false).expect_err("refused");
                assert_eq!(refusal, Refusal::KeySecret { name: "db".into() });
                assert!(refusal.to_string().contains("sealing key"), "{refusal}");
            }
        }
        // Not even when a SealedSecret owns it already (written before this rule).
        let mut owned = existing(&[], Some(UID));
        owned.metadata.labels = map(&[(key_label, "active")]);
        assert!(plan(Some(&owned), &desired(), Some(UID), false).is_err());
    }

    #[test]
    fn type_change_is_refused() {
        let mut current = desired();
        current.type_ = Some("kubernetes.io/tls".into());
        let refusal = plan(Some(&current), &desired(), Some(UID), false).expect_err("refused");
        assert!(matches!(refusal, Refusal::TypeChange { .. }));
    }
}
