//! Reading age identity files (`AGE-SECRET-KEY-1…`, as `age-keygen` writes them) for opening
//! values offline: a break-glass key or a developer's own key.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The largest identity file read: `age-keygen` writes about 200 bytes per key.
pub const MAX_IDENTITY_FILE_LEN: usize = 64 * 1024;

/// The most identities one file may hold.
pub const MAX_IDENTITIES: usize = 64;

/// The X25519 identities in `text`: one per line, blank lines and `#` comments skipped. Errors
/// name the line, never its content. `origin` (a file name) prefixes them.
pub fn parse_identity_file(text: &[u8], origin: &str) -> Result<Vec<age::x25519::Identity>> {
    let refuse = |reason: String| Error::ParseAgeIdentity {
        origin: origin.to_owned(),
        reason,
    };
    if text.len() > MAX_IDENTITY_FILE_LEN {
        return Err(Error::LimitExceeded {
            origin: origin.to_owned(),
            what: "an age identity file (bytes)",
            limit: MAX_IDENTITY_FILE_LEN,
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| refuse("not UTF-8 text".to_owned()))?;
    let mut identities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if identities.len() == MAX_IDENTITIES {
            return Err(Error::LimitExceeded {
                origin: origin.to_owned(),
                what: "age identities",
                limit: MAX_IDENTITIES,
            });
        }
        // The parser may copy the key; the copy it returns is the identity itself.
        let key = Zeroizing::new(line.to_owned());
        let identity = key.parse::<age::x25519::Identity>().map_err(|_| {
            let hint = if line.starts_with("AGE-PLUGIN-") {
                "a plugin identity; Sealbox reads only X25519 identities"
            } else if line.starts_with("age1") {
                "a recipient (public key), not an identity (AGE-SECRET-KEY-1…)"
            } else {
                "not an age X25519 identity (AGE-SECRET-KEY-1…)"
            };
            refuse(format!("line {}: {hint}", index + 1))
        })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(refuse("no age identity found".to_owned()));
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use age::secrecy::ExposeSecret as _;

    use super::*;

    /// The error of a parse that must fail (identities have no `Debug`, on purpose).
    fn error(text: &[u8]) -> Error {
        match parse_identity_file(text, "key.txt") {
            Ok(_) => panic!("parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_keygen_output_and_names_bad_lines() {
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string();
        let text = format!(
            "# created: 2026-01-01\n# public key: {}\n\n{}\n",
            identity.to_public(),
            secret.expose_secret()
        );
        let parsed = parse_identity_file(text.as_bytes(), "key.txt").unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed[0].to_public().to_string(),
            identity.to_public().to_string()
        );

        let public = identity.to_public().to_string();
        let err = error(public.as_bytes()).to_string();
        assert!(err.starts_with("key.txt: line 1: a recipient"), "{err}");
        assert!(!err.contains(&public), "{err}");

        let broken = format!("\n{}x\n", secret.expose_secret());
        let err = error(broken.as_bytes()).to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains(&secret.expose_secret()[16..]), "{err}");

        let err = error(b"# nothing\n");
        assert!(err.to_string().contains("no age identity"), "{err}");
        let err = error(&vec![b'#'; MAX_IDENTITY_FILE_LEN + 1]);
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    }
}
