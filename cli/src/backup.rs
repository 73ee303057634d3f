//! Key backups: age encryption with a passphrase (scrypt) or to X25519 recipients, ASCII-armored
//! so the file survives being pasted into a password manager or a ticket; reading one back into
//! checked key Secrets.
//!
//! Passphrases come from `--passphrase-file`, else `SEALBOX_BACKUP_PASSPHRASE`, else a prompt on
//! the terminal (asked twice when encrypting). `keys restore`, `unseal --key` and `reencrypt
//! --key` read backups. They live in `SecretString`s and never reach a
//! message.

use std::io::{BufRead, BufReader, IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format as ArmorFormat};
use age::secrecy::SecretString;
use age::{DecryptError, Decryptor, Encryptor, Identity, IdentityFile, Recipient};
use sealbox_crypto::{KeyPair, KeySecret};
use zeroize::Zeroizing;

use crate::bounded;
use crate::error::{Error, Result};

/// The largest scrypt work factor (log2 N) a backup may ask for. age accepts its own target
/// plus 4 (16 times the ~1 s it aims at), which on a fast machine means N = 2^24: 16 GiB of
/// memory for a hostile file. Backups written by `keys backup` use age's target (18 to 20 on
/// current hardware); 2^22 (4 GiB, the value age's documentation calls the safe ceiling)
/// leaves room for a backup made on a faster machine.
const MAX_SCRYPT_LOG_N: u8 = 22;

/// The environment variable holding the backup passphrase.
pub const PASSPHRASE_ENV: &str = "SEALBOX_BACKUP_PASSPHRASE";

/// How a backup is (to be) encrypted.
pub enum Protection {
    /// scrypt, with this passphrase.
    Passphrase(SecretString),
    /// To these age recipients.
    Recipients(Vec<age::x25519::Recipient>),
    /// Not at all (explicitly asked for).
    Plaintext,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Protection::Recipients(r) => f.debug_tuple("Recipients").field(r).finish(),
            Protection::Plaintext => f.write_str("Plaintext"),
        }
    }
}

impl Protection {
    /// What it is, for messages: "with a passphrase", "to 2 age recipient(s)", "UNENCRYPTED".
    pub fn describe(&self) -> String {
        match self {
            Protection::Passphrase(_) => "encrypted with a passphrase (age scrypt)".to_owned(),
            Protection::Recipients(r) => format!("encrypted to {} age recipient(s)", r.len()),
            Protection::Plaintext => "UNENCRYPTED".to_owned(),
        }
    }
}

/// Where a passphrase was found, for messages.
fn passphrase_source(file: Option<&Path>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => PASSPHRASE_ENV.to_owned(),
    }
}

/// The passphrase from `--passphrase-file`, else the environment, else the terminal (twice when
/// `confirm`), else `None`.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Option<SecretString>> {
    if let Some(path) = file {
        let from = passphrase_source(Some(path));
        let text = bounded::read_bounded(path, bounded::PASSPHRASE_FILE).map_err(|source| {
            Error::ReadPassphrase {
                from: from.clone(),
                source,
            }
        })?;
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| Error::ReadPassphrase {
            from: from.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        })?;
        return non_empty(line.to_owned(), from).map(Some);
    }
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        let value = value.into_string().map_err(|_| Error::ReadPassphrase {
            from: PASSPHRASE_ENV.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        })?;
        return non_empty(value, PASSPHRASE_ENV.to_owned()).map(Some);
    }
    // The prompt reads the terminal itself, not stdin: `unseal --key keys.age` may have the
    // SealedSecrets piped in and still ask. Without a terminal to show it on, scripts get the
    // error naming the flag and the variable instead of a hang.
    if !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    let from = "the terminal".to_owned();
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|source| Error::ReadPassphrase {
                from: from.clone(),
                source,
            })
    };
    let first = read("Backup passphrase: ")?;
    if confirm {
        let second = read("Backup passphrase (again): ")?;
        if *first != *second {
            return Err(Error::PassphraseMismatch);
        }
    }
    non_empty(first.to_string(), from).map(Some)
}

fn non_empty(passphrase: String, from: String) -> Result<SecretString> {
    if passphrase.is_empty() {
        return Err(Error::EmptyPassphrase { from });
    }
    Ok(SecretString::from(passphrase))
}

/// Parses age X25519 recipients (`age1…`).
pub fn recipients(texts: &[String]) -> Result<Vec<age::x25519::Recipient>> {
    texts
        .iter()
        .map(|text| {
            text.trim()
                .parse::<age::x25519::Recipient>()
                .map_err(|_| Error::InvalidRecipient {
                    recipient: text.clone(),
                })
        })
        .collect()
}

/// Encrypts `plaintext` as an ASCII-armored age file (or returns it as is for
/// [`Protection::Plaintext`]).
pub fn encrypt(plaintext: &[u8], protection: &Protection) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |reason: String| Error::EncryptBackup { reason };
    let encryptor = match protection {
        Protection::Plaintext => return Ok(Zeroizing::new(plaintext.to_vec())),
        Protection::Passphrase(passphrase) => Encryptor::with_user_passphrase(passphrase.clone()),
        Protection::Recipients(recipients) => {
            Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn Recipient))
                .map_err(|e| fail(e.to_string()))?
        }
    };
    let mut out = Zeroizing::new(Vec::new());
    let armored = ArmoredWriter::wrap_output(&mut *out, ArmorFormat::AsciiArmor)
        .map_err(|e| fail(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armored)
        .map_err(|e| fail(e.to_string()))?;
    writer
        .write_all(plaintext)
        .and_then(|()| writer.finish())
        .and_then(ArmoredWriter::finish)
        .map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Whether `bytes` look like an age file (armored or binary).
pub fn is_age(bytes: &[u8]) -> bool {
    let start = bytes.trim_ascii_start();
    start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || start.starts_with(b"age-encryption.org/")
}

/// What can open an encrypted backup.
#[derive(Debug)]
pub struct Openers<'a> {
    /// `--passphrase-file`.
    pub passphrase_file: Option<&'a Path>,
    /// `-i` identity files.
    pub identities: &'a [PathBuf],
}

/// Decrypts an age backup read from `path`.
pub fn decrypt(bytes: &[u8], path: &Path, openers: &Openers<'_>) -> Result<Zeroizing<Vec<u8>>> {
    let damaged = |reason: String| Error::DecryptBackup {
        path: path.to_owned(),
        reason,
    };
    let reader = ArmoredReader::new(BufReader::new(bytes));
    let decryptor = Decryptor::new_buffered(reader).map_err(|e| {
        damaged(format!(
            "not a readable age file ({}); is it the file `sealbox keys backup` wrote, complete?",
            coarse(&e)
        ))
    })?;
    let stream = if decryptor.is_scrypt() {
        let passphrase =
            passphrase(openers.passphrase_file, false)?.ok_or_else(|| Error::NeedsPassphrase {
                path: path.to_owned(),
            })?;
        let mut identity = age::scrypt::Identity::new(passphrase);
        identity.set_max_work_factor(MAX_SCRYPT_LOG_N);
        decryptor
            .decrypt(std::iter::once(&identity as &dyn Identity))
            .map_err(|e| match e {
                DecryptError::DecryptionFailed
                | DecryptError::NoMatchingKeys
                | DecryptError::KeyDecryptionFailed => Error::WrongPassphrase {
                    path: path.to_owned(),
                },
                other => damaged(coarse(&other)),
            })?
    } else {
        let mut identities: Vec<Box<dyn Identity + Send + Sync>> = Vec::new();
        for file in openers.identities {
            let unreadable = |reason: String| Error::ReadIdentity {
                path: file.clone(),
                reason,
            };
            let bytes = bounded::read_bounded(file, bounded::IDENTITY_FILE)
                .map_err(|e| unreadable(describe_io(&e)))?;
            let parsed = IdentityFile::from_buffer(&bytes[..])
                .map_err(|e| unreadable(e.kind().to_string()))?;
            identities.extend(
                parsed
                    .into_identities()
                    .map_err(|e| unreadable(coarse(&e)))?,
            );
        }
        let count = identities.len();
        decryptor
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn Identity))
            .map_err(|e| match e {
                DecryptError::NoMatchingKeys
                | DecryptError::DecryptionFailed
                | DecryptError::KeyDecryptionFailed => Error::NoMatchingIdentity {
                    path: path.to_owned(),
                    identities: count,
                },
                other => damaged(coarse(&other)),
            })?
    };
    bounded::read_bounded_from(stream, bounded::BACKUP_PLAINTEXT).map_err(|e| {
        if bounded::is_too_large(&e) {
            damaged(format!("its content is {e}"))
        } else {
            damaged(format!(
                "the encrypted content is damaged or truncated ({})",
                e.kind()
            ))
        }
    })
}

/// Reads a backup (encrypted or plaintext) into key Secrets, each checked.
pub fn read_key_backup(path: &Path, openers: &Openers<'_>) -> Result<Vec<(KeySecret, KeyPair)>> {
    let bytes = bounded::read_bounded(path, bounded::BACKUP_FILE).map_err(|source| {
        if path.is_dir() {
            Error::InputIsDirectory {
                input: path.display().to_string(),
            }
        } else {
            Error::ReadBackup {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let plaintext = if is_age(&bytes) {
        decrypt(&bytes, path, openers)?
    } else {
        bytes
    };
    let contents = |source: sealbox_crypto::Error| Error::BackupContents {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let secrets = sealbox_crypto::parse_key_secrets(&plaintext, &path.display().to_string())
        .map_err(contents)?;
    if secrets.is_empty() {
        return Err(contents(sealbox_crypto::Error::NoPrivateKey {
            origin: path.display().to_string(),
        }));
    }
    secrets
        .into_iter()
        .map(|secret| {
            let pair = secret.key_pair().map_err(contents)?;
            Ok((secret, pair))
        })
        .collect()
}

/// An I/O error in words: the limit for a file too large, else the kind of error.
fn describe_io(error: &std::io::Error) -> String {
    if bounded::is_too_large(error) {
        error.to_string()
    } else {
        error.kind().to_string()
    }
}

/// age's message, on one line.
fn coarse(error: &DecryptError) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or("error")
        .to_owned()
}

/// Reads a passphrase-protected backup's first bytes, for tests and diagnostics: whether it
/// is armored.
pub fn is_armored(bytes: &[u8]) -> bool {
    let mut reader = BufReader::new(bytes);
    let mut line = String::new();
    reader.read_line(&mut line).is_ok() && line.trim() == "-----BEGIN AGE ENCRYPTED FILE-----"
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret as _;

    #[test]
    fn recipients_round_trip_and_wrong_identity_is_clear() {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let protection = Protection::Recipients(recipients(&[recipient]).unwrap());
        let encrypted = encrypt(b"kind: List\n", &protection).unwrap();
        assert!(is_age(&encrypted) && is_armored(&encrypted));

        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, identity.to_string().expose_secret()).unwrap();
        let openers = Openers {
            passphrase_file: None,
            identities: std::slice::from_ref(&good),
        };
        let plain = decrypt(&encrypted, Path::new("b.age"), &openers).unwrap();
        assert_eq!(&plain[..], b"kind: List\n");

        let other = dir.path().join("other.txt");
        let other_identity = age::x25519::Identity::generate();
        std::fs::write(&other, other_identity.to_string().expose_secret()).unwrap();
        let openers = Openers {
            passphrase_file: None,
            identities: std::slice::from_ref(&other),
        };
        let err = decrypt(&encrypted, Path::new("b.age"), &openers).unwrap_err();
        assert!(
            err.to_string().contains("none of the 1 identities"),
            "{err}"
        );

        assert!(recipients(&["ssh-rsa AAAA".to_owned()]).is_err());
    }
}
