//! The Secret a SealedSecret should become: a pure function of the object and the keys.
//!
//! Metadata comes from the template, forced to the SealedSecret's name and namespace; `type` and
//! `immutable` from the template; `data` from the decrypted values with `template.data` rendered
//! over them; and an ownerReference to the SealedSecret unless the template opts out. Every value
//! must decrypt or nothing is produced, and every failing key is named. Nothing is produced that
//! the key registry could load as a sealing key ([`check_key_trust`]).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sealbox_crds::{GROUP, SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret, VERSION};
use sealbox_crypto::Fingerprint;
use zeroize::Zeroizing;

use crate::keys::trust::{KeyMarker, key_marker};
use crate::keys::{Keys, wipe_secret_data};
use crate::template::{self, TemplateValues};
use crate::unseal::{Field, KeyFailure, KeyOrder, Reason, UnsealError, decrypt_reason};

/// The kind owner references name.
pub const SEALED_SECRET_KIND: &str = "SealedSecret";

/// Choices that are not part of the object.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsealOptions<'a> {
    /// Accept the deprecated single-blob `spec.data`.
    pub accept_deprecated_v1_data: bool,
    /// The key that last unsealed this object, tried right after the hint.
    pub remembered_key: Option<&'a Fingerprint>,
}

/// A Secret holding decrypted values: wiped when dropped, redacted in `Debug`.
pub struct SecretWithData(Secret);

impl SecretWithData {
    /// Wraps a Secret whose data must be wiped after use.
    pub fn new(secret: Secret) -> Self {
        SecretWithData(secret)
    }

    /// The Secret.
    pub fn get(&self) -> &Secret {
        &self.0
    }

    /// The Secret, for in-place changes.
    pub fn get_mut(&mut self) -> &mut Secret {
        &mut self.0
    }
}

impl Drop for SecretWithData {
    fn drop(&mut self) {
        wipe_secret_data(&mut self.0);
    }
}

impl fmt::Debug for SecretWithData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self
            .0
            .data
            .iter()
            .flat_map(|d| d.keys())
            .collect::<Vec<_>>();
        f.debug_struct("Secret")
            .field("namespace", &self.0.metadata.namespace)
            .field("name", &self.0.metadata.name)
            .field("type", &self.0.type_)
            .field("data_keys", &keys)
            .finish_non_exhaustive()
    }
}

/// The outcome of a successful unseal.
#[derive(Debug)]
pub struct DesiredSecret {
    /// The Secret to write.
    pub secret: SecretWithData,
    /// The key that decrypted the values (none when there were no values).
    pub decrypted_with: Option<Fingerprint>,
}

/// Key trust, desired side: refuses, before anything is decrypted, a SealedSecret whose Secret a
/// controller keeping its keys in `key_namespace` could load as a sealing key: template labels
/// with the key label (any value), or the legacy key Secret's name in that namespace (`None`:
/// the labels alone are judged).
pub fn check_key_trust(
    sealed: &SealedSecret,
    key_namespace: Option<&str>,
) -> Result<(), UnsealError> {
    let labels = sealed
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    match key_marker(
        labels,
        sealed.metadata.name.as_deref(),
        sealed.metadata.namespace.as_deref(),
        key_namespace,
    ) {
        Some(marker) => Err(UnsealError::KeySecret(marker)),
        None => Ok(()),
    }
}

/// Unseals `sealed` into the Secret it stands for. Refuses (before decrypting, for the template's
/// labels) a Secret carrying the key label; the controller also applies [`check_key_trust`].
pub fn desired_secret(
    sealed: &SealedSecret,
    keys: &Keys,
    options: &UnsealOptions<'_>,
) -> Result<DesiredSecret, UnsealError> {
    check_key_trust(sealed, None)?;
    let mut order = KeyOrder::new(
        keys,
        sealed.sealing_key_hint().as_ref(),
        options.remembered_key,
    );
    let legacy = sealed.spec.data.as_deref().filter(|d| !d.is_empty());
    let mut secret = match legacy {
        None => from_encrypted_data(sealed, keys, &mut order)?,
        Some(_) if !options.accept_deprecated_v1_data => {
            return Err(UnsealError::LegacyDataRefused);
        }
        Some(_) if !sealed.spec.encrypted_data.is_empty() => {
            return Err(UnsealError::LegacyDataWithEncryptedData);
        }
        Some(blob) => from_legacy_data(sealed, blob, keys, &mut order)?,
    };

    let metadata = &mut secret.get_mut().metadata;
    // The deprecated blob carries its own labels.
    if key_marker(metadata.labels.as_ref(), None, None, None) == Some(KeyMarker::Label) {
        return Err(UnsealError::KeySecret(KeyMarker::Label));
    }
    metadata.name = sealed.metadata.name.clone();
    metadata.namespace = sealed.metadata.namespace.clone();
    metadata.owner_references = owner_reference(sealed).map(|r| vec![r]);

    Ok(DesiredSecret {
        decrypted_with: order.last_used(keys).cloned(),
        secret,
    })
}

/// The ownerReference the Secret carries, unless the template asks for none.
pub fn owner_reference(sealed: &SealedSecret) -> Option<OwnerReference> {
    let skip = sealed
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(SKIP_SET_OWNER_REFERENCES_ANNOTATION))
        .is_some_and(|v| v == "true");
    if skip {
        return None;
    }
    Some(OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: SEALED_SECRET_KIND.to_owned(),
        name: sealed.metadata.name.clone()?,
        uid: sealed.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// Decrypts every `spec.encryptedData` value with the label of the object's scope (read from
/// its top-level annotations only). All or nothing: every failing key is named.
pub fn decrypt_values(
    sealed: &SealedSecret,
    keys: &Keys,
    order: &mut KeyOrder,
) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, UnsealError> {
    let label = sealed.label();
    let mut failures = Vec::new();
    let mut values: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (key, encoded) in &sealed.spec.encrypted_data {
        let ciphertext = match STANDARD.decode(encoded.trim()) {
            Ok(bytes) => bytes,
            Err(_) => {
                failures.push(failure(key, Field::EncryptedData, Reason::InvalidBase64));
                continue;
            }
        };
        match order.unseal(keys, &ciphertext, &label) {
            Ok(plaintext) => {
                values.insert(key.clone(), plaintext);
            }
            Err(e) => failures.push(failure(key, Field::EncryptedData, decrypt_reason(&e))),
        }
    }
    if failures.is_empty() {
        Ok(values)
    } else {
        Err(UnsealError::Values(failures))
    }
}

fn from_encrypted_data(
    sealed: &SealedSecret,
    keys: &Keys,
    order: &mut KeyOrder,
) -> Result<SecretWithData, UnsealError> {
    let mut values = decrypt_values(sealed, keys, order)?;
    let mut failures = Vec::new();

    let template = sealed.spec.template.clone().unwrap_or_default();
    if let Some(templates) = &template.data {
        let context = TemplateValues::new(&values);
        for (key, text) in templates {
            match template::render(key, text, &context) {
                Ok(rendered) => {
                    values.insert(key.clone(), rendered);
                }
                Err(message) => {
                    failures.push(failure(key, Field::TemplateData, Reason::Template(message)))
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(UnsealError::Values(failures));
    }

    let metadata = template.metadata.unwrap_or_default();
    let data = values
        .into_iter()
        .map(|(k, mut v)| (k, ByteString(std::mem::take(&mut *v))))
        .collect();
    Ok(SecretWithData::new(Secret {
        metadata: ObjectMeta {
            labels: metadata.labels,
            annotations: metadata.annotations,
            finalizers: metadata.finalizers,
            ..ObjectMeta::default()
        },
        type_: template.type_,
        immutable: template.immutable,
        data: Some(data),
        ..Secret::default()
    }))
}

/// The deprecated format: one sealed JSON Secret.
fn from_legacy_data(
    sealed: &SealedSecret,
    blob: &str,
    keys: &Keys,
    order: &mut KeyOrder,
) -> Result<SecretWithData, UnsealError> {
    let ciphertext = STANDARD
        .decode(blob.trim())
        .map_err(|_| UnsealError::LegacyData(Reason::InvalidBase64))?;
    let plaintext = order
        .unseal(keys, &ciphertext, &sealed.label())
        .map_err(|e| UnsealError::LegacyData(decrypt_reason(&e)))?;
    let inner: Secret = serde_json::from_slice(&plaintext).map_err(|_| {
        UnsealError::LegacyData(Reason::Template(
            "the decrypted blob is not a JSON Secret".to_owned(),
        ))
    })?;
    let mut inner = SecretWithData::new(inner);
    let secret = inner.get_mut();
    let mut data = secret.data.take().unwrap_or_default();
    for (k, mut v) in secret.string_data.take().unwrap_or_default() {
        data.insert(k, ByteString(std::mem::take(&mut v).into_bytes()));
    }
    Ok(SecretWithData::new(Secret {
        metadata: ObjectMeta {
            labels: secret.metadata.labels.take(),
            annotations: secret.metadata.annotations.take(),
            ..ObjectMeta::default()
        },
        type_: secret.type_.take(),
        immutable: secret.immutable,
        data: Some(data),
        ..Secret::default()
    }))
}

fn failure(key: &str, field: Field, reason: Reason) -> KeyFailure {
    KeyFailure {
        key: key.to_owned(),
        field,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sealbox_crds::{SealedSecretSpec, SecretTemplateSpec, TemplateMetadata};
    use sealbox_crypto::scope::{
        CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
    };

    use super::*;
    use crate::keys::testing::{keys, keys_of, pairs, seal, seal_age};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A SealedSecret `db` in `prod` with `values` sealed for key `key` (0 = newest).
    fn sealed_secret(
        values: &[(&str, &str)],
        key: usize,
        annotations: &[(&str, &str)],
    ) -> SealedSecret {
        let mut sealed = SealedSecret::new("db", SealedSecretSpec::default());
        sealed.metadata.namespace = Some("prod".into());
        sealed.metadata.uid = Some("uid-1".into());
        sealed.metadata.annotations = Some(map(annotations));
        let label = sealed.label();
        sealed.spec.encrypted_data = values
            .iter()
            .map(|(k, v)| (k.to_string(), seal(&pairs()[key], v.as_bytes(), &label)))
            .collect();
        sealed
    }

    fn data(desired: &DesiredSecret) -> BTreeMap<String, String> {
        desired
            .secret
            .get()
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).expect("utf-8")))
            .collect()
    }

    fn unseal(sealed: &SealedSecret, n_keys: usize) -> Result<DesiredSecret, UnsealError> {
        desired_secret(sealed, &keys(n_keys), &UnsealOptions::default())
    }

    #[test]
    fn template_metadata_type_and_owner() {
        let mut sealed = sealed_secret(&[("password", "hunter2")], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            metadata: Some(TemplateMetadata {
                name: Some("other-name".into()),
                namespace: Some("other-namespace".into()),
                labels: Some(map(&[("app", "web")])),
                annotations: Some(map(&[("note", "from template")])),
                ..TemplateMetadata::default()
            }),
            type_: Some("kubernetes.io/basic-auth".into()),
            immutable: Some(true),
            data: None,
        });
        let desired = unseal(&sealed, 2).expect("unseals");
        let secret = desired.secret.get();
        assert_eq!(secret.metadata.name.as_deref(), Some("db"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(secret.metadata.labels, Some(map(&[("app", "web")])));
        assert_eq!(
            secret.metadata.annotations,
            Some(map(&[("note", "from template")]))
        );
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.immutable, Some(true));
        assert_eq!(data(&desired), map(&[("password", "hunter2")]));
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.api_version, "bitnami.com/v1alpha1");
        assert_eq!(owner.kind, "SealedSecret");
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("db", "uid-1"));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, None);
        assert_eq!(
            desired.decrypted_with.as_ref(),
            Some(pairs()[0].fingerprint())
        );
        // Debug never shows values.
        let debug = format!("{desired:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("password"),
            "{debug}"
        );
    }

    #[test]
    fn skip_set_owner_references() {
        let mut sealed = sealed_secret(&[("a", "1")], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            metadata: Some(TemplateMetadata {
                annotations: Some(map(&[(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")])),
                ..TemplateMetadata::default()
            }),
            ..SecretTemplateSpec::default()
        });
        let desired = unseal(&sealed, 1).expect("unseals");
        assert_eq!(desired.secret.get().metadata.owner_references, None);
    }

    #[test]
    fn every_failing_key_is_named_and_no_value_shown() {
        let mut sealed = sealed_secret(&[("good", "fine")], 0, &[]);
        sealed
            .spec
            .encrypted_data
            .insert("bad-base64".into(), "not base64!".into());
        sealed.spec.encrypted_data.insert(
            "wrong-scope".into(),
            seal(&pairs()[0], b"s3cr3t-value", b"prod/other-name"),
        );
        sealed
            .spec
            .encrypted_data
            .insert("short".into(), "AA==".into());
        let error = unseal(&sealed, 1).expect_err("fails");
        let text = error.to_string();
        for expected in [
            "encryptedData[\"bad-base64\"]: invalid base64",
            "encryptedData[\"wrong-scope\"]: no key could decrypt",
            "no key could decrypt secret (wrong-scope); failed to unseal: ",
            "encryptedData[\"short\"]: sealed data is too short",
        ] {
            assert!(text.contains(expected), "{text}");
        }
        assert!(!text.contains("good"), "{text}");
        assert!(!text.contains("s3cr3t") && !text.contains("fine"), "{text}");
        assert_eq!(error.category(), "decrypt");
    }

    #[test]
    fn template_data_renders_over_values() {
        let mut sealed = sealed_secret(&[("user", "admin"), ("pass-word", "pw")], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            data: Some(map(&[
                (
                    "url",
                    "postgres://{{ .user }}:{{ index . \"pass-word\" }}@db",
                ),
                ("user", "{{ .user | upper }}"),
            ])),
            ..SecretTemplateSpec::default()
        });
        let desired = unseal(&sealed, 1).expect("unseals");
        assert_eq!(
            data(&desired),
            map(&[
                ("pass-word", "pw"),
                ("url", "postgres://admin:pw@db"),
                ("user", "ADMIN")
            ])
        );
    }

    #[test]
    fn template_over_no_encrypted_data() {
        let mut sealed = sealed_secret(&[], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            data: Some(map(&[("config", "static: true")])),
            ..SecretTemplateSpec::default()
        });
        let desired = unseal(&sealed, 1).expect("unseals");
        assert_eq!(data(&desired), map(&[("config", "static: true")]));
        assert_eq!(desired.decrypted_with, None);
    }

    #[test]
    fn template_errors_name_the_key() {
        let mut sealed = sealed_secret(&[("a", "secret-a")], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            data: Some(map(&[("x", "{{ .nope }}"), ("y", "{{ .a")])),
            ..SecretTemplateSpec::default()
        });
        let text = unseal(&sealed, 1).expect_err("fails").to_string();
        assert!(text.contains("template.data[\"x\"]"), "{text}");
        assert!(text.contains("template.data[\"y\"]"), "{text}");
        assert!(!text.contains("secret-a"), "{text}");
    }

    /// Issue 12: a template that recursed until the stack overflowed aborted the controller;
    /// now it fails its own key, with a message that names no reason (finding 5).
    #[test]
    fn hostile_template_fails_its_own_key() {
        let mut sealed = sealed_secret(&[("a", "secret-a")], 0, &[]);
        sealed.spec.template = Some(SecretTemplateSpec {
            data: Some(map(&[
                (
                    "x",
                    "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
                ),
                ("y", "{{ .a | b64dec }}"),
            ])),
            ..SecretTemplateSpec::default()
        });
        let text = unseal(&sealed, 1).expect_err("fails").to_string();
        let runtime = crate::template::RUN_TIME_FAILURE;
        assert!(
            text.contains(&format!("template.data[\"x\"]: {runtime}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("template.data[\"y\"]: {runtime}")),
            "{text}"
        );
        assert!(!text.contains("secret-a"), "{text}");
    }

    #[test]
    fn legacy_data_is_refused_unless_accepted() {
        let mut sealed = sealed_secret(&[], 0, &[]);
        let inner = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "ignored", "labels": {"legacy": "yes"}},
            "data": {"a": "MQ=="}, "stringData": {"b": "2"}
        });
        sealed.spec.data = Some(seal(
            &pairs()[0],
            inner.to_string().as_bytes(),
            &sealed.label(),
        ));
        let error = unseal(&sealed, 1).expect_err("refused");
        assert_eq!(error, UnsealError::LegacyDataRefused);
        assert!(error.to_string().contains("--accept-deprecated-v1-data"));

        let options = UnsealOptions {
            accept_deprecated_v1_data: true,
            remembered_key: None,
        };
        let desired = desired_secret(&sealed, &keys(1), &options).expect("accepted");
        assert_eq!(data(&desired), map(&[("a", "1"), ("b", "2")]));
        assert_eq!(desired.secret.get().metadata.name.as_deref(), Some("db"));
        assert_eq!(
            desired.secret.get().metadata.labels,
            Some(map(&[("legacy", "yes")]))
        );

        sealed.spec.encrypted_data.insert("x".into(), "AgA=".into());
        assert_eq!(
            desired_secret(&sealed, &keys(1), &options).expect_err("both"),
            UnsealError::LegacyDataWithEncryptedData
        );
    }

    #[test]
    fn scopes() {
        // Strict: moving to another namespace or name fails.
        let mut moved = sealed_secret(&[("a", "1")], 0, &[]);
        moved.metadata.namespace = Some("staging".into());
        assert!(unseal(&moved, 1).is_err());
        let mut renamed = sealed_secret(&[("a", "1")], 0, &[]);
        renamed.metadata.name = Some("db2".into());
        assert!(unseal(&renamed, 1).is_err());

        // Namespace-wide: renaming works, moving does not.
        let ns_wide = [(NAMESPACE_WIDE_ANNOTATION, "true")];
        let mut renamed = sealed_secret(&[("a", "1")], 0, &ns_wide);
        renamed.metadata.name = Some("db2".into());
        assert!(unseal(&renamed, 1).is_ok());
        let mut moved = sealed_secret(&[("a", "1")], 0, &ns_wide);
        moved.metadata.namespace = Some("staging".into());
        assert!(unseal(&moved, 1).is_err());

        // Cluster-wide: anywhere.
        let mut moved = sealed_secret(&[("a", "1")], 0, &[(CLUSTER_WIDE_ANNOTATION, "true")]);
        moved.metadata.namespace = Some("staging".into());
        moved.metadata.name = Some("x".into());
        assert!(unseal(&moved, 1).is_ok());

        // A template annotation cannot widen a strict scope.
        let mut widened = sealed_secret(&[("a", "1")], 0, &[]);
        widened.metadata.namespace = Some("staging".into());
        widened.spec.template = Some(SecretTemplateSpec {
            metadata: Some(TemplateMetadata {
                annotations: Some(map(&[(CLUSTER_WIDE_ANNOTATION, "true")])),
                ..TemplateMetadata::default()
            }),
            ..SecretTemplateSpec::default()
        });
        assert!(unseal(&widened, 1).is_err());
    }

    #[test]
    fn a_secret_loadable_as_a_key_is_never_produced() {
        let key_label = sealbox_crypto::key_secret::KEY_LABEL;
        let mut labelled = sealed_secret(&[("tls.key", "attacker's key")], 0, &[]);
        labelled.spec.template = Some(SecretTemplateSpec {
            metadata: Some(TemplateMetadata {
                labels: Some(map(&[(key_label, "active")])),
                ..TemplateMetadata::default()
            }),
            ..SecretTemplateSpec::default()
        });
        // Refused before any private-key operation.
        let keys = keys(1);
        let error = desired_secret(&labelled, &keys, &UnsealOptions::default()).expect_err("key");
        assert_eq!(error, UnsealError::KeySecret(KeyMarker::Label));
        assert_eq!(keys.ops().get(), 0);
        assert_eq!(error.category(), "key_trust");
        let text = error.to_string();
        assert!(
            text.contains(key_label) && text.contains("sealing key"),
            "{text}"
        );
        assert!(!text.contains("attacker"), "{text}");

        // The legacy key name, in the key namespace only.
        let mut legacy = sealed_secret(&[], 0, &[]);
        legacy.metadata.name = Some("sealed-secrets-key".into());
        assert_eq!(
            check_key_trust(&legacy, Some("prod")),
            Err(UnsealError::KeySecret(KeyMarker::LegacyName))
        );
        assert_eq!(check_key_trust(&legacy, Some("kube-system")), Ok(()));

        // The deprecated blob's own labels count too.
        let mut blob = sealed_secret(&[], 0, &[]);
        let inner = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"labels": {key_label: "active"}}, "data": {"tls.key": "MQ=="}
        });
        blob.spec.data = Some(seal(
            &pairs()[0],
            inner.to_string().as_bytes(),
            &blob.label(),
        ));
        let options = UnsealOptions {
            accept_deprecated_v1_data: true,
            remembered_key: None,
        };
        assert_eq!(
            desired_secret(&blob, &keys, &options).expect_err("key"),
            UnsealError::KeySecret(KeyMarker::Label)
        );
    }

    #[test]
    fn hint_costs_one_private_key_operation_per_value_with_twelve_keys() {
        let hinted_key = 7;
        let hint = pairs()[hinted_key].fingerprint().to_string();
        let values = [("a", "1"), ("b", "2"), ("c", "3")];
        let sealed = sealed_secret(
            &values,
            hinted_key,
            &[(SEALING_KEY_ANNOTATION, hint.as_str())],
        );
        let keys = keys(12);
        let desired = desired_secret(&sealed, &keys, &UnsealOptions::default()).expect("unseals");
        assert_eq!(keys.ops().get(), 3);
        assert_eq!(
            desired.decrypted_with.as_ref(),
            Some(pairs()[hinted_key].fingerprint())
        );
    }

    #[test]
    fn without_hint_keys_are_tried_newest_first_and_the_working_one_kept() {
        let oldest = 11;
        let sealed = sealed_secret(&[("a", "1"), ("b", "2"), ("c", "3")], oldest, &[]);
        let keys = keys(12);
        let order = KeyOrder::new(&keys, None, None);
        assert_eq!(order.positions(), (0..12).collect::<Vec<_>>().as_slice());
        let desired = desired_secret(&sealed, &keys, &UnsealOptions::default()).expect("unseals");
        // Twelve tries for the first value, then the key that worked goes first.
        assert_eq!(keys.ops().get(), 12 + 1 + 1);

        // Next time the remembered key is tried first: one operation per value.
        let keys = crate::keys::testing::keys(12);
        let options = UnsealOptions {
            accept_deprecated_v1_data: false,
            remembered_key: desired.decrypted_with.as_ref(),
        };
        desired_secret(&sealed, &keys, &options).expect("unseals");
        assert_eq!(keys.ops().get(), 3);
    }

    #[test]
    fn a_wrong_hint_falls_back_to_the_other_keys() {
        let hint = pairs()[3].fingerprint().to_string();
        let sealed = sealed_secret(&[("a", "1")], 0, &[(SEALING_KEY_ANNOTATION, hint.as_str())]);
        let keys = keys(12);
        assert!(desired_secret(&sealed, &keys, &UnsealOptions::default()).is_ok());
        assert_eq!(keys.ops().get(), 2);
    }

    /// The SealedSecret `prod/db` with one multi-recipient value for clusters A (key 0) and B
    /// (key 6) and one Bitnami value for A: a mixed file.
    fn multi_cluster_secret() -> SealedSecret {
        let mut sealed = sealed_secret(&[("bitnami", "for A only")], 0, &[]);
        let label = sealed.label();
        sealed.spec.encrypted_data.insert(
            "shared".into(),
            seal_age(&[0, 6], &[], b"for A and B", &label),
        );
        sealed
    }

    #[test]
    fn two_clusters_unseal_the_same_multi_recipient_value() {
        let mut sealed = multi_cluster_secret();
        // Cluster A: both formats in one object.
        let a = keys(2);
        let desired = desired_secret(&sealed, &a, &UnsealOptions::default()).expect("A unseals");
        assert_eq!(
            data(&desired),
            map(&[("bitnami", "for A only"), ("shared", "for A and B")])
        );
        // Cluster B, with other keys, opens the shared value (its Bitnami value is A's only).
        sealed.spec.encrypted_data.remove("bitnami");
        let b = keys_of(&[5, 6, 7]);
        let desired = desired_secret(&sealed, &b, &UnsealOptions::default()).expect("B unseals");
        assert_eq!(data(&desired), map(&[("shared", "for A and B")]));
        assert_eq!(
            desired.decrypted_with.as_ref(),
            Some(pairs()[6].fingerprint())
        );
        // Key chosen by its stanza tag: one private-key operation, though key 6 is second of
        // three and the object carries no hint.
        assert_eq!(b.ops().get(), 1);
        // A cluster that is not a recipient says so, naming the stanzas' key tags.
        let err = desired_secret(&sealed, &keys_of(&[3]), &UnsealOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("encryptedData[\"shared\"]: no key could decrypt"),
            "{text}"
        );
        assert!(text.contains("ssh-rsa "), "{text}");
    }

    #[test]
    fn a_multi_recipient_value_moved_to_another_secret_is_refused_by_every_cluster() {
        let sealed = multi_cluster_secret();
        let value = sealed.spec.encrypted_data["shared"].clone();
        /// Namespace, name and top-level annotations of the copy.
        type Move<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let moves: [Move<'_>; 4] = [
            ("prod", "other-name", &[]),
            ("staging", "db", &[]),
            // Widening the scope on the copy does not help: the line inside stays strict.
            ("prod", "db", &[(NAMESPACE_WIDE_ANNOTATION, "true")]),
            ("prod", "db", &[(CLUSTER_WIDE_ANNOTATION, "true")]),
        ];
        for (namespace, name, annotations) in moves {
            let mut moved = SealedSecret::new(name, SealedSecretSpec::default());
            moved.metadata.namespace = Some(namespace.into());
            moved.metadata.annotations = Some(map(annotations));
            moved.spec.encrypted_data = map(&[("shared", &value)]);
            for cluster in [keys(1), keys_of(&[6])] {
                let err = desired_secret(&moved, &cluster, &UnsealOptions::default()).unwrap_err();
                let text = err.to_string();
                assert_eq!(err.category(), "decrypt", "{text}");
                assert!(
                    text.contains("sealed for strict \"prod/db\""),
                    "{namespace}/{name}: {text}"
                );
            }
        }
    }

    #[test]
    fn a_malformed_multi_recipient_value_fails_its_key_only_with_a_clear_reason() {
        let mut sealed = multi_cluster_secret();
        let value = STANDARD
            .decode(&sealed.spec.encrypted_data["shared"])
            .expect("base64");
        // Cut inside the header.
        sealed
            .spec
            .encrypted_data
            .insert("shared".into(), STANDARD.encode(&value[..60]));
        let err = unseal(&sealed, 1).unwrap_err();
        let UnsealError::Values(failures) = &err else {
            panic!("{err}")
        };
        assert_eq!(failures.len(), 1, "{err}");
        assert_eq!(failures[0].key, "shared");
        assert!(
            err.to_string().contains("age value: truncated header"),
            "{err}"
        );
    }
}
