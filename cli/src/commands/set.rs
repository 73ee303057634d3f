//! `sealbox set FILE KEY`: seal one value into an existing sealed file, in place, without a
//! plaintext file on disk.
//!
//! The value comes from `--from-file`, else stdin when it is not a terminal, else a prompt that
//! does not echo; its bytes are sealed as they are. The file keeps its name, namespace, scope
//! and every other key byte for byte ([`crate::sealed_file`]); the certificate follows the one
//! rule of [`crate::cert_choice`], the file's `.sealbox.yaml` rule included.

use std::io::{IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};

use sealbox_crypto::OsRandom;
use zeroize::Zeroizing;

use crate::cert_choice::CertChoice;
use crate::cli::SetArgs;
use crate::config::Configs;
use crate::document::read_input;
use crate::error::{Error, Result};
use crate::origin::{Origin, field_path};
use crate::output::note;
use crate::recipients::{RecipientSpec, sealer_for_file};
use crate::sealed;
use crate::sealed_file::SealedFile;
use crate::sealing::{load_key, seal_value};
use crate::secret::key_problem;

/// Where the value to seal comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// `--from-file FILE`.
    File(PathBuf),
    /// Piped or redirected stdin.
    Stdin,
    /// A prompt on the terminal, without echo.
    Prompt,
}

/// `--from-file` wins (`-` is stdin); else stdin, unless it is a terminal: then a prompt, so
/// the value is neither echoed nor kept in the shell's history.
pub fn value_source(from_file: Option<&Path>, stdin_is_terminal: bool) -> ValueSource {
    match from_file {
        Some(path) if path != Path::new("-") => ValueSource::File(path.to_owned()),
        Some(_) => ValueSource::Stdin,
        None if stdin_is_terminal => ValueSource::Prompt,
        None => ValueSource::Stdin,
    }
}

/// Runs `sealbox set`.
pub fn run(args: &SetArgs, stdin: impl Read, mut stderr: impl Write) -> Result<()> {
    if let Some(problem) = key_problem(&args.key) {
        return Err(Error::InvalidKeyArgument { problem });
    }
    let mut file = SealedFile::open(&args.file, "set a key in")?;
    let cluster = args.cluster.options();
    let cert = CertChoice::new(args.cert.cert.as_ref(), &cluster)
        .for_path(&mut Configs::default(), &args.file)?;

    let source = value_source(args.from_file.as_deref(), std::io::stdin().is_terminal());
    let (input, value) = read_value(&source, &args.key, stdin)?;
    if value.is_empty() && !args.allow_empty_data {
        return Err(Error::EmptyRawValue);
    }
    if source != ValueSource::Prompt && value.ends_with(b"\n") {
        note(
            &mut stderr,
            format_args!(
                "the value from {input} ends with a newline, which is sealed too (`printf '%s' …` or `echo -n` leaves it out)"
            ),
        );
    }

    let recipients = RecipientSpec::from_args(&args.recipients, &cluster);
    let key = sealer_for_file(
        &recipients,
        &file.sealed,
        load_key(&cert)?,
        "set a key in",
        &args.file,
    )?;
    let origin = Origin {
        input,
        document: 1,
        item: None,
    };
    let field = field_path("encryptedData", &args.key);
    let label = file.sealed.label();
    let sealed_value = seal_value(&value, &key, &label, &origin, field, &OsRandom)?;
    let replaced = file.insert(&args.key, sealed_value);
    let unchanged = file.sealed.spec.encrypted_data.len() - 1;
    if let Some(message) =
        file.record_sealing_key(key.primary().public_key.fingerprint(), unchanged)
    {
        note(&mut stderr, format_args!("{message}"));
    }
    if let Some(warning) = file.check_size(args.allow_oversize)? {
        note(&mut stderr, format_args!("{warning}"));
    }
    file.write()?;
    let _ = writeln!(
        stderr,
        "{} {} in {} (SealedSecret {}, {} scope); {unchanged} other key(s) unchanged",
        if replaced { "replaced" } else { "added" },
        args.key,
        file.path().display(),
        sealed::display_name(&file.sealed),
        file.sealed.scope(),
    );
    Ok(())
}

/// The value and the name of where it came from.
fn read_value(
    source: &ValueSource,
    key: &str,
    stdin: impl Read,
) -> Result<(String, Zeroizing<Vec<u8>>)> {
    match source {
        ValueSource::File(path) => read_input(Some(path), stdin),
        ValueSource::Stdin => read_input(None, stdin),
        ValueSource::Prompt => {
            let from = "the terminal".to_owned();
            let typed = rpassword::prompt_password(format!("Value for {key} (not echoed): "))
                .map(Zeroizing::new)
                .map_err(|source| Error::ReadInput {
                    input: from.clone(),
                    source,
                })?;
            Ok((from, Zeroizing::new(typed.as_bytes().to_vec())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_comes_from_the_file_then_stdin_then_a_prompt() {
        let file = Path::new("v.txt");
        assert_eq!(
            value_source(Some(file), true),
            ValueSource::File(file.to_owned())
        );
        assert_eq!(value_source(Some(Path::new("-")), true), ValueSource::Stdin);
        assert_eq!(value_source(None, false), ValueSource::Stdin);
        assert_eq!(value_source(None, true), ValueSource::Prompt);
    }
}
