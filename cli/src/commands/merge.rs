//! `sealbox merge --into FILE`: seal a Secret's keys into an existing sealed file, in place.
//!
//! The file decides name, namespace and scope (from its own top-level annotations; Bitnami's
//! `--merge-into` forgets the scope and seals strict). Keys the input does not mention keep
//! their ciphertext byte for byte. The file is replaced atomically, in its own format.
//!
//! A file holding multi-recipient values needs their recipients again (`--add-cert`, `-r`, …):
//! merging single-cluster values into it would leave the new keys unreadable for the other
//! clusters and the break-glass key, so that is refused.

use std::io::{Read, Write};
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use sealbox_crds::SealedSecret;
use sealbox_crypto::Scope;
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;

use crate::cert_choice::CertChoice;
use crate::cli::MergeArgs;
use crate::document::{Syntax, parse, read_file, read_input};
use crate::error::{Error, Result};
use crate::output::{Format, Visibility, note, render, write_atomically};
use crate::recipients::RecipientSpec;
use crate::sealed;
use crate::sealing::{load_key, seal_values};
use crate::secret::SecretInput;

/// Runs `sealbox merge`.
pub fn run(args: &MergeArgs, stdin: impl Read, mut stderr: impl Write) -> Result<()> {
    let cluster = args.cluster.options();
    let cert = CertChoice::new(args.cert.cert.as_ref(), &cluster).ignoring_rules()?;
    let secret = read_secret(args, stdin)?;
    let into = &args.into;
    let into_name = into.display().to_string();
    let (mut sealed, syntax) = read_target(into)?;
    let scope = sealed.scope();

    let recipients = RecipientSpec::from_args(&args.recipients, &cluster);
    if recipients.is_empty() && holds_multi_recipient_values(&sealed) {
        return Err(Error::MergeTarget {
            path: into.clone(),
            problem: "it holds multi-recipient values; pass their recipients too (--add-cert, \
                      --add-context, -r, --recipients-file) so the new keys open for the same \
                      clusters and age keys"
                .to_owned(),
        });
    }
    let key = recipients.sealer(load_key(&cert)?)?;
    let input_display = secret.display_name();
    let target_display = sealed::display_name(&sealed);
    if secret.name.is_some() && input_display != target_display {
        note(
            &mut stderr,
            format_args!(
                "the input Secret is {input_display}; keeping {target_display} from {into_name}"
            ),
        );
    }

    let sealed_values = seal_values(
        &secret.data,
        &key,
        &sealed.label(),
        &secret.origin,
        &SystemRandom::new(),
    )?;
    let (mut added, mut replaced) = (Vec::new(), Vec::new());
    for (name, value) in sealed_values {
        if sealed
            .spec
            .encrypted_data
            .insert(name.clone(), value)
            .is_some()
        {
            replaced.push(name);
        } else {
            added.push(name);
        }
    }
    let kept = sealed.spec.encrypted_data.len() - added.len() - replaced.len();

    let fingerprint = key.primary().public_key.fingerprint().to_string();
    let annotations = sealed.metadata.annotations.get_or_insert_default();
    let previous_hint = annotations.insert(SEALING_KEY_ANNOTATION.to_owned(), fingerprint.clone());
    if kept > 0
        && let Some(previous) = previous_hint.filter(|p| *p != fingerprint)
    {
        note(
            &mut stderr,
            format_args!(
                "{kept} unchanged key(s) stay sealed with key {previous}; the hint now names {fingerprint} (the controller tries every key)"
            ),
        );
    }
    sealed.status = None;

    let format = match syntax {
        Syntax::Yaml => Format::Yaml,
        Syntax::Json => Format::Json,
    };
    let rendered = render(&[&sealed], format)?;
    write_atomically(into, &rendered, Visibility::Public)?;
    let _ = writeln!(
        stderr,
        "merged into {into_name} ({scope} scope): added [{}], replaced [{}], {kept} unchanged",
        added.join(", "),
        replaced.join(", ")
    );
    Ok(())
}

/// Whether any value of `sealed` is a multi-recipient (age) value.
fn holds_multi_recipient_values(sealed: &SealedSecret) -> bool {
    sealed.spec.encrypted_data.values().any(|v| {
        crate::secret::decode_base64(v).is_some_and(|bytes| {
            sealbox_crypto::ValueFormat::of(&bytes) == sealbox_crypto::ValueFormat::Age
        })
    })
}

/// The one Secret to merge, with data unless `--allow-empty-data`.
fn read_secret(args: &MergeArgs, stdin: impl Read) -> Result<SecretInput> {
    let (input_name, bytes) = read_input(args.input.file.as_deref(), stdin)?;
    let input = parse(&input_name, &bytes)?;
    let document = match input.documents.as_slice() {
        [] => {
            return Err(Error::NoDocuments {
                input: input_name,
                expected: "a Secret",
            });
        }
        [one] => one,
        [_, second, ..] => {
            return Err(Error::InvalidDocument {
                origin: second.origin.clone(),
                field: "(document)".to_owned(),
                problem: "merge takes exactly one Secret; merge them one by one".to_owned(),
            });
        }
    };
    let secret = SecretInput::from_document(document)?;
    if secret.data.is_empty() && !args.allow_empty_data {
        return Err(Error::EmptyData {
            origin: secret.origin.clone(),
        });
    }
    Ok(secret)
}

/// The sealed file merged into: its one SealedSecret, bound to a namespace unless
/// cluster-wide, and the file's syntax (kept when it is written back).
fn read_target(into: &Path) -> Result<(SealedSecret, Syntax)> {
    let target_error = |problem: String| Error::MergeTarget {
        path: into.to_owned(),
        problem,
    };
    if into.is_dir() {
        return Err(target_error(
            "it is a directory; pass the sealed file".to_owned(),
        ));
    }
    let into_name = into.display().to_string();
    let existing = read_file(into).map_err(|source| Error::ReadInput {
        input: into_name.clone(),
        source,
    })?;
    let target = parse(&into_name, &existing)?;
    let sealed_document = match target.documents.as_slice() {
        [one] => one,
        other => {
            return Err(target_error(format!(
                "it holds {} documents; merge needs exactly one SealedSecret",
                other.len()
            )));
        }
    };
    let sealed = sealed::from_document(sealed_document)?;
    let scope = sealed.scope();
    if scope != Scope::ClusterWide && sealed.metadata.namespace.is_none() {
        return Err(target_error(format!(
            "metadata.namespace is missing, but its {scope} scope binds the values to a namespace; add the namespace it was sealed for"
        )));
    }
    Ok((sealed, target.syntax))
}
