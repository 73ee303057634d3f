//! `--recovery-unseal`: SealedSecrets decrypted offline with backed-up private keys
//! (`--recovery-private-key`, repeatable or comma-separated: PEM keys, key Secrets in YAML or
//! JSON, a `v1/List` of them — also the kind-less list a typed client's `json.Marshal` writes).
//!
//! The Secret is written in kubeseal's shape: the template's metadata with the SealedSecret's
//! name and namespace, an owner reference to the SealedSecret (unless the template asks to skip
//! it), `type`, `immutable`, `data`. `spec.template.data` (Go templates) is rendered only by the
//! controller; those keys are named on stderr and left out (docs/USAGE.md (kubeseal mode)).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crds::SealedSecret;
use sealbox_crypto::PrivateKey;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::bounded;
use crate::document::{Document, parse};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::kubeseal::flags::{KubesealArgs, KubesealFormat};
use crate::kubeseal::render::{compact_metadata, render};
use crate::kubeseal::usage;
use crate::output::note;
use crate::sealed;

/// The template annotation that keeps the owner reference off the Secret.
const SKIP_OWNER_REFERENCES: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";

/// Unseals every SealedSecret of the input into `out`.
pub fn run(
    args: &KubesealArgs,
    (input_name, bytes): (&str, &[u8]),
    format: KubesealFormat,
    out: &mut Vec<u8>,
    stderr: &mut impl Write,
) -> Result<()> {
    let keyring = Keyring::new(load_keys(&args.recovery_private_key)?);
    let input = parse(input_name, bytes)?;
    if input.documents.is_empty() {
        return Err(usage("no sealed secret found in the input"));
    }
    let mut secrets = Vec::with_capacity(input.documents.len());
    for document in &input.documents {
        let object = sealed::from_document(document)?;
        secrets.push(unseal(&object, &keyring, &document.origin, stderr)?);
    }
    out.extend_from_slice(&render(&secrets, format)?);
    Ok(())
}

/// The keys of every file, in order.
fn load_keys(paths: &[PathBuf]) -> Result<Vec<PrivateKey>> {
    let mut keys = Vec::new();
    for path in paths {
        let bytes =
            bounded::read_bounded(path, bounded::KEY_FILE).map_err(|source| Error::ReadKey {
                path: path.clone(),
                source,
            })?;
        let origin = path.display().to_string();
        let parsed = match sealbox_crypto::parse_private_keys(&bytes, &origin) {
            Ok(found) => Ok(found),
            Err(first) => match with_kinds(&origin, &bytes) {
                Some(typed) => sealbox_crypto::parse_private_keys(&typed, &origin),
                None => Err(first),
            },
        };
        keys.extend(parsed.map_err(|source| Error::ParseKey {
            path: path.clone(),
            source: Box::new(source),
        })?);
    }
    Ok(keys)
}

/// A key file whose documents lack `kind` (a typed client's `SecretList` marshalled as is) as
/// a `v1/List` of Secrets; `None` when every document has a kind (nothing to add).
fn with_kinds(origin: &str, bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let input = parse(origin, bytes).ok()?;
    let kindless = |v: &Value| v.as_object().is_some_and(|o| !o.contains_key("kind"));
    if !input.documents.iter().any(|d| kindless(&d.value)) {
        return None;
    }
    let mut items = Vec::new();
    for document in &input.documents {
        match document.value.get("items").and_then(Value::as_array) {
            Some(list) if kindless(&document.value) => items.extend(list.iter().cloned()),
            _ => items.push(document.value.clone()),
        }
    }
    for item in &mut items {
        if let Some(object) = item.as_object_mut().filter(|o| !o.contains_key("kind")) {
            object.insert("kind".to_owned(), json!("Secret"));
            object.entry("apiVersion").or_insert_with(|| json!("v1"));
        }
    }
    let list = Document {
        origin: input.documents.first()?.origin.clone(),
        value: json!({"apiVersion": "v1", "kind": "List", "items": items}),
    };
    serde_json::to_vec(&list.value).ok().map(Zeroizing::new)
}

/// One SealedSecret as the Secret the controller would make of it (without templates).
fn unseal(
    object: &SealedSecret,
    keyring: &Keyring,
    origin: &crate::origin::Origin,
    stderr: &mut impl Write,
) -> Result<Value> {
    let label = object.label();
    let mut hint = object.sealing_key_hint();
    let mut data = Map::new();
    let mut failed = Vec::new();
    for (key, value) in &object.spec.encrypted_data {
        match keyring.open(value, &label, hint.as_ref()) {
            Some((plaintext, opened_by)) => {
                hint = Some(opened_by);
                data.insert(key.clone(), Value::from(STANDARD.encode(&*plaintext)));
            }
            None => failed.push(key.as_str()),
        }
    }
    if !failed.is_empty() {
        // Plaintexts of the keys that did open are wiped with the map's strings.
        let mut wiped = Value::Object(data);
        crate::document::scrub(&mut wiped);
        return Err(Error::Kubeseal {
            message: format!(
                "no key could decrypt secret ({}); check the --recovery-private-key files, and that {} was not renamed or moved (its scope is {})",
                failed.join(", "),
                sealed::display_name(object),
                object.scope()
            ),
            category: "unseal",
        });
    }
    let template = object.spec.template.clone().unwrap_or_default();
    if let Some(templated) = template.data.as_ref().filter(|d| !d.is_empty()) {
        let keys: Vec<&str> = templated.keys().map(String::as_str).collect();
        for key in &keys {
            if let Some(mut value) = data.remove(*key) {
                crate::document::scrub(&mut value);
            }
        }
        note(
            stderr,
            format_args!(
                "{origin}: spec.template.data keys [{}] are rendered by the controller, not offline; they are left out",
                keys.join(", ")
            ),
        );
    }
    let metadata = secret_metadata(object, &template);
    let mut secret = Map::new();
    secret.insert("kind".to_owned(), json!("Secret"));
    secret.insert("apiVersion".to_owned(), json!("v1"));
    secret.insert("metadata".to_owned(), Value::Object(metadata));
    if let Some(immutable) = template.immutable {
        secret.insert("immutable".to_owned(), json!(immutable));
    }
    secret.insert("data".to_owned(), Value::Object(data));
    if let Some(type_) = template.type_.filter(|t| !t.is_empty()) {
        secret.insert("type".to_owned(), json!(type_));
    }
    Ok(Value::Object(secret))
}

/// The template's metadata, forced to the SealedSecret's name and namespace, with the owner
/// reference the controller would set.
fn secret_metadata(
    object: &SealedSecret,
    template: &sealbox_crds::SecretTemplateSpec,
) -> Map<String, Value> {
    let template_metadata = template.metadata.clone().unwrap_or_default();
    let skip_owner = template_metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_OWNER_REFERENCES))
        .is_some_and(|v| v == "true");
    let mut metadata = match serde_json::to_value(&template_metadata) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let name = object.metadata.name.clone().unwrap_or_default();
    metadata.insert("name".to_owned(), json!(name));
    metadata.insert(
        "namespace".to_owned(),
        json!(object.metadata.namespace.clone()),
    );
    if !skip_owner {
        let owner: BTreeMap<&str, Value> = BTreeMap::from([
            ("apiVersion", json!(sealed::api_version())),
            ("kind", json!("SealedSecret")),
            ("name", json!(name)),
            (
                "uid",
                json!(object.metadata.uid.clone().unwrap_or_default()),
            ),
            ("controller", json!(true)),
        ]);
        metadata.insert("ownerReferences".to_owned(), json!([owner]));
    }
    compact_metadata(&mut metadata);
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kindless_secret_list_becomes_a_v1_list() {
        let bytes = br#"{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k"},"data":{"tls.key":"eA=="}}]}"#;
        let typed = with_kinds("keys.json", bytes).unwrap();
        let value: Value = serde_json::from_slice(&typed).unwrap();
        assert_eq!(value["kind"], "List");
        assert_eq!(value["items"][0]["kind"], "Secret");
        assert_eq!(value["items"][0]["metadata"]["name"], "k");
        assert!(with_kinds("x", br#"{"kind":"List","items":[]}"#).is_none());
    }
}
