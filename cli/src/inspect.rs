//! Offline checks of a SealedSecret document against a certificate (`verify`, `check`).
//!
//! Without the private key nothing can be decrypted, but a lot can go wrong before that and is
//! visible: the structure, base64, the RSA length prefix against the certificate's modulus (a
//! value sealed for another key size, or truncated), scope annotations that do not say what the
//! author meant, a sealing-key hint naming another key, a name or namespace that differs from
//! the one the template says it was sealed for, and a Secret over Kubernetes' size limit. Every
//! problem is collected, naming the document and field.
//!
//! What stays invisible without decrypting: whether the values were sealed for this name and
//! namespace when the template was changed along, and a value cut short or altered past its
//! RSA part. [`OFFLINE_LIMITS`] says so to the user.

use sealbox_crypto::age_value::{self, RecipientKind};
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use sealbox_crypto::{Fingerprint, PublicKey, Scope, ValueFormat};

use crate::document::{Document, Object, expect_kind};
use crate::error::Error;
use crate::origin::field_path;
use crate::sealed::api_version;
use crate::secret::decode_base64;
use crate::secret_size;

/// AES-GCM's tag, which every sealed value ends with.
const GCM_TAG_LEN: usize = 16;
/// RSA ciphertext sizes of 1024- to 16384-bit keys.
const MIN_RSA_LEN: usize = 128;
const MAX_RSA_LEN: usize = 2048;

/// What an offline check cannot know, for `verify` to say after an "ok".
pub const OFFLINE_LIMITS: &str = "an offline check decrypts nothing, so it cannot tell whether the values were sealed for this name and namespace (a strict-scope file renamed or moved along with its template looks the same), nor whether a value was cut short or altered past its RSA part; `sealbox verify --online` asks the controller, `sealbox unseal --key` decrypts";

/// Whether [`check_document_with`] compares the sealing-key hint with the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintCheck {
    /// A hint naming another key is a problem (`verify`).
    Report,
    /// Leave the hint to the caller (`check` reports it as staleness, not breakage).
    Skip,
}

/// Checks one document, appending problems; returns how many values it checked.
pub fn check_document(document: &Document, key: &PublicKey, problems: &mut Vec<Error>) -> usize {
    check_document_with(document, Some(key), HintCheck::Report, problems)
}

/// [`check_document`], choosing whether the hint is checked. Without a key (a SealedSecret
/// sealed to a key that is not at hand) values are checked for base64 and their own
/// consistency only.
pub fn check_document_with(
    document: &Document,
    key: Option<&PublicKey>,
    hint: HintCheck,
    problems: &mut Vec<Error>,
) -> usize {
    let root = match document.object() {
        Ok(root) => root,
        Err(e) => {
            problems.push(e);
            return 0;
        }
    };
    if let Err(e) = expect_kind(&root, "SealedSecret", &api_version(), "") {
        problems.push(e);
        return 0;
    }
    if root.get("apiVersion").is_none() {
        problems.push(root.error("apiVersion", format!("missing; expected {}", api_version())));
    }
    // The hint names one cluster's key; a file whose every value is multi-recipient is checked
    // against the certificate value by value (is its key a recipient?), not by the hint.
    let hint = if all_multi_recipient(document) {
        HintCheck::Skip
    } else {
        hint
    };
    let metadata = root.object("metadata").unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let scope = match &metadata {
        Some(metadata) => check_metadata(metadata, key, hint, problems),
        None => {
            if root.get("metadata").is_none() {
                problems.push(root.error("metadata", "missing"));
            }
            Scope::Strict
        }
    };
    match root.object("spec") {
        Ok(Some(spec)) => {
            if let Some(metadata) = &metadata {
                check_sealed_for(metadata, &spec, scope, problems);
            }
            check_spec(&spec, scope, key, problems)
        }
        Ok(None) => {
            problems.push(root.error("spec", "missing"));
            0
        }
        Err(e) => {
            problems.push(e);
            0
        }
    }
}

/// Whether the document has values and all of them are multi-recipient (age) values.
fn all_multi_recipient(document: &Document) -> bool {
    let Some(values) = document
        .value
        .pointer("/spec/encryptedData")
        .and_then(serde_json::Value::as_object)
    else {
        return false;
    };
    !values.is_empty()
        && values.values().all(|v| {
            v.as_str()
                .and_then(decode_base64)
                .is_some_and(|bytes| ValueFormat::of(&bytes) == ValueFormat::Age)
        })
}

fn check_metadata(
    metadata: &Object<'_>,
    key: Option<&PublicKey>,
    hint_check: HintCheck,
    problems: &mut Vec<Error>,
) -> Scope {
    match metadata.str("name") {
        Ok(Some(name)) if !name.is_empty() => {}
        Ok(_) => problems.push(metadata.error("name", "missing")),
        Err(e) => problems.push(e),
    }
    let namespace = metadata.str("namespace").unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let annotations = match metadata.string_map("annotations", "") {
        Ok(map) => map.unwrap_or_default(),
        Err(e) => {
            problems.push(e);
            Default::default()
        }
    };
    let annotations_path = field_path("metadata", "annotations");
    let annotation_error = |name: &str, problem: String| Error::InvalidDocument {
        origin: metadata.origin().clone(),
        field: field_path(&annotations_path, name),
        problem,
    };

    let owned = annotations
        .iter()
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect();
    let scope = Scope::from_annotations(&owned);
    for annotation in [CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION] {
        if annotations.get(annotation).is_some_and(|v| *v != "true") {
            problems.push(annotation_error(
                annotation,
                format!(
                    "set, but not to \"true\", so it is ignored and the scope is {scope}; set it to \"true\" or remove it"
                ),
            ));
        }
    }
    if annotations.get(CLUSTER_WIDE_ANNOTATION) == Some(&"true")
        && annotations.get(NAMESPACE_WIDE_ANNOTATION) == Some(&"true")
    {
        problems.push(annotation_error(
            NAMESPACE_WIDE_ANNOTATION,
            "set together with cluster-wide, which wins; remove one".to_owned(),
        ));
    }
    if scope != Scope::ClusterWide && namespace.is_none_or(str::is_empty) {
        problems.push(metadata.error(
            "namespace",
            format!("missing; a {scope} SealedSecret is bound to the namespace it was sealed for"),
        ));
    }
    if let Some(hint) = annotations.get(SEALING_KEY_ANNOTATION) {
        match hint.parse::<Fingerprint>() {
            Ok(_) if hint_check == HintCheck::Skip => {}
            Ok(hint) => match key {
                Some(key) if &hint != key.fingerprint() => problems.push(annotation_error(
                    SEALING_KEY_ANNOTATION,
                    format!(
                        "sealed to another key: the hint names {hint}, the certificate's key is {}",
                        key.fingerprint()
                    ),
                )),
                _ => {}
            },
            Err(_) => problems.push(annotation_error(
                SEALING_KEY_ANNOTATION,
                "not a key fingerprint (expected SHA256:<base64>)".to_owned(),
            )),
        }
    }
    scope
}

fn check_spec(
    spec: &Object<'_>,
    scope: Scope,
    key: Option<&PublicKey>,
    problems: &mut Vec<Error>,
) -> usize {
    if spec.get("data").is_some() {
        problems.push(spec.error(
            "data",
            "legacy single-blob format; re-seal the Secret with `sealbox seal`",
        ));
    }
    if let Some(template) = spec.object("template").unwrap_or_else(|e| {
        problems.push(e);
        None
    }) {
        check_template(&template, scope, problems);
    }
    let encrypted = match spec.string_map("encryptedData", "") {
        Ok(Some(map)) => map,
        Ok(None) => {
            problems.push(spec.error("encryptedData", "missing"));
            return 0;
        }
        Err(e) => {
            problems.push(e);
            return 0;
        }
    };
    if encrypted.is_empty() {
        problems.push(spec.error("encryptedData", "empty; there is nothing to unseal"));
    }
    let size = secret_size::sealed_data_size(encrypted.values().copied());
    if let Some(problem) = secret_size::over_limit(size) {
        problems.push(spec.error(
            "encryptedData",
            format!("{problem}; split it into several SealedSecrets"),
        ));
    }
    let encrypted_path = field_path("spec", "encryptedData");
    for (name, value) in &encrypted {
        if let Err(problem) = check_value(value, key) {
            problems.push(Error::InvalidDocument {
                origin: spec.origin().clone(),
                field: field_path(&encrypted_path, name),
                problem,
            });
        }
    }
    encrypted.len()
}

/// Base64, then `u16 len(R) || R || AES-GCM(plaintext) || tag` with `len(R)` the modulus size
/// (when the key is known; otherwise a plausible RSA size).
fn check_value(encoded: &str, key: Option<&PublicKey>) -> std::result::Result<(), String> {
    let Some(bytes) = decode_base64(encoded) else {
        return Err("not valid base64".to_owned());
    };
    if ValueFormat::of(&bytes) == ValueFormat::Age {
        return check_age_value(&bytes, key);
    }
    let Some((prefix, rest)) = bytes.split_first_chunk::<2>() else {
        return Err(format!(
            "truncated: {} byte(s), shorter than the 2-byte length prefix",
            bytes.len()
        ));
    };
    let rsa_len = usize::from(u16::from_be_bytes(*prefix));
    if let Some(key) = key {
        let modulus_len = key.modulus_len();
        if rsa_len != modulus_len {
            return Err(format!(
                "the length prefix says {rsa_len} bytes of RSA ciphertext, but the certificate's {}-bit key makes {modulus_len}: sealed for another key{}",
                key.modulus_bits(),
                if rest.len() < rsa_len {
                    " or truncated"
                } else {
                    ""
                }
            ));
        }
    } else if !(MIN_RSA_LEN..=MAX_RSA_LEN).contains(&rsa_len) {
        return Err(format!(
            "the length prefix says {rsa_len} bytes of RSA ciphertext, which no RSA key makes: damaged"
        ));
    }
    if rest.len() < rsa_len + GCM_TAG_LEN {
        return Err(format!(
            "truncated: {} bytes, a value sealed for this key has at least {}",
            bytes.len(),
            2 + rsa_len + GCM_TAG_LEN
        ));
    }
    Ok(())
}

/// A multi-recipient value: its header reads within the bounds and, when the certificate is
/// known, names that certificate's key among its recipients.
fn check_age_value(bytes: &[u8], key: Option<&PublicKey>) -> std::result::Result<(), String> {
    let header = age_header(bytes)?;
    if let Some(key) = key
        && !header.stanzas.iter().any(|s| {
            s.kind
                == RecipientKind::SshRsa {
                    key_tag: key.fingerprint().age_tag(),
                }
        })
    {
        return Err(format!(
            "multi-recipient value not sealed for this certificate's key {} (its recipients: {})",
            key.fingerprint(),
            header.summary()
        ));
    }
    Ok(())
}

/// The header of a multi-recipient value, or why it is refused.
pub fn age_header(bytes: &[u8]) -> std::result::Result<age_value::Header, String> {
    if bytes.len() > age_value::MAX_VALUE_LEN {
        return Err(format!(
            "multi-recipient value larger than {} bytes",
            age_value::MAX_VALUE_LEN
        ));
    }
    age_value::header::parse(bytes).map_err(|e| e.to_string())
}

/// The RSA ciphertext length of one sealed value (its length prefix), if it decodes and is in
/// the Bitnami format.
pub fn sealed_rsa_len(encoded: &str) -> Option<usize> {
    let bytes = decode_base64(encoded)?;
    if ValueFormat::of(&bytes) == ValueFormat::Age {
        return None;
    }
    let (prefix, _) = bytes.split_first_chunk::<2>()?;
    Some(usize::from(u16::from_be_bytes(*prefix)))
}

/// The name and namespace the template says the values were sealed for, against the
/// SealedSecret's own: `seal` (and kubeseal) write both, so a difference means the file was
/// renamed or moved after sealing. Only what the scope binds matters: the name for strict, the
/// namespace for strict and namespace-wide. A file renamed in both places looks sealed for its
/// new name; only decrypting tells (`verify` says so).
fn check_sealed_for(
    metadata: &Object<'_>,
    spec: &Object<'_>,
    scope: Scope,
    problems: &mut Vec<Error>,
) {
    let Ok(Some(template)) = spec.object("template") else {
        return;
    };
    let Ok(Some(template_metadata)) = template.object("metadata") else {
        return;
    };
    let bound: &[&str] = match scope {
        Scope::Strict => &["namespace", "name"],
        Scope::NamespaceWide => &["namespace"],
        Scope::ClusterWide => &[],
    };
    for field in bound {
        let (Ok(Some(own)), Ok(Some(sealed_for))) =
            (metadata.str(field), template_metadata.str(field))
        else {
            continue;
        };
        if !sealed_for.is_empty() && own != sealed_for {
            problems.push(metadata.error(
                field,
                format!(
                    "{own:?}, but spec.template.metadata.{field} is {sealed_for:?}: {} after sealing? {scope} values are bound to the {field} they were sealed for and will not unseal here; {} back, or seal the Secret again",
                    if *field == "name" { "renamed" } else { "moved" },
                    if *field == "name" { "rename it" } else { "move it" },
                ),
            ));
        }
    }
}

fn check_template(template: &Object<'_>, scope: Scope, problems: &mut Vec<Error>) {
    if let Err(e) = template.str("type") {
        problems.push(e);
    }
    if let Err(e) = template.bool("immutable") {
        problems.push(e);
    }
    if let Err(e) = template.string_map("data", "") {
        problems.push(e);
    }
    let metadata = match template.object("metadata") {
        Ok(Some(metadata)) => metadata,
        Ok(None) => return,
        Err(e) => {
            problems.push(e);
            return;
        }
    };
    if let Err(e) = metadata.string_map("labels", "") {
        problems.push(e);
    }
    match metadata.string_map("annotations", "") {
        Ok(Some(annotations)) => {
            let owned = annotations
                .iter()
                .map(|(k, v)| (k.clone(), (*v).to_owned()))
                .collect();
            let template_scope = Scope::from_annotations(&owned);
            let mentions_scope = [CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION]
                .iter()
                .any(|a| annotations.contains_key(*a));
            if mentions_scope && template_scope != scope {
                problems.push(metadata.error(
                    "annotations",
                    format!(
                        "the template asks for {template_scope} scope, but only the SealedSecret's own annotations count: its values are {scope}; move the annotation to metadata.annotations and re-seal"
                    ),
                ));
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;

    fn problems_of(yaml: &str, key: &PublicKey) -> Vec<String> {
        let input = parse("ss.yaml", yaml.as_bytes()).unwrap();
        let mut problems = Vec::new();
        for document in &input.documents {
            check_document(document, key, &mut problems);
        }
        problems.iter().map(ToString::to_string).collect()
    }

    fn fixture_key() -> PublicKey {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crypto/tests/fixtures/cert.pem"
        ))
        .unwrap();
        PublicKey::from_pem(&pem).unwrap()
    }

    #[test]
    fn independent_fixtures_verify_clean() {
        let key = fixture_key();
        for scope in ["strict", "namespace-wide", "cluster-wide"] {
            let yaml = std::fs::read_to_string(format!(
                "{}/../crypto/tests/fixtures/sealedsecret-{scope}.yaml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert_eq!(problems_of(&yaml, &key), Vec::<String>::new(), "{scope}");
        }
    }

    #[test]
    fn every_problem_is_listed() {
        let key = fixture_key();
        let yaml = r#"
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: db
  annotations:
    sealedsecrets.bitnami.com/namespace-wide: "True"
    sealbox.dev/sealing-key: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
spec:
  encryptedData:
    short: AgA=
    nobase64: "***"
  template:
    metadata:
      annotations:
        sealedsecrets.bitnami.com/cluster-wide: "true"
"#;
        let problems = problems_of(yaml, &key);
        let all = problems.join("\n");
        assert_eq!(problems.len(), 6, "{all}");
        assert!(
            all.contains("namespace-wide\"]: set, but not to \"true\""),
            "{all}"
        );
        assert!(all.contains("metadata.namespace: missing"), "{all}");
        assert!(all.contains("sealed to another key"), "{all}");
        assert!(all.contains("spec.encryptedData.short: truncated"), "{all}");
        assert!(
            all.contains("spec.encryptedData.nobase64: not valid base64"),
            "{all}"
        );
        assert!(all.contains("template asks for cluster-wide"), "{all}");
    }

    /// Issue 17: a strict-scope file renamed after sealing passed offline `verify` as "ok".
    #[test]
    fn a_rename_the_template_contradicts_is_a_problem_for_what_the_scope_binds() {
        let key = fixture_key();
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crypto/tests/fixtures/sealedsecret-strict.yaml"
        ))
        .unwrap();
        let value: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        let name = value["metadata"]["name"].as_str().unwrap().to_owned();
        let with = |top: &str, template: Option<&str>, scope: Option<&str>| {
            let mut v = value.clone();
            v["metadata"]["name"] = top.into();
            v["spec"]["template"]["metadata"]["name"] = template.unwrap_or(&name).into();
            if let Some(annotation) = scope {
                v["metadata"]["annotations"][annotation] = "true".into();
            }
            problems_of(&serde_json::to_string(&v).unwrap(), &key)
        };
        let renamed = with("renamed", None, None);
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert!(
            renamed[0].contains("metadata.name: \"renamed\", but spec.template.metadata.name is")
                && renamed[0].contains("renamed after sealing"),
            "{renamed:?}"
        );
        // Renamed in both places: invisible offline (verify's note says so).
        assert_eq!(with("renamed", Some("renamed"), None), Vec::<String>::new());
        // A namespace-wide value is not bound to the name.
        let wide = with("renamed", None, Some(NAMESPACE_WIDE_ANNOTATION));
        assert!(
            wide.iter().all(|p| !p.contains("renamed after")),
            "{wide:?}"
        );
    }

    #[test]
    fn a_secret_over_the_size_limit_is_a_problem() {
        let key = fixture_key();
        // Two values of 600,000 bytes of plaintext each, framed for the fixture's key.
        let mut value = u16::try_from(key.modulus_len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        value.resize(2 + key.modulus_len() + 600_000 + 16, 0);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &value);
        let yaml = format!(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {{name: big, namespace: ns}}\nspec:\n  encryptedData:\n    a: {encoded}\n    b: {encoded}\n"
        );
        let problems = problems_of(&yaml, &key);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("spec.encryptedData: its data is 1,200,000 bytes (1.14 MiB)"),
            "{problems:?}"
        );
    }
}
