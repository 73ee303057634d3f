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

/// The most blocks one input may hold. A key file holds a key and its certificate per sealing
/// key; a controller rotating monthly for decades has a few hundred. Each block costs a parse
/// (an RSA key check for keys), so the count is what bounds the work.
pub const MAX_PEM_BLOCKS: usize = 1024;
/// The longest label accepted: the standard ones are at most 21 characters
/// ("ENCRYPTED PRIVATE KEY"); labels appear in error messages.
pub const MAX_PEM_LABEL_LEN: usize = 64;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// All PEM blocks in `input`, in order. Text outside blocks is ignored. At most
/// [`MAX_PEM_BLOCKS`] blocks; linear in the input's length.
pub(crate) fn parse(input: &[u8], origin: &str) -> Result<Vec<Block>> {
    let invalid = |reason: String| Error::ParsePem {
        origin: origin.to_owned(),
        reason,
    };
    let mut blocks = Vec::new();
    let mut open: Option<(String, Zeroizing<String>)> = None;
    let mut next_line_at = 0;
    for (index, raw_line) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        next_line_at += raw_line.len() + 1;
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
                if label.len() > MAX_PEM_LABEL_LEN {
                    return Err(invalid(format!(
                        "BEGIN line {line_no}: label longer than {MAX_PEM_LABEL_LEN} characters"
                    )));
                }
                if blocks.len() == MAX_PEM_BLOCKS {
                    return Err(Error::LimitExceeded {
                        origin: origin.to_owned(),
                        what: "the number of PEM blocks",
                        limit: MAX_PEM_BLOCKS,
                    });
                }
                // Sized to the block's own text (up to its END line), so the buffer never
                // reallocates and the work stays linear: sizing every block to the whole input
                // would allocate (and wipe) the input once per block.
                let body = input.get(next_line_at..).unwrap_or_default();
                let capacity = find(body, END.as_bytes()).unwrap_or(body.len());
                let text = Zeroizing::new(String::with_capacity(capacity));
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

/// The offset of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
    fn block_count_is_bounded() {
        let one = encode("CERTIFICATE", b"x");
        let at_limit = one.repeat(MAX_PEM_BLOCKS);
        assert_eq!(
            parse(at_limit.as_bytes(), "f").unwrap().len(),
            MAX_PEM_BLOCKS
        );
        let over = one.repeat(MAX_PEM_BLOCKS + 1);
        let err = parse(over.as_bytes(), "f").err().unwrap();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    limit: MAX_PEM_BLOCKS,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("f: the number of PEM blocks"),
            "{err}"
        );
    }

    #[test]
    fn long_labels_are_refused_without_echoing_them() {
        let label = "L".repeat(MAX_PEM_LABEL_LEN + 1);
        let input = format!("-----BEGIN {label}-----\nQUJD\n-----END {label}-----\n");
        let err = parse(input.as_bytes(), "f").err().unwrap().to_string();
        assert!(err.contains("label longer than 64"), "{err}");
        assert!(!err.contains(&label), "{err}");
        let label = "L".repeat(MAX_PEM_LABEL_LEN);
        let input = format!("-----BEGIN {label}-----\nQUJD\n-----END {label}-----\n");
        assert_eq!(parse(input.as_bytes(), "f").unwrap()[0].label, label);
    }

    /// Many small blocks followed by a lot of text: each block's buffer is sized to the block,
    /// not to the rest of the input (which allocated and wiped the input once per block).
    #[test]
    fn many_blocks_in_a_large_input() {
        let one = encode("CERTIFICATE", b"xyz");
        let input = format!("{}\n{}", one.repeat(MAX_PEM_BLOCKS), " ".repeat(4_000_000));
        let blocks = parse(input.as_bytes(), "f").unwrap();
        assert_eq!(blocks.len(), MAX_PEM_BLOCKS);
        assert!(blocks.iter().all(|b| *b.der == b"xyz"));
    }

    #[test]
    fn rejects_encrypted_legacy_pem() {
        let input = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nQUJD\n-----END RSA PRIVATE KEY-----\n";
        let err = parse(input.as_bytes(), "k.pem").err().unwrap();
        assert!(matches!(err, Error::EncryptedPem { .. }), "{err}");
    }
}
