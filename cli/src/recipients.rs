//! Who a multi-recipient value is sealed for, beyond the one certificate: more clusters (files,
//! URLs, kubeconfig contexts) and age keys (`age1…`, inline or in files), from flags and the
//! `.sealbox.yaml` rule. Any of them turns `seal` into multi-recipient mode (docs/FORMAT.md).

use std::path::PathBuf;

use sealbox_crypto::Recipients;

use crate::bounded;
use crate::cert::{CertSource, SealingKey};
use crate::cli::RecipientArgs;
use crate::error::{Error, Result};
use crate::sealing::{Sealer, load_key};

/// The recipients a command was asked for, not loaded yet.
#[derive(Clone, Debug, Default)]
pub struct RecipientSpec {
    /// More clusters' certificates.
    pub certs: Vec<CertSource>,
    /// age recipients (`age1…`).
    pub age: Vec<String>,
    /// Files of age recipients.
    pub age_files: Vec<PathBuf>,
}

impl RecipientSpec {
    /// The flags' recipients, then the rule's.
    pub fn from_args(args: &RecipientArgs, cluster: &crate::cluster::ClusterOptions) -> Self {
        let mut spec = RecipientSpec {
            certs: args.add_certs.clone(),
            age: args.recipients.clone(),
            age_files: args.recipients_files.clone(),
        };
        for context in &args.add_contexts {
            let mut options = cluster.clone();
            options.context = Some(context.clone());
            spec.certs.push(CertSource::Cluster(options));
        }
        spec
    }

    /// Adds `other`'s recipients.
    pub fn extend(&mut self, other: RecipientSpec) {
        self.certs.extend(other.certs);
        self.age.extend(other.age);
        self.age_files.extend(other.age_files);
    }

    /// Whether nothing beyond the one certificate was asked for (the Bitnami format then).
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty() && self.age.is_empty() && self.age_files.is_empty()
    }

    /// The sealer: `primary` alone when the spec is empty, else every certificate (fetched and
    /// checked like the primary) and age recipient together.
    pub fn sealer(&self, primary: SealingKey) -> Result<Sealer> {
        if self.is_empty() {
            return Ok(Sealer::Single(primary));
        }
        let mut recipients = Recipients::new();
        recipients.add_rsa(primary.public_key.clone());
        for cert in &self.certs {
            recipients.add_rsa(load_key(cert)?.public_key);
        }
        for recipient in &self.age {
            add_age(&mut recipients, recipient, "--recipient".to_owned())?;
        }
        for file in &self.age_files {
            let bytes = bounded::read_bounded(file, bounded::IDENTITY_FILE).map_err(|e| {
                Error::ReadRecipients {
                    path: file.clone(),
                    reason: e.to_string(),
                }
            })?;
            let text = std::str::from_utf8(&bytes).map_err(|_| Error::ReadRecipients {
                path: file.clone(),
                reason: "not UTF-8 text".to_owned(),
            })?;
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let origin = format!("{} line {}", file.display(), index + 1);
                add_age(&mut recipients, line, origin)?;
            }
        }
        Ok(Sealer::Multi {
            primary,
            recipients,
        })
    }
}

fn add_age(recipients: &mut Recipients, recipient: &str, origin: String) -> Result<()> {
    recipients
        .add_age(recipient)
        .map_err(|source| Error::InvalidAgeRecipient {
            origin,
            source: Box::new(source),
        })
}

/// The sealer for editing an existing sealed file (`merge`, `set`): a file that holds
/// multi-recipient values needs recipients again, or the edited keys would open on one cluster
/// only while the rest of the file opens everywhere.
pub fn sealer_for_file(
    spec: &RecipientSpec,
    sealed: &sealbox_crds::SealedSecret,
    primary: SealingKey,
    action: &'static str,
    path: &std::path::Path,
) -> Result<Sealer> {
    let multi = sealed.spec.encrypted_data.values().any(|v| {
        crate::secret::decode_base64(v).is_some_and(|bytes| {
            sealbox_crypto::ValueFormat::of(&bytes) == sealbox_crypto::ValueFormat::Age
        })
    });
    if spec.is_empty() && multi {
        return Err(Error::EditTarget {
            action,
            path: path.to_owned(),
            problem: "it holds multi-recipient values; pass their recipients too (--add-cert, \
                      --add-context, -r, --recipients-file) so the new keys open for the same \
                      clusters and age keys"
                .to_owned(),
        });
    }
    spec.sealer(primary)
}
