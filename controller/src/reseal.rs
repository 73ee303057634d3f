//! What `/v1/verify` and `/v1/rotate` decide, as pure functions over a posted SealedSecret and
//! the loaded keys: whether the controller can unseal it, and the same document re-sealed with
//! the newest key.
//!
//! Re-sealing edits the posted document in place: only `spec.encryptedData` values and the
//! `sealbox.dev/sealing-key` hint annotation change, so `spec.template` (its `data` templates
//! included) and any other field come back as they were sent. The scope, and so the label each
//! value is sealed for, comes only from the top-level annotations. A multi-recipient (age) value
//! is re-wrapped instead: this cluster's stanza now names the newest key, every other recipient
//! (other clusters, age keys) and the payload stay as they were.
//!
//! Work is bounded: a body is decoded by [`sealbox_crds::decode`] (size, depth, alias
//! expansion, before the parser runs), carries at most [`MAX_VALUES`] sealed values, and is
//! unsealed with at most [`max_key_operations`] private-key operations; a [`Cancel`] set when
//! the request ends stops decoding and unsealing between values.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::api::DynamicObject;
use sealbox_crds::SealedSecret;
use sealbox_crds::decode::{self, DecodeError, Limits};
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use sealbox_crypto::{Binding, Scope, ValueFormat, age_value};
use serde_json::{Map, Value};

use crate::desired::{UnsealOptions, decrypt_values, desired_secret};
use crate::keys::Keys;
use crate::unseal::{Cancel, KeyOrder, Stopped, UnsealError};
use crate::watched::parse_sealed_secret;

/// Largest request body accepted (413 above): a Secret is at most 1 MiB, and its sealed form
/// about the same (base64 of RSA-wrapped AES-GCM adds a third, spread over fewer bytes of
/// key material); Bitnami's controller accepts the same.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most sealed values (`spec.encryptedData` entries) one request may carry. A Secret holds at
/// most 1 MiB, and a value sealed for a 4096-bit key is at least ~700 base64 bytes (a 512-byte
/// RSA block, its length, the AES-GCM tag), so no more than ~1,500 fit in a real one; each
/// costs at least one private-key operation (~4 ms at 4096 bits).
pub const MAX_VALUES: usize = 1_500;

/// Private-key operations one request may use: twice its values plus the number of keys. A
/// document whose values were all sealed with one key needs one per value after at most one
/// try of each key; one sealed with two keys in turn (`kubeseal --merge-into` across a key
/// renewal) needs up to two per value. Every value failing with every key (the amplification
/// a hostile body aims for) stops here instead of costing values × keys.
pub fn max_key_operations(values: usize, keys: usize) -> usize {
    values.saturating_mul(2).saturating_add(keys)
}

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
    #[error("the body is not a JSON or YAML document: {0}")]
    Syntax(DecodeError),
    /// Past a decoding bound (size, depth, alias expansion), or several documents.
    #[error("the body is refused: {0}")]
    Refused(DecodeError),
    /// The request ended while the body was being decoded.
    #[error("the request ended before its body was decoded")]
    Cancelled,
    /// More sealed values than one request may carry.
    #[error(
        "the SealedSecret has {count} values in spec.encryptedData; at most {limit} are accepted \
         (a Secret holds at most 1 MiB)"
    )]
    TooManyValues {
        /// Values in the body.
        count: usize,
        /// [`MAX_VALUES`].
        limit: usize,
    },
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
    /// The work bound was reached or the request ended (422 / 503).
    #[error("cannot re-seal: {0}")]
    Stopped(Stopped),
    /// The answer could not be written as JSON (500).
    #[error("encoding the answer failed")]
    Encode,
}

/// Why `/v1/verify` says no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The controller would not unseal it (409).
    #[error("{0}")]
    Unseal(UnsealError),
    /// The work bound was reached or the request ended (422 / 503).
    #[error("cannot verify: {0}")]
    Stopped(Stopped),
}

/// Parses a request body (JSON, or YAML as kubeseal users write it) into a SealedSecret,
/// keeping the document for [`rotate`]. Error messages locate problems, never quote values.
/// The entry point of the verify/rotate body path (fuzzed as such).
pub fn parse(body: &[u8]) -> Result<Posted, BadRequest> {
    parse_cancellable(body, &Cancel::default())
}

/// [`parse`], stopping when `cancel` is set.
pub fn parse_cancellable(body: &[u8], cancel: &Cancel) -> Result<Posted, BadRequest> {
    let limits = Limits::new(MAX_BODY_BYTES).cancelled_by(cancel.flag());
    let document = decode::decode_document(body, &limits).map_err(|e| match e {
        DecodeError::Syntax { .. } => BadRequest::Syntax(e),
        DecodeError::Cancelled => BadRequest::Cancelled,
        _ => BadRequest::Refused(e),
    })?;
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
    let count = sealed.spec.encrypted_data.len();
    if count > MAX_VALUES {
        return Err(BadRequest::TooManyValues {
            count,
            limit: MAX_VALUES,
        });
    }

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
/// templates render. The unsealed values are wiped before this returns. Values are decrypted
/// with at most [`max_key_operations`] private-key operations, stopping when `cancel` is set;
/// templates (and the deprecated `spec.data`) then go through the controller's own
/// [`desired_secret`], the key that worked tried first.
pub fn verify(
    posted: &Posted,
    keys: &Keys,
    accept_deprecated_v1_data: bool,
    cancel: &Cancel,
) -> Result<(), VerifyError> {
    let sealed = &posted.sealed;
    let mut order = limited_order(sealed, keys, cancel);
    let legacy = sealed.spec.data.as_deref().is_some_and(|d| !d.is_empty());
    if !legacy {
        let decrypted = decrypt_values(sealed, keys, &mut order);
        if let Some(stopped) = order.stopped() {
            return Err(VerifyError::Stopped(stopped));
        }
        drop(decrypted.map_err(VerifyError::Unseal)?);
        let templates = sealed
            .spec
            .template
            .as_ref()
            .and_then(|t| t.data.as_ref())
            .is_some_and(|d| !d.is_empty());
        if !templates {
            return Ok(());
        }
    }
    if cancel.is_cancelled() {
        return Err(VerifyError::Stopped(Stopped::Cancelled));
    }
    let options = UnsealOptions {
        accept_deprecated_v1_data,
        remembered_key: order.last_used(keys),
    };
    desired_secret(sealed, keys, &options)
        .map(drop)
        .map_err(VerifyError::Unseal)
}

/// The posted value of `key` (as sent, and decoded) when it is a multi-recipient (age) value,
/// which rotation re-wraps rather than re-seals.
fn multi_recipient_value<'a>(sealed: &'a SealedSecret, key: &str) -> Option<(&'a str, Vec<u8>)> {
    let encoded = sealed.spec.encrypted_data.get(key)?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    (ValueFormat::of(&decoded) == ValueFormat::Age).then_some((encoded.as_str(), decoded))
}

/// The key order for one request: the hint first, bounded by [`max_key_operations`] and
/// `cancel`.
fn limited_order(sealed: &SealedSecret, keys: &Keys, cancel: &Cancel) -> KeyOrder {
    let budget = max_key_operations(sealed.spec.encrypted_data.len(), keys.len());
    KeyOrder::new(keys, sealed.sealing_key_hint().as_ref(), None).limited(budget, cancel.clone())
}

/// `posted` with every value re-sealed for the newest key (same scope, same label) and the hint
/// annotation naming that key; everything else as it was sent.
pub fn rotate<R>(
    posted: Posted,
    keys: &Keys,
    rng: &R,
    cancel: &Cancel,
) -> Result<Value, RotateError>
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
    let mut order = limited_order(&sealed, keys, cancel);
    let decrypted = decrypt_values(&sealed, keys, &mut order);
    if let Some(stopped) = order.stopped() {
        return Err(RotateError::Stopped(stopped));
    }
    let values = decrypted.map_err(RotateError::Unseal)?;

    let label = sealed.label();
    let public_key = newest.certificate().public_key();
    let mut resealed = Map::new();
    for (key, plaintext) in &values {
        if cancel.is_cancelled() {
            return Err(RotateError::Stopped(Stopped::Cancelled));
        }
        if let Some((original, decoded)) = multi_recipient_value(&sealed, key) {
            let rewrapped = Binding::from_label(&label)
                .and_then(|binding| age_value::rewrap(keys.ring(), &decoded, &binding, public_key))
                .map_err(RotateError::Seal)?;
            let value = match rewrapped {
                Some(bytes) => STANDARD.encode(bytes),
                None => original.to_owned(),
            };
            resealed.insert(key.clone(), Value::String(value));
            continue;
        }
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
    use crate::keys::testing::{keys, keys_of, pairs, seal, seal_age};
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
        assert_eq!(
            verify(&posted(&good), &keys, false, &Cancel::default()),
            Ok(())
        );

        let mut tampered = good.clone();
        let value = tampered["spec"]["encryptedData"]["password"]
            .as_str()
            .expect("value")
            .to_owned();
        let mut bytes = STANDARD.decode(&value).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        tampered["spec"]["encryptedData"]["password"] = json!(STANDARD.encode(bytes));
        let e = verify(&posted(&tampered), &keys, false, &Cancel::default()).expect_err("tampered");
        assert!(e.to_string().contains("encryptedData[\"password\"]"), "{e}");
        assert!(!e.to_string().contains(&value), "{e}");

        // Sealed namespace-wide, posted as strict: the label differs.
        let wrong_scope = document(json!({}), &[("password", "hunter2")], 0, b"prod");
        assert!(verify(&posted(&wrong_scope), &keys, false, &Cancel::default()).is_err());
        let mut right_scope = wrong_scope.clone();
        right_scope["metadata"]["annotations"] = json!({NAMESPACE_WIDE_ANNOTATION: "true"});
        assert_eq!(
            verify(&posted(&right_scope), &keys, false, &Cancel::default()),
            Ok(())
        );
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
        let rotated =
            rotate(posted(&original), &old_keys, &rng, &Cancel::default()).expect("rotates");

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

    /// A multi-recipient value is re-wrapped for the newest key: re-sealing it for that key
    /// alone would drop the other clusters and the break-glass key from it.
    #[test]
    fn rotate_rewraps_multi_recipient_values_keeping_the_other_recipients() {
        let old_keys = keys(3);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut original = document(json!({}), &[("password", "hunter2")], 2, b"prod/db");
        let shared = seal_age(&[2, 8], &[], b"shared", b"prod/db");
        original["spec"]["encryptedData"]["shared"] = json!(shared);

        verify(&posted(&original), &old_keys, false, &Cancel::default()).expect("verifies");
        let rotated =
            rotate(posted(&original), &old_keys, &rng, &Cancel::default()).expect("rotates");
        assert_ne!(rotated["spec"]["encryptedData"]["shared"], json!(shared));
        // The newest key alone opens the re-wrapped value; the old key alone no longer does.
        assert_eq!(
            decrypt(&keys(1), &rotated).expect("newest key decrypts"),
            vec![
                ("password".to_owned(), "hunter2".to_owned()),
                ("shared".to_owned(), "shared".to_owned())
            ]
        );
        assert_ne!(
            rotated["spec"]["encryptedData"]["password"],
            original["spec"]["encryptedData"]["password"]
        );
        // The other cluster (key 8) still opens the shared value of the rotated document.
        let mut other_cluster_view = rotated.clone();
        other_cluster_view["spec"]["encryptedData"]
            .as_object_mut()
            .expect("object")
            .remove("password");
        assert_eq!(
            decrypt(&keys_of(&[8]), &other_cluster_view).expect("other cluster decrypts"),
            vec![("shared".to_owned(), "shared".to_owned())]
        );
        // This cluster's old key is no longer a recipient.
        assert!(decrypt(&keys_of(&[2]), &other_cluster_view).is_err());
    }

    #[test]
    fn rotate_names_the_keys_it_cannot_decrypt() {
        let keys = keys(2);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Sealed for another name: the strict label is prod/db, this was sealed for prod/web.
        let foreign = document(json!({}), &[("password", "hunter2")], 0, b"prod/web");
        let e =
            rotate(posted(&foreign), &keys, &rng, &Cancel::default()).expect_err("cannot decrypt");
        assert!(matches!(e, RotateError::Unseal(_)));
        assert!(e.to_string().contains("encryptedData[\"password\"]"), "{e}");

        let legacy = json!({"kind": "SealedSecret", "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"encryptedData": {}, "data": "AgBxyz"}});
        assert!(matches!(
            rotate(posted(&legacy), &keys, &rng, &Cancel::default()),
            Err(RotateError::LegacyData)
        ));
        let empty = crate::keys::Keys::default();
        assert!(matches!(
            rotate(posted(&foreign), &empty, &rng, &Cancel::default()),
            Err(RotateError::NoKeys)
        ));
    }

    /// A body of `count` values that are valid base64 and long enough to reach RSA, but that
    /// no key decrypts.
    fn undecryptable(count: usize) -> Value {
        // A 2048-bit RSA block's length (256, big-endian), the block, an AES-GCM part.
        let mut blob = vec![1u8, 0];
        blob.extend_from_slice(&[7u8; 256 + 40]);
        let garbage = STANDARD.encode(blob);
        let values: Map<String, Value> = (0..count)
            .map(|i| (format!("v{i:05}"), json!(garbage)))
            .collect();
        json!({"kind": "SealedSecret", "metadata": {"name": "db", "namespace": "prod"},
               "spec": {"encryptedData": values}})
    }

    #[test]
    fn deep_bodies_are_refused_before_parsing() {
        let body = format!("x: {}", "{a: ".repeat(200));
        let e = parse(body.as_bytes()).expect_err("deep");
        assert!(
            e.to_string()
                .contains("document nested deeper than 64 levels at line 1"),
            "{e}"
        );
        let json = format!("{{\"a\": {}", "[".repeat(200));
        let e = parse(json.as_bytes()).expect_err("deep");
        assert!(e.to_string().contains("nested deeper than 64"), "{e}");
    }

    #[test]
    fn too_many_values_are_refused() {
        let e = parse(undecryptable(MAX_VALUES + 1).to_string().as_bytes()).expect_err("many");
        assert_eq!(
            e,
            BadRequest::TooManyValues {
                count: MAX_VALUES + 1,
                limit: MAX_VALUES
            }
        );
        assert!(parse(undecryptable(MAX_VALUES).to_string().as_bytes()).is_ok());
    }

    #[test]
    fn values_no_key_decrypts_cost_at_most_the_budget() {
        let keys = keys(4);
        let body = posted(&undecryptable(100));
        let e = verify(&body, &keys, false, &Cancel::default()).expect_err("budget");
        assert_eq!(
            e,
            VerifyError::Stopped(Stopped::OperationBudget(max_key_operations(100, 4)))
        );
        assert_eq!(
            keys.ops().get(),
            204,
            "2 x 100 values + 4 keys, not 100 x 4"
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let e = rotate(body, &keys, &rng, &Cancel::default()).expect_err("budget");
        assert!(
            matches!(e, RotateError::Stopped(Stopped::OperationBudget(204))),
            "{e}"
        );
        assert_eq!(keys.ops().get(), 408);
    }

    #[test]
    fn values_sealed_with_two_keys_in_turn_fit_the_budget() {
        let keys = keys(3);
        let mut document = document(json!({}), &[("password", "x")], 0, b"prod/db");
        for i in 0..20 {
            document["spec"]["encryptedData"][format!("v{i:02}")] =
                json!(seal(&pairs()[1 + i % 2], b"x", b"prod/db"));
        }
        assert_eq!(
            verify(&posted(&document), &keys, false, &Cancel::default()),
            Ok(())
        );
    }

    #[test]
    fn a_cancelled_request_does_no_private_key_work() {
        let keys = keys(2);
        let cancel = Cancel::default();
        cancel.cancel();
        let good = document(json!({}), &[("password", "hunter2")], 0, b"prod/db");
        let e = verify(&posted(&good), &keys, false, &cancel).expect_err("cancelled");
        assert_eq!(e, VerifyError::Stopped(Stopped::Cancelled));
        assert_eq!(keys.ops().get(), 0);
        assert_eq!(
            parse_cancellable(good.to_string().as_bytes(), &cancel).expect_err("cancelled"),
            BadRequest::Cancelled
        );
        // A guard dropped with its request cancels; so does a deadline in the past.
        let cancel = Cancel::default();
        drop(cancel.on_drop());
        assert!(cancel.is_cancelled());
        assert!(Cancel::with_deadline(std::time::Instant::now()).is_cancelled());
    }
}
