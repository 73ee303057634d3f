//! `sealbox unset FILE KEY`: remove one key from an existing sealed file, in place.
//!
//! No certificate is needed: nothing is sealed. Every other key keeps its ciphertext byte for
//! byte, and the file its name, namespace, scope and hint ([`crate::sealed_file`]).

use std::io::Write;

use crate::cli::UnsetArgs;
use crate::error::{Error, Result};
use crate::sealed;
use crate::sealed_file::SealedFile;
use crate::secret::key_problem;

/// Runs `sealbox unset`.
pub fn run(args: &UnsetArgs, mut stderr: impl Write) -> Result<()> {
    if let Some(problem) = key_problem(&args.key) {
        return Err(Error::InvalidKeyArgument { problem });
    }
    let mut file = SealedFile::open(&args.file, "remove a key from")?;
    let data = &file.sealed.spec.encrypted_data;
    if !data.contains_key(&args.key) {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(file.error(format!(
            "it has no key {:?} (its keys: {})",
            args.key,
            keys.join(", ")
        )));
    }
    if data.len() == 1 {
        return Err(file.error(format!(
            "{:?} is its only key, and a SealedSecret without keys unseals to an empty Secret; delete the file instead",
            args.key
        )));
    }
    file.sealed.spec.encrypted_data.remove(&args.key);
    let left = file.sealed.spec.encrypted_data.len();
    file.write()?;
    let _ = writeln!(
        stderr,
        "removed {} from {} (SealedSecret {}); {left} key(s) left",
        args.key,
        file.path().display(),
        sealed::display_name(&file.sealed),
    );
    Ok(())
}
