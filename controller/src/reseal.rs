//! What `/v1/verify` and `/v1/rotate` decide, as pure functions over a posted SealedSecret and
//! the loaded keys: whether the controller can unseal it, and the same document re-sealed with
//! the newest key.
//!
//! Re-sealing edits the posted document in place: only `spec.encryptedData` values and the
//! `sealbox.dev/sealing-key` hint annotation change, so `spec.template` (its `data` templates
//! included) and any other field come back as they were sent. The scope, and so the label each
//! value is sealed for, comes only from the top-level annotations.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::api::DynamicObject;
use sealbox_crds::SealedSecret;
use sealbox_crypto::Scope;
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use serde_json::{Map, Value};

use crate::desired::{UnsealOptions, decrypt_values, desired_secret};
use crate::keys::Keys;
use crate::reconcile::parse_sealed_secret;
use crate::unseal::{KeyOrder, UnsealError};

/// A SealedSecret posted to the API: the document as sent, and what it says.
#[derive(Debug, Clone)]
pub struct Posted {
    document: Value,
    sealed: SealedSecret,
}

impl Posted {
    /// The parsed SealedSecret.
    pub fn sealed(&self) -> &SealedSecret {
        &self.sealed
    }
}

/// Why a request body is not a SealedSecret the API can work on (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Neither JSON nor YAML.
    #[error("the body is not a JSON or YAML document{0}")]
    Syntax(String),
    /// A document, but not an object.
    #[error("the body is not a SealedSecret: expected a JSON or YAML object")]
    NotAnObject,
    /// Another kind of object.
    #[error("the body is a {kind} ({api_version}), not a SealedSecret (bitnami.com/v1alpha1)")]
    OtherKind {
        /// Its `kind`.
        kind: String,
        /// Its `apiVersion`.
        api_version: String,
    },
    /// The object does not fit the SealedSecret schema.
    #[error("{0}")]
    Malformed(UnsealError),
    /// The scope binds the values to a name or namespace the object does not carry.
    #[error(
        "metadata.{field} is missing: a {scope} SealedSecret is sealed for its namespace{and_name}, \
         so the controller needs them to decrypt it"
    )]
    MissingIdentity {
        /// `name` or `namespace`.
        field: &'static str,
        /// The scope read from the annotations.
        scope: &'static str,
        /// `" and name"` for the strict scope.
        and_name: &'static str,
    },
}

/// Why a SealedSecret cannot be re-sealed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No key is loaded yet (503).
    #[error("no sealing key is loaded yet; try again shortly")]
    NoKeys,
    /// Some values do not decrypt (409); every failing key is named, no value is.
    #[error("cannot re-seal: {0}")]
    Unseal(UnsealError),
    /// The deprecated single-blob format has no per-value form to re-seal (422).
    #[error(
        "cannot re-seal spec.data (the deprecated single-blob format): seal the Secret again with \
         `sealbox seal`, which writes spec.encryptedData"
    )]
    LegacyData,
    /// Encryption itself failed (500).
    #[error("sealing a value with the newest key failed")]
    Seal(#[source] sealbox_crypto::Error),
}

/// Parses a request body (JSON, or YAML as kubeseal users write it) into a SealedSecret,
/// keeping the document for [`rotate`]. Error messages locate problems, never quote values.
pub fn parse(body: &[u8]) -> Result<Posted, BadRequest> {
    let text_start = body.iter().find(|b| !b.is_ascii_whitespace());
    let document: Value = if text_start == Some(&b'{') {
        serde_json::from_slice(body).map_err(|e| {
            BadRequest::Syntax(format!(" (JSON, line {}, column {})", e.line(), e.column()))
        })?
    } else {
        serde_norway::from_slice(body).map_err(|e| {
            BadRequest::Syntax(e.location().map_or_else(String::new, |at| {
                format!(" (YAML, line {}, column {})", at.line(), at.column())
            }))
        })?
    };
    if !document.is_object() {
        return Err(BadRequest::NotAnObject);
    }
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("SealedSecret");
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("bitnami.com/v1alpha1");
    if kind != "SealedSecret" || !api_version.starts_with("bitnami.com/") {
        return Err(BadRequest::OtherKind {
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
        });
    }
    let object: DynamicObject = serde_json::from_value(document.clone()).map_err(|_| {
        BadRequest::Malformed(UnsealError::Malformed {
            path: "metadata".to_owned(),
            problem: "not valid object metadata".to_owned(),
        })
    })?;
    let sealed = parse_sealed_secret(&object).map_err(BadRequest::Malformed)?;

    let has = |field: &Option<String>| field.as_deref().is_some_and(|v| !v.is_empty());
    let (scope, and_name) = match sealed.scope() {
        Scope::Strict => ("strict", " and name"),
        Scope::NamespaceWide => ("namespace-wide", ""),
        Scope::ClusterWide => ("cluster-wide", ""),
    };
    let missing = match sealed.scope() {
        Scope::ClusterWide => None,
        _ if !has(&sealed.metadata.namespace) => Some("namespace"),
        Scope::Strict if !has(&sealed.metadata.name) => Some("name"),
        _ => None,
    };
    if let Some(field) = missing {
        return Err(BadRequest::MissingIdentity {
            field,
            scope,
            and_name,
        });
    }
    Ok(Posted { document, sealed })
}

/// Whether the controller would unseal `posted`: every value decrypts for its scope and the
/// templates render. The unsealed values are wiped before this returns.
pub fn verify(
    posted: &Posted,
    keys: &Keys,
    accept_deprecated_v1_data: bool,
) -> Result<(), UnsealError> {
    let options = UnsealOptions {
        accept_deprecated_v1_data,
        remembered_key: None,
    };
    desired_secret(&posted.sealed, keys, &options).map(drop)
}

/// `posted` with every value re-sealed for the newest key (same scope, same label) and the hint
/// annotation naming that key; everything else as it was sent.
pub fn rotate<R>(posted: Posted, keys: &Keys, rng: &R) -> Result<Value, RotateError>
where
    R: aws_lc_rs::rand::SecureRandom + ?Sized,
{
    let Posted {
        mut document,
        sealed,
    } = posted;
    let newest = keys.sealing_key().ok_or(RotateError::NoKeys)?;
    if sealed.spec.data.as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(RotateError::LegacyData);
    }
    let mut order = KeyOrder::new(keys, sealed.sealing_key_hint().as_ref(), None);
    let values = decrypt_values(&sealed, keys, &mut order).map_err(RotateError::Unseal)?;

    let label = sealed.label();
    let public_key = newest.certificate().public_key();
    let mut resealed = Map::new();
    for (key, plaintext) in &values {
        let ciphertext =
            sealbox_crypto::seal(rng, public_key, plaintext, &label).map_err(RotateError::Seal)?;
        resealed.insert(key.clone(), Value::String(STANDARD.encode(ciphertext)));
    }
    drop(values);

    // `parse` checked the document is an object with an object `spec` holding encryptedData.
    if let Some(spec) = document.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("encryptedData".to_owned(), Value::Object(resealed));
    }
    if let Some(root) = document.as_object_mut() {
        let metadata = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Some(metadata) = metadata.as_object_mut() {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if !annotations.is_object() {
                *annotations = Value::Object(Map::new());
            }
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    SEALING_KEY_ANNOTATION.to_owned(),
                    Value::String(newest.fingerprint().to_string()),
                );
            }
        }
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::testing::{keys, pairs, seal};
    use sealbox_crypto::scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};
    use serde_json::json;

    fn document(annotations: Value, values: &[(&str, &str)], key: usize, label: &[u8]) -> Value {
        let encrypted: Map<String, Value> = values
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(seal(&pairs()[key], v.as_bytes(), label)),
                )
            })
            .collect();
        json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "db", "namespace": "prod", "annotations": annotations},
            "spec": {
                "encryptedData": encrypted,
                "template": {
                    "metadata": {"labels": {"app": "web"},
                                 "annotations": {CLUSTER_WIDE_ANNOTATION: "true"}},
                    "data": {"url": "postgres://admin:{{ .password }}@db"}
                }
            }
        })
    }

    fn posted(document: &Value) -> Posted {
        parse(&serde_json::to_vec(document).expect("json")).expect("parses")
    }

    fn decrypt(keys: &Keys, document: &Value) -> Result<Vec<(String, String)>, UnsealError> {
        let sealed = posted(document).sealed;
        let mut order = KeyOrder::new(keys, None, None);
        Ok(decrypt_values(&sealed, keys, &mut order)?
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    #[test]
    fn yaml_and_json_bodies_parse_alike() {
        let json_doc = document(json!({}), &[("password", "hunter2")], 0, b"prod/db");
        let yaml = serde_norway::to_string(&json_doc).expect("yaml");
        let from_yaml = parse(yaml.as_bytes()).expect("yaml parses");
        let from_json = posted(&json_doc);
        assert_eq!(from_yaml.sealed, from_json.sealed);
        assert_eq!(from_yaml.document, from_json.document);
        // A leading document marker and whitespace are fine too.
        assert!(parse(format!("---\n{yaml}").as_bytes()).is_ok());
        assert!(parse(format!("\n  {}", json_doc).as_bytes()).is_ok());
    }

    #[test]
    fn bad_bodies_are_refused_without_quoting_them() {
        let e = parse(b"{\"kind\": \"SealedSecret\", \"spec\": ").expect_err("truncated");
        assert!(matches!(e, BadRequest::Syntax(_)), "{e}");
        let e = parse(b"- just\n- a list\n").expect_err("list");
        assert_eq!(e, BadRequest::NotAnObject);
        let e = parse(br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}"#)
            .expect_err("Secret");
        assert!(e.to_string().contains("Secret (v1)"), "{e}");
        let e = parse(br#"{"kind": "SealedSecret", "metadata": {"name": "db", "namespace": "p"}, "spec": {"encryptedData": {"password": 12345678}}}"#)
            .expect_err("malformed");
        let text = e.to_string();
        assert!(text.contains("spec.encryptedData.password"), "{text}");
        assert!(!text.contains("12345678"), "{text}");
        let e = parse(br#"{"kind": "SealedSecret", "metadata": {"name": "db"}, "spec": {"encryptedData": {}}}"#)
            .expect_err("no namespace");
        assert!(
            e.to_string().contains("metadata.namespace is missing"),
            "{e}"
        );
        let cluster_wide = json!({"kind": "SealedSecret",
            "metadata": {"annotations": {CLUSTER_WIDE_ANNOTATION: "true"}},
            "spec": {"encryptedData": {}}});
        assert!(parse(cluster_wide.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn verify_accepts_good_values_and_rejects_tampered_or_wrong_scope_ones() {
        let keys = keys(3);
        let good = document(json!({}), &[("password", "hunter2")], 1, b"prod/db");
        assert_eq!(verify(&posted(&good), &keys, false), Ok(()));

        let mut tampered = good.clone();
        let value = tampered["spec"]["encryptedData"]["password"]
            .as_str()
            .expect("value")
            .to_owned();
        let mut bytes = STANDARD.decode(&value).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        tampered["spec"]["encryptedData"]["password"] = json!(STANDARD.encode(bytes));
        let e = verify(&posted(&tampered), &keys, false).expect_err("tampered");
        assert!(e.to_string().contains("encryptedData[\"password\"]"), "{e}");
        assert!(!e.to_string().contains(&value), "{e}");

        // Sealed namespace-wide, posted as strict: the label differs.
        let wrong_scope = document(json!({}), &[("password", "hunter2")], 0, b"prod");
        assert!(verify(&posted(&wrong_scope), &keys, false).is_err());
        let mut right_scope = wrong_scope.clone();
        right_scope["metadata"]["annotations"] = json!({NAMESPACE_WIDE_ANNOTATION: "true"});
        assert_eq!(verify(&posted(&right_scope), &keys, false), Ok(()));
    }

    #[test]
    fn rotate_reseals_for_the_newest_key_and_keeps_everything_else() {
        let old_keys = keys(3);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let original = document(
            json!({NAMESPACE_WIDE_ANNOTATION: "true", "note": "kept"}),
            &[("password", "hunter2"), ("user", "admin")],
            2,
            b"prod",
        );
        let rotated = rotate(posted(&original), &old_keys, &rng).expect("rotates");

        assert_eq!(
            rotated["metadata"]["annotations"][SEALING_KEY_ANNOTATION],
            json!(pairs()[0].fingerprint().to_string())
        );
        assert_eq!(rotated["metadata"]["annotations"]["note"], json!("kept"));
        assert_eq!(rotated["spec"]["template"], original["spec"]["template"]);
        assert_ne!(
            rotated["spec"]["encryptedData"]["password"],
            original["spec"]["encryptedData"]["password"]
        );
        // Only the newest key is needed now, with the namespace-wide label.
        let newest_only = keys(1);
        assert_eq!(
            decrypt(&newest_only, &rotated).expect("newest key decrypts"),
            vec![
                ("password".to_owned(), "hunter2".to_owned()),
                ("user".to_owned(), "admin".to_owned())
            ]
        );
        assert!(decrypt(&newest_only, &original).is_err());
    }

    #[test]
    fn rotate_names_the_keys_it_cannot_decrypt() {
        let keys = keys(2);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Sealed for another name: the strict label is prod/db, this was sealed for prod/web.
        let foreign = document(json!({}), &[("password", "hunter2")], 0, b"prod/web");
        let e = rotate(posted(&foreign), &keys, &rng).expect_err("cannot decrypt");
        assert!(matches!(e, RotateError::Unseal(_)));
        assert!(e.to_string().contains("encryptedData[\"password\"]"), "{e}");

        let legacy = json!({"kind": "SealedSecret", "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"encryptedData": {}, "data": "AgBxyz"}});
        assert!(matches!(
            rotate(posted(&legacy), &keys, &rng),
            Err(RotateError::LegacyData)
        ));
        let empty = crate::keys::Keys::default();
        assert!(matches!(
            rotate(posted(&foreign), &empty, &rng),
            Err(RotateError::NoKeys)
        ));
    }
}
