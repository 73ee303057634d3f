//! `sealbox unseal`: recover Secrets from SealedSecrets with private keys, fully offline.
//!
//! The Secret is built as the controller builds it: template metadata, type and immutable,
//! name and namespace forced to the SealedSecret's. `spec.template.data` (Go templates over the
//! decrypted values) is the controller's job; such keys are listed on stderr and left out, so
//! the output never claims a value the cluster would not have.
//!
//! Multi-recipient (age) values open with the same keys (their `ssh-rsa` stanza, unwrapped with
//! aws-lc-rs) or with an age identity (`--identity`, e.g. the break-glass key); their scope line
//! must name this SealedSecret, as the controller requires.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crds::SealedSecret;
use sealbox_crypto::age_value::{open_with_identities, open_with_keys, parse_identity_file};
use sealbox_crypto::{Binding, Error as CryptoError, PrivateKey, RsaKeyRing, Scope, ValueFormat};
use serde::Serialize;
use zeroize::Zeroize;

use crate::cli::UnsealArgs;
use crate::document::read_documents;
use crate::error::{Error, Result};
use crate::keyring::{hinted_first, load_keys};
use crate::origin::Origin;
use crate::output::{Visibility, emit, note, render};
use crate::sealed::{self, display_name};
use crate::secret::decode_base64;

/// Runs `sealbox unseal`.
pub fn run(
    args: &UnsealArgs,
    stdin: impl Read,
    stdout: impl Write,
    mut stderr: impl Write,
) -> Result<()> {
    let keys = if args.keys.is_empty() {
        Vec::new()
    } else {
        load_keys(&args.keys, &args.backup.openers())?
    };
    let openers = Openers {
        ring: RsaKeyRing::new(keys.iter().cloned()),
        keys,
        identities: load_identities(&args.backup.identities)?,
    };
    let input = read_documents(args.input.file.as_deref(), stdin, "a SealedSecret")?;
    let mut secrets = Vec::with_capacity(input.documents.len());
    for document in &input.documents {
        let sealed = sealed::from_document(document)?;
        secrets.push(unseal_secret(
            &sealed,
            &document.origin,
            &openers,
            &mut stderr,
        )?);
    }
    let rendered = render(&secrets, args.output.format)?;
    emit(
        &rendered,
        args.output.write.as_deref(),
        Visibility::Private,
        stdout,
    )
}

/// What values are opened with: RSA private keys (both formats) and age identities
/// (multi-recipient values only). Never printed.
pub struct Openers {
    /// The private keys.
    pub keys: Vec<PrivateKey>,
    /// The same keys by age stanza tag.
    pub ring: RsaKeyRing,
    /// age X25519 identities.
    pub identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Openers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Openers")
            .field("keys", &self.ring)
            .field("identities", &self.identities.len())
            .finish()
    }
}

/// Reads age identity files (bounded), naming the file in errors, never a key.
fn load_identities(paths: &[std::path::PathBuf]) -> Result<Vec<age::x25519::Identity>> {
    let mut identities = Vec::new();
    for path in paths {
        let bytes =
            crate::bounded::read_bounded(path, crate::bounded::IDENTITY_FILE).map_err(|e| {
                Error::ReadIdentity {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let origin = path.display().to_string();
        identities.extend(parse_identity_file(&bytes, &origin).map_err(|e| {
            Error::ReadIdentity {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?);
    }
    Ok(identities)
}

/// A Secret as `unseal` prints it. Its values are zeroized on drop; `Debug` shows key names only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsealedSecret {
    api_version: &'static str,
    kind: &'static str,
    metadata: UnsealedMetadata,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<bool>,
    data: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct UnsealedMetadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for UnsealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedSecret")
            .field("metadata", &self.metadata)
            .field("type_", &self.type_)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for UnsealedSecret {
    fn drop(&mut self) {
        self.data.values_mut().for_each(Zeroize::zeroize);
    }
}

impl UnsealedSecret {
    /// The base64 value of `key`, if any.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }
}

/// Decrypts every value of one SealedSecret; fails naming every key that did not decrypt.
pub fn unseal_secret(
    sealed: &SealedSecret,
    origin: &Origin,
    openers: &Openers,
    stderr: &mut impl Write,
) -> Result<UnsealedSecret> {
    let scope = sealed.scope();
    let name = sealed.metadata.name.clone().unwrap_or_default();
    let namespace = sealed.metadata.namespace.clone();
    if namespace.is_none() && scope != Scope::ClusterWide {
        return Err(Error::InvalidDocument {
            origin: origin.clone(),
            field: "metadata.namespace".to_owned(),
            problem: format!(
                "missing; a {scope} SealedSecret is bound to the namespace it was sealed for, add it"
            ),
        });
    }
    let (mut data, failures) = decrypt_values(sealed, openers);
    if !failures.is_empty() {
        data.values_mut().for_each(Zeroize::zeroize);
        return Err(Error::Unseal {
            origin: origin.clone(),
            object: display_name(sealed),
            scope,
            failures,
        });
    }

    let template = sealed.spec.template.clone().unwrap_or_default();
    if let Some(templated) = template.data.as_ref().filter(|d| !d.is_empty()) {
        let keys: Vec<&str> = templated.keys().map(String::as_str).collect();
        for key in &keys {
            if let Some(mut value) = data.remove(*key) {
                value.zeroize();
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
    let metadata = template.metadata.unwrap_or_default();
    Ok(UnsealedSecret {
        api_version: "v1",
        kind: "Secret",
        metadata: UnsealedMetadata {
            name,
            namespace,
            labels: metadata.labels.filter(|m| !m.is_empty()),
            annotations: metadata.annotations.filter(|m| !m.is_empty()),
        },
        type_: template.type_,
        immutable: template.immutable,
        data,
    })
}

/// Decrypts every value of `sealed`: the base64 plaintexts, and the keys that did not decrypt
/// with why.
fn decrypt_values(
    sealed: &SealedSecret,
    openers: &Openers,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let keys = &openers.keys;
    let label = sealed.label();
    // The key the hint names first; after a value opens, the key that opened it (the values of
    // one SealedSecret are sealed to one key, so without a hint only the first value may cost
    // more than one private-key operation).
    let mut hint = sealed.sealing_key_hint();

    let mut data = BTreeMap::new();
    let mut failures = Vec::new();
    for (key, encoded) in &sealed.spec.encrypted_data {
        let Some(ciphertext) = decode_base64(encoded) else {
            failures.push((key.clone(), "not valid base64".to_owned()));
            continue;
        };
        if ValueFormat::of(&ciphertext) == ValueFormat::Age {
            match open_age(openers, &ciphertext, &label) {
                Ok(plaintext) => {
                    data.insert(key.clone(), STANDARD.encode(&*plaintext));
                }
                Err(e) => failures.push((key.clone(), e.to_string())),
            }
            continue;
        }
        if keys.is_empty() {
            failures.push((
                key.clone(),
                "a Bitnami-format value needs the cluster's private key (--key)".to_owned(),
            ));
            continue;
        }
        let ordered = hinted_first(keys, hint.as_ref());
        match sealbox_crypto::unseal_with_keys(ordered.iter().copied(), &ciphertext, &label) {
            Ok((plaintext, index)) => {
                tracing::debug!(key, key_index = index, "unsealed");
                hint = ordered.get(index).map(|k| k.fingerprint().clone());
                data.insert(key.clone(), STANDARD.encode(&*plaintext));
            }
            Err(e @ (CryptoError::TooShort | CryptoError::NoKeyCouldDecrypt)) => {
                failures.push((key.clone(), e.to_string()));
            }
            Err(e) => failures.push((key.clone(), format!("failed ({})", e.category()))),
        }
    }
    (data, failures)
}

/// One multi-recipient value: the keys (by stanza tag), else the identities; its scope line
/// must name this SealedSecret.
fn open_age(
    openers: &Openers,
    value: &[u8],
    label: &[u8],
) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    let expected = Binding::from_label(label)?;
    let by_key = (!openers.ring.is_empty()).then(|| {
        let mut operations = 0;
        open_with_keys(&openers.ring, value, &expected, &mut operations).map(|o| o.plaintext)
    });
    match by_key {
        Some(Ok(plaintext)) => return Ok(plaintext),
        // Anything but "not a recipient" is final (tampered, moved, malformed).
        Some(Err(e)) if !matches!(e, CryptoError::AgeNotARecipient { .. }) => return Err(e),
        Some(Err(e)) if openers.identities.is_empty() => return Err(e),
        _ => {}
    }
    let identities: Vec<&dyn age::Identity> = openers
        .identities
        .iter()
        .map(|i| i as &dyn age::Identity)
        .collect();
    let (binding, plaintext) = open_with_identities(&identities, value)?;
    binding.check(&expected)?;
    Ok(plaintext)
}
