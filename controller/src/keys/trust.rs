//! Key trust: which Secrets may be sealing keys.
//!
//! A sealing key is a Secret the controller generated or an operator placed. Whoever may create
//! a SealedSecret in the controller's namespace can have the controller write a Secret there with
//! any labels and data (the certificate is public, so anyone can seal for it); if the registry
//! loaded such a Secret, its key would become the sealing key (`/v1/cert.pem`, `/v1/rotate`) and
//! unseal what is sealed next. So the rule is applied at both ends:
//!
//! - **Desired side** ([`key_marker`]): a SealedSecret is never unsealed into a Secret the
//!   registry could load: one carrying the key label (any value: a retired key is one relabel
//!   away from active, and key backups select on the label alone), or named like the legacy key
//!   Secret in the controller's namespace. The controller never writes into an existing Secret
//!   carrying the key label either, whatever its hand-over annotations.
//! - **Registry side** ([`from_sealed_secret`]): a Secret that shows it came from a SealedSecret
//!   is never loaded as a key: an ownerReference to a SealedSecret (`bitnami.com`), a server-side
//!   apply by the controller's field manager (how it writes every SealedSecret's Secret; it
//!   creates keys with a plain create), or a SealedSecret hand-over annotation (`managed`,
//!   `patch`, `skip-set-owner-references`: template annotations are copied to the Secret).
//!   This also covers Secrets written before the desired-side rule existed, by Bitnami's
//!   controller or an older Sealbox.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealbox_crds::{
    GROUP, MANAGED_ANNOTATION, PATCH_ANNOTATION, SKIP_SET_OWNER_REFERENCES_ANNOTATION,
};
use sealbox_crypto::key_secret::KEY_LABEL;

use super::LEGACY_KEY_SECRET;
use crate::object::FIELD_MANAGER;

/// The kind of the objects whose Secrets are never keys.
const SEALED_SECRET_KIND: &str = "SealedSecret";
/// The managedFields operation of a server-side apply.
const APPLY_OPERATION: &str = "Apply";
/// Annotations only a SealedSecret's Secret (or one handed over to a SealedSecret) carries.
const SEALED_SECRET_ANNOTATIONS: [&str; 3] = [
    MANAGED_ANNOTATION,
    PATCH_ANNOTATION,
    SKIP_SET_OWNER_REFERENCES_ANNOTATION,
];

/// Why the key registry would load a Secret as a sealing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMarker {
    /// It carries the key label (any value).
    Label,
    /// It is the legacy key Secret: that name, in the controller's namespace.
    LegacyName,
}

impl fmt::Display for KeyMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMarker::Label => write!(
                f,
                "the Secret would carry label {KEY_LABEL:?}, which marks the controller's \
                 sealing keys"
            ),
            KeyMarker::LegacyName => write!(
                f,
                "a Secret named {LEGACY_KEY_SECRET:?} in the controller's namespace is loaded as \
                 a sealing key whatever its labels"
            ),
        }
    }
}

/// Whether a Secret with these `labels`, `name` and `namespace` could be loaded as a sealing
/// key by a controller keeping its keys in `key_namespace` (`None`: the label alone is judged).
/// The label counts in any namespace: tools (`kubectl -l`, key backups) select keys on it across
/// namespaces, and the controller's namespace is a flag.
pub fn key_marker(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    name: Option<&str>,
    namespace: Option<&str>,
    key_namespace: Option<&str>,
) -> Option<KeyMarker> {
    if labels.is_some_and(|l| l.contains_key(KEY_LABEL)) {
        Some(KeyMarker::Label)
    } else if name == Some(LEGACY_KEY_SECRET) && key_namespace.is_some_and(|k| namespace == Some(k))
    {
        Some(KeyMarker::LegacyName)
    } else {
        None
    }
}

/// How a Secret shows that a SealedSecret produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromSealedSecret {
    /// An ownerReference to a SealedSecret.
    OwnerReference,
    /// A server-side apply by the controller's field manager.
    FieldManager,
    /// One of the SealedSecret hand-over annotations.
    Annotation(&'static str),
}

impl fmt::Display for FromSealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FromSealedSecret::OwnerReference => f.write_str("it is owned by a SealedSecret"),
            FromSealedSecret::FieldManager => write!(
                f,
                "field manager {FIELD_MANAGER:?} applied it, as it applies SealedSecrets' Secrets"
            ),
            FromSealedSecret::Annotation(annotation) => {
                write!(f, "it carries annotation {annotation:?} of SealedSecrets")
            }
        }
    }
}

/// Why a Secret must not be loaded as a key because a SealedSecret produced it, if it shows so.
pub fn from_sealed_secret(metadata: &ObjectMeta) -> Option<FromSealedSecret> {
    let owned = metadata.owner_references.iter().flatten().any(|r| {
        r.kind == SEALED_SECRET_KIND
            && r.api_version.split_once('/').map(|(group, _)| group) == Some(GROUP)
    });
    if owned {
        return Some(FromSealedSecret::OwnerReference);
    }
    let applied = metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some(APPLY_OPERATION)
    });
    if applied {
        return Some(FromSealedSecret::FieldManager);
    }
    let annotations = metadata.annotations.as_ref()?;
    SEALED_SECRET_ANNOTATIONS
        .into_iter()
        .find(|a| annotations.contains_key(*a))
        .map(FromSealedSecret::Annotation)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_key_label_with_any_value_and_the_legacy_name_mark_keys() {
        let marker = |l: &[(&str, &str)], name: &str, namespace: &str| {
            key_marker(
                Some(&labels(l)),
                Some(name),
                Some(namespace),
                Some("kube-system"),
            )
        };
        for value in ["active", "compromised", ""] {
            assert_eq!(
                marker(&[(KEY_LABEL, value)], "x", "app"),
                Some(KeyMarker::Label)
            );
        }
        assert_eq!(
            marker(&[], "sealed-secrets-key", "kube-system"),
            Some(KeyMarker::LegacyName)
        );
        // The legacy name elsewhere, a prefixed name, other labels: ordinary Secrets.
        assert_eq!(marker(&[], "sealed-secrets-key", "app"), None);
        assert_eq!(marker(&[], "sealed-secrets-keyabc", "kube-system"), None);
        assert_eq!(marker(&[("app", "web")], "x", "kube-system"), None);
        let no_namespace = key_marker(None, Some("sealed-secrets-key"), Some("kube-system"), None);
        assert_eq!(no_namespace, None);
    }

    fn owner(api_version: &str, kind: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "db".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }

    fn managed(manager: &str, operation: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn secrets_from_sealed_secrets_are_recognised() {
        let meta = |f: &dyn Fn(&mut ObjectMeta)| {
            let mut m = ObjectMeta::default();
            f(&mut m);
            from_sealed_secret(&m)
        };
        assert_eq!(meta(&|_| {}), None);
        assert_eq!(
            meta(
                &|m| m.owner_references = Some(vec![owner("bitnami.com/v1alpha1", "SealedSecret")])
            ),
            Some(FromSealedSecret::OwnerReference)
        );
        // Another group's SealedSecret kind, or another kind: not ours to judge.
        assert_eq!(
            meta(&|m| m.owner_references = Some(vec![owner("example.com/v1", "SealedSecret")])),
            None
        );
        assert_eq!(
            meta(&|m| m.owner_references = Some(vec![owner("apps/v1", "Deployment")])),
            None
        );
        assert_eq!(
            meta(&|m| m.managed_fields = Some(vec![managed(FIELD_MANAGER, "Apply")])),
            Some(FromSealedSecret::FieldManager)
        );
        // The controller creates its keys (operation Update); kubectl applies operators' keys.
        assert_eq!(
            meta(&|m| m.managed_fields = Some(vec![managed(FIELD_MANAGER, "Update")])),
            None
        );
        assert_eq!(
            meta(&|m| m.managed_fields = Some(vec![managed("kubectl", "Apply")])),
            None
        );
        for annotation in SEALED_SECRET_ANNOTATIONS {
            assert_eq!(
                meta(&|m| m.annotations = Some(labels(&[(annotation, "true")]))),
                Some(FromSealedSecret::Annotation(annotation))
            );
        }
        assert_eq!(
            meta(&|m| m.annotations = Some(labels(&[("note", "mine")]))),
            None
        );
    }
}
