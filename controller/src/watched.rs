//! A SealedSecret as the controller watches and caches it ([`WatchedSealedSecret`]), and how a
//! dynamic object is read as a SealedSecret ([`parse_sealed_secret`]) without ever quoting a
//! value in its error.
//!
//! Below the watch ([`controller`](crate::controller)), the reconcile loop and the HTTP API
//! ([`reseal`](crate::reseal)), which all read SealedSecrets through it.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::DynamicObject;
use kube::core::NamespaceResourceScope;
use sealbox_crds::{SealedSecret, SealedSecretSpec};
use serde::{Deserialize, Deserializer};

use crate::authorship::SealedDigest;
use crate::unseal::UnsealError;

/// Written by `kubectl apply`: a JSON copy of the whole object, never read by the controller.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A SealedSecret as the controller watches and caches it: parsed once, when it arrives, or
/// the reason it could not be. Deserializing never fails on the spec, so one object that does
/// not fit the schema fails alone instead of breaking the list and the watch.
///
/// The cache keeps metadata, status and a digest of the spec, not the spec: the sealed values
/// are most of an object's size (~2.2 KB of 3 KB for three values, far more for certificates)
/// and are read only to unseal, which [`reconcile`](crate::reconcile::reconcile) does from a
/// fresh GET.
#[derive(Clone, Debug)]
pub struct WatchedSealedSecret {
    sealed: Arc<SealedSecret>,
    /// SHA-256 of the spec as it arrived, sealed values included.
    spec_digest: [u8; 32],
    /// Why the object is malformed (names a field, never a value).
    malformed: Option<String>,
}

impl WatchedSealedSecret {
    /// Parses `object` for the cache, leaving out its spec and what the controller never reads:
    /// `managedFields` and kubectl's last-applied copy, which can be larger than the object.
    pub fn from_object(object: DynamicObject) -> Self {
        Self::parse(object, false)
    }

    /// Parses `object` whole, sealed values included, for unsealing.
    pub(crate) fn whole(object: DynamicObject) -> Self {
        Self::parse(object, true)
    }

    /// The object (without its sealed values when it came from the cache).
    pub fn sealed(&self) -> &Arc<SealedSecret> {
        &self.sealed
    }

    /// Why the object does not fit the schema, or `None` when it does.
    pub fn malformed(&self) -> Option<&str> {
        self.malformed.as_deref()
    }

    /// Everything the Secret depends on besides the keys and the settings: a change means
    /// unsealing again.
    pub fn digest(&self, accept_deprecated_v1_data: bool) -> u64 {
        let metadata = &self.sealed.metadata;
        let mut hasher = DefaultHasher::new();
        metadata.uid.hash(&mut hasher);
        metadata.generation.hash(&mut hasher);
        metadata.annotations.hash(&mut hasher);
        self.spec_digest.hash(&mut hasher);
        accept_deprecated_v1_data.hash(&mut hasher);
        hasher.finish()
    }

    /// The sealed inputs the Secret comes from, as its proof of authorship records them: the
    /// spec, the scope's label (from the top-level annotations) and the option that changes the
    /// result. Unlike [`WatchedSealedSecret::digest`], stable across restarts and replicas.
    pub fn sealed_digest(&self, accept_deprecated_v1_data: bool) -> SealedDigest {
        SealedDigest::new(
            &self.spec_digest,
            &self.sealed.label(),
            accept_deprecated_v1_data,
        )
    }

    /// Parses `object`, with its spec when `with_spec`.
    fn parse(mut object: DynamicObject, with_spec: bool) -> Self {
        object.metadata.managed_fields = None;
        if let Some(annotations) = object.metadata.annotations.as_mut() {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
        // serde_json's maps are sorted: the same spec gives the same text on every replica.
        let spec = object.data.get("spec").map(|spec| spec.to_string());
        let spec_digest = SealedDigest::spec_sha256(spec.unwrap_or_default().as_bytes());
        match parse_sealed_secret(&object) {
            Ok(mut sealed) => {
                if !with_spec {
                    sealed.spec = SealedSecretSpec::default();
                }
                Self {
                    sealed: Arc::new(sealed),
                    spec_digest,
                    malformed: None,
                }
            }
            Err(problem) => Self {
                sealed: Arc::new(SealedSecret {
                    spec: SealedSecretSpec::default(),
                    status: object
                        .data
                        .get("status")
                        .and_then(|s| serde_json::from_value(s.clone()).ok()),
                    metadata: object.metadata,
                }),
                spec_digest,
                malformed: Some(problem.to_string()),
            },
        }
    }
}

impl<'de> Deserialize<'de> for WatchedSealedSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        DynamicObject::deserialize(deserializer).map(Self::from_object)
    }
}

impl Resource for WatchedSealedSecret {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SealedSecret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        SealedSecret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        SealedSecret::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        SealedSecret::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        SealedSecret::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.sealed.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut Arc::make_mut(&mut self.sealed).metadata
    }
}

/// Reads a SealedSecret out of a dynamic object, naming the offending field (never its value)
/// when the object does not fit the schema.
pub fn parse_sealed_secret(
    object: &DynamicObject,
) -> std::result::Result<SealedSecret, UnsealError> {
    let spec = match object.data.get("spec") {
        Some(spec) => {
            serde_path_to_error::deserialize::<_, SealedSecretSpec>(spec).map_err(|e| {
                let path = e.path().to_string();
                UnsealError::Malformed {
                    path: if path == "." {
                        "spec".to_owned()
                    } else {
                        format!("spec.{path}")
                    },
                    problem: describe_type_error(&e.into_inner().to_string()),
                }
            })?
        }
        None => {
            return Err(UnsealError::Malformed {
                path: "spec".to_owned(),
                problem: "missing".to_owned(),
            });
        }
    };
    // A status we cannot read is rewritten from scratch.
    let status = object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    Ok(SealedSecret {
        metadata: object.metadata.clone(),
        spec,
        status,
    })
}

/// serde's "invalid type: string \"…\", expected …" quotes the value; keep only what was expected.
fn describe_type_error(message: &str) -> String {
    if let Some((_, expected)) = message.split_once(", expected ") {
        format!("wrong type, expected {expected}")
    } else if message.starts_with("missing field") {
        message.to_owned()
    } else {
        "invalid value".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt as _;

    use super::*;
    use crate::bounds::MAX_MESSAGE;

    fn object(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "db", "namespace": "prod", "uid": "u1"},
            "spec": spec,
        }))
        .expect("dynamic object")
    }

    #[test]
    fn parses_a_well_formed_object() {
        let sealed = parse_sealed_secret(&object(serde_json::json!({
            "encryptedData": {"password": "AgB..."},
            "template": {"type": "Opaque", "metadata": {"labels": {"app": "web"}}}
        })))
        .expect("parses");
        assert_eq!(sealed.spec.encrypted_data.len(), 1);
        assert_eq!(sealed.metadata.uid.as_deref(), Some("u1"));
    }

    #[test]
    fn malformed_objects_name_the_field_not_the_value() {
        let error = parse_sealed_secret(&object(serde_json::json!({
            "encryptedData": {"password": 12345678}
        })))
        .expect_err("malformed");
        let text = error.to_string();
        assert!(text.contains("spec.encryptedData.password"), "{text}");
        assert!(!text.contains("12345678"), "{text}");

        let error = parse_sealed_secret(&object(serde_json::json!({
            "encryptedData": {}, "template": {"immutable": "very-secret-string"}
        })))
        .expect_err("malformed");
        let text = error.to_string();
        assert!(text.contains("spec.template.immutable"), "{text}");
        assert!(!text.contains("very-secret-string"), "{text}");
    }

    #[test]
    fn watched_objects_drop_what_reconcile_never_reads() {
        let mut object = object(serde_json::json!({"encryptedData": {"password": "AgB..."}}));
        object.metadata.managed_fields = Some(vec![Default::default()]);
        object.metadata.annotations = Some(
            [
                (LAST_APPLIED_ANNOTATION, "{\"kind\":\"SealedSecret\"}"),
                ("sealbox.dev/sealing-key", "k1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let watched = WatchedSealedSecret::from_object(object.clone());
        assert_eq!(watched.malformed, None);
        assert_eq!(watched.sealed.metadata.managed_fields, None);
        assert_eq!(
            watched.annotations().keys().collect::<Vec<_>>(),
            ["sealbox.dev/sealing-key"]
        );
        // The sealed values stay out of the cache; a fetch for unsealing keeps them.
        assert!(watched.sealed.spec.encrypted_data.is_empty());
        let fetched = WatchedSealedSecret::whole(object);
        assert_eq!(fetched.sealed.spec.encrypted_data.len(), 1);
        assert_eq!(watched.spec_digest, fetched.spec_digest);
    }

    #[test]
    fn the_digest_follows_the_spec_the_cache_leaves_out() {
        let digest_of = |spec| WatchedSealedSecret::from_object(object(spec)).digest(false);
        let before = digest_of(serde_json::json!({"encryptedData": {"password": "AgB..."}}));
        assert_eq!(
            before,
            digest_of(serde_json::json!({"encryptedData": {"password": "AgB..."}}))
        );
        assert_ne!(
            before,
            digest_of(serde_json::json!({"encryptedData": {"password": "AgC..."}}))
        );
        assert_ne!(
            before,
            digest_of(serde_json::json!({
                "encryptedData": {"password": "AgB..."},
                "template": {"type": "kubernetes.io/tls"}
            }))
        );
    }

    #[test]
    fn a_malformed_object_deserializes_and_carries_its_problem() {
        let watched: WatchedSealedSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "db", "namespace": "prod", "uid": "u1"},
            "spec": {"encryptedData": {"password": 12345678}},
        }))
        .expect("deserializes");
        let problem = watched.malformed.as_deref().expect("malformed");
        assert!(problem.contains("spec.encryptedData.password"), "{problem}");
        assert_eq!(watched.uid().as_deref(), Some("u1"));
    }

    #[test]
    fn malformed_objects_with_huge_key_names_get_bounded_messages() {
        let name = "k".repeat(10_000);
        let watched = WatchedSealedSecret::from_object(object(serde_json::json!({
            "encryptedData": {name: 1}
        })));
        let problem = watched.malformed.as_deref().expect("malformed");
        assert!(problem.len() <= MAX_MESSAGE, "{}", problem.len());
        assert!(problem.contains("spec.encryptedData.kkk"), "{problem}");
    }
}
