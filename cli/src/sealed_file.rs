//! One sealed file edited in place (`merge`, `set`, `unset`): its single SealedSecret read and
//! checked, values added, replaced or removed, the sealing-key hint kept honest, and the file
//! written back atomically in its own syntax (YAML or JSON).
//!
//! The file decides name, namespace and scope (from its own top-level annotations); values that
//! are not touched keep their ciphertext byte for byte.

use std::path::{Path, PathBuf};

use sealbox_crds::SealedSecret;
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use sealbox_crypto::{Fingerprint, Scope};

use crate::document::{Syntax, parse, read_file};
use crate::error::{Error, Result};
use crate::output::{Format, Visibility, render, write_atomically};
use crate::sealed;
use crate::secret_size;

/// A sealed file holding exactly one SealedSecret, open for editing.
#[derive(Debug)]
pub struct SealedFile {
    path: PathBuf,
    /// What the command does to the file, for messages: "merge into", "set a key in".
    action: &'static str,
    /// The SealedSecret as read, then as edited.
    pub sealed: SealedSecret,
    syntax: Syntax,
}

impl SealedFile {
    /// Reads `path`: one SealedSecret, bound to a namespace unless cluster-wide.
    pub fn open(path: &Path, action: &'static str) -> Result<SealedFile> {
        let target_error = |problem: String| Error::EditTarget {
            action,
            path: path.to_owned(),
            problem,
        };
        if path.is_dir() {
            return Err(target_error(
                "it is a directory; pass the sealed file".to_owned(),
            ));
        }
        let name = path.display().to_string();
        let bytes = read_file(path).map_err(|source| Error::ReadInput {
            input: name.clone(),
            source,
        })?;
        let input = parse(&name, &bytes)?;
        let document = match input.documents.as_slice() {
            [one] => one,
            other => {
                return Err(target_error(format!(
                    "it holds {} documents, but only a file of exactly one SealedSecret is edited in place",
                    other.len()
                )));
            }
        };
        let sealed = sealed::from_document(document)?;
        let scope = sealed.scope();
        if scope != Scope::ClusterWide && sealed.metadata.namespace.is_none() {
            return Err(target_error(format!(
                "metadata.namespace is missing, but its {scope} scope binds the values to a namespace; add the namespace it was sealed for"
            )));
        }
        Ok(SealedFile {
            path: path.to_owned(),
            action,
            sealed,
            syntax: input.syntax,
        })
    }

    /// The file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error about this file: "cannot {action} {path}: {problem}".
    pub fn error(&self, problem: String) -> Error {
        Error::EditTarget {
            action: self.action,
            path: self.path.clone(),
            problem,
        }
    }

    /// Adds or replaces one sealed value; `true` when it replaced one.
    pub fn insert(&mut self, key: &str, sealed_value: String) -> bool {
        self.sealed
            .spec
            .encrypted_data
            .insert(key.to_owned(), sealed_value)
            .is_some()
    }

    /// Records that the file's values (or some of them) are now sealed to `fingerprint`; when
    /// `unchanged` values stay sealed to the key the hint named before, returns a note saying so.
    pub fn record_sealing_key(
        &mut self,
        fingerprint: &Fingerprint,
        unchanged: usize,
    ) -> Option<String> {
        let fingerprint = fingerprint.to_string();
        let annotations = self.sealed.metadata.annotations.get_or_insert_default();
        let previous = annotations.insert(SEALING_KEY_ANNOTATION.to_owned(), fingerprint.clone());
        previous
            .filter(|p| unchanged > 0 && *p != fingerprint)
            .map(|previous| {
                format!(
                    "{unchanged} unchanged key(s) stay sealed with key {previous}; the hint now names {fingerprint} (the controller tries every key)"
                )
            })
    }

    /// Refuses a result whose Secret the API server would refuse, unless `allow` (then returns
    /// a warning to print).
    pub fn check_size(&self, allow: bool) -> Result<Option<String>> {
        let size = secret_size::sealed_data_size(
            self.sealed.spec.encrypted_data.values().map(String::as_str),
        );
        let Some(problem) = secret_size::over_limit(size) else {
            return Ok(None);
        };
        let object = sealed::display_name(&self.sealed);
        if allow {
            Ok(Some(format!(
                "SealedSecret {object}: {problem}; written anyway (--allow-oversize)"
            )))
        } else {
            Err(Error::SecretTooLarge {
                what: format!("{}: SealedSecret {object}", self.path.display()),
                problem,
            })
        }
    }

    /// Writes the file back, atomically, in the syntax it was read in.
    pub fn write(&mut self) -> Result<()> {
        self.sealed.status = None;
        let format = match self.syntax {
            Syntax::Yaml => Format::Yaml,
            Syntax::Json => Format::Json,
        };
        let rendered = render(&[&self.sealed], format)?;
        write_atomically(&self.path, &rendered, Visibility::Public)
    }
}
