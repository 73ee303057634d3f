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

use sealbox_crypto::OsRandom;

use crate::cert_choice::CertChoice;
use crate::cli::MergeArgs;
use crate::document::{parse, read_input};
use crate::error::{Error, Result};
use crate::output::note;
use crate::recipients::{RecipientSpec, sealer_for_file};
use crate::sealed;
use crate::sealed_file::SealedFile;
use crate::sealing::{load_key, seal_values};
use crate::secret::SecretInput;

/// Runs `sealbox merge`.
pub fn run(args: &MergeArgs, stdin: impl Read, mut stderr: impl Write) -> Result<()> {
    let cluster = args.cluster.options();
    let cert = CertChoice::new(args.cert.cert.as_ref(), &cluster).ignoring_rules()?;
    let secret = read_secret(args, stdin)?;
    let mut file = SealedFile::open(&args.into, "merge into")?;
    let into_name = file.path().display().to_string();
    let scope = file.sealed.scope();

    let recipients = RecipientSpec::from_args(&args.recipients, &cluster);
    let key = sealer_for_file(
        &recipients,
        &file.sealed,
        load_key(&cert)?,
        "merge into",
        &args.into,
    )?;
    let input_display = secret.display_name();
    let target_display = sealed::display_name(&file.sealed);
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
        &file.sealed.label(),
        &secret.origin,
        &OsRandom,
    )?;
    let (mut added, mut replaced) = (Vec::new(), Vec::new());
    for (name, value) in sealed_values {
        if file.insert(&name, value) {
            replaced.push(name);
        } else {
            added.push(name);
        }
    }
    let kept = file.sealed.spec.encrypted_data.len() - added.len() - replaced.len();
    if let Some(message) = file.record_sealing_key(key.primary().public_key.fingerprint(), kept) {
        note(&mut stderr, format_args!("{message}"));
    }
    if let Some(warning) = file.check_size(args.allow_oversize)? {
        note(&mut stderr, format_args!("{warning}"));
    }
    file.write()?;
    let _ = writeln!(
        stderr,
        "merged into {into_name} ({scope} scope): added [{}], replaced [{}], {kept} unchanged",
        added.join(", "),
        replaced.join(", ")
    );
    Ok(())
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
