//! Key Secrets: how Bitnami (and so Sealbox) stores a sealing key in the cluster, and reading
//! private keys from any form a user may hold them in.
//!
//! A key Secret is a `kubernetes.io/tls` Secret in the controller's namespace, named by
//! `generateName: sealed-secrets-key`, labelled `sealedsecrets.bitnami.com/sealed-secrets-key:
//! active`, with the PKCS#1 PEM key in `tls.key` and the certificate in `tls.crt`. This module
//! works on plain data so that it needs no Kubernetes client types.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize as _, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize as _, Zeroizing};

use crate::certificate::Certificate;
use crate::error::{Error, Result};
use crate::key_pair::KeyPair;
use crate::private_key::PrivateKey;

/// The label that marks a Secret as a sealing key.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// The value of [`KEY_LABEL`] for keys in use; any other value means the key is ignored.
pub const KEY_LABEL_ACTIVE: &str = "active";
/// `metadata.generateName` of new key Secrets (no trailing dash), and the exact name of the
/// legacy single key Secret.
pub const DEFAULT_KEY_PREFIX: &str = "sealed-secrets-key";
/// The Secret type of key Secrets.
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
/// The data key holding the certificate PEM.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The data key holding the private key PEM.
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// The largest input [`parse_key_secrets`] and [`parse_private_keys`] read. A key Secret with
/// a 4096-bit key and its certificate is ~8 KiB as YAML; a decade of monthly keys is ~1 MiB.
/// 16 MiB leaves room for verbose exports (managedFields) and stays quick to parse.
pub const MAX_KEY_INPUT_BYTES: usize = 16 * 1024 * 1024;
/// The most key Secrets (documents plus `List` items) one input may hold: a decade of monthly
/// keys is 120; every one costs an RSA key check, so the count bounds the work.
pub const MAX_KEY_SECRETS: usize = 1024;
/// The largest `tls.key` or `tls.crt` value: an RSA-8192 key (aws-lc's largest) is ~6.3 KiB of
/// PEM, base64 in `data` a third more; a certificate with a chain stays far below.
pub const MAX_KEY_FIELD_BYTES: usize = 64 * 1024;

/// The most `[` and `{` characters a YAML key input may hold. libyaml's work grows with the
/// square of the flow nesting depth (100 KB of `[` took 12 s of CPU), and the number of these
/// characters bounds that depth from above whatever quotes or comments surround them (at this
/// bound the worst case costs ~35 ms; at 4096, 0.13 s). Key Secrets are block-style YAML: a kubectl export with
/// managedFields has about ten per Secret, so this allows ~200 keys; JSON input (parsed
/// linearly, depth-limited by serde_json) is not counted.
pub const MAX_YAML_FLOW_OPENINGS: usize = 2048;

/// One key Secret in Bitnami's stored form, independent of kube types. `Debug` redacts the key.
#[derive(Clone, Default)]
pub struct KeySecret {
    /// `metadata.name` (set once the API server created the Secret).
    pub name: Option<String>,
    /// `metadata.generateName` (set on new Secrets).
    pub generate_name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `tls.crt`: the certificate PEM (empty if the Secret had none).
    pub tls_crt: String,
    /// `tls.key`: the private key PEM.
    pub tls_key: Zeroizing<String>,
}

impl KeySecret {
    /// The Secret that stores `key_pair`: `generateName` = `key_prefix`, label active, type
    /// `kubernetes.io/tls`, PKCS#1 key.
    pub fn from_key_pair(key_pair: &KeyPair, namespace: &str, key_prefix: &str) -> KeySecret {
        KeySecret {
            name: None,
            generate_name: Some(key_prefix.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: BTreeMap::from([(KEY_LABEL.to_owned(), KEY_LABEL_ACTIVE.to_owned())]),
            tls_crt: key_pair.certificate.to_pem(),
            tls_key: key_pair.private_key.to_pkcs1_pem(),
        }
    }

    /// True if labelled [`KEY_LABEL`]`: active`.
    pub fn is_active(&self) -> bool {
        self.labels.get(KEY_LABEL).map(String::as_str) == Some(KEY_LABEL_ACTIVE)
    }

    /// `Secret <namespace>/<name>` for messages (`<generateName>*` before creation).
    pub fn display_name(&self) -> String {
        let name = match (&self.name, &self.generate_name) {
            (Some(name), _) => name.clone(),
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => "(unnamed)".to_owned(),
        };
        match &self.namespace {
            Some(namespace) => format!("Secret {namespace}/{name}"),
            None => format!("Secret {name}"),
        }
    }

    /// The complete v1 Secret manifest, `data` base64-encoded.
    ///
    /// The returned value holds the key (base64) in ordinary strings: keep it short-lived.
    pub fn to_json(&self) -> Value {
        let mut metadata = Map::new();
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                metadata.insert(key.to_owned(), Value::String(value.clone()));
            }
        };
        put("name", &self.name);
        put("generateName", &self.generate_name);
        put("namespace", &self.namespace);
        if !self.labels.is_empty() {
            let labels = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            metadata.insert("labels".to_owned(), Value::Object(labels));
        }
        let mut data = Map::new();
        data.insert(
            TLS_CERT_KEY.to_owned(),
            Value::String(STANDARD.encode(&self.tls_crt)),
        );
        // Moved into the Value, never copied.
        data.insert(
            TLS_PRIVATE_KEY_KEY.to_owned(),
            Value::String(std::mem::take(&mut *base64_zeroizing(
                self.tls_key.as_bytes(),
            ))),
        );
        let mut secret = Map::new();
        secret.insert("apiVersion".to_owned(), Value::from("v1"));
        secret.insert("kind".to_owned(), Value::from("Secret"));
        secret.insert("metadata".to_owned(), Value::Object(metadata));
        secret.insert("type".to_owned(), Value::from(SECRET_TYPE_TLS));
        secret.insert("data".to_owned(), Value::Object(data));
        Value::Object(secret)
    }

    /// The manifest of [`KeySecret::to_json`] as YAML (apiVersion, kind, metadata, type, data).
    pub fn to_yaml(&self) -> Result<String> {
        let manifest = Manifest {
            api_version: "v1",
            kind: "Secret",
            metadata: Metadata {
                name: self.name.as_deref(),
                generate_name: self.generate_name.as_deref(),
                namespace: self.namespace.as_deref(),
                labels: &self.labels,
            },
            type_: SECRET_TYPE_TLS,
            data: Data {
                tls_crt: STANDARD.encode(&self.tls_crt),
                tls_key: base64_zeroizing(self.tls_key.as_bytes()),
            },
        };
        serde_norway::to_string(&manifest).map_err(|source| Error::RenderKeySecret { source })
    }

    /// The key and certificate, checked to belong together.
    pub fn key_pair(&self) -> Result<KeyPair> {
        let origin = self.display_name();
        let private_key = PrivateKey::from_pem_with_origin(
            self.tls_key.as_bytes(),
            &format!("{origin} tls.key"),
        )?;
        let certificate = Certificate::from_pem_with_origin(
            self.tls_crt.as_bytes(),
            &format!("{origin} tls.crt"),
        )?;
        KeyPair::checked(private_key, certificate, &origin)
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySecret")
            .field("name", &self.name)
            .field("generate_name", &self.generate_name)
            .field("namespace", &self.namespace)
            .field("labels", &self.labels)
            .field("tls_crt", &format_args!("<{} bytes>", self.tls_crt.len()))
            .field("tls_key", &format_args!("<redacted>"))
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(rename = "type")]
    type_: &'static str,
    data: Data,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Data {
    #[serde(rename = "tls.crt")]
    tls_crt: String,
    #[serde(rename = "tls.key")]
    tls_key: Zeroizing<String>,
}

/// Base64 of secret bytes, encoded straight into the (exactly sized) result.
fn base64_zeroizing(bytes: &[u8]) -> Zeroizing<String> {
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    let mut buf = Zeroizing::new(vec![0u8; len]);
    let written = STANDARD.encode_slice(bytes, &mut buf[..]).unwrap_or(0);
    buf.truncate(written);
    // Base64 is ASCII, so this cannot fail.
    Zeroizing::new(String::from_utf8(std::mem::take(&mut *buf)).unwrap_or_default())
}

/// Reads key Secrets from a Secret manifest (YAML or JSON), a v1 `List`/`SecretList` of them,
/// or multi-document YAML of those. `origin` (e.g. a file name) goes into error messages.
pub fn parse_key_secrets(bytes: &[u8], origin: &str) -> Result<Vec<KeySecret>> {
    check_input_len(bytes, origin)?;
    let documents = Documents::parse(bytes, origin)?;
    let mut secrets = Vec::new();
    let numbered = documents.0.len() > 1;
    for (index, document) in documents.0.iter().enumerate() {
        let path = if numbered {
            format!("document {}", index + 1)
        } else {
            "document".to_owned()
        };
        collect_secrets(document, &path, origin, &mut secrets)?;
    }
    Ok(secrets)
}

fn check_input_len(bytes: &[u8], origin: &str) -> Result<()> {
    if bytes.len() > MAX_KEY_INPUT_BYTES {
        return Err(Error::LimitExceeded {
            origin: origin.to_owned(),
            what: "the size of a key input (bytes)",
            limit: MAX_KEY_INPUT_BYTES,
        });
    }
    Ok(())
}

fn too_many_secrets(origin: &str) -> Error {
    Error::LimitExceeded {
        origin: origin.to_owned(),
        what: "the number of key Secrets",
        limit: MAX_KEY_SECRETS,
    }
}

/// Reads private keys from any accepted form: PEM (PKCS#1 or PKCS#8, several blocks allowed,
/// certificates skipped), a key Secret (YAML or JSON, `data."tls.key"` base64 or `stringData`),
/// a v1 `List` (`kind: List` or `SecretList`, `items`) of key Secrets, or multi-document YAML of
/// those. `origin` (e.g. a file name) goes into error messages.
///
/// Input counts as PEM when it starts with `-----BEGIN ` or a line does (inside YAML such
/// lines are indented, inside JSON escaped).
pub fn parse_private_keys(bytes: &[u8], origin: &str) -> Result<Vec<PrivateKey>> {
    check_input_len(bytes, origin)?;
    let keys = if pem_at_line_start(bytes) {
        PrivateKey::all_from_pem(bytes, origin)?
    } else {
        parse_key_secrets(bytes, origin)?
            .iter()
            .map(|secret| {
                let origin = format!("{origin}: {} tls.key", secret.display_name());
                PrivateKey::from_pem_with_origin(secret.tls_key.as_bytes(), &origin)
            })
            .collect::<Result<Vec<_>>>()?
    };
    if keys.is_empty() {
        return Err(Error::NoPrivateKey {
            origin: origin.to_owned(),
        });
    }
    Ok(keys)
}

fn pem_at_line_start(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
        || bytes
            .split(|&b| b == b'\n')
            .any(|line| line.starts_with(b"-----BEGIN "))
}

/// Parsed documents; every string in them is wiped on drop (they may hold key material).
struct Documents(Vec<Value>);

impl Documents {
    fn parse(bytes: &[u8], origin: &str) -> Result<Documents> {
        let invalid = |reason: String| Error::ParseManifest {
            origin: origin.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| invalid(format!("not UTF-8 text (byte {})", e.valid_up_to())))?;
        let mut documents = Documents(Vec::new());
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            // Error texts are built from positions only: serde messages can quote the input.
            let value = serde_json::from_str(text).map_err(|e| {
                invalid(format!(
                    "not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            documents.0.push(value);
        } else {
            let openings = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
            if openings > MAX_YAML_FLOW_OPENINGS {
                return Err(Error::LimitExceeded {
                    origin: origin.to_owned(),
                    what: "the number of '[' and '{' in YAML (write the file as JSON or block-style YAML)",
                    limit: MAX_YAML_FLOW_OPENINGS,
                });
            }
            for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
                if index == MAX_KEY_SECRETS {
                    return Err(too_many_secrets(origin));
                }
                let value = Value::deserialize(document).map_err(|e| {
                    invalid(match e.location() {
                        Some(at) => format!(
                            "not valid YAML (line {}, column {})",
                            at.line(),
                            at.column()
                        ),
                        None => "not valid YAML".to_owned(),
                    })
                })?;
                if !value.is_null() {
                    documents.0.push(value);
                }
            }
        }
        Ok(documents)
    }
}

impl Drop for Documents {
    fn drop(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        self.0.iter_mut().for_each(wipe);
    }
}

fn collect_secrets(
    value: &Value,
    path: &str,
    origin: &str,
    out: &mut Vec<KeySecret>,
) -> Result<()> {
    let invalid = |object: String, reason: String| Error::InvalidKeySecret {
        origin: origin.to_owned(),
        object,
        reason,
    };
    let Some(object) = value.as_object() else {
        return Err(invalid(
            path.to_owned(),
            "expected a Secret, a List of Secrets or PEM".to_owned(),
        ));
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("Secret") => {
            if out.len() == MAX_KEY_SECRETS {
                return Err(too_many_secrets(origin));
            }
            out.push(secret_from_value(object, path, origin)?);
        }
        // Lists hold Secrets; a List inside a List is no export kubectl writes, and refusing it
        // keeps this walk one level deep.
        Some("List" | "SecretList") if !path.contains("items[") => {
            let items = object
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(path.to_owned(), "a List without items".to_owned()))?;
            if out.len().saturating_add(items.len()) > MAX_KEY_SECRETS {
                return Err(too_many_secrets(origin));
            }
            for (index, item) in items.iter().enumerate() {
                collect_secrets(item, &format!("{path} items[{index}]"), origin, out)?;
            }
        }
        Some("List" | "SecretList") => {
            return Err(invalid(
                path.to_owned(),
                "a List inside a List (expected Secrets as items)".to_owned(),
            ));
        }
        Some(kind) => {
            return Err(invalid(
                path.to_owned(),
                format!("kind {kind} is not Secret, List or SecretList"),
            ));
        }
        None => {
            return Err(invalid(
                path.to_owned(),
                "no kind (expected Secret, List or SecretList)".to_owned(),
            ));
        }
    }
    Ok(())
}

fn secret_from_value(object: &Map<String, Value>, path: &str, origin: &str) -> Result<KeySecret> {
    let metadata = object.get("metadata").and_then(Value::as_object);
    let text = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let labels = metadata
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut secret = KeySecret {
        name: text("name"),
        generate_name: text("generateName"),
        namespace: text("namespace"),
        labels,
        ..KeySecret::default()
    };
    let object_name = if secret.name.is_some() {
        secret.display_name()
    } else {
        format!("{path} (Secret)")
    };
    let invalid = |reason: String| Error::InvalidKeySecret {
        origin: origin.to_owned(),
        object: object_name.clone(),
        reason,
    };

    let tls_key = data_value(object, TLS_PRIVATE_KEY_KEY).map_err(&invalid)?;
    secret.tls_key = tls_key.ok_or_else(|| {
        invalid(format!(
            "no {TLS_PRIVATE_KEY_KEY} in data or stringData; is this a sealing key Secret?"
        ))
    })?;
    if let Some(crt) = data_value(object, TLS_CERT_KEY).map_err(&invalid)? {
        secret.tls_crt = crt.to_string();
    }
    Ok(secret)
}

/// `stringData[key]`, else base64-decoded `data[key]`, as text.
fn data_value(
    object: &Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<Zeroizing<String>>, String> {
    let field = |section: &str| object.get(section).and_then(|s| s.get(key));
    let too_long = |section: &str| {
        format!(
            "{section}.\"{key}\" is longer than {MAX_KEY_FIELD_BYTES} bytes; is this a sealing key?"
        )
    };
    if let Some(value) = field("stringData") {
        let text = value
            .as_str()
            .ok_or_else(|| format!("stringData.\"{key}\" is not a string"))?;
        if text.len() > MAX_KEY_FIELD_BYTES {
            return Err(too_long("stringData"));
        }
        return Ok(Some(Zeroizing::new(text.to_owned())));
    }
    let Some(value) = field("data") else {
        return Ok(None);
    };
    let encoded = value
        .as_str()
        .ok_or_else(|| format!("data.\"{key}\" is not a string"))?;
    if encoded.len() > MAX_KEY_FIELD_BYTES {
        return Err(too_long("data"));
    }
    let mut decoded = Zeroizing::new(Vec::with_capacity(encoded.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(encoded.trim(), &mut decoded)
        .map_err(|_| format!("data.\"{key}\" is not valid base64"))?;
    let text = String::from_utf8(std::mem::take(&mut *decoded)).map_err(|e| {
        // Wipe the bytes that from_utf8 hands back on failure.
        e.into_bytes().zeroize();
        format!("data.\"{key}\" is not PEM text")
    })?;
    Ok(Some(Zeroizing::new(text)))
}
