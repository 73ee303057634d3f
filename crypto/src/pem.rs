//! A small PEM reader and writer that zeroizes what it decodes.
//!
//! The `pem` crate leaves the base64 text of a private key in freed memory; here every
//! intermediate buffer of a block is `Zeroizing`, and buffers are sized up front so they never
//! reallocate (a reallocation would leave a copy behind).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
pub(crate) struct Block {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// All PEM blocks in `input`, in order. Text outside blocks is ignored.
pub(crate) fn parse(input: &[u8], origin: &str) -> Result<Vec<Block>> {
    let invalid = |reason: String| Error::ParsePem {
        origin: origin.to_owned(),
        reason,
    };
    let mut blocks = Vec::new();
    let mut open: Option<(String, Zeroizing<String>)> = None;
    for (index, raw_line) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_ascii();
        match open.as_mut() {
            None => {
                let Some(rest) = line.strip_prefix(BEGIN.as_bytes()) else {
                    continue;
                };
                let label = rest
                    .strip_suffix(DASHES.as_bytes())
                    .and_then(|label| std::str::from_utf8(label).ok())
                    .ok_or_else(|| invalid(format!("malformed BEGIN line {line_no}")))?;
                // Never longer than the input, so the buffer never reallocates.
                let text = Zeroizing::new(String::with_capacity(input.len()));
                open = Some((label.to_owned(), text));
            }
            Some((label, text)) => {
                if let Some(rest) = line.strip_prefix(END.as_bytes()) {
                    let end_label = rest.strip_suffix(DASHES.as_bytes()).unwrap_or(rest);
                    if end_label != label.as_bytes() {
                        return Err(invalid(format!(
                            "line {line_no}: END does not match BEGIN {label}"
                        )));
                    }
                    let der = decode(text).map_err(|reason| {
                        invalid(format!("block {label} ending on line {line_no}: {reason}"))
                    })?;
                    blocks.push(Block {
                        label: std::mem::take(label),
                        der,
                    });
                    open = None;
                } else if line.contains(&b':') {
                    // RFC 1421 headers, as in "Proc-Type: 4,ENCRYPTED".
                    if line.starts_with(b"Proc-Type:") || line.starts_with(b"DEK-Info:") {
                        return Err(Error::EncryptedPem {
                            origin: origin.to_owned(),
                        });
                    }
                } else {
                    let chunk = std::str::from_utf8(line)
                        .ok()
                        .filter(|chunk| chunk.bytes().all(is_base64_char))
                        .ok_or_else(|| {
                            invalid(format!("line {line_no}: not base64 inside block {label}"))
                        })?;
                    text.push_str(chunk);
                }
            }
        }
    }
    if let Some((label, _)) = open {
        return Err(invalid(format!("block {label} has no END line")));
    }
    Ok(blocks)
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn decode(text: &str) -> std::result::Result<Zeroizing<Vec<u8>>, &'static str> {
    let mut der = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(text, &mut der)
        .map_err(|_| "invalid base64")?;
    if der.is_empty() {
        return Err("empty block");
    }
    Ok(der)
}

/// PEM text for `der` under `label`, 64 characters a line, LF line ends.
pub(crate) fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = der.len().div_ceil(3) * 4;
    let lines = body.div_ceil(64);
    let capacity = BEGIN.len() + END.len() + 2 * (label.len() + DASHES.len() + 1) + body + lines;
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    // 48 bytes encode to exactly one 64-character line; the line buffer is wiped after use.
    let mut line = Zeroizing::new([0u8; 64]);
    for chunk in der.chunks(48) {
        let n = STANDARD
            .encode_slice(chunk, &mut line[..])
            .unwrap_or_default();
        // Base64 output is ASCII, so the conversion cannot fail.
        out.push_str(std::str::from_utf8(&line[..n]).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    debug_assert_eq!(out.len(), capacity);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn encode_then_parse_round_trips() {
        for len in [1, 2, 3, 47, 48, 49, 95, 96, 97, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let text = encode("TEST BLOCK", &der);
            for line in text.lines() {
                assert!(line.len() <= 64, "{line}");
            }
            let blocks = parse(text.as_bytes(), "test").unwrap();
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].label, "TEST BLOCK");
            assert_eq!(*blocks[0].der, der);
        }
    }

    #[test]
    fn parses_several_blocks_with_crlf_and_surrounding_text() {
        let a = encode("A", b"first");
        let b = encode("B", b"second");
        let input = format!("Bag Attributes\r\n{}garbage\r\n{}", *a, *b).replace('\n', "\r\n");
        let blocks = parse(input.as_bytes(), "test").unwrap();
        let labels: Vec<_> = blocks.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["A", "B"]);
        assert_eq!(*blocks[1].der, b"second");
    }

    #[test]
    fn rejects_broken_blocks_without_echoing_data() {
        let cases: [(&str, &str); 4] = [
            ("-----BEGIN X-----\nQUJD\n", "no END line"),
            (
                "-----BEGIN X-----\nQUJD\n-----END Y-----\n",
                "does not match",
            ),
            ("-----BEGIN X-----\nQU*D\n-----END X-----\n", "not base64"),
            (
                "-----BEGIN X-----\nQUJ\n-----END X-----\n",
                "invalid base64",
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input.as_bytes(), "file.pem")
                .err()
                .unwrap()
                .to_string();
            assert!(err.starts_with("file.pem: "), "{err}");
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("QU"), "{err}");
        }
    }

    #[test]
    fn rejects_encrypted_legacy_pem() {
        let input = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nQUJD\n-----END RSA PRIVATE KEY-----\n";
        let err = parse(input.as_bytes(), "k.pem").err().unwrap();
        assert!(matches!(err, Error::EncryptedPem { .. }), "{err}");
    }
}
