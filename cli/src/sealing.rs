//! Building SealedSecrets: the sealing key loaded, values sealed for a label (with the OS's
//! generator, [`OsRandom`]: a CLI process never seeds aws-lc's), a Secret turned
//! into its SealedSecret (`seal`, `seal --raw`, `merge`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crds::{SealedSecret, SealedSecretSpec, SecretTemplateSpec, TemplateMetadata};
use sealbox_crypto::OsRandom;
use sealbox_crypto::Scope;
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use zeroize::Zeroizing;

use crate::cert::{CertSource, Expiry, SealingKey};
use crate::error::{Error, Result};
use crate::origin::{Origin, field_path};
use crate::secret::SecretInput;

/// Where a Secret is sealed for: the SealedSecret's name, namespace and scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` only for cluster-wide without a namespace.
    pub namespace: Option<String>,
    /// The scope, bound into every value.
    pub scope: Scope,
}

impl Target {
    /// The RSA-OAEP label of this target.
    pub fn label(&self) -> Vec<u8> {
        self.scope
            .label(self.namespace.as_deref().unwrap_or_default(), &self.name)
    }
}

/// What values are sealed for: one cluster's key (the Bitnami format), or several recipients at
/// once (multi-recipient age values, docs/FORMAT.md).
#[derive(Debug)]
pub enum Sealer {
    /// One cluster: Bitnami-format values any Bitnami or Sealbox controller with the key opens.
    Single(SealingKey),
    /// Several clusters and age keys: one age value each opens; Sealbox controllers only.
    Multi {
        /// The key named by the `sealbox.dev/sealing-key` hint (the first certificate).
        primary: SealingKey,
        /// Every recipient, the primary key included.
        recipients: sealbox_crypto::Recipients,
    },
}

impl Sealer {
    /// The key the hint annotation names.
    pub fn primary(&self) -> &SealingKey {
        match self {
            Sealer::Single(key) | Sealer::Multi { primary: key, .. } => key,
        }
    }
}

/// Loads the certificate, refusing an expired one.
pub fn load_key(cert: &CertSource) -> Result<SealingKey> {
    let key = cert.load(SystemTime::now(), Expiry::Refuse)?;
    tracing::debug!(cert = %cert, fingerprint = %key.public_key.fingerprint(), "loaded the sealing key");
    Ok(key)
}

/// Seals every value of `data` for `label`, base64-encoded.
pub fn seal_values(
    data: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    key: &Sealer,
    label: &[u8],
    origin: &Origin,
    rng: &OsRandom,
) -> Result<BTreeMap<String, String>> {
    data.iter()
        .map(|(name, plaintext)| {
            let field = field_path("data", name);
            let sealed = seal_value(plaintext, key, label, origin, field, rng)?;
            Ok((name.clone(), sealed))
        })
        .collect()
}

/// Seals one value for `label`, base64-encoded; `origin` and `field` name it in an error.
pub fn seal_value(
    plaintext: &[u8],
    key: &Sealer,
    label: &[u8],
    origin: &Origin,
    field: String,
    rng: &OsRandom,
) -> Result<String> {
    let sealed = match key {
        Sealer::Single(key) => sealbox_crypto::seal(rng, &key.public_key, plaintext, label),
        Sealer::Multi { recipients, .. } => sealbox_crypto::Binding::from_label(label)
            .and_then(|binding| sealbox_crypto::age_value::seal(recipients, &binding, plaintext)),
    }
    .map_err(|source| Error::Seal {
        origin: origin.clone(),
        field,
        source: Box::new(source),
    })?;
    Ok(STANDARD.encode(sealed))
}

/// Builds the SealedSecret for one Secret: values sealed, metadata and type moved to the
/// template, scope and key hint on the top-level annotations.
pub fn seal_secret(
    secret: &SecretInput,
    target: &Target,
    key: &Sealer,
    rng: &OsRandom,
) -> Result<SealedSecret> {
    let encrypted_data = seal_values(&secret.data, key, &target.label(), &secret.origin, rng)?;

    let mut annotations = BTreeMap::new();
    if let Some(annotation) = target.scope.annotation() {
        annotations.insert(annotation.to_owned(), "true".to_owned());
    }
    annotations.insert(
        SEALING_KEY_ANNOTATION.to_owned(),
        key.primary().public_key.fingerprint().to_string(),
    );

    // The scope lives on the SealedSecret itself; in the template it would only mislead.
    let mut template_annotations = secret.annotations.clone();
    template_annotations.remove(CLUSTER_WIDE_ANNOTATION);
    template_annotations.remove(NAMESPACE_WIDE_ANNOTATION);
    let template = SecretTemplateSpec {
        metadata: Some(TemplateMetadata {
            name: Some(target.name.clone()),
            namespace: target.namespace.clone(),
            labels: non_empty(secret.labels.clone()),
            annotations: non_empty(template_annotations),
            finalizers: secret.finalizers.clone(),
            other: secret.other_metadata.clone(),
        }),
        type_: secret.type_.clone(),
        immutable: secret.immutable,
        data: None,
    };

    let mut sealed = SealedSecret::new(
        &target.name,
        SealedSecretSpec {
            encrypted_data,
            template: Some(template),
            data: None,
        },
    );
    sealed.metadata.namespace = target.namespace.clone();
    sealed.metadata.annotations = Some(annotations);
    Ok(sealed)
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}
