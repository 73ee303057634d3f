//! Key fingerprints in OpenSSH's `SHA256:` form.
//!
//! `SHA256:` + unpadded standard base64 of SHA-256 over the SSH wire encoding of the RSA public
//! key (string "ssh-rsa", mpint e, mpint n), so `ssh-keygen -lf` prints the same text.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::error::Error;

const PREFIX: &str = "SHA256:";

/// The SHA-256 fingerprint of an RSA public key, displayed as `SHA256:<base64>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the RSA key with big-endian modulus `n` and exponent `e`.
    pub(crate) fn of_rsa(n: &[u8], e: &[u8]) -> Fingerprint {
        let mut wire = Vec::with_capacity(4 + 7 + 2 * (4 + 1) + e.len() + n.len());
        put_string(&mut wire, b"ssh-rsa");
        put_mpint(&mut wire, e);
        put_mpint(&mut wire, n);
        let hash = digest::digest(&digest::SHA256, &wire);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(hash.as_ref());
        Fingerprint(bytes)
    }

    /// The 32 bytes of the SHA-256 digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key's tag in an age `ssh-rsa` recipient stanza: the first 4 bytes of the same
    /// SHA-256 (age hashes the same SSH wire encoding), so a stanza's tag is a prefix of the
    /// `sealbox.dev/sealing-key` hint.
    pub fn age_tag(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // RSA parameters and "ssh-rsa" are far below 4 GiB.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// RFC 4251 mpint of a non-negative big-endian integer: no superfluous leading zeros, and one
/// zero byte in front when the high bit is set (it would read as negative otherwise).
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let first = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let magnitude = &magnitude[first..];
    if magnitude.first().is_some_and(|&b| b & 0x80 != 0) {
        let len = u32::try_from(magnitude.len() + 1).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(0);
        out.extend_from_slice(magnitude);
    } else {
        put_string(out, magnitude);
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// Parses `SHA256:<base64>`; trailing `=` padding is tolerated.
    fn from_str(s: &str) -> Result<Fingerprint, Error> {
        let invalid = || Error::ParseFingerprint {
            value: crate::error::quoted(s),
        };
        let encoded = s.trim().strip_prefix(PREFIX).ok_or_else(invalid)?;
        let decoded = STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| invalid())?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| invalid())?;
        Ok(Fingerprint(bytes))
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn mpint_encoding_follows_rfc_4251() {
        // The examples of RFC 4251 section 5.
        let cases: [(&[u8], &[u8]); 4] = [
            (&[], &[0, 0, 0, 0]),
            (&[0x00, 0x00], &[0, 0, 0, 0]),
            (&[0x80], &[0, 0, 0, 2, 0x00, 0x80]),
            (
                &[0x00, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7],
                &[0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7],
            ),
        ];
        for (magnitude, expected) in cases {
            let mut out = Vec::new();
            put_mpint(&mut out, magnitude);
            assert_eq!(out, expected, "{magnitude:02x?}");
        }
    }

    #[test]
    fn display_parse_round_trip() {
        let fp = Fingerprint::of_rsa(&[0xc5; 256], &[1, 0, 1]);
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.len(), 7 + 43);
        assert!(!text.ends_with('='));
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{text}=").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({text})"));
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn parse_rejects_other_forms() {
        for bad in [
            "",
            "SHA256:",
            "MD5:aa:bb",
            "SHA256:abc",
            "sha256:m6vWck/AD70iOI733u1AT9E8c72l9d3m9yhlRlAbLUg",
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err().to_string();
            assert!(err.contains("SHA256:<base64"), "{err}");
        }
    }
}
