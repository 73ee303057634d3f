//! A bounded reader of the age v1 header, run before the age crate sees a value.
//!
//! ```text
//! age-encryption.org/v1\n
//! -> TAG ARG...\n            one stanza per recipient (age adds one random "grease" stanza)
//! BODY (base64, 64 columns, last line shorter, possibly empty)\n
//! --- MAC (43 base64 characters)\n
//! PAYLOAD (16-byte nonce, then ChaCha20-Poly1305 chunks)
//! ```
//!
//! It enforces Sealbox's bounds (header size, stanza count, argument count and size), refuses
//! what no sealed value holds (passphrase stanzas, malformed ssh-rsa or X25519 stanzas) and
//! lists the recipients for errors and reports. It reads nothing past the header's bound, and
//! is linear in that. Decryption itself is the age crate's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::error::{Error, Result, quoted};

/// Every age file starts with these bytes, whatever its version; a Bitnami value never does (its
/// first two bytes would declare an RSA block of 24 935 bytes, a 199 480-bit key).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/";

const V1_INTRO: &[u8] = b"age-encryption.org/v1\n";
const STANZA_PREFIX: &[u8] = b"-> ";
const MAC_PREFIX: &[u8] = b"--- ";
const BODY_COLUMNS: usize = 64;
const ENCODED_MAC_LEN: usize = 43;

/// The largest header read. A 4096-bit ssh-rsa stanza takes about 720 bytes, so this holds every
/// allowed stanza of 8192-bit keys; a header that needs more is not one Sealbox writes.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// The most recipient stanzas: a cluster per region plus several break-glass and developer keys,
/// and age's grease stanza, with room to spare. Bounds the parse and the report, not the
/// private-key work (a controller tries only stanzas tagged with its own keys).
pub const MAX_STANZAS: usize = 64;

/// The most arguments one stanza may have (known types use one; grease up to four).
const MAX_ARGS: usize = 8;

/// ssh-rsa stanza bodies are one RSA block: 256 bytes (RSA-2048) to 1024 bytes (RSA-8192).
const RSA_BODY_LEN: std::ops::RangeInclusive<usize> = 256..=1024;

/// The largest decoded stanza body of any type (an RSA-16384 block).
const MAX_BODY_LEN: usize = 2048;

/// What a recipient stanza is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientKind {
    /// An RSA key (a cluster's sealing key), named by the first 4 bytes of its fingerprint.
    SshRsa {
        /// [`Fingerprint::age_tag`](crate::Fingerprint::age_tag) of the key.
        key_tag: [u8; 4],
    },
    /// An age X25519 key (`age1…`): anonymous, only its holder can tell.
    X25519,
    /// age's hybrid post-quantum recipient (`age1pq1…`, age 1.3). Recognised and counted; no
    /// Sealbox component can open it yet (see docs/FORMAT.md, "Post-quantum").
    MlKem768X25519,
    /// Any other type: age's random "grease" stanza, or a recipient Sealbox does not know.
    Other {
        /// The stanza's type (bounded).
        tag: String,
    },
}

/// One recipient stanza of a header (what it is for, not its key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// What the stanza is for.
    pub kind: RecipientKind,
    /// Where it is in the value (its first line to the end of its body), for re-wrapping.
    pub span: std::ops::Range<usize>,
}

/// The parsed header of an age value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The recipient stanzas, in file order.
    pub stanzas: Vec<Stanza>,
    /// Length in bytes of the header, MAC line included: the payload starts here.
    pub len: usize,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::AgeMalformed {
        reason: reason.into(),
    }
}

/// Reads the header at the start of `value` within [`MAX_HEADER_LEN`] and [`MAX_STANZAS`].
pub fn parse(value: &[u8]) -> Result<Header> {
    if !value.starts_with(AGE_MAGIC) {
        return Err(malformed("not an age file (no age-encryption.org header)"));
    }
    if !value.starts_with(V1_INTRO) {
        return Err(malformed(
            "unsupported age version (expected age-encryption.org/v1)",
        ));
    }
    let window = &value[..value.len().min(MAX_HEADER_LEN)];
    let mut lines = Lines {
        window,
        pos: V1_INTRO.len(),
        hit_bound: value.len() > MAX_HEADER_LEN,
    };
    let mut stanzas = Vec::new();
    loop {
        let start = lines.pos;
        let line = lines.next()?;
        if let Some(rest) = line.strip_prefix(STANZA_PREFIX) {
            if stanzas.len() == MAX_STANZAS {
                return Err(Error::LimitExceeded {
                    origin: "age value".to_owned(),
                    what: "recipient stanzas",
                    limit: MAX_STANZAS,
                });
            }
            let index = stanzas.len() + 1;
            let body = read_body(&mut lines, index)?;
            let kind = stanza(rest, &body, index)?;
            stanzas.push(Stanza {
                kind,
                span: start..lines.pos,
            });
        } else if let Some(mac) = line.strip_prefix(MAC_PREFIX) {
            check_mac(mac)?;
            break;
        } else {
            return Err(malformed(format!(
                "header line {}: expected a recipient stanza (\"-> \") or the MAC line (\"--- \")",
                lines.number()
            )));
        }
    }
    if stanzas.is_empty() {
        return Err(malformed("the header has no recipient stanza"));
    }
    Ok(Header {
        stanzas,
        len: lines.pos,
    })
}

/// The header's lines, each without its `\n`, never past the window.
struct Lines<'a> {
    window: &'a [u8],
    pos: usize,
    hit_bound: bool,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<&'a [u8]> {
        let rest = &self.window[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.pos += end + 1;
                Ok(&rest[..end])
            }
            None if self.hit_bound => Err(Error::LimitExceeded {
                origin: "age value".to_owned(),
                what: "the header (bytes)",
                limit: MAX_HEADER_LEN,
            }),
            None => Err(malformed("truncated header (it ends before its MAC line)")),
        }
    }

    /// The 1-based number of the line just read (for errors; counts only within the window).
    fn number(&self) -> usize {
        self.window[..self.pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }
}

/// A stanza body: full 64-column lines, then one shorter (possibly empty) line.
fn read_body(lines: &mut Lines<'_>, index: usize) -> Result<Vec<u8>> {
    let mut encoded = Vec::new();
    loop {
        let line = lines.next()?;
        if line.len() > BODY_COLUMNS {
            return Err(malformed(format!(
                "stanza {index}: body line longer than 64 columns"
            )));
        }
        encoded.extend_from_slice(line);
        if encoded.len() > MAX_BODY_LEN.div_ceil(3) * 4 {
            return Err(malformed(format!("stanza {index}: body too large")));
        }
        if line.len() < BODY_COLUMNS {
            break;
        }
    }
    STANDARD_NO_PAD
        .decode(&encoded)
        .map_err(|_| malformed(format!("stanza {index}: body is not canonical base64")))
}

/// Classifies one stanza (`first_line` after `"-> "`) and checks the types Sealbox reads.
fn stanza(first_line: &[u8], body: &[u8], index: usize) -> Result<RecipientKind> {
    let bad = |reason: &str| malformed(format!("stanza {index}: {reason}"));
    let words: Vec<&[u8]> = first_line
        .split(|&b| b == b' ')
        .take(MAX_ARGS + 2)
        .collect();
    if words.len() > MAX_ARGS + 1 {
        return Err(bad("too many arguments"));
    }
    if !words.iter().all(|w| is_arbitrary_string(w)) {
        return Err(bad(
            "type and arguments must be printable ASCII separated by single spaces",
        ));
    }
    // Printable ASCII, checked above.
    let tag = String::from_utf8_lossy(words[0]);
    let args = &words[1..];
    let kind = match &*tag {
        "ssh-rsa" => {
            let key_tag = single_arg::<4>(args)
                .ok_or_else(|| bad("ssh-rsa needs one argument, the 4-byte key tag"))?;
            if !RSA_BODY_LEN.contains(&body.len()) {
                return Err(bad("ssh-rsa body is not one RSA-2048 to RSA-8192 block"));
            }
            RecipientKind::SshRsa { key_tag }
        }
        "X25519" => {
            single_arg::<32>(args)
                .ok_or_else(|| bad("X25519 needs one argument, a 32-byte share"))?;
            if body.len() != 32 {
                return Err(bad("X25519 body is not a 32-byte wrapped key"));
            }
            RecipientKind::X25519
        }
        "mlkem768x25519" => RecipientKind::MlKem768X25519,
        "scrypt" => {
            return Err(bad(
                "a passphrase (scrypt) stanza: passphrase-encrypted age files are not sealed values",
            ));
        }
        other => RecipientKind::Other { tag: quoted(other) },
    };
    Ok(kind)
}

/// The one argument of a stanza, decoded to exactly `N` bytes.
fn single_arg<const N: usize>(args: &[&[u8]]) -> Option<[u8; N]> {
    let [arg] = args else { return None };
    STANDARD_NO_PAD.decode(arg).ok()?.try_into().ok()
}

fn check_mac(mac: &[u8]) -> Result<()> {
    let decoded = (mac.len() == ENCODED_MAC_LEN)
        .then(|| STANDARD_NO_PAD.decode(mac).ok())
        .flatten();
    match decoded {
        Some(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(malformed("the MAC line is not 43 characters of base64")),
    }
}

/// age's "arbitrary string": one or more printable ASCII characters.
fn is_arbitrary_string(word: &[u8]) -> bool {
    !word.is_empty() && word.iter().all(u8::is_ascii_graphic)
}

impl Header {
    /// The recipients for errors and reports: `ssh-rsa <tag>` per RSA stanza (at most 8 listed),
    /// then counts of the other types.
    pub fn summary(&self) -> String {
        const LISTED: usize = 8;
        let mut rsa = Vec::new();
        let (mut x25519, mut pq, mut other) = (0, 0, 0);
        for stanza in &self.stanzas {
            match &stanza.kind {
                RecipientKind::SshRsa { key_tag } => rsa.push(key_tag),
                RecipientKind::X25519 => x25519 += 1,
                RecipientKind::MlKem768X25519 => pq += 1,
                RecipientKind::Other { .. } => other += 1,
            }
        }
        let mut parts: Vec<String> = rsa
            .iter()
            .take(LISTED)
            .map(|tag| format!("ssh-rsa {}", STANDARD_NO_PAD.encode(tag)))
            .collect();
        if rsa.len() > LISTED {
            parts.push(format!("{} more ssh-rsa", rsa.len() - LISTED));
        }
        for (count, what) in [
            (x25519, "X25519"),
            (pq, "mlkem768x25519"),
            (other, "other (age grease or unknown)"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {what}"));
            }
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MAC: &str = "--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";

    fn x25519_stanza() -> String {
        let share = STANDARD_NO_PAD.encode([7u8; 32]);
        let body = STANDARD_NO_PAD.encode([9u8; 32]);
        format!("-> X25519 {share}\n{body}\n")
    }

    fn rsa_stanza(tag: [u8; 4], body_len: usize) -> String {
        let body = STANDARD_NO_PAD.encode(vec![1u8; body_len]);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let mut text = format!(
            "-> ssh-rsa {}\n{}\n",
            STANDARD_NO_PAD.encode(tag),
            lines.join("\n")
        );
        if body.len().is_multiple_of(64) {
            text.push('\n');
        }
        text
    }

    fn file(stanzas: &str) -> Vec<u8> {
        format!("age-encryption.org/v1\n{stanzas}{MAC}payload").into_bytes()
    }

    #[test]
    fn reads_known_and_grease_stanzas() {
        let stanzas = format!(
            "{}{}-> a-grease b c\n\n{}",
            rsa_stanza([1, 2, 3, 4], 512),
            x25519_stanza(),
            rsa_stanza([5, 6, 7, 8], 256)
        );
        let value = file(&stanzas);
        let header = parse(&value).unwrap();
        assert_eq!(&value[header.len..], b"payload");
        let kinds: Vec<_> = header.stanzas.iter().map(|s| s.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                RecipientKind::SshRsa {
                    key_tag: [1, 2, 3, 4]
                },
                RecipientKind::X25519,
                RecipientKind::Other {
                    tag: "a-grease".into()
                },
                RecipientKind::SshRsa {
                    key_tag: [5, 6, 7, 8]
                },
            ]
        );
        assert_eq!(
            header.summary(),
            "ssh-rsa AQIDBA, ssh-rsa BQYHCA, 1 X25519, 1 other (age grease or unknown)"
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        let rsa = rsa_stanza([1, 2, 3, 4], 512);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"\x02\x00abc".to_vec(), "not an age file"),
            (
                b"age-encryption.org/v2\n".to_vec(),
                "unsupported age version",
            ),
            (b"age-encryption.org/v1\n".to_vec(), "truncated header"),
            (
                format!("age-encryption.org/v1\n{rsa}").into_bytes(),
                "truncated header",
            ),
            (file(""), "no recipient stanza"),
            (file("hello\n"), "expected a recipient stanza"),
            (file("-> scrypt c2FsdA 18\nAAAA\n"), "passphrase"),
            (
                file("-> ssh-rsa AQID\nAAAA\n"),
                "ssh-rsa needs one argument",
            ),
            (
                file("-> ssh-rsa AQIDBA extra\nAAAA\n"),
                "ssh-rsa needs one argument",
            ),
            (file(&rsa_stanza([1, 2, 3, 4], 100)), "not one RSA-2048"),
            (file("-> X25519 AAAA\nAAAA\n"), "X25519 needs one argument"),
            (file("-> ssh-rsa  AQIDBA\n\n"), "printable ASCII"),
            (file("-> a b c d e f g h i j\n\n"), "too many arguments"),
            (file("-> grease\nAB\n"), "not canonical base64"),
            (
                file(&format!("-> grease\n{}\n", "A".repeat(65))),
                "longer than 64 columns",
            ),
            (
                format!("age-encryption.org/v1\n{}--- short\n", x25519_stanza()).into_bytes(),
                "MAC line",
            ),
        ];
        for (value, expected) in cases {
            let err = parse(&value).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{:?}: {err}",
                String::from_utf8_lossy(&value)
            );
        }
    }

    #[test]
    fn bounds_stanza_count_and_header_size() {
        let many = x25519_stanza().repeat(MAX_STANZAS);
        assert_eq!(parse(&file(&many)).unwrap().stanzas.len(), MAX_STANZAS);
        let too_many = x25519_stanza().repeat(MAX_STANZAS + 1);
        let err = parse(&file(&too_many)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    what: "recipient stanzas",
                    limit: MAX_STANZAS,
                    ..
                }
            ),
            "{err}"
        );

        // A header that never ends within the bound: refused at the bound, not truncated.
        let endless = format!(
            "age-encryption.org/v1\n-> grease\n{}",
            "A".repeat(2 * MAX_HEADER_LEN)
        );
        let err = parse(endless.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    what: "the header (bytes)",
                    ..
                }
            ),
            "{err}"
        );
    }
}
