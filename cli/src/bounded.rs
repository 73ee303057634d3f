//! Reading files from outside with a size limit.
//!
//! Every file the CLI reads besides the manifests it seals (kubeconfigs, `.sealbox.yaml`,
//! certificates, key files, backups, passphrase and identity files) is read through
//! [`read_bounded`] with one of the [`Limit`]s below. Past its limit a read stops at once and
//! fails with an [`io::ErrorKind::FileTooLarge`] error whose text names the limit, so the
//! caller's error names the file and the limit together: "cannot read the certificate c.pem:
//! larger than 1 MiB, the limit for a certificate". What is read lands in a zeroized buffer
//! that never reallocates behind our back (key files and backups hold private keys).

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use sealbox_crds::decode::{Limits, decode_document};
use zeroize::Zeroizing;

/// A size limit and what it is for, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The largest accepted size, in bytes.
    pub bytes: u64,
    /// What is read, e.g. "a certificate".
    pub what: &'static str,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A PEM certificate is ~2 KiB (RSA-4096); a chain a few times that. 1 MiB is generous and still
/// cheap to parse.
pub const CERTIFICATE: Limit = Limit {
    bytes: MIB,
    what: "a certificate",
};

/// Private keys: PEM, a key Secret or a List of them. sealbox-crypto's own bound on key input
/// (a decade of monthly keys with their certificates is ~1 MiB; it allows 16 MiB).
pub const KEY_FILE: Limit = Limit {
    bytes: sealbox_crypto::key_secret::MAX_KEY_INPUT_BYTES as u64,
    what: "a key file",
};

/// An ASCII-armored age backup of a [`KEY_FILE`]-sized plaintext: base64 adds a third, age's
/// header and armor lines a few KiB; twice the plaintext bound covers both.
pub const BACKUP_FILE: Limit = Limit {
    bytes: 2 * KEY_FILE.bytes,
    what: "a key backup",
};

/// What a backup decrypts to: key Secrets, so the same bound as a key file.
pub const BACKUP_PLAINTEXT: Limit = Limit {
    bytes: KEY_FILE.bytes,
    what: "the decrypted content of a key backup",
};

/// kubeconfigs of large fleets (hundreds of contexts, CA data embedded) reach a few MiB.
pub const KUBECONFIG: Limit = Limit {
    bytes: 8 * MIB,
    what: "a kubeconfig",
};

/// `.sealbox.yaml` is written by hand: a thousand rules are ~100 KiB.
pub const REPO_CONFIG: Limit = Limit {
    bytes: MIB,
    what: "a repository config",
};

/// Only the first line of a passphrase file is used; a passphrase is at most a few hundred bytes.
pub const PASSPHRASE_FILE: Limit = Limit {
    bytes: 64 * KIB,
    what: "a passphrase file",
};

/// An age identity file holds one ~75-byte line per key.
pub const IDENTITY_FILE: Limit = Limit {
    bytes: MIB,
    what: "an age identity file",
};

/// The controller's answer to `/v1/verify` (a status) or `/v1/rotate` (one re-sealed
/// SealedSecret): the API server stores objects of at most ~1.5 MiB, a re-sealed one grows by
/// a few hundred bytes per value; 4 MiB is ample.
pub const CONTROLLER_ANSWER: Limit = Limit {
    bytes: 4 * MIB,
    what: "an answer of the controller",
};

/// Parses YAML (or JSON) text already read within `limit` into `T` through the shared bounded
/// decoder: nesting is checked before the parser runs (its work grows with the square of flow
/// depth: 100 KB of `[` in a kubeconfig took 12 s of CPU) and alias expansion is bounded. The
/// message names the field (`contexts[0].context: …`) and never quotes the text.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, limit: Limit) -> Result<T, String> {
    let limits = Limits::new(usize::try_from(limit.bytes).unwrap_or(usize::MAX));
    let value = decode_document(text.as_bytes(), &limits).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
        path if path == "." => e.into_inner().to_string(),
        path => format!("{path}: {}", e.into_inner()),
    })
}

/// The error inside the [`io::Error`] of a read past its limit.
#[derive(Debug)]
pub struct TooLarge {
    /// The limit that was passed.
    pub limit: Limit,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "larger than {}, the limit for {}",
            human(self.limit.bytes),
            self.limit.what
        )
    }
}

impl std::error::Error for TooLarge {}

/// `1 MiB`, `64 KiB`, `100 bytes`.
fn human(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether an I/O error is a read past its limit.
pub fn is_too_large(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::FileTooLarge
}

/// Reads all of `path`, refusing more than `limit` bytes.
pub fn read_bounded(path: &Path, limit: Limit) -> io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let expected = file.metadata().map(|m| m.len()).unwrap_or(0);
    if expected > limit.bytes {
        return Err(too_large(limit));
    }
    read_to_limit(file, limit, expected)
}

/// Reads all of `reader`, refusing more than `limit` bytes.
pub fn read_bounded_from(reader: impl Read, limit: Limit) -> io::Result<Zeroizing<Vec<u8>>> {
    read_to_limit(reader, limit, 0)
}

fn too_large(limit: Limit) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, TooLarge { limit })
}

/// Reads at most `limit.bytes + 1` bytes (one more tells that the limit was passed), growing the
/// buffer by hand so no reallocation leaves an unzeroized copy behind. `size_hint` sizes the
/// first buffer (a file's length) so a file that does not change is read without growing.
fn read_to_limit(
    reader: impl Read,
    limit: Limit,
    size_hint: u64,
) -> io::Result<Zeroizing<Vec<u8>>> {
    const FIRST: u64 = 8 * KIB;
    let max = limit.bytes.saturating_add(1);
    let mut reader = reader.take(max);
    let first =
        usize::try_from(size_hint.saturating_add(1).max(FIRST).min(max)).unwrap_or(usize::MAX);
    let mut buffer = Zeroizing::new(Vec::with_capacity(first));
    loop {
        if buffer.len() == buffer.capacity() {
            let mut bigger =
                Zeroizing::new(Vec::with_capacity(buffer.capacity().saturating_mul(2)));
            bigger.extend_from_slice(&buffer);
            buffer = bigger;
        }
        let len = buffer.len();
        let spare = buffer.capacity() - len;
        buffer.resize(len + spare, 0);
        match reader.read(&mut buffer[len..]) {
            Ok(0) => {
                buffer.truncate(len);
                break;
            }
            Ok(n) => buffer.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buffer.truncate(len),
            Err(e) => return Err(e),
        }
    }
    if buffer.len() as u64 > limit.bytes {
        return Err(too_large(limit));
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        bytes: 10,
        what: "a test input",
    };

    #[test]
    fn reads_up_to_the_limit_and_refuses_one_byte_more() {
        let read = read_bounded_from(&b"0123456789"[..], TINY).unwrap();
        assert_eq!(&read[..], b"0123456789");
        let err = read_bounded_from(&b"0123456789a"[..], TINY).unwrap_err();
        assert!(is_too_large(&err));
        assert_eq!(
            err.to_string(),
            "larger than 10 bytes, the limit for a test input"
        );
    }

    #[test]
    fn reading_grows_without_losing_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let limit = Limit {
            bytes: 1 << 20,
            what: "a test input",
        };
        let read = read_bounded_from(&data[..], limit).unwrap();
        assert_eq!(&read[..], &data[..]);
    }

    #[test]
    fn an_endless_reader_stops_at_the_limit() {
        let err = read_bounded_from(io::repeat(b'x'), CERTIFICATE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "larger than 1 MiB, the limit for a certificate"
        );
    }

    #[test]
    fn files_are_refused_by_length_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 11]).unwrap();
        assert!(is_too_large(&read_bounded(&path, TINY).unwrap_err()));
        std::fs::write(&path, vec![b'x'; 10]).unwrap();
        assert_eq!(read_bounded(&path, TINY).unwrap().len(), 10);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(&read_bounded(&path, KUBECONFIG).unwrap()[..], &data[..]);
    }

    #[test]
    fn limits_are_ordered_sensibly() {
        const { assert!(BACKUP_FILE.bytes > BACKUP_PLAINTEXT.bytes) };
        assert_eq!(human(KUBECONFIG.bytes), "8 MiB");
        assert_eq!(human(PASSPHRASE_FILE.bytes), "64 KiB");
    }
}
